"""Training batches for Keras backends without tf.data (JAX on a lent GPU machine).

The same balanced epoch indices and the same Keras augmentation layers as the tf.data pipeline in
`data.py`, served by a `keras.utils.PyDataset` whose worker threads prepare the next batches while
the accelerator trains on the current one.

Measured on an H200 (2026-11-27): this feeds ~285 training images/s per process, bound by the
eager augmentation (~0.1 s a batch) rather than the GPU, so seven processes at once trained ~2,000
images/s in all. Moving the augmentation into the compiled training step was tried and dropped:
on XLA's CPU backend it made a step ~8x slower (3 s -> 25-33 s at batch 16), and it could not be
measured on a GPU in the time that session had.
"""
from __future__ import annotations

import threading

import keras
import numpy as np

from melanoma.config import CLASS_NAMES


class AugmentedBatches(keras.utils.PyDataset):
    """Batches of (float32 images in [0, 255], one-hot labels); the last partial batch is dropped,
    as in the tf.data pipeline."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int,
                 augmenter=None, workers: int = 2):
        super().__init__(workers=workers, use_multiprocessing=False)
        self.images, self.labels, self.indices = images, labels, indices
        self.batch_size, self.augmenter = batch_size, augmenter
        # The augmentation layers draw from one seed generator; two threads advancing it at once
        # could repeat a draw, so one batch is augmented at a time (training still overlaps).
        self._augment_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.indices) // self.batch_size

    def __getitem__(self, index: int):
        rows = self.indices[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.images[rows].astype(np.float32)
        if self.augmenter is not None:
            with self._augment_lock:
                augmented = self.augmenter(images, training=True)
            images = keras.ops.convert_to_numpy(keras.ops.clip(augmented, 0.0, 255.0))
        return images, np.eye(len(CLASS_NAMES), dtype=np.float32)[self.labels[rows]]
