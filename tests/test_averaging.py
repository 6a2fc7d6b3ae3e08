"""Weight averaging and ensembles: the arithmetic and the clear refusals.
(A real run's weight average and ensemble are scored in test_train.)"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from melanoma.config import TrainConfig
from melanoma.lab.averaging import average_weights, ensemble, weight_averaging
from melanoma.run_folder import BEST_WEIGHTS, epoch_weights_path, saved_epochs


def test_average_is_elementwise_over_snapshots():
    snapshots = [{"a": np.array([1.0, 2.0]), "b": np.array([[0.0]])},
                 {"a": np.array([3.0, 6.0]), "b": np.array([[1.0]])}]
    averaged = average_weights(snapshots)
    assert np.allclose(averaged["a"], [2.0, 4.0]) and np.allclose(averaged["b"], [[0.5]])


def test_a_run_without_kept_epochs_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"seed": 1}))
    assert saved_epochs(tmp_path) == []
    with pytest.raises(RuntimeError, match="--keep-epoch-weights"):
        weight_averaging(tmp_path, tmp_path, last=3)


def test_saved_epochs_are_found_in_order(tmp_path):
    for epoch in (10, 2, 1):
        path = epoch_weights_path(tmp_path, epoch)
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    (tmp_path / "epochs" / "notes.npz").write_bytes(b"")
    assert saved_epochs(tmp_path) == [1, 2, 10]


def test_the_command_names_a_run_without_kept_epochs(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"seed": 1}))
    result = subprocess.run([sys.executable, "-m", "melanoma", "experiments", "--data", str(tmp_path),
                             "--weight-averaging", str(tmp_path), "--last", "2"],
                            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert "no saved epoch weights" in result.stderr and "Traceback" not in result.stderr


def fake_run(folder: Path, **settings) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TrainConfig(**settings).to_dict()))
    (folder / BEST_WEIGHTS).write_bytes(b"")
    return folder


def test_an_ensemble_of_differently_split_runs_is_refused(tmp_path):
    first, second = fake_run(tmp_path / "a", seed=42), fake_run(tmp_path / "b", seed=7)
    fake_run(tmp_path / "c", seed=42, weight_decay=0.0)  # other training settings, same split: fine
    with pytest.raises(RuntimeError, match=r"split differently .*\(seed differ\)"):
        ensemble([first, tmp_path / "c", second], tmp_path)


def test_an_ensemble_names_a_run_without_best_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run([sys.executable, "-m", "melanoma", "experiments", "--data", str(tmp_path),
                             "--ensemble", str(fake_run(tmp_path / "a")), str(tmp_path / "empty")],
                            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert f"{tmp_path / 'empty'} has no {BEST_WEIGHTS}" in result.stderr and "Traceback" not in result.stderr
