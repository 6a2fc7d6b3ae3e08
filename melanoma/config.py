"""Every tunable of the project in one place.

The image size and the class names are part of a bundle's contract: the manifest records them and
the inference path checks them, so a bundle trained with other values is never silently misused.
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
MELANOMA_DX = "mel"
KNOWN_DX = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
DX_NAMES = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic naevus",
    "vasc": "Vascular lesion",
}
# Patient information the network may be given (never dx_type: it gives the answer away). Each
# field is optional everywhere; "unknown" in HAM10000's CSV means not given.
SEXES = ("male", "female")
SITES = ("abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
         "lower extremity", "neck", "scalp", "trunk", "upper extremity")
MAX_AGE = 120
AGE_SCALE = 100.0  # ages enter the network as years / AGE_SCALE
HAM10000_IMAGES = 10_015  # in the published dataset; a copy may hold fewer (the development copy: 8,980)
DX_TYPE_NAMES = {"histo": "histopathology", "follow_up": "follow-up examination",
                 "consensus": "expert consensus", "confocal": "confocal microscopy"}
SOURCE_COLUMN = "source"  # which data folder (by its name) a photo came from: ham10000, isic2017
# Bundles from before sources existed were trained on HAM10000 alone.
DEFAULT_SOURCE = "ham10000"
# What the app says of each source it knows, and how its photos are credited wherever they are
# shown; another folder is shown by its name.
SOURCES = {
    "ham10000": {"title": "HAM10000", "clinics": "two clinics: Vienna and Queensland",
                 "licence": "CC BY-NC-SA 4.0", "licence_url": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
                 "citation": "Tschandl, Rosendahl & Kittler, Scientific Data 5, 180161 (2018), "
                             "doi:10.1038/sdata.2018.161"},
    "isic2017": {"title": "ISIC 2017", "clinics": "the ISIC Archive: many clinics and dermatoscopes, led by "
                                                  "Memorial Sloan Kettering",
                 "licence": "CC BY-NC", "licence_url": "https://creativecommons.org/licenses/by-nc/4.0/",
                 "citation": "Codella et al., ISBI 2018, arXiv:1710.05006"},
}

# Input validation: below this an image cannot show a lesion's structure; above it we refuse
# to decode (a decompression bomb is refused from its header, before any pixel is decoded).
MIN_IMAGE_SIDE = 32
MAX_IMAGE_PIXELS = 40_000_000
MAX_UPLOAD_MB = 20
ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")
UPLOAD_EXTENSIONS = ("jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp")  # the app's uploader filter

# The HTTP API beside the app (melanoma/api.py), served by `streamlit run` under API_PREFIX. Off the
# loopback interface it answers only requests carrying the bearer token in API_TOKEN_ENV.
API_PREFIX = "/api/v1"
API_TOKEN_ENV = "MELANOMA_API_TOKEN"
API_MAX_FILES = 8  # photos per request; each at most MAX_UPLOAD_MB, like the page's uploader
API_MAX_REQUEST_MB = 2 * MAX_UPLOAD_MB  # a whole request body; every upload is held in memory
# Predictions run on this many worker threads, never on the server's event loop, so the pages stay
# responsive; at most API_MAX_WAITING requests are queued or running, the next gets 503 (busy).
API_PREDICT_WORKERS = 2
API_MAX_WAITING = 16
API_RETRY_AFTER_SECONDS = 5  # told to a caller who finds the network still loading, or the queue full

# Grad-CAM: at 75x100 the last stage is 3x4 cells; earlier stages have finer grids.
GRADCAM_LAYERS = {
    "stage 3 (10x13)": "conv3_block4_out",
    "stage 4 (5x7)": "conv4_block6_out",
    "stage 5 (3x4)": "conv5_block3_out",
}
# Stage 3 by default: at stages 4-5 the maps of this network often sit on the dermatoscope's dark
# corner instead of the lesion (issue 15 traces that to a shortcut the network learnt).
DEFAULT_GRADCAM_LAYER = "conv3_block4_out"
GRADCAM_OPACITY = 0.45  # the overlay's default opacity, on the page and in the API
# The fixed colour scale (the default view): Grad-CAM++'s raw map of the log-odds of melanoma, its
# floor (lowest value, which Grad-CAM++ spreads evenly over the photo: it says nothing about where)
# taken off, then divided by one ceiling per layer for every photo. tf-keras-vis' Grad-CAM++ weights
# the map by exp(score), the odds, so its range follows how far the photo's regions raised P(melanoma).
# Measured on 400 validation photos of both sources (the image alone), bundle v3
# (benchmarks/gradcam_scale.py -> benchmarks/gradcam-scale.json): Grad-CAM++'s map range ranks with
# P(melanoma) at Spearman 0.97-1.00 at every stage, plain Grad-CAM's at 0.61 (stage 3), 0.76 and 0.93; on
# one plain Grad-CAM scale 16% of the photos under P 0.02 would show a hot region at stage 3 (62% at
# stage 4), so plain Grad-CAM is only ever shown relative. The ceiling (red) is the median map range of
# the 202 photos at or above the image-only threshold: a typical referred photo's strongest region
# reaches it. None of the 137 photos under P 0.05 reaches GRADCAM_HOT of it at any stage; at stage 3,
# 8% of those at P 0.05-0.084 do, 76% at P 0.084-0.3 and all above. (v1's, on HAM10000 alone: 0.611,
# 0.734, 0.489.)
GRADCAM_CEILINGS = {"conv3_block4_out": 0.249, "conv4_block6_out": 0.393, "conv5_block3_out": 5.27}
GRADCAM_CEILINGS_WEIGHTS = "30840da7f6676cec0361ac8b905f2eea7bf23e65a4ca5183276b4cbca16e9e6e"  # measured on these
# A region at or above this share of the ceiling counts as hot (Turbo: yellow to red); where none is,
# the card says in words that nothing raised P(melanoma) much.
GRADCAM_HOT = 0.5

# The app's caches are shared by every session and bounded: one bundle's network and Grad-CAM
# (a bundle rewritten in place replaces them), and a few entries of the derived data.
APP_CACHED_BUNDLES = 1
APP_CACHED_DATA_ENTRIES = 4
# What the app tells a visitor who uploads before the network has loaded: about how long loading
# it takes on the quiet 2-core development machine (the bench's cold start, 7.4 s, rounded up).
MODEL_LOAD_SECONDS = 8


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
        if "image_size" in settings:  # a list once it has been through JSON
            settings["image_size"] = tuple(int(side) for side in settings["image_size"])
        if settings.get("sources") is not None:
            settings["sources"] = tuple(settings["sources"])
        return cls(**settings)

# How a call is worded for a clinician: a triage hint, never a diagnosis. Below the threshold is
# no rule-out (the model misses melanomas, more so from other cameras), so that call is neutral.
CALL_SUSPICIOUS = "suspicious for melanoma - refer"
CALL_BELOW_THRESHOLD = "below the referral threshold — not a rule-out"
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

# Extras every bundle carries (see melanoma/extras.py): all fitted on the training split from the
# network's pooled features, thresholds from the validation split, never from the test split.
FEATURE_LAYER = "avg_pool"  # the differential and the similar cases read these 2,048 features
# The similar-cases index: standardised features reduced by PCA, small enough that the index of
# ~6,000 training images stays well under 5 MB.
FEATURE_COMPONENTS = 64
# The not-a-lesion score reads stage 3's pooled activations: colour and texture statistics that the
# last layer, trained to tell lesions apart, no longer keeps (see README: refusal).
NOVELTY_LAYER = "conv3_block4_out"
NOVELTY_COMPONENTS = 64
NOVELTY_LOG_OFFSET = 1e-3  # pooled ReLU activations are skewed; their logarithm is closer to Gaussian
# Thresholds from lesion photos alone: the not-a-lesion score's at this percentile of the
# validation split (about 1 lesion photo in 200 refused by construction), and a floor on
# colourfulness at this (low) percentile, since every training photo is in colour. Never tuned
# on non-lesion pictures: those only measure it (melanoma.lab.refusal).
NOVELTY_PERCENTILE = 99.5
COLOURFULNESS_PERCENTILE = 0.25
# Fewer validation images than this cannot place a 99.5th percentile (1 in 200): such a bundle (a
# smoke run) gets no not-a-lesion check rather than one that refuses lesions at random.
NOVELTY_MIN_VALIDATION = 200
# Another dermatoscope is still a dermatoscope: the training photos the score is fitted on include
# this many copies under random camera changes (a gain per colour channel, a gamma), so a shifted
# white balance is not mistaken for "not a lesion". Ranges in log-uniform draws.
NOVELTY_CAMERA_COPIES = 2000
NOVELTY_CHANNEL_GAINS = (0.8, 1.25)
NOVELTY_GAMMAS = (0.7, 1.4)
SIMILAR_CASES = 8
# A refused picture may be no lesion at all, or a lesion photo from a camera unlike the training ones
# (other clinics' photos are refused far more often than HAM10000's): the wording fits both.
NOT_A_LESION_REASON = ("outside what the model was trained on (not a lesion photo, or an unfamiliar camera or "
                       "lighting): no call; assess clinically")
CALL_REFUSED = "no call - assess clinically"
# The same refusal on a card, in plain words (the scores behind it go in a details box).
NOT_A_LESION_PLAIN = ("This picture does not look like the dermatoscope photos the model learnt from, so the model "
                      "cannot judge it. That happens with pictures that are not of a skin lesion, and also with real "
                      "lesion photos taken with another dermatoscope, a phone camera or unusual lighting.")
# A P(melanoma) this close below the threshold (absolute, 5 percentage points) is called close to it:
# photos of one lesion disagree by more. Of 117 HAM10000 validation lesions with several photos and a
# mean P(melanoma) of 0.05-0.3, the photos' P(melanoma) spanned a median 10.1 points (quartiles 5.0
# and 16.5): another photo of such a lesion could well land above the threshold.
CLOSE_BELOW_THRESHOLD = 0.05
# The differential's other malignant (or pre-malignant) diagnoses: the call is about melanoma only,
# so where one of these leads the differential the card says that it needs a clinician too.
OTHER_MALIGNANCIES = ("bcc", "akiec")
DIFFERENTIAL_NAMES = {  # in full, for people; KNOWN_DX order is the differential's class order
    "mel": "melanoma",
    "nv": "melanocytic naevus",
    "bkl": "benign keratosis",
    "bcc": "basal cell carcinoma",
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "df": "dermatofibroma",
    "vasc": "vascular lesion",
}

# The reader study ("Test yourself", melanoma/reader_study.py): test-split photos shipped inside a
# bundle, so the page works on a fresh clone. The one place where data photos enter the repository.
READER_STUDY_DIR = "reader_study"
READER_STUDY_INDEX = "index.json"
READER_STUDY_MAX_PHOTOS = 120
READER_STUDY_SEED = 25  # the shipped set is reproducible; each visitor's draw from it is not
READER_STUDY_MELANOMA_SHARE = 1 / 3  # Haenssle 2018's test set was 20% melanoma; a third gives more to learn from
READER_STUDY_PHOTO_SIZE = (200, 150)  # width, height: the development copies' size, 4:3
READER_STUDY_JPEG_QUALITY = 90  # only for photos that must be resized; 200x150 JPEGs are shipped byte for byte
READER_STUDY_LENGTHS = (10, 20, 40)
# The page shows the test split's P(melanoma); recomputed on the shipped JPEG by the network as
# shipped (float16 kernels) it may differ by this much at most, or the set is not written.
READER_STUDY_PROBABILITY_TOLERANCE = 0.01
# The published anchor shown beside a visitor's result (level I: dermoscopy alone, 100 images).
HAENSSLE_2018 = {"readers": 58, "sensitivity": 0.866, "specificity": 0.713, "cnn_auc": 0.86, "images": 100,
                 "citation": "Haenssle et al., Annals of Oncology 29(8):1836-1842 (2018)"}
