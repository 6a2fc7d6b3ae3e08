"""Classify: upload lesion photos; per photo the call, P(melanoma), the differential, similar
training cases and where the network looked; a photo outside what the model knows gets a warning,
no call. The uploader shows at once; a photo uploaded while the network is still loading waits
for it, under a message that says so.

Uploads stay in memory: their bytes go straight to the predictor and are never written anywhere.
Results are kept in the session, keyed by the model and a hash of the bytes, so moving a slider
redraws the page without running the network again.
"""
from __future__ import annotations

import hashlib

import streamlit as st

from melanoma import calibration
from melanoma.app import results, state
from melanoma.app.patient_inputs import patient_inputs
from melanoma.config import (
    DEFAULT_GRADCAM_LAYER,
    GRADCAM_LAYERS,
    GRADCAM_OPACITY,
    MAX_UPLOAD_MB,
    MODEL_LOAD_SECONDS,
    UPLOAD_EXTENSIONS,
)
from melanoma.explain import METHODS
from melanoma.patient import NO_INFORMATION
from melanoma.reporting import DISCLAIMER, results_csv, results_table, triage_order

st.title("Classify a skin lesion")
st.caption(DISCLAIMER)
bundle = state.require_bundle()
loader = state.start_loading()  # already under way where the server started it
model_id = bundle.manifest["weights_sha256"]

with st.sidebar:
    st.header("Grad-CAM")
    layer_label = st.selectbox("Layer", list(GRADCAM_LAYERS),
                               index=list(GRADCAM_LAYERS.values()).index(DEFAULT_GRADCAM_LAYER),
                               help="Earlier stages have finer grids but see less context; stage 5 has "
                                    "only 3x4 cells at this input size.")
    if GRADCAM_LAYERS[layer_label] != DEFAULT_GRADCAM_LAYER:
        st.warning(results.LATE_STAGE_WARNING, icon=":material/warning:")
    method = st.radio("Method", METHODS, horizontal=True)
    opacity = st.slider("Overlay opacity", 0.0, 1.0, GRADCAM_OPACITY, 0.05)
    show_raw = st.toggle("Show the raw heat map")
layer = GRADCAM_LAYERS[layer_label]

uploads = st.file_uploader(
    "Dermatoscopic images of single lesions", type=list(UPLOAD_EXTENSIONS), accept_multiple_files=True,
    help=f"Up to {MAX_UPLOAD_MB} MB each. Images are analysed in memory and not stored.")
if not uploads:
    st.info("Upload one or more images to classify them. Tip: the Dataset page shows what the training "
            "images look like (dermatoscope, lesion centred).", icon=":material/upload:")
    if not loader.predictor.done():
        st.caption(f"The network is still loading in the background (about {MODEL_LOAD_SECONDS} s after the server "
                   "starts on a quiet 2-core machine): you can upload now; your photos are classified as soon as it "
                   "is ready.")
    st.stop()

# Patient information, per photo, where the network takes it; blank means unknown.
patients = {}
if bundle.takes_metadata:
    with st.expander("Patient information (optional): age, sex and body site of each photo", expanded=True):
        st.caption("Blank means unknown: the network is told so, never given a guess. Each result shows "
                   "P(melanoma) from the image alone beside the one with this information.")
        for upload in uploads:
            st.markdown(f"**{upload.name}**")
            patients[upload.file_id] = patient_inputs(f"patient-{upload.file_id}")

predictor = state.require_predictor()
# Only the current uploads are remembered: removing a file from the uploader forgets its result.
predictions = st.session_state.get("classify_predictions", {})
heatmaps = st.session_state.get("classify_heatmaps", {})
with st.spinner(f"Classifying {len(uploads)} image(s)…"):
    keyed = [(upload, (model_id, hashlib.sha256(upload.getvalue()).hexdigest(),
                       patients.get(upload.file_id, NO_INFORMATION))) for upload in uploads]
    new = {key: upload for upload, key in keyed if key not in predictions}
    if new:
        predictions.update(zip(new, predictor.classify_many([(u.name, u.getvalue()) for u in new.values()],
                                                            display=True, patients=[key[2] for key in new])))
    current = [(upload.name, key, predictions[key]) for upload, key in keyed]
if not predictor.takes_metadata:
    st.caption("This model reads the image alone: it takes no age, sex or body site.")
kept = {key for _, key, _ in current}
st.session_state["classify_predictions"] = {key: predictions[key] for key in kept}
# A map's key is the result's key plus (layer, method).
st.session_state["classify_heatmaps"] = {key: value for key, value in heatmaps.items() if key[:-2] in kept}

# The table and the cards below come in one order: photos with no call first, then highest risk first.
current = [current[position] for position in triage_order([prediction for _, _, prediction in current])]
if len(current) > 1:
    table = results_table([prediction for _, _, prediction in current])
    st.subheader(f"{len(current)} images, highest risk first")
    results.show_batch(table, predictor.threshold)
    st.download_button("Download results (CSV)", results_csv(table, predictor.bundle.manifest),
                       file_name="melanoma-triage.csv", mime="text/csv", icon=":material/download:",
                       on_click="ignore")

st.caption(f"{calibration.probability_note(predictor.bundle.calibration)} Called suspicious from P(melanoma) ≥ "
           f"{predictor.threshold:.1%}: {predictor.bundle.metrics.get('threshold_rule', '')}. Below it, the call "
           "is not a rule-out. Not a diagnosis.")
grad_cam = results.GradCamView(layer, layer_label, method, opacity, show_raw)
for position, (name, key, prediction) in enumerate(current):
    if prediction.not_a_lesion:
        results.show_not_a_lesion(name, prediction)
    elif not prediction.ok:
        st.warning(f"**{name}** was not assessed: {prediction.error}", icon=":material/block:")
    else:
        results.show_result(name, key, prediction, prediction.threshold, grad_cam, predictor.bundle,
                            predictor.takes_metadata, position)
