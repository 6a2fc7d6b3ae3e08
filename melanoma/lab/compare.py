"""Two bundles on the same validation images, paired: which is better, and how sure we can be.

`python -m melanoma compare --data DIR [--data DIR ...] --baseline BUNDLE --candidate BUNDLE` scores
both on the validation split the candidate's training drew from those folders (given in the order
its `train` was given them), each with its own input size and, where it takes it, the patient
metadata; then reports each one's AUC and the candidate's AUC minus the baseline's with a
lesion-level bootstrap interval of that difference: pooled, for each source on its own, and for
the worst source (each model's lowest per-source AUC), which the ship rule (`decision.py`) judges.

The baseline may have been trained on fewer sources (v1: HAM10000 alone). It must share the split
settings, so that its training photos are none of the compared ones: on the sources it never saw,
every photo is new to it.
"""
from __future__ import annotations

import numpy as np

from melanoma.config import TrainConfig

SPLIT_SETTINGS = ("seed", "test_fraction", "val_fraction", "max_images")


class ComparisonError(RuntimeError):
    """The two bundles cannot be compared; str() says why in one line."""


def validation_probabilities(predictor, data_dirs, split_config: TrainConfig, use_metadata: bool):
    """The validation photos of `split_config`'s split, at this predictor's own input."""
    from melanoma.data import load_dataset
    from melanoma.splits import make_split

    dataset = load_dataset(data_dirs, split_config.max_images, split_config.seed, predictor.image_spec)
    val = make_split(dataset.frame, split_config).val
    metadata = dataset.metadata(predictor.patient_encoding)[val] if use_metadata and predictor.takes_metadata else None
    frame = dataset.frame.iloc[val].reset_index(drop=True)
    return frame, predictor.probabilities(dataset.images[val], metadata), metadata is not None


def check_comparable(baseline, candidate, data_dirs) -> None:
    from melanoma.sources import as_sources

    folders = as_sources(data_dirs)
    if len(folders) != len(candidate.bundle.sources):
        raise ComparisonError(f"the candidate was trained on {len(candidate.bundle.sources)} source(s) "
                              f"({', '.join(candidate.bundle.sources)}): give --data once for each, in that order")
    if baseline.bundle.sources != candidate.bundle.sources[:len(baseline.bundle.sources)]:
        raise ComparisonError(f"the baseline's sources ({', '.join(baseline.bundle.sources)}) are not the first of "
                              f"the candidate's ({', '.join(candidate.bundle.sources)})")
    configs = [TrainConfig.from_dict(p.bundle.train_config) for p in (baseline, candidate)]
    differing = [s for s in SPLIT_SETTINGS if getattr(configs[0], s) != getattr(configs[1], s)]
    if differing:
        raise ComparisonError(f"the bundles were split differently ({', '.join(differing)}): their validation "
                              f"images are not the same")


def compare_bundles(baseline_dir, candidate_dir, data_dirs, use_metadata: bool = True) -> dict:
    """The comparison report: both bundles on the candidate's validation photos, pooled, per source,
    and each model's worst source paired with the other's."""
    from melanoma.evaluate import metrics_at, paired_auc_difference, paired_worst_source_difference
    from melanoma.inference import Predictor
    from melanoma.sources import SOURCE_COLUMN, as_sources

    data_dirs = as_sources(data_dirs)  # each metadata CSV read once, for both bundles
    predictors = {"baseline": Predictor.from_bundle(baseline_dir), "candidate": Predictor.from_bundle(candidate_dir)}
    check_comparable(predictors["baseline"], predictors["candidate"], data_dirs)
    split_config = TrainConfig.from_dict(predictors["candidate"].bundle.train_config)
    scored, thresholds, used = {}, {}, {}
    for name, predictor in predictors.items():
        frame, scored[name], used[name] = validation_probabilities(predictor, data_dirs, split_config, use_metadata)
        thresholds[name] = predictor.threshold_for(used[name])
    labels, lesions = frame["label"].to_numpy(), frame["lesion_id"].to_numpy()

    def report(rows: np.ndarray) -> dict:
        part = {name: {"model": str(predictors[name].bundle.path), "metadata_used": used[name],
                       **metrics_at(labels[rows], scored[name][rows], thresholds[name])} for name in predictors}
        part["candidate_minus_baseline_auc"] = paired_auc_difference(
            labels[rows], scored["baseline"][rows], scored["candidate"][rows], lesions[rows])
        return part

    result = report(np.arange(len(frame)))
    sources = frame[SOURCE_COLUMN].to_numpy()
    result["by_source"] = {source: report(np.flatnonzero(sources == source)) for source in dict.fromkeys(sources)}
    worst = paired_worst_source_difference(labels, scored["baseline"], scored["candidate"], lesions, sources)
    result["worst_source"] = {"baseline": worst.pop("a"), "candidate": worst.pop("b"),
                              "candidate_minus_baseline_auc": worst}
    return result
