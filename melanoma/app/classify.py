"""Classify: upload lesion photos; per photo the call, P(melanoma), the differential, similar
training cases and where the network looked; a photo outside what the model knows gets a warning,
no call. The uploader shows first (the network starts loading once this page is drawn); a photo
uploaded while the network is still loading waits for it, under a message that says so.

Uploads stay in memory: their bytes go straight to the predictor and are never written anywhere.
Results are kept in the session, keyed by the model and a hash of the bytes, so moving a slider
redraws the page without running the network again.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import NamedTuple

import streamlit as st

from melanoma import calibration, dicom
from melanoma.app import results, state
from melanoma.app.patient_inputs import from_file_fields, patient_inputs
from melanoma.app.state import MODEL_LOAD_SECONDS
from melanoma.call import threshold_in_words
from melanoma.images import MAX_UPLOAD_MB, UPLOAD_EXTENSIONS, ImageRejected, prepare_image
from melanoma.patient import NO_INFORMATION
from melanoma.reporting import DISCLAIMER, distinct_labels, results_table, triage_order
from melanoma.sites import choices

CAMERA_PHOTO = "camera photo.jpg"
CAMERA_LIMITS = ("A phone or laptop camera without a dermatoscope is outside what the model knows: it learnt from "
                 "dermatoscope photos only, and how it does on other photos has not been measured. It may give such a "
                 "photo no call; a call it gives means less than on a dermatoscope photo.")


def readable_photo(data: bytes, spec) -> bool:
    """Whether the bytes are an image the network can be given (a damaged file gets no patient inputs);
    remembered per photo in the session, so a rerun decodes nothing again."""
    known = st.session_state.setdefault("classify_readable", {})
    digest = hashlib.sha256(data).hexdigest()
    if digest not in known:
        try:
            prepare_image(data, spec, display=False)
            known[digest] = True
        except ImageRejected:
            known[digest] = False
    return known[digest]


class Photo(NamedTuple):
    """An upload or a camera shot: its name, the widget's id for it, and its bytes (in memory only)."""

    name: str
    file_id: str
    data: bytes


st.title("Classify a skin lesion")
st.caption(DISCLAIMER)
bundle = state.require_bundle()
model_id = bundle.weights_sha256


uploads = st.file_uploader(
    "Dermatoscopic images of single lesions", type=list(UPLOAD_EXTENSIONS), accept_multiple_files=True,
    help=f"Up to {MAX_UPLOAD_MB} MB each. Images are analysed in memory and not stored.")
# The camera asks for permission only once the visitor turns it on.
camera = None
if st.toggle("Take a photo with this device's camera", help="Analysed in memory like an upload, and not stored."):
    st.warning(CAMERA_LIMITS, icon=":material/photo_camera:")
    camera = st.camera_input("Photo of a single lesion, through a dermatoscope")
# A camera shot takes the same path as an upload: the same checks and refusals, in memory only.
photos = [Photo(upload.name, upload.file_id, upload.getvalue()) for upload in uploads or []]
if camera is not None:
    photos.append(Photo(CAMERA_PHOTO, camera.file_id, camera.getvalue()))
if not photos:
    st.info("Upload one or more images to classify them. Tip: the Dataset page shows what the training "
            "images look like (dermatoscope, lesion centred).", icon=":material/upload:")
    if not state.network_ready():
        st.caption(f"The network loads in the background once this page is drawn (about {MODEL_LOAD_SECONDS} s on a "
                   "quiet 2-core machine): you can upload now; your photos are classified as soon as it is ready.")
    st.stop()

# The same bytes uploaded twice are one photo: shown once, with a note. Different photos that share
# a file name are kept apart by their place among those of that name.
first_of = {}
for photo in photos:
    first_of.setdefault(hashlib.sha256(photo.data).hexdigest(), photo)
repeats = [(photo, first_of[hashlib.sha256(photo.data).hexdigest()]) for photo in photos
           if first_of[hashlib.sha256(photo.data).hexdigest()] is not photo]
uploads = list(first_of.values())
labels = dict(zip((upload.file_id for upload in uploads), distinct_labels([upload.name for upload in uploads])))
if repeats:
    st.info(" ".join(f"**{repeat.name}** is the same photo as **{labels[original.file_id]}** (identical bytes): "
                     "shown once." for repeat, original in repeats), icon=":material/content_copy:")

# Patient information, per photo, where the network takes it; blank means unknown. A DICOM file's own
# age, sex and site fill it (in the network's site words), and the user may change them.
patients, from_file = {}, {}
site_choices = choices(bundle.network_spec.site_vocabulary)
readable = [upload for upload in uploads if readable_photo(upload.data, bundle.image_spec)] \
    if bundle.takes_metadata else []
st.session_state["classify_readable"] = {digest: known for digest, known in
                                         st.session_state.get("classify_readable", {}).items() if digest in first_of}
if readable:  # closed at first: on a phone, open, it pushed the first result several screens down
    with st.expander("Patient information (optional): age, sex and body site of each photo", expanded=False):
        st.caption("Blank means unknown: the network is told so, never given a guess. Each result shows "
                   "P(melanoma) from the image alone beside the one with this information, and is called at "
                   "the threshold of the mode it was made in.")
        for upload in readable:
            found = dicom.patient_of(upload.data)
            from_file[upload.file_id] = found and found.for_network(bundle.network_spec.site_vocabulary)
            st.markdown(f"**{labels[upload.file_id]}**")
            patients[upload.file_id] = patient_inputs(f"patient-{upload.file_id}", site_choices,
                                                      from_file[upload.file_id])

predictor = state.require_predictor()
# Only the current uploads are remembered: removing a file from the uploader forgets its result.
predictions = st.session_state.get("classify_predictions", {})
heatmaps = st.session_state.get("classify_heatmaps", {})
with st.spinner(f"Classifying {len(uploads)} image(s)…"):
    keyed = [(upload, (model_id, digest, patients.get(upload.file_id, NO_INFORMATION)))
             for digest, upload in first_of.items()]
    new = {key: upload for upload, key in keyed if key not in predictions}
    if new:
        predictions.update(zip(new, predictor.classify_many([(u.name, u.data) for u in new.values()],
                                                            display=True, patients=[key[2] for key in new])))
    # Each under its label (the cached result keeps the name it was classified under).
    current = [(labels[upload.file_id], key, replace(
        predictions[key], name=labels[upload.file_id],
        patient_from_file=from_file_fields(key[2], from_file.get(upload.file_id)))) for upload, key in keyed]
if not predictor.takes_metadata:
    st.caption("This model reads the image alone: it takes no age, sex or body site.")
kept = {key for _, key, _ in current}
st.session_state["classify_predictions"] = {key: predictions[key] for key in kept}
# A map's key is the result's key plus (layer, method).
st.session_state["classify_heatmaps"] = {key: value for key, value in heatmaps.items() if key[:-2] in kept}

# The table and the cards below come in one order: photos with no call first, then highest risk first.
current = [current[position] for position in triage_order([prediction for _, _, prediction in current])]
if len(current) > 1:
    ranked = [prediction for _, _, prediction in current]
    table = results_table(ranked)
    st.subheader(f"{len(current)} images, highest risk first")
    results.show_batch(table, ranked)
    results.downloads([prediction for _, _, prediction in current], predictor.bundle, table)

st.caption(f"{calibration.probability_note(predictor.bundle)} Called suspicious from P(melanoma) at or above "
           "the threshold of the mode the photo was called in (each card and row names it): "
           + "; ".join(threshold_in_words(point) for point in predictor.bundle.metrics.operating_points)
           + f". Each threshold is the {predictor.bundle.metrics.rule_in_words}. Below it, the call is not a rule-out. "
           "Not a diagnosis.")
grad_cam = results.grad_cam_view(model_id)
if any(prediction.ok and prediction.assessment is not None for _, _, prediction in current):
    results.show_differential_method(predictor.bundle)
maps = []  # every card's call first, then the Grad-CAM maps (a new photo's takes ~0.1 s)
for position, (name, key, prediction) in enumerate(current):
    if prediction.not_a_lesion:
        results.show_not_a_lesion(name, prediction)
    elif not prediction.ok:
        st.warning(f"**{name}** was not assessed: {prediction.error}", icon=":material/block:")
    else:
        maps.append(results.show_result(name, key, prediction, prediction.threshold, grad_cam, predictor.bundle,
                                        predictor.takes_metadata, position))
if len(current) == 1:
    results.downloads([prediction for _, _, prediction in current], predictor.bundle)
for draw_map in maps:
    draw_map()
