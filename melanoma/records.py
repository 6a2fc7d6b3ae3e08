"""What a model bundle holds, as types: each JSON file the app and the commands read from a bundle,
read and checked once when the bundle loads (`bundle.load_bundle`).

The writers (train, the extras, `evaluate --record`, `familiarity --record`, `reader-study`) still
write plain JSON; the records here read it and never change it. A part a bundle may lack because it
was made before that part existed (the extras, calibration, the image-only mode, per-source figures,
evaluations, the familiarity measurement) reads as None or empty. A part it must have and lacks
raises RecordError, whose one line names the file and the part: "metrics.json has no 'validation'".
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from functools import cached_property

from melanoma.differential import FITTED_SOURCE
from melanoma.novelty import FAMILIARITY_BANDS

# The reader study ("Test yourself", melanoma/reader_study.py): test-split photos shipped inside a
# bundle, so the page works on a fresh clone. The one place where data photos enter the repository.
READER_STUDY_DIR = "reader_study"

READER_STUDY_INDEX = "index.json"

# The bundle's files these records read (`bundle.py` lays out the folder with these names).
METRICS = "metrics.json"
DATASET_SUMMARY = "dataset_summary.json"
EXTRAS_INFO = "extras.json"  # the refusal, differential and similar-cases index's figures (melanoma/extras.py)
EVALUATIONS = "evaluations.json"  # `evaluate --record`'s figures per data source (folder name)
FAMILIARITY = "familiarity.json"  # `familiarity --record`: what the bands were measured to say
REFUSAL = "refusal.json"  # `refusal --record`: the not-a-lesion check measured on pictures it never saw
TEST_SET_SUFFIX = " test"  # familiarity's name of a trained source's test split: "<source> test"
INTERVAL_FIGURES = ("roc_auc", "sensitivity", "specificity")  # the figures a lesion bootstrap bounds
NAMED_FIGURES = ("roc_auc", "sensitivity", "specificity", "precision", "f1", "accuracy", "balanced_accuracy",
                 "threshold")

Bounds = tuple[float | None, float | None]


class RecordError(ValueError):
    """A bundle file lacks a part it must have, or holds one of the wrong kind; str() says which, in one line."""


class Fields:
    """One JSON object being read, with where it is for the error messages: "metrics.json 'test'"."""

    def __init__(self, data, where: str):
        if not isinstance(data, dict):
            raise RecordError(f"{where} is not a JSON object")
        self.data, self.where = data, where

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def need(self, key: str):
        if key not in self.data:
            raise RecordError(f"{self.where} has no {key!r}")
        return self.data[key]

    def get(self, key: str, default=None):
        value = self.data.get(key)
        return default if value is None else value

    def number(self, key: str) -> float:
        return self._number(key, self.need(key))

    def optional_number(self, key: str) -> float | None:
        return None if self.data.get(key) is None else self._number(key, self.data[key])

    def count(self, key: str) -> int:
        return int(self.number(key))

    def optional_count(self, key: str) -> int | None:
        value = self.optional_number(key)
        return None if value is None else int(value)

    def counts(self, key: str) -> dict[str, int]:
        """A free-form {name: count} (diagnoses, body sites); {} where it is absent."""
        whole = self.part(key, optional=True)
        return {} if whole is None else {str(name): int(count) for name, count in whole.data.items()}

    def part(self, key: str, optional: bool = False) -> Fields | None:
        if optional and not self.has(key):
            return None
        return Fields(self.need(key), f"{self.where} {key!r}")

    def parts(self, key: str) -> dict[str, Fields]:
        """A JSON object of objects (per source, per split), each as Fields; {} where it is absent."""
        whole = self.part(key, optional=True)
        return {} if whole is None else whole.each()

    def each(self) -> dict[str, Fields]:
        """This object's values, each an object, as Fields by their keys."""
        return {name: self.part(name) for name in self.data}

    def _number(self, key: str, value) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecordError(f"{self.where} {key!r} is not a number ({value!r})")
        return value


# --- figures of a split ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Provenance:
    """Where a bundle came from, as its manifest records it (manifest.json; the manifest itself is
    checked in `bundle.load_bundle`)."""

    name: str
    created: str | None
    architecture: str | None
    split_seed: int | None
    training_seed: int | None  # a bundle from before --training-seed trained with the split seed
    trained_with: dict[str, str]  # package -> version when it was trained, as recorded (free-form)
    backend: str  # the Keras backend it was trained on
    weights_sha256: str
    parents: tuple[str, ...]  # the bundles whose weights it started from (progressive resizing)

    @classmethod
    def from_dict(cls, data: dict, folder_name: str) -> Provenance:
        part = Fields(data, "manifest.json")
        versions = {str(package): str(version) for package, version in part.get("versions", {}).items()}
        # Bundles written before the JAX backend could train name no backend: they are TensorFlow's.
        backend = versions.get("backend", "tensorflow" if "tensorflow" in versions else "unknown")
        return cls(name=part.get("name", folder_name), created=part.get("created"),
                   architecture=part.get("architecture"), split_seed=part.get("seed"),
                   training_seed=part.get("training_seed", part.get("seed")), trained_with=versions,
                   backend=backend, weights_sha256=part.need("weights_sha256"),
                   parents=tuple(str(step.get("bundle")) for step in part.get("lineage", [])))


@dataclass(frozen=True)
class Intervals:
    """Lesion-bootstrap intervals of a split's figures (`evaluate.lesion_bootstrap_intervals`); a
    bound is None where the draws could not measure one (too few lesions of a kind)."""

    level: float
    resamples: int
    unit: str  # what was resampled: whole lesions
    n_lesions: int
    roc_auc: Bounds | None = None
    sensitivity: Bounds | None = None
    specificity: Bounds | None = None

    @classmethod
    def from_dict(cls, data: dict, where: str = "intervals") -> Intervals:
        part = Fields(data, where)
        return cls(level=part.number("level"), resamples=part.get("resamples", 0), unit=part.get("unit", "lesion"),
                   n_lesions=part.get("n_lesions", 0),
                   **{name: tuple(part.get(name)) if part.has(name) else None for name in INTERVAL_FIGURES})

    def of(self, figure: str) -> Bounds | None:
        """The bounds of one figure by its name in the metrics ("precision" has none: None)."""
        return getattr(self, figure) if figure in INTERVAL_FIGURES else None


@dataclass(frozen=True)
class Roc:
    fpr: list[float]
    tpr: list[float]

    @classmethod
    def read(cls, part: Fields | None) -> Roc | None:
        return None if part is None else cls(fpr=list(part.get("fpr", [])), tpr=list(part.get("tpr", [])))


@dataclass(frozen=True)
class SplitFigures:
    """One split's figures at a threshold (`evaluate.metrics_at`): a bundle's validation or test
    split, one source's part of it, or every photo of a folder (`evaluate --record`). A figure the
    split cannot give (no melanoma: no sensitivity) is None."""

    n_images: int
    n_melanoma: int
    roc_auc: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    precision: float | None = None
    f1: float | None = None
    accuracy: float | None = None
    balanced_accuracy: float | None = None
    threshold: float | None = None
    confusion_matrix: list[list[int]] | None = None
    intervals: Intervals | None = None  # where the lesion bootstrap was recorded with them
    roc: Roc | None = None

    @classmethod
    def from_dict(cls, data: dict, where: str = "figures") -> SplitFigures:
        """From `evaluate.metrics_at`'s dict (figures computed on the fly, e.g. at another threshold)."""
        return cls.read(Fields(data, where))

    @classmethod
    def read(cls, part: Fields) -> SplitFigures:
        intervals = part.part("intervals", optional=True)
        return cls(n_images=part.count("n_images"), n_melanoma=part.count("n_melanoma"),
                   **{name: part.optional_number(name) for name in NAMED_FIGURES},
                   confusion_matrix=part.get("confusion_matrix"),
                   intervals=None if intervals is None else Intervals.from_dict(intervals.data, intervals.where),
                   roc=Roc.read(part.part("roc", optional=True)))

    def figure(self, name: str) -> float | None:
        """A figure by its name in the metrics (`charts.METRIC_LABELS`, the API's FIGURES)."""
        if name not in {field.name for field in fields(self)}:
            raise KeyError(name)
        return getattr(self, name)

    @property
    def melanoma_rate(self) -> float:
        return self.n_melanoma / max(self.n_images, 1)

    def with_intervals(self, intervals: Intervals | None) -> SplitFigures:
        return replace(self, intervals=intervals)


# --- metrics.json -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reliability:
    """How close the probabilities were to the truth on the test split (`calibration.reliability`)."""

    brier: float
    predicted: list[float]
    observed: list[float]

    @classmethod
    def read(cls, part: Fields | None) -> Reliability | None:
        if part is None:
            return None
        curve = part.part("curve")
        return cls(brier=part.number("brier"), predicted=list(curve.need("predicted")),
                   observed=list(curve.need("observed")))


@dataclass(frozen=True)
class CalibrationFigures:
    """The Platt map's fit and what it did on the test split; `method` "none" where no order-keeping
    map could be fitted."""

    method: str
    fitted_on: str | None
    test_before: Reliability | None
    test_after: Reliability | None

    @property
    def platt(self) -> bool:
        return self.method == "platt"

    @classmethod
    def read(cls, part: Fields | None) -> CalibrationFigures | None:
        if part is None:
            return None
        return cls(method=part.get("method", "none"), fitted_on=part.get("fitted_on"),
                   test_before=Reliability.read(part.part("test_before", optional=True)),
                   test_after=Reliability.read(part.part("test_after", optional=True)))


@dataclass(frozen=True)
class ImageOnlyFigures:
    """A network that takes patient data also works from the photo alone, at a threshold of its own."""

    threshold: float
    validation: SplitFigures | None
    test: SplitFigures | None
    test_roc: Roc | None

    @classmethod
    def read(cls, part: Fields | None) -> ImageOnlyFigures | None:
        if part is None:
            return None
        validation, test = part.part("validation", optional=True), part.part("test", optional=True)
        return cls(threshold=part.number("threshold"),
                   validation=None if validation is None else SplitFigures.read(validation),
                   test=None if test is None else SplitFigures.read(test),
                   test_roc=Roc.read(part.part("test_roc", optional=True)))


@dataclass(frozen=True)
class OperatingPoint:
    """One way a photo is called: from the photo alone, or with the patient's data (a network that
    takes them has both, each with its own threshold chosen on validation by the same rule), and what
    that threshold gave on the validation and test photos."""

    with_patient_data: bool
    threshold: float
    validation: SplitFigures | None
    test: SplitFigures | None


@dataclass(frozen=True)
class Metrics:
    """metrics.json: the threshold and how it was chosen, the validation and test figures (per
    source where there are several), the test ROC, the calibration and the image-only mode."""

    threshold: float
    threshold_rule: str | None
    best_epoch: int | None
    epochs_run: int | None
    epochs_planned: int | None
    validation: SplitFigures
    test: SplitFigures | None  # None only for a validation-only candidate (`train --without-test`)
    test_roc: Roc | None
    test_by_source: dict[str, SplitFigures]  # {} for a bundle of one source
    calibration: CalibrationFigures | None  # None for a bundle made before calibration
    image_only: ImageOnlyFigures | None  # None unless the network takes patient data

    @property
    def operating_points(self) -> tuple[OperatingPoint, ...]:
        """Each mode a photo can be called in, the photo alone first (the default: no patient data given)."""
        if self.image_only is None:  # an image-only network: its one threshold is the photo alone's
            return (OperatingPoint(False, self.threshold, self.validation, self.test),)
        alone = self.image_only
        return (OperatingPoint(False, alone.threshold, alone.validation, alone.test),
                OperatingPoint(True, self.threshold, self.validation, self.test))

    def operating_point(self, with_patient_data: bool) -> OperatingPoint:
        """The mode a photo was called in (an image-only network has one, whatever was given)."""
        points = self.operating_points
        return next((point for point in points if point.with_patient_data == with_patient_data), points[0])

    @classmethod
    def from_dict(cls, data: dict, with_test: bool = True) -> Metrics:
        part = Fields(data, METRICS)
        test = part.part("test", optional=not with_test)
        return cls(threshold=part.number("threshold"), threshold_rule=part.get("threshold_rule"),
                   best_epoch=part.optional_count("best_epoch"), epochs_run=part.optional_count("epochs_run"),
                   epochs_planned=part.optional_count("epochs_planned"),
                   validation=SplitFigures.read(part.part("validation")),
                   test=None if test is None else SplitFigures.read(test),
                   test_roc=Roc.read(part.part("test_roc", optional=True)),
                   test_by_source={source: SplitFigures.read(figures)
                                   for source, figures in part.parts("test_by_source").items()},
                   calibration=CalibrationFigures.read(part.part("calibration", optional=True)),
                   image_only=ImageOnlyFigures.read(part.part("image_only", optional=True)))

    @property
    def rule_in_words(self) -> str:
        return self.threshold_rule or "chosen on validation"


# --- dataset_summary.json -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitCount:
    images: int
    melanoma: int
    lesions: int


@dataclass(frozen=True)
class BalancedEpoch:
    """What one training epoch draws: as many melanoma as other images, from those available."""

    melanoma: int
    not_melanoma: int
    melanoma_available: int
    not_melanoma_available: int

    def counts(self) -> dict[str, int]:
        return {"melanoma": self.melanoma, "not melanoma": self.not_melanoma}


@dataclass(frozen=True)
class Dropped:
    total: int
    by_reason: dict[str, int]
    examples: list[dict]  # the first rows dropped, as the metadata file has them (a free-form table)


@dataclass(frozen=True)
class DatasetSummary:
    """dataset_summary.json (`data.summarize`): the photos a bundle was trained and tested on,
    overall and, where there are several sources, per source (each a DatasetSummary of its own)."""

    rows_in_metadata: int
    images_used: int
    lesions: int
    dropped: Dropped
    melanoma: int
    not_melanoma: int
    dx: dict[str, int]
    sex: dict[str, int]
    localization: dict[str, int]  # HAM10000's fine words, as each source's CSV gives them
    site: dict[str, int]  # the coarse site every source can fill in (sites.py); {} before v4
    dx_type: dict[str, int]
    age: dict[str, int]
    split: dict[str, SplitCount]  # train, validation, test; {} where the summary has no split
    balanced_epoch: BalancedEpoch | None
    sources: dict[str, DatasetSummary]  # {} for one source

    @classmethod
    def from_dict(cls, data: dict) -> DatasetSummary:
        return cls.read(Fields(data, DATASET_SUMMARY))

    @classmethod
    def read(cls, part: Fields) -> DatasetSummary:
        dropped, classes = part.part("dropped"), part.part("melanoma_vs_not")
        balanced = part.part("balanced_epoch", optional=True)
        return cls(
            rows_in_metadata=part.count("rows_in_metadata"), images_used=part.count("images_used"),
            lesions=part.count("lesions"),
            dropped=Dropped(total=dropped.count("total"), by_reason=dropped.counts("by_reason"),
                            examples=list(dropped.get("examples", []))),
            melanoma=classes.count("melanoma"), not_melanoma=classes.count("not melanoma"),
            **{name: part.counts(name) for name in ("dx", "sex", "localization", "site", "dx_type", "age")},
            split={name: SplitCount(images=counts.count("images"), melanoma=counts.count("melanoma"),
                                    lesions=counts.count("lesions")) for name, counts in part.parts("split").items()},
            balanced_epoch=None if balanced is None else BalancedEpoch(
                melanoma=balanced.count("melanoma"), not_melanoma=balanced.count("not melanoma"),
                melanoma_available=balanced.count("melanoma_available"),
                not_melanoma_available=balanced.count("not_melanoma_available")),
            sources={source: cls.read(summary) for source, summary in part.parts("sources").items()})

    def melanoma_vs_not(self) -> dict[str, int]:
        return {"melanoma": self.melanoma, "not melanoma": self.not_melanoma}

    @property
    def melanoma_share(self) -> float:
        return self.melanoma / max(self.images_used, 1)

    def by_source(self, only_source: str) -> dict[str, DatasetSummary]:
        """Each source's summary; a bundle of one source (`only_source`) has its whole summary under it."""
        return self.sources or {only_source: self}


# --- extras.json -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RefusalTally:
    """How many of a split's photos the not-a-lesion check refused, and of its melanomas."""

    images: int
    refused: int
    melanoma: int
    melanoma_refused: int

    def would_refuse(self) -> WouldRefuse:
        return WouldRefuse(would_refuse=self.refused, would_refuse_melanoma=self.melanoma_refused)


@dataclass(frozen=True)
class OtherClinicLesions:
    """A clinic's lesion photos given to the not-a-lesion check alone: how many of its training photos
    were fitted as lesion photos, and its validation and test photos refused."""

    training_photos: int
    refused: dict[str, RefusalTally]


@dataclass(frozen=True)
class NotALesionCheck:
    active: bool  # False where too few validation photos could set the threshold: no check
    threshold: float | None
    rule: str
    refused: dict[str, RefusalTally]  # validation, test
    familiarity_band_edges: list[float] | None  # None for a bundle made before the familiarity bands
    # the lesion-or-not classifier (melanoma.lesion_or_not): its rule and how many other pictures it
    # was fitted on; None for a bundle fitted before it
    classifier_rule: str | None = None
    classifier_other_pictures: int | None = None
    # lesion photos of clinics the network was not trained on, fitted for this check alone
    # (`extras --lesions-from`), by source
    other_clinics: dict[str, OtherClinicLesions] = field(default_factory=dict)

    @classmethod
    def read(cls, part: Fields) -> NotALesionCheck:
        classifier = part.part("classifier", optional=True)
        return cls(active=bool(part.get("active", True)), threshold=part.optional_number("threshold"),
                   rule=part.get("rule", ""),
                   classifier_rule=classifier and classifier.get("rule"),
                   classifier_other_pictures=classifier and classifier.part("fitted_on").count("other pictures"),
                   refused=_tallies(part.parts("refused")),
                   other_clinics={source: OtherClinicLesions(training_photos=clinic.count("training photos"),
                                                             refused=_tallies(clinic.parts("refused")))
                                  for source, clinic in part.parts("check_only_sources").items()},
                   familiarity_band_edges=part.get("familiarity_band_edges"))


def _tallies(parts: dict[str, Fields]) -> dict[str, RefusalTally]:
    return {split: RefusalTally(**{name: tally.count(name) for name in ("images", "refused", "melanoma", "melanoma_refused")})
            for split, tally in parts.items()}


@dataclass(frozen=True)
class RefusalMeasured:
    """refusal.json (`refusal --record`): the not-a-lesion check on pictures from sources its fitting
    never saw (the held-out set), per kind, and each source's lesion photos refused."""

    held_out_pictures: int
    held_out_refused: int
    held_out_by_kind: dict[str, str]  # kind -> "refused of pictures"
    lesions_refused: dict[tuple[str, str], float]  # (source, "validation" | "test") -> share refused
    date: str

    @property
    def held_out_share(self) -> float:
        return self.held_out_refused / self.held_out_pictures

    @classmethod
    def from_dict(cls, data: dict) -> RefusalMeasured:
        part = Fields(data, REFUSAL)
        held = part.part("held_out_non_lesion")
        lesions = {(source, split): figures.number("share")
                   for source, parts in part.parts("by_source").items()
                   for split, figures in parts.each().items() if split in ("validation", "test")
                   and figures.optional_number("share") is not None} if part.has("by_source") else {}
        return cls(held_out_pictures=held.count("pictures"), held_out_refused=held.count("refused"),
                   held_out_by_kind=dict(held.need("by_kind")), lesions_refused=lesions,
                   date=str(part.get("date", ""))[:10])


@dataclass(frozen=True)
class DifferentialFigures:
    """The 7-diagnosis differential on a set of photos (`differential.report`)."""

    classes: list[str]
    roc_auc: dict[str, float | None]  # one vs rest, per diagnosis; None where a diagnosis is absent
    confusion_matrix: list[list[int]]  # rows: confirmed diagnosis; columns: most likely
    accuracy: float | None  # how often the most likely diagnosis was the confirmed one
    n_images: int

    @classmethod
    def read(cls, part: Fields | None) -> DifferentialFigures | None:
        if part is None:
            return None
        return cls(classes=list(part.need("classes")), roc_auc=dict(part.need("roc_auc")),
                   confusion_matrix=part.need("confusion_matrix"), accuracy=part.optional_number("accuracy"),
                   n_images=part.count("n_images"))


@dataclass(frozen=True)
class SimilarCasesFigures:
    k: int  # cases shown per photo
    index_images: int  # training photos they are drawn from
    vote_auc: float | None  # test AUC of the cases' share of melanoma, as a vote
    network_auc: float | None  # the network's test AUC, measured beside it

    @classmethod
    def read(cls, part: Fields) -> SimilarCasesFigures:
        aucs = part.part("test_roc_auc")
        return cls(k=part.count("k"), index_images=part.count("index_images"),
                   vote_auc=aucs.optional_number("neighbours_vote"), network_auc=aucs.optional_number("network"))


@dataclass(frozen=True)
class ExtrasInfo:
    """extras.json (`extras.fit_extras`): the not-a-lesion check, the differential and the similar
    cases, with what each was measured to do on the test split."""

    fitted_on: dict[str, int]  # photos per split the extras were fitted or measured on
    not_a_lesion: NotALesionCheck
    differential_source: str  # what gives the differential: the network's own head, or one fitted on features
    differential_test: DifferentialFigures
    similar_cases: SimilarCasesFigures

    @classmethod
    def from_dict(cls, data: dict) -> ExtrasInfo:
        part = Fields(data, EXTRAS_INFO)
        differential = part.part("differential")
        return cls(fitted_on=part.counts("fitted_on"), not_a_lesion=NotALesionCheck.read(part.part("not_a_lesion")),
                   differential_source=differential.get("source", FITTED_SOURCE),
                   differential_test=DifferentialFigures.read(differential.part("test")),
                   similar_cases=SimilarCasesFigures.read(part.part("similar_cases")))


# --- evaluations.json ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class WouldRefuse:
    """`evaluate`'s count of photos the not-a-lesion check would refuse (they are scored anyway)."""

    would_refuse: int
    would_refuse_melanoma: int

    @classmethod
    def read(cls, part: Fields | None) -> WouldRefuse | None:
        return None if part is None else cls(would_refuse=part.count("would_refuse"),
                                             would_refuse_melanoma=part.count("would_refuse_melanoma"))


@dataclass(frozen=True)
class Evaluation:
    """`evaluate --record`'s figures on one data source (evaluations.json, under its folder's name):
    on a source the bundle was trained on, every photo and its test split's part; on another, every photo."""

    figures: SplitFigures
    not_a_lesion: WouldRefuse | None
    differential: DifferentialFigures | None
    trained_on_source: bool
    date: str | None
    test_split_part: Evaluation | None  # the bundle's own test photos of this source, where it has them

    @classmethod
    def read(cls, part: Fields) -> Evaluation:
        test_part = part.part("bundle_test_split_part", optional=True)
        return cls(figures=SplitFigures.read(part), not_a_lesion=WouldRefuse.read(part.part("not_a_lesion", optional=True)),
                   differential=DifferentialFigures.read(part.part("differential", optional=True)),
                   trained_on_source=bool(part.get("trained_on_source", False)), date=part.get("date"),
                   test_split_part=None if test_part is None else cls.read(test_part))

    @property
    def day(self) -> str:
        return str(self.date)[:10] if self.date else "date unknown"


def evaluations_from_dict(data: dict) -> dict[str, Evaluation]:
    """evaluations.json: each source's `Evaluation`, by the data folder's name."""
    return {source: Evaluation.read(report) for source, report in Fields(data, EVALUATIONS).each().items()}


# --- familiarity.json --------------------------------------------------------------------------------

@dataclass(frozen=True)
class FamiliarityReading:
    """What the familiarity bands were measured to say on a bundle's test photos."""

    least_familiar_share: dict[str, float]  # per trained source's test split: share of accepted photos in the last band
    less_reliable_where_unfamiliar: list[str]  # sources whose least familiar third's AUC interval lies wholly below
    # the most familiar third's point estimate: there, an unfamiliar photo's figure was measured less reliable
    date: str


@dataclass(frozen=True)
class FamiliarityBand:
    share_of_accepted: float
    roc_auc: float | None
    roc_auc_interval: Bounds | None


@dataclass(frozen=True)
class Familiarity:
    """familiarity.json (`familiarity --record`): per set of photos ("ham10000 test"), each familiarity
    band's share of the accepted photos and the model's AUC within it."""

    sets: dict[str, dict[str, FamiliarityBand]]  # set name -> band name (novelty.FAMILIARITY_BANDS) -> figures
    date: str

    @classmethod
    def from_dict(cls, data: dict) -> Familiarity:
        part = Fields(data, FAMILIARITY)
        sets = {}
        for name, measured in part.parts("sets").items():
            sets[name] = {band: FamiliarityBand(share_of_accepted=figures.number("share_of_accepted"),
                                                roc_auc=figures.optional_number("roc_auc"),
                                                roc_auc_interval=_bounds(figures, "roc_auc"))
                          for band, figures in measured.parts("bands").items()}
        return cls(sets=sets, date=str(part.get("date", ""))[:10])

    @cached_property
    def reading(self) -> FamiliarityReading:
        """What the bands say, derived once per bundle: the Classify cards show it."""
        most, least = FAMILIARITY_BANDS[0], FAMILIARITY_BANDS[-1]
        tests = {name.removesuffix(TEST_SET_SUFFIX): bands for name, bands in self.sets.items()
                 if name.endswith(TEST_SET_SUFFIX)}
        worse = [source for source, bands in tests.items()
                 if bands[least].roc_auc_interval is not None and bands[most].roc_auc is not None
                 and bands[least].roc_auc_interval[1] < bands[most].roc_auc]
        return FamiliarityReading(least_familiar_share={source: bands[least].share_of_accepted
                                                        for source, bands in tests.items()},
                                  less_reliable_where_unfamiliar=worse, date=self.date)


# --- reader_study/index.json ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ReaderStudyIndex:
    """The index of the photos a bundle ships for the reader study (`reader_study.write_set`); the
    truth and P(melanoma) of each are read from the test split, never from here."""

    weights_sha256: str | None  # the weights the set was made for
    seed: int | None
    lesions_chosen_from: int | None
    probability_check: float | None  # the largest difference between the shipped photos' P(melanoma) and the split's
    photos: list[dict]  # one per photo: file, image_id, source and the patient columns (a table)

    @classmethod
    def from_dict(cls, data: dict) -> ReaderStudyIndex:
        where = f"{READER_STUDY_DIR}/{READER_STUDY_INDEX}"
        part = Fields(data, where)
        chosen_from, check = part.part("chosen_from", optional=True), part.part("probability_check", optional=True)
        photos = part.need("photos")
        if not isinstance(photos, list) or not all(isinstance(photo, dict) and "file" in photo for photo in photos):
            raise RecordError(f"{where} 'photos' is not a list of photos, each with its 'file'")
        return cls(weights_sha256=part.get("weights_sha256"), seed=part.optional_count("seed"),
                   lesions_chosen_from=chosen_from and chosen_from.optional_count("lesions"),
                   probability_check=check and check.optional_number("max_abs_difference"), photos=photos)


def _bounds(part: Fields, figure: str) -> Bounds | None:
    intervals = part.part("intervals", optional=True)
    return None if intervals is None or not intervals.has(figure) else tuple(intervals.get(figure))
