"""About: a model card - what the model is, what it is for and not for, and where it came from."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pandas as pd
import streamlit as st

from melanoma import calibration
from melanoma.app import charts, state
from melanoma.config import IMAGE_HEIGHT, IMAGE_WIDTH

RUNTIME_PACKAGES = ("tensorflow", "keras", "numpy", "streamlit", "tf-keras-vis", "plotly")


def installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


st.title("About this model")
st.warning("A research and education demo. **Not a medical device and not a diagnosis**: do not use it "
           "to decide about a patient's care.", icon=":material/warning:")
st.markdown(f"""
**What it does.** Given a dermatoscopic photo of one pigmented skin lesion, a ResNet50 gives the
probability that it is a melanoma, and calls it *suspicious for melanoma - refer* at or above a fixed
threshold. Grad-CAM maps show which regions raised that probability.

**Intended use.** Teaching and research on skin-lesion classification and its pitfalls. Not for
screening, triage of real patients or self-assessment.

**Training data.** HAM10000: dermatoscopic images from two centres, the Medical University of Vienna
and a skin cancer practice in Queensland, mostly of fair-skinned patients. Performance on darker skin,
on other dermatoscopes, on phone photos or on non-pigmented lesions is unknown and likely worse.

**Known limitations.**
- Input of only {IMAGE_WIDTH}x{IMAGE_HEIGHT} pixels: fine structures a dermatologist uses (dots,
  streaks, network) are barely resolved.
- Trained from scratch, with no pretraining, on HAM10000 alone: the network has seen one kind of
  camera, two clinics and few examples of rare presentations.
- Metrics come from a lesion-grouped test split of the same dataset (no lesion is in two splits);
  there is no external validation, so real-world performance will be lower.
- Melanoma is a minority class; training balances it, which pushes the network's raw score far above
  the real rate (what the probability shown means is under the test metrics). The call uses the
  threshold, which was chosen for sensitivity, not 50%.
""")

bundle = state.require_bundle()
manifest, metrics = bundle.manifest, bundle.metrics
left, right = st.columns(2)
with left:
    st.subheader("Test metrics")
    intervals = state.require_test_intervals()
    st.dataframe(charts.metrics_table(metrics["test"], intervals), hide_index=True)
    st.caption(charts.interval_note(intervals))
    st.markdown(f"**Threshold rule:** {metrics.get('threshold_rule', 'chosen on validation')} "
                f"(threshold {bundle.threshold:.4f}).")
    st.markdown(f"**Probability:** {calibration.probability_note(bundle.calibration)}")
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
        ("folder", str(bundle.path)),
    ], columns=["property", "value"]), hide_index=True)
    st.dataframe(pd.DataFrame([(package, trained.get(package, ""), installed(package))
                               for package in RUNTIME_PACKAGES],
                              columns=["package", "trained with", "running"]), hide_index=True)
st.markdown(f"**Weights sha256** `{manifest.get('weights_sha256')}` (checked on every load)")

st.subheader("Data citation")
st.markdown("""
Tschandl P, Rosendahl C, Kittler H. *The HAM10000 dataset, a large collection of multi-source
dermatoscopic images of common pigmented skin lesions.* Scientific Data 5, 180161 (2018).
[doi:10.1038/sdata.2018.161](https://doi.org/10.1038/sdata.2018.161). Licensed CC BY-NC-SA 4.0:
non-commercial use, with attribution, sharing alike.
""")
