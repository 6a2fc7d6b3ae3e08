"""Augmentation feed rate of `AugmentedBatches` (the JAX training path): one eager call per batch
against one per 8 batches, alternated 3 times in one process. `KERAS_BACKEND=jax python -m
benchmarks.augmentation_feed` from the repository root; results in models/experiments.md."""
import time
import numpy as np
import keras
from melanoma.batches import AugmentedBatches
from melanoma.config import IMAGE_SHAPE, TrainConfig
from melanoma.data import make_augmenter

print(keras.backend.backend(), flush=True)
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (4096, *IMAGE_SHAPE), dtype=np.uint8)
labels = rng.integers(0, 2, 4096)
augmenter = make_augmenter(TrainConfig())
for k in (1, 8):
    AugmentedBatches(images, labels, np.arange(4096), 32, augmenter, batches_per_augment_call=k)[0]  # warm-up
for rep in range(3):
    for k in (1, 8):
        batches = AugmentedBatches(images, labels, np.arange(4096), 32, augmenter, batches_per_augment_call=k)
        tick = time.perf_counter()
        for i in range(len(batches)):
            batches[i]
        seconds = time.perf_counter() - tick
        print(f"repeat {rep} batches_per_augment_call={k}: {len(batches) * 32 / seconds:.0f} images/s", flush=True)
