"""Test yourself: a reader study. The visitor calls 10, 20 or 40 test photos one at a time (refer or
reassure, a 0-100 likelihood, optionally a diagnosis); only then do they see the truth, their
sensitivity, specificity and AUC beside the model's on the same photos, and where the two disagreed.

Each visitor's draw and answers live in their own session state and nowhere else: nothing about a
visitor is written on the server, and reloading the page starts afresh.
"""
from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from melanoma import reader_study
from melanoma.app import charts, state
from melanoma.app.charts import rate
from melanoma.app.results import GradCamView
from melanoma.call import Call, mode_name
from melanoma.config import KNOWN_DX
from melanoma.published import HAENSSLE_2018
from melanoma.reader_study import READER_STUDY_MELANOMA_SHARE, READER_STUDY_PHOTO_SIZE
from melanoma.records import SplitFigures
from melanoma.reporting import credit_lines, percent, provenance, thumbnail_uri
from melanoma.wording import DIFFERENTIAL_NAMES

READER_STUDY_LENGTHS = (10, 20, 40)

TEST = "reader_test"  # this session's test: the draw, the answers so far, the settings
REFER, REASSURE = "Refer: suspicious for melanoma", "Reassure: not suspicious"
DISAGREEMENT_THUMBNAIL = 150
DISAGREEMENT_ROW_HEIGHT = 85
SHARE_IN_WORDS = {1 / 3: "a third", 1 / 4: "a quarter", 1 / 2: "half"}.get(READER_STUDY_MELANOMA_SHARE,
                                                                        f"{READER_STUDY_MELANOMA_SHARE:.0%}")
PHOTO_ZOOM = 2  # photos shown at twice their stored size: larger blurs a 200x150 photo further
# Where Streamlit stacks columns (below 640 px), the next photo's rerun keeps the scroll of the last answer,
# leaving the photo above the screen: scroll its progress bar to the top, below Streamlit's 60 px header,
# so that the photo and the answer form (about 710 px together at 420 px wide) are on screen at once.
# The photo's number is in the script, so each photo's rerun runs it anew (an unchanged element is not redrawn).
SCROLL_TO_QUESTION = """<script>
// photo {position}
// Again once the last page's leftovers are gone (they keep the page long for a moment after a rerun).
for (const wait of [50, 400, 1200]) setTimeout(() => {{
  if (window.innerWidth >= 640) return;
  const bar = document.querySelector('[data-testid=stProgress]');
  if (bar) {{ bar.style.scrollMarginTop = '60px'; bar.scrollIntoView({{block: 'start'}}); }}
}}, wait);
</script>"""


def whole(value) -> str:
    """A rate on a short test as a whole percentage: one answer moves it by several points."""
    return "n/a" if value is None else f"{value:.0%}"


def auc_text(value) -> str:
    """An AUC on a few dozen photos to two decimals: a third would claim precision the test lacks."""
    return "n/a" if value is None else f"{value:.2f}"


def photo_sizes(bundle) -> str:
    spec = bundle.image_spec
    return (f"You see each photo at its stored size of {READER_STUDY_PHOTO_SIZE[0]}x{READER_STUDY_PHOTO_SIZE[1]} "
            f"pixels, shown at {PHOTO_ZOOM}x; the model is given it at {spec.width}x{spec.height}. Haenssle's "
            "dermatologists saw full-resolution dermoscopic photos, so their figures below come from sharper "
            "pictures than yours.")


def patient_line(case) -> str:
    age = case.get("age")
    parts = ["age unknown" if age is None or pd.isna(age) else f"age {age:g}"]
    for column, unknown in (("sex", "sex unknown"), ("localization", "site unknown")):
        value = case.get(column)
        parts.append(unknown if value is None or pd.isna(value) or value == "unknown" else str(value))
    return ", ".join(parts)


def show_credits(sources) -> None:
    st.caption("Photos: " + "; ".join(credit_lines(sources)) + ". Shown for teaching, not for "
               "commercial use.")


def setup(pools: dict, problems: list[str]) -> None:
    for problem in problems:
        st.warning(f"The test photos shipped with the model cannot be used: {problem}", icon=":material/warning:")
    if not pools:
        st.error("There are no test photos to draw from: the model ships none and no data folder is configured "
                 f"(`{state.DATA_ENV}`).", icon=":material/error:")
        st.stop()
    st.markdown(
        "Is the model better than you? You see photos of lesions from its **test split**: lesions it never saw "
        "in training. For each photo, one at a time, you decide:\n"
        "- **refer** (suspicious for melanoma) or **reassure**;\n"
        "- **how likely melanoma is**, from 0 to 100;\n"
        "- optionally, the **most likely diagnosis** of seven.\n\n"
        f"About {SHARE_IN_WORDS} of the photos are melanoma, far more than in a clinic. You see "
        "nothing of the truth or of the model until the end; then your sensitivity, specificity and AUC beside "
        "the model's on the same photos, and every photo where you two disagreed.\n\n"
        + photo_sizes(state.require_bundle()))
    with st.form("reader-setup"):
        length = st.radio("Number of photos", READER_STUDY_LENGTHS, index=0, horizontal=True,
                          format_func=lambda n: f"{n} photos")
        show_metadata = st.toggle("Show the patient's age, sex and body site", value=True)
        if len(pools) > 1:
            pool = st.radio("Photos from", list(pools), format_func=lambda key: pools[key].description)
        else:
            pool = next(iter(pools))
        started = st.form_submit_button("Start the test", type="primary", icon=":material/play_arrow:")
    st.caption("Your answers stay in this browser session only: nothing is stored on the server, and reloading "
               "the page starts over.")
    show_credits(next(iter(pools.values())).sources)
    if started:
        seed = secrets.randbits(32)  # each visitor their own draw; kept for the CSV
        cases = reader_study.stratified_draw(pools[pool].cases, length, np.random.default_rng(seed))
        st.session_state[TEST] = {"cases": cases, "answers": [], "show_metadata": show_metadata, "seed": seed,
                                  "pool": pools[pool], "grad_cam": {}}
        st.rerun()


def question(test: dict) -> None:
    cases, answers = test["cases"], test["answers"]
    position, total = len(answers), len(cases)
    case = cases.iloc[position]
    st.progress(position / total, text=f"Photo {position + 1} of {total}")
    try:
        photo = Path(case["photo"]).read_bytes()
    except OSError as error:
        st.warning(f"Photo {position + 1} cannot be read ({error.strerror or error}); it is left out of your test.",
                   icon=":material/broken_image:")
        test["cases"] = cases.drop(index=cases.index[position]).reset_index(drop=True)
        st.button("Go on")
        st.stop()
    # On a phone: the photo and its form in view together.
    st.html(SCROLL_TO_QUESTION.format(position=position), unsafe_allow_javascript=True)
    photo_column, answer_column = st.columns([3, 2], gap="small")
    photo_column.image(photo, width=PHOTO_ZOOM * READER_STUDY_PHOTO_SIZE[0],
                       alt=f"Dermatoscopic photo {position + 1} of {total}")
    if test["show_metadata"]:
        photo_column.markdown(f"**Patient:** {patient_line(case)}")
    with answer_column.form(f"reader-answer-{position}"):
        call = st.radio("Your call", (REFER, REASSURE), index=None)
        likelihood = st.slider("How likely is melanoma? (0 = surely not, 100 = surely)", 0, 100, 50)
        diagnosis = st.selectbox("Most likely diagnosis (optional)", KNOWN_DX, index=None, placeholder="not given",
                                 format_func=DIFFERENTIAL_NAMES.get)
        last = position + 1 == total
        submitted = st.form_submit_button("Finish and see my result" if last else "Next photo", type="primary",
                                          icon=":material/done_all:" if last else ":material/arrow_forward:")
    if submitted:
        if call is None:
            answer_column.warning("Choose refer or reassure to go on.", icon=":material/touch_app:")
        else:
            answers.append(reader_study.Answer(refer=call == REFER, likelihood=int(likelihood), diagnosis=diagnosis))
            st.rerun()
    st.button("Stop and start again", on_click=st.session_state.pop, args=(TEST, None), icon=":material/restart_alt:")


def result(test: dict, bundle) -> None:
    """The visitor's figures beside the model's and the published readers', where they disagreed,
    and the whole test to download."""
    cases, answers = test["cases"], test["answers"]
    threshold = bundle.threshold
    outcome = reader_study.score(cases, answers, threshold)
    st.header(f"Your result: {len(cases)} photos, {outcome.yours.n_melanoma} melanoma", anchor=False)
    show_rates(outcome, threshold, mode_name(bundle.metrics.image_only is not None))
    left, right = st.columns(2, gap="large")
    with left:
        show_roc(outcome)
    with right:
        show_beside_published(outcome, len(cases))
    st.caption("As text: " + "; ".join(
        f"{who}: sensitivity {whole(m.sensitivity)}, specificity {whole(m.specificity)}, AUC {auc_text(m.roc_auc)}"
        for who, m in (("you", outcome.yours), ("the model", outcome.model)))
        + f"; Haenssle 2018's dermatologists: sensitivity "
        f"{rate(HAENSSLE_2018.sensitivity)} at specificity {rate(HAENSSLE_2018.specificity)}.")
    show_disagreements(test, outcome.disagreements, threshold)
    offer_download(test, bundle)
    st.button("Take another test", on_click=st.session_state.pop, args=(TEST, None), type="primary",
              icon=":material/restart_alt:")
    show_credits(test["pool"].sources)


def show_rates(outcome: reader_study.TestResult, threshold: float, mode: str) -> None:
    """Sensitivity, specificity and AUC: the visitor's row, then the model's."""
    def rates_row(who: str, metrics: SplitFigures, auc_note: str) -> None:
        (tn, fp), (fn, tp) = metrics.confusion_matrix
        columns = st.columns(3)
        columns[0].metric(f"{who} sensitivity", f"{whole(metrics.sensitivity)} ({tp} of {tp + fn})",
                          help="Melanomas referred, of all melanomas shown")
        columns[1].metric(f"{who} specificity", f"{whole(metrics.specificity)} ({tn} of {tn + fp})",
                          help="Lesions that were not melanoma and were not referred, of all shown")
        columns[2].metric(f"{who} AUC", auc_text(metrics.roc_auc), help=auc_note)

    melanomas = outcome.yours.n_melanoma
    rates_row("Your", outcome.yours, "From your 0-100 likelihoods: the chance that a random melanoma got a higher "
                                     "likelihood from you than a random benign lesion (ties count half)")
    rates_row("Model's", outcome.model, f"From its P(melanoma), {mode}; it refers at that mode's threshold of "
                                        f"{percent(threshold)} and otherwise says 'below the referral threshold — not "
                                        "a rule-out'")
    st.caption(f"On {melanomas} melanomas one answer moves sensitivity by "
               f"{1 / max(melanomas, 1):.0%}: a test this short is a rough guide, not a verdict, and its "
               "figures are shown no more precisely than that.")


def show_roc(outcome: reader_study.TestResult) -> None:
    yours, model = outcome.yours, outcome.model
    anchor = ((HAENSSLE_2018.specificity, HAENSSLE_2018.sensitivity),
              f"Haenssle 2018: mean of {HAENSSLE_2018.readers} dermatologists")
    st.plotly_chart(charts.reader_study_roc(
        outcome.model_roc, model.roc_auc, (model.specificity, model.sensitivity), outcome.your_roc,
        yours.roc_auc, (yours.specificity, yours.sensitivity), anchor), config={"displayModeBar": False})
    st.caption("**How to read this ROC curve:** each curve shows the share of melanomas referred (up) against the "
               "share of other lesions referred (right) as the cut-off on P(melanoma), or on your 0-100 "
               "likelihood, moves; up and to the left is better. Each marker is one set of refer calls: a marker "
               "above the model's curve beats the model's trade-off at that point, one below it does worse.")


def show_beside_published(outcome: reader_study.TestResult, photos: int) -> None:
    """The visitor and the model beside Haenssle 2018's dermatologists and CNN, and the diagnoses named."""
    yours, model = outcome.yours, outcome.model
    st.markdown("**Beside published figures**")
    # Four short columns: the table fits a phone's width without scrolling sideways.
    st.dataframe(pd.DataFrame([
        {"who": "you", "sensitivity": whole(yours.sensitivity), "specificity": whole(yours.specificity),
         "AUC": auc_text(yours.roc_auc)},
        {"who": "the model", "sensitivity": whole(model.sensitivity), "specificity": whole(model.specificity),
         "AUC": auc_text(model.roc_auc)},
        {"who": f"{HAENSSLE_2018.readers} dermatologists*", "sensitivity": rate(HAENSSLE_2018.sensitivity),
         "specificity": rate(HAENSSLE_2018.specificity), "AUC": ""},
        {"who": "Haenssle's CNN*", "sensitivity": "", "specificity": "", "AUC": f"{HAENSSLE_2018.cnn_auc:.2f}"},
    ]), hide_index=True)
    st.caption(f"You and the model: these {photos} photos. \\* {HAENSSLE_2018.citation}: the mean of "
               f"{HAENSSLE_2018.readers} dermatologists and a CNN on {HAENSSLE_2018.images} other dermoscopic "
               "photos (level I: the photo alone). Published anchors, not the same test.")
    if outcome.diagnoses_answered:
        st.markdown(f"**Diagnosis:** you named one for {outcome.diagnoses_answered} of {photos} photos, "
                    f"{outcome.diagnoses_correct} correct "
                    f"({outcome.diagnoses_correct / outcome.diagnoses_answered:.0%}).")
    else:
        st.markdown("**Diagnosis:** you named none (it was optional).")


def offer_download(test: dict, bundle) -> None:
    """The whole test as CSV, each row with the model and the draw it came from."""
    table = reader_study.answers_table(test["cases"], test["answers"], bundle.threshold, test["show_metadata"])
    table = table.assign(model_version=bundle.version, photos_from=test["pool"].description, draw_seed=test["seed"],
                         **provenance(bundle.provenance))
    st.download_button("Download the whole test (CSV)", table.to_csv(index=False),
                       file_name=f"test-yourself-{bundle.provenance.name}.csv", mime="text/csv",
                       icon=":material/download:", on_click="ignore")
    check = test["pool"].probability_check
    st.caption("The model's P(melanoma) is the one in its test split (calibrated; the figures behind the Training "
               "page)" + ("" if check is None else f"; on these shipped photos the network as shipped gives the same "
                                                 f"within {check:.4f}")
               + (", with the patient's age, sex and site given to it." if bundle.takes_metadata else
                  ", from the photo alone: this model takes no age, sex or site."))


def show_disagreements(test: dict, positions: list[int], threshold: float) -> None:
    cases, answers = test["cases"], test["answers"]
    if not positions:
        st.success("You and the model made the same call on every photo.", icon=":material/handshake:")
        return
    st.subheader(f"Where you and the model disagreed: {len(positions)} of {len(cases)} photos", anchor=False)
    rows = []
    with st.spinner("Drawing where the model looked…"):
        for position in positions:
            case, answer = cases.iloc[position], answers[position]
            photo, grad_cam = disagreement_pictures(test, position)
            your_dx = f", {DIFFERENTIAL_NAMES[answer.diagnosis]}" if answer.diagnosis else ""
            rows.append({
                "#": position + 1, "photo": photo, "Grad-CAM": grad_cam,
                "truth": DIFFERENTIAL_NAMES.get(case["dx"], case["dx"]),
                "you": f"{'refer' if answer.refer else 'reassure'}, {answer.likelihood}/100{your_dx}",
                "model": f"{Call.at(case['probability'], threshold).short}, {percent(case['probability'])}",
                "who was right": (verdict := reader_study.who_was_right(case, answer, threshold)).short,
                "why": verdict.sentence,
                "confirmed by": reader_study.confirmed_by(case), "confirmation": reader_study.confirmation(case)})
    # Tall enough for every row: a clinician should not have to find a scroll bar inside the table.
    st.dataframe(pd.DataFrame(rows), hide_index=True, row_height=DISAGREEMENT_ROW_HEIGHT,
                 height=DISAGREEMENT_ROW_HEIGHT * len(rows) + 40,
                 # Who was right beside the truth, before the pictures: at 1,400 px every column shows.
                 column_order=["#", "truth", "who was right", "you", "model", "photo", "Grad-CAM", "confirmed by"],
                 column_config={"#": st.column_config.NumberColumn(width=40),
                                "truth": st.column_config.TextColumn(width=170),
                                "you": st.column_config.TextColumn(width=200),
                                "model": st.column_config.TextColumn(width=150),
                                "photo": st.column_config.ImageColumn(width="small"),
                                "who was right": st.column_config.TextColumn(
                                    width=210, help="Who made the right call on melanoma; the text below says why"),
                                "Grad-CAM": st.column_config.ImageColumn(width="small", help="Where the model "
                                                                         "looked: warm colours raised P(melanoma)")})
    # Also the table's text alternative, and all of it on a phone, where the table scrolls sideways.
    st.caption("As text: " + "; ".join(f"#{row['#']} {row['truth']} ({row['confirmation']}): you "
                                       f"{row['you']}, the model {row['model']}. Who was right: {row['why']}"
                                       for row in rows) + ".")
    st.caption("'model': its call (*refer*, or *below threshold*: below the referral threshold, which is not a "
               "rule-out) and P(melanoma). The test scores melanoma only: a referred basal cell carcinoma counts as a "
               "false alarm, though referring it is what a clinician would do. "
               "Grad-CAM++ (stage 3), drawn as on the Classify page: warm colours mark the regions that raised "
               "the model's P(melanoma); on the shipped model's fixed scale, a map without them means nothing "
               "raised it much. "
               "'Confirmed by' is how the diagnosis was established (histopathology, follow-up, expert consensus, "
               "confocal microscopy); the model never sees it.")


def disagreement_pictures(test: dict, position: int) -> tuple[str | None, str | None]:
    """The photo and its Grad-CAM overlay as small data URIs, made once per test."""
    from melanoma.images import ImageRejected, prepare_image
    from melanoma.patient import NO_INFORMATION, PatientInfoError

    if position not in test["grad_cam"]:
        case = test["cases"].iloc[position]
        bundle = state.require_bundle()
        try:
            prepared = prepare_image(Path(case["photo"]).read_bytes(), bundle.image_spec, display=True)
            patient = bundle.network_spec.patient_encoding.from_row(case) if bundle.takes_metadata else NO_INFORMATION
        except (OSError, ImageRejected, PatientInfoError):
            test["grad_cam"][position] = (None, None)
        else:  # drawn as the Classify page draws it by default
            grad_cam = GradCamView.default(bundle.weights_sha256).picture_of(prepared, patient)
            test["grad_cam"][position] = (thumbnail_uri(prepared.display, DISAGREEMENT_THUMBNAIL),
                                          thumbnail_uri(grad_cam, DISAGREEMENT_THUMBNAIL))
    return test["grad_cam"][position]


st.title("Test yourself against the model")
st.caption("A teaching exercise on photos with a confirmed diagnosis: not a certification, and the model is not "
           "a medical device.")
current_bundle = state.require_bundle()
current = st.session_state.get(TEST)
if current is None:
    setup(*state.require_reader_study_pools())
elif len(current["answers"]) < len(current["cases"]):
    question(current)
else:
    result(current, current_bundle)
