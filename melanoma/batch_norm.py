"""Precise batch norm: batch norm's moving statistics recomputed from the trained weights.

Keras keeps a running average of each batch's statistics while the weights move, over augmented
batches. When training starts from another network (progressive resizing from v1, with colour
constancy), or augments hard (a drawn dermatoscope field, camera shifts), that average describes
neither the current weights nor the photos the network will be shown. Run 18's first epoch scored
validation AUC 0.306 with Keras' averages and 0.728 with statistics recomputed on 640 plain
training photos, same weights. Recomputing them on un-augmented training photos ("precise BN",
Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021) removes the gap; it changes no weight that
training updates, so it can be switched on when a run resumes.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

PRECISE_BN_SEED = 7  # which training photos the statistics are taken from, the same every epoch


def recompute_batch_norm_statistics(model, batches: Iterable) -> int:
    """Sets every batch-norm layer's moving mean and variance to the average of its batch
    statistics over `batches` (the model's inputs); returns how many batches it saw."""
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    seen = 0
    try:
        for seen, inputs in enumerate(batches, start=1):
            for layer in norms:  # moving = moving * (n-1)/n + batch / n: the running mean of n batches
                layer.momentum = (seen - 1) / seen
            model(inputs, training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
    return seen


def plain_training_batches(images: np.ndarray, metadata: np.ndarray | None, pool: np.ndarray, count: int,
                           batch_size: int) -> Iterator:
    """Up to `count` of the photos at rows `pool` (the training split) as the network sees them at
    inference: no augmentation, their natural class mix, whole batches; with `metadata`, the
    network's input dictionary."""
    chosen = np.sort(np.random.default_rng(PRECISE_BN_SEED).permutation(np.asarray(pool))[:count])
    for start in range(0, len(chosen) - batch_size + 1, batch_size):
        rows = chosen[start:start + batch_size]
        batch = images[rows].astype(np.float32)
        yield batch if metadata is None else {"image": batch, "metadata": metadata[rows]}
