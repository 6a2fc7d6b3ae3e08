"""Probabilities of melanoma from a bundle, through one compiled (traced) function.

The compiled function sees only two input shapes (1 image, or a padded batch of PREDICT_BATCH),
so it is traced at most twice per process and never again. Tracing costs ~1.7 s here, and a
compiled call is ~10x faster than an eager one (0.03 s vs 0.3 s), so the first few images of a
process go through eager calls (a command classifying one file answers sooner) and the function is
compiled once more images come; the app compiles it up front with `warm_up()`.

Many files (`classify_many`) are decoded and checked in a small thread pool and classified in
batches of PREDICT_BATCH. One Predictor serves all of the app's sessions, each on its own thread.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from melanoma.bundle import Bundle, load_bundle, load_model
from melanoma.calibration import calibrate
from melanoma.config import (CALL_NOT_SUSPICIOUS, CALL_SUSPICIOUS, EAGER_IMAGES_BEFORE_COMPILING, IMAGE_SHAPE,
                             INFERENCE_JIT_COMPILE, PAD_BATCH_FROM, PREDICT_BATCH, PREPARE_THREADS)
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


def eager_probabilities(model, images: np.ndarray) -> np.ndarray:
    return np.asarray(model(np.asarray(images, np.float32), training=False)[:, 1]).astype(np.float32)


def predict_in_batches(forward, images: np.ndarray, batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """P(melanoma) for uint8 images (N, H, W, 3). Full batches go as they are; a smaller rest is
    padded to the fixed shape if it is large enough to pay for the padding, else sent one image at
    a time (a padded batch costs as much as a full one)."""
    if len(images) == 0:
        return np.zeros((0,), np.float32)
    out = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        if len(chunk) < PAD_BATCH_FROM:
            out += [np.asarray(forward(chunk[i:i + 1])) for i in range(len(chunk))]
            continue
        padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        out.append(np.asarray(forward(padded))[:len(chunk)])
    return np.concatenate(out).astype(np.float32)


@dataclass
class Prediction:
    name: str
    probability: float | None = None
    suspicious: bool | None = None
    call: str | None = None
    error: str | None = None
    prepared: PreparedImage | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict:
        if not self.ok:
            return {"file": self.name, "error": self.error}
        return {"file": self.name, "probability_melanoma": round(self.probability, 4),
                "suspicious": self.suspicious, "call": self.call}


class Predictor:
    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.model = load_model(bundle)
        self.threshold = bundle.threshold
        self._forward = compiled_forward(self.model)
        self._eager_images_left = EAGER_IMAGES_BEFORE_COMPILING
        self._eager_lock = threading.Lock()  # sessions on several threads share the count

    @classmethod
    def from_bundle(cls, path: str | Path | None = None) -> "Predictor":
        return cls(load_bundle(path))

    def warm_up(self) -> None:
        """Compiles the single-image function now rather than on a user's upload."""
        self._eager_images_left = 0
        self.probabilities(np.zeros((1, *IMAGE_SHAPE), np.uint8))

    def _take_eager_turn(self, count: int) -> bool:
        with self._eager_lock:
            eager = 0 < count <= self._eager_images_left
            self._eager_images_left = self._eager_images_left - count if eager else 0
            return eager

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """P(melanoma), calibrated as the bundle says (its threshold is on the same scale)."""
        if self._take_eager_turn(len(images)):
            scores = eager_probabilities(self.model, images)
        else:
            scores = predict_in_batches(self._forward, images)
        return calibrate(self.bundle.calibration, scores)

    def call_for(self, probability: float) -> tuple[bool, str]:
        suspicious = probability >= self.threshold
        return suspicious, CALL_SUSPICIOUS if suspicious else CALL_NOT_SUSPICIOUS

    def classify_bytes(self, name: str, data: bytes, display: bool = False) -> Prediction:
        """Never raises for bad input: a rejected file comes back with its one-line reason."""
        return self.classify_many([(name, data)], display=display)[0]

    def classify_many(self, files: Iterable[tuple[str, bytes]], display: bool = False) -> list[Prediction]:
        """One Prediction per (name, bytes), in order: files are decoded and checked in a small thread
        pool, and the good ones classified together, in batches."""
        files = list(files)
        if len(files) == 1:  # the app's usual single upload: no pool to start
            checked = [prepared_or_reason(files[0][1], display)]
        else:
            with ThreadPoolExecutor(min(PREPARE_THREADS, len(files)) or 1) as pool:
                checked = list(pool.map(lambda file: prepared_or_reason(file[1], display), files))
        good = [prepared for prepared in checked if isinstance(prepared, PreparedImage)]
        probabilities = iter(self.probabilities(np.stack([p.model_input for p in good])) if good else [])
        predictions = []
        for (name, _), prepared in zip(files, checked):
            if not isinstance(prepared, PreparedImage):
                predictions.append(Prediction(name=name, error=prepared))
                continue
            probability = float(next(probabilities))
            suspicious, call = self.call_for(probability)
            predictions.append(Prediction(name=name, probability=probability, suspicious=suspicious, call=call,
                                          prepared=prepared))
        return predictions


def prepared_or_reason(data: bytes, display: bool) -> PreparedImage | str:
    try:
        return prepare_image(data, display=display)
    except ImageRejected as error:
        return str(error)
