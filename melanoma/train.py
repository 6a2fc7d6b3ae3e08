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


def load_and_split(data_dirs, config: TrainConfig):
    from melanoma import data as data_mod

    sources = as_sources(data_dirs)
    log(f"loading {', '.join(str(source.folder) for source in sources)} ...")
    started = time.time()
    total_rows = sum(len(source.metadata()) for source in sources)
    dataset, split = data_mod.load_split_dataset(sources, config)
    log(f"{len(dataset.frame)} images ({dataset.labels.sum()} melanoma) of {total_rows} rows in "
        f"{time.time() - started:.0f}s; dropped {len(dataset.dropped)}: "
        f"{data_mod.count_reasons(dataset.dropped) or 'nothing'}")
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
    import keras

    from melanoma import data as data_mod
    from melanoma.batch_norm import plain_training_batches, recompute_batch_norm_statistics
    from melanoma.bundle import weights_to_npz
    from melanoma.evaluate import roc_auc
    from melanoma.inference import compiled_forward, predict_in_batches
    from melanoma.reader_study import write_after_training as write_reader_study

    if (config.diagnosis_loss_weight or config.metadata) and config.distribute == "multiworker":
        raise SystemExit("error: the diagnosis head (--diagnosis-loss-weight) and --metadata do not train "
                         "under --distribute multiworker; use none or mirrored")
    if config.precise_bn_images and config.distribute != "none":
        raise SystemExit("error: --precise-bn-images recomputes batch norm on one device; use --distribute none")
    out_dir = Path(out_dir)
    run_dir = Path(run_dir) if run_dir else Path("runs") / out_dir.name
    data_dirs = as_sources(data_dirs)  # built once: each metadata CSV is read once in the run
    config.sources = tuple(source.name for source in data_dirs)
    strategy = make_strategy(config.distribute)
    chief = is_chief(strategy)
    if config.distribute == "multiworker":
        require_one_starting_point(strategy, finished_epochs(run_dir), run_dir)
    if chief:
        run_dir.mkdir(parents=True, exist_ok=True)
        check_resume_config(run_dir, config)
        atomic_write_json(run_dir / RUN_CONFIG, config.to_dict())
    keras_seed(config.effective_training_seed)
    dataset, split, total_rows = load_and_split(data_dirs, config)
    labels = dataset.labels
    train_labels, val_labels = labels[split.train], labels[split.val]
    train_sources = dataset.sources[split.train]
    unknown = set(config.melanoma_per_epoch_factor_by_source) - set(train_sources)
    if unknown:
        raise data_mod.DatasetError(f"--melanoma-per-epoch-factor-of names {', '.join(sorted(unknown))}, which is "
                                    f"not among the sources trained on ({', '.join(dict.fromkeys(train_sources))})")
    per_epoch = len(data_mod.balanced_epoch_indices(train_labels, config.melanoma_per_epoch_factor,
                                                    np.random.default_rng(0), train_sources,
                                                    config.melanoma_per_epoch_factor_by_source))
    steps_per_epoch = per_epoch // config.batch_size
    if steps_per_epoch == 0:
        raise SystemExit(f"error: {per_epoch} balanced training images is less than one batch of "
                         f"{config.batch_size}; use more data or a smaller --batch-size")
    if strategy.num_replicas_in_sync > 1:
        log(f"{type(strategy).__name__}: {strategy.num_replicas_in_sync} replicas, global batch "
            f"{config.batch_size} ({config.batch_size // strategy.num_replicas_in_sync} per replica)")

    with strategy.scope():
        model = build_and_compile(config, steps_per_epoch)
    augmenter = data_mod.make_augmenter(config)
    diagnoses = dataset.diagnoses[split.train] if config.diagnosis_loss_weight else None
    train_metadata = dataset.metadata[split.train] if config.metadata else None
    val_metadata = dataset.metadata[split.val]
    forward = compiled_forward(model)
    multiworker = MultiWorkerEpoch(model, strategy, config) if config.distribute == "multiworker" else None

    start_epoch, history, best = 0, [], {"val_auc": -1.0, "epoch": 0}
    best_weights_path = run_dir / BEST_WEIGHTS
    if (run_dir / LINEAGE).exists():  # recorded when the run started: the bundle may have changed since
        lineage = json.loads((run_dir / LINEAGE).read_text())
    else:
        lineage = start_from_bundle(model, config.init_from) if config.init_from else []
        if chief:
            atomic_write_json(run_dir / LINEAGE, lineage)
    if (run_dir / CHECKPOINT).exists():
        start_epoch, history, best = restore_checkpoint(run_dir, model)
        log(f"resuming after epoch {start_epoch} (best val AUC {best['val_auc']:.4f} at epoch {best['epoch']})")

    verbose = 1 if sys.stdout.isatty() else 2
    if finish_now and not history:
        raise SystemExit(f"error: --finish-now needs a finished epoch, and {run_dir} has no checkpoint")
    last_epoch = start_epoch if finish_now else config.epochs
    if finish_now and start_epoch < config.epochs:
        log(f"finishing now: the bundle gets the best of {start_epoch} of {config.epochs} planned epochs")
    for epoch in range(start_epoch, last_epoch):
        indices = data_mod.balanced_epoch_indices(train_labels, config.melanoma_per_epoch_factor,
                                                  np.random.default_rng([config.effective_training_seed, epoch]),
                                                  train_sources, config.melanoma_per_epoch_factor_by_source)
        epoch_metadata = None if train_metadata is None else hide_at_random(
            train_metadata, config.metadata_hide_probability,
            np.random.default_rng([config.effective_training_seed, epoch, METADATA_HIDING_STREAM]))
        train_ds = data_mod.make_train_dataset(dataset.images[split.train], train_labels, indices,
                                               config, augmenter, diagnoses, epoch_metadata)
        tick = time.time()
        if multiworker:
            logs = multiworker.run(train_ds, steps_per_epoch, verbose)
        else:
            fit = model.fit(train_ds, epochs=epoch + 1, initial_epoch=epoch, verbose=verbose, shuffle=False)
            logs = epoch_logs(fit.history)
        train_seconds = time.time() - tick
        if config.precise_bn_images:
            batches = recompute_batch_norm_statistics(model, plain_training_batches(
                dataset.images, dataset.metadata if config.metadata else None, split.train,
                config.precise_bn_images, config.batch_size))
            log(f"batch norm statistics recomputed on {batches} batches of plain training photos")
        val_probs = predict_in_batches(forward, dataset.images[split.val], val_metadata)
        image_only_auc = {"val_auc_image_only": roc_auc(val_labels, predict_in_batches(
            forward, dataset.images[split.val]))} if config.metadata else {}
        row = {
            "epoch": epoch + 1,
            "loss": logs["loss"],
            "accuracy": logs["accuracy"],
            "auc": logs["auc"],
            "val_loss": log_loss(val_labels, val_probs),
            "val_accuracy": float(((val_probs >= 0.5) == val_labels).mean()),
            "val_auc": roc_auc(val_labels, val_probs),
            **{f"val_auc_{name}": auc for name, auc in per_source(
                lambda _, own, probs=val_probs: roc_auc(val_labels[own], probs[own]), dataset, split.val).items()},
            **image_only_auc,
            "learning_rate": float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)),
            "train_images_per_s": steps_per_epoch * config.batch_size / train_seconds,
            "epoch_seconds": time.time() - tick,
            **({"diagnosis_loss": logs["diagnosis_loss"]} if "diagnosis_loss" in logs else {}),
        }
        history.append(row)
        chosen_on = selection_auc(row, dataset.source_names)
        improved = chosen_on is not None and chosen_on > best["val_auc"]
        if improved:  # with several sources, best["val_auc"] is the mean of theirs (selection_auc)
            best = {"val_auc": chosen_on, "epoch": epoch + 1}
        if chief:
            if improved:
                atomic_write_bytes(best_weights_path, weights_to_npz(model, half_precision=False))
            if keep_epoch_weights:
                epoch_weights = epoch_weights_path(run_dir, epoch + 1)
                epoch_weights.parent.mkdir(exist_ok=True)
                atomic_write_bytes(epoch_weights, weights_to_npz(model))
            save_checkpoint(run_dir, model, epoch + 1, history, best)
            atomic_write_text(run_dir / RUN_HISTORY, pd.DataFrame(history).to_csv(index=False))
        log(f"epoch {epoch + 1}/{config.epochs}: loss {row['loss']:.4f} acc {row['accuracy']:.3f} "
            f"val_loss {row['val_loss']:.4f} val_acc {row['val_accuracy']:.3f} val_auc {_fmt(row['val_auc'])} "
            + "".join(f"{name} {_fmt(row[f'val_auc_{name}'])} " for name in dataset.source_names
                      if f"val_auc_{name}" in row)
            + f"({row['train_images_per_s']:.1f} img/s, {row['epoch_seconds']:.0f}s)")

    bundle = finish(out_dir, run_dir, model, forward, dataset, split, history, best, config, total_rows,
                    per_epoch, lineage, look_at_test, release) if chief and write_bundle else None
    write_reader_study(bundle, data_dirs)  # the Test yourself page's photos, from the data folder(s)
    if multiworker:
        multiworker.barrier()  # workers leave together: an early exit reads as a crash to the others
    return bundle


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


def finish(out_dir, run_dir, model, forward, dataset, split, history, best, config, total_rows, per_epoch,
           lineage=(), look_at_test: bool = True, release: str | None = None):
    """Best-validation-AUC weights, threshold from validation, test metrics once, the extras
    (melanoma/extras.py), the bundle. look_at_test=False writes a validation-only candidate instead
    (calibrations, thresholds and validation metrics; no test metrics, no extras), for the lab's
    `compare` and `robustness` to decide on before the test split is touched; the app refuses it."""
    from melanoma import data as data_mod
    from melanoma.bundle import assign_weights_from_npz, load_bundle, write_bundle
    from melanoma.evaluate import metrics_at

    labels = dataset.labels
    if (run_dir / BEST_WEIGHTS).exists():
        assign_weights_from_npz(model, run_dir / BEST_WEIGHTS)
    metadata = dataset.metadata if config.metadata else None
    parts = ("train", "validation", "test") if look_at_test else ("validation",)
    mode = operating_mode(forward, dataset, split, metadata, config.target_sensitivity, parts)
    calibration, threshold = mode["calibration"], mode["threshold"]
    metrics = {
        "threshold": threshold,
        "threshold_rule": f"highest threshold with validation sensitivity >= {config.target_sensitivity}",
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "epochs_planned": config.epochs,
        "metadata_used": bool(config.metadata),
        "validation": metrics_at(labels[split.val], mode["probabilities"]["validation"], threshold),
        "best_epoch_chosen_on": "validation AUC" if len(dataset.source_names) < 2 else
        f"mean of the sources' validation AUCs ({', '.join(dataset.source_names)})",
        "last_epoch": history[-1] if history else {},
        "calibration": calibration or {"method": "none"},
    }
    by_source = per_source(lambda rows, own: metrics_at(labels[rows], mode["probabilities"]["validation"][own],
                                                        threshold), dataset, split.val)
    if by_source:  # one threshold for all, chosen on the pooled validation split; each source's rates at it
        metrics["validation_by_source"] = by_source
    alone = None
    if config.metadata:  # the second operating mode: photos without patient information
        alone = operating_mode(forward, dataset, split, None, config.target_sensitivity, parts)
        metrics["image_only"] = {
            "threshold": alone["threshold"],
            "validation": metrics_at(labels[split.val], alone["probabilities"]["validation"], alone["threshold"])}
    if look_at_test:
        extra_files, test_split_csv = look_at_test_split(model, dataset, split, config, mode, alone, metrics)
    else:  # the manifest marks the candidate (write_bundle's validation_only); its test split has no rows
        extra_files, test_split_csv = {}, pd.DataFrame(columns=[*TEST_SPLIT_COLUMNS, "probability"]).to_csv(index=False)
    summary = data_mod.summarize(dataset, split, total_rows=total_rows, epoch_counts={
        "melanoma": per_epoch // 2, "not melanoma": per_epoch // 2,
        "melanoma_available": int(labels[split.train].sum()),
        "not_melanoma_available": int((labels[split.train] == 0).sum())})
    image_only = alone and {"threshold": alone["threshold"], "calibration": alone["calibration"]}
    path = write_bundle(out_dir, model, metrics=metrics, history_csv=pd.DataFrame(history).to_csv(index=False),
                        dataset_summary=summary, test_split_csv=test_split_csv,
                        train_config=config.to_dict(), calibration=calibration, image_only=image_only,
                        lineage=list(lineage), extra_files=extra_files, validation_only=not look_at_test,
                        release=release)
    load_bundle(path)  # verifies what was written
    log(f"validation: AUC {_fmt(metrics['validation']['roc_auc'])} at threshold {threshold:.4f}")
    if look_at_test:
        log(f"test: AUC {_fmt(metrics['test']['roc_auc'])} sensitivity {_fmt(metrics['test']['sensitivity'])} "
            f"specificity {_fmt(metrics['test']['specificity'])} at threshold {threshold:.4f}; "
            f"Brier score {_fmt(metrics['calibration']['test_before']['brier'])} -> "
            f"{_fmt(metrics['calibration']['test_after']['brier'])} calibrated; "
            f"float16 round-trip AUC {_fmt(metrics['float16_roundtrip']['test_roc_auc'])}")
    log(f"{'validation-only candidate' if not look_at_test else 'bundle'} written to {path}")
    return path


def look_at_test_split(model, dataset, split, config, mode, alone, metrics) -> tuple[dict, str]:
    """The one look at the test split: its metrics (added to `metrics`), the float16 round trip, and
    the extras fitted on the network as shipped. Returns the extras' files and the test split CSV."""
    from melanoma.bundle import assign_weights_from_npz, weights_to_npz
    from melanoma.calibration import reliability
    from melanoma.evaluate import lesion_bootstrap_intervals, metrics_at, roc_auc, roc_points
    from melanoma.extras import fit_for_bundle
    from melanoma.inference import compiled_forward, predict_in_batches
    from melanoma.model import NetworkSpec, build_network

    labels, threshold = dataset.labels, metrics["threshold"]
    test_labels = labels[split.test]
    test_scores, test_probs = mode["scores"]["test"], mode["probabilities"]["test"]
    metrics.update({
        "test": metrics_at(test_labels, test_probs, threshold),
        "train_natural_ratio": metrics_at(labels[split.train], mode["probabilities"]["train"], threshold),
        "test_roc": roc_points(test_labels, test_probs),
        # The method's figure: the network's own output at 0.5, before calibration.
        "test_accuracy_at_0.5": float(((test_scores >= 0.5) == test_labels).mean()),
    })
    lesions = dataset.frame["lesion_id"].to_numpy()
    by_source = per_source(lambda rows, own: {
        **metrics_at(labels[rows], test_probs[own], threshold),
        "intervals": lesion_bootstrap_intervals(labels[rows], test_probs[own], lesions[rows], threshold),
        "roc": roc_points(labels[rows], test_probs[own])}, dataset, split.test)
    if by_source:
        metrics["test_by_source"] = by_source
    metrics["calibration"] = {**metrics["calibration"], "test_before": reliability(test_labels, test_scores),
                              "test_after": reliability(test_labels, test_probs)}
    if alone:
        metrics["image_only"].update({
            "test": metrics_at(test_labels, alone["probabilities"]["test"], alone["threshold"]),
            "test_roc": roc_points(test_labels, alone["probabilities"]["test"])})
    # The shipped kernels are float16: measure what the round trip does to the test AUC.
    half = build_network(NetworkSpec.from_config(config))
    assign_weights_from_npz(half, io.BytesIO(weights_to_npz(model)))
    metadata = dataset.metadata if config.metadata else None
    half_probs = predict_in_batches(compiled_forward(half), dataset.images[split.test],
                                    None if metadata is None else metadata[split.test])
    metrics["float16_roundtrip"] = {
        "test_roc_auc": roc_auc(test_labels, half_probs),
        "max_probability_change": float(np.abs(half_probs - test_scores).max()) if len(test_scores) else 0.0,
    }
    # The refusal, differential and similar cases, fitted on the network as shipped (float16 kernels).
    extra_files = fit_for_bundle(half, dataset, split)
    test_split = dataset.frame.iloc[split.test][list(TEST_SPLIT_COLUMNS)].assign(
        probability=np.round(test_probs, 5))
    if alone:
        test_split["probability_image_only"] = np.round(alone["probabilities"]["test"], 5)
    return extra_files, test_split.to_csv(index=False)


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def keras_seed(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
