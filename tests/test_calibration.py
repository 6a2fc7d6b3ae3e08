"""Calibration: the network's score becomes a probability that matches how often it is right."""
import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from melanoma.calibration import calibrate, fit_platt, reliability


def overconfident(n, seed=0):
    """Scores as a balanced training makes them: about 11% melanoma, scored as if half were."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.11).astype(int)
    true_logit = np.log(0.11 / 0.89) + 2.0 * rng.normal(size=n) + 3.0 * labels
    true_probability = 1 / (1 + np.exp(-true_logit))
    labels = (rng.random(n) < true_probability).astype(int)
    scores = 1 / (1 + np.exp(-(true_logit + 2.5)))  # pushed up, as balancing does
    return labels, scores


def test_platt_brings_mean_probability_to_the_melanoma_rate_and_keeps_the_ranking():
    fit_labels, fit_scores = overconfident(3000, seed=1)
    labels, scores = overconfident(3000, seed=2)
    calibration = fit_platt(fit_labels, fit_scores)
    probabilities = calibrate(calibration, scores)
    before, after = reliability(labels, scores), reliability(labels, probabilities)
    assert before["mean_probability"] > 2 * before["melanoma_rate"]
    assert after["mean_probability"] == pytest.approx(after["melanoma_rate"], abs=0.02)
    assert after["brier"] < 0.8 * before["brier"]
    assert roc_auc_score(labels, probabilities) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    order = np.argsort(scores, kind="stable")
    assert np.all(np.diff(probabilities[order]) >= 0)


def test_a_threshold_maps_to_the_same_calls():
    labels, scores = overconfident(2000)
    calibration = fit_platt(labels, scores)
    threshold = 0.67
    mapped = float(calibrate(calibration, np.array([threshold]))[0])
    assert np.array_equal(scores >= threshold, calibrate(calibration, scores) >= mapped)


def test_no_fit_where_it_would_not_keep_the_order():
    assert fit_platt(np.zeros(20), np.linspace(0, 1, 20)) is None  # one class only
    labels = np.r_[np.ones(10), np.zeros(10)]
    assert fit_platt(labels, np.linspace(0, 1, 20)) is None  # melanoma scored lower
    scores = np.array([0.2, 0.9], np.float32)
    assert np.array_equal(calibrate(None, scores), scores)


def test_extreme_scores_stay_finite():
    labels, scores = overconfident(500)
    probabilities = calibrate(fit_platt(labels, scores), np.array([0.0, 1.0, 0.5]))
    assert np.all(np.isfinite(probabilities)) and np.all((probabilities >= 0) & (probabilities <= 1))


def test_a_steep_fit_gives_0_and_1_without_overflow_warnings():
    steep = {"method": "platt", "slope": 400.0, "intercept": -3.0}  # as a barely trained model's fit
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning would land on predict's stderr
        probabilities = calibrate(steep, np.array([1e-6, 0.2, 0.5, 0.99], np.float32))
    assert probabilities.dtype == np.float32
    assert probabilities[0] == 0.0 and probabilities[-1] == 1.0
    assert np.all(np.diff(probabilities) >= 0)


def test_validation_photos_the_score_separates_give_a_finite_fit_not_a_cliff():
    """A small or barely trained model's validation split can be perfectly separated by its score
    (a smoke bundle's 11 photos, one melanoma, scored within 4e-3 of each other). A plain fit's slope
    then runs off (3e5 was seen), so one float32 step in a score moved P by 1e-3 and more; Platt's
    targets keep it finite and no photo gets a certainty 11 photos cannot give."""
    labels = np.r_[np.zeros(10), 1]
    scores = np.r_[np.linspace(0.5352, 0.5380, 10), 0.5387].astype(np.float32)
    calibration = fit_platt(labels, scores)
    assert calibration is not None and np.isfinite(calibration["slope"])
    probabilities = calibrate(calibration, scores)
    assert np.all((probabilities > 0.01) & (probabilities < 0.99)) and probabilities.argmax() == 10
    one_step = calibrate(calibration, np.nextafter(scores, np.float32(1)))
    assert np.max(np.abs(one_step - probabilities)) < 1e-3


def test_on_hundreds_of_photos_the_targets_barely_move_the_fit():
    labels, scores = overconfident(3000, seed=3)
    from sklearn.linear_model import LogisticRegression

    logits = np.log(scores / (1 - scores))[:, None]
    plain = LogisticRegression(C=np.inf).fit(logits, labels)
    calibration = fit_platt(labels, scores)
    assert calibration["slope"] == pytest.approx(plain.coef_[0, 0], rel=0.02)
    assert calibration["intercept"] == pytest.approx(plain.intercept_[0], abs=0.05)
