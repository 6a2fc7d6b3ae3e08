"""The `evaluate` command's work: a bundle's metrics on every image of a HAM10000-format folder,
and (`record`) keeping them in the bundle, per source, for the model card.

A folder none of whose images is in the bundle's test split is taken as a source the model was not
trained on (another clinic's photos): its figures are the model's measured limits elsewhere.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from melanoma.config import KNOWN_DX
from melanoma.differential import report as differential_report
from melanoma.differential import with_melanoma
from melanoma.evaluate import lesion_bootstrap_intervals, metrics_at
from melanoma.sources import SOURCE_COLUMN


def evaluate_folder(model_dir: str | Path | None, data_dir: str | Path, use_metadata: bool = True) -> dict:
    """Classifies every usable image of a HAM10000-format folder (no split: this is for
    external validation) at the bundle's threshold. A network that takes patient metadata is given
    the folder's age, sex and localization columns (those it has) unless `use_metadata` is False;
    each mode is measured at its own threshold."""
    from melanoma.data import load_dataset
    from melanoma.inference import Predictor
    from melanoma.patient import SITE_COLUMNS
    from melanoma.sources import as_sources

    predictor = Predictor.from_bundle(model_dir)
    [source] = as_sources(data_dir)
    dataset = load_dataset(source, spec=predictor.image_spec)
    columns = {"age": ("age",), "sex": ("sex",), "site": SITE_COLUMNS}
    fields = [name for name, named in columns.items() if any(column in dataset.frame.columns for column in named)]
    metadata_used = fields if predictor.takes_metadata and use_metadata and fields else []
    metadata = dataset.metadata(predictor.patient_encoding) if metadata_used else None
    outputs = predictor.outputs(dataset.images, metadata)
    probabilities = predictor.calibrated(outputs, metadata)
    threshold = predictor.threshold_for(bool(metadata_used))
    lesions = dataset.frame["lesion_id"].to_numpy()
    result = metrics_at(dataset.labels, probabilities, threshold)
    differential = diagnoses = refused = None

    def refusals(rows) -> dict:
        return {"threshold": predictor.extras.info.not_a_lesion.threshold,
                "would_refuse": int(refused[rows].sum()),
                "would_refuse_melanoma": int((refused[rows] & (dataset.labels[rows] == 1)).sum())}

    if predictor.extras is not None:  # every image is still scored above; this says how many would not be
        refused = predictor.extras.refused(outputs, dataset.images)
        result["not_a_lesion"] = refusals(slice(None))
        # The differential as the app shows it: its melanoma share is the P(melanoma) above.
        differential = with_melanoma(predictor.extras.diagnoses(outputs), probabilities)
        diagnoses = dataset.frame["dx"].map(KNOWN_DX.index).to_numpy()  # cleansing kept known ones only
        result["differential"] = differential_report(diagnoses, differential)
    result["intervals"] = lesion_bootstrap_intervals(dataset.labels, probabilities, lesions, threshold)
    result["metadata_used"] = metadata_used
    result["dropped"] = len(dataset.dropped)
    result["model"] = str(predictor.bundle.path)
    result["data"] = str(data_dir)
    result["source"] = source.name
    # On the development folder most images were trained on; its held-out part is the bundle's
    # own test split, so report that part on its own.
    test_split = pd.read_csv(predictor.bundle.test_split_csv)
    if SOURCE_COLUMN in test_split and len(predictor.bundle.sources) > 1:  # this folder's own test photos
        test_split = test_split[test_split[SOURCE_COLUMN] == source.name]
    held_out = dataset.frame["image_id"].isin(test_split["image_id"]).to_numpy()
    result["trained_on_source"] = bool(held_out.any())
    if held_out.any():
        part = metrics_at(dataset.labels[held_out], probabilities[held_out], threshold)
        part["intervals"] = lesion_bootstrap_intervals(dataset.labels[held_out], probabilities[held_out],
                                                       lesions[held_out], threshold)
        if differential is not None:
            part["differential"] = differential_report(diagnoses[held_out], differential[held_out])
            part["not_a_lesion"] = refusals(held_out)
        result["bundle_test_split_part"] = part
    return result


def record(report: dict, when: datetime | None = None) -> Path:
    """Keeps an `evaluate` report in its bundle's evaluations, under its source (the data folder's
    name), replacing an earlier one of that source; without the machine's paths."""
    from melanoma.bundle import EVALUATIONS, add_files, load_bundle

    bundle = load_bundle(report["model"])
    kept = {name: value for name, value in report.items() if name != "model"}
    kept["date"] = (when or datetime.now(UTC)).isoformat(timespec="seconds")
    evaluations = {**(bundle.recorded_json(EVALUATIONS) if bundle.evaluations else {}), report["source"]: kept}
    return add_files(bundle.path, {EVALUATIONS: (json.dumps(evaluations, indent=2) + "\n").encode()})
