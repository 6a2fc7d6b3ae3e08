"""`predict` and `evaluate` as a user runs them."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.in_process import run_melanoma

ROOT = Path(__file__).resolve().parent.parent
ROUNDED_AWAY = 0.5e-4  # the most `predict --json` rounding (4 decimals) moves a probability
EVALUATE_KEYS = {"n_images", "roc_auc", "sensitivity", "specificity", "precision", "f1", "accuracy",
                 "balanced_accuracy", "threshold", "confusion_matrix"}


def melanoma(*args, timeout=600, env=None):
    """The command in this process; with `env`, as a user runs it: a fresh `python -m melanoma`."""
    if env is None:
        return run_melanoma(*args)
    return subprocess.run([sys.executable, "-m", "melanoma", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_predict_classifies_good_files_and_names_bad_ones(smoke_bundle, sample_images, tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is text")
    missing = tmp_path / "missing.png"
    result = melanoma("predict", "--model", smoke_bundle, "--json", sample_images["mel"], not_an_image,
                      missing, sample_images["nv"])
    assert result.returncode == 2
    output = json.loads(result.stdout)
    by_file = {row["file"]: row for row in output["results"]}
    for good in (sample_images["mel"], sample_images["nv"]):
        row = by_file[str(good)]
        assert 0.0 <= row["probability_melanoma"] <= 1.0
        if abs(row["probability_melanoma"] - row["threshold"]) > ROUNDED_AWAY:  # written to 4 decimals
            assert row["suspicious"] == (row["probability_melanoma"] >= row["threshold"])
        assert row["mode"] == "photo alone"  # the smoke bundle reads the image alone
    assert "threshold" not in output  # one threshold per record, never a top-level one (issue 42)
    assert [mode["mode"] for mode in output["modes"]] == ["photo alone"]
    assert "damaged or unreadable file" in by_file[str(not_an_image)]["error"]
    assert "cannot read file" in by_file[str(missing)]["error"]
    assert "Traceback" not in result.stderr


def test_predict_exit_status_zero_when_all_classified(smoke_bundle, sample_images):
    as_a_user_runs_it = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    result = melanoma("predict", "--model", smoke_bundle, sample_images["bcc"], env=as_a_user_runs_it)
    assert result.returncode == 0
    assert "P(melanoma)=" in result.stdout
    assert result.stderr == ""  # no TensorFlow start-up lines (absl, oneDNN, cuda) before the answer


def test_evaluate_reports_every_image_of_a_folder(smoke_bundle, data_dir, tmp_path):
    frame = pd.read_csv(data_dir / "HAM10000_metadata.csv")
    held_out = pd.read_csv(smoke_bundle / "test_split.csv")["image_id"].head(4)
    subset = pd.concat([frame[frame.dx == "mel"].head(6), frame[frame.dx != "mel"].head(14),
                        frame[frame.image_id.isin(held_out)]]).drop_duplicates("image_id")
    folder = tmp_path / "external"
    (folder / "images").mkdir(parents=True)
    subset.to_csv(folder / "HAM10000_metadata.csv", index=False)
    for image_id in subset.image_id:  # links, not copies: the data stays where it is
        os.symlink(data_dir / "images" / f"{image_id}.jpg", folder / "images" / f"{image_id}.jpg")
    out = tmp_path / "metrics.json"
    result = melanoma("evaluate", "--model", smoke_bundle, "--data", folder, "--json", out)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(out.read_text())
    assert set(metrics) >= EVALUATE_KEYS
    assert metrics["n_images"] == len(subset)
    assert sum(map(sum, metrics["confusion_matrix"])) == len(subset)
    assert metrics["confusion_matrix"][1][0] + metrics["confusion_matrix"][1][1] == (subset.dx == "mel").sum()
    # every image is still scored; how many the not-a-lesion check would refuse is reported beside
    # (none here: a smoke bundle's validation split is too small to set the check)
    assert metrics["not_a_lesion"] == {"threshold": None, "would_refuse": 0, "would_refuse_melanoma": 0}
    # the bundle's own held-out images are also scored on their own
    assert metrics["bundle_test_split_part"]["n_images"] == 4
    intervals = metrics["intervals"]
    assert intervals["unit"] == "lesion" and intervals["n_lesions"] == subset.lesion_id.nunique()
    for name in ("sensitivity", "specificity"):
        assert intervals[name][0] <= metrics[name] <= intervals[name][1]


@pytest.mark.parametrize("damage", ["missing_file", "flipped_bytes", "manifest_sha"])
def test_damaged_bundle_is_refused_with_a_clear_message(smoke_bundle, sample_images, tmp_path, damage):
    import shutil

    bundle = tmp_path / "bundle"
    shutil.copytree(smoke_bundle, bundle)
    weights = bundle / "weights.npz"
    if damage == "missing_file":
        (bundle / "history.csv").unlink()
    elif damage == "flipped_bytes":
        data = bytearray(weights.read_bytes())
        for offset in range(1000, 1100):
            data[offset] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        manifest = json.loads((bundle / "manifest.json").read_text())
        manifest["weights_sha256"] = "0" * 64
        (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = melanoma("predict", "--model", bundle, sample_images["mel"])
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert {"missing_file": "is missing", "flipped_bytes": "corrupted", "manifest_sha": "weights_sha256"}[damage] \
        in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_gives_no_call_for_a_picture_that_is_not_a_lesion(sample_images, tmp_path):
    """The shipped bundle: a rendered document gets "not assessed" and exit status 2, with the scores
    that refused it and no probability or call."""
    import numpy as np

    from melanoma.bundle import DEFAULT_BUNDLE
    from melanoma.lab.non_lesions import document, encode
    from melanoma.wording import NOT_A_LESION_REASON

    picture = tmp_path / "minutes.png"
    picture.write_bytes(encode(document(np.random.default_rng(0))))
    lines = melanoma("predict", "--model", DEFAULT_BUNDLE, picture, sample_images["mel"])
    assert lines.returncode == 2
    assert f"minutes.png\tnot assessed: {NOT_A_LESION_REASON}" in lines.stdout
    assert "P(melanoma)=" in next(line for line in lines.stdout.splitlines() if line.startswith(str(sample_images["mel"])))

    result = melanoma("predict", "--model", DEFAULT_BUNDLE, "--json", picture)
    assert result.returncode == 2
    row = json.loads(result.stdout)["results"][0]
    assert row["error"] == NOT_A_LESION_REASON
    assert "probability_melanoma" not in row and "call" not in row
    refusal = row["not_a_lesion"]
    assert not any("probability" in key for key in refusal)  # a refused picture gets no P(melanoma)
    assert (refusal["score"] > refusal["threshold"]
            or refusal["classifier_score"] > refusal["classifier_threshold"])


def test_predict_json_carries_the_differential_and_similar_cases(sample_images):
    from melanoma.bundle import DEFAULT_BUNDLE
    from melanoma.neighbours import SIMILAR_CASES
    from melanoma.wording import DIFFERENTIAL_NAMES

    result = melanoma("predict", "--model", DEFAULT_BUNDLE, "--json", sample_images["mel"])
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout)["results"][0]
    differential = row["differential"]
    assert set(differential) == set(DIFFERENTIAL_NAMES.values())
    assert sum(differential.values()) == pytest.approx(1, abs=1e-3)
    assert list(differential.values()) == sorted(differential.values(), reverse=True)
    cases = row["similar_cases"]
    assert len(cases) == SIMILAR_CASES and {"image_id", "dx", "dx_type", "age", "sex", "localization"} <= set(cases[0])
    assert row["similar_cases_melanoma_share"] == pytest.approx(sum(c["dx"] == "mel" for c in cases) / SIMILAR_CASES)
