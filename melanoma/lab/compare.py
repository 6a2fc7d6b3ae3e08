"""Two bundles on the same validation images, paired: which is better, and how sure we can be.

`python -m melanoma compare --data DIR --baseline BUNDLE --candidate BUNDLE` scores both on the
validation split their training drew (they must share the split settings), each with its own
input size and, where it takes it, the patient metadata; then reports each one's AUC and the
candidate's AUC minus the baseline's with a lesion-level bootstrap interval of that difference.
"""
from __future__ import annotations

import numpy as np

from melanoma.config import TrainConfig

SPLIT_SETTINGS = ("seed", "test_fraction", "val_fraction", "max_images")


class ComparisonError(RuntimeError):
    """The two bundles cannot be compared; str() says why in one line."""


def validation_probabilities(predictor, data_dir, use_metadata: bool):
    from melanoma.data import load_split_dataset

    dataset, split = load_split_dataset(data_dir, TrainConfig.from_dict(predictor.bundle.train_config))
    val = split.val
    metadata = dataset.metadata[val] if use_metadata and predictor.takes_metadata else None
    frame = dataset.frame.iloc[val]
    return frame, predictor.probabilities(dataset.images[val], metadata), metadata is not None


def compare_bundles(baseline_dir, candidate_dir, data_dir, use_metadata: bool = True) -> dict:
    from melanoma.evaluate import metrics_at, paired_auc_difference
    from melanoma.inference import Predictor

    predictors = {"baseline": Predictor.from_bundle(baseline_dir), "candidate": Predictor.from_bundle(candidate_dir)}
    configs = {name: TrainConfig.from_dict(p.bundle.train_config) for name, p in predictors.items()}
    differing = [s for s in SPLIT_SETTINGS if getattr(configs["baseline"], s) != getattr(configs["candidate"], s)]
    if differing:
        raise ComparisonError(f"the bundles were split differently ({', '.join(differing)}): their validation "
                           f"images are not the same")
    result, scored = {}, {}
    for name, predictor in predictors.items():
        frame, probabilities, used = validation_probabilities(predictor, data_dir, use_metadata)
        scored[name] = (frame, probabilities)
        labels = frame["label"].to_numpy()
        threshold = predictor.threshold_for(used)
        result[name] = {"model": str(predictor.bundle.path), "metadata_used": used,
                        **metrics_at(labels, probabilities, threshold)}
    frame = scored["baseline"][0]
    assert np.array_equal(frame["image_id"].to_numpy(), scored["candidate"][0]["image_id"].to_numpy())
    result["candidate_minus_baseline_auc"] = paired_auc_difference(
        frame["label"].to_numpy(), scored["baseline"][1], scored["candidate"][1], frame["lesion_id"].to_numpy())
    return result
