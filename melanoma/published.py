"""What the model card publishes from a bundle, all measured, none typed in: the differential's test
figures as the app shows it, and the model's figures on data sources it was not trained on.

Both come from `python -m melanoma evaluate --record` (the bundle's evaluations.json): on the
training source's folder it measures the bundle's own test split, on another folder every photo.
"""
from __future__ import annotations

from melanoma.differential import FITTED_SOURCE

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
