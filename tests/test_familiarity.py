"""The familiarity bands (issue 33): photos cut into thirds by how unlike the training photos they are,
each band's share of every source and the AUC inside it, measured before anything is claimed."""
import json

import numpy as np
import pytest

from melanoma.bundle import DEFAULT_BUNDLE
from melanoma.lab.familiarity import band_table
from melanoma.novelty import FAMILIARITY_BANDS, familiarity_bands, familiarity_edges
from tests.conftest import linked_folder
from tests.in_process import run_melanoma


def test_terciles_cut_the_validation_scores_into_three_equal_bands():
    scores = np.arange(300, dtype=float)
    edges = familiarity_edges(scores)
    assert np.bincount(familiarity_bands(scores, edges)).tolist() == [100, 100, 100]
    assert familiarity_bands([-1.0, 1e9], edges).tolist() == [0, 2]  # beyond the validation range: the end bands


def test_a_band_reports_its_share_and_its_own_auc_and_a_band_with_too_few_melanomas_reports_none():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.uniform(0, 1, 200), rng.uniform(2, 3, 200)]  # two bands used, the third empty
    labels = np.r_[rng.integers(0, 2, 200), np.zeros(200, int)]
    labels[200:203] = 1  # 3 melanomas in the far band: no AUC
    probabilities = np.r_[labels[:200] * 0.6 + rng.uniform(0, 0.4, 200), rng.uniform(0, 1, 200)]
    refused = np.zeros(400, bool)
    refused[-10:] = True
    table = band_table(labels, probabilities, np.arange(400), scores, refused, np.array([1.0, 1.5]), 0.5)
    assert table["refused"] == 10 and table["photos"] == 400
    near, middle, far = (table["bands"][name] for name in FAMILIARITY_BANDS)
    assert near["photos"] == 200 and middle["photos"] == 0 and far["photos"] == 190
    assert near["share_of_accepted"] == pytest.approx(200 / 390)
    assert near["roc_auc"] == 1.0 and near["sensitivity"] == 1.0 and len(near["intervals"]["roc_auc"]) == 2
    assert "roc_auc" not in far and far["melanoma"] == 3


def test_the_command_bands_the_shipped_bundles_photos_and_another_clinics(data_dir, isic_dir, tmp_path):
    """The shipped bundle's own sources (small linked folders of each), then a folder it never trained
    on: here ISIC 2017 photos under another name, as another clinic's would come."""
    ham = linked_folder(data_dir, tmp_path, "ham10000", 30, 90)
    isic = linked_folder(isic_dir, tmp_path, "isic2017", 10, 20)
    other = linked_folder(isic_dir, tmp_path / "elsewhere", "otherclinic", 10, 20)
    out = tmp_path / "familiarity.json"
    done = run_melanoma("familiarity", "--model", DEFAULT_BUNDLE, "--data", ham, "--data", isic, "--data", other,
                        "--json", out)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report["sets"]) == {"ham10000 validation", "ham10000 test", "isic2017 validation", "isic2017 test",
                                   "otherclinic (every photo; not trained on)"}
    assert report["edges_from"].startswith("the bundle's")  # v3 carries its band edges
    other_set = report["sets"]["otherclinic (every photo; not trained on)"]
    assert other_set["photos"] == 30
    accepted = sum(band["photos"] for band in other_set["bands"].values())
    assert accepted == 30 - other_set["refused"]
    assert "| otherclinic (every photo; not trained on) (30, " in done.stdout
    wrong_order = run_melanoma("familiarity", "--data", isic)
    assert wrong_order.returncode == 1 and "Traceback" not in wrong_order.stderr
    assert "give the bundle's own folders (ham10000, isic2017) first" in wrong_order.stderr
