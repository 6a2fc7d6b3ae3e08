"""Classify: upload lesion photos; per photo P(melanoma), the call, and where the network looked.

Uploads stay in memory: their bytes go straight to the predictor and are never written anywhere.
Results are kept in the session, keyed by the model and a hash of the bytes, so moving a slider
redraws the page without running the network again.
"""
from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from melanoma import calibration
from melanoma.app import state
from melanoma.config import DEFAULT_GRADCAM_LAYER, GRADCAM_LAYERS, MAX_UPLOAD_MB, UPLOAD_EXTENSIONS
from melanoma.explain import METHODS, heatmap_image, overlay

DISCLAIMER = ("Research and education demo: **not a diagnosis and not a medical device.** The model has "
              "not been clinically validated; any lesion of concern needs examination by a clinician.")

st.title("Classify a skin lesion")
st.caption(DISCLAIMER)
predictor = state.require_predictor()
explainer = state.require_explainer()
model_id = predictor.bundle.manifest["weights_sha256"]

with st.sidebar:
    st.header("Grad-CAM")
    layer_label = st.selectbox("Layer", list(GRADCAM_LAYERS),
                               index=list(GRADCAM_LAYERS.values()).index(DEFAULT_GRADCAM_LAYER),
                               help="Earlier stages have finer grids but see less context; stage 5 has "
                                    "only 3x4 cells at this input size.")
    method = st.radio("Method", METHODS, horizontal=True)
    opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.45, 0.05)
    show_raw = st.toggle("Show the raw heat map")
layer = GRADCAM_LAYERS[layer_label]

uploads = st.file_uploader(
    "Dermatoscopic images of single lesions", type=list(UPLOAD_EXTENSIONS), accept_multiple_files=True,
    help=f"Up to {MAX_UPLOAD_MB} MB each. Images are analysed in memory and not stored.")
if not uploads:
    st.info("Upload one or more images to classify them. Tip: the Dataset page shows what the training "
            "images look like (dermatoscope, lesion centred).", icon=":material/upload:")
    st.stop()

# Only the current uploads are remembered: removing a file from the uploader forgets its result.
predictions = st.session_state.get("classify_predictions", {})
heatmaps = st.session_state.get("classify_heatmaps", {})
with st.spinner(f"Classifying {len(uploads)} image(s)…"):
    keyed = [(upload, (model_id, hashlib.sha256(upload.getvalue()).hexdigest())) for upload in uploads]
    new = {key: upload for upload, key in keyed if key not in predictions}
    if new:
        predictions.update(zip(new, predictor.classify_many([(u.name, u.getvalue()) for u in new.values()],
                                                            display=True)))
    current = [(upload.name, key, predictions[key]) for upload, key in keyed]
kept = {key for _, key, _ in current}
st.session_state["classify_predictions"] = {key: predictions[key] for key in kept}
st.session_state["classify_heatmaps"] = {key: value for key, value in heatmaps.items() if key[:2] in kept}


def heatmap_for(key, prediction):
    cache = st.session_state["classify_heatmaps"]
    if (*key, layer, method) not in cache:
        cache[(*key, layer, method)] = explainer.heatmap(prediction.prepared.model_input, layer, method)
    return cache[(*key, layer, method)]


if len(current) > 1:
    table = pd.DataFrame([{
        "file": name,
        # Shown to 3 decimals; the CSV download carries 6, enough to compare with `predict`.
        "P(melanoma)": None if not prediction.ok else round(prediction.probability, 6),
        "call": prediction.call if prediction.ok else "not assessed",
        "reason not assessed": prediction.error or "",
    } for name, _, prediction in current])
    st.subheader(f"{len(current)} images")
    st.dataframe(table, hide_index=True, column_config={
        "P(melanoma)": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f")})
    st.download_button("Download results (CSV)", table.to_csv(index=False), file_name="melanoma-triage.csv",
                       mime="text/csv", icon=":material/download:", on_click="ignore")

threshold_rule = predictor.bundle.metrics.get("threshold_rule", "")
probability_note = calibration.probability_note(predictor.bundle.calibration)
for name, key, prediction in current:
    if not prediction.ok:
        st.warning(f"**{name}** was not assessed: {prediction.error}", icon=":material/block:")
        continue
    with st.container(border=True):
        st.subheader(name, anchor=False)
        photo_column, map_column, result_column = st.columns(3, gap="medium")
        photo = prediction.prepared.display
        photo_column.image(photo, caption="Cropped as the network sees it (centre, 4:3)",
                           width="stretch")
        heat = heatmap_for(key, prediction)
        shown = heatmap_image(heat, photo.size) if show_raw else overlay(photo, heat, opacity)
        caption = f"{method}, {layer_label}: warm colours raised P(melanoma) most"
        if not heat.any():
            caption = f"{method}, {layer_label}: the map is flat, no region stands out"
        map_column.image(shown, caption=caption, width="stretch")
        with result_column:
            st.metric("P(melanoma)", f"{prediction.probability:.1%}")
            st.progress(prediction.probability)
            call = prediction.call[0].upper() + prediction.call[1:]
            if prediction.suspicious:
                st.error(f"**{call}**", icon=":material/priority_high:")
            else:
                st.success(f"**{call}**", icon=":material/check:")
            st.caption(f"Called suspicious from P(melanoma) ≥ {predictor.threshold:.3f}: {threshold_rule}. "
                       f"{probability_note} Not a diagnosis.")
