"""The `evaluate` command's work: a bundle's metrics on every image of a HAM10000-format folder."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from melanoma.config import SOURCE_COLUMN
from melanoma.evaluate import lesion_bootstrap_intervals, metrics_at


def evaluate_folder(model_dir: str | Path | None, data_dir: str | Path, use_metadata: bool = True) -> dict:
    """Classifies every usable image of a HAM10000-format folder (no split: this is for
    external validation) at the bundle's threshold. A network that takes patient metadata is given
    the folder's age, sex and localization columns (those it has) unless `use_metadata` is False;
    each mode is measured at its own threshold."""
    from melanoma.data import load_dataset, source_name
    from melanoma.inference import Predictor
    from melanoma.patient import FIELD_SLICES

    predictor = Predictor.from_bundle(model_dir)
    dataset = load_dataset(data_dir, spec=predictor.image_spec)
    columns = {"age": "age", "sex": "sex", "site": "localization"}
    fields = [name for name in FIELD_SLICES if columns[name] in dataset.frame.columns]
    metadata_used = fields if predictor.takes_metadata and use_metadata and fields else []
    metadata = dataset.metadata if metadata_used else None
    outputs = predictor.outputs(dataset.images, metadata)
    probabilities = predictor.calibrated(outputs, metadata)
    threshold = predictor.threshold_for(bool(metadata_used))
    lesions = dataset.frame["lesion_id"].to_numpy()
    result = metrics_at(dataset.labels, probabilities, threshold)
    if predictor.extras is not None:  # every image is still scored above; this says how many would not be
        refused = predictor.extras.refused(outputs, dataset.images)
        result["not_a_lesion"] = {"threshold": predictor.extras.info["not_a_lesion"]["threshold"],
                                  "would_refuse": int(refused.sum()),
                                  "would_refuse_melanoma": int((refused & (dataset.labels == 1)).sum())}
    result["intervals"] = lesion_bootstrap_intervals(dataset.labels, probabilities, lesions, threshold)
    result["metadata_used"] = metadata_used
    result["dropped"] = len(dataset.dropped)
    result["model"] = str(predictor.bundle.path)
    result["data"] = str(data_dir)
    # On the development folder most images were trained on; its held-out part is the bundle's
    # own test split, so report that part on its own.
    test_split = pd.read_csv(predictor.bundle.test_split_csv)
    if SOURCE_COLUMN in test_split:  # a bundle of several sources: this folder's own test photos
        test_split = test_split[test_split[SOURCE_COLUMN] == source_name(data_dir)]
    held_out = dataset.frame["image_id"].isin(test_split["image_id"]).to_numpy()
    if held_out.any():
        part = metrics_at(dataset.labels[held_out], probabilities[held_out], threshold)
        part["intervals"] = lesion_bootstrap_intervals(dataset.labels[held_out], probabilities[held_out],
                                                       lesions[held_out], threshold)
        result["bundle_test_split_part"] = part
    return result
