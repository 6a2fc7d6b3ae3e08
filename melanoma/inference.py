"""Probabilities of melanoma from a bundle, through one compiled (traced) function.

The same pass gives the pooled features the bundle's extras read (melanoma/extras.py): a photo that
does not look like a lesion is refused with no call, and an assessed one gets the differential and
its similar training cases.

The compiled function sees only two input shapes (1 image, or a padded batch of PREDICT_BATCH),
so it is traced at most twice per process and never again. Tracing costs ~1.7 s here, and a
compiled call is ~10x faster than an eager one (0.03 s vs 0.3 s), so the first few images of a
process go through eager calls (a command classifying one file answers sooner) and the function is
compiled once more images come; the app compiles it up front with `warm_up()`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melanoma.bundle import Bundle, load_bundle, load_model
from melanoma.calibration import calibrate
from melanoma.config import (CALL_NOT_SUSPICIOUS, CALL_SUSPICIOUS, EAGER_IMAGES_BEFORE_COMPILING, IMAGE_SHAPE,
                             INFERENCE_JIT_COMPILE, NOT_A_LESION_REASON, PREDICT_BATCH)
from melanoma.extras import Assessment, Extras
from melanoma.features import (MELANOMA_OUTPUT, compiled_outputs, eager_outputs, feature_network,
                               in_fixed_batches)
from melanoma.images import ImageRejected, PreparedImage, prepare_image


def compiled_forward(model, jit_compile: bool = INFERENCE_JIT_COMPILE):
    import keras

    if keras.backend.backend() != "tensorflow":  # training on a lent GPU: Keras compiles predict
        return lambda images: model.predict_on_batch(np.asarray(images, np.float32))[:, 1]
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def forward(images):
        return model(tf.cast(images, tf.float32), training=False)[:, 1]

    return forward


def predict_in_batches(forward, images: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """P(melanoma) for uint8 images (N, H, W, 3); the last batch is padded to the fixed shape."""
    if len(images) == 0:
        return np.zeros((0,), np.float32)
    return in_fixed_batches(forward, images, batch_size).astype(np.float32)


@dataclass
class Prediction:
    name: str
    probability: float | None = None
    suspicious: bool | None = None
    call: str | None = None
    error: str | None = None
    prepared: PreparedImage | None = None
    # The bundle's extras (None for a bundle without them, or a file that could not be read). A
    # file judged not a lesion has an error (no call), and the network's score only here, unreliable.
    assessment: Assessment | None = None
    unreliable_probability: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def not_a_lesion(self) -> bool:
        return self.assessment is not None and self.assessment.not_a_lesion

    def as_dict(self) -> dict:
        if not self.ok:
            result = {"file": self.name, "error": self.error}
            if self.not_a_lesion:
                result["not_a_lesion"] = {"score": round(self.assessment.not_a_lesion_score, 3),
                                          "threshold": round(self.assessment.not_a_lesion_threshold, 3),
                                          "unreliable_probability_melanoma": round(self.unreliable_probability, 4)}
            return result
        result = {"file": self.name, "probability_melanoma": round(self.probability, 4),
                  "suspicious": self.suspicious, "call": self.call}
        if self.assessment is not None:
            result.update({
                "differential": {name: round(p, 4) for name, p in self.assessment.differential.items()},
                "similar_cases": self.assessment.similar_cases,
                "similar_cases_melanoma_share": self.assessment.similar_melanoma_share,
                "not_a_lesion_score": round(self.assessment.not_a_lesion_score, 3)})
        return result


class Predictor:
    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.model = load_model(bundle)
        self.threshold = bundle.threshold
        self.extras = Extras.from_bundle(bundle)
        self._network = feature_network(self.model)  # the model's outputs plus its pooled features
        self._forward = compiled_outputs(self._network)
        self._eager_images_left = EAGER_IMAGES_BEFORE_COMPILING

    @classmethod
    def from_bundle(cls, path: str | Path | None = None) -> "Predictor":
        return cls(load_bundle(path))

    def warm_up(self) -> None:
        """Compiles the single-image function now rather than on a user's upload."""
        self._eager_images_left = 0
        self.probabilities(np.zeros((1, *IMAGE_SHAPE), np.uint8))

    def outputs(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The network's outputs and pooled features for uint8 images (N, H, W, 3)."""
        if 0 < len(images) <= self._eager_images_left:
            self._eager_images_left -= len(images)
            return eager_outputs(self._network, images)
        self._eager_images_left = 0
        if len(images) == 0:
            return {MELANOMA_OUTPUT: np.zeros((0, 2), np.float32)}
        return in_fixed_batches(self._forward, images)

    def calibrated(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """P(melanoma), calibrated as the bundle says (its threshold is on the same scale)."""
        return calibrate(self.bundle.calibration, outputs[MELANOMA_OUTPUT][:, 1].astype(np.float32))

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return self.calibrated(self.outputs(images))

    def call_for(self, probability: float) -> tuple[bool, str]:
        suspicious = probability >= self.threshold
        return suspicious, CALL_SUSPICIOUS if suspicious else CALL_NOT_SUSPICIOUS

    def classify_bytes(self, name: str, data: bytes, display: bool = False) -> Prediction:
        """Never raises for bad input: a rejected file comes back with its one-line reason."""
        try:
            prepared = prepare_image(data, display=display)
        except ImageRejected as error:
            return Prediction(name=name, error=str(error))
        outputs = self.outputs(prepared.model_input[None])
        probability = float(self.calibrated(outputs)[0])
        assessment = self.extras.assess(outputs, prepared.model_input[None])[0] if self.extras is not None else None
        if assessment is not None and assessment.not_a_lesion:
            return Prediction(name=name, error=NOT_A_LESION_REASON, prepared=prepared, assessment=assessment,
                              unreliable_probability=probability)
        suspicious, call = self.call_for(probability)
        return Prediction(name=name, probability=probability, suspicious=suspicious, call=call,
                          prepared=prepared, assessment=assessment)
