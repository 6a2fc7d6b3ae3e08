"""What the model card publishes from a bundle, all measured, none typed in: the differential's test
figures as the app shows it, the model's figures on data sources it was not trained on, and what the
familiarity bands were measured to say.

The first two come from `python -m melanoma evaluate --record` (the bundle's evaluations.json): on the
training source's folder it measures the bundle's own test split, on another folder every photo. The
last comes from `python -m melanoma familiarity --record` (familiarity.json).
"""
from __future__ import annotations

from dataclasses import dataclass

from melanoma.differential import FITTED_SOURCE
from melanoma.novelty import FAMILIARITY_BANDS

TEST_SET_SUFFIX = " test"  # familiarity's name of a trained source's test split: "<source> test"

SHOWN_DIFFERENTIAL = ("its melanoma share is the network's calibrated P(melanoma), the card's headline figure; the "
                      "other six diagnoses share the rest in the proportions that {source} gives them")


def other_sources(bundle) -> dict[str, dict]:
    """`evaluate --record` reports of folders none of whose photos the model was trained or tested on."""
    return {source: report for source, report in (bundle.evaluations or {}).items()
            if not report.get("trained_on_source") and source not in bundle.sources}


def differential_test_report(bundle) -> tuple[dict, str] | None:
    """(report, what it measures) of the differential on the bundle's test split: the one the app
    shows where `evaluate --record` measured it on the training source; else the head's own, as
    fitted (its melanoma share is the head's, not the network's P(melanoma)). None without extras."""
    for report in (bundle.evaluations or {}).values():
        shown = report.get("bundle_test_split_part", {}).get("differential")
        if shown:
            return shown, "the differential as shown here, on the test split"
    if bundle.extras_info is None:
        return None
    return (bundle.extras_info["differential"]["test"],
            "measured for the diagnosis model alone, before its melanoma share is replaced, on the test split")


def how_the_differential_is_made(bundle) -> str:
    source = (bundle.extras_info or {}).get("differential", {}).get("source", FITTED_SOURCE)
    return SHOWN_DIFFERENTIAL.format(source=source)


@dataclass(frozen=True)
class FamiliarityReading:
    """What the familiarity bands were measured to say on a bundle's test photos."""

    least_familiar_share: dict[str, float]  # per trained source's test split: share of accepted photos in the last band
    less_reliable_where_unfamiliar: list[str]  # sources whose least familiar third's AUC interval lies wholly below
    # the most familiar third's point estimate: there, an unfamiliar photo's figure was measured less reliable
    date: str


def familiarity_reading(bundle) -> FamiliarityReading | None:
    """None where the bands were never measured (`familiarity --record`) or the bundle has none."""
    record = bundle.familiarity
    if not record:
        return None
    most, least = FAMILIARITY_BANDS[0], FAMILIARITY_BANDS[-1]
    tests = {name.removesuffix(TEST_SET_SUFFIX): part for name, part in record.get("sets", {}).items()
             if name.endswith(TEST_SET_SUFFIX)}
    worse = [source for source, part in tests.items()
             if "roc_auc" in part["bands"][least] and "roc_auc" in part["bands"][most]
             and part["bands"][least]["intervals"]["roc_auc"][1] < part["bands"][most]["roc_auc"]]
    return FamiliarityReading(least_familiar_share={source: part["bands"][least]["share_of_accepted"]
                                                    for source, part in tests.items()},
                              less_reliable_where_unfamiliar=worse, date=str(record.get("date", ""))[:10])
