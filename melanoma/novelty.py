"""Not a lesion: how unlike the training photos an input is, from the network's own activations.

Two checks, each with a threshold set on lesion photos alone (the validation split) and never tuned
on pictures that are not lesions (those only measure it: `melanoma.lab.refusal`):
- the Mahalanobis distance of stage 3's pooled activations (logarithm, standardised, reduced by
  PCA; covariance shrunk by Ledoit-Wolf so a few thousand images estimate it well) from the
  training split's, refused above a high percentile of the validation split's distances. Stage 3
  keeps the colour and texture statistics of a dermatoscopic photo that the last layer, trained only
  to tell lesions apart, has discarded;
  The training activations include copies of training photos under random camera changes (white
  balance, gamma), so another dermatoscope's colours are not taken for "not a lesion";
- colourfulness (mean of each pixel's max minus min channel), refused below a low percentile of the
  validation split's: every training photo is in colour, so a greyscale picture is not one of them.

The same score, cut at the terciles of the accepted validation photos' scores, gives a photo's
familiarity band: how its camera and lighting compare with the training photos'. What the bands were
measured to say (they tell sources apart, not reliability within one) is `melanoma.lab.familiarity`'s
report and docs/limits.md.

Applying it needs numpy alone; scikit-learn is imported only to fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from melanoma.projection import Projection, fit_projection

NOVELTY_COMPONENTS = 64

NOVELTY_LOG_OFFSET = 1e-3  # pooled ReLU activations are skewed; their logarithm is closer to Gaussian

# Thresholds from lesion photos alone: the not-a-lesion score's at this percentile of the
# validation split (about 1 lesion photo in 200 refused by construction), and a floor on
# colourfulness at this (low) percentile, since every training photo is in colour. Never tuned
# on non-lesion pictures: those only measure it (melanoma.lab.refusal).
NOVELTY_PERCENTILE = 99.5

COLOURFULNESS_PERCENTILE = 0.25

# Fewer validation images than this cannot place a 99.5th percentile (1 in 200): such a bundle (a
# smoke run) gets no not-a-lesion check rather than one that refuses lesions at random.
NOVELTY_MIN_VALIDATION = 200

NOVELTY_CHANNEL_GAINS = (0.8, 1.25)

NOVELTY_GAMMAS = (0.7, 1.4)

FAMILIARITY_BANDS = ("most familiar third", "middle third", "least familiar third")
FAMILIARITY_QUANTILES = (1 / 3, 2 / 3)


def familiarity_edges(accepted_validation_scores: np.ndarray) -> np.ndarray:
    """The score cut-offs between the familiarity bands: terciles of the accepted validation photos' scores."""
    return np.quantile(np.asarray(accepted_validation_scores, float), FAMILIARITY_QUANTILES).astype(np.float32)


def familiarity_bands(scores: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each score's band index into FAMILIARITY_BANDS (0: most familiar)."""
    return np.searchsorted(np.asarray(edges), np.asarray(scores), side="right")


def colourfulness(images: np.ndarray) -> np.ndarray:
    """Per uint8 image (N, H, W, 3): the mean over pixels of (max channel - min channel), 0-255."""
    images = np.asarray(images, np.int16)
    return (images.max(axis=-1) - images.min(axis=-1)).mean(axis=(1, 2)).astype(np.float32)


def camera_variations(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 images as another camera might have taken them: a random gain per colour channel and a
    random gamma, each drawn log-uniformly from the configured ranges."""
    count = len(images)
    gains = np.exp(rng.uniform(*np.log(NOVELTY_CHANNEL_GAINS), (count, 1, 1, 3)))
    gammas = np.exp(rng.uniform(*np.log(NOVELTY_GAMMAS), (count, 1, 1, 1)))
    shifted = 255.0 * (np.asarray(images, np.float32) / 255.0) ** gammas * gains
    return np.clip(shifted, 0, 255).astype(np.uint8)


def _log(activations: np.ndarray) -> np.ndarray:
    return np.log(np.asarray(activations, np.float32) + NOVELTY_LOG_OFFSET)


@dataclass
class NoveltyScore:
    projection: Projection
    location: np.ndarray  # (components,) mean of the training split's reduced activations
    precision: np.ndarray  # (components, components) inverse of their shrunk covariance
    threshold: float  # distances above this are refused
    colour_floor: float  # colourfulness below this is refused
    # familiarity_edges of the accepted validation photos; empty for bundles fitted before them
    band_edges: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def __call__(self, activations: np.ndarray) -> np.ndarray:
        """The not-a-lesion score: Mahalanobis distance from the training photos (higher: less alike)."""
        centred = self.projection(_log(activations)) - self.location
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, self.precision, centred), 0.0)).astype(np.float32)

    @property
    def active(self) -> bool:
        """False for a bundle whose validation split was too small to set the thresholds."""
        return bool(np.isfinite(self.threshold))

    def refused(self, scores: np.ndarray, colours: np.ndarray) -> np.ndarray:
        return (np.asarray(scores) > self.threshold) | (np.asarray(colours) < self.colour_floor)

    @property
    def has_bands(self) -> bool:
        return len(self.band_edges) == len(FAMILIARITY_QUANTILES)

    def bands(self, scores: np.ndarray) -> np.ndarray | None:
        """Each score's familiarity band index (0: most familiar); None where the bundle has no band edges."""
        return familiarity_bands(scores, self.band_edges) if self.has_bands else None

    def arrays(self) -> dict[str, np.ndarray]:
        return {**{f"projection_{name}": value for name, value in self.projection.arrays().items()},
                "location": self.location, "precision": self.precision,
                "threshold": np.float32(self.threshold), "colour_floor": np.float32(self.colour_floor),
                "band_edges": np.asarray(self.band_edges, np.float32)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> NoveltyScore:
        projection = Projection.from_arrays({name.removeprefix("projection_"): value
                                             for name, value in arrays.items() if name.startswith("projection_")})
        return cls(projection=projection, location=np.asarray(arrays["location"], np.float32),
                   precision=np.asarray(arrays["precision"], np.float32), threshold=float(arrays["threshold"]),
                   colour_floor=float(arrays["colour_floor"]),
                   band_edges=np.asarray(arrays.get("band_edges", np.zeros(0)), np.float32))


def fit_novelty(train_activations: np.ndarray, val_activations: np.ndarray, val_colours: np.ndarray,
                percentile: float = NOVELTY_PERCENTILE, colour_percentile: float = COLOURFULNESS_PERCENTILE,
                components: int = NOVELTY_COMPONENTS, min_validation: int = NOVELTY_MIN_VALIDATION,
                val_sources: np.ndarray | None = None) -> NoveltyScore:
    """With fewer than `min_validation` validation images the thresholds cannot be placed, and the
    check refuses nothing (`active` is False). With `val_sources`, each source's validation photos
    place their own percentiles and the loosest of them is kept, so that no source's lesion photos
    (another clinic's camera) are refused more often than the percentile says."""
    from sklearn.covariance import LedoitWolf

    projection, _ = fit_projection(_log(train_activations), components)
    shrunk = LedoitWolf().fit(projection(_log(train_activations)))
    groups = [np.arange(len(val_activations))] if val_sources is None else \
        [np.flatnonzero(val_sources == source) for source in dict.fromkeys(val_sources)]
    score = NoveltyScore(projection=projection, location=shrunk.location_.astype(np.float32),
                         precision=shrunk.precision_.astype(np.float32), threshold=np.inf,
                         colour_floor=min(float(np.percentile(val_colours[rows], colour_percentile)) for rows in groups))
    if len(val_activations) < min_validation:
        score.colour_floor = -np.inf
        return score
    scores = score(val_activations)
    score.threshold = max(float(np.percentile(scores[rows], percentile)) for rows in groups)
    score.band_edges = familiarity_edges(scores[~score.refused(scores, val_colours)])
    return score
