"""Pooled features standardised and reduced to a few dozen directions (PCA on the training split).

The not-a-lesion score and the similar-cases index each work in such a reduced space: a Mahalanobis
distance needs a covariance it can estimate, and an index of every training image must stay small.
Standardising first keeps a few high-variance channels from deciding everything. Applying it needs
numpy alone; scikit-learn is imported only to fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Projection:
    mean: np.ndarray  # (features,)
    scale: np.ndarray  # (features,) the training split's standard deviations
    components: np.ndarray  # (components, features), orthonormal rows

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return ((np.asarray(features, np.float32) - self.mean) / self.scale) @ self.components.T

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale, "components": self.components}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Projection:
        return cls(**{name: np.asarray(arrays[name], np.float32) for name in ("mean", "scale", "components")})


def fit_projection(features: np.ndarray, components: int) -> tuple[Projection, float]:
    """(the projection, the share of the standardised features' variance it keeps)."""
    from sklearn.decomposition import PCA

    features = np.asarray(features, np.float32)
    mean, scale = features.mean(axis=0), features.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    pca = PCA(n_components=min(components, *features.shape), random_state=0).fit((features - mean) / scale)
    return (Projection(mean=mean, scale=scale, components=pca.components_.astype(np.float32)),
            float(pca.explained_variance_ratio_.sum()))
