"""How a result is put into words and tables for people: the same wording on every page and in the
CSV a user downloads. No Streamlit here, so the wording is tested without a browser."""
from __future__ import annotations

import base64
import io
from datetime import UTC, datetime

import pandas as pd

from melanoma.config import DIFFERENTIAL_NAMES, DX_TYPE_NAMES

THUMBNAIL_SIDE = 64
METADATA_USED = "none (the image alone)"


def percent(probability: float) -> str:
    """One decimal, and "<1%" / ">99%" rather than a misleading "0.0%" / "100.0%"."""
    if probability < 0.01:
        return "<1%"
    if probability > 0.99:
        return ">99%"
    return f"{probability:.1%}"


def against_threshold(probability: float, threshold: float) -> str:
    side = "above" if probability >= threshold else "below"
    return f"{percent(probability)}: {side} the referral threshold of {percent(threshold)}"


def describe_case(case: dict) -> str:
    """One similar training case in a line: diagnosis in full, how it was confirmed, age, site."""
    diagnosis = DIFFERENTIAL_NAMES.get(case["dx"], case["dx"])
    confirmed = DX_TYPE_NAMES.get(case["dx_type"], case["dx_type"])
    age = "age unknown" if case.get("age") is None else f"{case['age']} y"
    return f"{diagnosis}; confirmed by {confirmed}; {age}, {case['localization']}"


def thumbnail_uri(image, side: int = THUMBNAIL_SIDE) -> str:
    """A small PNG of a PIL image as a data URI (in memory: uploads are never written anywhere)."""
    small = image.copy()
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def results_table(predictions) -> pd.DataFrame:
    """One row per file, highest P(melanoma) first; files not assessed last, with their reason."""
    rows = []
    for prediction in predictions:
        assessed = prediction.ok
        rows.append({
            "photo": thumbnail_uri(prediction.prepared.display) if prediction.prepared and prediction.prepared.display
            else None,
            "file": prediction.name,
            "call": prediction.call if assessed else "not assessed",
            "P(melanoma)": prediction.probability if assessed else None,
            "most likely diagnosis": (next(iter(prediction.assessment.differential)) if assessed and
                                      prediction.assessment else ""),
            "reason not assessed": "" if assessed else prediction.error,
            "metadata used": prediction.patient.describe() if assessed and prediction.metadata_used else METADATA_USED,
            "threshold": round(prediction.threshold, 4) if assessed else None,  # of the mode used
        })
    table = pd.DataFrame(rows)
    return table.sort_values("P(melanoma)", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def results_csv(table: pd.DataFrame, manifest: dict, when: datetime | None = None) -> str:
    """The table as CSV, each row carrying what it was made with: its threshold and the patient
    information used (per row: a metadata network has a threshold per mode), model and date."""
    return table.drop(columns="photo").assign(**provenance(manifest, when)).to_csv(index=False)


def provenance(manifest: dict, when: datetime | None = None) -> dict:
    """The columns every downloaded row carries: which model (name, version, weights) and when."""
    when = when or datetime.now(UTC)
    return {"model": manifest.get("name"), "model_created": manifest.get("created"),
            "weights_sha256": manifest.get("weights_sha256"), "date": when.isoformat(timespec="seconds")}
