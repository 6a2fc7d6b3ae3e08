"""Probabilities of melanoma from a bundle, through one compiled (traced) function.

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
from melanoma.config import (CALL_NOT_SUSPICIOUS, CALL_SUSPICIOUS, EAGER_IMAGES_BEFORE_COMPILING,
                             INFERENCE_JIT_COMPILE, PREDICT_BATCH)
from melanoma.images import ImageRejected, PreparedImage, prepare_image
from melanoma.patient import METADATA_FEATURES, NO_INFORMATION, PatientInfo


def takes_metadata(model) -> bool:
    return any(tensor.name == "metadata" for tensor in model.inputs)


def melanoma_output(outputs):
    """The melanoma softmax among a network's outputs (a dict when it has two heads)."""
    return outputs["predictions"] if isinstance(outputs, dict) else outputs


def network_inputs(model, images, metadata):
    """What `model` is called with: the images, or {"image", "metadata"} for a metadata network."""
    return {"image": images, "metadata": metadata} if takes_metadata(model) else images


def compiled_forward(model, jit_compile: bool = INFERENCE_JIT_COMPILE):
    """(uint8 images (N, H, W, 3), metadata (N, METADATA_FEATURES)) -> the melanoma score (N,).
    Metadata is ignored by a network that does not take it."""
    import keras

    if keras.backend.backend() != "tensorflow":  # training on a lent GPU: Keras compiles predict
        def forward(images, metadata):
            inputs = network_inputs(model, np.asarray(images, np.float32), np.asarray(metadata, np.float32))
            return melanoma_output(model.predict_on_batch(inputs))[:, 1]
        return forward
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def forward(images, metadata):
        inputs = network_inputs(model, tf.cast(images, tf.float32), tf.cast(metadata, tf.float32))
        return melanoma_output(model(inputs, training=False))[:, 1]

    return forward


def eager_probabilities(model, images: np.ndarray, metadata: np.ndarray) -> np.ndarray:
    outputs = model(network_inputs(model, np.asarray(images, np.float32), metadata), training=False)
    return np.asarray(melanoma_output(outputs)[:, 1]).astype(np.float32)


def unknown_metadata(count: int) -> np.ndarray:
    return np.zeros((count, METADATA_FEATURES), np.float32)


def predict_in_batches(forward, images: np.ndarray, metadata: np.ndarray | None = None,
                       batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Scores for uint8 images (N, H, W, 3) with their metadata vectors (default: nothing known);
    the last batch is padded to the fixed shape."""
    if len(images) == 0:
        return np.zeros((0,), np.float32)
    metadata = unknown_metadata(len(images)) if metadata is None else np.asarray(metadata, np.float32)
    if len(images) == 1:
        return np.asarray(forward(images, metadata)).astype(np.float32)
    out = []
    for start in range(0, len(images), batch_size):
        chunk, chunk_metadata = images[start:start + batch_size], metadata[start:start + batch_size]
        padding = batch_size - len(chunk)
        padded = np.concatenate([chunk, np.zeros((padding, *chunk.shape[1:]), chunk.dtype)])
        padded_metadata = np.concatenate([chunk_metadata, unknown_metadata(padding)])
        out.append(np.asarray(forward(padded, padded_metadata))[:len(chunk)])
    return np.concatenate(out).astype(np.float32)


@dataclass
class Prediction:
    name: str
    probability: float | None = None
    suspicious: bool | None = None
    call: str | None = None
    error: str | None = None
    prepared: PreparedImage | None = None
    threshold: float | None = None  # of the operating mode used (with patient metadata, or image only)
    patient: PatientInfo = NO_INFORMATION  # what was given; used only where the network takes it
    metadata_used: bool = False
    image_only_probability: float | None = None  # beside `probability` when metadata was used

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict:
        if not self.ok:
            return {"file": self.name, "error": self.error}
        result = {"file": self.name, "probability_melanoma": round(self.probability, 4),
                  "suspicious": self.suspicious, "call": self.call, "threshold": round(self.threshold, 4),
                  "metadata_used": list(self.patient.given) if self.metadata_used else []}
        if self.image_only_probability is not None:
            result["probability_melanoma_image_only"] = round(self.image_only_probability, 4)
        return result


class Predictor:
    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.image_spec = bundle.image_spec
        self.takes_metadata = bundle.takes_metadata
        self.model = load_model(bundle)
        self.threshold = bundle.threshold
        self._forward = compiled_forward(self.model)
        self._eager_images_left = EAGER_IMAGES_BEFORE_COMPILING

    @classmethod
    def from_bundle(cls, path: str | Path | None = None) -> "Predictor":
        return cls(load_bundle(path))

    def warm_up(self) -> None:
        """Compiles the single-image function now rather than on a user's upload."""
        self._eager_images_left = 0
        self.probabilities(np.zeros((1, *self.image_spec.shape), np.uint8))

    def scores(self, images: np.ndarray, metadata: np.ndarray | None = None) -> np.ndarray:
        """The network's melanoma score, before calibration."""
        metadata = unknown_metadata(len(images)) if metadata is None else np.asarray(metadata, np.float32)
        if 0 < len(images) <= self._eager_images_left:
            self._eager_images_left -= len(images)
            return eager_probabilities(self.model, images, metadata)
        self._eager_images_left = 0
        return predict_in_batches(self._forward, images, metadata)

    def probabilities(self, images: np.ndarray, metadata: np.ndarray | None = None) -> np.ndarray:
        """P(melanoma), calibrated as the bundle says for the mode: with metadata when given (a
        row of zeros is "nothing known", the image-only mode), else the image alone."""
        scores = self.scores(images, metadata)
        if not self.takes_metadata:
            return calibrate(self.bundle.calibration, scores)
        known = np.zeros(len(images), bool) if metadata is None else np.asarray(metadata).any(axis=1)
        with_metadata = calibrate(self.bundle.operating_point(True)[1], scores)
        image_only = calibrate(self.bundle.operating_point(False)[1], scores)
        return np.where(known, with_metadata, image_only).astype(np.float32)

    def threshold_for(self, with_metadata: bool) -> float:
        return self.bundle.operating_point(with_metadata and self.takes_metadata)[0]

    def call_for(self, probability: float, with_metadata: bool = False) -> tuple[bool, str]:
        suspicious = probability >= self.threshold_for(with_metadata)
        return suspicious, CALL_SUSPICIOUS if suspicious else CALL_NOT_SUSPICIOUS

    def classify_bytes(self, name: str, data: bytes, display: bool = False,
                       patient: PatientInfo = NO_INFORMATION) -> Prediction:
        """Never raises for bad input: a rejected file comes back with its one-line reason.
        Patient information is used where the network takes it; the image-only probability is
        then given beside, so a user sees what the information changed."""
        try:
            prepared = prepare_image(data, self.image_spec, display=display)
        except ImageRejected as error:
            return Prediction(name=name, error=str(error), patient=patient)
        images = prepared.model_input[None]
        use_metadata = self.takes_metadata and bool(patient.given)
        if use_metadata:
            both = self.probabilities(np.concatenate([images, images]),
                                      np.stack([patient.encode(), NO_INFORMATION.encode()]))
            probability, image_only = float(both[0]), float(both[1])
        else:
            probability, image_only = float(self.probabilities(images)[0]), None
        suspicious, call = self.call_for(probability, use_metadata)
        return Prediction(name=name, probability=probability, suspicious=suspicious, call=call, prepared=prepared,
                          threshold=self.threshold_for(use_metadata), patient=patient, metadata_used=use_metadata,
                          image_only_probability=image_only)
