"""Augmentation feed rate of `AugmentedBatches` (the JAX training path): one eager call per batch
against one per 8 batches, alternated 3 times in one process. `KERAS_BACKEND=jax python -m
benchmarks.augmentation_feed` from the repository root; results in models/experiments.md."""
import time

import keras
import numpy as np

from melanoma.batches import AugmentedBatches
from melanoma.config import IMAGE_SHAPE, TrainConfig
from melanoma.pipeline import make_augmenter

N_IMAGES, BATCH_SIZE, CHUNK_SIZES, REPEATS = 4096, 32, (1, 8), 3

print(keras.backend.backend(), flush=True)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (N_IMAGES, *IMAGE_SHAPE), dtype=np.uint8)
labels = rng.integers(0, 2, N_IMAGES)
augmenter = make_augmenter(TrainConfig())


def feed(batches_per_augment_call: int) -> AugmentedBatches:
    return AugmentedBatches(images, labels, np.arange(N_IMAGES), BATCH_SIZE, augmenter,
                            batches_per_augment_call=batches_per_augment_call)


for k in CHUNK_SIZES:
    feed(k)[0]  # warm-up: the first call traces and allocates
for rep in range(REPEATS):
    for k in CHUNK_SIZES:
        batches = feed(k)
        tick = time.perf_counter()
        for i in range(len(batches)):
            batches[i]
        seconds = time.perf_counter() - tick
        print(f"repeat {rep} batches_per_augment_call={k}: {len(batches) * BATCH_SIZE / seconds:.0f} images/s",
              flush=True)
