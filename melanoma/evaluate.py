"""Metrics: ROC-AUC, the operating threshold and the rates at it, and their lesion-level intervals.

scikit-learn is imported where it is used: the app imports this module (through its API's local
check) at start-up, and a second of importing scikit-learn and SciPy there delays the first page."""
from __future__ import annotations

import numpy as np

from melanoma.call import suspicious


def roc_auc(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """None where only one class is present (AUC is undefined there)."""
    from sklearn import metrics as skm
    if len(np.unique(labels)) < 2:
        return None
    return float(skm.roc_auc_score(labels, probabilities))


def choose_threshold(labels: np.ndarray, probabilities: np.ndarray, target_sensitivity: float,
                     sample_weight: np.ndarray | None = None) -> float:
    """The highest threshold whose sensitivity reaches the target (so specificity is as high as
    that sensitivity allows). Picked on validation data, never on the test split. `sample_weight`
    counts each image so many times (a bootstrap draw's weights)."""
    return choose_thresholds(labels, probabilities, (target_sensitivity,), sample_weight)[0]


def choose_thresholds(labels: np.ndarray, probabilities: np.ndarray, target_sensitivities,
                      sample_weight: np.ndarray | None = None) -> list[float]:
    """`choose_threshold` for several targets from one ROC curve."""
    from sklearn import metrics as skm
    if labels.sum() == 0:
        return [0.5] * len(target_sensitivities)
    fpr, tpr, thresholds = skm.roc_curve(labels, probabilities, sample_weight=sample_weight)
    return [float(min(max(float(thresholds[np.flatnonzero(tpr >= target)[0]]), 0.0), 1.0))
            for target in target_sensitivities]


def metrics_at(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict:
    from sklearn import metrics as skm
    labels = np.asarray(labels).astype(int)
    predicted = suspicious(probabilities, threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()

    def ratio(a, b):
        return float(a / b) if b else None

    precision = ratio(tp, tp + fp)
    sensitivity = ratio(tp, tp + fn)
    specificity = ratio(tn, tn + fp)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    balanced = None if sensitivity is None or specificity is None else (sensitivity + specificity) / 2
    return {
        "n_images": int(len(labels)),
        "n_melanoma": int(labels.sum()),
        "roc_auc": roc_auc(labels, probabilities),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "precision": precision,
        "f1": f1,
        "accuracy": float((predicted == labels).mean()) if len(labels) else None,
        "balanced_accuracy": balanced,
        "threshold": float(threshold),
        "confusion_matrix": [[int(tn), int(fp)], [int(fn), int(tp)]],  # rows: true not-mel, mel
    }


def predictive_values(sensitivity: float | None, specificity: float | None, prevalence: float) -> dict:
    """PPV (chance that a referred lesion is a melanoma) and NPV (chance that a cleared one is not),
    at a given melanoma prevalence: they depend on it as much as on the model."""
    if sensitivity is None or specificity is None:
        return {"ppv": None, "npv": None, "prevalence": prevalence}
    referred = sensitivity * prevalence + (1 - specificity) * (1 - prevalence)
    cleared = (1 - sensitivity) * prevalence + specificity * (1 - prevalence)
    return {"ppv": sensitivity * prevalence / referred if referred else None,
            "npv": specificity * (1 - prevalence) / cleared if cleared else None, "prevalence": prevalence}


def lesion_draw_weights(lesion_ids, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Bootstrap draws of whole lesions with replacement, as (resamples x images) weights: one draw is
    how often each lesion was picked, and an image counts as often as its lesion. Also the number of
    lesions. Images of one lesion are not independent, so resampling images would give too narrow
    an interval."""
    _, lesion_of_image = np.unique(np.asarray(lesion_ids), return_inverse=True)
    n_lesions = int(lesion_of_image.max()) + 1
    counts = rng.multinomial(n_lesions, np.full(n_lesions, 1 / n_lesions), size=resamples)
    return counts[:, lesion_of_image].astype(float), n_lesions


def lesion_bootstrap_intervals(labels: np.ndarray, probabilities: np.ndarray, lesion_ids, threshold: float,
                               *, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Percentile intervals for ROC-AUC, sensitivity and specificity at `threshold`, resampling
    whole lesions with replacement. Images of one lesion are not independent, so resampling images
    would give too narrow an interval."""
    labels = np.asarray(labels).astype(int)
    probabilities = np.asarray(probabilities, dtype=float)
    result = {"level": level, "resamples": resamples, "unit": "lesion", "n_lesions": 0,
              "roc_auc": None, "sensitivity": None, "specificity": None}
    if len(labels) == 0:
        return result
    weights, result["n_lesions"] = lesion_draw_weights(lesion_ids, resamples, np.random.default_rng(seed))
    positives, negatives = weights @ labels, weights @ (1 - labels)
    called = suspicious(probabilities, threshold)
    draws = {"sensitivity": weights @ (called & (labels == 1)) / np.where(positives, positives, np.nan),
             "specificity": weights @ (~called & (labels == 0)) / np.where(negatives, negatives, np.nan),
             "roc_auc": _weighted_auc(labels, probabilities, weights)}
    tail = 100 * (1 - level) / 2
    for name, values in draws.items():
        values = values[np.isfinite(values)]  # a draw with one class only has no AUC
        result[name] = np.percentile(values, [tail, 100 - tail]).round(4).tolist() if len(values) else None
    return result


def paired_auc_difference(labels: np.ndarray, probabilities_a: np.ndarray, probabilities_b: np.ndarray, lesion_ids,
                          *, resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """AUC(b) - AUC(a) on the same images, with a percentile interval from resampling whole
    lesions: both models are scored on each draw, so what the images share cancels out."""
    labels = np.asarray(labels).astype(int)
    weights, n_lesions = lesion_draw_weights(lesion_ids, resamples, np.random.default_rng(seed))
    draws = (_weighted_auc(labels, np.asarray(probabilities_b, float), weights)
             - _weighted_auc(labels, np.asarray(probabilities_a, float), weights))
    draws = draws[np.isfinite(draws)]
    tail = 100 * (1 - level) / 2
    return {"difference": roc_auc(labels, probabilities_b) - roc_auc(labels, probabilities_a),
            "interval": np.percentile(draws, [tail, 100 - tail]).round(4).tolist(), "level": level,
            "resamples": resamples, "unit": "lesion", "n_lesions": n_lesions,
            "share_of_draws_above_zero": round(float((draws > 0).mean()), 4)}


def paired_worst_source_difference(labels: np.ndarray, probabilities_a: np.ndarray, probabilities_b: np.ndarray,
                                   lesion_ids, sources, *, resamples: int = 2000, level: float = 0.95,
                                   seed: int = 0) -> dict:
    """b's lowest per-source AUC minus a's lowest, on the same images, with a percentile interval:
    each draw resamples whole lesions within each source and scores both models on it, so the two
    minima may fall on different sources and what the images share still cancels out."""
    labels, sources = np.asarray(labels).astype(int), np.asarray(sources)
    lesion_ids = np.asarray(lesion_ids)
    probabilities = {"a": np.asarray(probabilities_a, float), "b": np.asarray(probabilities_b, float)}
    rng = np.random.default_rng(seed)
    points, draws = {"a": {}, "b": {}}, {"a": [], "b": []}
    for source in dict.fromkeys(sources.tolist()):
        rows = np.flatnonzero(sources == source)
        weights, _ = lesion_draw_weights(lesion_ids[rows], resamples, rng)
        for model, values in probabilities.items():
            points[model][source] = roc_auc(labels[rows], values[rows])
            draws[model].append(_weighted_auc(labels[rows], values[rows], weights))
    if any(auc is None for per_source in points.values() for auc in per_source.values()):
        raise ValueError("every source needs melanomas and other lesions for a per-source AUC")
    worst = {model: min(per_source, key=per_source.get) for model, per_source in points.items()}
    differences = np.min(draws["b"], axis=0) - np.min(draws["a"], axis=0)  # NaN where a draw lost a class
    differences = differences[np.isfinite(differences)]
    tail = 100 * (1 - level) / 2
    return {"a": {"source": worst["a"], "roc_auc": points["a"][worst["a"]]},
            "b": {"source": worst["b"], "roc_auc": points["b"][worst["b"]]},
            "difference": points["b"][worst["b"]] - points["a"][worst["a"]],
            "interval": np.percentile(differences, [tail, 100 - tail]).round(4).tolist(), "level": level,
            "resamples": resamples, "unit": "lesion, within each source",
            "share_of_draws_above_zero": round(float((differences > 0).mean()), 4)}


def _weighted_auc(labels: np.ndarray, probabilities: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC for each row of `weights` at once (the weighted Mann-Whitney statistic, ties
    counted half), since sklearn's roc_auc_score takes about 6 ms a call: 12 s for 2,000 draws."""
    order = np.argsort(probabilities, kind="stable")
    sorted_probabilities = probabilities[order]
    tie_starts = np.flatnonzero(np.r_[True, np.diff(sorted_probabilities) > 0])
    sorted_weights, sorted_labels = weights[:, order], labels[order]
    positive = np.add.reduceat(sorted_weights * sorted_labels, tie_starts, axis=1)
    negative = np.add.reduceat(sorted_weights * (1 - sorted_labels), tie_starts, axis=1)
    negatives_below = np.cumsum(negative, axis=1) - negative
    pairs = positive.sum(axis=1) * negative.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (positive * (negatives_below + 0.5 * negative)).sum(axis=1) / pairs


def roc_points(labels: np.ndarray, probabilities: np.ndarray, max_points: int = 200) -> dict:
    from sklearn import metrics as skm
    if len(np.unique(labels)) < 2:
        return {"fpr": [], "tpr": [], "thresholds": []}
    fpr, tpr, thresholds = skm.roc_curve(labels, probabilities)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).astype(int))
    thresholds = np.clip(thresholds, 0.0, 1.0)  # sklearn puts +inf first
    return {"fpr": fpr[keep].round(5).tolist(), "tpr": tpr[keep].round(5).tolist(),
            "thresholds": thresholds[keep].round(5).tolist()}
