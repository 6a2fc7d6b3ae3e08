"""How familiar a photo is to the model, and whether that says anything about how far to trust its figure.

`python -m melanoma familiarity --data DIR [--data DIR ...] [--model BUNDLE]` scores photos with the
not-a-lesion check's novelty score (how unlike the training photos a picture's stage-3 activations
are) and cuts the accepted ones into bands at the terciles of the bundle's own validation photos
(pooled over its sources; `melanoma.novelty`, the edges the bundle stores where it has them): a band
says how a photo's camera and lighting compare with what the model was trained on. Per set of
photos (each trained source's validation and test split; every photo of a folder the bundle never
trained on) it reports the share of photos in each band and the
ROC-AUC and sensitivity inside it, with lesion-bootstrap intervals, so that a card may call its
figure less reliable only where this table shows that it is.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from melanoma.novelty import FAMILIARITY_BANDS, familiarity_bands, familiarity_edges

MIN_MELANOMA_FOR_AUC = 5  # fewer melanomas in a band than this give no AUC worth printing


def band_table(labels, probabilities, lesions, scores, refused, edges, threshold: float) -> dict:
    """Per band of the accepted photos: count, share, melanomas, AUC and sensitivity with intervals."""
    from melanoma.evaluate import lesion_bootstrap_intervals, metrics_at

    labels, probabilities = np.asarray(labels).astype(int), np.asarray(probabilities, float)
    accepted = ~np.asarray(refused, bool)
    band = familiarity_bands(scores, edges)
    rows = {"photos": int(len(labels)), "refused": int((~accepted).sum()), "bands": {}}
    for index, name in enumerate(FAMILIARITY_BANDS):
        inside = accepted & (band == index)
        part = {"photos": int(inside.sum()), "share_of_accepted": float(inside.sum() / max(accepted.sum(), 1)),
                "melanoma": int(labels[inside].sum())}
        if part["melanoma"] >= MIN_MELANOMA_FOR_AUC and part["photos"] > part["melanoma"]:
            measured = metrics_at(labels[inside], probabilities[inside], threshold)
            intervals = lesion_bootstrap_intervals(labels[inside], probabilities[inside], np.asarray(lesions)[inside],
                                                   threshold)
            part.update(roc_auc=measured["roc_auc"], sensitivity=measured["sensitivity"],
                        specificity=measured["specificity"], intervals={
                            name: intervals[name] for name in ("roc_auc", "sensitivity", "specificity")})
        rows["bands"][name] = part
    return rows


def familiarity_report(model_dir, data_dirs, use_metadata: bool = True) -> dict:
    """The band edges from the bundle's validation photos, then the table for each set of photos."""
    from melanoma.bundle import BundleError
    from melanoma.config import TrainConfig
    from melanoma.data import load_dataset
    from melanoma.features import NOVELTY_FEATURES
    from melanoma.inference import Predictor
    from melanoma.novelty import colourfulness
    from melanoma.sources import SOURCE_COLUMN, as_sources
    from melanoma.splits import make_split

    predictor = Predictor.from_bundle(model_dir)
    if predictor.extras is None or not predictor.extras.novelty.active:
        raise BundleError(f"{predictor.bundle.path} has no not-a-lesion check to band photos by")
    trained = list(predictor.bundle.sources)
    sources = as_sources(data_dirs)
    own = [source for source in sources if source.name in trained]
    if [source.name for source in own] != trained:
        raise BundleError(f"give the bundle's own folders ({', '.join(trained)}) first, in training order")
    config = TrainConfig.from_dict(predictor.bundle.train_config)

    def scored(dataset, rows):
        images = dataset.images[rows]
        metadata = dataset.metadata(predictor.patient_encoding)[rows] if use_metadata and predictor.takes_metadata else None
        outputs = predictor.outputs(images, metadata)
        scores = predictor.extras.novelty(outputs[NOVELTY_FEATURES])
        refused = predictor.extras.novelty.refused(scores, colourfulness(images))
        threshold = predictor.threshold_for(metadata is not None)
        return (dataset.labels[rows], predictor.calibrated(outputs, metadata),
                dataset.frame["lesion_id"].to_numpy()[rows], scores, refused, threshold)

    dataset = load_dataset(own, config.max_images, config.seed, predictor.image_spec)
    split = make_split(dataset.frame, config)
    row_sources = dataset.frame[SOURCE_COLUMN].to_numpy()
    measured = {part: scored(dataset, rows) for part, rows in (("validation", split.val), ("test", split.test))}
    val_scores, val_refused = measured["validation"][3], measured["validation"][4]
    novelty = predictor.extras.novelty
    edges = novelty.band_edges if novelty.has_bands else familiarity_edges(val_scores[~val_refused])
    report = {"model": str(predictor.bundle.path), "edges": np.round(edges, 4).tolist(),
              "edges_from": ("the bundle's (fitted with its extras): " if novelty.has_bands else "")
              + f"terciles of the {int((~val_refused).sum())} accepted validation photos' scores",
              "not_a_lesion_threshold": predictor.extras.threshold, "sets": {}}
    for part, rows in (("validation", split.val), ("test", split.test)):
        values = measured[part]
        for name in trained:
            mine = row_sources[rows] == name
            report["sets"][f"{name} {part}"] = band_table(*(value[mine] for value in values[:5]), edges, values[5])
    for source in sources:
        if source.name not in trained:
            other = load_dataset(source, spec=predictor.image_spec)
            values = scored(other, np.arange(len(other.frame)))
            report["sets"][f"{source.name} (every photo; not trained on)"] = band_table(
                *values[:5], edges, values[5])
    return report


def table(report: dict) -> str:
    """The report as Markdown: one row per set and band."""
    lines = ["| photos | band | share of accepted | melanoma | ROC-AUC [95%] | sensitivity [95%] |",
             "|---|---|---|---|---|---|"]
    for name, part in report["sets"].items():
        for band, figures in part["bands"].items():
            auc = sens = "too few melanomas"
            if "roc_auc" in figures:
                auc = _with_interval(figures["roc_auc"], figures["intervals"]["roc_auc"])
                sens = _with_interval(figures["sensitivity"], figures["intervals"]["sensitivity"])
            lines.append(f"| {name} ({part['photos']:,}, {part['refused']} refused) | {band} | "
                         f"{figures['share_of_accepted']:.1%} ({figures['photos']}) | {figures['melanoma']} | {auc} | {sens} |")
    return "\n".join(lines)


def _with_interval(value, interval) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + ("" if not interval else f" [{interval[0]:.3f}, {interval[1]:.3f}]")


def record(report: dict, when: datetime | None = None) -> Path:
    """Keeps the report in its bundle (`familiarity.json`, without the machine's paths), where the
    card reads what the bands were measured to say (`melanoma.published.familiarity_reading`)."""
    from melanoma.bundle import FAMILIARITY, add_files

    kept = {name: value for name, value in report.items() if name != "model"}
    kept["date"] = (when or datetime.now(UTC)).isoformat(timespec="seconds")
    return add_files(report["model"], {FAMILIARITY: (json.dumps(kept, indent=2) + "\n").encode()})
