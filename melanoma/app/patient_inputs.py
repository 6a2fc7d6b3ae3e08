"""Per-photo patient information on the Classify page: age, sex and body site, each optional.

Blank means unknown, and the network is told so, never given a guess. Only a bundle whose network
takes metadata asks for them; the result then says what was used and shows the probability from
the image alone beside it. A DICOM file's own age, sex and site fill the inputs once, saying so; the
user can change or clear them.
"""
from __future__ import annotations

import streamlit as st

from melanoma.config import MAX_AGE, SEXES
from melanoma.dicom import FilePatient
from melanoma.patient import NO_INFORMATION, PatientInfo, PatientInfoError

FROM_FILE = "from the DICOM file"


def patient_inputs(key: str, sites: tuple[str, ...], from_file: FilePatient | None = None) -> PatientInfo:
    """Three inputs in a row, the body site one of `sites` (the network's vocabulary); what they hold
    now (nothing given: NO_INFORMATION). A DICOM file's information (`from_file`, in the network's
    site words) fills them the first time they are drawn."""
    if from_file is not None:
        prefill(key, from_file)
    age_column, sex_column, site_column = st.columns(3)
    age = age_column.number_input("Age (years)", min_value=0, max_value=MAX_AGE, value=None, step=1,
                                  placeholder="unknown", key=f"{key}-age")
    sex = sex_column.selectbox("Sex", SEXES, index=None, placeholder="unknown", key=f"{key}-sex")
    site = site_column.selectbox("Body site", sites, index=None, placeholder="unknown", key=f"{key}-site")
    try:
        return PatientInfo.parse(age=age, sex=sex, site=site)
    except PatientInfoError as error:  # the widgets' own limits make this rare; never guess
        st.warning(f"Patient information not used: {error}", icon=":material/warning:")
        return NO_INFORMATION


def prefill(key: str, from_file: FilePatient) -> None:
    """Puts the file's values in the inputs once (a value the user then clears stays cleared), and says
    which came from the file and what it gave that was left out."""
    given = from_file.info
    if f"{key}-from-file" not in st.session_state:
        st.session_state[f"{key}-from-file"] = True
        if given.age is not None:
            st.session_state[f"{key}-age"] = round(given.age)
        for field in ("sex", "site"):
            if getattr(given, field) is not None:
                st.session_state[f"{key}-{field}"] = getattr(given, field)
    if given.given:
        st.caption(f"{describe_fields(given.given).capitalize()} {FROM_FILE}: change them if they are wrong.")
    for note in from_file.left_out:
        st.caption(f"From the DICOM file, {note}.")


def from_file_fields(given: PatientInfo, from_file: FilePatient | None) -> tuple[str, ...]:
    """The fields whose value is still the DICOM file's."""
    if from_file is None:
        return ()
    return tuple(name for name in from_file.info.given if getattr(given, name) == getattr(from_file.info, name))


def describe_fields(fields) -> str:
    fields = list(fields)
    return " and ".join([", ".join(fields[:-1]), fields[-1]] if len(fields) > 1 else fields)


def metadata_caption(prediction) -> str:
    """Whether the patient information was used, and what it changed."""
    if not prediction.metadata_used:
        return "From the image alone (no patient information given)."
    source = (f" ({describe_fields(prediction.patient_from_file)} {FROM_FILE})" if prediction.patient_from_file
              else "")
    return (f"With the patient's {prediction.patient.describe()}{source}. From the image alone: "
            f"{prediction.image_only_probability:.1%}.")
