"""Training augmentations beyond Keras' own layers: the dermatoscope's round field, camera shifts,
and photos taken with fewer pixels.

Both are applied to both classes alike. In HAM10000, photos with a dark corner (the dermatoscope's
round field) are melanoma 26% of the time against 10.5% for the rest, and model v1 learnt "dark
corner, so melanoma": darkening only the corners of clear photos raised its P(melanoma). Drawing
such a field on a random share of every class's photos makes the corner carry no label. Camera
shifts (white balance, gamma, blur) stand for other clinics' dermatoscopes. BCN20000's photos are 84
pixels wide, softer than the others at the network's 100: softening a share of every source's photos
the same way keeps softness from standing in for the source.

Written with keras.ops and Keras' seeded random ops, so the same layers run in the tf.data
pipeline and on Keras' JAX backend (`batches.py`).
"""
from __future__ import annotations

import keras
from keras import layers, ops

# The round field: an ellipse through the edge midpoints has radius 1 in the image's own
# coordinates (-1..1 both ways); the corners lie at radius sqrt(2).
FIELD_RADIUS = (0.9, 1.4)
FIELD_CENTRE_SHIFT = 0.1  # of the half-width / half-height
FIELD_EDGE_SOFTNESS = (0.01, 0.08)
FIELD_DARKNESS = (0.0, 30.0)  # pixel value outside the field
BLUR_PROBABILITY = 0.3
# Softening: the photo as an 84-pixel-wide camera took it (BCN20000's 84x84, a 4:3 crop of 84x63),
# shrunk to this share of its size and enlarged back.
SOFTENED_SCALE = 84 / 100
# A 5-tap binomial kernel: a Gaussian of sigma 1 pixel, separable.
BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)


class _RandomlyApplied(layers.Layer):
    """An augmentation applied to each training photo with `probability`; the identity otherwise and
    at inference."""

    def __init__(self, probability: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.probability = probability
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training or self.probability <= 0:
            return images
        return self.augment(images)

    def augment(self, images):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape


class RandomDermatoscopeField(_RandomlyApplied):
    """With `probability`, darkens everything outside a random ellipse (soft-edged), as a
    dermatoscope's round field does; the rest of the image is left as it is."""

    def augment(self, images):
        shape = ops.shape(images)
        count, height, width = shape[0], shape[1], shape[2]

        def uniform(low, high, dims=(1, 1)):
            return keras.random.uniform((count, *dims), low, high, seed=self.seed_generator)

        radius = uniform(*FIELD_RADIUS)
        centre_x, centre_y = uniform(-FIELD_CENTRE_SHIFT, FIELD_CENTRE_SHIFT), uniform(-FIELD_CENTRE_SHIFT,
                                                                                      FIELD_CENTRE_SHIFT)
        xs = (ops.cast(ops.arange(width), "float32") + 0.5) / ops.cast(width, "float32") * 2.0 - 1.0
        ys = (ops.cast(ops.arange(height), "float32") + 0.5) / ops.cast(height, "float32") * 2.0 - 1.0
        distance = ops.sqrt((xs[None, None, :] - centre_x) ** 2 + (ys[None, :, None] - centre_y) ** 2) / radius
        inside = ops.sigmoid((1.0 - distance) / uniform(*FIELD_EDGE_SOFTNESS))
        applied = ops.cast(uniform(0.0, 1.0) < self.probability, "float32")
        keep = (1.0 - applied + applied * inside)[..., None]
        darkness = uniform(*FIELD_DARKNESS, dims=(1, 1, 1))
        return images * keep + darkness * (1.0 - keep)


class RandomCameraShift(layers.Layer):
    """Another camera's rendering: per-channel gains (white balance) within 1 +- `strength`, a
    gamma within exp(+-2 `strength`), and with some probability a blur of random strength."""

    def __init__(self, strength: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.strength = strength
        self.seed_generator = keras.random.SeedGenerator(seed)
        taps = ops.convert_to_tensor(BINOMIAL_5, "float32") / sum(BINOMIAL_5)
        self._kernel = ops.tile((taps[:, None] * taps[None, :])[:, :, None, None], (1, 1, 3, 1))

    def call(self, images, training=True):
        if not training or self.strength <= 0:
            return images
        count = ops.shape(images)[0]
        gains = keras.random.uniform((count, 1, 1, 3), 1 - self.strength, 1 + self.strength, seed=self.seed_generator)
        gamma = ops.exp(keras.random.uniform((count, 1, 1, 1), -2 * self.strength, 2 * self.strength,
                                             seed=self.seed_generator))
        shifted = 255.0 * ops.power(ops.clip(images * gains / 255.0, 1e-6, 1.0), gamma)
        blurred = ops.depthwise_conv(shifted, self._kernel, strides=1, padding="same")
        blur_applied = ops.cast(keras.random.uniform((count, 1, 1, 1), seed=self.seed_generator) < BLUR_PROBABILITY,
                                "float32")
        blend = blur_applied * keras.random.uniform((count, 1, 1, 1), seed=self.seed_generator)
        return shifted * (1.0 - blend) + blurred * blend

    def compute_output_shape(self, input_shape):
        return input_shape


class RandomSoften(_RandomlyApplied):
    """With `probability`, the photo as a camera with fewer pixels took it: shrunk to SOFTENED_SCALE
    of its size (antialiased) and enlarged back (bilinear), as an 84-pixel-wide photo is enlarged
    to the network's input."""

    def augment(self, images):
        height, width = images.shape[1], images.shape[2]
        small = ops.image.resize(images, (round(height * SOFTENED_SCALE), round(width * SOFTENED_SCALE)),
                                 interpolation="bilinear", antialias=True)
        softened = ops.image.resize(small, (height, width), interpolation="bilinear")
        applied = ops.cast(keras.random.uniform((ops.shape(images)[0], 1, 1, 1), seed=self.seed_generator)
                           < self.probability, "float32")
        return images * (1.0 - applied) + softened * applied
