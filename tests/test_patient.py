"""Patient information: what a user may type, how the network gets it, and predict's two ways in."""
import numpy as np
import pytest

from melanoma.patient import (
    AGE_SLICE,
    FIELD_SLICES,
    METADATA_FEATURES,
    NO_INFORMATION,
    PatientInfo,
    PatientInfoError,
    encode_frame,
    hide_at_random,
    patients_for_files,
)


def test_blank_and_unknown_mean_not_given():
    info = PatientInfo.parse(age="", sex="unknown", site=None)
    assert info == NO_INFORMATION and info.given == ()
    assert not NO_INFORMATION.encode().any()


def test_values_are_normalised_and_encoded_with_their_known_flags():
    info = PatientInfo.parse(age="45", sex=" Female", site="Lower Extremity")
    assert info == PatientInfo(age=45.0, sex="female", site="lower extremity")
    vector = info.encode()
    assert vector.shape == (METADATA_FEATURES,)
    assert vector[AGE_SLICE].tolist() == pytest.approx([0.45, 1.0])
    for part in FIELD_SLICES.values():
        assert vector[part.stop - 1] == 1.0 and vector[part].sum() == pytest.approx(2.0 if part != AGE_SLICE else 1.45)


@pytest.mark.parametrize("field, value, reason", [
    ("age", "250", "outside 0-120"), ("age", "-3", "outside 0-120"), ("age", "forty", "not a number"),
    ("sex", "x", "not one of: male, female"), ("site", "elbow", "not one of"),
])
def test_bad_values_get_a_one_line_reason_not_a_guess(field, value, reason):
    with pytest.raises(PatientInfoError, match=reason) as error:
        PatientInfo.parse(**{field: value})
    assert "\n" not in str(error.value)


def test_hiding_zeroes_whole_fields_at_the_rate_asked():
    rows = np.stack([PatientInfo.parse(age=60, sex="male", site="back").encode()] * 4000)
    hidden = hide_at_random(rows, 0.4, np.random.default_rng(0))
    for part in FIELD_SLICES.values():
        known = hidden[:, part.stop - 1] == 1.0
        assert known.mean() == pytest.approx(0.6, abs=0.03)
        assert not hidden[~known, part].any() and np.array_equal(hidden[known, part], rows[known, part])
    assert rows.all(axis=0)[AGE_SLICE].all()  # the input is left as it was


def test_ham10000_rows_encode_with_unknowns_as_not_given():
    import pandas as pd

    frame = pd.DataFrame({"age": [50.0, np.nan], "sex": ["male", "unknown"], "localization": ["back", "unknown"]})
    encoded = encode_frame(frame)
    assert encoded[0].tolist() == PatientInfo(age=50, sex="male", site="back").encode().tolist()
    assert not encoded[1].any()


def test_predict_metadata_from_flags_or_a_csv_matched_by_file_stem(tmp_path):
    assert patients_for_files(["a.jpg"], age="30", sex="male") == {"a.jpg": PatientInfo(age=30, sex="male")}
    with pytest.raises(PatientInfoError, match="describe one photo"):
        patients_for_files(["a.jpg", "b.jpg"], age="30")
    with pytest.raises(PatientInfoError, match="outside"):
        patients_for_files(["a.jpg"], age="250")
    csv = tmp_path / "patients.csv"
    csv.write_text("image_id,age,sex,localization\nISIC_1,70,female,face\nISIC_2,250,,\n")
    patients = patients_for_files(["x/ISIC_1.jpg", "y/ISIC_2.png", "ISIC_3.jpg"], str(csv))
    assert patients["x/ISIC_1.jpg"] == PatientInfo(age=70, sex="female", site="face")
    assert isinstance(patients["y/ISIC_2.png"], PatientInfoError)
    assert patients["ISIC_3.jpg"] == NO_INFORMATION
    (tmp_path / "wrong.csv").write_text("name,age\nISIC_1,3\n")
    with pytest.raises(PatientInfoError, match="no image_id column"):
        patients_for_files(["ISIC_1.jpg"], str(tmp_path / "wrong.csv"))
    with pytest.raises(PatientInfoError, match="no metadata file"):
        patients_for_files(["ISIC_1.jpg"], str(tmp_path / "absent.csv"))
