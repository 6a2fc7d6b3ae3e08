"""How a result is put into words and tables for people: the same wording on every page and in the
CSV a user downloads. No Streamlit here, so the wording is tested without a browser."""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from melanoma.call import (
    CALL_BELOW_THRESHOLD,
    CALL_REFUSED,
    CALL_SUSPICIOUS,
    SHORT_BELOW_THRESHOLD,
    SHORT_SUSPICIOUS,
    mode_name,
)
from melanoma.novelty import FAMILIARITY_BANDS
from melanoma.records import Provenance
from melanoma.sources import SOURCES
from melanoma.wording import CLOSE_BELOW_THRESHOLD, DIFFERENTIAL_NAMES, DX_TYPE_NAMES, OTHER_MALIGNANCIES

THUMBNAIL_SIDE = 64
METADATA_USED = "none (the image alone)"
LEAST_FAMILIAR = len(FAMILIARITY_BANDS) - 1
CALL_NOT_READ = "not assessed"  # a file that is no usable image
# The model card's words, in Markdown; the Classify and About pages show them, the API gives them as text.
DISCLAIMER = ("Research and education demo: **not a diagnosis and not a medical device.** The model has "
              "not been clinically validated; any lesion of concern needs examination by a clinician.")
INTENDED_USE = ("A *demonstration* of how a triage aid for dermatoscopic photos could work, for teaching and "
                "research on skin-lesion classification and its pitfalls. Its calls show what such an aid would "
                "say; they are not for real patients: not for screening, triage or self-assessment.")


def plain_text(markdown: str) -> str:
    """The card's Markdown (bold and italics only) as plain text, for a program to show."""
    return markdown.replace("**", "").replace("*", "")


def percent(probability: float) -> str:
    """One decimal, and "<1%" / ">99%" rather than a misleading "0.0%" / "100.0%"."""
    if probability < 0.01:
        return "<1%"
    if probability > 0.99:
        return ">99%"
    return f"{probability:.1%}"


def against_threshold(probability: float, threshold: float, suspicious: bool, mode: str | None = None) -> str:
    """P(melanoma) against the threshold, for a call already made (`suspicious`, from
    `Predictor.call_for`), naming the threshold's mode where given; just below it
    (CLOSE_BELOW_THRESHOLD), it says so."""
    named = f"{percent(threshold)}" + (f" ({mode})" if mode else "")
    if suspicious:
        return f"{percent(probability)}: above the referral threshold of {named}"
    if threshold - probability <= CLOSE_BELOW_THRESHOLD:
        return (f"{percent(probability)}: below the referral threshold of {named}, but close to it: "
                "another photo of the same lesion could well land above it")
    return f"{percent(probability)}: below the referral threshold of {named}"


def call_and_diagnosis_note(prediction) -> str | None:
    """Why the call and the differential's most likely diagnosis seem to disagree, where they do."""
    if not prediction.ok or prediction.assessment is None:
        return None
    likeliest = next(iter(prediction.assessment.differential))
    melanoma_likeliest = likeliest == DIFFERENTIAL_NAMES["mel"]
    probability, threshold = percent(prediction.probability), percent(prediction.threshold)
    if prediction.suspicious and not melanoma_likeliest:
        return (f"Refer, although {likeliest} is more likely than melanoma: P(melanoma) {probability} is at or above "
                f"the referral threshold of {threshold}, which is set low so that most melanomas are referred.")
    if not prediction.suspicious and melanoma_likeliest:
        return (f"Melanoma is the likeliest of the seven diagnoses, yet P(melanoma) {probability} is below the "
                f"referral threshold of {threshold}: no referral call, and no rule-out either.")
    return None


def other_malignancy_note(prediction) -> str | None:
    """Where the differential's most likely diagnosis is another malignancy (basal cell carcinoma,
    actinic keratosis / intraepithelial carcinoma): the call speaks of melanoma only."""
    if not prediction.ok or prediction.assessment is None:
        return None
    likeliest = next(iter(prediction.assessment.differential))
    if likeliest not in {DIFFERENTIAL_NAMES[dx] for dx in OTHER_MALIGNANCIES}:
        return None
    return (f"The call is about melanoma only. The most likely diagnosis here is {likeliest} "
            f"({percent(prediction.assessment.differential[likeliest])}), which is not melanoma but also needs a "
            "clinician: whatever the melanoma call, have this lesion examined.")


def familiarity_line(band: int, reading) -> tuple[str, str] | None:
    """(one sentence, the numbers behind it) where the photo's familiarity band was measured to say
    something about its call (`published.familiarity_reading`): only a photo in the least familiar third,
    and only where calls there were measured less accurate on some source's test photos. Elsewhere the
    bands say nothing a user can act on (docs/limits.md): None, and the card says nothing."""
    if band != LEAST_FAMILIAR or not reading.less_reliable_where_unfamiliar:
        return None
    sources = " and ".join(source_title(source) for source in reading.less_reliable_where_unfamiliar)
    shares = ", ".join(f"{share:.0%} of {source_title(source)}'s" for source, share in sorted(
        reading.least_familiar_share.items(), key=lambda item: -item[1]))
    return (f"**Unfamiliar photo:** it looks less like the training photos than two in three of the validation "
            f"photos do, and on such photos from {sources} the model's calls were measured less accurate.",
            f"Least familiar third by the not-a-lesion check's novelty score (cut at the terciles of the validation "
            f"photos). On the test photos, {shares} fell in it; each band's figures are on the About page "
            f"(measured {reading.date}).")


def source_title(source: str) -> str:
    """A source as people know it (HAM10000, ISIC 2017); a folder the project does not know, by its name."""
    return SOURCES.get(source, {}).get("title", source)


def source_clinics(source: str) -> str | None:
    """Which clinics a source's photos come from; None for a folder the project does not know."""
    return SOURCES.get(source, {}).get("clinics")


def source_licence(source: str) -> str | None:
    """A source's licence (CC BY-NC-SA 4.0); None for a folder the project does not know."""
    return SOURCES.get(source, {}).get("licence")


def credit_lines(sources: Sequence[str]) -> list[str]:
    """One line per source: name, citation and licence, as every page showing its photos gives them."""
    lines = []
    for source in sources:
        credit = SOURCES.get(source)
        if credit is None:
            lines.append(f"{source}: licence unknown")
        else:
            lines.append(f"{credit['title']} ({credit['citation']}), licence "
                         f"[{credit['licence']}]({credit['licence_url']})")
    return lines


def describe_case(case: dict) -> str:
    """One similar training case in a line: diagnosis in full, how it was confirmed, age, site, and
    the source it came from (what the source does not record is left out)."""
    diagnosis = DIFFERENTIAL_NAMES.get(case["dx"], case["dx"])
    source = source_title(case["source"]) if case.get("source") else "unknown source"
    parts = [diagnosis]
    if case.get("dx_type", "unknown") != "unknown":
        parts.append(f"confirmed by {DX_TYPE_NAMES.get(case['dx_type'], case['dx_type'])}")
    known = [f"{case['age']} y" if case.get("age") is not None else "age unknown",
             *([case["localization"]] if case.get("localization", "unknown") != "unknown" else [])]
    return "; ".join([*parts, ", ".join(known), source])


def thumbnail_uri(image, side: int = THUMBNAIL_SIDE) -> str:
    """A small PNG of a PIL image as a data URI (in memory: uploads are never written anywhere)."""
    small = image.copy()
    small.thumbnail((side, side))
    return "data:image/png;base64," + png_base64(small)


def png_base64(image) -> str:
    """A PIL image as base64 PNG, encoded in memory."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def triage_order(predictions) -> list[int]:
    """Positions of `predictions`, most in need of a clinician first: every photo with no call (refused
    as outside what the model knows, or a file that is no usable image: someone has to look at it),
    then assessed photos by P(melanoma), highest first; upload order within each."""
    def rank(position: int) -> tuple[int, float]:
        prediction = predictions[position]
        return (1, -prediction.probability) if prediction.ok else (0, 0.0)

    return sorted(range(len(predictions)), key=rank)


def distinct_labels(names: Sequence[str]) -> list[str]:
    """The names, each once: a name given to several different photos gets its place among them,
    "IMD058.jpg (1 of 2)", so the table, the chart and the cards keep them apart."""
    totals = {name: names.count(name) for name in names}
    seen: dict[str, int] = {}
    labels = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if totals[name] == 1 else f"{name} ({seen[name]} of {totals[name]})")
    return labels


def call_of(prediction) -> str:
    if prediction.ok:
        return prediction.call
    return CALL_REFUSED if prediction.not_a_lesion else CALL_NOT_READ


def results_table(predictions) -> pd.DataFrame:
    """One row per file in `triage_order`, with its reason where it was not assessed."""
    rows = []
    for position in triage_order(predictions):
        prediction = predictions[position]
        assessed = prediction.ok
        rows.append({
            "photo": thumbnail_uri(prediction.prepared.display) if prediction.prepared and prediction.prepared.display
            else None,
            "file": prediction.name,
            "call": call_of(prediction),
            "P(melanoma)": prediction.probability if assessed else None,
            "most likely diagnosis": (next(iter(prediction.assessment.differential)) if assessed and
                                      prediction.assessment else ""),
            "reason not assessed": "" if assessed else prediction.error,
            "metadata used": prediction.patient.describe() if assessed and prediction.metadata_used else METADATA_USED,
            "threshold": round(prediction.threshold, 4) if assessed else None,  # that made this call
            "mode": mode_name(prediction.metadata_used) if assessed else None,  # whose threshold it is
        })
    return pd.DataFrame(rows)


def short_call(call: str) -> str:
    """A call, or why there is none, in a word or two for a narrow table cell (the CSV keeps the words)."""
    return {CALL_SUSPICIOUS: SHORT_SUSPICIOUS, CALL_BELOW_THRESHOLD: SHORT_BELOW_THRESHOLD, CALL_REFUSED: "no call",
            CALL_NOT_READ: CALL_NOT_READ}.get(call, call)


def short_reason(reason: str) -> str:
    """A reason's first clause, for a table cell (at most about 40 characters, so the cell shows it whole);
    the full reason is on the file's card and in the CSV."""
    return reason.split(" (")[0].split(": ")[0].split(", or ")[0] if reason else reason


def results_csv(table: pd.DataFrame, made: Provenance, when: datetime | None = None) -> str:
    """The table as CSV, each row carrying what it was made with: its threshold and the patient
    information used (per row: a metadata network has a threshold per mode), model and date."""
    return table.drop(columns="photo").assign(**provenance(made, when)).to_csv(index=False)


def provenance(made: Provenance, when: datetime | None = None) -> dict:
    """The columns every downloaded row carries: which model (name, version, weights) and when."""
    when = when or datetime.now(UTC)
    return {"model": made.name, "model_created": made.created, "weights_sha256": made.weights_sha256,
            "date": when.isoformat(timespec="seconds")}


def model_identity(bundle) -> dict:
    """Which model answered (name, version, creation date, weights hash): every API answer and
    downloaded report carries it."""
    manifest = bundle.manifest
    return {"name": manifest.get("name"), "version": bundle.version, "created": manifest.get("created"),
            "weights_sha256": manifest.get("weights_sha256")}
