"""FHIR out (melanoma/fhir.py): the shipped model's results as a FHIR R4 DiagnosticReport that
fhir.resources validates, with an Observation per photo, the model as a Device, and nothing that
identifies the patient unless the caller gives a Patient reference."""
from __future__ import annotations

import json

import pytest

from melanoma import fhir
from melanoma.patient import NO_INFORMATION
from tests.bad_inputs import REJECTED
from tests.dicom_files import dicom_photo
from tests.test_dicom import identifiers_in


@pytest.fixture(scope="module")
def shipped():
    from melanoma.bundle import DEFAULT_BUNDLE
    from melanoma.inference import Predictor

    return Predictor.from_bundle(DEFAULT_BUNDLE)


@pytest.fixture(scope="module")
def results(shipped, sample_images):
    """A melanoma photo, its DICOM copy (age, sex, site and identifiers in it), a portrait (refused as
    not a lesion) and a truncated JPEG."""
    from melanoma.inference import classify_files
    from melanoma.lab.non_lesions import skimage_photo

    jpeg = sample_images["mel"].read_bytes()
    files = [("lesion.jpg", jpeg), ("lesion.dcm", dicom_photo(jpeg)), ("portrait.png", skimage_photo("astronaut.png")),
             ("broken.jpg", REJECTED["truncated.jpg"][0])]
    return classify_files(shipped, [(name, NO_INFORMATION, data) for name, data in files])


def validated(document: dict):
    from fhir.resources.R4B.diagnosticreport import DiagnosticReport

    return DiagnosticReport.model_validate(document)


def test_the_report_is_valid_fhir_with_an_observation_per_photo_and_the_model_as_a_device(shipped, results):
    report = fhir.diagnostic_report(shipped.bundle, results)
    parsed = validated(report)
    assert parsed.status == "preliminary" and "not a diagnosis" in parsed.conclusion
    device, *observations = report["contained"]
    assert device["resourceType"] == "Device"
    assert [value["value"] for value in device["version"]] == [shipped.bundle.version, shipped.bundle.weights_sha256]
    assert [item["resourceType"] for item in observations] == ["Observation"] * len(results)
    assert report["result"] == [{"reference": f"#{item['id']}"} for item in observations]
    lesion, copy, portrait, broken = observations
    for item, result in ((lesion, results[0]), (copy, results[1])):
        assert item["code"]["coding"] == [{"system": "http://snomed.info/sct", "code": "1162635006",
                                           "display": "Malignant melanoma"}]
        assert item["valueQuantity"]["value"] == round(result.probability, 4)
        assert item["interpretation"] == [{"text": result.call}]
        threshold, mode, *differential = item["component"]
        assert threshold["valueQuantity"]["value"] == round(result.threshold, 4)
        assert len(differential) == fhir.DIFFERENTIAL_SHOWN
        assert item["device"] == {"reference": f"#{device['id']}"}
    assert lesion["component"][1]["valueString"] == "from the image alone"
    assert copy["component"][1]["valueString"] == "with the patient's age, sex, site"  # from the DICOM file
    assert copy["bodySite"] == {"text": "back"}
    assert portrait["dataAbsentReason"]["coding"][0]["code"] == "not-performed" and "valueQuantity" not in portrait
    assert broken["dataAbsentReason"]["coding"][0]["code"] == "error"
    assert broken["dataAbsentReason"]["text"] == f"not assessed: {results[3].error}"


def test_no_patient_identifier_enters_it_unless_a_patient_reference_is_given(shipped, results):
    plain = fhir.diagnostic_report(shipped.bundle, results)
    assert "subject" not in plain and all("subject" not in item for item in plain["contained"])
    assert identifiers_in(json.dumps(plain)) == []
    given = validated(fhir.diagnostic_report(shipped.bundle, results, subject="Patient/example-7"))
    assert given.subject.reference == "Patient/example-7"
    assert all(item.subject.reference == "Patient/example-7" for item in given.contained[1:])


@pytest.mark.parametrize("subject", ["Zyxwick^Ondine", "MRN-7731904", "Patient/", "Patient/a b", "Practitioner/1"])
def test_a_subject_that_is_no_patient_reference_is_refused(subject):
    with pytest.raises(fhir.SubjectError):
        fhir.checked_subject(subject)
    assert fhir.checked_subject("https://fhir.example.org/r4/Patient/123") == "https://fhir.example.org/r4/Patient/123"
    assert fhir.checked_subject("  ") is None


def test_an_invalid_document_is_never_handed_out():
    """fhir.resources checks structure, required elements and data types (not terminology bindings)."""
    from pydantic import ValidationError

    observation = {"resourceType": "Observation", "id": "photo-1", "status": "preliminary"}  # no code
    with pytest.raises(ValidationError):
        fhir.validated({"resourceType": "DiagnosticReport", "status": "preliminary", "code": {"text": "x"},
                        "contained": [observation]})
    with pytest.raises(ValidationError):
        fhir.validated({"resourceType": "DiagnosticReport", "status": "preliminary", "code": {"text": "x"},
                        "issued": "yesterday"})
