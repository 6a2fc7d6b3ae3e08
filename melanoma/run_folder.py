"""A training run's folder: what it holds and how it is read back.

The settings (config.json), the history (history.csv), one checkpoint (weights + optimizer state +
the epoch it finished), the best epoch's weights, the lineage of a run started from another
bundle, and with --keep-epoch-weights every epoch's weights. `train` writes it; the lab reads it.
"""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np

from melanoma.config import TrainConfig
from melanoma.fileio import atomic_write_bytes

CHECKPOINT = "checkpoint.npz"
RUN_CONFIG = "config.json"
RUN_HISTORY = "history.csv"
BEST_WEIGHTS = "best.weights.npz"  # the epoch with the best validation AUC so far
LINEAGE = "lineage.json"  # the bundles whose weights the run started from (progressive resizing)
# Settings that may change when resuming (e.g. train longer); any other change needs a new run.
RESUMABLE_CHANGES = {"epochs", "distribute", "jit_compile", "precise_bn_images"}
EPOCH_WEIGHTS_DIR = "epochs"  # every epoch's weights, in a run trained with --keep-epoch-weights


def epoch_weights_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / EPOCH_WEIGHTS_DIR / f"epoch-{epoch:03d}.weights.npz"


def saved_epochs(run_dir: Path) -> list[int]:
    pattern = re.compile(r"epoch-(\d+)\.weights\.npz")
    found = (pattern.fullmatch(p.name) for p in (Path(run_dir) / EPOCH_WEIGHTS_DIR).glob("*.npz"))
    return sorted(int(m.group(1)) for m in found if m)


def save_checkpoint(run_dir: Path, model, epoch: int, history: list[dict], best: dict) -> None:
    """Weights in float32 (training goes on from them), optimizer slots, and the epoch count."""
    arrays = {f"model/{v.path}": np.asarray(v.numpy()) for v in model.weights}
    arrays.update({f"optimizer/{i}": np.asarray(v.numpy()) for i, v in enumerate(model.optimizer.variables)})
    arrays["meta"] = np.frombuffer(json.dumps({"epoch": epoch, "history": history, "best": best}).encode(),
                                   dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(run_dir / CHECKPOINT, buffer.getvalue())


def restore_checkpoint(run_dir: Path, model) -> tuple[int, list[dict], dict]:
    from melanoma.bundle import assign_weights

    with np.load(run_dir / CHECKPOINT, allow_pickle=False) as arrays:
        meta = json.loads(arrays["meta"].tobytes().decode())
        assign_weights(model, {k[len("model/"):]: arrays[k] for k in arrays.files if k.startswith("model/")})
        for i, variable in enumerate(model.optimizer.variables):
            variable.assign(arrays[f"optimizer/{i}"])
    return meta["epoch"], meta["history"], meta["best"]


def write_best_weights(run_dir: Path, model) -> None:
    from melanoma.bundle import weights_to_npz

    atomic_write_bytes(Path(run_dir) / BEST_WEIGHTS, weights_to_npz(model, half_precision=False))


def settle_best_weights(run_dir: Path, model, epoch: int, best: dict) -> None:
    """Called on resuming, with the checkpoint's weights in `model`. An epoch writes its checkpoint
    before the best weights, so a run stopped between the two left the best weights of an earlier epoch
    although its checkpoint records this one as the best: those weights are the checkpoint's own.
    (Written the other way round, a stop between them left best weights of an epoch that no history
    records and the resumed run redoes differently.)"""
    if best.get("epoch") == epoch:
        write_best_weights(run_dir, model)


def finished_epochs(run_dir: Path) -> int:
    """Epochs the run folder's checkpoint holds (0 without one), read without the weights."""
    if not (run_dir / CHECKPOINT).exists():
        return 0
    with np.load(run_dir / CHECKPOINT, allow_pickle=False) as arrays:
        return json.loads(arrays["meta"].tobytes().decode())["epoch"]


def read_run_config(run_dir: Path) -> TrainConfig:
    """A run folder's settings; settings added since it was started take their defaults."""
    return TrainConfig.from_dict(json.loads((Path(run_dir) / RUN_CONFIG).read_text()))


def check_resume_config(run_dir: Path, config: TrainConfig) -> None:
    if not (run_dir / RUN_CONFIG).exists():
        return
    saved = read_run_config(run_dir).to_dict()
    changed = {k for k, v in config.to_dict().items() if saved[k] != v} - RESUMABLE_CHANGES
    if changed:
        raise SystemExit(f"error: {run_dir} holds a run with other settings ({', '.join(sorted(changed))}); "
                         f"rerun with the same settings to resume, or pass a new --run-dir")
