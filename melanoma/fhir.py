"""FHIR out: results as HL7 FHIR R4, the form a clinic's record system reads.

One `DiagnosticReport` holds, as contained resources, the model as a `Device` (name, version and
weights hash) and one `Observation` per photo, in upload order: P(melanoma) as a probability, the call
as its interpretation, the threshold and mode it was made at, the top of the differential, the
body site where one was used; a photo that was not assessed carries its one-line reason as the
value's absence. Every resource is `preliminary`: the output of an image model for a clinician to
review, never a diagnosis. No patient identifier enters it: only a FHIR `Patient` reference the caller
gives goes into `subject`.

The document is built as plain data and validated by fhir.resources' models (its R4B package: R4's
DiagnosticReport, Observation and Device, unchanged in R4B) before it leaves.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from melanoma.reporting import DISCLAIMER, plain_text
from melanoma.wording import NOT_A_LESION_REASON

MEDIA_TYPE = "application/fhir+json"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
DEVICE_ID = "model"
DIFFERENTIAL_SHOWN = 3  # the top of the differential each observation gives
# A Patient reference as FHIR writes one: Patient/<id>, or a server's absolute URL ending so.
PATIENT_REFERENCE = re.compile(r"^(https?://[^\s]+/)?Patient/[A-Za-z0-9\-.]{1,64}$")


class SubjectError(ValueError):
    """A `subject` that is no FHIR Patient reference; str() is the one-line reason."""


def checked_subject(text: str | None) -> str | None:
    """The caller's FHIR Patient reference (blank: none); raises SubjectError for anything else, so
    that no other text (a name, a record number) can enter the report."""
    text = (text or "").strip()
    if not text:
        return None
    if not PATIENT_REFERENCE.match(text):
        raise SubjectError("subject must be a FHIR Patient reference, like Patient/123 (or the server's URL of one)")
    return text


def melanoma_concept() -> dict:
    """Melanoma as SNOMED CT names it (from pydicom's code dictionary, not typed here)."""
    from pydicom.sr.codedict import codes

    code = codes.SCT.MalignantMelanoma
    return {"system": SNOMED, "code": code.value, "display": code.meaning}


def diagnostic_report(bundle, predictions: Sequence, subject: str | None = None,
                      when: datetime | None = None) -> dict:
    """The FHIR R4 DiagnosticReport (as JSON-ready data) for a bundle's predictions, validated."""
    issued = (when or datetime.now(UTC)).isoformat(timespec="seconds")
    patient = {"subject": {"reference": subject}} if subject else {}
    observations = [observation(prediction, f"photo-{position}", issued, patient)
                    for position, prediction in enumerate(predictions, start=1)]
    report = {
        "resourceType": "DiagnosticReport",
        "contained": [device(bundle), *observations],
        "status": "preliminary",
        "code": {"text": "Melanoma triage of dermatoscopic photos by an image model"},
        **patient,
        "issued": issued,
        "result": [{"reference": f"#{item['id']}"} for item in observations],
        "conclusion": f"{summary(predictions)} {plain_text(DISCLAIMER)}",
    }
    return validated(report)


def device(bundle) -> dict:
    manifest = bundle.manifest
    return {
        "resourceType": "Device", "id": DEVICE_ID, "status": "active",
        "deviceName": [{"name": manifest.get("name") or bundle.path.name, "type": "model-name"}],
        "type": {"text": "image classifier software: a research and teaching demo, not a medical device"},
        "version": [{"type": {"text": "model version"}, "value": bundle.version},
                    {"type": {"text": "weights SHA-256"}, "value": bundle.weights_sha256}],
    }


def observation(prediction, identifier: str, issued: str, patient: dict) -> dict:
    """One photo's Observation: its P(melanoma) and call, or why there is none."""
    item = {
        "resourceType": "Observation", "id": identifier, "status": "preliminary",
        "code": {"coding": [melanoma_concept()], "text": "P(melanoma): the model's calibrated probability of melanoma"},
        **patient, "issued": issued, "device": {"reference": f"#{DEVICE_ID}"},
        "note": [{"text": f"photo: {prediction.name}"}, *({"text": note} for note in prediction.file_notes)],
    }
    if not prediction.ok:
        absent = "not-performed" if prediction.error == NOT_A_LESION_REASON else "error"
        return {**item, "dataAbsentReason": {"coding": [{"system": DATA_ABSENT, "code": absent}],
                                             "text": f"not assessed: {prediction.error}"}}
    if prediction.metadata_used and prediction.patient.site:
        item["bodySite"] = {"text": prediction.patient.site}
    mode = (f"with the patient's {', '.join(prediction.patient.given)}" if prediction.metadata_used
            else "from the image alone")
    item.update({
        "valueQuantity": probability(prediction.probability),
        "interpretation": [{"text": prediction.call}],
        "method": {"text": f"image model ({mode}); called suspicious from P(melanoma) >= {prediction.threshold:.4f}"},
        "component": [
            {"code": {"text": "referral threshold of P(melanoma)"}, "valueQuantity": probability(prediction.threshold)},
            {"code": {"text": "operating mode"}, "valueString": mode},
            *({"code": {"text": f"differential: {name}"}, "valueQuantity": probability(share)}
              for name, share in top_of_differential(prediction)),
        ],
    })
    return item


def top_of_differential(prediction) -> list[tuple[str, float]]:
    if prediction.assessment is None:
        return []
    return list(prediction.assessment.differential.items())[:DIFFERENTIAL_SHOWN]


def probability(value: float) -> dict:
    return {"value": round(float(value), 4), "unit": "probability", "system": UCUM, "code": "1"}


def summary(predictions: Sequence) -> str:
    """One sentence: how many photos got which call, and how many none."""
    calls: dict[str, int] = {}
    for prediction in predictions:
        key = prediction.call if prediction.ok else "not assessed"
        calls[key] = calls.get(key, 0) + 1
    parts = "; ".join(f"{count} {call}" for call, count in calls.items())
    return f"{len(predictions)} photo(s): {parts}."


def validated(report: dict) -> dict:
    """The report through fhir.resources' DiagnosticReport model (raises where it is not valid FHIR)."""
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    return json.loads(DiagnosticReport.model_validate(report).model_dump_json(exclude_none=True))


def as_json(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)
