"""`python -m melanoma experiments`: which settings help, measured on validation AUC.

Short runs: every variant trains from scratch on the same subset of the training split for the
same few epochs, and is scored each epoch on the whole validation split (the test split is never
looked at). A finished variant is not rerun, so an interrupted sweep resumes. Post-hoc checks on
the shipped bundle (test-time flip averaging) are scored on the same validation split.

Full-length runs (`--full-length`, for a machine with an accelerator): every variant trains on
the whole training split for all its epochs, each in its own `python -m melanoma train` process,
all at once. Optionally the best of them by validation AUC is then finished into a bundle, which
is the only time the test split is looked at.
"""
from __future__ import annotations

import subprocess
import sys
import time
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

# Full-length variants: the short-run ones that can be told apart only at full length, the two
# levers the shipped run left open (more not-melanoma images per epoch, more epochs), and an
# auxiliary head that learns the 7 diagnoses during training.
FULL_LENGTH_VARIANTS = {
    "shipped settings": {},
    "balancing factor 4": {"melanoma_per_epoch_factor": 4.0},
    "60 epochs": {"epochs": 60},
    "balancing factor 4, 60 epochs": {"melanoma_per_epoch_factor": 4.0, "epochs": 60},
    "flips only (no rotation, zoom, colour)": VARIANTS["flips only (no rotation, zoom, colour)"],
    "no label smoothing": VARIANTS["no label smoothing"],
    "no weight decay": VARIANTS["no weight decay"],
    "diagnosis head": {"diagnosis_loss_weight": 0.5},
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
    from melanoma.run_folder import RUN_HISTORY
    from melanoma.train import train

    history = run_dir / RUN_HISTORY
    if not (history.exists() and len(pd.read_csv(history)) >= config.epochs):
        train(data_dir, run_dir / "bundle", config, run_dir=run_dir, write_bundle=False)
        import keras

        keras.backend.clear_session()  # the next variant builds its own network
    return pd.read_csv(history)


def validation_counts(data_dir, config: TrainConfig) -> tuple[int, int]:
    """(melanoma, not) in the validation split, from the metadata (for the chance-level SE)."""
    from melanoma.splits import split_metadata

    frame, split = split_metadata(data_dir, config)
    labels = frame["label"].to_numpy()[split.val]
    return int(labels.sum()), int((labels == 0).sum())


def result_row(name: str, changes: dict, history: pd.DataFrame, epochs_planned: int) -> dict:
    best = history.loc[history["val_auc"].idxmax()]
    return {
        "variant": name,
        "changes": ", ".join(f"{k}={v}" for k, v in changes.items()) or "-",
        "best_val_auc": round(float(best["val_auc"]), 4),
        "best_epoch": int(best["epoch"]),
        "last_val_auc": round(float(history["val_auc"].iloc[-1]), 4),
        "epochs_run": f"{len(history)}/{epochs_planned}",
        "train_minutes": round(float(history["epoch_seconds"].sum()) / 60, 1),
    }


def run_experiments(data_dir, run_root: Path, out_stem: Path, epochs: int, train_subset: int,
                    names: list[str] | None = None, base: TrainConfig | None = None) -> pd.DataFrame:
    """Runs the variants (all by default) on top of `base` (default: the shipped settings)."""
    base = base or TrainConfig()
    val_counts = validation_counts(data_dir, base)
    description = (f"Short runs: {epochs} epochs on {train_subset} images of the training split, each "
                   f"from scratch with its own warm-up and cosine schedule")
    rows = []
    for name in names or list(VARIANTS):
        changes = VARIANTS[name]
        config = replace(base, epochs=epochs, train_subset=train_subset, **changes)
        history = run_variant(data_dir, run_root / slug(name), config)
        rows.append(result_row(name, changes, history, config.epochs))
        write_results(pd.DataFrame(rows), out_stem, description, val_counts)
    return pd.DataFrame(rows)


def train_command(data_dir, run_dir: Path, config: TrainConfig, finish_into: Path | None = None,
                  keep_epoch_weights: bool = False) -> list[str]:
    """`python -m melanoma train` for `config`; without finish_into it stops before the test split."""
    defaults = TrainConfig()
    changed = {name: value for name, value in config.to_dict().items()
               if value != getattr(defaults, name) and value is not None}
    by_source = changed.pop("melanoma_per_epoch_factor_by_source", {})
    flags = ["--no-xla" if name == "jit_compile" else f"--{name.replace('_', '-')}={value}"
             for name, value in changed.items()]
    flags += [f"--melanoma-per-epoch-factor-of={source}={factor}" for source, factor in by_source.items()]
    command = [sys.executable, "-m", "melanoma", "train", "--data", str(data_dir), "--run-dir", str(run_dir),
               *flags, *(["--keep-epoch-weights"] if keep_epoch_weights else [])]
    if finish_into is None:
        return command + ["--out", str(run_dir / "bundle"), "--no-bundle"]
    return command + ["--out", str(finish_into), "--finish-now"]


def full_length_runs(names: list[str], base: TrainConfig, repeats: int) -> dict[str, tuple[dict, TrainConfig]]:
    """Run name -> (the settings it changes, its config). Repeat r > 0 of a variant changes only
    the training seed, so the spread among repeats is the run-to-run noise of that setting."""
    runs = {}
    for name in names:
        for repeat in range(repeats):
            changes = dict(FULL_LENGTH_VARIANTS[name], **({"training_seed": repeat} if repeat else {}))
            runs[f"{name}, training seed {repeat}" if repeat else name] = (changes, replace(base, **changes))
    return runs


def run_full_length(data_dir, run_root: Path, out_stem: Path, deadline_minutes: float,
                    names: list[str] | None = None, base: TrainConfig | None = None,
                    finish_best_into: Path | None = None, repeats: int = 1,
                    keep_epoch_weights: bool = False) -> pd.DataFrame:
    """All variants at once, one training process each, on the whole training split; with
    repeats > 1, each variant also runs with training seeds 1, 2, ... (same splits). A run still
    training at the deadline is stopped and reported with the epochs it finished. With
    finish_best_into, the finished run with the best validation AUC becomes that bundle;
    keep_epoch_weights keeps every run's epochs for `--weight-averaging`."""
    base = base or TrainConfig()
    runs = full_length_runs(names or list(FULL_LENGTH_VARIANTS), base, repeats)
    processes = {}
    for name, (_, config) in runs.items():
        run_dir = run_root / slug(name)
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "train.log", "ab") as log:
            processes[name] = subprocess.Popen(train_command(data_dir, run_dir, config,
                                                             keep_epoch_weights=keep_epoch_weights),
                                               stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + deadline_minutes * 60
    while time.time() < deadline and any(p.poll() is None for p in processes.values()):
        time.sleep(5)
    for name, process in processes.items():
        if process.poll() is None:
            process.terminate()
            process.wait()
            print(f"{name}: stopped at the deadline", file=sys.stderr)
        elif process.returncode != 0:
            print(f"{name}: training failed (exit {process.returncode}); see "
                  f"{run_root / slug(name) / 'train.log'}", file=sys.stderr)

    from melanoma.run_folder import RUN_HISTORY

    rows, finished, histories = [], {}, []
    for name, (changes, config) in runs.items():
        history_path = run_root / slug(name) / RUN_HISTORY
        if history_path.exists():
            history = pd.read_csv(history_path)
            rows.append(result_row(name, changes, history, config.epochs))
            histories.append(history.assign(run=name))
            if len(history) >= config.epochs:
                finished[name] = rows[-1]["best_val_auc"]
    if not rows:
        raise RuntimeError(f"no variant finished an epoch; see {run_root}/*/train.log")
    results = pd.DataFrame(rows)
    description = ("Full-length runs: every variant on the whole training split, from scratch with its own "
                   "warm-up and cosine schedule, all at once on one machine")
    write_results(results, out_stem, description, validation_counts(data_dir, base))
    # Every epoch of every run in one file beside the table: a GPU machine returns only a few files.
    all_epochs = pd.concat(histories)
    atomic_write_text(out_stem.with_name(f"{out_stem.name}-histories.csv"),
                      all_epochs[["run", *all_epochs.columns.drop("run")]].to_csv(index=False))
    if finish_best_into is not None and finished:
        best = max(finished, key=finished.get)
        subprocess.run(train_command(data_dir, run_root / slug(best), runs[best][1], finish_best_into), check=True)
    return results


def write_results(results: pd.DataFrame, out_stem: Path, description: str, val_counts: tuple[int, int]) -> None:
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_stem.with_suffix(".csv"), results.to_csv(index=False))
    baseline = results["best_val_auc"].iloc[0]
    se = auc_standard_error(baseline, *val_counts)
    lines = [
        f"{description}; scored on the whole validation split ({val_counts[0]} melanoma, {val_counts[1]} not).",
        f"Chance alone moves a validation AUC near {baseline:.2f} by about ±{se:.3f} (1 SE, Hanley & "
        f"McNeil); differences smaller than about {2 * se:.2f} are not evidence.",
        "",
        "| variant | changed settings | best val AUC (epoch) | last-epoch val AUC | epochs run | train minutes |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r.variant} | {r.changes} | {r.best_val_auc:.4f} ({r.best_epoch}) | {r.last_val_auc:.4f} | "
              f"{r.epochs_run} | {r.train_minutes} |" for r in results.itertuples()]
    atomic_write_text(out_stem.with_suffix(".md"), "\n".join(lines) + "\n")


def flip_views(images: np.ndarray) -> list[np.ndarray]:
    return [images, images[:, :, ::-1], images[:, ::-1], images[:, ::-1, ::-1]]


def flip_averaging(model_dir, data_dir) -> dict:
    """Validation AUC of the bundle on single images vs averaged over the 4 flips."""
    from melanoma.evaluate import roc_auc
    from melanoma.inference import Predictor
    from melanoma.splits import load_split_dataset

    predictor = Predictor.from_bundle(model_dir)
    dataset, split = load_split_dataset(data_dir, TrainConfig.from_dict(predictor.bundle.train_config))
    val = split.val
    metadata = dataset.metadata(predictor.patient_encoding)[val]
    views = [predictor.probabilities(np.ascontiguousarray(v), metadata) for v in flip_views(dataset.images[val])]
    labels = dataset.labels[val]
    return {"single_view_val_auc": roc_auc(labels, views[0]),
            "flip_average_val_auc": roc_auc(labels, np.mean(views, axis=0))}
