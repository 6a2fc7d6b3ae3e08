"""Turning the network's score into a probability that means what it says.

Training sees balanced epochs (half melanoma) with label smoothing, so the raw softmax output is
far above the real melanoma rate: on the shipped model's test split, images scored 0.7-0.8 were
melanoma 21% of the time. Platt scaling, a logistic regression on the logit of the score fitted
on the validation split, maps the score to the melanoma rate of data like HAM10000 (about 11%).
It is monotone, so the ranking, the ROC-AUC and the call at the (mapped) threshold are unchanged.

Applying the map needs numpy alone; scikit-learn is imported only to fit and to report, so the
app's and `predict`'s start-up do not pay for it.
"""
from __future__ import annotations

import numpy as np

SCORE_CLIP = 1e-6  # keeps the logit finite for scores of exactly 0 or 1
RELIABILITY_BINS = 10


def _logit(scores: np.ndarray) -> np.ndarray:
    scores = np.clip(np.asarray(scores, dtype=float), SCORE_CLIP, 1 - SCORE_CLIP)
    return np.log(scores / (1 - scores))


def fit_platt(labels: np.ndarray, scores: np.ndarray) -> dict | None:
    """{"method", "slope", "intercept", "fitted_on"}, or None where a fit would not be monotone
    increasing (one class only, or a score that does not rank melanoma higher)."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return None
    # Platt's (1999) targets instead of 0 and 1. Where the score separates the validation photos
    # perfectly (a small or barely trained model's), a plain fit's slope runs off to infinity (it
    # reached 3e5), and float noise in the score then flipped P between 0 and 1. Each photo enters
    # once per class, weighted by its target. No further penalty: two parameters fitted on hundreds
    # of images need none.
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    targets = np.where(labels == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    # Fitted on the standardised logit: such scores can lie within 1e-3 of each other, too narrow for
    # the solver's tolerance on the raw scale.
    logits = _logit(scores)
    centre, spread = logits.mean(), max(logits.std(), 1e-12)
    standard = ((logits - centre) / spread)[:, None]
    as_melanoma, as_not = np.ones(len(labels)), np.zeros(len(labels))
    regression = LogisticRegression(C=np.inf).fit(np.r_[standard, standard], np.r_[as_melanoma, as_not],
                                                  sample_weight=np.r_[targets, 1 - targets])
    slope = float(regression.coef_[0, 0]) / spread
    intercept = float(regression.intercept_[0] - slope * centre)
    if not slope > 0:
        return None
    return {"method": "platt", "slope": slope, "intercept": intercept,
            "fitted_on": f"{len(labels):,} validation images ({int(labels.sum())} melanoma)"}


def calibrate(calibration: dict | None, scores: np.ndarray) -> np.ndarray:
    """The network's scores as probabilities (unchanged where the bundle has no calibration)."""
    scores = np.asarray(scores)
    if not calibration:
        return scores
    z = calibration["slope"] * _logit(scores) + calibration["intercept"]
    # 1 / (1 + exp(-z)) overflows (and warns on stderr) for the steep fits a barely trained model
    # gets; exp(-log(1 + exp(-z))) is the same sigmoid without the overflow.
    return np.exp(-np.logaddexp(0, -z)).astype(scores.dtype if scores.dtype.kind == "f" else float)


def probability_note(bundle) -> str:
    """What the probability a user sees means, for the pages that show one: calibrated to the melanoma
    rate of the validation photos it was fitted on (the bundle's sources, pooled)."""
    from melanoma.reporting import source_title

    if not bundle.calibration:
        return "P(melanoma) is the network's raw score, not calibrated: it runs high."
    rate = bundle.metrics.validation.melanoma_rate
    sources = " and ".join(source_title(source) for source in bundle.sources)
    mix = f"{sources}'s validation photos pooled" if len(bundle.sources) > 1 else sources
    calibrated = (f"P(melanoma) is calibrated to the melanoma rate of {mix} (about 1 in {round(1 / rate)})" if rate
                  else f"P(melanoma) is calibrated on {mix}")
    return f"{calibrated}; where melanoma is more common, as in a referral clinic, the real chance is higher."


def reliability(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Brier score, mean probability against the melanoma rate, and the reliability curve in
    equal-count bins (predicted mean vs observed rate per bin)."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    labels = np.asarray(labels).astype(int)
    observed, predicted = calibration_curve(labels, probabilities, n_bins=RELIABILITY_BINS, strategy="quantile")
    return {"brier": float(brier_score_loss(labels, probabilities)),
            "mean_probability": float(np.mean(probabilities)), "melanoma_rate": float(labels.mean()),
            "curve": {"predicted": predicted.round(4).tolist(), "observed": observed.round(4).tolist()}}
