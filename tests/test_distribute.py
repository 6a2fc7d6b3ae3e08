"""tf.distribute on the CPU: MirroredStrategy over two logical CPU devices, and
MultiWorkerMirroredStrategy with two worker processes on loopback ports. Each trains on real
images; the multi-worker runs resume from their checkpoint and end in a bundle that loads (only the
chief may write it). The other runs stop before one (`--no-bundle`): writing it is the same code
whatever the strategy, and these are the slowest tests of the suite."""
import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from melanoma.bundle import load_bundle, load_model

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def train_args(data_dir, tmp_path, epochs: int, *extra, run_dir: str = "run") -> list[str]:
    return [sys.executable, "-m", "melanoma", "train", "--data", str(data_dir), "--out", str(tmp_path / "bundle"),
            "--run-dir", str(tmp_path / run_dir), "--epochs", str(epochs), "--max-images", "96",
            "--batch-size", "8", "--seed", "7", "--no-xla", *extra]


def assert_bundle_with_epochs(tmp_path, epochs: int) -> None:
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.history()["epoch"].tolist() == list(range(1, epochs + 1))
    load_model(bundle)


def test_mirrored_over_two_cpu_devices_trains_an_epoch(data_dir, tmp_path):
    """One epoch: resuming is the run folder's code whatever the strategy, and is tested on the harder
    case below (two workers that must agree) and in test_train (a kill mid-epoch)."""
    extra = ("--distribute", "mirrored", "--cpu-replicas", "2", "--no-bundle")
    run = subprocess.run(train_args(data_dir, tmp_path, 1, *extra), cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "MirroredStrategy: 2 replicas, global batch 8 (4 per replica)" in run.stdout
    assert "epoch 1/1:" in run.stdout and not (tmp_path / "bundle").exists()
    assert pd.read_csv(tmp_path / "run" / "history.csv")["epoch"].tolist() == [1]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_two_workers(data_dir, tmp_path, epochs: int, *extra,
                    run_dirs=("run", "run")) -> list[subprocess.CompletedProcess]:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers, results = [], []
    with contextlib.ExitStack() as open_logs:
        for index in range(2):
            env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
            log = open_logs.enter_context(open(tmp_path / f"worker{index}-{epochs}.log", "w+"))
            args = train_args(data_dir, tmp_path, epochs, "--distribute", "multiworker", *extra, run_dir=run_dirs[index])
            workers.append((subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True),
                            log))
        for process, log in workers:
            try:
                process.wait(timeout=900)
            finally:
                if process.poll() is None:
                    process.kill()
            log.seek(0)
            results.append(subprocess.CompletedProcess(process.args, process.returncode, log.read(), ""))
    return results


def test_multiworker_with_two_local_workers_trains_and_resumes(data_dir, tmp_path):
    first = run_two_workers(data_dir, tmp_path, 1, "--no-bundle")
    for worker in first:
        assert worker.returncode == 0, worker.stdout[-3000:]
        assert "CollectiveAllReduceStrategy: 2 replicas" in worker.stdout and "epoch 1/1:" in worker.stdout

    # A validation-only candidate: what only the chief may write is the bundle, whatever its contents
    # (the test look and the extras are the same code whatever the strategy, tested on other bundles).
    longer = run_two_workers(data_dir, tmp_path, 2, "--without-test")
    for worker in longer:
        assert worker.returncode == 0, worker.stdout[-3000:]
        assert "resuming after epoch 1" in worker.stdout and "epoch 1/2:" not in worker.stdout
    assert "candidate written to" in longer[0].stdout  # only the chief (worker 0) writes
    assert "candidate written to" not in longer[1].stdout
    assert_bundle_with_epochs(tmp_path, 2)


def test_multiworker_workers_whose_run_folders_disagree_refuse_in_one_line(data_dir, tmp_path):
    """The chief's folder holds a finished run from an earlier try, the other worker's is empty."""
    import numpy as np

    chief_run = tmp_path / "chief-run"
    chief_run.mkdir()
    meta = json.dumps({"epoch": 2, "history": [], "best": {"val_auc": 0.5, "epoch": 2}}).encode()
    np.savez(chief_run / "checkpoint.npz", meta=np.frombuffer(meta, dtype=np.uint8))
    workers = run_two_workers(data_dir, tmp_path, 2, run_dirs=("chief-run", "other-run"))
    for worker in workers:
        assert worker.returncode == 1, worker.stdout[-3000:]
        assert "error: the workers' run folders disagree on the finished epochs (replica 0: 2, replica 1: 0" \
            in worker.stdout, worker.stdout[-3000:]
        assert "Traceback" not in worker.stdout and "epoch 1/2" not in worker.stdout
