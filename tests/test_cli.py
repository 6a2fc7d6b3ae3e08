"""`predict` and `evaluate` as a user runs them."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
EVALUATE_KEYS = {"n_images", "roc_auc", "sensitivity", "specificity", "precision", "f1", "accuracy",
                 "balanced_accuracy", "threshold", "confusion_matrix"}


def melanoma(*args, timeout=600, env=None):
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
        assert row["suspicious"] == (row["probability_melanoma"] >= output["threshold"])
    assert "not a supported image" in by_file[str(not_an_image)]["error"]
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
    assert EVALUATE_KEYS <= set(metrics)
    assert metrics["n_images"] == len(subset)
    assert sum(map(sum, metrics["confusion_matrix"])) == len(subset)
    assert metrics["confusion_matrix"][1][0] + metrics["confusion_matrix"][1][1] == (subset.dx == "mel").sum()
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
