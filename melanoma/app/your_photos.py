"""Check it on your photos: a clinic measures the shipped model on its own labelled photos before it
trusts it (a local validation). Photos and labels (a CSV, or ticked in a table) go to
`melanoma.local_check`, which the HTTP API's POST /evaluate answers through too; this page only shows
its report: the verdict in words, the intervals, the ROC beside the published curves, calibration,
familiarity, refusals, a what-if threshold and the per-photo table with Grad-CAM on click.

The check runs on a background thread, so the page (and the others) stay usable while it runs;
a fragment redraws its progress bar. Uploads stay in memory and nothing is written.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from melanoma import local_check
from melanoma.app import charts, state
from melanoma.app.results import GradCamView
from melanoma.config import MAX_AGE, SEXES
from melanoma.images import MAX_UPLOAD_MB, UPLOAD_EXTENSIONS, ImageRejected, prepare_image
from melanoma.local_check import FALSE_ALARM, MISSED, CheckRefused, LabelsError
from melanoma.patient import NO_INFORMATION, PatientInfoError
from melanoma.records import Reliability
from melanoma.reporting import DISCLAIMER, source_title
from melanoma.sites import FINE_VOCABULARY, choices

RUN = "local_check_run"  # this session's check: its inputs' key, the work and its progress
CSV_LABELS, TABLE_LABELS = "A CSV file", "Tick them in a table"
CHECK_THREADS = 2  # checks running at once across every session; more wait their turn
OUTCOME_STYLES = {MISSED: "background-color: #e8a39a", FALSE_ALARM: "background-color: #f6d7a7"}


@dataclass
class Run:
    """A check this session started: its inputs (held in memory until the session ends or checks
    others), the work on a background thread, and how far it got."""

    key: tuple
    cases: list[local_check.Case]
    problems: list[str]
    future: Future
    done: int = 0
    total: int = 0

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


@st.cache_resource
def checking_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="melanoma-local-check")


def figure(value, bounds) -> str:
    return local_check.with_interval(value, bounds).replace(", 95% interval ", " (") + (")" if bounds else "")


st.title("Check it on your photos")
st.caption(DISCLAIMER)
bundle = state.require_bundle()
st.markdown(
    "Every figure elsewhere in this app was measured on the archives the model was trained on. On other clinics' "
    "cameras it does worse, by an amount no one can tell you in advance. Before trusting a model like this one, a "
    "clinic should measure it on its own labelled photos: upload them here with their confirmed diagnoses, and see "
    "how the model does on your camera, with the same figures and code as `python -m melanoma evaluate`. "
    f"{local_check.WHAT_IT_CANNOT_TELL}")

uploads = st.file_uploader(
    f"Your photos: {local_check.MIN_PHOTOS} to {local_check.MAX_PHOTOS:,}, {local_check.MAX_TOTAL_MB} MB in all",
    type=list(UPLOAD_EXTENSIONS), accept_multiple_files=True,
    help=f"Up to {MAX_UPLOAD_MB} MB each. Analysed in memory and not stored.") or []
how = st.radio("Labels", (CSV_LABELS, TABLE_LABELS), horizontal=True,
               help="The CSV needs a column naming each photo (image_id, without the extension, or file) and one "
                    "saying melanoma (yes/no) or the diagnosis (dx: mel for melanoma; any other counts as not "
                    "melanoma); optionally lesion_id, age, sex and a site (localization or anatom_site_general). "
                    "HAM10000's own metadata CSV works as it is.")
labels, labels_digest = None, None
if how == CSV_LABELS:
    labels_file = st.file_uploader("Labels (CSV)", type=["csv"], help="Read in memory and not stored.")
    if labels_file is not None:
        data = labels_file.getvalue()
        labels_digest = hashlib.sha256(data).hexdigest()
        try:
            labels = local_check.read_labels(data)
        except LabelsError as error:
            st.error(str(error), icon=":material/table:")
elif uploads:
    site_column = "localization" if bundle.network_spec.site_vocabulary == FINE_VOCABULARY else "anatom_site_general"
    table = pd.DataFrame({"file": [upload.name for upload in uploads], "melanoma": False, "lesion_id": None,
                          "age": None, "sex": None, site_column: None})
    st.caption("Tick each melanoma. A lesion id groups photos of one lesion (the intervals then resample lesions); "
               "age, sex and site are optional, blank is unknown.")
    edited = st.data_editor(table, hide_index=True, width="stretch", disabled=["file"], key="local_check_table",
                            column_config={
                                "melanoma": st.column_config.CheckboxColumn("melanoma"),
                                "lesion_id": st.column_config.TextColumn("lesion id"),
                                "age": st.column_config.NumberColumn("age", min_value=0, max_value=MAX_AGE, step=1),
                                "sex": st.column_config.SelectboxColumn("sex", options=SEXES),
                                site_column: st.column_config.SelectboxColumn(
                                    "site", options=choices(bundle.network_spec.site_vocabulary))})
    labels = local_check.labels_from_frame(edited.dropna(axis=1, how="all"))
    labels_digest = hashlib.sha256(edited.to_csv(index=False).encode()).hexdigest()

run: Run | None = st.session_state.get(RUN)
if uploads and labels is not None:
    cases, problems = local_check.pair([(upload.name, upload.getvalue()) for upload in uploads], labels)
    for problem in problems:
        st.warning(problem, icon=":material/rule:")
    key = (bundle.weights_sha256, tuple(upload.file_id for upload in uploads), labels_digest)
    if run is None or run.key != key:
        melanomas = sum(case.label.melanoma for case in cases)
        if not st.button(f"Check the model on {len(cases)} labelled photos ({melanomas} melanomas)", type="primary",
                         icon=":material/play_arrow:"):
            st.stop()
        run = Run(key, cases, problems, Future(), total=len(cases))
        run.future = checking_pool().submit(local_check.check, state.require_predictor(), cases, problems,
                                            run.progress)
        st.session_state[RUN] = run
elif run is not None and run.key[0] == bundle.weights_sha256:
    # Streamlit empties the uploaders when the visitor goes to another page; the check they started goes on.
    st.info(f"Your last check, of {len(run.cases)} photos, is below. Upload photos and labels again to check "
            "others.", icon=":material/history:")
    for problem in run.problems:
        st.warning(problem, icon=":material/rule:")
else:
    st.info("Upload your photos and their labels to check the model on them.", icon=":material/upload:")
    st.stop()
cases, problems = run.cases, run.problems


@st.fragment(run_every=1.0)
def progress(run: Run) -> None:
    if run.future.done():
        st.rerun()
    st.progress(run.done / max(run.total, 1), text=f"Checked {run.done} of {run.total} photos… You can look at other "
                                                   "pages meanwhile; come back for the result.")


if not run.future.done():
    progress(run)
    st.stop()
try:
    report = run.future.result()
except CheckRefused as error:
    st.error(f"No figures for these photos: {error}", icon=":material/block:")
    st.stop()

for problem in report["problems"]:
    if problem not in problems:  # found while checking: unreadable files, unusable patient information
        st.warning(problem, icon=":material/rule:")
intervals = report["intervals"]
unit = "lesions" if intervals["unit"] == "lesion" else "photos"
st.subheader("What the model did on your photos")
st.markdown(f"**{report['verdict']}**")
if report["too_few_melanomas"]:
    st.warning(report["too_few_melanomas"], icon=":material/warning:")
columns = st.columns(3)
columns[0].metric("ROC AUC", figure(report["roc_auc"], intervals["roc_auc"]))
columns[1].metric("Sensitivity (melanomas found)", figure(report["sensitivity"], intervals["sensitivity"]))
columns[2].metric("Specificity (others cleared)", figure(report["specificity"], intervals["specificity"]))
used = ", ".join(report["metadata_used"]) or "none: the photos alone"
st.caption(f"95% intervals: {intervals['resamples']:,} bootstrap draws of your {intervals['n_lesions']:,} {unit}"
           f"{'' if unit == 'lesions' else ' (no lesion ids given: each photo counts as its own lesion)'}. Patient "
           f"information given to the network: {used}. Every usable photo is scored, those the not-a-lesion check "
           "refuses too, as `python -m melanoma evaluate` scores them.")

roc_column, calibration_column = st.columns(2)
with roc_column:
    st.plotly_chart(charts.roc_beside_published(report["roc"], report["roc_auc"],
                                                (report["specificity"], report["sensitivity"]),
                                                report["published_roc"]))
    st.caption("Dashed: the model's published test curves on the archives it was trained on. Where your curve runs "
               "below them, your camera is harder for it than theirs.")
with calibration_column:
    calibration = report["calibration"]
    curve = Reliability(brier=calibration["brier"], predicted=calibration["curve"]["predicted"],
                        observed=calibration["curve"]["observed"])
    st.plotly_chart(charts.reliability_lines([(curve, "your photos", charts.MELANOMA_COLOUR)],
                                             "Calibration on your photos", "your photos"))
    direction = ("runs high" if calibration["mean_probability"] > calibration["melanoma_rate"] else "runs low")
    st.caption(f"Mean P(melanoma) given: {calibration['mean_probability']:.3f}, against your melanoma rate of "
               f"{calibration['melanoma_rate']:.3f}: on your photos the probability {direction}. It was calibrated on "
               "the training archives' validation photos; where melanoma is commoner or rarer than there, the "
               "figure is off by that much.")

familiarity = report["familiarity"]
if familiarity:
    st.subheader("How familiar your photos look to the model")
    shares = {"your photos": familiarity["yours"]}
    shares.update({f"{source_title(source)} test": bands
                   for source, bands in familiarity["published_test_splits"].items()})
    st.dataframe(pd.DataFrame(shares).map(lambda share: f"{share:.0%}"), width="stretch")
    st.caption("The share of photos in each band of how unlike the training photos they look (camera, lighting, "
               "colours), beside the model's own test photos. A large least-familiar share says your camera is "
               "unlike the training archives'; the bands tell archives apart, they do not score a single photo.")

refusals = report.get("not_a_lesion")
if refusals:
    refused = refusals["photos"]
    st.markdown(f"**Refused as not a lesion:** {len(refused)} of {report['n_images']} photos"
                + (f" ({refusals['would_refuse_melanoma']} of them melanomas): {local_check.listed(refused, 10)}. "
                   "On the Classify page they would get no call: *assess clinically*." if refused else "."))

st.subheader("What if the threshold were set on your photos?")
choice = st.select_slider("Keep this sensitivity on your photos", options=local_check.WHAT_IF_SENSITIVITIES,
                          value=local_check.WHAT_IF_SENSITIVITIES[1], format_func=lambda target: f"{target:.2f}")
what_if = next(option for option in report["what_if"] if option["target_sensitivity"] == choice)
bounds = what_if["intervals"]
st.markdown(
    f"A threshold of **{what_if['threshold']:.3f}** (shipped: {report['threshold']:.3f}) finds "
    f"{what_if['sensitivity']:.3f} of your melanomas and clears {what_if['specificity']:.3f} of the others, referring "
    f"{what_if['referred']} of {report['n_images']} photos.")
st.warning(f"A threshold chosen on {report['n_images']} photos is itself uncertain. Chosen again on each of "
           f"{bounds['resamples']} bootstrap draws of your {unit}, the threshold for {choice:.2f} ranged from "
           f"{bounds['threshold'][0]:.3f} to {bounds['threshold'][1]:.3f}, and on your photos it then found "
           f"{bounds['sensitivity'][0]:.2f} to {bounds['sensitivity'][1]:.2f} of the melanomas (specificity "
           f"{bounds['specificity'][0]:.2f} to {bounds['specificity'][1]:.2f}; 95% intervals): that is how far the "
           "sensitivity it promises can be trusted. The app keeps its shipped threshold: this only shows what a local "
           "one would do.", icon=":material/tune:")

st.subheader("Photo by photo: misses and false alarms first")
rows = pd.DataFrame(report["photos"]).rename(columns={"probability_melanoma": "P(melanoma)", "lesion_id": "lesion id"})
rows["melanoma"] = rows["melanoma"].map({True: "yes", False: "no"})
rows["not_a_lesion"] = rows["not_a_lesion"].map({True: "refused", False: ""})
shown = rows[["file", "outcome", "P(melanoma)", "melanoma", "not_a_lesion", "familiarity", "lesion id"]]
selection = st.dataframe(shown.style.map(lambda outcome: OUTCOME_STYLES.get(outcome, ""), subset=["outcome"]),
                         hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                         column_config={"P(melanoma)": st.column_config.NumberColumn(format="%.3f"),
                                        "not_a_lesion": "not a lesion"}, key="local_check_photos")
st.caption("Click a row for that photo's Grad-CAM map; click a column's name to sort by it.")
chosen = selection.selection.rows if selection else []
if chosen:
    name = shown.iloc[chosen[0]]["file"]
    case = next(case for case in cases if case.name == name)
    try:
        prepared = prepare_image(case.data, bundle.image_spec, display=True)
    except ImageRejected as error:
        st.warning(f"{name}: {error}")
    else:
        try:
            patient = local_check.patient_of(state.require_predictor(), case.label, report["metadata_used"])
        except PatientInfoError:
            patient = NO_INFORMATION
        view = GradCamView.default(bundle.weights_sha256)
        heat = view.scaled(view.raw_heatmap_of(prepared.model_input, patient))
        row = rows.iloc[chosen[0]]
        left, right = st.columns(2)
        left.image(prepared.display, caption=f"{name}: {row['outcome']}, P(melanoma) {row['P(melanoma)']:.3f}",
                   width="stretch")
        right.image(view.picture(prepared.display, heat), caption=view.caption(heat), width="stretch")

left, right = st.columns(2)
left.download_button("Download the report (CSV)", local_check.report_csv(report), file_name="local-check.csv",
                     mime="text/csv", icon=":material/download:", on_click="ignore")
right.download_button("Download the report (JSON)", json.dumps(report, indent=2), file_name="local-check.json",
                      mime="application/json", icon=":material/download:", on_click="ignore")
st.caption(f"Both carry the model's name, version and weights hash ({report['model']['version']}, weights "
           f"{report['model']['weights_sha256'][:12]}…).")
