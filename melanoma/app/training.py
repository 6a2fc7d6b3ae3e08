"""Training: learning curves, test metrics, ROC, and a threshold explorer on the test split."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from melanoma.app import charts, state
from melanoma.app.charts import rate
from melanoma.call import mode_name
from melanoma.evaluate import metrics_at
from melanoma.published import differential_test_report, how_the_differential_is_made
from melanoma.records import SplitFigures
from melanoma.reporting import source_title
from melanoma.wording import DIFFERENTIAL_NAMES

THRESHOLD_SLIDER_TOP = 0.3
IMAGE_ONLY_COLUMN = "probability_image_only"  # the test split's P(melanoma) from the photo alone

st.title("Training and evaluation")
bundle = state.require_bundle()
metrics, config = bundle.metrics, bundle.settings
epochs_run = "?" if metrics.epochs_run is None else metrics.epochs_run
best_epoch = "?" if metrics.best_epoch is None else metrics.best_epoch
kept = bundle.network_spec.diagnosis_head
diagnosis_head = (f" A second head learned the 7 diagnoses alongside (loss weight {config.diagnosis_loss_weight}); "
                  + ("it ships with the network and gives the cards' differential." if kept else
                     "it was dropped after training.")) if config.diagnosis_loss_weight else ""
recipe = ["rotation, zoom and colour augmentation"]
if config.vignette_probability:
    recipe.append(f"a dermatoscope's round field drawn on {config.vignette_probability:.0%} of the photos")
if config.camera_jitter:
    recipe.append(f"camera shifts (white balance, gamma, blur) of strength {config.camera_jitter}")
inputs = ("; colours normalised per photo (Shades of Gray)" if config.colour_constancy else "") + (
    f"; the patient's age, sex and site as inputs, each hidden at random {config.metadata_hide_probability:.0%} "
    "of the time" if config.metadata else "")
st.markdown(
    f"ResNet50 trained from scratch for **{epochs_run} epoch{'' if epochs_run == 1 else 's'}** (weights of "
    f"epoch {best_epoch}, the best by validation), batch {config.batch_size}, "
    f"AdamW at learning rate {config.learning_rate}, on class-balanced epochs with {', '.join(recipe)}"
    f"{inputs}.{diagnosis_head}")
if (metrics.epochs_run or 0) < (metrics.epochs_planned or 0):
    st.warning(f"Interim model: training stopped after {metrics.epochs_run} of "
               f"{metrics.epochs_planned} planned epochs (the learning rate had not finished decaying). "
               "The run resumes from its checkpoint; the final bundle replaces this one.",
               icon=":material/hourglass_top:")

history = bundle.history()
for column, (metric, title) in zip(st.columns(3), (("loss", "Loss"), ("accuracy", "Accuracy"),
                                                    ("auc", "ROC AUC"))):
    column.plotly_chart(charts.training_curve(history, metric, title))
sources = {source: source_title(source) for source in bundle.sources}
if any(f"val_auc_{source}" in history for source in sources):
    st.plotly_chart(charts.validation_auc_by_source(history, sources))
    st.caption(f"Each source's validation photos on their own. The weights that ship are epoch "
               f"{best_epoch}'s, the best by the mean of the sources' validation AUCs.")
st.caption("Training figures are on balanced, augmented epochs (half melanoma); validation figures on the "
           "validation split at its natural melanoma rate, so the two accuracies are not comparable. "
           "Accuracy is at 0.5, not at the operating threshold.")
with st.expander("Training settings and per-epoch history"):
    st.dataframe(history, hide_index=True, width="stretch")
    st.dataframe(pd.DataFrame([(name, str(value)) for name, value in bundle.train_config.items()],
                              columns=["setting", "value"]),
                 hide_index=True, width="stretch")

test = metrics.test
scored = mode_name(metrics.image_only is not None)  # the mode the bundle's test figures were measured in
st.subheader(f"Test split: {test.n_images} images, {test.n_melanoma} melanoma")
st.markdown(f"Lesions the model never saw in training or in choosing its thresholds. One threshold per mode, each "
            f"the {metrics.rule_in_words}:")
st.table(charts.modes_table(metrics.operating_points))

by_source = metrics.test_by_source
if by_source:
    st.markdown(f"**Each source's test photos**, P(melanoma) {scored} at its threshold of {bundle.threshold:.1%} "
                "(95% lesion-bootstrap intervals)")
    st.table(charts.sources_table([("all sources", test.with_intervals(state.require_test_intervals()), None),
                                   *((sources[s], part, None) for s, part in by_source.items())]))

st.subheader("Threshold explorer")
split = bundle.test_split()
# The test split records P(melanoma) in each mode the network has; the explorer works on one.
points = {mode_name(point.with_patient_data): point for point in metrics.operating_points
          if point.with_patient_data or IMAGE_ONLY_COLUMN in split or metrics.image_only is None}
mode = st.radio("Mode", list(points), index=len(points) - 1, horizontal=True,
                help="The photo alone (no age, sex or site given), or with the patient's data: each has its own "
                     "threshold, chosen on validation by the same rule.") if len(points) > 1 else next(iter(points))
point = points[mode]
column = IMAGE_ONLY_COLUMN if (metrics.image_only is not None and not point.with_patient_data) else "probability"
# Calibrated probabilities sit mostly below 0.3 (the melanoma rate is about 11%): a 0-1 slider would
# put the whole useful range into its first third.
slider_top = max(THRESHOLD_SLIDER_TOP, round(2 * point.threshold, 2))
threshold = st.slider(f"Call suspicious from P(melanoma), {mode}, ≥", 0.0, slider_top,
                      value=min(point.threshold, slider_top), step=0.001, format="%.3f", key=f"explore-{mode}",
                      help="Lower finds more melanomas (sensitivity) and refers more benign lesions. Starts at the "
                           "mode's own threshold.")
labels, probabilities = split["label"].to_numpy(), split[column].to_numpy()
explored = SplitFigures.from_dict(metrics_at(labels, probabilities, threshold))
at_model = SplitFigures.from_dict(metrics_at(labels, probabilities, point.threshold))
(tn, fp), (fn, tp) = explored.confusion_matrix


def change(figure: str) -> str | None:
    now, shipped = explored.figure(figure), at_model.figure(figure)
    if now is None or shipped is None or now == shipped:
        return None
    return f"{100 * (now - shipped):+.1f} percentage points"


columns = st.columns(4)
columns[0].metric("Sensitivity", rate(explored.sensitivity), change("sensitivity"))
columns[1].metric("Specificity", rate(explored.specificity), change("specificity"))
columns[2].metric("Melanomas missed", f"{fn} of {fn + tp}")
columns[3].metric("Referred", f"{tp + fp} of {len(split)}")

left, right = st.columns(2)
roc = metrics.image_only.test_roc if column == IMAGE_ONLY_COLUMN else metrics.test_roc
left.plotly_chart(charts.roc_curve(roc, at_model.roc_auc,
                                   (explored.specificity, explored.sensitivity),
                                   f"pooled test split, P(melanoma) {mode}"))
right.plotly_chart(charts.confusion_matrix(explored.confusion_matrix, f"Confusion matrix at {threshold:.3f}"))

table_column, calibration_column = st.columns(2)
with table_column:
    st.markdown(f"**Test metrics, pooled: P(melanoma) {scored} at its threshold of {bundle.threshold:.1%}**")
    intervals = state.require_test_intervals()
    st.dataframe(charts.metrics_table(test, intervals), hide_index=True, width="content")
    st.caption(charts.interval_note(intervals))
calibration = metrics.calibration
with calibration_column:
    if calibration and calibration.platt:
        st.plotly_chart(charts.reliability_curve(calibration))
        st.caption(f"Training on balanced epochs pushes the network's raw score far above the real melanoma "
                   f"rate. A logistic map fitted on {calibration.fitted_on} turns it into the "
                   f"probability shown. The map keeps the order, so AUC and the calls are unchanged.")
    else:
        why = ("no order-keeping map could be fitted on its validation split" if calibration
               else "it was made before calibration")
        st.info(f"This bundle's probabilities are the network's raw scores ({why}): training on balanced "
                "epochs puts them above the real melanoma rate. Read them against the threshold.",
                icon=":material/info:")

extras = bundle.extras_info
if extras:
    st.subheader("Differential and similar cases")
    differential, measured = differential_test_report(bundle)
    similar = extras.similar_cases
    # A static table wraps the long names, so a phone shows the AUC column whole (a grid clipped it).
    st.table(charts.differential_auc_table(differential, DIFFERENTIAL_NAMES), hide_index=True)
    st.caption(f"One-vs-rest ROC AUC per diagnosis: {measured}. The differential: "
               f"{how_the_differential_is_made(bundle)}.")
    st.markdown(f"**Melanoma ROC AUC on the pooled test split** of the {similar.k} similar cases' vote (share of "
                f"melanoma among them): **{charts.number(similar.vote_auc)}**, against the network's "
                f"**{charts.number(similar.network_auc)}** (its P(melanoma) from the photo alone).")
    st.plotly_chart(charts.diagnosis_confusion_matrix(differential, DIFFERENTIAL_NAMES))
