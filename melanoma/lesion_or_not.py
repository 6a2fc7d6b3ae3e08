"""Lesion photo or not, learnt from both sides (issue 42): the second not-a-lesion check.

The first (`melanoma.novelty`) knows only lesion photos: it refuses what lies far from them, and a
cat, a plate of food or a street scene did not lie far enough. This one is a logistic regression
told both what a dermatoscopic lesion photo is (the training split's photos, and copies of them under
other cameras' colours) and what it is not (`melanoma.negatives`: renders, scikit-image's photos and
their crops, faces, bare skin from an ordinary camera), on stage 3's pooled activations (log,
standardised) and four properties of a dermatoscopic photo read from the network's input: its
colourfulness, how bright its corners are against the whole (a dermatoscope's dark rim), how bright
its central third is (a lesion in the middle), and the spread of brightness. A picture is refused
when either check refuses it.

Its threshold, like the first's, comes from lesion photos alone: per source of the bundle, the
CLASSIFIER_PERCENTILE-th percentile of its validation photos' scores, the loosest kept, so about 1
lesion photo in 200 of each source is refused by it by construction. How it was chosen (on the
fitting pictures alone) and what it does on pictures from other sources: docs/limits.md.

Applying it needs numpy alone; scikit-learn is imported only to fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from melanoma.novelty import NOVELTY_LOG_OFFSET, colourfulness

CLASSIFIER_PERCENTILE = 99.5

REGULARISATION = 1.0  # scikit-learn's C, chosen by leaving one kind of picture out (docs/limits.md)

PROPERTY_WEIGHT = 5.0  # the properties below are each about 0-2; this puts them on the activations' scale


def _log(activations: np.ndarray) -> np.ndarray:
    return np.log(np.asarray(activations, np.float32) + NOVELTY_LOG_OFFSET)


def photo_properties(images: np.ndarray) -> np.ndarray:
    """Per uint8 image (N, H, W, 3): colourfulness / 50, the corners' mean brightness over the whole's,
    the central third's over the whole's, and the brightness's standard deviation / 64 (N, 4)."""
    brightness = np.asarray(images, np.float32).mean(axis=-1)
    height, width = brightness.shape[1:]
    corner_h, corner_w = height // 4, width // 4
    whole = brightness.mean(axis=(1, 2)) + 1
    corners = np.concatenate([brightness[:, :corner_h, :corner_w], brightness[:, :corner_h, -corner_w:],
                              brightness[:, -corner_h:, :corner_w], brightness[:, -corner_h:, -corner_w:]],
                             axis=1).mean(axis=(1, 2))
    centre = brightness[:, height // 3:2 * height // 3, width // 3:2 * width // 3].mean(axis=(1, 2))
    return np.stack([colourfulness(images) / 50, corners / whole, centre / whole,
                     brightness.std(axis=(1, 2)) / 64], axis=1)


@dataclass
class LesionClassifier:
    location: np.ndarray  # (512,) mean of the lesion photos' log activations
    scale: np.ndarray  # (512,) their standard deviation
    weights: np.ndarray  # (512 + 4,) toward "not a lesion photo": the activations', then the properties'
    bias: float
    threshold: float  # scores above this are refused

    def __call__(self, activations: np.ndarray, images: np.ndarray) -> np.ndarray:
        """How much a picture looks like one that is not a lesion photo (log-odds; higher: less a
        lesion), from its stage-3 activations and its uint8 image as the network sees it."""
        return (classifier_inputs(activations, images, self.location, self.scale) @ self.weights
                + self.bias).astype(np.float32)

    def refused(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) > self.threshold

    def arrays(self) -> dict[str, np.ndarray]:
        return {"location": self.location, "scale": self.scale, "weights": self.weights,
                "bias": np.float32(self.bias), "threshold": np.float32(self.threshold)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> LesionClassifier:
        return cls(location=np.asarray(arrays["location"], np.float32), scale=np.asarray(arrays["scale"], np.float32),
                   weights=np.asarray(arrays["weights"], np.float32), bias=float(arrays["bias"]),
                   threshold=float(arrays["threshold"]))


def classifier_inputs(activations: np.ndarray, images: np.ndarray, location: np.ndarray,
                      scale: np.ndarray) -> np.ndarray:
    return np.concatenate([(_log(activations) - location) / scale, PROPERTY_WEIGHT * photo_properties(images)], axis=1)


def fit_lesion_classifier(lesions: tuple[np.ndarray, np.ndarray], others: tuple[np.ndarray, np.ndarray],
                          validation: tuple[np.ndarray, np.ndarray], val_sources: np.ndarray | None = None,
                          percentile: float = CLASSIFIER_PERCENTILE,
                          regularisation: float = REGULARISATION) -> LesionClassifier:
    """Lesion photos against other pictures, each given as (stage-3 activations, uint8 images), the
    classes weighted equally; the threshold from the validation photos (each source's percentile, the
    loosest kept)."""
    from sklearn.linear_model import LogisticRegression

    logged = _log(lesions[0])
    location, scale = logged.mean(axis=0), logged.std(axis=0) + 1e-6
    inputs = np.concatenate([classifier_inputs(*lesions, location, scale), classifier_inputs(*others, location, scale)])
    targets = np.r_[np.zeros(len(lesions[0])), np.ones(len(others[0]))]
    fitted = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=5000).fit(inputs, targets)
    classifier = LesionClassifier(location=location.astype(np.float32), scale=scale.astype(np.float32),
                                  weights=fitted.coef_[0].astype(np.float32), bias=float(fitted.intercept_[0]),
                                  threshold=np.inf)
    scores = classifier(*validation)
    groups = [np.arange(len(scores))] if val_sources is None else \
        [np.flatnonzero(val_sources == source) for source in dict.fromkeys(val_sources)]
    classifier.threshold = max(float(np.percentile(scores[rows], percentile)) for rows in groups)
    return classifier
