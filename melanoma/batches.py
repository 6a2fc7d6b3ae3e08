"""Training batches for Keras backends without tf.data (JAX on a lent GPU machine).

The same balanced epoch indices and the same Keras augmentation layers as the tf.data pipeline in
`data.py`, served by a `keras.utils.PyDataset` whose worker threads prepare the next batches while
the accelerator trains on the current one.

Augmenting one batch at a time fed only ~285 training images/s per process on an H200
(2026-11-27): each eager call of the augmentation layers cost ~0.1 s, mostly per-operation
dispatch rather than arithmetic, so several batches are augmented in one call: 8 per call fed
5.9x the images/s there (`benchmarks/augmentation_feed.py`). Moving the augmentation into the
compiled training step was tried and dropped: on XLA's CPU backend it made a step ~8x slower
(3 s -> 25-33 s at batch 16).
"""
from __future__ import annotations

import threading

import keras
import numpy as np

from melanoma.model import one_hot_targets


def one_hot(indices: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[indices]


class AugmentedBatches(keras.utils.PyDataset):
    """Batches of (float32 images in [0, 255], targets as `data.make_train_dataset` makes them);
    the last partial batch is dropped, as in the tf.data pipeline."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int,
                 augmenter=None, workers: int = 2, batches_per_augment_call: int = 8,
                 diagnoses: np.ndarray | None = None, metadata: np.ndarray | None = None):
        super().__init__(workers=workers, use_multiprocessing=False)
        self.images, self.labels, self.indices, self.diagnoses = images, labels, indices, diagnoses
        self.metadata = metadata
        self.batch_size, self.augmenter = batch_size, augmenter
        self.batches_per_augment_call = batches_per_augment_call
        # The augmentation layers draw from one seed generator; two threads advancing it at once
        # could repeat a draw, so one chunk is augmented at a time (training still overlaps).
        self._augment_lock = threading.Lock()
        self._chunks: dict[int, np.ndarray] = {}  # augmented images of chunks not yet fully served
        self._served: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.indices) // self.batch_size

    def __getitem__(self, index: int):
        rows = self.indices[index * self.batch_size:(index + 1) * self.batch_size]
        images, labels = self._images(index, rows), one_hot_targets(
            self.labels[rows] if self.diagnoses is None else (self.labels[rows], self.diagnoses[rows]), one_hot)
        if self.metadata is None:
            return images, labels
        return {"image": images, "metadata": self.metadata[rows].astype(np.float32)}, labels

    def _images(self, index: int, rows: np.ndarray) -> np.ndarray:
        if self.augmenter is None:
            return self.images[rows].astype(np.float32)
        chunk, batch_in_chunk = divmod(index, self.batches_per_augment_call)
        with self._augment_lock:
            if chunk not in self._chunks:
                self._chunks[chunk] = self._augment_chunk(chunk)
            start = batch_in_chunk * self.batch_size
            images = self._chunks[chunk][start:start + self.batch_size]
            self._served[chunk] = self._served.get(chunk, 0) + 1
            if self._served[chunk] == len(self._chunk_batches(chunk)):
                del self._chunks[chunk], self._served[chunk]
        return images

    def _chunk_batches(self, chunk: int) -> range:
        first = chunk * self.batches_per_augment_call
        return range(first, min(first + self.batches_per_augment_call, len(self)))

    def _augment_chunk(self, chunk: int) -> np.ndarray:
        batches = self._chunk_batches(chunk)
        rows = self.indices[batches.start * self.batch_size:batches.stop * self.batch_size]
        augmented = self.augmenter(self.images[rows].astype(np.float32), training=True)
        return keras.ops.convert_to_numpy(keras.ops.clip(augmented, 0.0, 255.0))
