"""The training side per epoch: balanced 50/50 within each source, augmented, resized, as a tf.data
pipeline (or, on Keras' other backends, the same batches from `batches.py`)."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from melanoma.config import TrainConfig
from melanoma.sources import DatasetError


def balanced_epoch_indices(labels: np.ndarray, factor: float, rng: np.random.Generator,
                           sources: np.ndarray | None = None,
                           factor_by_source: Mapping[str, float] | None = None) -> np.ndarray:
    """One epoch of the training side, 50/50 within each source (so neither a source nor its camera
    can stand in for the label): melanoma drawn with replacement up to factor x its count (each draw
    is augmented differently; a source in factor_by_source uses its own), not-melanoma sampled down
    to match."""
    if sources is None or len(set(sources)) == 1:
        source = None if sources is None or len(sources) == 0 else sources[0]
        return _balanced(labels, (factor_by_source or {}).get(source, factor), rng)
    chosen = []
    for source in dict.fromkeys(sources):
        rows = np.flatnonzero(sources == source)
        chosen.append(rows[_balanced(labels[rows], (factor_by_source or {}).get(source, factor), rng,
                                     f" of {source}")])
    return rng.permutation(np.concatenate(chosen))


def _balanced(labels: np.ndarray, factor: float, rng: np.random.Generator, where: str = "") -> np.ndarray:
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    if len(positives) == 0 or len(negatives) == 0:
        raise DatasetError(f"the training side{where} needs images of both classes")
    per_class = min(int(round(factor * len(positives))), len(negatives))
    extra_draws = rng.choice(positives, max(0, per_class - len(positives)))
    chosen_pos = np.concatenate([rng.permutation(positives), extra_draws])[:per_class]
    chosen_neg = rng.choice(negatives, per_class, replace=False)
    return rng.permutation(np.concatenate([chosen_pos, chosen_neg]))


def make_augmenter(config: TrainConfig):
    """Rotation, crop-and-scale, flips and mild colour jitter; then, where the settings ask, the
    dermatoscope's round field and camera shifts (`augment.py`). Applied to both classes alike:
    augmenting melanoma only (as the method does) teaches the network that rotation artefacts
    mean melanoma. Reflect padding avoids black corners for the same reason."""
    import keras
    from keras import layers

    from melanoma.augment import RandomCameraShift, RandomDermatoscopeField, RandomSoften

    steps = [
        layers.RandomFlip("horizontal_and_vertical"),
        layers.RandomRotation(config.rotation, fill_mode="reflect"),
        layers.RandomZoom((-config.zoom, config.zoom), fill_mode="reflect"),
        layers.RandomTranslation(config.zoom / 2, config.zoom / 2, fill_mode="reflect"),
        layers.RandomBrightness(config.color_jitter, value_range=(0, 255)),
        layers.RandomContrast(config.color_jitter),
        layers.RandomSaturation((0.5 - config.color_jitter, 0.5 + config.color_jitter)),
    ]
    if config.soften_probability:
        steps.append(RandomSoften(config.soften_probability, name="soften"))
    if config.camera_jitter:
        steps.append(RandomCameraShift(config.camera_jitter, name="camera_shift"))
    if config.vignette_probability:
        steps.append(RandomDermatoscopeField(config.vignette_probability, name="dermatoscope_field"))
    return keras.Sequential(steps, name="augment")


def make_train_dataset(images: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                       config: TrainConfig, augmenter=None, diagnoses: np.ndarray | None = None,
                       metadata: np.ndarray | None = None):
    """Batches of (float32 images in [0, 255], one-hot labels). With `metadata` (one row per
    image, fields already hidden as the epoch draws them), the inputs are {"image", "metadata"};
    with `diagnoses`, the targets are {"predictions": one-hot labels, "diagnosis": one-hot
    diagnoses} for the second head."""
    import keras

    if keras.backend.backend() != "tensorflow":
        from melanoma.batches import AugmentedBatches

        return AugmentedBatches(images, labels, indices, config.batch_size, augmenter, diagnoses=diagnoses,
                                metadata=metadata)
    import tensorflow as tf

    from melanoma.model import one_hot_targets

    targets = labels[indices] if diagnoses is None else (labels[indices], diagnoses[indices])
    inputs = images[indices] if metadata is None else (images[indices], metadata[indices])
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets))
    dataset = dataset.batch(config.batch_size, drop_remainder=True)
    options = tf.data.Options()  # in-memory data: multi-worker runs shard by element, not by file
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)

    def prepare(x):
        x = tf.cast(x, tf.float32)
        return x if augmenter is None else tf.clip_by_value(augmenter(x, training=True), 0.0, 255.0)

    def to_inputs(x):
        return prepare(x) if metadata is None else {"image": prepare(x[0]), "metadata": x[1]}

    dataset = dataset.map(lambda x, y: (to_inputs(x), one_hot_targets(y, tf.one_hot)),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
