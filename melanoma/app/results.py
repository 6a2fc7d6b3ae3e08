"""The Classify page's pieces: one result card, a refused photo, the batch table, the Grad-CAM view.

Each result leads with the verdict (on a phone the columns stack, so it comes first), then the
photo and the map, then the differential and the similar training cases. Every chart and picture
carries a text alternative.
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from melanoma.app import charts, state
from melanoma.app.patient_inputs import metadata_caption
from melanoma.config import IMAGES_DIR, SIMILAR_CASES
from melanoma.explain import colour_scale, heatmap_image, overlay
from melanoma.patient import NO_INFORMATION
from melanoma.reporting import against_threshold, describe_case, percent

CASE_COLUMNS = 4
GRAD_CAM_LIMITS = ("A map shows where the features that raised P(melanoma) sit, not why; it is coarse "
                   "(one cell per block of pixels) and can light up artefacts such as a dark corner.")


@dataclass
class GradCamView:
    """The sidebar's Grad-CAM settings, and the session's cache of maps per (photo, layer, method)."""

    explainer: object
    layer: str
    layer_label: str
    method: str
    opacity: float
    show_raw: bool

    def heatmap(self, key, prediction):
        cache = st.session_state.setdefault("classify_heatmaps", {})
        if (*key, self.layer, self.method) not in cache:
            cache[(*key, self.layer, self.method)] = self.explainer.heatmap(
                prediction.prepared.model_input, self.layer, self.method,
                patient=prediction.patient if prediction.metadata_used else NO_INFORMATION)
        return cache[(*key, self.layer, self.method)]

    def show(self, key, prediction, suspicious: bool) -> None:
        photo = prediction.prepared.display
        heat = self.heatmap(key, prediction)
        shown = heatmap_image(heat, photo.size) if self.show_raw else overlay(photo, heat, self.opacity)
        if not heat.any():
            caption = f"{self.method}, {self.layer_label}: the map is flat, no region stands out."
        elif suspicious:
            caption = f"{self.method}, {self.layer_label}: red regions raised P(melanoma) most."
        else:
            caption = (f"{self.method}, {self.layer_label}: red regions raised P(melanoma) most, though it "
                       "stayed below the threshold: they raised it only a little.")
        st.image(shown, caption=caption, width="stretch",
                 alt=f"Grad-CAM heat map over the photo ({self.layer_label}); {caption}")
        st.image(colour_scale(), width="stretch", alt="Colour scale from blue (raised P(melanoma) least) "
                 "to red (raised it most)")
        st.caption(f"Colour scale: blue = least, red = most. {GRAD_CAM_LIMITS}")


def show_result(name: str, key, prediction, threshold: float, grad_cam: GradCamView,
                asks_for_metadata: bool = False, position: int = 0) -> None:
    """`position` (the file's place among the uploads) keeps the charts of two identical uploads apart."""
    probability = prediction.probability
    with st.container(border=True):
        st.subheader(name, anchor=False)
        verdict, photo_column, map_column = st.columns(3, gap="medium")
        with verdict:
            call = prediction.call[0].upper() + prediction.call[1:]
            if prediction.suspicious:
                st.error(f"**{call}**", icon=":material/priority_high:")
            else:
                st.success(f"**{call}**", icon=":material/check:")
            st.metric("P(melanoma)", percent(probability))
            st.plotly_chart(charts.probability_bar(probability, threshold), config={"displayModeBar": False},
                            key=f"probability-{position}")
            st.caption(f"P(melanoma) {against_threshold(probability, threshold)}.")
            if asks_for_metadata:
                st.caption(metadata_caption(prediction))
        photo_column.image(prediction.prepared.display, caption="Cropped as the network sees it (centre, 4:3)",
                           width="stretch", alt=f"The uploaded photo {name}, cropped to 4:3 as the network sees it")
        with map_column:
            grad_cam.show(key, prediction, prediction.suspicious)
        if prediction.assessment is not None:
            show_differential_and_cases(prediction.assessment, position)


def show_differential_and_cases(assessment, position: int = 0) -> None:
    differential_column, cases_column = st.columns([1, 2], gap="medium")
    with differential_column:
        st.plotly_chart(charts.differential_bar(assessment.differential), config={"displayModeBar": False},
                        key=f"differential-{position}")
        st.caption("As text: " + ", ".join(f"{name} {percent(p)}" for name, p in assessment.differential.items())
                   + ". From the image alone; the diagnoses' rates are those of HAM10000.")
    with cases_column:
        cases = assessment.similar_cases
        melanomas = round(assessment.similar_melanoma_share * len(cases))
        st.markdown(f"**{len(cases)} most similar training cases** ({melanomas} of {len(cases)} melanoma)")
        images = state.data_dir() / IMAGES_DIR
        for start in range(0, len(cases), CASE_COLUMNS):
            for column, case in zip(st.columns(CASE_COLUMNS), cases[start:start + CASE_COLUMNS]):
                photo = images / f"{case['image_id']}.jpg"
                if photo.is_file():
                    column.image(str(photo), caption=describe_case(case), width="stretch",
                                 alt=f"Similar training case {case['image_id']}: {describe_case(case)}")
                else:
                    column.markdown(f"`{case['image_id']}`  \n{describe_case(case)}")
        st.caption(f"The {SIMILAR_CASES} training photos nearest to this one in the network's feature space, "
                   "with their confirmed diagnoses. Their photos appear where a HAM10000 folder is configured "
                   f"(`{state.DATA_ENV}`).")


def show_not_a_lesion(name: str, prediction) -> None:
    assessment = prediction.assessment
    st.warning(f"**{name}** was not assessed: it {prediction.error}. The model only knows dermatoscopic photos "
               "of single skin lesions, so it gives no call for this picture.", icon=":material/hide_image:")
    with st.expander(f"Scores for {name} (unreliable: not a lesion photo)"):
        st.markdown(f"- P(melanoma) the network would have given: {percent(prediction.unreliable_probability)} "
                    "— **unreliable**, the network has never seen pictures like this one\n"
                    f"- not-a-lesion score {assessment.not_a_lesion_score:.1f}; photos scoring above "
                    f"{assessment.not_a_lesion_threshold:.1f} are not assessed")


def show_batch(table, threshold: float) -> None:
    assessed = table[table["P(melanoma)"].notna()]
    st.dataframe(table, hide_index=True, column_order=["call", "file", "P(melanoma)", "photo",
                                                       "most likely diagnosis", "reason not assessed"],
                 column_config={
                     "photo": st.column_config.ImageColumn("photo", width="small"),
                     "P(melanoma)": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="percent",
                                                                    color=charts.OTHER_COLOUR),
                     "call": st.column_config.TextColumn(width="medium", pinned=True)})
    if len(assessed):
        rows = list(zip(assessed["file"], assessed["P(melanoma)"], assessed["P(melanoma)"] >= assessed["threshold"]))
        st.plotly_chart(charts.batch_risk_bars(rows, threshold), config={"displayModeBar": False})
        st.caption("As text: " + "; ".join(f"{file} {percent(p)}" for file, p, _ in rows) + ". Red: above the "
                   "referral threshold.")
