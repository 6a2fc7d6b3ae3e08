"""The Classify page's pieces: one result card, a refused photo, the batch table, the Grad-CAM view.

Each result leads with the verdict (on a phone the columns stack, so it comes first), then the
photo and the map, then the differential and the similar training cases. A card has one melanoma
figure: the differential's melanoma share is the P(melanoma) above it. Every chart and picture
carries a text alternative.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from melanoma import fhir
from melanoma.app import charts, state
from melanoma.app.patient_inputs import metadata_caption
from melanoma.call import (
    CALL_REFUSED,
    CALL_SUSPICIOUS,
    WITH_PATIENT_DATA,
    mode_name,
    threshold_short,
    validation_in_words,
)
from melanoma.explain import (
    DEFAULT_GRADCAM_LAYER,
    DEFAULT_METHOD,
    GRADCAM,
    GRADCAM_HOT,
    GRADCAM_LAYERS,
    GRADCAM_OPACITY,
    METHODS,
    as_shown,
    colour_scale,
    fixed_scale_applies,
    heatmap_image,
    overlay,
)
from melanoma.neighbours import SIMILAR_CASES
from melanoma.patient import NO_INFORMATION
from melanoma.published import (
    differential_accuracy,
    familiarity_reading,
    how_the_differential_is_made,
    other_clinics_in_brief,
)
from melanoma.reporting import (
    against_threshold,
    call_and_diagnosis_note,
    credit_lines,
    describe_case,
    familiarity_line,
    other_malignancy_note,
    percent,
    results_csv,
    short_call,
    short_reason,
    triage_order,
)
from melanoma.wording import NOT_A_LESION_PLAIN

# Similar cases side by side at this width: four in a row on a desktop, two on a phone (~420 px).
CASE_WIDTH = 165
GRAD_CAM_LIMITS = ("A map shows where the features that raised P(melanoma) sit, not why; it is coarse "
                   "(one cell per block of pixels) and can light up artefacts such as a dark corner.")
LATE_STAGE_WARNING = ("At this stage the maps of this network often sit on the dermatoscope's dark corner or on "
                      "plain skin, not on the lesion: read them as where the network looked, not as the lesion's "
                      "suspicious parts. Stage 3 is the default for that reason.")
SHORT_CALL_STYLES = {short_call(CALL_SUSPICIOUS): "background-color: #f6d5d1; color: #7b1f15; font-weight: 600",
                     short_call(CALL_REFUSED): "background-color: #fbe7c6; color: #6b4500; font-weight: 600"}


@dataclass
class GradCamView:
    """The Grad-CAM settings, and the session's cache of raw maps per (photo, layer, method). The
    explainer is fetched when a map is first drawn, so a card's call shows before Grad-CAM is ready.

    The default view is on one fixed scale for every photo (Grad-CAM++'s raw values, which follow
    P(melanoma); config.GRADCAM_CEILINGS): a photo where nothing raised P(melanoma) much shows no
    hot region. `relative` stretches each map to its own range instead, as Grad-CAM maps usually
    are; plain Grad-CAM is only ever relative (its raw values do not follow P(melanoma))."""

    layer: str
    layer_label: str
    method: str
    opacity: float
    show_raw: bool  # the map alone, without the photo under it
    relative: bool = False
    model_id: str | None = None  # the bundle's weights: the fixed scale was measured on one bundle

    @property
    def late_stage(self) -> bool:
        return self.layer != DEFAULT_GRADCAM_LAYER

    @property
    def fixed_scale(self) -> bool:
        return not self.relative and fixed_scale_applies(self.layer, self.method, self.model_id)

    @classmethod
    def default(cls, model_id: str | None) -> GradCamView:
        """The view every session starts with: stage 3, Grad-CAM++, on the fixed scale, over the photo."""
        settings = _default_settings()
        return cls(GRADCAM_LAYERS[settings["layer"]], settings["layer"], settings["method"], settings["opacity"],
                   settings["alone"], settings["scale"] == RELATIVE_SCALE, model_id)

    def raw_heatmap(self, key, prediction):
        """The raw map of a Classify result, kept in the session under its key."""
        cache = st.session_state.setdefault("classify_heatmaps", {})
        if (*key, self.layer, self.method) not in cache:
            cache[(*key, self.layer, self.method)] = self.raw_heatmap_of(
                prediction.prepared.model_input, prediction.patient if prediction.metadata_used else NO_INFORMATION)
        return cache[(*key, self.layer, self.method)]

    def raw_heatmap_of(self, model_input, patient):
        return state.require_explainer().raw_heatmap(model_input, self.layer, self.method, patient=patient)

    def heatmap(self, key, prediction):
        """The map as drawn: on the fixed scale, or stretched to this photo's range."""
        return self.scaled(self.raw_heatmap(key, prediction))

    def scaled(self, raw):
        return as_shown(raw, self.layer, self.method, self.model_id, self.relative)

    def picture(self, photo, heat):
        """The map over the photo, or alone where the settings say so."""
        return heatmap_image(heat, photo.size) if self.show_raw else overlay(photo, heat, self.opacity)

    def picture_of(self, prepared, patient):
        """A prepared photo's map as drawn, over it: made afresh, for a caller that keeps its own copy."""
        return self.picture(prepared.display, self.scaled(self.raw_heatmap_of(prepared.model_input, patient)))

    def caption(self, heat) -> str:
        where = f"{self.method}, {self.layer_label}"
        if self.fixed_scale:
            hottest = float(heat.max())
            if hottest < GRADCAM_HOT:
                return (f"{where}, fixed scale: no region raised P(melanoma) much; the strongest reached "
                        f"{hottest:.0%} of the scale's top. The map marks no region: that is no sign the lesion is harmless.")
            where += ", fixed scale"
            if self.late_stage:
                return (f"{where}: yellow to red regions raised P(melanoma) most, but at this stage they are often "
                        "plain skin or the dark corner, not the lesion.")
            return (f"{where}: yellow to red regions raised P(melanoma) as much as in a typical referred photo; "
                    "they may be the lesion or an artefact such as a dark corner.")
        if self.method == GRADCAM:
            why = "plain Grad-CAM is always shown this way: its raw values do not follow P(melanoma)"
        elif self.relative:
            why = "chosen in the map settings"
        else:
            why = "the fixed scale was measured on another model"
        relative = (f"{where}, relative view ({why}): stretched to this photo's own range, so its strongest region "
                    "is red however little it raised P(melanoma).")
        if not heat.any():
            return f"{where}: the map is flat, no region stands out."
        if self.late_stage:
            return relative + " At this stage red is often plain skin or the dark corner, not the lesion."
        return relative

    def show(self, key, prediction) -> None:
        heat = self.heatmap(key, prediction)
        shown = self.picture(prediction.prepared.display, heat)
        caption = self.caption(heat)
        st.image(shown, caption=caption, width="stretch",
                 alt=f"Grad-CAM heat map over the photo ({self.layer_label}); {caption}")
        if self.late_stage and heat.max() >= GRADCAM_HOT:
            st.warning(LATE_STAGE_WARNING, icon=":material/warning:")
        st.image(colour_scale(), width="stretch", alt="Colour scale from blue (raised P(melanoma) least) "
                 "to red (raised it most)")
        top = ("red = as much as the strongest region of a typical referred photo, the same for every photo"
               if self.fixed_scale else "red = this photo's strongest region, however weak")
        st.caption(f"Colour scale: blue = not at all, {top}. {GRAD_CAM_LIMITS}")


FIXED_SCALE, RELATIVE_SCALE = "Fixed: the same for every photo", "Relative: stretched per photo"
SETTINGS_KEY = "grad_cam_settings"


def _default_settings() -> dict:
    return {"layer": next(label for label, name in GRADCAM_LAYERS.items() if name == DEFAULT_GRADCAM_LAYER),
            "method": DEFAULT_METHOD, "scale": FIXED_SCALE, "opacity": GRADCAM_OPACITY, "alone": False}


def grad_cam_view(model_id: str) -> GradCamView:
    """The session's Grad-CAM settings (one set for every card, changed beside any map)."""
    settings = st.session_state.setdefault(SETTINGS_KEY, _default_settings())
    return GradCamView(GRADCAM_LAYERS[settings["layer"]], settings["layer"], settings["method"], settings["opacity"],
                       settings["alone"], settings["scale"] == RELATIVE_SCALE, model_id)


def _keep_setting(name: str, key: str) -> None:
    st.session_state[SETTINGS_KEY][name] = st.session_state[key]


def map_settings(position: int) -> None:
    """The Grad-CAM controls beside a card's map (on a phone, right under it); every card's controls
    show and change the same settings."""
    settings = st.session_state.setdefault(SETTINGS_KEY, _default_settings())
    keys = {name: f"grad-cam-{name}-{position}" for name in settings}
    for name, key in keys.items():
        st.session_state[key] = settings[name]
    with st.popover("Map settings", icon=":material/tune:", width="stretch"):
        st.selectbox("Layer", list(GRADCAM_LAYERS), key=keys["layer"], on_change=_keep_setting,
                     args=("layer", keys["layer"]), help="Earlier stages have finer grids but see less context; "
                     "stage 5 has only 3x4 cells at this input size. " + LATE_STAGE_WARNING)
        st.radio("Method", METHODS, key=keys["method"], horizontal=True, on_change=_keep_setting,
                 args=("method", keys["method"]), help="Grad-CAM++ by default: its values follow P(melanoma), so "
                 "it can be drawn on one scale for every photo. Plain Grad-CAM is shown relative to each photo only.")
        st.radio("Colour scale", [FIXED_SCALE, RELATIVE_SCALE], key=keys["scale"], on_change=_keep_setting,
                 args=("scale", keys["scale"]), help="Fixed: red means the region raised P(melanoma) as much as in "
                 "a typical referred photo, and a photo where nothing raised it shows no red. Relative: each "
                 "photo's strongest region is red, however weak it is.")
        st.slider("Overlay opacity", 0.0, 1.0, step=0.05, key=keys["opacity"], on_change=_keep_setting,
                  args=("opacity", keys["opacity"]))
        st.toggle("Show the map alone (no photo)", key=keys["alone"], on_change=_keep_setting,
                  args=("alone", keys["alone"]))


def show_result(name: str, key, prediction, threshold: float, grad_cam: GradCamView, bundle,
                asks_for_metadata: bool = False, position: int = 0) -> Callable[[], None]:
    """The card, with a place kept for its Grad-CAM map; returns what draws the map there. A page
    with several cards draws every card's call first and the maps after, so a new photo's call does
    not wait for the maps of the cards above it. `position` (the file's place on the page) keeps the
    charts of two identical uploads apart."""
    probability = prediction.probability
    with st.container(border=True):
        st.subheader(name, anchor=False)
        verdict, photo_column, map_column = st.columns(3, gap="medium")
        with verdict:
            call = prediction.call[0].upper() + prediction.call[1:]
            if prediction.suspicious:
                st.error(f"**{call}**", icon=":material/priority_high:")
            else:  # no tick: below the threshold is not a rule-out
                st.info(f"**{call}**", icon=":material/remove:")
            st.metric("P(melanoma)", percent(probability))
            st.plotly_chart(charts.probability_bar(probability, threshold, prediction.suspicious,
                                                   mode_name(prediction.metadata_used)),
                            config={"displayModeBar": False}, key=f"probability-{position}")
            point = bundle.metrics.operating_point(prediction.metadata_used)
            validation = validation_in_words(point)
            against = against_threshold(probability, threshold, prediction.suspicious, mode_name(point.with_patient_data))
            st.caption(f"P(melanoma) {against}. "
                       + (f"{capitalised(validation)}. " if validation else "")
                       + f"It misses melanomas; {other_clinics_in_brief(bundle)}: a lesion of concern needs a "
                       "clinician whatever the call.")
            familiar = familiarity_reading(bundle)
            band = prediction.assessment.familiarity_band if prediction.assessment is not None else None
            line = familiar and band is not None and familiarity_line(band, familiar)
            if line:
                st.caption(line[0], help=line[1])
            other = other_malignancy_note(prediction)
            if other:
                st.warning(other, icon=":material/medical_services:")
            note = call_and_diagnosis_note(prediction)
            if note:
                st.caption(note)
            if asks_for_metadata:
                st.caption(metadata_caption(prediction))
        photo_column.image(prediction.prepared.display, caption="Cropped as the network sees it (centre, 4:3)",
                           width="stretch", alt=f"The uploaded photo {name}, cropped to 4:3 as the network sees it")
        with map_column:
            map_slot = st.empty()
            map_settings(position)
        if prediction.assessment is not None:
            show_differential_and_cases(prediction.assessment, bundle, position, made_from(prediction))

    def draw_map() -> None:
        with map_slot.container():
            grad_cam.show(key, prediction)

    return draw_map


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def made_from(prediction) -> str:
    """What a card's figures were computed from: the photo alone, or with the patient's data."""
    if prediction.metadata_used:
        return f"From the photo with the patient's {prediction.patient.describe()}"
    return "From the photo alone"


def show_differential_and_cases(assessment, bundle, position: int = 0, source: str = "From the photo alone") -> None:
    differential_column, cases_column = st.columns([1, 2], gap="medium")
    with differential_column:
        st.plotly_chart(charts.differential_bar(assessment.differential), config={"displayModeBar": False},
                        key=f"differential-{position}")
        st.caption("As text: " + ", ".join(f"{name} {percent(p)}" for name, p in assessment.differential.items())
                   + f". {source}. How it is made: above the first card.")
    with cases_column:
        cases = assessment.similar_cases
        melanomas = round(assessment.similar_melanoma_share * len(cases))
        st.markdown(f"**{len(cases)} most similar training cases** ({melanomas} of {len(cases)} melanoma)")
        sources = state.data_sources(list(dict.fromkeys([*bundle.sources, *(case["source"] for case in cases)])))
        with st.container(horizontal=True, wrap=True, gap="small"):
            for case in cases:
                photo = sources[case["source"]].image_path(case["image_id"])
                # The box sets the width: an image given a pixel width is resized on the server on every rerun.
                with st.container(width=CASE_WIDTH):
                    if photo.is_file():
                        st.image(str(photo), caption=describe_case(case), width="stretch",
                                 alt=f"Similar training case {case['image_id']}: {describe_case(case)}")
                    else:
                        st.markdown(f"`{case['image_id']}`  \n{describe_case(case)}")
        shown = dict.fromkeys(case["source"] for case in cases)
        st.caption(f"The {SIMILAR_CASES} training photos nearest to this one in the network's feature space, "
                   "with their confirmed diagnoses. Photos: " + "; ".join(credit_lines(shown)) + ".")


def show_differential_method(bundle) -> None:
    """How the cards' differentials are made and how often the top one was right: once per page."""
    accuracy = differential_accuracy(bundle)
    st.caption(f"How the differential on each card is made: {how_the_differential_is_made(bundle)}, at the training "
               "data's rates of the diagnoses; each card says whether the patient's data went into it."
               + (f" {accuracy}" if accuracy else ""))


def show_not_a_lesion(name: str, prediction) -> None:
    assessment = prediction.assessment
    st.warning(f"**{name}: {CALL_REFUSED}.** {NOT_A_LESION_PLAIN}", icon=":material/hide_image:")
    with st.expander(f"Details for {name}: the numbers behind the refusal"):
        lines = [f"- How unlike the training photos it is: {assessment.not_a_lesion_score:.1f} on the model's "
                 f"scale; above {assessment.not_a_lesion_threshold:.1f}, a photo gets no call"]
        if assessment.classifier_score is not None:
            lines.append(f"- How much it looks like a picture that is not a lesion photo: "
                         f"{assessment.classifier_score:.1f}; above {assessment.classifier_threshold:.1f}, no call")
        st.markdown("\n".join(lines))


def show_batch(table: pd.DataFrame, predictions) -> None:
    """The table (`reporting.results_table` of `predictions`, in triage order), the call in short and
    coloured by the call, P(melanoma) rounded as on the cards beside it (a phone shows both without
    scrolling sideways), the threshold and mode that made each call; and a bar per assessed photo
    against its own threshold."""
    shown = table.assign(**{"call": table["call"].map(short_call),
                            "P(melanoma)": [None if pd.isna(p) else percent(p) for p in table["P(melanoma)"]],
                            "threshold": [None if pd.isna(threshold) else threshold_short(threshold, mode == WITH_PATIENT_DATA)
                                          for threshold, mode in zip(table["threshold"], table["mode"])],
                            "reason not assessed": table["reason not assessed"].map(short_reason)})
    styled = shown.style.map(lambda call: SHORT_CALL_STYLES.get(call, ""), subset=["call"])
    st.dataframe(styled, hide_index=True, width="stretch", placeholder="—",
                 column_order=["call", "P(melanoma)", "file", "threshold", "photo", "most likely diagnosis",
                               "reason not assessed"],
                 column_config={
                     # Widths that fit the page and every header at 1,400 px, the reasons whole; on a phone
                     # (420 px) the call and P(melanoma) fit beside each other.
                     "call": st.column_config.TextColumn(width=112, pinned=True, help="In short: refer (suspicious "
                                                         "for melanoma), below threshold (not a rule-out), no call "
                                                         "(assess clinically), not assessed"),
                     "P(melanoma)": st.column_config.TextColumn(width=90),
                     "file": st.column_config.TextColumn(width=125),
                     "photo": st.column_config.ImageColumn("photo", width=55),
                     "threshold": st.column_config.TextColumn(width=165, help="The referral threshold that made this "
                                                              "call, and its mode: the photo alone, or with the "
                                                              "patient's data"),
                     "most likely diagnosis": st.column_config.TextColumn(width=135),
                     "reason not assessed": st.column_config.TextColumn(
                         width=255, help="In short; the full reason is on the photo's card below and in the CSV")})
    st.caption("Photos with no call come first: someone has to look at them. A *refer* can sit beside a more "
               "likely benign diagnosis: the referral threshold is set low, so that most melanomas are referred.")
    # The thresholds as the predictions hold them: the table's are rounded for the CSV.
    rows = [(prediction.name, prediction.probability, prediction.threshold, prediction.metadata_used)
            for prediction in (predictions[position] for position in triage_order(predictions)) if prediction.ok]
    if rows:
        st.plotly_chart(charts.batch_risk_bars(rows), config={"displayModeBar": False})
        st.caption("As text: " + "; ".join(f"{file} {percent(p)} against {threshold_short(threshold, with_data)}"
                                           for file, p, threshold, with_data in rows)
                   + ". Red: at or above its referral threshold (the black mark on its row).")


def downloads(predictions, bundle, table: pd.DataFrame | None = None) -> None:
    """The results to take away: the table as CSV (where there is one) and, beside it, the FHIR R4
    DiagnosticReport a record system reads (the HTTP API's ?format=fhir answer for the same photos)."""
    columns = st.columns(2 if table is not None else 1, gap="small")
    if table is not None:
        columns[0].download_button("Download results (CSV)", results_csv(table, bundle.provenance),
                                   file_name="melanoma-triage.csv", mime="text/csv", icon=":material/download:",
                                   on_click="ignore")
    columns[-1].download_button(
        "Download report (FHIR R4 JSON)", fhir.as_json(fhir.diagnostic_report(bundle, predictions)),
        file_name="melanoma-triage.fhir.json", mime=fhir.MEDIA_TYPE, icon=":material/download:", on_click="ignore",
        help="A FHIR DiagnosticReport with one Observation per photo and the model as a Device, for a clinic's "
             "record system. No patient identifier is in it.")
