"""ResNet50 (He et al., 2015) written from scratch with Keras layers.

Mirrors `keras.applications.ResNet50` layer for layer (same names, biases on the convolutions,
same parameter count) so Grad-CAM can address a stage by name, e.g. `conv4_block6_out`; the
stage layout is data, the blocks are two small functions.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from melanoma.config import CLASS_NAMES, IMAGE_SHAPE, KNOWN_DX

BN_EPSILON = 1.001e-5  # keras.applications' value; keeps the numerics of the reference model


@dataclass(frozen=True)
class Stage:
    filters: int  # bottleneck width; the block's output has 4x as many channels
    blocks: int
    first_stride: int


RESNET50_STAGES = (
    Stage(filters=64, blocks=3, first_stride=1),
    Stage(filters=128, blocks=4, first_stride=2),
    Stage(filters=256, blocks=6, first_stride=2),
    Stage(filters=512, blocks=3, first_stride=2),
)


def bottleneck_block(x, filters: int, stride: int, projection: bool, name: str):
    """1x1 reduce, 3x3, 1x1 expand, plus a shortcut (projected when the shape changes)."""
    if projection:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x

    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)

    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)

    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_3_bn")(x)

    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def residual_stage(x, stage: Stage, name: str):
    x = bottleneck_block(x, stage.filters, stage.first_stride, projection=True, name=f"{name}_block1")
    for i in range(2, stage.blocks + 1):
        x = bottleneck_block(x, stage.filters, 1, projection=False, name=f"{name}_block{i}")
    return x


def stem(x):
    x = layers.ZeroPadding2D(padding=3, name="conv1_pad")(x)
    x = layers.Conv2D(64, 7, strides=2, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def build_resnet50(input_shape=IMAGE_SHAPE, num_classes: int = len(CLASS_NAMES),
                   stages=RESNET50_STAGES) -> keras.Model:
    """The network takes RGB pixels in [0, 255]; scaling to [-1, 1] is its first layer, so
    every caller (training, inference, Grad-CAM) feeds the same thing."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = stem(x)
    for stage_number, stage in enumerate(stages, start=2):
        x = residual_stage(x, stage, name=f"conv{stage_number}")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    # float32 output even under a mixed-precision policy: probabilities must not lose precision.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="resnet50_from_scratch")


def with_diagnosis_head(model: keras.Model, num_diagnoses: int = len(KNOWN_DX)) -> keras.Model:
    """The training network for an auxiliary task: `model` (every layer shared) plus a head on the
    pooled features that predicts the diagnosis. The 7 diagnoses tell the network more than
    melanoma-vs-not does (a naevus and a keratosis are "not melanoma" for different reasons);
    the head is dropped after training."""
    features = model.get_layer("avg_pool").output
    diagnosis = layers.Dense(num_diagnoses, activation="softmax", dtype="float32", name="diagnosis")(features)
    return keras.Model(model.input, {"predictions": model.output, "diagnosis": diagnosis},
                       name=f"{model.name}_with_diagnosis_head")
