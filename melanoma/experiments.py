"""`python -m melanoma experiments`: which settings help, measured on validation AUC.

Short runs: every variant trains from scratch on the same subset of the training split for the
same few epochs, and is scored each epoch on the whole validation split (the test split is never
looked at). A finished variant is not rerun, so an interrupted sweep resumes. Post-hoc checks on
the shipped bundle (test-time flip averaging) are scored on the same validation split.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from melanoma.config import TrainConfig
from melanoma.fileio import atomic_write_text

# Each variant changes the shipped settings (TrainConfig's defaults) in one respect.
VARIANTS = {
    "shipped settings": {},
    "flips only (no rotation, zoom, colour)": {"rotation": 0.0, "zoom": 0.0, "color_jitter": 0.0},
    "no melanoma repeats (balancing factor 1)": {"melanoma_per_epoch_factor": 1.0},
    "no label smoothing": {"label_smoothing": 0.0},
    "no weight decay": {"weight_decay": 0.0},
    "learning rate 3e-4": {"learning_rate": 3e-4},
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def auc_standard_error(auc: float, n_positive: int, n_negative: int) -> float:
    """Hanley & McNeil (1982): how far an AUC on this many images moves by chance alone."""
    q1, q2 = auc / (2 - auc), 2 * auc ** 2 / (1 + auc)
    variance = (auc * (1 - auc) + (n_positive - 1) * (q1 - auc ** 2)
                + (n_negative - 1) * (q2 - auc ** 2)) / (n_positive * n_negative)
    return float(np.sqrt(variance))


def run_variant(data_dir, run_dir: Path, config: TrainConfig) -> pd.DataFrame:
    from melanoma.train import RUN_HISTORY, train

    history = run_dir / RUN_HISTORY
    if not (history.exists() and len(pd.read_csv(history)) >= config.epochs):
        train(data_dir, run_dir / "bundle", config, run_dir=run_dir, write_bundle=False)
        import keras

        keras.backend.clear_session()  # the next variant builds its own network
    return pd.read_csv(history)


def validation_counts(data_dir, config: TrainConfig) -> tuple[int, int]:
    """(melanoma, not) in the validation split, from the metadata (for the chance-level SE)."""
    from melanoma.data import cleanse, make_split, read_metadata, stratified_subset

    frame, _ = cleanse(read_metadata(data_dir))
    if config.max_images:
        frame = stratified_subset(frame, config.max_images, config.seed)
    labels = frame["label"].to_numpy()[make_split(frame, config).val]
    return int(labels.sum()), int((labels == 0).sum())


def run_experiments(data_dir, run_root: Path, out_stem: Path, epochs: int, train_subset: int,
                    names: list[str] | None = None, base: TrainConfig | None = None) -> pd.DataFrame:
    """Runs the variants (all by default) on top of `base` (default: the shipped settings)."""
    base = base or TrainConfig()
    val_counts = validation_counts(data_dir, base)
    rows = []
    for name in names or list(VARIANTS):
        changes = VARIANTS[name]
        config = replace(base, epochs=epochs, train_subset=train_subset, **changes)
        history = run_variant(data_dir, run_root / slug(name), config)
        best = history.loc[history["val_auc"].idxmax()]
        rows.append({
            "variant": name,
            "changes": ", ".join(f"{k}={v}" for k, v in changes.items()) or "-",
            "best_val_auc": round(float(best["val_auc"]), 4),
            "best_epoch": int(best["epoch"]),
            "last_val_auc": round(float(history["val_auc"].iloc[-1]), 4),
            "train_minutes": round(float(history["epoch_seconds"].sum()) / 60, 1),
        })
        write_results(pd.DataFrame(rows), out_stem, epochs, train_subset, val_counts)
    return pd.DataFrame(rows)


def write_results(results: pd.DataFrame, out_stem: Path, epochs: int, train_subset: int,
                  val_counts: tuple[int, int]) -> None:
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_stem.with_suffix(".csv"), results.to_csv(index=False))
    baseline = results["best_val_auc"].iloc[0]
    se = auc_standard_error(baseline, *val_counts)
    lines = [
        f"Short runs: {epochs} epochs on {train_subset} images of the training split, each from "
        f"scratch with its own warm-up and cosine schedule; scored on the whole validation split "
        f"({val_counts[0]} melanoma, {val_counts[1]} not).",
        f"Chance alone moves a validation AUC near {baseline:.2f} by about ±{se:.3f} (1 SE, Hanley & "
        f"McNeil); differences smaller than about {2 * se:.2f} are not evidence.",
        "",
        "| variant | changed settings | best val AUC (epoch) | last-epoch val AUC | train minutes |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.variant} | {r.changes} | {r.best_val_auc:.4f} ({r.best_epoch}) | {r.last_val_auc:.4f} | "
              f"{r.train_minutes} |" for r in results.itertuples()]
    atomic_write_text(out_stem.with_suffix(".md"), "\n".join(lines) + "\n")


def flip_views(images: np.ndarray) -> list[np.ndarray]:
    return [images, images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]]


def flip_averaging(model_dir, data_dir) -> dict:
    """Validation AUC of the bundle on single images vs averaged over the 4 flips."""
    from melanoma.data import load_dataset, make_split
    from melanoma.evaluate import roc_auc
    from melanoma.inference import Predictor

    predictor = Predictor.from_bundle(model_dir)
    config = TrainConfig.from_dict(predictor.bundle.train_config)
    dataset = load_dataset(data_dir, config.max_images, config.seed)
    val = make_split(dataset.frame, config).val
    views = [predictor.probabilities(np.ascontiguousarray(v)) for v in flip_views(dataset.images[val])]
    labels = dataset.labels[val]
    return {"single_view_val_auc": roc_auc(labels, views[0]),
            "flip_average_val_auc": roc_auc(labels, np.mean(views, axis=0))}
