"""DICOM in (melanoma/dicom.py, through images.prepare_image and inference.classify_files): a clinic's
dermoscopy file, made here with pydicom from the project's own photos, gives the network the same
pixels as its JPEG and the patient's age, sex and site; anything else gets a one-line reason; nothing
that identifies the patient comes out."""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from melanoma import dicom
from melanoma.images import ImageRejected, prepare_image
from melanoma.patient import NO_INFORMATION, PatientInfo
from melanoma.reporting import short_reason
from melanoma.sites import ACCEPTED_SITES, FINE_VOCABULARY, GENERAL_VOCABULARY
from tests.dicom_files import (
    IDENTIFIERS,
    ct_slice,
    damaged,
    dicom_photo,
    header_only_garbage,
    jpeg_422,
    several_frames,
    structured_report,
)

# P(melanoma) of a photo and of its DICOM copy: the same pixels go in, so they differ only by the
# network's float noise between batchings (~1e-5, the developers' guide); 1e-4 is the issue's bar.
SAME_PHOTO_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def jpeg(sample_images) -> bytes:
    return sample_images["mel"].read_bytes()


def identifiers_in(text: str) -> list[str]:
    """Every identifier of the test files, and each of its name parts, that `text` contains."""
    parts = {part for value in IDENTIFIERS.values() for part in [value, *value.split("^")] if len(part) > 3}
    return sorted(part for part in parts if part.lower() in text.lower())


# ---- pixels -----------------------------------------------------------------------------------------

def test_an_uncompressed_dicom_gives_the_network_the_pixels_of_its_jpeg(jpeg):
    for spec_display in (False, True):
        photo, copy = prepare_image(jpeg, display=spec_display), prepare_image(dicom_photo(jpeg), display=spec_display)
        assert np.array_equal(photo.model_input, copy.model_input)
        assert photo.original_size == copy.original_size


def test_a_jpeg_baseline_ybr_full_422_dicom_gives_the_pixels_of_the_jpeg_it_holds(jpeg):
    from pydicom import dcmread

    data = dicom_photo(jpeg, compressed=True)
    held = dcmread(io.BytesIO(data))
    assert held.file_meta.TransferSyntaxUID.name == "JPEG Baseline (Process 1)"
    assert held.PhotometricInterpretation == "YBR_FULL_422"
    assert np.array_equal(prepare_image(jpeg_422(jpeg)).model_input, prepare_image(data).model_input)


def test_a_dicom_is_known_by_its_preamble_not_its_name(jpeg):
    assert dicom.is_dicom(dicom_photo(jpeg)) and not dicom.is_dicom(jpeg)
    assert not dicom.is_dicom(b"\0" * 128 + b"DIC")  # too short to be one


@pytest.mark.parametrize("make, phrase", [
    (lambda jpeg: ct_slice(), "not a photograph: a DICOM CT Image, modality CT"),
    (lambda jpeg: structured_report(), "no image: a DICOM Comprehensive SR, with no pixel data"),
    (several_frames, "several frames: a DICOM VL Photographic Image with 2;"),
    (lambda jpeg: damaged(dicom_photo(jpeg)), "damaged DICOM file: its pixels (Explicit VR Little Endian) cannot"),
    (lambda jpeg: damaged(dicom_photo(jpeg, compressed=True)), "damaged DICOM file: its contents cannot be read"),
    (lambda jpeg: header_only_garbage(), "damaged DICOM file"),
    (lambda jpeg: dicom_photo(jpeg)[:200], "damaged DICOM file"),
], ids=["ct", "structured-report", "two-frames", "cut-off-pixels", "cut-off-jpeg", "garbage", "cut-off-header"])
def test_a_dicom_that_is_no_colour_photograph_gets_a_one_line_reason_naming_no_one(jpeg, make, phrase):
    with pytest.raises(ImageRejected) as refused:
        prepare_image(make(jpeg))
    reason = str(refused.value)
    assert phrase in reason and "\n" not in reason and len(reason) < 200
    assert short_reason(reason) in ("not a photograph", "no image", "several frames", "damaged DICOM file")
    assert identifiers_in(reason) == []


def test_pydicom_neither_warns_nor_logs_a_value_it_reads(jpeg, caplog):
    """A file with invalid values (a date of birth that is no date) and one cut off: pydicom's messages
    could quote them, so none may reach the warnings or the log."""
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(dicom_photo(jpeg)))
    with warnings.catch_warnings():  # pydicom warns here, as it writes them: that is this test's own doing
        warnings.simplefilter("ignore")
        dataset.PatientAge = "Zyxwick"  # an invalid AS, read for the age
        dataset.PatientBirthDate = "Zyxwick-1958"  # an invalid DA
    out = io.BytesIO()
    dataset.save_as(out)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for data in (out.getvalue(), damaged(dicom_photo(jpeg, compressed=True))):
            dicom.patient_of(data)
            with contextlib.suppress(ImageRejected):
                prepare_image(data)
    said = " ".join(str(warning.message) for warning in caught) + caplog.text
    assert identifiers_in(said) == [] and "1958" not in said
    assert dicom.patient_of(out.getvalue()).left_out == ("age is not written as a DICOM age (like 055Y): left out",)


# ---- the patient's information ------------------------------------------------------------------------

def test_age_sex_and_site_come_from_the_file_and_nothing_else(jpeg):
    found = dicom.patient_of(dicom_photo(jpeg))
    assert found.info == PatientInfo(age=55, sex="female", site="back") and found.left_out == ()
    assert identifiers_in(repr(found)) == []
    assert dicom.patient_of(dicom_photo(jpeg, patient=False, site=None)).info == NO_INFORMATION
    assert dicom.patient_of(jpeg) is None  # no DICOM file: nothing to fill
    garbage = dicom.patient_of(header_only_garbage())  # damaged: the pixels' reading says why
    assert garbage is None or garbage.info == NO_INFORMATION


@pytest.mark.parametrize("age, years", [("055Y", 55), ("006M", 0.5), ("026W", 0.5), ("030D", 0.1)])
def test_a_dicom_age_in_any_unit_is_years(jpeg, age, years):
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(dicom_photo(jpeg)))
    dataset.PatientAge = age
    out = io.BytesIO()
    dataset.save_as(out)
    assert dicom.patient_of(out.getvalue()).info.age == years


def test_values_the_network_does_not_take_are_left_out_and_said(jpeg):
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(dicom_photo(jpeg, site=("125681006", "Nail"))))
    dataset.PatientSex, dataset.PatientAge = "O", "130Y"
    out = io.BytesIO()
    dataset.save_as(out)
    found = dicom.patient_of(out.getvalue())
    assert found.info == NO_INFORMATION
    assert found.left_out == ("age 130Y is over 120 years: left out",
                              "sex other is not one the network takes (male, female): left out",
                              "body site code SCT 125681006 (Nail) maps to no site the model knows: left out")


@pytest.mark.parametrize("code, site", [(("89545001", "Face"), "face"), (("53120007", "Upper limb"), "upper extremity"),
                                        (("774007", "Head and Neck"), "head/neck"),
                                        (("70887009", "Skin structure of palmar area of hand"), "acral"),
                                        (("12345", "posterior torso"), "posterior torso")])
def test_an_anatomic_region_code_or_its_meaning_names_the_site(jpeg, code, site):
    assert dicom.patient_of(dicom_photo(jpeg, site=code)).info.site == site


@pytest.mark.parametrize("part, site", [("BACK", "back"), ("ARM", "upper extremity"), ("POSTERIOR_TORSO", "posterior torso"),
                                        ("Lower Extremity", "lower extremity"), ("HEADNECK", "head/neck")])
def test_body_part_examined_names_the_site_where_no_code_does(jpeg, part, site):
    assert dicom.patient_of(dicom_photo(jpeg, site=None, body_part=part)).info.site == site


def test_every_mapped_code_is_a_site_word_and_one_pydicom_knows():
    assert set(dicom.REGION_CODE_SITES) <= set(ACCEPTED_SITES)
    assert set(dicom.BODY_PART_SITES.values()) <= set(ACCEPTED_SITES)
    assert len(dicom._region_sites()) == 2 * len({code for code in dicom._region_sites() if code[0] == "SCT"})


def test_the_site_is_given_in_the_words_the_network_reads(jpeg):
    back = dicom.patient_of(dicom_photo(jpeg))
    assert back.for_network(FINE_VOCABULARY).info.site == "back"  # model v3's words
    assert back.for_network(GENERAL_VOCABULARY).info.site == "posterior torso"
    head = dicom.patient_of(dicom_photo(jpeg, site=("69536005", "Head"))).for_network(FINE_VOCABULARY)
    assert head.info.site is None and head.left_out == ("body site head/neck is not one this model reads: left out",)


# ---- evaluate's folders -------------------------------------------------------------------------------

def test_a_folder_of_dicom_files_loads_as_its_jpegs_do(small_folder, tmp_path):
    """`evaluate` (and training) read a data folder's photos through Source.image_path: a folder whose
    photos are DICOM files loads the same arrays."""
    import pandas as pd

    from melanoma.data import load_images
    from melanoma.sources import Source

    frame = pd.read_csv(small_folder / "HAM10000_metadata.csv").head(6)
    folder = tmp_path / "clinic"
    (folder / "images").mkdir(parents=True)
    frame.to_csv(folder / "HAM10000_metadata.csv", index=False)
    for image_id in frame["image_id"]:
        (folder / "images" / f"{image_id}.dcm").write_bytes(
            dicom_photo((small_folder / "images" / f"{image_id}.jpg").read_bytes()))
    _, from_jpegs, _ = load_images(frame, Source(small_folder))
    _, from_dicoms, dropped = load_images(frame, Source(folder))
    assert dropped == [] and np.array_equal(from_jpegs, from_dicoms)


# ---- with the shipped model ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    from melanoma.bundle import DEFAULT_BUNDLE
    from melanoma.inference import Predictor

    return Predictor.from_bundle(DEFAULT_BUNDLE)


def test_a_photo_and_its_dicom_copies_get_the_same_p_and_the_file_fills_the_patient(shipped, jpeg):
    from melanoma.inference import classify_files

    files = [("photo.jpg", NO_INFORMATION, jpeg), ("photo.dcm", NO_INFORMATION, dicom_photo(jpeg)),
             ("photo-422.jpg", NO_INFORMATION, jpeg_422(jpeg)),
             ("photo-422.dcm", NO_INFORMATION, dicom_photo(jpeg, compressed=True)),
             ("ct.dcm", NO_INFORMATION, ct_slice()),
             ("given.dcm", PatientInfo(age=70), dicom_photo(jpeg))]
    photo, copy, photo_422, copy_422, ct, given = classify_files(shipped, files)
    # the file's age, sex and site were used: its image-alone P is the JPEG's
    assert copy.metadata_used and copy.patient == PatientInfo(age=55, sex="female", site="back")
    assert copy.patient_from_file == ("age", "sex", "site")
    assert abs(copy.image_only_probability - photo.probability) <= SAME_PHOTO_TOLERANCE
    assert abs(copy_422.image_only_probability - photo_422.probability) <= SAME_PHOTO_TOLERANCE
    assert copy.as_dict()["patient_from_dicom"] == ["age", "sex", "site"]
    # given with the same information, the JPEG gets the DICOM's P
    [with_info] = classify_files(shipped, [("photo.jpg", PatientInfo(age=55, sex="female", site="back"), jpeg)])
    assert abs(with_info.probability - copy.probability) <= SAME_PHOTO_TOLERANCE
    assert not ct.ok and "not a photograph" in ct.error
    # what the caller gives wins over the file; the rest still comes from it
    assert given.patient == PatientInfo(age=70, sex="female", site="back")
    assert given.patient_from_file == ("sex", "site")
    assert identifiers_in(json.dumps([result.as_dict() for result in (copy, copy_422, ct, given)])) == []


def test_predict_reads_a_dicom_file_as_it_reads_its_jpeg(jpeg, tmp_path):
    from melanoma.bundle import DEFAULT_BUNDLE
    from tests.conftest import ROOT

    (tmp_path / "photo.jpg").write_bytes(jpeg)
    (tmp_path / "photo.dcm").write_bytes(dicom_photo(jpeg, patient=False, site=None))
    (tmp_path / "ct.dcm").write_bytes(ct_slice())
    done = subprocess.run([sys.executable, "-m", "melanoma", "predict", "--json", "--model", str(DEFAULT_BUNDLE),
                           "photo.jpg", "photo.dcm", "ct.dcm"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stderr  # one file not assessed
    photo, copy, ct = json.loads(done.stdout)["results"]
    assert abs(photo["probability_melanoma"] - copy["probability_melanoma"]) <= SAME_PHOTO_TOLERANCE
    assert "not a photograph" in ct["error"]
    assert identifiers_in(done.stdout + done.stderr) == []
