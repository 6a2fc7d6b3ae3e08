"""The settings sweep: its statistics, its split, and one real (smoke-sized) variant run."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from melanoma.config import TrainConfig
from melanoma.lab.experiments import auc_standard_error, flip_averaging, flip_views, run_experiments
from melanoma.splits import make_split
from tests.conftest import smoke_config
from tests.test_data import synthetic_metadata


def test_auc_standard_error_matches_hanley_mcneil_and_shrinks_with_more_images():
    # Hanley & McNeil (1982), table 1 region: AUC 0.9 with 50 + 50 cases has SE 0.032.
    assert auc_standard_error(0.9, 50, 50) == pytest.approx(0.0321, abs=0.0005)
    assert auc_standard_error(0.85, 115, 912) < auc_standard_error(0.85, 40, 300)


def test_training_subset_leaves_validation_and_test_untouched():
    frame = synthetic_metadata(n_lesions=1500)
    whole = make_split(frame, TrainConfig(seed=5))
    subset = make_split(frame, TrainConfig(seed=5, train_subset=300))
    assert np.array_equal(whole.val, subset.val) and np.array_equal(whole.test, subset.test)
    assert len(subset.train) == 300 and set(subset.train) <= set(whole.train)
    assert abs(frame["label"].iloc[subset.train].mean() - frame["label"].iloc[whole.train].mean()) < 0.05


def test_flip_views_are_the_four_mirror_images():
    image = np.arange(2 * 3 * 4 * 3).reshape(2, 3, 4, 3)
    views = flip_views(image)
    assert len({v.tobytes() for v in views}) == 4
    assert np.array_equal(views[3][:, ::-1, ::-1], image)


@pytest.mark.slow
def test_a_variant_runs_scores_on_validation_and_is_not_rerun(data_dir, tmp_path):
    out = tmp_path / "experiments"
    base = smoke_config(max_images=160)
    first = run_experiments(data_dir, tmp_path / "runs", out, epochs=1, train_subset=80,
                            names=["no label smoothing"], base=base)
    row = first.iloc[0]
    assert row["variant"] == "no label smoothing" and row["changes"] == "label_smoothing=0.0"
    assert 0.0 <= row["best_val_auc"] <= 1.0
    history = tmp_path / "runs" / "no-label-smoothing" / "history.csv"
    assert len(pd.read_csv(history)) == 1
    assert not (tmp_path / "runs" / "no-label-smoothing" / "bundle").exists()  # test split untouched
    table = out.with_suffix(".md").read_text()
    assert "| no label smoothing | label_smoothing=0.0 |" in table and "Hanley" in table

    before = history.stat().st_mtime_ns
    again = run_experiments(data_dir, tmp_path / "runs", out, epochs=1, train_subset=80,
                            names=["no label smoothing"], base=base)
    assert history.stat().st_mtime_ns == before
    assert again.iloc[0]["best_val_auc"] == row["best_val_auc"]


def test_flip_averaging_scores_the_bundle_on_its_validation_split(smoke_bundle, data_dir):
    result = flip_averaging(smoke_bundle, data_dir)
    assert set(result) == {"single_view_val_auc", "flip_average_val_auc"}
    assert all(value is None or 0.0 <= value <= 1.0 for value in result.values())


def test_a_variant_command_carries_every_changed_setting():
    from melanoma.cli import build_parser, train_config_from
    from melanoma.lab.experiments import train_command

    config = TrainConfig(weight_decay=0.0, melanoma_per_epoch_factor=4.0, epochs=60, jit_compile=False,
                         train_subset=500, training_seed=3, melanoma_per_epoch_factor_by_source={"isic2017": 4.0})
    command = train_command("data", Path("runs/x"), config)
    assert command[1:3] == ["-m", "melanoma"] and "--no-bundle" in command
    args = build_parser().parse_args(command[3:])
    assert train_config_from(args) == config
    for bad in ("isic2017", "isic2017=0", "=4", "isic2017=four"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", "--data", "d", "--out", "o", "--melanoma-per-epoch-factor-of", bad])
    assert args.run_dir == str(Path("runs/x"))
    assert not args.keep_epoch_weights
    assert build_parser().parse_args(train_command("data", Path("runs/x"), config, keep_epoch_weights=True)[3:]
                                     ).keep_epoch_weights


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_full_length_variants_run_at_once_and_the_best_becomes_the_bundle(data_dir, tmp_path):
    from melanoma.bundle import load_bundle, load_model
    from melanoma.lab.experiments import run_full_length

    results = run_full_length(data_dir, tmp_path / "runs", tmp_path / "full", deadline_minutes=8,
                              names=["diagnosis head"], base=smoke_config(max_images=160),
                              finish_best_into=tmp_path / "best", repeats=2)
    assert list(results["variant"]) == ["diagnosis head", "diagnosis head, training seed 1"]
    assert list(results["epochs_run"]) == ["1/1", "1/1"]
    histories = [pd.read_csv(tmp_path / "runs" / run / "history.csv")
                 for run in ("diagnosis-head", "diagnosis-head--training-seed-1")]
    assert histories[0]["loss"][0] != histories[1]["loss"][0]  # another seed, another run
    assert all(history["diagnosis_loss"][0] > 0 for history in histories)  # the extra head trained too
    all_epochs = pd.read_csv(tmp_path / "full-histories.csv")
    assert list(all_epochs["run"]) == list(results["variant"])  # one epoch each, every run in one file
    assert list(all_epochs["loss"]) == [history["loss"][0] for history in histories]
    best = results["best_val_auc"].idxmax()
    bundle = load_bundle(tmp_path / "best")
    assert bundle.train_config["diagnosis_loss_weight"] == 0.5
    assert bundle.train_config["training_seed"] == (None if best == 0 else 1)
    # The bundle keeps the diagnosis head it trained with (the app's differential): ResNet50 plus 7 x (2048 + 1).
    assert bundle.network_spec.diagnosis_head and load_model(bundle).count_params() == 23_591_810 + 7 * 2049
    table = (tmp_path / "full.md").read_text()
    assert "| diagnosis head, training seed 1 | diagnosis_loss_weight=0.5, training_seed=1 |" in table


def test_a_full_length_sweep_that_finishes_no_epoch_says_so(data_dir, tmp_path, capsys):
    from melanoma.lab.experiments import run_full_length

    with pytest.raises(RuntimeError, match="no variant finished an epoch"):
        run_full_length(data_dir, tmp_path / "runs", tmp_path / "full", deadline_minutes=0.01,
                        names=["no weight decay"], base=smoke_config())
    assert "no weight decay: stopped at the deadline" in capsys.readouterr().err


def test_a_variant_that_fails_is_named_with_its_log(tmp_path, capsys):
    from melanoma.lab.experiments import run_full_length

    with pytest.raises(RuntimeError, match="no variant finished an epoch"):
        run_full_length(tmp_path / "no-such-folder", tmp_path / "runs", tmp_path / "full", deadline_minutes=2,
                        names=["no weight decay"], base=smoke_config())
    err = capsys.readouterr().err
    assert "no weight decay: training failed (exit 1)" in err and "train.log" in err
    assert "no HAM10000_metadata.csv" in (tmp_path / "runs" / "no-weight-decay" / "train.log").read_text()
