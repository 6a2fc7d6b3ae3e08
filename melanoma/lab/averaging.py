"""Weight averaging (SWA, Izmailov et al., 2018) of a run's last epochs, and probability
averaging of independent runs (an ensemble), scored on validation.

Averaging the weights of several epochs late in the schedule is a common way to get a model
that does not depend on which single epoch happened to score best. Batch-norm moving statistics
do not average: an averaged network needs its own, so they are recomputed by a pass over
training batches (as `torch.optim.swa_utils.update_bn` does). With one epoch, that pass alone
is "precise BN": it tells whether the moving statistics lagging the weights cost any AUC.

An ensemble of independently trained runs measures how much of the error is run-to-run variance:
if averaging their probabilities gains little, the runs make the same mistakes, and what limits
the model is the data and the resolution, not the luck of one run.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from melanoma.batch_norm import recompute_batch_norm_statistics
from melanoma.config import TrainConfig
from melanoma.run_folder import epoch_weights_path, saved_epochs

SPLIT_SETTINGS = ("seed", "max_images", "test_fraction", "val_fraction")  # what decides the validation split
BN_RECOMPUTE_SEED = 0  # which balanced, augmented epoch the statistics are recomputed on


def read_weights(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as arrays:
        return {key: arrays[key].astype(np.float32) for key in arrays.files}


def average_weights(snapshots: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.mean([snapshot[key] for snapshot in snapshots], axis=0) for key in snapshots[0]}


def training_batches(dataset, split, config: TrainConfig):
    """One balanced, augmented training epoch as the network saw them in training (images only)."""
    import keras

    from melanoma.pipeline import balanced_epoch_indices, make_augmenter, make_train_dataset

    labels = dataset.labels[split.train]
    indices = balanced_epoch_indices(labels, config.melanoma_per_epoch_factor,
                                     np.random.default_rng(BN_RECOMPUTE_SEED))
    batches = make_train_dataset(dataset.images[split.train], labels, indices, config,
                                 make_augmenter(config))
    if isinstance(batches, keras.utils.PyDataset):
        return (batches[index][0] for index in range(len(batches)))
    return (images for images, _ in batches)


def validation_scorer(data_dir, config: TrainConfig):
    """(the dataset, its split, a network, and score(weights) -> validation probabilities)."""
    from melanoma.bundle import assign_weights
    from melanoma.inference import compiled_forward, predict_in_batches
    from melanoma.model import NetworkSpec, build_network
    from melanoma.splits import load_split_dataset

    dataset, split = load_split_dataset(data_dir, config)
    spec = NetworkSpec.from_config(config)
    val_images, val_metadata = dataset.images[split.val], dataset.metadata(spec.patient_encoding)[split.val]
    model = build_network(spec)
    forward = compiled_forward(model)  # reads the variables at call time: one trace serves every weight set

    def score(weights: dict[str, np.ndarray] | None = None) -> np.ndarray:
        if weights is not None:
            assign_weights(model, weights)
        return predict_in_batches(forward, val_images, val_metadata)

    return dataset, split, model, score


def weight_averaging(run_dir, data_dir, last: int) -> dict:
    """Validation AUC of each of the run's last `last` saved epochs, of their probability average,
    and of their weight average with batch-norm statistics recomputed."""
    from melanoma.evaluate import roc_auc
    from melanoma.run_folder import read_run_config

    run_dir = Path(run_dir)
    epochs = saved_epochs(run_dir)[-last:]
    if not epochs:
        raise RuntimeError(f"{run_dir} has no saved epoch weights; train it with --keep-epoch-weights")
    config = read_run_config(run_dir)
    dataset, split, model, score = validation_scorer(data_dir, config)
    val_labels = dataset.labels[split.val]

    snapshots, probabilities, per_epoch = [], [], {}
    for epoch in epochs:
        snapshots.append(read_weights(epoch_weights_path(run_dir, epoch)))
        probabilities.append(score(snapshots[-1]))
        per_epoch[epoch] = roc_auc(val_labels, probabilities[-1])
    score(average_weights(snapshots))
    batches_seen = recompute_batch_norm_statistics(model, training_batches(dataset, split, config))
    return {
        "run": str(run_dir),
        "epochs": epochs,
        "val_auc_per_epoch": per_epoch,
        "probability_average_val_auc": roc_auc(val_labels, np.mean(probabilities, axis=0)),
        "weight_average_val_auc": roc_auc(val_labels, score()),
        "batch_norm_recomputed_on_batches": batches_seen,
    }


def ensemble(run_dirs, data_dir) -> dict:
    """Validation AUC of each run's best epoch and of the average of their probabilities. The runs
    must share one validation split, or their probabilities would not describe the same images."""
    from melanoma.evaluate import roc_auc
    from melanoma.run_folder import BEST_WEIGHTS, read_run_config

    run_dirs = [Path(run_dir) for run_dir in run_dirs]
    missing = [str(run_dir) for run_dir in run_dirs if not (run_dir / BEST_WEIGHTS).is_file()]
    if missing:
        raise RuntimeError(f"{missing[0]} has no {BEST_WEIGHTS}; train it for at least one epoch first")
    configs = [read_run_config(run_dir) for run_dir in run_dirs]
    for run_dir, config in zip(run_dirs[1:], configs[1:]):
        differing = [name for name in SPLIT_SETTINGS if getattr(config, name) != getattr(configs[0], name)]
        if differing:
            raise RuntimeError(f"{run_dir} was split differently from {run_dirs[0]} "
                               f"({', '.join(differing)} differ): their validation images are not the same")
    dataset, split, _, score = validation_scorer(data_dir, configs[0])
    val_labels = dataset.labels[split.val]
    probabilities = {str(run_dir): score(read_weights(run_dir / BEST_WEIGHTS)) for run_dir in run_dirs}
    return {
        "val_auc_per_run": {run: roc_auc(val_labels, p) for run, p in probabilities.items()},
        "probability_average_val_auc": roc_auc(val_labels, np.mean(list(probabilities.values()), axis=0)),
    }
