"""Confidence intervals of the test metrics: lesion-level bootstrap."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from melanoma.bundle import DEFAULT_BUNDLE
from melanoma.evaluate import _weighted_auc, lesion_bootstrap_intervals, metrics_at


def width(interval):
    return interval[1] - interval[0]


def noisy_scores(n, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.2).astype(int)
    return labels, np.clip(0.5 * labels + rng.normal(0.3, 0.25, n), 0, 1).round(2)  # rounded: ties


def test_each_draw_scores_like_sklearn_weighted_auc_ties_included():
    labels, probabilities = noisy_scores(400)
    weights = np.random.default_rng(1).integers(0, 4, (6, 400)).astype(float)
    expected = [roc_auc_score(labels, probabilities, sample_weight=w) for w in weights]
    np.testing.assert_allclose(_weighted_auc(labels, probabilities, weights), expected, rtol=1e-12)


def test_intervals_bracket_the_point_estimates_and_repeat_exactly():
    labels, probabilities = noisy_scores(600)
    lesions = np.arange(600) // 2
    point = metrics_at(labels, probabilities, 0.5)
    intervals = lesion_bootstrap_intervals(labels, probabilities, lesions, 0.5)
    for name in ("roc_auc", "sensitivity", "specificity"):
        low, high = intervals[name]
        assert low < point[name] < high, name
    assert intervals["n_lesions"] == 300
    assert intervals == lesion_bootstrap_intervals(labels, probabilities, lesions, 0.5)


def test_copies_of_a_lesion_do_not_narrow_the_interval():
    labels, probabilities = noisy_scores(300)
    copies = 4
    labels_x, probabilities_x = np.repeat(labels, copies), np.repeat(probabilities, copies)
    by_lesion = lesion_bootstrap_intervals(labels_x, probabilities_x, np.repeat(np.arange(300), copies), 0.5)
    by_image = lesion_bootstrap_intervals(labels_x, probabilities_x, np.arange(300 * copies), 0.5)
    original = lesion_bootstrap_intervals(labels, probabilities, np.arange(300), 0.5)
    assert width(by_lesion["roc_auc"]) == pytest.approx(width(original["roc_auc"]), rel=0.2)
    assert width(by_image["roc_auc"]) < 0.7 * width(by_lesion["roc_auc"])  # about 1/sqrt(4)


def test_one_class_or_no_images_gives_no_auc_interval_and_no_error():
    only_benign = lesion_bootstrap_intervals(np.zeros(10), np.linspace(0, 1, 10), np.arange(10), 0.5)
    assert only_benign["roc_auc"] is None and only_benign["sensitivity"] is None
    low, high = only_benign["specificity"]  # 5 of the 10 fall below 0.5
    assert 0 <= low < 0.5 < high <= 1
    empty = lesion_bootstrap_intervals(np.zeros(0), np.zeros(0), np.zeros(0), 0.5)
    assert empty["n_lesions"] == 0 and empty["roc_auc"] is None


def test_the_shipped_bundle_test_auc_interval():
    split = pd.read_csv(DEFAULT_BUNDLE / "test_split.csv")
    intervals = lesion_bootstrap_intervals(split["label"], split["probability"], split["lesion_id"], 0.5)
    auc = roc_auc_score(split["label"], split["probability"])
    low, high = intervals["roc_auc"]
    assert low < auc < high and 0.03 < high - low < 0.09


def test_paired_difference_is_zero_for_one_model_and_positive_for_a_better_one():
    from melanoma.evaluate import paired_auc_difference

    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(60), np.zeros(240)].astype(int)
    lesions = np.arange(300) // 2  # two images per lesion
    weak = labels * 0.3 + rng.uniform(0, 1, 300)
    strong = labels * 0.9 + rng.uniform(0, 1, 300)
    same = paired_auc_difference(labels, weak, weak, lesions, resamples=500)
    assert same["difference"] == 0 and same["interval"] == [0.0, 0.0]
    better = paired_auc_difference(labels, weak, strong, lesions, resamples=500)
    assert better["difference"] > 0.1 and 0 < better["interval"][0] <= better["difference"] <= better["interval"][1]
    assert better["n_lesions"] == 150 and better["share_of_draws_above_zero"] == 1.0


def test_evaluate_scores_every_image_of_a_folder_and_its_held_out_part_apart(small_folder):
    from melanoma.bundle import load_bundle
    from melanoma.folder_evaluation import evaluate_folder

    result = evaluate_folder(DEFAULT_BUNDLE, small_folder)
    assert (result["n_images"], result["n_melanoma"], result["dropped"]) == (90, 30, 0)
    assert result["threshold"] == pytest.approx(load_bundle(DEFAULT_BUNDLE).threshold)
    # the shipped model takes the patient's age, sex and site, and the folder has them
    assert sum(map(sum, result["confusion_matrix"])) == 90 and result["metadata_used"] == ["age", "sex", "site"]
    held_out = set(pd.read_csv(small_folder / "HAM10000_metadata.csv")["image_id"]) & set(
        load_bundle(DEFAULT_BUNDLE).test_split()["image_id"])
    assert result["bundle_test_split_part"]["n_images"] == len(held_out) > 0
    # the not-a-lesion counts of the held-out part are its own, a part of the folder's
    part, whole = result["bundle_test_split_part"]["not_a_lesion"], result["not_a_lesion"]
    assert part["would_refuse"] <= whole["would_refuse"] and part["would_refuse_melanoma"] <= part["would_refuse"]
