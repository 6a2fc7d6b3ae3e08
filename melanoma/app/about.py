"""About: a model card - what the model is, what it is for and not for, and where it came from."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pandas as pd
import streamlit as st

from melanoma import calibration
from melanoma.app import charts, state
from melanoma.call import mode_name
from melanoma.config import IMAGE_WIDTH
from melanoma.evaluate import predictive_values
from melanoma.novelty import NOVELTY_PERCENTILE
from melanoma.published import (
    differential_accuracy,
    differential_test_report,
    familiarity_reading,
    how_the_differential_is_made,
    other_clinics_statement,
    other_sources,
    refusal_reading,
    test_split_refusals,
)
from melanoma.reporting import INTENDED_USE, credit_lines, source_clinics, source_licence, source_title
from melanoma.ship_rule import RULE_IN_WORDS
from melanoma.wording import DIFFERENTIAL_NAMES

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
    return f"Input: the photo{alone}, at {'only ' if small else ''}{input_size(bundle)}{patient}{colours}.{detail}"


def input_size(bundle) -> str:
    """The one way the card gives the input size: height x width, as README and the config say (75x100)."""
    return f"{bundle.image_spec.height}x{bundle.image_spec.width} pixels (height x width)"


def origin(bundle) -> str:
    parents = bundle.provenance.parents
    continued = f", then trained on from this project's own {' and '.join(parents)}" if parents else ""
    sources = " and ".join(source_title(source) for source in bundle.sources)
    return (f"Trained from scratch (no pretrained weights){continued}, on {sources}"
            f"{' alone' if len(bundle.sources) == 1 else ''}.")


def training_data(bundle) -> str:
    """Where its photos came from, and what was measured elsewhere: "far worse" only where another
    source's whole AUC interval lies below the test AUC."""
    seen = "; ".join(f"{source_title(source)}, from {source_clinics(source) or 'clinics not recorded'}"
                     for source in bundle.sources)
    test_auc = bundle.metrics.test.roc_auc or 0.0
    elsewhere = other_sources(bundle)
    measured = ("its accuracy was measured and is far worse" if any(
        report.figures.intervals.roc_auc[1] < test_auc for report in elsewhere.values()) else
        "its accuracy was measured" if elsewhere else "its accuracy was not measured")
    return (f"**Training data.** Dermatoscopic photos of pigmented lesions: {seen}; mostly of fair-skinned "
            f"patients. On other clinics' dermatoscopes {measured} (below); on darker skin, phone photos or "
            "non-pigmented lesions it is unknown and likely worse.")


st.title("About this model: a teaching demo")
st.warning("A research and education demo. **Not a medical device and not a diagnosis**: do not use it "
           "to decide about a patient's care.", icon=":material/warning:")
st.markdown(f"""
**What it does.** Given a dermatoscopic photo of one pigmented skin lesion, a ResNet50 gives the
probability that it is a melanoma, and calls it *suspicious for melanoma - refer* at or above a fixed
threshold; below it, the call is *below the referral threshold — not a rule-out*. It also gives the
probabilities of seven diagnoses and the most similar training cases. Grad-CAM maps show
which regions raised the probability. A picture outside what it was trained on (not a lesion photo,
or a lesion photo from an unfamiliar camera or lighting) gets no call.

**Intended use.** {INTENDED_USE}
""")

bundle = state.require_bundle()
metrics = bundle.metrics
seen = ("one kind of camera, two clinics" if bundle.sources == ["ham10000"] else
        f"the clinics and cameras of {len(bundle.sources)} sources")
st.markdown(training_data(bundle))
st.markdown(f"""
**Known limitations.**
- {input_limitation(bundle)}
- {origin(bundle)} The network has seen {seen}, and few examples of rare presentations.
- The test metrics come from lesion-grouped test splits of the sources it was trained on (no lesion
  is in two splits): the same clinics and cameras as training. On other clinics' photos it is
  likely to do worse (below).
- The not-a-lesion check was measured on photos, renders and other medical images that are clearly
  not dermatoscopic; a clinical (non-dermatoscopic) close-up of skin is in no set we have, so how it
  treats one is unknown.
- Melanoma is a minority class; training balances it, which pushes the network's raw score far above
  the real rate (what the probability shown means is under the test metrics). The call uses the
  threshold, which was chosen for sensitivity, not 50%.
""")

scored = mode_name(metrics.image_only is not None)  # the mode the bundle's test figures were measured in
st.subheader("Thresholds: one per mode")
st.table(charts.modes_table(metrics.operating_points))
st.caption(f"Each card, table row and API answer names the threshold that made its call. Each threshold is the "
           f"{metrics.rule_in_words}."
           + (" A photo given without age, sex or site is called from the photo alone; with any of them, with "
              "patient data." if metrics.image_only is not None else ""))
left, right = st.columns(2)
with left:
    st.subheader(f"Test metrics ({scored}, pooled)")
    intervals = state.require_test_intervals()
    st.dataframe(charts.metrics_table(metrics.test, intervals), hide_index=True, width="stretch")
    st.caption(charts.interval_note(intervals))
with right:
    st.markdown(f"**Probability:** {calibration.probability_note(bundle)}")
    st.markdown(f"**Which model ships:** {RULE_IN_WORDS}")
    test = metrics.test
    values = predictive_values(test.sensitivity, test.specificity, test.melanoma_rate)
    if values["ppv"] is not None and values["npv"] is not None:  # a model that refers every photo has no NPV
        st.markdown(f"**What a call means** ({scored}, threshold {bundle.threshold:.1%}) at the test split's melanoma "
                    f"rate ({values['prevalence']:.1%}), on "
                    f"its clinics' photos: of lesions called *refer*, **{values['ppv']:.0%}** are melanoma (PPV); of "
                    f"those below the threshold, **{values['npv']:.1%}** are not (NPV). In primary care, where "
                    "melanoma is rarer, a *refer* is less often a melanoma; in a referral clinic, where it is more "
                    "common, more often, and a call below the threshold less safe.")

st.subheader("Model bundle")
made = bundle.provenance
# A static table: its values wrap on a phone, where a data grid's cells clip them.
st.table(pd.DataFrame([
    ("name", made.name),
    ("created", made.created),
    ("architecture", made.architecture),
    ("input", f"{input_size(bundle)}, colour"),
    ("seed of the lesion-grouped splits", str(made.split_seed)),
    ("training seed", str(made.training_seed)),
    ("trained on Keras backend", f"{made.backend} {made.trained_with.get(made.backend, '')}".strip()),
    ("version", bundle.version),
], columns=["property", "value"]).set_index("property"))
with st.expander("Developer details: package versions"):
    st.dataframe(pd.DataFrame([(package, made.trained_with.get(package, ""), installed(package))
                               for package in RUNTIME_PACKAGES],
                              columns=["package", "trained with", "running"]), hide_index=True)
st.markdown(f"**Weights sha256** `{made.weights_sha256}` (checked on every load)")

other = other_sources(bundle)
by_source = metrics.test_by_source
if by_source:  # several sources: each one's test split at the one threshold; no-call counts where evaluate recorded them
    rows = [(f"{source_title(source)} test split (trained on its clinics)", part,
             test_split_refusals(bundle, source))
            for source, part in by_source.items()]
else:
    test_refused = bundle.extras_info.not_a_lesion.refused.get("test") if bundle.extras_info else None
    rows = [(f"{source_title(bundle.sources[0])} test split (its own clinics)", metrics.test.with_intervals(intervals),
             test_refused and test_refused.would_refuse())]
rows += [(f"{source_title(source)} (other clinics, never trained on)", report.figures, report.not_a_lesion)
         for source, report in other.items()]
if by_source or other:
    st.subheader(("Each source's test photos" if by_source else "Its test photos")
                 + (", and clinics it was not trained on" if other else ""))
    st.table(charts.sources_table(rows))
    st.caption(f"ROC AUC, sensitivity and specificity of P(melanoma) {scored}, at its threshold of "
               f"{bundle.threshold:.1%}; in brackets, 95% lesion-bootstrap intervals.")
if other:
    found_at_home = (intervals and intervals.sensitivity) or (metrics.test.sensitivity,) * 2
    for source, report in other.items():
        elsewhere = report.figures
        far_worse = elsewhere.intervals.sensitivity[1] < found_at_home[0]
        st.markdown(f"On **{source_title(source)}**'s {elsewhere.n_images:,} photos the model finds "
                    f"**{elsewhere.sensitivity:.0%}** of "
                    f"the {elsewhere.n_melanoma} melanomas at its threshold, against {metrics.test.sensitivity:.0%} "
                    f"on its own test split; its ROC AUC is {elsewhere.roc_auc:.2f} (chance: 0.50)."
                    + (" **It finds far fewer melanomas on other clinics' photos than on its own: there, a call "
                       "below the threshold says even less.**" if far_worse else ""))
    st.caption("Measured by this project on every photo of each archive ("
               + ", ".join(f"{source_title(source)}: {report.day}" for source, report in other.items())
               + "). Every photo is scored, including those the app would not assess; in brackets, 95% intervals "
               "from resampling lesions with replacement.")
st.subheader("Clinics it was not trained on")
st.markdown(other_clinics_statement(bundle))

extras = bundle.extras_info
if extras:
    st.subheader("Not-a-lesion check, differential and similar cases")
    refusal, similar = extras.not_a_lesion, extras.similar_cases
    refused = refusal.refused["test"]
    not_a_lesion = (f"a picture that looks less like the training photos than all but about 1 in "
                    f"{round(100 / (100 - NOVELTY_PERCENTILE))} of the model's own validation photos do, or that has "
                    "almost no colour, gets no call. On the test split that refuses "
                    f"{refused.refused} of {refused.images:,} lesion photos ({refused.melanoma_refused} of "
                    f"{refused.melanoma} melanomas); each source's test photos refused: the no-call row of its "
                    "table above." if refusal.active else
                    f"this bundle has no such check ({refusal.rule}).")
    reading = refusal_reading(bundle)
    not_a_lesion += f" {reading}" if reading else ""
    accuracy = differential_accuracy(bundle)
    if refusal.active:
        with st.expander("How the not-a-lesion check decides, in technical terms"):
            st.markdown(f"No call for a picture with a {refusal.rule}. The score is the Mahalanobis distance of "
                        "the network's stage-3 activations from the training photos'"
                        + (f"; {refusal.classifier_rule}, a logistic regression on the same activations"
                           if refusal.classifier_rule else "") + "; see docs/limits.md.")
    st.markdown(
        f"- **Not a lesion:** {not_a_lesion}\n"
        f"- **Differential:** {how_the_differential_is_made(bundle)}."
        + (f" {accuracy} Per-diagnosis AUC below." if accuracy else "") + "\n"
        f"- **Similar cases:** the {similar.k} nearest of {similar.index_images:,} "
        f"training photos; as a vote (share of melanoma) their pooled test ROC AUC is "
        f"{charts.number(similar.vote_auc)} against the network's {charts.number(similar.network_auc)} (its "
        "P(melanoma) from the photo alone).")
    measured = differential_test_report(bundle)
    if measured:
        st.dataframe(charts.differential_auc_table(measured[0], DIFFERENTIAL_NAMES), hide_index=True, width="stretch")
        st.caption(f"One-vs-rest ROC AUC of each diagnosis's share in the differential: {measured[1]}.")
        st.plotly_chart(charts.diagnosis_confusion_matrix(measured[0], DIFFERENTIAL_NAMES))

familiarity = bundle.familiarity
if familiarity:
    st.subheader("How familiar a photo looks")
    reading = familiarity_reading(bundle)
    st.markdown(
        "The not-a-lesion check's score also bands accepted photos into thirds, cut at the validation photos' "
        "terciles, by how unlike the training photos they look (camera, lighting, colours). "
        + ("On the test photos below, the model's calls were **measured less accurate in the least familiar third** "
           "on " + " and ".join(source_title(source) for source in reading.less_reliable_where_unfamiliar)
           + "'s photos: there, a card says so." if reading.less_reliable_where_unfamiliar else
           "On the test photos below, the model's calls were **not** measured less accurate in the least familiar "
           "third of any source (the AUC intervals overlap), so a card says nothing of its photo's band; the API "
           "gives it as `familiarity`."))
    st.table(charts.familiarity_table(familiarity, {source: source_title(source) for source in bundle.sources})
             .set_index(["test photos", "band"]))
    st.caption(f"ROC AUC of P(melanoma) {mode_name(bundle.takes_metadata)} in each band, with 95% lesion-bootstrap "
               f"intervals; measured {familiarity.date} (`python -m melanoma familiarity --record`).")

st.subheader("Licence")
licences = ", ".join(f"{source_title(source)}'s {source_licence(source) or 'unknown licence'}"
                     for source in bundle.sources)
single = len(bundle.sources) == 1
st.markdown(f"The code is under the MIT licence. **The model weights are trained on "
            f"{' and '.join(source_title(source) for source in bundle.sources)} and come under "
            + (f"its licence, {source_licence(bundle.sources[0]) or 'unknown'}" if single
               else f"their licences ({licences})")
            + ":** non-commercial use only, with attribution"
            + (", and anything derived from them under the same terms (share-alike)."
               if "ham10000" in bundle.sources else "."))

st.subheader("Data citation")
for line in credit_lines(bundle.sources):
    st.markdown(line + ".")
