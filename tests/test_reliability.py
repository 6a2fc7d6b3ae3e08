"""Bad input through `melanoma predict` in one batch, and uploads that never touch the disk."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bad_inputs import ACCEPTED, REJECTED
from tests.in_process import run_melanoma

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def mixed_batch(smoke_bundle, sample_images, tmp_path_factory):
    """One `predict` over every bad and unusual input plus two real lesions, like a user would."""
    folder = tmp_path_factory.mktemp("inputs")
    files = [sample_images["mel"]]
    for name, data in {**{n: d for n, (d, _) in REJECTED.items()}, **ACCEPTED}.items():
        (folder / name).write_bytes(data)
        files.append(folder / name)
    files.append(sample_images["nv"])
    result = run_melanoma("predict", "--model", smoke_bundle, "--json", *files)
    rows = {Path(row["file"]).name: row for row in json.loads(result.stdout)["results"]}
    return result, rows


def test_batch_with_bad_files_exits_2_without_traceback(mixed_batch):
    result, rows = mixed_batch
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(rows) == len(REJECTED) + len(ACCEPTED) + 2


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_each_bad_file_gets_its_reason_in_predict(mixed_batch, name):
    _, rows = mixed_batch
    assert REJECTED[name][1] in rows[name]["error"]


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_each_unusual_file_is_classified_in_predict(mixed_batch, name):
    _, rows = mixed_batch
    assert 0.0 <= rows[name]["probability_melanoma"] <= 1.0


def test_real_lesions_in_the_same_batch_are_still_classified(mixed_batch, sample_images):
    _, rows = mixed_batch
    for dx in ("mel", "nv"):
        assert "probability_melanoma" in rows[sample_images[dx].name]


CLASSIFY_IN_MEMORY = """
import sys
from pathlib import Path
from melanoma.inference import Predictor
predictor = Predictor.from_bundle(sys.argv[1])
prediction = predictor.classify_bytes("patient.jpg", sys.stdin.buffer.read(), display=True)
assert prediction.ok, prediction.error
print(prediction.probability)
"""


def test_classifying_an_upload_writes_no_file(smoke_bundle, sample_images, tmp_path):
    """A fresh process whose working and temp directories start empty must leave them empty
    (its own, so that other processes on the machine cannot disturb the check)."""
    work, temp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", CLASSIFY_IN_MEMORY, str(smoke_bundle)], cwd=work, env=env,
                            input=sample_images["mel"].read_bytes(), capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert 0.0 <= float(result.stdout) <= 1.0
    assert list(work.rglob("*")) == []
    assert list(temp.rglob("*")) == []
