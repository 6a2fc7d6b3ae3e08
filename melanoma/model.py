"""ResNet50 (He et al., 2015) written from scratch with Keras layers.

Mirrors `keras.applications.ResNet50` layer for layer (same names, biases on the convolutions,
same parameter count) so Grad-CAM can address a stage by name, e.g. `conv4_block6_out`; the
stage layout is data, the blocks are two small functions. `build_network` adds what a bundle's
`NetworkSpec` asks for: a patient-metadata branch and a 7-diagnosis head beside the melanoma one.
"""
from __future__ import annotations

from dataclasses import dataclass

from melanoma.config import CLASS_NAMES, IMAGE_SHAPE, KNOWN_DX
from melanoma.keras_import import import_keras
from melanoma.patient import PatientEncoding
from melanoma.sites import FINE_VOCABULARY

keras = import_keras()  # before `from keras import ...`, which would import it with its extras
from keras import layers  # noqa: E402

BN_EPSILON = 1.001e-5  # keras.applications' value; keeps the numerics of the reference model
METADATA_UNITS = 32  # the metadata branch's width, joined to the 2048 pooled image features


@dataclass(frozen=True)
class NetworkSpec:
    """What a bundle's network takes and gives; the manifest records it (v1: image only, the
    melanoma head only)."""

    image_shape: tuple[int, int, int] = IMAGE_SHAPE
    metadata: bool = False
    diagnosis_head: bool = False
    # How the body site enters the metadata branch (sites.py); bundles before v4 used HAM10000's words.
    site_vocabulary: str = FINE_VOCABULARY

    @classmethod
    def from_config(cls, config) -> NetworkSpec:
        return cls(image_shape=(*config.image_size, 3), metadata=config.metadata,
                   diagnosis_head=config.diagnosis_loss_weight > 0, site_vocabulary=config.site_vocabulary)

    @classmethod
    def from_dict(cls, values: dict) -> NetworkSpec:
        return cls(image_shape=tuple(values["image_shape"]), metadata=bool(values.get("metadata")),
                   diagnosis_head=bool(values.get("diagnosis_head")),
                   site_vocabulary=values.get("site_vocabulary", FINE_VOCABULARY))

    def to_dict(self) -> dict:
        return {"image_shape": list(self.image_shape), "metadata": self.metadata,
                "diagnosis_head": self.diagnosis_head, "site_vocabulary": self.site_vocabulary}

    @property
    def patient_encoding(self) -> PatientEncoding:
        return PatientEncoding(self.site_vocabulary)


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


def pooled_image_features(image, stages=RESNET50_STAGES):
    """RGB pixels in [0, 255] -> the 2048 pooled features. Scaling to [-1, 1] is the first layer,
    so every caller (training, inference, Grad-CAM) feeds the same thing."""
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(image)
    x = stem(x)
    for stage_number, stage in enumerate(stages, start=2):
        x = residual_stage(x, stage, name=f"conv{stage_number}")
    return layers.GlobalAveragePooling2D(name="avg_pool")(x)


def build_resnet50(input_shape=IMAGE_SHAPE, num_classes: int = len(CLASS_NAMES),
                   stages=RESNET50_STAGES) -> keras.Model:
    """Plain ResNet50 with a softmax head: model v1, layer for layer keras.applications'."""
    image = keras.Input(shape=input_shape, name="image")
    # float32 output even under a mixed-precision policy: probabilities must not lose precision.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(
        pooled_image_features(image, stages))
    return keras.Model(image, outputs, name="resnet50_from_scratch")


def build_network(spec: NetworkSpec = NetworkSpec()) -> keras.Model:
    """The network a spec describes. Inputs: the image, plus {"image", "metadata"} as a dict when
    it takes patient metadata (an all-zero metadata vector means nothing is known). Outputs: the
    melanoma softmax, plus {"predictions", "diagnosis"} as a dict with the 7-diagnosis head, which
    tells the network more than melanoma-vs-not does (a naevus and a keratosis are "not melanoma"
    for different reasons) and gives the app its differential."""
    if not spec.metadata and not spec.diagnosis_head:
        return build_resnet50(spec.image_shape)
    image = keras.Input(shape=spec.image_shape, name="image")
    features = pooled_image_features(image)
    inputs = image
    if spec.metadata:
        metadata = keras.Input(shape=(spec.patient_encoding.features,), name="metadata")
        branch = layers.Dense(METADATA_UNITS, activation="relu", name="metadata_dense")(metadata)
        features = layers.Concatenate(name="image_and_metadata")([features, branch])
        inputs = {"image": image, "metadata": metadata}
    melanoma = layers.Dense(len(CLASS_NAMES), activation="softmax", dtype="float32", name="predictions")(features)
    if not spec.diagnosis_head:
        return keras.Model(inputs, melanoma, name="resnet50_with_metadata")
    diagnosis = layers.Dense(len(KNOWN_DX), activation="softmax", dtype="float32", name="diagnosis")(features)
    return keras.Model(inputs, {"predictions": melanoma, "diagnosis": diagnosis}, name="resnet50_two_heads")


def single_output_network(model) -> keras.Model:
    """The same layers with the inputs as a list (image first) and the melanoma softmax as the
    only output: what Grad-CAM's tf-keras-vis expects."""
    inputs = sorted(model.inputs, key=lambda tensor: tensor.name != "image")
    return keras.Model(inputs, model.get_layer("predictions").output, name=f"{model.name}_melanoma")


def one_hot_targets(targets, one_hot):
    """Labels -> one-hot; (labels, diagnoses) -> the two heads' one-hot targets by output name."""
    if not isinstance(targets, tuple):
        return one_hot(targets, len(CLASS_NAMES))
    labels, diagnoses = targets
    return {"predictions": one_hot(labels, len(CLASS_NAMES)), "diagnosis": one_hot(diagnoses, len(KNOWN_DX))}
