"""Training end to end on a few dozen real images: the bundle, resuming after a real kill, and the
kept epoch weights averaged."""
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from melanoma.bundle import REQUIRED_FILES, load_bundle, load_model
from melanoma.lab.averaging import ensemble, read_weights, validation_scorer, weight_averaging
from melanoma.run_folder import BEST_WEIGHTS, read_run_config, saved_epochs
from tests.float_noise import auc_bounds

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_bundle_is_complete_and_loads(smoke_bundle):
    bundle = load_bundle(smoke_bundle)
    assert all((smoke_bundle / name).is_file() for name in REQUIRED_FILES)
    assert 0.0 <= bundle.threshold <= 1.0
    test = bundle.metrics.test
    assert None not in (test.roc_auc, test.sensitivity, test.specificity, test.confusion_matrix)
    assert sum(map(sum, test.confusion_matrix)) == test.n_images == len(bundle.test_split())
    assert bundle.dataset_summary.images_used > 0
    assert bundle.manifest["weights_sha256"] == bundle.manifest["files"]["weights.npz"]
    assert len(bundle.history()) == 1
    load_model(bundle)


def test_threshold_test_split_and_metrics_share_the_calibrated_scale(smoke_bundle):
    bundle = load_bundle(smoke_bundle)
    calibration = bundle.recorded_json("metrics.json")["calibration"]
    assert calibration["method"] == ("platt" if bundle.calibration else "none")
    if bundle.calibration:
        assert bundle.calibration["slope"] > 0 and bundle.calibration["intercept"] == calibration["intercept"]
    split = bundle.test_split()
    called = split["probability"] >= bundle.threshold
    (tn, fp), (fn, tp) = bundle.metrics.test.confusion_matrix
    assert (tp, fp) == ((called & (split["label"] == 1)).sum(), (called & (split["label"] == 0)).sum())
    assert calibration["test_after"]["mean_probability"] == pytest.approx(split["probability"].mean(), abs=1e-4)
    assert calibration["test_before"]["melanoma_rate"] == pytest.approx(split["label"].mean())


def train_command(data_dir, tmp_path, epochs):
    return [sys.executable, "-m", "melanoma", "train", "--data", str(data_dir), "--out", str(tmp_path / "bundle"),
            "--run-dir", str(tmp_path / "run"), "--epochs", str(epochs), "--max-images", "96",
            "--batch-size", "8", "--seed", "7", "--no-xla", "--keep-epoch-weights"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_killed_mid_epoch_resumes_without_redoing_finished_epochs(data_dir, tmp_path):
    history = tmp_path / "run" / "history.csv"
    process = subprocess.Popen(train_command(data_dir, tmp_path, epochs=3), cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while not history.exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.5)
        assert history.exists(), "epoch 1 never finished"
        time.sleep(random.uniform(0.0, 3.0))  # a random moment inside epoch 2
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    finished_before_kill = len(pd.read_csv(history))
    assert finished_before_kill in (1, 2)
    assert not (tmp_path / "bundle").exists()

    # Precise batch norm may be switched on when resuming: it changes no weight training updates. The
    # resumed run writes a validation-only candidate: the test look and extras after a resume are the
    # same code as after any run (the smoke bundles), and would cost this test's process CI time.
    rerun = subprocess.run(train_command(data_dir, tmp_path, epochs=3) + ["--precise-bn-images", "16", "--without-test"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming after epoch {finished_before_kill}" in rerun.stdout
    assert "batch norm statistics recomputed on 2 batches of plain training photos" in rerun.stdout
    for epoch in range(1, finished_before_kill + 1):
        assert f"epoch {epoch}/3:" not in rerun.stdout  # finished epochs are not repeated
    assert pd.read_csv(history)["epoch"].tolist() == [1, 2, 3]
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.history()["epoch"].tolist() == [1, 2, 3]
    assert not list(tmp_path.glob(".bundle.*"))  # no staging leftovers

    # Every epoch's weights were kept, across the kill, and the last two average into a scored model.
    averaged = weight_averaging(tmp_path / "run", data_dir, last=2)
    assert averaged["epochs"] == [2, 3] and saved_epochs(tmp_path / "run") == [1, 2, 3]
    assert set(averaged["val_auc_per_epoch"]) == {2, 3}
    assert 0.0 <= averaged["weight_average_val_auc"] <= 1.0
    assert averaged["batch_norm_recomputed_on_batches"] >= 1

    # An ensemble of a run with itself is that run: the plumbing averages the same images' probabilities.
    # Each AUC is one the best weights' validation scores allow within the float noise (issue 41: a pair
    # of photos scored 1e-7 apart may swap between one batch and another, and move the AUC by a step).
    run = tmp_path / "run"
    paired = ensemble([run, run], data_dir)
    dataset, split, _, score = validation_scorer(data_dir, read_run_config(run))
    low, high = auc_bounds(dataset.labels[split.val], score(read_weights(run / BEST_WEIGHTS)))
    assert list(paired["val_auc_per_run"]) == [str(run)]
    for auc in (pd.read_csv(history)["val_auc"].max(), paired["val_auc_per_run"][str(run)],
                paired["probability_average_val_auc"]):
        assert low - 1e-9 <= auc <= high + 1e-9, (auc, low, high)


def test_resume_with_other_settings_is_refused(data_dir, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps({"seed": 1, "epochs": 3}))
    result = subprocess.run(train_command(data_dir, tmp_path, epochs=3), cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode != 0
    assert "other settings" in result.stderr and "Traceback" not in result.stderr


def test_a_run_saved_before_a_setting_existed_still_resumes(tmp_path):
    from melanoma.config import TrainConfig
    from melanoma.run_folder import check_resume_config

    saved = TrainConfig().to_dict()
    del saved["diagnosis_loss_weight"]  # added after such runs were started; its default is what they ran
    (tmp_path / "config.json").write_text(json.dumps(saved))
    check_resume_config(tmp_path, TrainConfig())
    with pytest.raises(SystemExit, match="diagnosis_loss_weight"):
        check_resume_config(tmp_path, TrainConfig(diagnosis_loss_weight=0.5))


def test_the_diagnosis_head_under_multiworker_is_refused_before_anything_starts(tmp_path):
    from melanoma.config import TrainConfig
    from melanoma.train import train

    with pytest.raises(SystemExit, match="multiworker"):
        train(tmp_path / "no-data", tmp_path / "bundle", TrainConfig(diagnosis_loss_weight=0.5, distribute="multiworker"),
              run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_training_on_a_folder_with_no_usable_images_stops_clearly(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\nL1,I1,mel\nL2,I2,nv\n")
    (data / "images" / "I1.jpg").write_bytes(b"not a jpeg")
    result = subprocess.run([sys.executable, "-m", "melanoma", "train", "--data", str(data), "--out",
                             str(tmp_path / "b"), "--run-dir", str(tmp_path / "r")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "no usable images" in result.stderr and "Traceback" not in result.stderr


def test_a_run_stopped_between_its_checkpoint_and_best_weights_resumes_with_the_checkpoints_best(tmp_path):
    """Issue 41: a fresh-clone CI run killed the training process after one epoch had written the best
    weights but not its checkpoint, and the resumed run's best weights were of an epoch no history held.
    Now the checkpoint comes first, and resuming settles the best weights from it."""
    import keras
    import numpy as np

    from melanoma.run_folder import restore_checkpoint, save_checkpoint, settle_best_weights, write_best_weights

    def tiny_model():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")], name="tiny")
        model.compile(optimizer="sgd", loss="mse")
        model.optimizer.build(model.trainable_variables)
        return model

    run_dir, model = tmp_path / "run", tiny_model()
    run_dir.mkdir()
    save_checkpoint(run_dir, model, 1, [{"epoch": 1, "val_auc": 0.6}], {"val_auc": 0.6, "epoch": 1})
    write_best_weights(run_dir, model)
    epoch_1 = read_weights(run_dir / BEST_WEIGHTS)
    model.layers[0].kernel.assign(model.layers[0].kernel + 1.0)  # epoch 2 trains, improves, is checkpointed...
    history = [{"epoch": 1, "val_auc": 0.6}, {"epoch": 2, "val_auc": 0.7}]
    save_checkpoint(run_dir, model, 2, history, {"val_auc": 0.7, "epoch": 2})
    epoch_2 = {variable.path: variable.numpy() for variable in model.weights}  # ...and the run stops here

    resumed = tiny_model()
    epoch, _, best = restore_checkpoint(run_dir, resumed)
    settle_best_weights(run_dir, resumed, epoch, best)
    settled = read_weights(run_dir / BEST_WEIGHTS)
    assert all(np.array_equal(settled[name], epoch_2[name]) for name in epoch_2)
    assert not all(np.array_equal(settled[name], epoch_1[name]) for name in epoch_1)

    # where the checkpoint's best is an earlier epoch, the best weights on disk are that epoch's, untouched
    write_best_weights(run_dir, tiny_model())
    before = (run_dir / BEST_WEIGHTS).read_bytes()
    settle_best_weights(run_dir, resumed, 3, {"val_auc": 0.7, "epoch": 2})
    assert (run_dir / BEST_WEIGHTS).read_bytes() == before
