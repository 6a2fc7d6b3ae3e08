"""About: a model card - what the model is, what it is for and not for, and where it came from."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pandas as pd
import streamlit as st

from melanoma import calibration
from melanoma.app import charts, state
from melanoma.config import DIFFERENTIAL_NAMES, IMAGE_WIDTH
from melanoma.evaluate import predictive_values

RUNTIME_PACKAGES = ("tensorflow", "keras", "numpy", "streamlit", "tf-keras-vis", "plotly")


def installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def input_limitation(bundle) -> str:
    spec = bundle.image_spec
    small = spec.width <= IMAGE_WIDTH  # the method's size, a quarter of the photos' pixels
    alone, patient = ("", ", with the patient's age, sex and body site when given") if bundle.takes_metadata \
        else (" alone", "")
    colours = "; colours normalised per photo (Shades of Gray)" if spec.colour_constancy else ""
    detail = (" Fine structures a dermatologist uses (dots, streaks, network) are barely resolved at this size."
              if small else "")
    size = f"{'only ' if small else ''}{spec.width}x{spec.height} pixels"
    return f"Input: the photo{alone}, at {size}{patient}{colours}.{detail}"


def origin(bundle) -> str:
    parents = [step.get("bundle") for step in bundle.manifest.get("lineage", [])]
    continued = f", then trained on from this project's own {' and '.join(parents)}" if parents else ""
    return f"Trained from scratch (no pretrained weights){continued}, on HAM10000 alone."


st.title("About this model: a teaching demo")
st.warning("A research and education demo. **Not a medical device and not a diagnosis**: do not use it "
           "to decide about a patient's care.", icon=":material/warning:")
st.markdown("""
**What it does.** Given a dermatoscopic photo of one pigmented skin lesion, a ResNet50 gives the
probability that it is a melanoma, and calls it *suspicious for melanoma - refer* at or above a fixed
threshold. It also gives the probabilities of HAM10000's seven diagnoses and the most similar training
cases. Grad-CAM maps show which regions raised the probability. A picture that does not look like a
dermatoscopic photo of a lesion gets no call.

**Intended use.** A *demonstration* of how a triage aid for dermatoscopic photos could work, for
teaching and research on skin-lesion classification and its pitfalls. Its "refer" and "not
suspicious" calls show what such an aid would say; they are not for real patients: not for screening,
triage or self-assessment.

**Training data.** HAM10000: dermatoscopic images from two centres, the Medical University of Vienna
and a skin cancer practice in Queensland, mostly of fair-skinned patients. Performance on darker skin,
on other dermatoscopes, on phone photos or on non-pigmented lesions is unknown and likely worse.
""")

bundle = state.require_bundle()
manifest, metrics = bundle.manifest, bundle.metrics
st.markdown(f"""
**Known limitations.**
- {input_limitation(bundle)}
- {origin(bundle)} The network has seen one kind of camera, two clinics and few examples of rare
  presentations.
- Metrics come from a lesion-grouped test split of the same dataset (no lesion is in two splits);
  there is no external validation, so real-world performance will be lower.
- The not-a-lesion check was measured on photos, renders and other medical images that are clearly
  not dermatoscopic; a clinical (non-dermatoscopic) close-up of skin is in no set we have, so how it
  treats one is unknown.
- Melanoma is a minority class; training balances it, which pushes the network's raw score far above
  the real rate (what the probability shown means is under the test metrics). The call uses the
  threshold, which was chosen for sensitivity, not 50%.
""")

left, right = st.columns(2)
with left:
    st.subheader("Test metrics")
    intervals = state.require_test_intervals()
    st.dataframe(charts.metrics_table(metrics["test"], intervals), hide_index=True)
    st.caption(charts.interval_note(intervals))
    st.markdown(f"**Threshold rule:** {metrics.get('threshold_rule', 'chosen on validation')} "
                f"(threshold {bundle.threshold:.4f}).")
    st.markdown(f"**Probability:** {calibration.probability_note(bundle.calibration)}")
    test = metrics["test"]
    values = predictive_values(test.get("sensitivity"), test.get("specificity"),
                               test["n_melanoma"] / max(test["n_images"], 1))
    if values["ppv"] is not None:
        st.markdown(f"**What a call means** at HAM10000's melanoma rate ({values['prevalence']:.1%}): of lesions "
                    f"called *refer*, **{values['ppv']:.0%}** are melanoma (PPV); of those called *not "
                    f"suspicious*, **{values['npv']:.1%}** are not (NPV). In primary care, where melanoma is "
                    "rarer, a *refer* is less often a melanoma; in a referral clinic, where it is more common, "
                    "more often, and a *not suspicious* less safe.")
with right:
    st.subheader("Model bundle")
    trained = manifest.get("versions", {})
    # Bundles written before the JAX backend could train name no backend: they are TensorFlow's.
    backend = trained.get("backend", "tensorflow" if "tensorflow" in trained else "unknown")
    st.dataframe(pd.DataFrame([
        ("name", manifest.get("name")),
        ("created", manifest.get("created")),
        ("architecture", manifest.get("architecture")),
        ("input", " x ".join(str(side) for side in manifest.get("input_shape", []))),
        ("seed of the lesion-grouped splits", str(manifest.get("seed"))),
        # Bundles from before --training-seed existed trained with the split seed.
        ("training seed", str(manifest.get("training_seed", manifest.get("seed")))),
        ("trained on Keras backend", f"{backend} {trained.get(backend, '')}".strip()),
        ("version", bundle.version),
    ], columns=["property", "value"]), hide_index=True)
    with st.expander("Developer details: package versions"):
        st.dataframe(pd.DataFrame([(package, trained.get(package, ""), installed(package))
                                   for package in RUNTIME_PACKAGES],
                                  columns=["package", "trained with", "running"]), hide_index=True)
st.markdown(f"**Weights sha256** `{manifest.get('weights_sha256')}` (checked on every load)")

extras = bundle.extras_info
if extras:
    st.subheader("Not-a-lesion check, differential and similar cases")
    refusal = extras["not_a_lesion"]
    refused = refusal["refused"]["test"]
    similar = extras["similar_cases"]["test_roc_auc"]
    not_a_lesion = (f"a picture with a {refusal['rule']} gets no call. On the test split that refuses "
                    f"{refused['refused']} of {refused['images']:,} lesion photos ({refused['melanoma_refused']} of "
                    f"{refused['melanoma']} melanomas)." if refusal.get("active", True) else
                    f"this bundle has no such check ({refusal['rule']}).")
    st.markdown(
        f"- **Not a lesion:** {not_a_lesion}\n"
        f"- **Differential:** from {extras['differential']['source']}; per-diagnosis test AUC below.\n"
        f"- **Similar cases:** the {extras['similar_cases']['k']} nearest of {extras['similar_cases']['index_images']:,} "
        f"training photos; as a vote (share of melanoma) their test AUC is {charts.number(similar['neighbours_vote'])} "
        f"against the network's {charts.number(similar['network'])}.")
    auc_column, matrix_column = st.columns([1, 2])
    auc_column.dataframe(charts.differential_auc_table(extras["differential"]["test"], DIFFERENTIAL_NAMES),
                         hide_index=True)
    matrix_column.plotly_chart(charts.diagnosis_confusion_matrix(extras["differential"]["test"], DIFFERENTIAL_NAMES))

st.subheader("Licence")
st.markdown("The code is under the MIT licence. **The model weights are trained on HAM10000 and come under "
            "its licence, CC BY-NC-SA 4.0:** non-commercial use only, with attribution, and anything "
            "derived from them under the same terms.")

st.subheader("Data citation")
st.markdown("""
Tschandl P, Rosendahl C, Kittler H. *The HAM10000 dataset, a large collection of multi-source
dermatoscopic images of common pigmented skin lesions.* Scientific Data 5, 180161 (2018).
[doi:10.1038/sdata.2018.161](https://doi.org/10.1038/sdata.2018.161). Licensed CC BY-NC-SA 4.0:
non-commercial use, with attribution, sharing alike.
""")
