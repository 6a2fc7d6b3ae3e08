"""Per-photo patient information on the Classify page: age, sex and body site, each optional.

Blank means unknown, and the network is told so, never given a guess. Only a bundle whose network
takes metadata asks for them; the result then says what was used and shows the probability from
the image alone beside it.
"""
from __future__ import annotations

import streamlit as st

from melanoma.config import MAX_AGE, SEXES
from melanoma.patient import NO_INFORMATION, PatientInfo, PatientInfoError


def patient_inputs(key: str, sites: tuple[str, ...]) -> PatientInfo:
    """Three inputs in a row, the body site one of `sites` (the network's vocabulary); what they hold
    now (nothing given: NO_INFORMATION)."""
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


def metadata_caption(prediction) -> str:
    """Whether the patient information was used, and what it changed."""
    if not prediction.metadata_used:
        return "From the image alone (no patient information given)."
    return (f"With the patient's {prediction.patient.describe()}. From the image alone: "
            f"{prediction.image_only_probability:.1%}.")
