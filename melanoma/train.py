"""The training run: resumable epoch by epoch, ending in a model bundle.

A run folder holds the settings, the history and one checkpoint (weights + optimizer state +
the epoch it finished), each written atomically after every epoch. Rerunning the same command
resumes after the last finished epoch; per-epoch sampling is seeded by (training seed, epoch), so the
resumed run draws the same epochs it would have drawn.
"""
from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from melanoma.config import TrainConfig
from melanoma.distribute import MultiWorkerEpoch, is_chief, make_strategy, require_one_starting_point
from melanoma.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from melanoma.patient import hide_at_random
from melanoma.run_folder import (
    BEST_WEIGHTS,
    CHECKPOINT,
    LINEAGE,
    RUN_CONFIG,
    RUN_HISTORY,
    check_resume_config,
    epoch_weights_path,
    finished_epochs,
    restore_checkpoint,
    save_checkpoint,
    settle_best_weights,
    write_best_weights,
)
from melanoma.sources import as_sources

METADATA_HIDING_STREAM = 1  # seeds the per-epoch metadata hiding apart from the epoch's sampling


def build_and_compile(config: TrainConfig, steps_per_epoch: int):
    """The network the settings describe (`NetworkSpec.from_config`), compiled for training: with
    the diagnosis head, a loss per head, the diagnosis one weighted by `diagnosis_loss_weight`."""
    import keras

    from melanoma.model import NetworkSpec, build_network

    model = build_network(NetworkSpec.from_config(config))
    total_steps = max(1, config.epochs * steps_per_epoch)
    warmup_steps = min(config.warmup_epochs * steps_per_epoch, total_steps // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 100 if warmup_steps else config.learning_rate,
        decay_steps=total_steps - warmup_steps, alpha=0.01,
        warmup_target=config.learning_rate if warmup_steps else None, warmup_steps=warmup_steps)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    metrics = [keras.metrics.CategoricalAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
    loss_weights = None
    if config.diagnosis_loss_weight:
        loss, metrics = {"predictions": loss, "diagnosis": loss}, {"predictions": metrics}
        loss_weights = {"predictions": 1.0, "diagnosis": config.diagnosis_loss_weight}
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay),
        loss=loss, loss_weights=loss_weights, metrics=metrics, jit_compile=config.jit_compile,
    )
    model.optimizer.build(model.trainable_variables)
    return model


def start_from_bundle(model, bundle_path) -> list[dict]:
    """Progressive resizing: copies every weight of the bundle's network that fits this one by name
    and shape (a convolution's kernel does not depend on the image size); the rest keep their fresh
    initialisation (e.g. a head that now also sees metadata). Returns the lineage to record: the
    bundle's own, then the bundle."""
    from melanoma.bundle import load_bundle

    bundle = load_bundle(bundle_path)
    wanted = {variable.path: variable for variable in model.weights}
    copied = 0
    with np.load(bundle.weights_path, allow_pickle=False) as arrays:
        for path in arrays.files:
            if path in wanted and tuple(arrays[path].shape) == tuple(wanted[path].shape):
                wanted[path].assign(arrays[path].astype(wanted[path].dtype))
                copied += 1
    log(f"started from {bundle.path.name}: {copied} of {len(wanted)} weight arrays copied, the rest fresh")
    return [*bundle.manifest.get("lineage", []), {
        "bundle": bundle.manifest.get("name"), "weights_sha256": bundle.manifest["weights_sha256"],
        "input_shape": bundle.manifest["input_shape"], "train_config": bundle.train_config,
        "weight_arrays_copied": copied}]


def epoch_logs(history: dict) -> dict:
    """fit's last-epoch logs. With the diagnosis head, `loss` is the melanoma head's own (comparable
    with val_loss and with runs without the head), not fit's weighted sum of both heads."""
    logs = {name: values[-1] for name, values in history.items()}
    if "predictions_loss" in logs:
        del logs["loss"]
        logs = {name.removeprefix("predictions_"): value for name, value in logs.items()}
    return logs


def log(message: str) -> None:
    print(message, flush=True)


def load_and_split(sources, config: TrainConfig):
    from melanoma.data_summary import count_reasons
    from melanoma.splits import load_split_dataset

    log(f"loading {', '.join(str(source.folder) for source in sources)} ...")
    started = time.time()
    total_rows = sum(len(source.metadata()) for source in sources)
    dataset, split = load_split_dataset(sources, config)
    log(f"{len(dataset.frame)} images ({dataset.labels.sum()} melanoma) of {total_rows} rows in "
        f"{time.time() - started:.0f}s; dropped {len(dataset.dropped)}: "
        f"{count_reasons(dataset.dropped) or 'nothing'}")
    for name in dataset.source_names:
        counts = {part: int((dataset.sources[rows] == name).sum()) for part, rows in split.parts().items()}
        log(f"{name}: split by lesion: train {counts['train']}, validation {counts['validation']}, "
            f"test {counts['test']} images")
    return dataset, split, total_rows


def per_source(values_of, dataset, rows: np.ndarray) -> dict:
    """{source: values_of(its rows among `rows`)} for each source, or {} with only one source."""
    names = dataset.source_names
    if len(names) < 2:
        return {}
    sources = dataset.sources[rows]
    return {name: values_of(rows[sources == name], np.flatnonzero(sources == name)) for name in names}


def selection_auc(row: dict, sources: list[str]) -> float | None:
    """What picks the best epoch: the validation AUC, or with several sources the mean of theirs, so
    that the larger source does not decide alone and a source's melanoma share does not count."""
    if len(sources) < 2:
        return row["val_auc"]
    values = [row.get(f"val_auc_{name}") for name in sources]
    return None if any(v is None for v in values) else float(np.mean(values))


@dataclass
class Run:
    """What one training run works with, prepared once: its settings and folders, the data and its
    split, the size of a balanced epoch, the network and how it is distributed."""

    config: TrainConfig
    sources: list
    run_dir: Path
    out_dir: Path
    strategy: object
    chief: bool
    dataset: object
    split: object
    total_rows: int
    per_epoch: int  # balanced training images in one epoch
    model: object = None
    augmenter: object = None
    forward: object = None
    lineage: list = field(default_factory=list)
    multiworker: MultiWorkerEpoch | None = None

    @property
    def steps_per_epoch(self) -> int:
        return self.per_epoch // self.config.batch_size

    @property
    def patient_encoding(self):
        from melanoma.model import NetworkSpec

        return NetworkSpec.from_config(self.config).patient_encoding

    @property
    def patient_vectors(self) -> np.ndarray:
        """Every photo's patient information as this run's network takes it."""
        return self.dataset.metadata(self.patient_encoding)

    @property
    def train_labels(self) -> np.ndarray:
        return self.dataset.labels[self.split.train]

    def epoch_indices(self, seed) -> np.ndarray:
        from melanoma.pipeline import balanced_epoch_indices

        return balanced_epoch_indices(self.train_labels, self.config.melanoma_per_epoch_factor,
                                      np.random.default_rng(seed), self.dataset.sources[self.split.train],
                                      self.config.melanoma_per_epoch_factor_by_source)


@dataclass
class Progress:
    """Where a run stands: the epochs finished, each epoch's row, and the best epoch so far."""

    start_epoch: int = 0
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"val_auc": -1.0, "epoch": 0})


def train(data_dirs, out_dir: str | Path, config: TrainConfig,
          run_dir: str | Path | None = None, finish_now: bool = False, write_bundle: bool = True,
          keep_epoch_weights: bool = False, look_at_test: bool = True, release: str | None = None) -> Path | None:
    """Trains (or resumes) on one data folder or several (sources) and writes the bundle to out_dir
    (on the chief; other workers of a multi-worker run return None). finish_now writes the bundle from the last checkpoint without
    training further; rerunning without it resumes the run. write_bundle=False stops after the
    last epoch, before the test split is touched (experiments compare on validation only).
    keep_epoch_weights also saves every epoch's weights in the run folder (for `averaging`).
    look_at_test=False writes a validation-only candidate bundle (see `finish`). `release` names the
    model for people (v3), in the manifest."""
    from melanoma.reader_study import write_after_training as write_reader_study

    run = prepare(data_dirs, out_dir, config, run_dir)
    progress = resume(run, finish_now)
    for epoch in range(progress.start_epoch, progress.start_epoch if finish_now else config.epochs):
        progress = fit_epoch(run, epoch, progress, keep_epoch_weights)
    bundle = finish(run, progress, look_at_test, release) if run.chief and write_bundle else None
    write_reader_study(bundle, run.sources)  # the reader-study page's photos, from the data folder(s)
    if run.multiworker:
        run.multiworker.barrier()  # workers leave together: an early exit reads as a crash to the others
    return bundle


def check_settings(config: TrainConfig) -> None:
    if (config.diagnosis_loss_weight or config.metadata) and config.distribute == "multiworker":
        raise SystemExit("error: the diagnosis head (--diagnosis-loss-weight) and --metadata do not train "
                         "under --distribute multiworker; use none or mirrored")
    if config.precise_bn_images and config.distribute != "none":
        raise SystemExit("error: --precise-bn-images recomputes batch norm on one device; use --distribute none")


def prepare(data_dirs, out_dir, config: TrainConfig, run_dir) -> Run:
    """The run folder (its settings checked against a run being resumed), the data and its split,
    and the network, built and compiled for the balanced epoch's number of steps."""
    from melanoma.inference import compiled_forward
    from melanoma.pipeline import make_augmenter
    from melanoma.sources import DatasetError

    check_settings(config)
    out_dir = Path(out_dir)
    run_dir = Path(run_dir) if run_dir else Path("runs") / out_dir.name
    sources = as_sources(data_dirs)  # built once: each metadata CSV is read once in the run
    config.sources = tuple(source.name for source in sources)
    strategy = make_strategy(config.distribute)
    chief = is_chief(strategy)
    if config.distribute == "multiworker":
        require_one_starting_point(strategy, finished_epochs(run_dir), run_dir)
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        check_resume_config(run_dir, config)
        atomic_write_json(run_dir / RUN_CONFIG, config.to_dict())
    keras_seed(config.effective_training_seed)
    dataset, split, total_rows = load_and_split(sources, config)
    unknown = set(config.melanoma_per_epoch_factor_by_source) - set(dataset.source_names)
    if unknown:
        raise DatasetError(f"--melanoma-per-epoch-factor-of names {', '.join(sorted(unknown))}, which is not "
                           f"among the sources trained on ({', '.join(dataset.source_names)})")
    run = Run(config, sources, run_dir, out_dir, strategy, chief, dataset, split, total_rows, per_epoch=0)
    run.per_epoch = len(run.epoch_indices(0))
    if run.steps_per_epoch == 0:
        raise SystemExit(f"error: {run.per_epoch} balanced training images is less than one batch of "
                         f"{config.batch_size}; use more data or a smaller --batch-size")
    if strategy.num_replicas_in_sync > 1:
        log(f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replicas, global batch "
            f"{config.batch_size} ({config.batch_size // strategy.num_replicas_in_sync} per replica)")
    with strategy.scope():
        run.model = build_and_compile(config, run.steps_per_epoch)
    run.augmenter = make_augmenter(config)
    run.forward = compiled_forward(run.model)
    run.multiworker = MultiWorkerEpoch(run.model, strategy, config) if config.distribute == "multiworker" else None
    return run


def resume(run: Run, finish_now: bool) -> Progress:
    """The lineage recorded when the run started (or the starting bundle's, now), and the last
    checkpoint's weights and progress where there is one."""
    if (run.run_dir / LINEAGE).exists():  # recorded when the run started: the bundle may have changed since
        run.lineage = json.loads((run.run_dir / LINEAGE).read_text())
    else:
        run.lineage = start_from_bundle(run.model, run.config.init_from) if run.config.init_from else []
        if run.chief:
            atomic_write_json(run.run_dir / LINEAGE, run.lineage)
    progress = Progress()
    if (run.run_dir / CHECKPOINT).exists():
        progress = Progress(*restore_checkpoint(run.run_dir, run.model))
        if run.chief:
            settle_best_weights(run.run_dir, run.model, progress.start_epoch, progress.best)
        log(f"resuming after epoch {progress.start_epoch} (best val AUC {progress.best['val_auc']:.4f} at "
            f"epoch {progress.best['epoch']})")
    if finish_now and not progress.history:
        raise SystemExit(f"error: --finish-now needs a finished epoch, and {run.run_dir} has no checkpoint")
    if finish_now and progress.start_epoch < run.config.epochs:
        log(f"finishing now: the bundle gets the best of {progress.start_epoch} of {run.config.epochs} planned epochs")
    return progress


def fit_epoch(run: Run, epoch: int, progress: Progress, keep_epoch_weights: bool) -> Progress:
    """One balanced, augmented epoch (drawn from the training seed and the epoch, so a resumed run
    draws what it would have drawn), then batch norm's statistics where asked, the validation
    figures, and the checkpoint."""
    from melanoma.batch_norm import plain_training_batches, recompute_batch_norm_statistics

    tick = time.time()
    logs = fit_one_epoch(run, epoch)
    train_seconds = time.time() - tick
    config, dataset = run.config, run.dataset
    if config.precise_bn_images:
        batches = recompute_batch_norm_statistics(run.model, plain_training_batches(
            dataset.images, run.patient_vectors if config.metadata else None, run.split.train,
            config.precise_bn_images, config.batch_size))
        log(f"batch norm statistics recomputed on {batches} batches of plain training photos")
    row = {"epoch": epoch + 1, "loss": logs["loss"], "accuracy": logs["accuracy"], "auc": logs["auc"],
           **validation_figures(run),
           "train_images_per_s": run.steps_per_epoch * config.batch_size / train_seconds,
           "epoch_seconds": time.time() - tick,
           **({"diagnosis_loss": logs["diagnosis_loss"]} if "diagnosis_loss" in logs else {})}
    progress = record_epoch(run, progress, row, keep_epoch_weights)
    log(f"epoch {epoch + 1}/{config.epochs}: loss {row['loss']:.4f} acc {row['accuracy']:.3f} "
        f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.3f} val_auc {_fmt(row['val_auc'])} "
        + "".join(f"{name} {_fmt(row[f'val_auc_{name}'])} " for name in dataset.source_names
                  if f"val_auc_{name}" in row)
        + f"({row['train_images_per_s']:.1f} img/s, {row['epoch_seconds']:.0f}s)")
    return progress


def fit_one_epoch(run: Run, epoch: int) -> dict:
    from melanoma.pipeline import make_train_dataset

    config, dataset, split = run.config, run.dataset, run.split
    seed = config.effective_training_seed
    indices = run.epoch_indices([seed, epoch])
    epoch_metadata = None if not config.metadata else hide_at_random(
        run.patient_vectors[split.train], config.metadata_hide_probability,
        np.random.default_rng([seed, epoch, METADATA_HIDING_STREAM]), run.patient_encoding)
    diagnoses = dataset.diagnoses[split.train] if config.diagnosis_loss_weight else None
    train_ds = make_train_dataset(dataset.images[split.train], run.train_labels, indices, config,
                                  run.augmenter, diagnoses, epoch_metadata)
    if run.multiworker:
        return run.multiworker.run(train_ds, run.steps_per_epoch, 1 if sys.stdout.isatty() else 2)
    fit = run.model.fit(train_ds, epochs=epoch + 1, initial_epoch=epoch, verbose=1 if sys.stdout.isatty() else 2,
                        shuffle=False)
    return epoch_logs(fit.history)


def validation_figures(run: Run) -> dict:
    """The epoch's validation loss, accuracy and AUC (pooled, per source, and of the image alone)."""
    import keras

    from melanoma.evaluate import roc_auc
    from melanoma.inference import predict_in_batches

    dataset, val = run.dataset, run.split.val
    labels = dataset.labels[val]
    probabilities = predict_in_batches(run.forward, dataset.images[val], run.patient_vectors[val])
    image_only = {"val_auc_image_only": roc_auc(labels, predict_in_batches(
        run.forward, dataset.images[val]))} if run.config.metadata else {}
    return {"val_loss": log_loss(labels, probabilities),
            "val_accuracy": float(((probabilities >= 0.5) == labels).mean()),
            "val_auc": roc_auc(labels, probabilities),
            **{f"val_auc_{name}": auc for name, auc in per_source(
                lambda _, own: roc_auc(labels[own], probabilities[own]), dataset, val).items()},
            **image_only,
            "learning_rate": float(keras.ops.convert_to_numpy(run.model.optimizer.learning_rate))}


def record_epoch(run: Run, progress: Progress, row: dict, keep_epoch_weights: bool) -> Progress:
    """The epoch's row added, the best epoch moved where it improved, and (on the chief) the best
    weights, the epoch's own weights where kept, the checkpoint and the history written."""
    from melanoma.bundle import weights_to_npz

    history = [*progress.history, row]
    chosen_on = selection_auc(row, run.dataset.source_names)
    improved = chosen_on is not None and chosen_on > progress.best["val_auc"]
    # with several sources, best["val_auc"] is the mean of theirs (selection_auc)
    best = {"val_auc": chosen_on, "epoch": row["epoch"]} if improved else progress.best
    if run.chief:
        if keep_epoch_weights:  # a run stopped before its checkpoint redoes the epoch and rewrites these
            epoch_weights = epoch_weights_path(run.run_dir, row["epoch"])
            epoch_weights.parent.mkdir(exist_ok=True)
            atomic_write_bytes(epoch_weights, weights_to_npz(run.model))
        save_checkpoint(run.run_dir, run.model, row["epoch"], history, best)
        atomic_write_text(run.run_dir / RUN_HISTORY, pd.DataFrame(history).to_csv(index=False))
        if improved:  # after the checkpoint that records it: see settle_best_weights
            write_best_weights(run.run_dir, run.model)
    return Progress(row["epoch"], history, best)


# The bundle's test_split.csv: these columns of each test photo, then its probabilities.
TEST_SPLIT_COLUMNS = ("source", "image_id", "lesion_id", "dx", "label")


def operating_mode(forward, dataset, split, metadata, target_sensitivity: float,
                   parts: tuple[str, ...] = ("train", "validation", "test")) -> dict:
    """One way the bundle is used (with patient metadata, or the image alone): a calibration fitted
    on validation, the threshold chosen on validation's calibrated probabilities, and the scores and
    probabilities of each split in `parts`. Test is only reported, never used to choose."""
    from melanoma.calibration import calibrate, fit_platt
    from melanoma.evaluate import choose_threshold
    from melanoma.inference import predict_in_batches

    rows_of = {"train": split.train, "validation": split.val, "test": split.test}
    scores = {part: predict_in_batches(forward, dataset.images[rows_of[part]],
                                       None if metadata is None else metadata[rows_of[part]])
              for part in dict.fromkeys(("validation", *parts))}
    calibration = fit_platt(dataset.labels[split.val], scores["validation"])
    probabilities = {part: calibrate(calibration, values) for part, values in scores.items()}
    threshold = choose_threshold(dataset.labels[split.val], probabilities["validation"], target_sensitivity)
    return {"calibration": calibration, "threshold": threshold, "scores": scores, "probabilities": probabilities}


def finish(run: Run, progress: Progress, look_at_test: bool = True, release: str | None = None) -> Path:
    """Best-validation-AUC weights, threshold from validation, test metrics once, the extras
    (melanoma/extras.py), the bundle. look_at_test=False writes a validation-only candidate instead
    (calibrations, thresholds and validation metrics; no test metrics, no extras), for the lab's
    `compare` and `robustness` to decide on before the test split is touched; the app refuses it."""
    from melanoma.bundle import assign_weights_from_npz, load_bundle, write_bundle

    if (run.run_dir / BEST_WEIGHTS).exists():
        assign_weights_from_npz(run.model, run.run_dir / BEST_WEIGHTS)
    parts = ("train", "validation", "test") if look_at_test else ("validation",)
    metadata = run.patient_vectors if run.config.metadata else None
    mode = operating_mode(run.forward, run.dataset, run.split, metadata, run.config.target_sensitivity, parts)
    alone = operating_mode(run.forward, run.dataset, run.split, None, run.config.target_sensitivity,
                           parts) if run.config.metadata else None  # photos without patient information
    metrics = validation_metrics(run, progress, mode, alone)
    if look_at_test:
        look = look_at_test_split(run, mode, alone)
        metrics = merged(metrics, look.metrics)
        extra_files, test_split_csv = look.extra_files, look.test_split_csv
    else:  # the manifest marks the candidate (write_bundle's validation_only); its test split has no rows
        extra_files, test_split_csv = {}, pd.DataFrame(columns=[*TEST_SPLIT_COLUMNS, "probability"]).to_csv(index=False)
    path = write_bundle(run.out_dir, run.model, metrics=metrics,
                        history_csv=pd.DataFrame(progress.history).to_csv(index=False),
                        dataset_summary=dataset_summary(run), test_split_csv=test_split_csv,
                        train_config=run.config.to_dict(), calibration=mode["calibration"],
                        image_only=alone and {"threshold": alone["threshold"], "calibration": alone["calibration"]},
                        lineage=list(run.lineage), extra_files=extra_files, validation_only=not look_at_test,
                        release=release)
    load_bundle(path)  # verifies what was written
    log_finished(metrics, path, look_at_test)
    return path


def validation_metrics(run: Run, progress: Progress, mode: dict, alone: dict | None) -> dict:
    """metrics.json's part that validation alone decides: the threshold, the best epoch, the
    validation figures (pooled, per source, and of the image-only mode), the calibration."""
    from melanoma.evaluate import metrics_at

    labels, val, threshold = run.dataset.labels, run.split.val, mode["threshold"]
    names = run.dataset.source_names
    metrics = {
        "threshold": threshold,
        "threshold_rule": f"highest threshold with validation sensitivity >= {run.config.target_sensitivity}",
        "best_epoch": progress.best["epoch"],
        "epochs_run": len(progress.history),
        "epochs_planned": run.config.epochs,
        "metadata_used": bool(run.config.metadata),
        "validation": metrics_at(labels[val], mode["probabilities"]["validation"], threshold),
        "best_epoch_chosen_on": "validation AUC" if len(names) < 2 else
        f"mean of the sources' validation AUCs ({', '.join(names)})",
        "last_epoch": progress.history[-1] if progress.history else {},
        "calibration": mode["calibration"] or {"method": "none"},
    }
    by_source = per_source(lambda rows, own: metrics_at(labels[rows], mode["probabilities"]["validation"][own],
                                                        threshold), run.dataset, val)
    if by_source:  # one threshold for all, chosen on the pooled validation split; each source's rates at it
        metrics["validation_by_source"] = by_source
    if alone:
        metrics["image_only"] = {
            "threshold": alone["threshold"],
            "validation": metrics_at(labels[val], alone["probabilities"]["validation"], alone["threshold"])}
    return metrics


def merged(base: dict, added: dict) -> dict:
    """`base` with `added`'s keys; where both hold a dict, the two merged (one level down)."""
    return {**base, **{key: {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict)
                       else value for key, value in added.items()}}


def dataset_summary(run: Run) -> dict:
    from melanoma.data_summary import summarize

    labels = run.train_labels
    return summarize(run.dataset, run.split, total_rows=run.total_rows, epoch_counts={
        "melanoma": run.per_epoch // 2, "not melanoma": run.per_epoch // 2,
        "melanoma_available": int(labels.sum()), "not_melanoma_available": int((labels == 0).sum())})


def log_finished(metrics: dict, path: Path, looked_at_test: bool) -> None:
    threshold = metrics["threshold"]
    log(f"validation: AUC {_fmt(metrics['validation']['roc_auc'])} at threshold {threshold:.4f}")
    if looked_at_test:
        log(f"test: AUC {_fmt(metrics['test']['roc_auc'])} sensitivity {_fmt(metrics['test']['sensitivity'])} "
            f"specificity {_fmt(metrics['test']['specificity'])} at threshold {threshold:.4f}; "
            f"Brier score {_fmt(metrics['calibration']['test_before']['brier'])} -> "
            f"{_fmt(metrics['calibration']['test_after']['brier'])} calibrated; "
            f"float16 round-trip AUC {_fmt(metrics['float16_roundtrip']['test_roc_auc'])}")
    log(f"{'bundle' if looked_at_test else 'validation-only candidate'} written to {path}")


@dataclass(frozen=True)
class TestLook:
    """What the one look at the test split adds: metrics (merged into metrics.json one level down),
    the extras' files, and the test split's rows with their probabilities."""

    metrics: dict
    extra_files: dict
    test_split_csv: str


def look_at_test_split(run: Run, mode: dict, alone: dict | None) -> TestLook:
    """The one look at the test split: its metrics, the float16 round trip, and the extras fitted
    on the network as shipped."""
    from melanoma.calibration import reliability
    from melanoma.evaluate import lesion_bootstrap_intervals, metrics_at, roc_points

    dataset, split, threshold = run.dataset, run.split, mode["threshold"]
    labels, test_labels = dataset.labels, dataset.labels[split.test]
    test_scores, test_probs = mode["scores"]["test"], mode["probabilities"]["test"]
    lesions = dataset.frame["lesion_id"].to_numpy()
    metrics = {
        "test": metrics_at(test_labels, test_probs, threshold),
        "train_natural_ratio": metrics_at(labels[split.train], mode["probabilities"]["train"], threshold),
        "test_roc": roc_points(test_labels, test_probs),
        # The method's figure: the network's own output at 0.5, before calibration.
        "test_accuracy_at_0.5": float(((test_scores >= 0.5) == test_labels).mean()),
        "calibration": {"test_before": reliability(test_labels, test_scores),
                        "test_after": reliability(test_labels, test_probs)},
    }
    by_source = per_source(lambda rows, own: {
        **metrics_at(labels[rows], test_probs[own], threshold),
        "intervals": lesion_bootstrap_intervals(labels[rows], test_probs[own], lesions[rows], threshold),
        "roc": roc_points(labels[rows], test_probs[own])}, dataset, split.test)
    if by_source:
        metrics["test_by_source"] = by_source
    if alone:
        metrics["image_only"] = {
            "test": metrics_at(test_labels, alone["probabilities"]["test"], alone["threshold"]),
            "test_roc": roc_points(test_labels, alone["probabilities"]["test"])}
    half, metrics["float16_roundtrip"] = float16_round_trip(run, test_scores)
    test_split = dataset.frame.iloc[split.test][list(TEST_SPLIT_COLUMNS)].assign(probability=np.round(test_probs, 5))
    if alone:
        test_split["probability_image_only"] = np.round(alone["probabilities"]["test"], 5)
    # The refusal, differential and similar cases, fitted on the network as shipped (float16 kernels).
    from melanoma.extras import fit_for_bundle
    from melanoma.images import ImageSpec

    return TestLook(metrics, fit_for_bundle(half, dataset, split, ImageSpec.from_config(run.config)),
                    test_split.to_csv(index=False))


def float16_round_trip(run: Run, test_scores: np.ndarray):
    """The network as shipped (float16 kernels) and what the round trip does to the test AUC."""
    from melanoma.bundle import assign_weights_from_npz, weights_to_npz
    from melanoma.evaluate import roc_auc
    from melanoma.inference import compiled_forward, predict_in_batches
    from melanoma.model import NetworkSpec, build_network

    half = build_network(NetworkSpec.from_config(run.config))
    assign_weights_from_npz(half, io.BytesIO(weights_to_npz(run.model)))
    test = run.split.test
    metadata = run.patient_vectors[test] if run.config.metadata else None
    half_probs = predict_in_batches(compiled_forward(half), run.dataset.images[test], metadata)
    return half, {
        "test_roc_auc": roc_auc(run.dataset.labels[test], half_probs),
        "max_probability_change": float(np.abs(half_probs - test_scores).max()) if len(test_scores) else 0.0,
    }


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def keras_seed(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
