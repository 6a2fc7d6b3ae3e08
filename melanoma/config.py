"""Every tunable of the project in one place.

The image size and the class names are part of a bundle's contract: the manifest records them and
the inference path checks them, so a bundle trained with other values is never silently misused.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# The method's input size (v1's). A bundle records its own size; `train --image-size` sets it.
IMAGE_HEIGHT = 75
IMAGE_WIDTH = 100
IMAGE_SHAPE = (IMAGE_HEIGHT, IMAGE_WIDTH, 3)
# Every HAM10000 photo is 4:3 (width:height); photos of other shapes are centre-cropped to it.
IMAGE_ASPECT = 4 / 3
# Shades of Gray colour constancy (Finlayson & Trezzi, 2004), as the ISIC 2019 winners used it.
SHADES_OF_GRAY_POWER = 6
CLASS_NAMES = ("not melanoma", "melanoma")
MELANOMA_DX = "mel"
KNOWN_DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
DX_NAMES = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevus",
    "vasc": "Vascular lesion",
}
METADATA_FILE = "HAM10000_metadata.csv"
# Patient information the network may be given (never dx_type: it gives the answer away). Each
# field is optional everywhere; "unknown" in HAM10000's CSV means not given.
SEXES = ("male", "female")
SITES = ("abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
         "lower extremity", "neck", "scalp", "trunk", "upper extremity")
MAX_AGE = 120
AGE_SCALE = 100.0  # ages enter the network as years / AGE_SCALE
IMAGES_DIR = "images"
REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")

# Input validation: below this an image cannot show a lesion's structure; above it we refuse
# to decode (a decompression bomb is refused from its header, before any pixel is decoded).
MIN_IMAGE_SIDE = 32
MAX_IMAGE_PIXELS = 40_000_000
MAX_UPLOAD_MB = 20
ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")
UPLOAD_EXTENSIONS = ("jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp")  # the app's uploader filter

# Grad-CAM: at 75x100 the last stage is 3x4 cells; stage 4 (5x7) localises better, see README.
GRADCAM_LAYERS = {
    "stage 3 (10x13)": "conv3_block4_out",
    "stage 4 (5x7)": "conv4_block6_out",
    "stage 5 (3x4)": "conv5_block3_out",
}
DEFAULT_GRADCAM_LAYER = "conv4_block6_out"

# The app's caches are shared by every session and bounded: one bundle's network and Grad-CAM
# (a bundle rewritten in place replaces them), and a few entries of the derived data.
APP_CACHED_BUNDLES = 1
APP_CACHED_DATA_ENTRIES = 4


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run; saved verbatim in the run folder and the bundle."""

    epochs: int = 30
    batch_size: int = 32
    seed: int = 42  # the lesion-grouped splits, and by default the training randomness too
    # Seeds the weights, the per-epoch sampling and the augmentation; None: `seed`. Repeated runs
    # of one setting change this and keep the splits.
    training_seed: int | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.15  # of the training side, grouped by lesion like the test split
    # Balancing per epoch: melanoma images are drawn with replacement (each an augmented copy)
    # up to `melanoma_per_epoch_factor` x their count; as many not-melanoma images are drawn
    # without replacement, so every epoch is 50/50 and sees fresh not-melanoma images.
    melanoma_per_epoch_factor: float = 2.0
    learning_rate: float = 1e-3
    warmup_epochs: int = 2
    weight_decay: float = 0.05  # AdamW, decoupled (scaled by the learning rate)
    label_smoothing: float = 0.05
    # Training only: a second head on the pooled features learns the 7 diagnoses, its loss weighted
    # by this (0: no such head). The shipped network keeps the melanoma-vs-not head alone.
    diagnosis_loss_weight: float = 0.0
    rotation: float = 0.5  # fraction of a full turn, both ways: lesions have no "up"
    zoom: float = 0.2  # random crop-and-scale: up to 20% in or out
    color_jitter: float = 0.1
    jit_compile: bool = True
    target_sensitivity: float = 0.85  # the threshold is picked on validation for this
    max_images: int | None = None  # a stratified subset, for smoke runs
    # Train on this many images of the training split only; validation and test stay whole, so
    # quick experiments are scored on the same validation images as the full run.
    train_subset: int | None = None
    distribute: str = "none"
    # What the network is given. Model v1: the method's 75x100 pixels and nothing else.
    image_size: tuple[int, int] = (IMAGE_HEIGHT, IMAGE_WIDTH)  # height, width
    colour_constancy: bool = False  # Shades of Gray inside prepare_image (training and inference)
    metadata: bool = False  # age, sex and body site through a small branch joined to the pooled features
    # Each field of a training image's metadata is hidden this often, so the network also answers
    # with some or none of them (hidden = "unknown", as a missing field at inference).
    metadata_hide_probability: float = 0.4
    # A round dermatoscope field (dark outside an ellipse) drawn on this share of training images of
    # both classes, so a dark corner stops predicting melanoma.
    vignette_probability: float = 0.0
    # Camera shifts in training: per-channel gains up to +-this (white balance), gamma and blur;
    # 0 keeps the method's mild colour jitter only.
    camera_jitter: float = 0.0
    # Progressive resizing: start from this bundle's weights (layers that fit by name and shape);
    # the bundle records the lineage.
    init_from: str | None = None

    @property
    def effective_training_seed(self) -> int:
        return self.seed if self.training_seed is None else self.training_seed

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> "TrainConfig":
        """The settings this class knows, from a mapping that may hold others (CLI args, an
        older bundle's train_config.json)."""
        known = {f.name for f in fields(cls)}
        settings = {k: v for k, v in settings.items() if k in known}
        if "image_size" in settings:  # a list once it has been through JSON
            settings["image_size"] = tuple(int(side) for side in settings["image_size"])
        return cls(**settings)

# How a call is worded for a clinician: a triage hint, never a diagnosis.
CALL_SUSPICIOUS = "suspicious for melanoma - refer"
CALL_NOT_SUSPICIOUS = "not suspicious for melanoma"
PREDICT_BATCH = 32  # fixed batch shape for the compiled predict function (padded), see inference
# A rest of fewer images than this goes one image at a time rather than padded to PREDICT_BATCH:
# batched, an image costs ~28 ms here, alone ~37 ms, so padding pays from about 24 (the bench).
PAD_BATCH_FROM = 24
# Files decoded and checked at once when classifying many (Pillow releases the GIL while decoding).
PREPARE_THREADS = 4
PREDICT_FILES_AT_ONCE = 8 * PREDICT_BATCH  # `predict` holds this many files' bytes and arrays at a time
# XLA makes single-image inference no faster here but costs ~2 s more on the first call (the
# bench measures both: `python -m melanoma bench`), so predictions use a plain tf.function.
INFERENCE_JIT_COMPILE = False
# Until this many images have been classified, a process calls the network eagerly (0.3 s an
# image here) instead of paying ~1.7 s to trace the compiled function (0.03 s an image after).
EAGER_IMAGES_BEFORE_COMPILING = 4
