"""Check it on your photos: the shipped model measured on a clinic's own labelled photos, a local
validation, as guidelines for medical AI ask of a site before it relies on a model. Outside the
archives it was trained on the model does worse, by how much depends on the camera; this measures
it on the camera that matters.

The page (melanoma/app/local_check.py) and the HTTP API (POST /api/v1/evaluate) both answer through
here: `read_labels` (a CSV: HAM10000's own metadata file works as it is) or `labels_from_frame` (the
page's editable table), `pair` (photos with their labels), then `check`. The figures are
`python -m melanoma evaluate`'s, from the same code (melanoma/evaluate.py: the rates at the bundle's
threshold, the bootstrap intervals, by lesion where lesion ids are given, else by photo), with what
a clinic needs beside them: the ROC beside the published curves, calibration, how familiar the photos
look, the not-a-lesion refusals, the threshold that would keep a sensitivity on these photos, and a
warning where too few melanomas make the figures say little.

It checks the model; it never retrains or recalibrates it. Photos and labels stay in memory:
nothing here writes anything.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
import pandas as pd

from melanoma import calibration
from melanoma.call import suspicious
from melanoma.config import MELANOMA_DX
from melanoma.evaluate import (
    choose_thresholds,
    lesion_bootstrap_intervals,
    lesion_draw_weights,
    metrics_at,
    roc_points,
)
from melanoma.images import UPLOAD_EXTENSIONS
from melanoma.novelty import FAMILIARITY_BANDS
from melanoma.patient import NO_INFORMATION, SITE_COLUMNS, PatientInfo, PatientInfoError
from melanoma.records import TEST_SET_SUFFIX
from melanoma.reporting import model_identity, source_title

MIN_PHOTOS = 20  # fewer cannot place a sensitivity or specificity anywhere useful
MAX_PHOTOS = 1_000
MAX_TOTAL_MB = 300  # every photo is held in memory at once
MB = 1024 * 1024

# The thresholds a clinic may want to try: each keeps this sensitivity on its own photos.
WHAT_IF_SENSITIVITIES = (0.80, 0.85, 0.90)
WHAT_IF_RESAMPLES = 500  # draws to choose the what-if thresholds again on (one ROC curve a draw, ~3 ms here)

# A sensitivity interval wider than this (more than ±0.10) says little about how many melanomas the
# model would miss; the warning says how many melanomas would narrow it that far.
WIDEST_USEFUL_INTERVAL = 0.20
PLANNING_SENSITIVITY = 0.85  # the shipped threshold's target on validation: the sensitivity to plan for
NORMAL_95 = 1.959964

CHECK_CHUNK = 128  # photos classified per step, so a progress bar moves while a large set runs

# The label CSV: its columns, matched without regard to case.
NAME_COLUMNS = ("image_id", "file", "filename", "file_name", "image", "photo", "name")
MELANOMA_COLUMN = "melanoma"
DIAGNOSIS_COLUMNS = ("dx", "diagnosis")
LESION_COLUMN = "lesion_id"
PATIENT_COLUMNS = {"age": ("age",), "sex": ("sex",), "site": SITE_COLUMNS}  # as `evaluate` reads them
YES = ("yes", "y", "true", "1", "melanoma", MELANOMA_DX)
NO = ("no", "n", "false", "0")
MELANOMA_DIAGNOSES = (MELANOMA_DX, "melanoma")

MISSED, FALSE_ALARM, FOUND, CLEARED = "missed melanoma", "false alarm", "melanoma found", "cleared"
OUTCOME_ORDER = (MISSED, FALSE_ALARM, FOUND, CLEARED)  # the per-photo table's order: the errors first

WHAT_IT_CANNOT_TELL = (
    "It checks the model, it does not retrain or recalibrate it; and a small set's figures are uncertain: read "
    "the 95% intervals, not the points.")


class LabelsError(ValueError):
    """The labels cannot be used at all; str() says why in one line."""


class CheckRefused(ValueError):
    """No figures can be given for these photos (too few, one class only); str() says why in one line."""


@dataclass(frozen=True)
class Label:
    melanoma: bool
    lesion_id: str | None = None
    patient: dict = field(default_factory=dict)  # the row's age, sex and site columns as given


@dataclass
class Labels:
    by_photo: dict[str, Label]  # by `photo_key`
    patient_fields: list[str]  # "age", "sex", "site": those with a column
    problems: list[str]  # one-line reasons for rows left out


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    label: Label


def photo_key(name: str) -> str:
    """How a photo and its label find each other: the file name without an image extension, any case
    (HAM10000's image_id ISIC_0024306 names ISIC_0024306.jpg)."""
    path = PurePath(str(name).strip())
    stem = path.stem if path.suffix.lower().lstrip(".") in UPLOAD_EXTENSIONS else path.name
    return stem.casefold()


def listed(names: Sequence[str], shown: int = 5) -> str:
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def read_labels(data: bytes) -> Labels:
    """A label CSV's rows; raises LabelsError where it cannot be read or lacks a needed column."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except Exception as error:  # noqa: BLE001 - pandas raises many kinds for a file that is no CSV
        reason = str(error).strip().splitlines()
        raise LabelsError(f"the labels CSV cannot be read: {reason[0] if reason else type(error).__name__}") from None
    return labels_from_frame(frame)


def labels_from_frame(frame: pd.DataFrame) -> Labels:
    """Labels from a table with a column naming the photo and one saying melanoma (yes/no) or the
    diagnosis (melanoma is `mel` or `melanoma`; any other diagnosis counts as not melanoma), and
    optionally lesion_id, age, sex and a site (localization or anatom_site_general)."""
    frame = frame.rename(columns=lambda column: str(column).strip().lower())
    found = ", ".join(frame.columns) or "none"
    name_column = next((column for column in NAME_COLUMNS if column in frame.columns), None)
    if name_column is None:
        raise LabelsError(f"the labels have no column naming the photos: give one of {', '.join(NAME_COLUMNS)} "
                          f"(found: {found})")
    diagnosis_column = next((column for column in DIAGNOSIS_COLUMNS if column in frame.columns), None)
    label_column = MELANOMA_COLUMN if MELANOMA_COLUMN in frame.columns else diagnosis_column
    if label_column is None:
        raise LabelsError(f"the labels have no column saying which photos are melanomas: give '{MELANOMA_COLUMN}' "
                          f"(yes or no) or a diagnosis '{DIAGNOSIS_COLUMNS[0]}' (mel for melanoma) (found: {found})")
    patient_columns = [column for named in PATIENT_COLUMNS.values() for column in named if column in frame.columns]
    by_photo, unlabelled, repeated, nameless = {}, [], [], 0
    for row in frame.to_dict("records"):
        name = _text(row[name_column])
        if not name:
            nameless += 1
            continue
        melanoma = _melanoma(row[label_column], label_column == MELANOMA_COLUMN)
        if melanoma is None:
            unlabelled.append(name)
        elif photo_key(name) in by_photo:
            repeated.append(name)
        else:
            by_photo[photo_key(name)] = Label(melanoma, _text(row.get(LESION_COLUMN)) or None,
                                              {column: row[column] for column in patient_columns})
    problems = []
    if nameless:
        problems.append(f"{nameless} label row(s) name no photo: left out")
    if unlabelled:
        what = "yes or no" if label_column == MELANOMA_COLUMN else "a diagnosis"
        problems.append(f"{len(unlabelled)} label row(s) give no usable label ({what}): {listed(unlabelled)}; left out")
    if repeated:
        problems.append(f"{len(repeated)} photo(s) are labelled twice: {listed(repeated)}; the first row of each is used")
    fields = [name for name, named in PATIENT_COLUMNS.items() if any(column in frame.columns for column in named)]
    return Labels(by_photo=by_photo, patient_fields=fields, problems=problems)


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()


def _melanoma(value, yes_no: bool) -> bool | None:
    text = _text(value).lower()
    if not text:
        return None
    if yes_no:
        return True if text in YES else False if text in NO else None
    return text in MELANOMA_DIAGNOSES


def pair(photos: Sequence[tuple[str, bytes]], labels: Labels) -> tuple[list[Case], list[str]]:
    """Each photo with its label, in upload order; and a one-line reason for each kind of mismatch:
    a second photo of the same name, a photo with no label, a label with no photo (each left out)."""
    cases, seen, repeated, unlabelled = [], set(), [], []
    for name, data in photos:
        key = photo_key(name)
        if key in seen:
            repeated.append(name)
            continue
        seen.add(key)
        label = labels.by_photo.get(key)
        if label is None:
            unlabelled.append(name)
        else:
            cases.append(Case(name, data, label))
    missing = [key for key in labels.by_photo if key not in seen]
    problems = list(labels.problems)
    if repeated:
        problems.append(f"{len(repeated)} photo(s) have the name of an earlier one: {listed(repeated)}; only the "
                        "first of each name is used")
    if unlabelled:
        problems.append(f"{len(unlabelled)} photo(s) have no label: {listed(unlabelled)}; left out")
    if missing:
        problems.append(f"{len(missing)} label(s) name no uploaded photo: {listed(missing)}; left out")
    return cases, problems


def too_many(count: int, total_bytes: int) -> str | None:
    """Why a set of photos is over the limits, or None."""
    if count > MAX_PHOTOS:
        return f"{count:,} photos: at most {MAX_PHOTOS:,} can be checked at once"
    if total_bytes > MAX_TOTAL_MB * MB:
        return f"{total_bytes / MB:,.0f} MB of photos: at most {MAX_TOTAL_MB} MB can be checked at once"
    return None


def patient_of(predictor, label: Label, metadata_used: Sequence[str]) -> PatientInfo:
    """The patient information the network is given for a photo: as `evaluate` reads a CSV row (the
    columns the network's site vocabulary reads); raises PatientInfoError for a value it cannot use."""
    if not metadata_used:
        return NO_INFORMATION
    return predictor.patient_encoding.from_row(label.patient)


def check(predictor, cases: Sequence[Case], problems: Sequence[str] = (),
          progress: Callable[[int, int], None] | None = None) -> dict:
    """The report: `evaluate --json`'s figures at the top level, the clinic's extras, one row per photo
    and the model's identity. Raises CheckRefused where no figures can be given."""
    problems = list(problems)
    refusal = too_many(len(cases), sum(len(case.data) for case in cases))
    if refusal:
        raise CheckRefused(refusal)
    _enough(cases, "labelled photo")
    # As `evaluate`: the fields the labels have a column for, where the network takes them.
    given = {column for case in cases for column in case.label.patient}
    fields = [name for name, named in PATIENT_COLUMNS.items()
              if predictor.takes_metadata and given.intersection(named)]
    patients, unusable = [], []
    for case in cases:
        try:
            patients.append(patient_of(predictor, case.label, fields))
        except PatientInfoError as error:  # as `evaluate` does: that photo's information counts as unknown
            patients.append(NO_INFORMATION)
            unusable.append(f"{case.name} ({error})")
    if unusable:
        problems.append(f"{len(unusable)} photo(s) have patient information the network cannot use, taken as "
                        f"unknown: {listed(unusable, 3)}")
    predictions = []
    for start in range(0, len(cases), CHECK_CHUNK):
        chunk = slice(start, start + CHECK_CHUNK)
        predictions += predictor.classify_many([(case.name, case.data) for case in cases[chunk]], display=False,
                                               patients=patients[chunk])
        if progress:
            progress(len(predictions), len(cases))
    unread = [(case, prediction) for case, prediction in zip(cases, predictions)
              if not prediction.ok and not prediction.not_a_lesion]
    if unread:
        problems.append(f"{len(unread)} file(s) could not be used: " + "; ".join(
            f"{case.name}: {prediction.error}" for case, prediction in unread[:3])
            + (f"; and {len(unread) - 3} more" if len(unread) > 3 else "") + "; left out")
    scored = [(case, prediction) for case, prediction in zip(cases, predictions)
              if prediction.ok or prediction.not_a_lesion]
    _enough([case for case, _ in scored], "usable photo")
    return _report(predictor, scored, fields, problems, dropped=len(unread))


def _enough(cases: Sequence[Case], what: str) -> None:
    if len(cases) < MIN_PHOTOS:
        raise CheckRefused(f"{len(cases)} {what}(s): at least {MIN_PHOTOS} are needed for figures that mean anything")
    melanomas = sum(case.label.melanoma for case in cases)
    if melanomas in (0, len(cases)):
        kind = "melanomas" if melanomas else "not melanomas"
        raise CheckRefused(f"all {len(cases)} {what}s are {kind}: sensitivity, specificity and AUC need both "
                           "melanomas and other lesions")


def _report(predictor, scored, metadata_used: list[str], problems: list[str], dropped: int) -> dict:
    bundle = predictor.bundle
    names = [case.name for case, _ in scored]
    labels = np.array([case.label.melanoma for case, _ in scored], np.int32)
    # Every usable photo is scored, those refused as not a lesion too (with the network's figure for
    # them), as `evaluate` scores them: the refusals are counted beside.
    probabilities = np.array([prediction.probability if prediction.ok else prediction.unreliable_probability
                              for _, prediction in scored], float)
    given_lesions = any(case.label.lesion_id for case, _ in scored)
    lesions = [case.label.lesion_id or f"photo:{case.name}" for case, _ in scored]
    threshold = predictor.threshold_for(bool(metadata_used))
    report = metrics_at(labels, probabilities, threshold)
    report["intervals"] = _intervals(labels, probabilities, lesions, threshold, given_lesions)
    refused = np.array([prediction.not_a_lesion for _, prediction in scored])
    if predictor.extras is not None:
        report["not_a_lesion"] = {"threshold": predictor.extras.info.not_a_lesion.threshold,
                                  "would_refuse": int(refused.sum()),
                                  "would_refuse_melanoma": int((refused & (labels == 1)).sum()),
                                  "photos": [name for name, no in zip(names, refused) if no]}
    report["metadata_used"] = metadata_used
    report["dropped"] = dropped
    report["model"] = model_identity(bundle)
    report["verdict"] = verdict(report)
    report["calibration"] = calibration.reliability(labels, probabilities)
    report["roc"] = roc_points(labels, probabilities)
    report["published_roc"] = published_curves(bundle)
    report["familiarity"] = familiarity(predictor, [prediction for _, prediction in scored], refused)
    report["what_if"] = what_if(labels, probabilities, lesions)
    report["too_few_melanomas"] = too_few_melanomas(report)
    report["problems"] = problems
    report["photos"] = photo_rows(scored, probabilities, threshold)
    return report


def _intervals(labels, probabilities, lesions, threshold: float, given_lesions: bool) -> dict:
    """`evaluate`'s lesion bootstrap; with no lesion ids each photo is its own lesion: a bootstrap by photo."""
    intervals = lesion_bootstrap_intervals(labels, probabilities, lesions, threshold)
    if not given_lesions:
        intervals["unit"] = "photo"
    return intervals


def verdict(report: dict) -> str:
    """The result in words, at the shipped threshold."""
    (tn, fp), (fn, tp) = report["confusion_matrix"]
    intervals = report["intervals"]
    melanomas, others = tp + fn, tn + fp
    return (f"On your {report['n_images']:,} photos ({melanomas} melanomas) the model found {tp} of {melanomas} "
            f"melanomas (sensitivity {with_interval(report['sensitivity'], intervals['sensitivity'])}) and referred "
            f"{fp} of the {others:,} others (specificity {with_interval(report['specificity'], intervals['specificity'])}"
            f"), at its threshold of P(melanoma) ≥ {report['threshold']:.3f}.")


def with_interval(value: float | None, bounds) -> str:
    if value is None:
        return "not measurable"
    return f"{value:.3f}" + (f", 95% interval {bounds[0]:.3f}-{bounds[1]:.3f}" if bounds else "")


def published_curves(bundle) -> dict:
    """The model's own test ROC per training source, as published on the Training page and model card."""
    metrics = bundle.metrics
    by_source = metrics.test_by_source or ({bundle.sources[0]: metrics.test} if metrics.test else {})
    curves = {}
    for source, figures in by_source.items():
        roc = figures.roc or (metrics.test_roc if len(by_source) == 1 else None)
        if roc is not None:
            curves[source] = {"title": f"{source_title(source)} test split", "roc_auc": figures.roc_auc,
                              "fpr": roc.fpr, "tpr": roc.tpr}
    return curves


def familiarity(predictor, predictions, refused: np.ndarray) -> dict | None:
    """Each familiarity band's share of the photos not refused, beside each training source's test split's
    (`familiarity --record`); None for a bundle without bands."""
    bands = [prediction.assessment.familiarity_band for prediction, no in zip(predictions, refused)
             if not no and prediction.assessment is not None]
    if not bands or any(band is None for band in bands):
        return None
    counts = np.bincount(bands, minlength=len(FAMILIARITY_BANDS))
    published = {}
    if predictor.bundle.familiarity is not None:
        for name, measured in predictor.bundle.familiarity.sets.items():
            if name.endswith(TEST_SET_SUFFIX):
                published[name.removesuffix(TEST_SET_SUFFIX)] = {band: round(figures.share_of_accepted, 4)
                                                                 for band, figures in measured.items()}
    return {"photos": int(counts.sum()),
            "yours": {band: round(float(count / counts.sum()), 4) for band, count in zip(FAMILIARITY_BANDS, counts)},
            "published_test_splits": published}


def what_if(labels, probabilities, lesions) -> list[dict]:
    """For each of WHAT_IF_SENSITIVITIES: the threshold that keeps it on these photos, what that gives,
    and how uncertain that promise is (`threshold_choice_intervals`)."""
    uncertainty = threshold_choice_intervals(labels, probabilities, lesions, WHAT_IF_SENSITIVITIES)
    options = []
    for target, threshold in zip(WHAT_IF_SENSITIVITIES,
                                 choose_thresholds(labels, probabilities, WHAT_IF_SENSITIVITIES)):
        figures = metrics_at(labels, probabilities, threshold)
        (_, fp), (_, tp) = figures["confusion_matrix"]
        options.append({"target_sensitivity": target, "threshold": threshold, "sensitivity": figures["sensitivity"],
                        "specificity": figures["specificity"], "referred": int(tp + fp),
                        "intervals": uncertainty[target]})
    return options


def threshold_choice_intervals(labels, probabilities, lesions, targets, *, resamples: int = WHAT_IF_RESAMPLES,
                               level: float = 0.95, seed: int = 0) -> dict[float, dict]:
    """How uncertain a threshold chosen on a set this small is: the threshold for each target is chosen
    again on each bootstrap draw of the lesions (`evaluate.lesion_draw_weights`) and scored on all the
    photos, which stand in for the clinic's future ones. Per target, percentile intervals of the threshold
    and of the sensitivity and specificity it then gives. (At a threshold fixed beforehand, a set whose
    melanomas are all found would show no uncertainty at all.)"""
    labels, probabilities = np.asarray(labels).astype(int), np.asarray(probabilities, float)
    weights, n_lesions = lesion_draw_weights(lesions, resamples, np.random.default_rng(seed))
    drawn = weights > 0
    both_classes = (drawn & (labels == 1)).any(axis=1) & (drawn & (labels == 0)).any(axis=1)
    chosen = np.array([choose_thresholds(labels[rows], probabilities[rows], targets, draw[rows])
                       for draw, rows in zip(weights[both_classes], drawn[both_classes])])  # draws x targets
    tail = 100 * (1 - level) / 2
    intervals = {}
    for target, thresholds in zip(targets, chosen.T):
        called = suspicious(probabilities[None, :], thresholds[:, None])
        draws = {"threshold": thresholds,
                 "sensitivity": (called & (labels == 1)).sum(axis=1) / labels.sum(),
                 "specificity": (~called & (labels == 0)).sum(axis=1) / (1 - labels).sum()}
        intervals[target] = {"level": level, "resamples": len(thresholds), "n_lesions": n_lesions,
                             "unit": "threshold chosen again on each draw",
                             **{name: np.percentile(values, [tail, 100 - tail]).round(4).tolist()
                                for name, values in draws.items()}}
    return intervals


def melanomas_for_interval(width: float = WIDEST_USEFUL_INTERVAL, sensitivity: float = PLANNING_SENSITIVITY) -> int:
    """About how many melanomas pin a sensitivity near `sensitivity` to a 95% interval `width` wide
    (the normal approximation to the binomial)."""
    return math.ceil(NORMAL_95 ** 2 * sensitivity * (1 - sensitivity) / (width / 2) ** 2)


def too_few_melanomas(report: dict) -> str | None:
    """A warning in words where the sensitivity's interval is too wide to say much; else None."""
    bounds = report["intervals"]["sensitivity"]
    if bounds and bounds[1] - bounds[0] <= WIDEST_USEFUL_INTERVAL:
        return None
    spread = (f"its 95% interval runs from {bounds[0]:.2f} to {bounds[1]:.2f}, {bounds[1] - bounds[0]:.2f} wide"
              if bounds else "its interval cannot be measured")
    return (f"Too few melanomas for the figures to mean much: with {report['n_melanoma']} melanomas the "
            f"sensitivity is uncertain ({spread}; above {WIDEST_USEFUL_INTERVAL:.2f} this page warns). Pinning a "
            f"sensitivity near {PLANNING_SENSITIVITY:.2f} to ±{WIDEST_USEFUL_INTERVAL / 2:.2f} takes about "
            f"{melanomas_for_interval()} melanomas.")


def photo_rows(scored, probabilities: np.ndarray, threshold: float) -> list[dict]:
    """One row per photo, the errors first: missed melanomas, then false alarms (each highest P first)."""
    called = suspicious(probabilities, threshold)
    rows = []
    for (case, prediction), probability, refer in zip(scored, probabilities, called):
        melanoma = case.label.melanoma
        outcome = (FOUND if refer else MISSED) if melanoma else (FALSE_ALARM if refer else CLEARED)
        band = prediction.assessment.familiarity_band if prediction.assessment else None
        rows.append({"file": case.name, "lesion_id": case.label.lesion_id, "melanoma": bool(melanoma),
                     "probability_melanoma": round(float(probability), 4), "suspicious": bool(refer),
                     "outcome": outcome, "not_a_lesion": prediction.not_a_lesion,
                     "familiarity": None if band is None else FAMILIARITY_BANDS[band],
                     "metadata_used": list(prediction.patient.given) if prediction.metadata_used else []})
    return sorted(rows, key=lambda row: (OUTCOME_ORDER.index(row["outcome"]), -row["probability_melanoma"]))


def report_csv(report: dict) -> str:
    """The per-photo rows as CSV, each carrying the model's name, version and weights hash and the threshold."""
    identity = report["model"]
    frame = pd.DataFrame(report["photos"]).assign(
        metadata_used=lambda rows: rows["metadata_used"].map(" ".join), threshold=report["threshold"],
        model=identity["name"], model_version=identity["version"], weights_sha256=identity["weights_sha256"])
    return frame.to_csv(index=False)
