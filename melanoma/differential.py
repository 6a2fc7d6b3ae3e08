"""The differential: probabilities of HAM10000's 7 diagnoses for one photo.

A network with its own `diagnosis` output (model v2) gives them directly. For a network without
one (v1 learnt melanoma-vs-not only), a multinomial logistic regression on its frozen pooled
features, fitted on the training split, gives them. Either way the result is keyed by KNOWN_DX.

What a user sees (`with_melanoma`) has one melanoma figure: the calibrated P(melanoma) of the
melanoma output, and the other six diagnoses share the rest in the proportions the head gives them.

Applying the fitted head needs numpy alone; scikit-learn is imported only to fit and to report.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from melanoma.config import KNOWN_DX, MELANOMA_DX
from melanoma.wording import DIFFERENTIAL_NAMES

NETWORK_SOURCE = "the network's own diagnosis output"
FITTED_SOURCE = "a logistic regression on the network's frozen pooled features, fitted on the training split"
PENALTY_C = 0.1  # stronger than sklearn's default: 2,048 correlated features, ~6,000 images


@dataclass
class FittedHead:
    """Standardise the pooled features, then a softmax over 7 linear scores."""

    mean: np.ndarray  # (features,)
    scale: np.ndarray  # (features,)
    coef: np.ndarray  # (7, features)
    intercept: np.ndarray  # (7,)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = ((np.asarray(features, np.float32) - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FittedHead:
        return cls(**{name: np.asarray(arrays[name], np.float32) for name in ("mean", "scale", "coef", "intercept")})


def fit_head(features: np.ndarray, diagnoses: np.ndarray) -> FittedHead:
    """`diagnoses` are indices into KNOWN_DX. A diagnosis absent from the training rows (a smoke run)
    keeps probability ~0 rather than breaking the 7-column layout."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    present = np.unique(diagnoses)
    coef = np.zeros((len(KNOWN_DX), features.shape[1]), np.float32)
    intercept = np.full(len(KNOWN_DX), -30.0, np.float32)  # exp(-30): never predicted
    if len(present) == 1:
        intercept[present[0]] = 0.0
    else:
        regression = LogisticRegression(C=PENALTY_C, max_iter=2000).fit(scaler.transform(features), diagnoses)
        rows = regression.coef_ if len(present) > 2 else np.vstack([-regression.coef_, regression.coef_]) / 2
        offsets = regression.intercept_ if len(present) > 2 else np.r_[-regression.intercept_, regression.intercept_] / 2
        coef[present], intercept[present] = rows, offsets
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return FittedHead(mean=scaler.mean_.astype(np.float32), scale=scale.astype(np.float32), coef=coef,
                      intercept=intercept)


def with_melanoma(probabilities: np.ndarray, melanoma: np.ndarray) -> np.ndarray:
    """The differential (N x 7) with `melanoma` (N,), the headline P(melanoma), as its melanoma share;
    the other diagnoses keep their proportions among themselves (evenly, where the head gives them none)."""
    column = KNOWN_DX.index(MELANOMA_DX)
    others = np.asarray(probabilities, np.float64).copy()
    others[:, column] = 0.0
    total = others.sum(axis=1, keepdims=True)
    even = np.full_like(others, 1 / (len(KNOWN_DX) - 1))
    even[:, column] = 0.0
    shares = np.where(total > 0, others / np.where(total > 0, total, 1.0), even)
    melanoma = np.clip(np.asarray(melanoma, np.float64), 0.0, 1.0)
    combined = shares * (1.0 - melanoma)[:, None]
    combined[:, column] = melanoma
    return combined


def as_named(probabilities: np.ndarray) -> dict[str, float]:
    """One photo's 7 probabilities by full diagnosis name, most likely first."""
    named = {DIFFERENTIAL_NAMES[dx]: float(p) for dx, p in zip(KNOWN_DX, probabilities)}
    return dict(sorted(named.items(), key=lambda item: item[1], reverse=True))


def report(diagnoses: np.ndarray, probabilities: np.ndarray) -> dict:
    """Per-diagnosis one-vs-rest ROC-AUC and the 7x7 confusion matrix (rows: truth; columns: the most
    likely diagnosis), in KNOWN_DX order."""
    from sklearn.metrics import confusion_matrix, roc_auc_score

    auc = {}
    for index, dx in enumerate(KNOWN_DX):
        truth = diagnoses == index
        auc[dx] = float(roc_auc_score(truth, probabilities[:, index])) if 0 < truth.sum() < len(truth) else None
    matrix = confusion_matrix(diagnoses, probabilities.argmax(axis=1), labels=range(len(KNOWN_DX)))
    return {"classes": list(KNOWN_DX), "roc_auc": auc, "confusion_matrix": matrix.tolist(),
            "accuracy": float((probabilities.argmax(axis=1) == diagnoses).mean()) if len(diagnoses) else None,
            "n_images": int(len(diagnoses))}
