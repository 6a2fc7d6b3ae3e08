"""What the model card publishes from a bundle, all measured, none typed in: the differential's test
figures as the app shows it, the model's figures on data sources it was not trained on, and what the
familiarity bands were measured to say. Beside them, the one figure from the literature the app
quotes (Haenssle 2018's readers, on the reader-study page), with its citation.

The first two come from `python -m melanoma evaluate --record` (the bundle's evaluations.json): on the
training source's folder it measures the bundle's own test split, on another folder every photo. The
familiarity reading comes from `python -m melanoma familiarity --record` (familiarity.json); what the
not-a-lesion check was measured to do on pictures it never saw, from `refusal --record` (refusal.json).
"""
from __future__ import annotations

from dataclasses import dataclass

from melanoma.differential import FITTED_SOURCE
from melanoma.records import DifferentialFigures, Evaluation, FamiliarityReading, WouldRefuse
from melanoma.reporting import source_title


@dataclass(frozen=True)
class ReaderStudyAnchor:
    """A published reader study's figures, shown beside a visitor's own result."""

    readers: int
    sensitivity: float  # the readers' mean
    specificity: float
    cnn_auc: float
    images: int
    citation: str


# Level I of the study: dermoscopy alone, 100 images.
HAENSSLE_2018 = ReaderStudyAnchor(readers=58, sensitivity=0.866, specificity=0.713, cnn_auc=0.86, images=100,
                                  citation="Haenssle et al., Annals of Oncology 29(8):1836-1842 (2018)")

SHOWN_DIFFERENTIAL = ("its melanoma share is the network's calibrated P(melanoma), the card's headline figure; the "
                      "other six diagnoses share the rest in the proportions that {source} gives them")


def other_sources(bundle) -> dict[str, Evaluation]:
    """`evaluate --record` reports of folders none of whose photos the model was trained or tested on."""
    return {source: report for source, report in bundle.evaluations.items()
            if not report.trained_on_source and source not in bundle.sources}


# Where the statement on other clinics comes from when this project measured none: the README's
# "Data" section (lesions held back elsewhere judge the shipped model outside the project).
HELD_BACK = ("lesions from HAM10000 and from three other clinics are held back outside this project to judge the "
             "shipped model there; their figures are not published here")


def other_clinics_statement(bundle) -> str:
    """What is known of the model on clinics it was not trained on, and where that comes from (Markdown):
    About, the API's model card and each Classify card say this one thing."""
    measured = other_sources(bundle)
    if measured:
        return ("Measured by this project with `evaluate --record` on every photo of "
                + " and ".join(f"{source_title(source)} ({report.figures.n_images:,} photos, {report.day})"
                               for source, report in measured.items())
                + ", archives it was never trained on: figures in the table above.")
    by_source = bundle.metrics.test_by_source
    spread = ""
    if len(by_source) > 1 and all(part.roc_auc is not None for part in by_source.values()):
        spread = (" Among its own sources it already does worse on some clinics' cameras than others' (test ROC AUC "
                  "of P(melanoma) with patient data: " + ", ".join(
                      f"{source_title(source)} {part.roc_auc:.3f}" for source, part in by_source.items())
                  + "), so on clinics it never saw expect it to miss more melanomas.")
    return f"**Not measured by this project** on clinics it was not trained on: {HELD_BACK}.{spread}"


def other_clinics_in_brief(bundle) -> str:
    """The statement's gist, for a Classify card (the whole of it is on About)."""
    if other_sources(bundle):
        return "on clinics it was not trained on it was measured to do worse (About)"
    return "on clinics it was not trained on it has not been measured here and is likely to miss more (About)"


def test_split_refusals(bundle, source: str) -> WouldRefuse | None:
    """How many of one source's test photos the not-a-lesion check would refuse, where `evaluate --record`
    measured it on that source's folder; else None."""
    report = bundle.evaluations.get(source)
    part = report.test_split_part if report else None
    return part.not_a_lesion if part else None


def differential_test_report(bundle) -> tuple[DifferentialFigures, str] | None:
    """(figures, what they measure) of the differential on the bundle's test split: the one the app
    shows where `evaluate --record` measured it on the training source; else the head's own, as
    fitted (its melanoma share is the head's, not the network's P(melanoma)). None without extras."""
    for source, report in bundle.evaluations.items():
        shown = report.test_split_part and report.test_split_part.differential
        if shown:
            made = " with their recorded patient data" if bundle.takes_metadata else ""
            return shown, (f"the differential as shown here, on {source_title(source)}'s "
                           f"{shown.n_images:,} test photos{made}, by `evaluate --record`")
    if bundle.extras_info is None:
        return None
    return (bundle.extras_info.differential_test,
            "measured for the diagnosis model alone, before its melanoma share is replaced, on the test split")


def differential_accuracy(bundle) -> str | None:
    """How often the differential's most likely diagnosis was the confirmed one on the test split, in
    a sentence; None where that was not measured."""
    measured = differential_test_report(bundle)
    if measured is None or measured[0].accuracy is None:
        return None
    figures, what = measured
    return (f"The most likely diagnosis was the confirmed one for **{figures.accuracy:.1%}** of the test photos "
            f"it was measured on ({what}).")


def how_the_differential_is_made(bundle) -> str:
    source = bundle.extras_info.differential_source if bundle.extras_info else FITTED_SOURCE
    return SHOWN_DIFFERENTIAL.format(source=source)


def familiarity_reading(bundle) -> FamiliarityReading | None:
    """What the familiarity bands were measured to say (read once per bundle); None where the bands
    were never measured (`familiarity --record`) or the bundle has none."""
    return bundle.familiarity.reading if bundle.familiarity else None


def refusal_reading(bundle) -> str | None:
    """The not-a-lesion classifier and what the check was measured to do, in words for the model card;
    None for a bundle without the classifier."""
    check = bundle.extras_info.not_a_lesion if bundle.extras_info else None
    if check is None or check.classifier_rule is None:
        return None
    clinics = "".join(f" and {clinic.training_photos:,} lesion photos of {source_title(source)}, a clinic the "
                      "network was not trained on," for source, clinic in check.other_clinics.items())
    words = (f"A second check also refuses: a classifier taught the training photos{clinics} against "
             f"{check.classifier_other_pictures:,} pictures that are not lesion photos (renders, scikit-image's "
             "photos and crops, faces, bare skin from an ordinary camera), about 1 lesion photo in 200 of each "
             "source refused by it.")
    measured = bundle.refusal
    if measured is None:
        return words + " How it does on pictures from other sources was not measured for this model."
    kinds = "; ".join(f"{kind} {count}" for kind, count in measured.held_out_by_kind.items())
    by_source: dict[str, list[str]] = {}
    for (source, split), share in measured.lesions_refused.items():
        by_source.setdefault(source, []).append(f"{split} {share:.1%}")
    lesions = "; ".join(f"{source_title(source)}{'' if source in bundle.sources else ', a clinic it was not trained on'}: "
                        + ", ".join(figures) for source, figures in by_source.items())
    return (words + f" On {measured.held_out_pictures} pictures from sources it never saw (neither fitted nor "
            f"chosen on), the two refused {measured.held_out_share:.1%} (target 95%): {kinds}. Food, retina "
            f"and plain X-ray photos were not among them. Lesion photos refused: {lesions}"
            f" ({measured.date}).")
