"""The network's contract and the training run's settings (`TrainConfig`).

The image size and the class names are part of a bundle's contract: the manifest records them and
the inference path checks them, so a bundle trained with other values is never silently misused.
Other settings live with their concern: a data folder's layout and credits in sources.py, input
checks in images.py, the API's limits in api.py (its address here), Grad-CAM's in explain.py, inference tuning in
features.py and inference.py, the extras' in extras.py, novelty.py and neighbours.py, the app's
caches in app/state.py, the reader study's in reader_study.py, wording in call.py and wording.py,
published anchors in published.py.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

# The method's input size (v1's). A bundle records its own size; `train --image-size` sets it.
IMAGE_HEIGHT = 75
IMAGE_WIDTH = 100
IMAGE_SHAPE = (IMAGE_HEIGHT, IMAGE_WIDTH, 3)
# Every HAM10000 photo is 4:3 (width:height); photos of other shapes are centre-cropped to it.
IMAGE_ASPECT = 4 / 3
# Shades of Gray colour constancy (Finlayson & Trezzi, 2004), as the ISIC 2019 winners used it.
SHADES_OF_GRAY_POWER = 6
CLASS_NAMES = ("not melanoma", "melanoma")
# Where `streamlit run` serves the HTTP API (melanoma/api.py), beside the pages.
API_PREFIX = "/api/v1"
MELANOMA_DX = "mel"
KNOWN_DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
# Patient information the network may be given (never dx_type: it gives the answer away). Each
# field is optional everywhere; "unknown" in HAM10000's CSV means not given. Body sites: sites.py.
SEXES = ("male", "female")
MAX_AGE = 120
AGE_SCALE = 100.0  # ages enter the network as years / AGE_SCALE


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
    # A second data folder (another clinic's photos) is split on its own, 70/15/15 by lesion and
    # stratified by diagnosis; the first folder keeps the fractions above (HAM10000: v1's split).
    added_source_test_fraction: float = 0.15
    added_source_val_fraction: float = 0.15 / 0.85
    # The data folders' names (sources), in the order given; None: a run from before sources (one folder).
    sources: tuple[str, ...] | None = None
    # Balancing per epoch: melanoma images are drawn with replacement (each an augmented copy)
    # up to `melanoma_per_epoch_factor` x their count; as many not-melanoma images are drawn
    # without replacement, so every epoch is 50/50 and sees fresh not-melanoma images.
    melanoma_per_epoch_factor: float = 2.0
    # A source named here is balanced with its own factor instead, so that it takes a larger (or
    # smaller) share of each epoch: {"isic2017": 4.0} shows ISIC 2017's photos twice as often.
    melanoma_per_epoch_factor_by_source: dict[str, float] = field(default_factory=dict)
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
    # The body site as the coarse sites all sources share (sites.py); "ham10000": v3's fine words.
    site_vocabulary: str = "general"
    # Each field of a training image's metadata is hidden this often, so the network also answers
    # with some or none of them (hidden = "unknown", as a missing field at inference).
    metadata_hide_probability: float = 0.4
    # A round dermatoscope field (dark outside an ellipse) drawn on this share of training images of
    # both classes, so a dark corner stops predicting melanoma.
    vignette_probability: float = 0.0
    # Camera shifts in training: per-channel gains up to +-this (white balance), gamma and blur;
    # 0 keeps the method's mild colour jitter only.
    camera_jitter: float = 0.0
    # This share of training photos (every source alike) is softened as an 84-pixel-wide camera would
    # take it (augment.RandomSoften): BCN20000's photos are, and softness must not stand for the source.
    soften_probability: float = 0.0
    # Progressive resizing: start from this bundle's weights (layers that fit by name and shape);
    # the bundle records the lineage.
    init_from: str | None = None
    # After each epoch, batch norm's moving statistics are recomputed on this many plain training
    # photos (`batch_norm.py`); 0 keeps Keras' running averages, as v1 and the experiments did.
    precise_bn_images: int = 0

    @property
    def effective_training_seed(self) -> int:
        return self.seed if self.training_seed is None else self.training_seed

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, settings: dict) -> TrainConfig:
        """The settings this class knows, from a mapping that may hold others (CLI args, an
        older bundle's train_config.json)."""
        known = {f.name for f in fields(cls)}
        settings = {k: v for k, v in settings.items() if k in known}
        settings.setdefault("site_vocabulary", "ham10000")  # every run before it was recorded (v3's)
        if "image_size" in settings:  # a list once it has been through JSON
            settings["image_size"] = tuple(int(side) for side in settings["image_size"])
        if settings.get("sources") is not None:
            settings["sources"] = tuple(settings["sources"])
        return cls(**settings)


