"""Patient information: what a user may type, how the network gets it, and predict's two ways in."""
import numpy as np
import pytest

from melanoma.patient import (
    AGE_SLICE,
    FINE_SITES_ENCODING,
    GENERAL_SITES_ENCODING,
    NO_INFORMATION,
    PatientInfo,
    PatientInfoError,
    hide_at_random,
    patients_for_files,
)
from melanoma.sites import FINE_SITES, GENERAL_SITES

ENCODINGS = pytest.mark.parametrize("encoding", [FINE_SITES_ENCODING, GENERAL_SITES_ENCODING], ids=["fine", "general"])


@ENCODINGS
def test_blank_and_unknown_mean_not_given(encoding):
    info = PatientInfo.parse(age="", sex="unknown", site=None)
    assert info == NO_INFORMATION and info.given == ()
    assert not encoding.encode(NO_INFORMATION).any()


@ENCODINGS
def test_values_are_normalised_and_encoded_with_their_known_flags(encoding):
    info = PatientInfo.parse(age="45", sex=" Female", site="Lower Extremity")
    assert info == PatientInfo(age=45.0, sex="female", site="lower extremity")
    vector = encoding.encode(info)
    assert vector.shape == (encoding.features,)
    assert vector[AGE_SLICE].tolist() == pytest.approx([0.45, 1.0])
    for part in encoding.field_slices.values():
        assert vector[part.stop - 1] == 1.0 and vector[part].sum() == pytest.approx(2.0 if part != AGE_SLICE else 1.45)


def test_the_coarse_vocabulary_reads_every_sources_words_by_region_and_torso_side():
    site = GENERAL_SITES_ENCODING.site_slice

    def site_part(word):
        return GENERAL_SITES_ENCODING.encode(PatientInfo.parse(site=word))[site]

    # HAM10000's fine words land on the coarse site they lie in; the torso's side only where named
    assert site_part("face").tolist() == site_part("scalp").tolist() == site_part("head/neck").tolist()
    assert site_part("back").tolist() == site_part("posterior torso").tolist()
    assert site_part("chest").tolist() == site_part("anterior torso").tolist()
    assert site_part("acral").tolist() == site_part("palms/soles").tolist()
    trunk, anterior = site_part("trunk"), site_part("anterior torso")
    assert trunk.sum() == 2 and anterior.sum() == 3 and (anterior - trunk).min() == 0  # the side adds one
    assert len({tuple(site_part(word)) for word in GENERAL_SITES}) == len(GENERAL_SITES)


def test_a_fine_words_network_leaves_a_coarse_site_out_rather_than_guess():
    vector = FINE_SITES_ENCODING.encode(PatientInfo.parse(age=40, site="head/neck"))
    assert not vector[FINE_SITES_ENCODING.site_slice].any() and vector[AGE_SLICE][1] == 1.0
    assert FINE_SITES_ENCODING.features == 2 + 3 + len(FINE_SITES) + 1


@pytest.mark.parametrize("field, value, reason", [
    ("age", "250", "outside 0-120"), ("age", "-3", "outside 0-120"), ("age", "forty", "not a number"),
    ("sex", "x", "not one of: male, female"), ("site", "elbow", "not one of"),
])
def test_bad_values_get_a_one_line_reason_not_a_guess(field, value, reason):
    with pytest.raises(PatientInfoError, match=reason) as error:
        PatientInfo.parse(**{field: value})
    assert "\n" not in str(error.value)


@ENCODINGS
def test_hiding_zeroes_whole_fields_at_the_rate_asked(encoding):
    rows = np.stack([encoding.encode(PatientInfo.parse(age=60, sex="male", site="back"))] * 4000)
    hidden = hide_at_random(rows, 0.4, np.random.default_rng(0), encoding)
    for part in encoding.field_slices.values():
        known = hidden[:, part.stop - 1] == 1.0
        assert known.mean() == pytest.approx(0.6, abs=0.03)
        assert not hidden[~known, part].any() and np.array_equal(hidden[known, part], rows[known, part])
    assert rows.all(axis=0)[AGE_SLICE].all()  # the input is left as it was


@ENCODINGS
def test_ham10000_rows_encode_with_unknowns_as_not_given(encoding):
    import pandas as pd

    frame = pd.DataFrame({"age": [50.0, np.nan], "sex": ["male", "unknown"], "localization": ["back", "unknown"]})
    encoded = encoding.encode_frame(frame)
    assert encoded[0].tolist() == encoding.encode(PatientInfo(age=50, sex="male", site="back")).tolist()
    assert not encoded[1].any()


def test_a_rows_coarse_site_is_read_where_the_source_gives_one():
    import pandas as pd

    frame = pd.DataFrame({"age": [55, 30], "sex": ["male", "female"], "localization": ["trunk", ""],
                          "anatom_site_general": ["anterior torso", "head/neck"]})  # BCN20000's, ISIC 2017's
    assert [GENERAL_SITES_ENCODING.from_row(row).site for row in frame.to_dict("records")] == [
        "anterior torso", "head/neck"]
    # v3's network was trained on HAM10000's column alone, and is given it alone
    assert [FINE_SITES_ENCODING.from_row(row).site for row in frame.to_dict("records")] == ["trunk", None]


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


def test_a_coarse_site_is_refused_by_a_network_that_reads_only_ham10000s_finer_words():
    """v3 reads HAM10000's 14 words; "anterior torso" spans several of them (chest, abdomen, trunk), so
    it is refused with the words it does read rather than silently dropped; a v4 network reads both."""
    coarse = PatientInfo.parse(age=50, site="anterior torso")
    with pytest.raises(PatientInfoError, match="'anterior torso' is not one this model reads; it reads: abdomen"):
        FINE_SITES_ENCODING.readable(coarse)
    assert FINE_SITES_ENCODING.readable(PatientInfo.parse(site="back")).site == "back"
    assert GENERAL_SITES_ENCODING.readable(coarse) == coarse
    assert GENERAL_SITES_ENCODING.readable(PatientInfo.parse(site="scalp")).site == "scalp"
