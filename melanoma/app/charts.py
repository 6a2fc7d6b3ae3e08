"""Plotly figures and tables the pages share: counts, training curves, ROC, calibration, confusion matrix."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from melanoma.call import mode_name, suspicious, threshold_short
from melanoma.records import (
    TEST_SET_SUFFIX,
    CalibrationFigures,
    DifferentialFigures,
    Familiarity,
    Intervals,
    OperatingPoint,
    Roc,
    SplitFigures,
    WouldRefuse,
)
from melanoma.reporting import percent

MELANOMA_COLOUR = "#c0392b"
OTHER_COLOUR = "#5b7c99"
VALIDATION_COLOUR = "#e67e22"
GROUP_COLOURS = (OTHER_COLOUR, "#2a9d8f", "#8e7cc3")  # red stays reserved for melanoma
HEIGHT = 340
LABEL_HEADROOM = 1.18  # axis length as a multiple of the longest bar, so its label fits outside it
CORRECT_COLOUR = "#d8eadf"
FALSE_ALARM_COLOUR = "#f6d7a7"
MISSED_COLOUR = "#e8a39a"  # a missed melanoma is the costliest cell: the strongest shade
METRIC_LABELS = {
    "roc_auc": "ROC AUC",
    "sensitivity": "Sensitivity (melanoma found)",
    "specificity": "Specificity (benign cleared)",
    "precision": "Precision (PPV)",
    "f1": "F1",
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
}


def _layout(figure: go.Figure, title: str, **layout) -> go.Figure:
    settings = dict(title=title, height=HEIGHT, margin=dict(l=10, r=10, t=50, b=10))
    figure.update_layout(**{**settings, **layout})
    return figure


def counts_bar(counts: dict, title: str, labels: dict | None = None, highlight: str | None = None,
               horizontal: bool = False) -> go.Figure:
    """One bar per key, largest first; `highlight` (a key) is drawn in the melanoma colour."""
    items = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    names = [(labels or {}).get(key, key) for key, _ in items]
    values = [value for _, value in items]
    colours = [MELANOMA_COLOUR if key == highlight else OTHER_COLOUR for key, _ in items]
    if horizontal:
        figure = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colours, text=values,
                                  textposition="outside", textangle=0, cliponaxis=False))
        figure.update_yaxes(autorange="reversed", automargin=True)
        # Room right of the longest bar for its label, which would otherwise be clipped ("6012" -> "601").
        figure.update_xaxes(range=[0, max(values, default=1) * LABEL_HEADROOM])
        return _layout(figure, title, xaxis_title="images", height=max(HEIGHT, 60 + 26 * len(items)))
    figure = go.Figure(go.Bar(x=names, y=values, marker_color=colours, text=values, textposition="outside",
                              textangle=0, cliponaxis=False))
    return _layout(figure, title, yaxis_title="images")


def grouped_bars(groups: dict[str, dict], title: str) -> go.Figure:
    """groups = {legend name: {category: count}}: one bar per category in each group."""
    figure = go.Figure()
    for (name, counts), colour in zip(groups.items(), GROUP_COLOURS):
        figure.add_bar(name=name, x=list(counts), y=list(counts.values()), marker_color=colour,
                       text=list(counts.values()), textposition="outside", textangle=0, cliponaxis=False)
    return _layout(figure, title, barmode="group", yaxis_title="images",
                   legend=dict(orientation="h", y=-0.15))


def age_histogram(age_counts: dict) -> go.Figure:
    ages = sorted((int(age), count) for age, count in age_counts.items() if str(age).lstrip("-").isdigit())
    figure = go.Figure(go.Bar(x=[age for age, _ in ages], y=[count for _, count in ages],
                              marker_color=OTHER_COLOUR))
    return _layout(figure, "Age at diagnosis", xaxis_title="age (years, as recorded in 5-year steps)",
                   yaxis_title="images", bargap=0.05)


def training_curve(history: pd.DataFrame, metric: str, title: str) -> go.Figure:
    """Train vs validation for one metric per epoch; columns `metric` and `val_<metric>`."""
    figure = go.Figure()
    for column, name, colour in ((metric, "train", OTHER_COLOUR), (f"val_{metric}", "validation", VALIDATION_COLOUR)):
        if column in history:
            figure.add_scatter(x=history["epoch"], y=history[column], mode="lines+markers", name=name,
                               line_color=colour)
    return _layout(figure, title, xaxis_title="epoch", yaxis_title=metric,
                   legend=dict(orientation="h", y=-0.25))


def validation_auc_by_source(history: pd.DataFrame, sources: dict[str, str]) -> go.Figure:
    """Validation ROC AUC per epoch, one line per source (`sources`: column suffix -> legend name)."""
    figure = go.Figure()
    for (source, name), colour in zip(sources.items(), GROUP_COLOURS):
        if f"val_auc_{source}" in history:
            figure.add_scatter(x=history["epoch"], y=history[f"val_auc_{source}"], mode="lines+markers",
                               name=name, line_color=colour)
    return _layout(figure, "Validation ROC AUC by source", xaxis_title="epoch", yaxis_title="ROC AUC",
                   legend=dict(orientation="h", y=-0.25))


def roc_curve(roc: Roc | None, auc: float | None, operating_point: tuple[float, float] | None = None,
              scored: str = "test split") -> go.Figure:
    """`roc` (None: not recorded) has lists fpr and tpr; `operating_point` is (specificity, sensitivity);
    `scored` names the set and the score the curve is of."""
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="grey"))
    label = scored if auc is None else f"{scored} (AUC {auc:.3f})"
    figure.add_scatter(x=roc.fpr if roc else [], y=roc.tpr if roc else [], mode="lines", name=label,
                       line=dict(color=MELANOMA_COLOUR, width=3))
    if operating_point is not None and None not in operating_point:
        specificity, sensitivity = operating_point
        figure.add_scatter(x=[1 - specificity], y=[sensitivity], mode="markers", name="threshold",
                           marker=dict(size=13, color="black", symbol="x"))
    figure.update_xaxes(range=[0, 1], title="1 - specificity (false positive rate)", constrain="domain")
    figure.update_yaxes(range=[0, 1.02], title="sensitivity (true positive rate)", scaleanchor="x")
    return _layout(figure, "ROC curve", height=420, legend=dict(orientation="h", y=-0.3))


def reliability_curve(calibration: CalibrationFigures) -> go.Figure:
    """Observed melanoma rate against the mean probability given, in equal-count bins of the test
    split: the network's raw scores and the calibrated probabilities the app shows."""
    return reliability_lines(((calibration.test_before, "raw score", OTHER_COLOUR),
                              (calibration.test_after, "calibrated (shown)", MELANOMA_COLOUR)),
                             "Calibration, test split", "the test images")


def reliability_lines(lines, title: str, photos: str) -> go.Figure:
    """One reliability line per (Reliability or None, name, colour), beside the diagonal; `photos` says
    whose tenths the bins are."""
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                       line=dict(dash="dot", color="grey"))
    for part, name, colour in lines:
        if part:
            figure.add_scatter(x=part.predicted, y=part.observed, mode="lines+markers",
                               name=f"{name}, Brier score {part.brier:.3f} (lower: closer to the truth)",
                               line=dict(color=colour, width=3))
    figure.update_xaxes(range=[0, 1], title=f"mean P(melanoma) given, per tenth of {photos}")
    figure.update_yaxes(range=[0, 1.02], title="share that were melanoma")
    return _layout(figure, title, height=420, legend=dict(orientation="h", y=-0.3))


def confusion_matrix(matrix: list[list[int]], title: str) -> go.Figure:
    """matrix rows: true not-melanoma, melanoma; columns: called the same."""
    names = ["not melanoma", "melanoma"]
    cell_names = [["true negative", "false positive"], ["false negative", "true positive"]]
    text = [[f"{cell_names[i][j]}<br><b>{matrix[i][j]}</b>" for j in range(2)] for i in range(2)]
    # Shaded by what a cell means, not by its count: the rare missed melanomas would be palest.
    kinds = [[0, 1], [2, 0]]
    colours = [[0, CORRECT_COLOUR], [0.5, CORRECT_COLOUR], [0.5, FALSE_ALARM_COLOUR], [0.75, FALSE_ALARM_COLOUR],
               [0.75, MISSED_COLOUR], [1, MISSED_COLOUR]]
    figure = go.Figure(go.Heatmap(z=kinds, x=names, y=names, text=text, texttemplate="%{text}", zmin=0, zmax=2,
                                  textfont=dict(size=15), colorscale=colours, showscale=False, hoverinfo="skip"))
    figure.update_xaxes(title="called by the model", tickangle=0)
    figure.update_yaxes(title="truth", autorange="reversed", tickangle=-90)
    return _layout(figure, title, height=400)


def number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def rate(value) -> str:
    """A sensitivity, specificity or share as a percentage with one decimal."""
    return "n/a" if value is None else f"{value:.1%}"


def differential_auc_table(report: DifferentialFigures, names: dict[str, str]) -> pd.DataFrame:
    """Per diagnosis: its one-vs-rest test AUC and how many test images had it."""
    counts = [sum(row) for row in report.confusion_matrix]
    return pd.DataFrame([{"diagnosis": names.get(dx, dx), "test images": count, "ROC AUC": number(report.roc_auc[dx])}
                         for dx, count in zip(report.classes, counts)])


def metrics_table(metrics: SplitFigures, intervals: Intervals | None = None) -> pd.DataFrame:
    """The headline metrics of one split as a table (value None: undefined), with a column of
    confidence intervals where `intervals` (the lesion bootstrap's) gives them."""
    def interval(key):
        bound = intervals.of(key) if intervals else None
        return "" if bound is None else f"{bound[0]:.3f} - {bound[1]:.3f}"

    rows = [{"metric": label, "value": number(metrics.figure(key)), "interval": interval(key)}
            for key, label in METRIC_LABELS.items()]
    rows += [{"metric": "Threshold", "value": number(metrics.threshold), "interval": ""},
             {"metric": "Images (melanoma)", "value": f"{metrics.n_images} ({metrics.n_melanoma})", "interval": ""}]
    table = pd.DataFrame(rows)
    if not intervals:
        return table.drop(columns="interval")
    return table.rename(columns={"interval": f"{intervals.level:.0%} interval"})


def sources_table(rows: list[tuple[str, SplitFigures, WouldRefuse | None]]) -> pd.DataFrame:
    """One column per data source, so that a phone shows it whole: (label, its metrics at the
    threshold, the not-a-lesion counts where measured, else None); each figure with its interval
    where the metrics carry one (`intervals`). The no-call row appears where any source has counts."""
    def with_interval(metrics: SplitFigures, key: str) -> str:
        bound = metrics.intervals.of(key) if metrics.intervals else None
        value = number(metrics.figure(key))
        if not bound or None in bound:  # no interval where the draws could not measure one (too few lesions)
            return value
        return f"{value} ({bound[0]:.3f} - {bound[1]:.3f})"

    def refused(counts: WouldRefuse | None) -> str:
        return "n/a" if counts is None else f"{counts.would_refuse:,} ({counts.would_refuse_melanoma})"

    table = pd.DataFrame([{"photos": label, "images (melanoma)": f"{metrics.n_images:,} ({metrics.n_melanoma})",
                           "ROC AUC": with_interval(metrics, "roc_auc"),
                           "sensitivity": with_interval(metrics, "sensitivity"),
                           "specificity": with_interval(metrics, "specificity"),
                           "no call (melanoma)": refused(counts)}
                          for label, metrics, counts in rows])
    if all(counts is None for _, _, counts in rows):
        table = table.drop(columns="no call (melanoma)")
    return table.set_index("photos").T


def modes_table(points: tuple[OperatingPoint, ...]) -> pd.DataFrame:
    """Each mode a photo can be called in (`Metrics.operating_points`), one column each so that a phone
    shows it whole: its threshold, and what that threshold did on the validation photos (where it was
    chosen) and on the test photos."""
    def figure(split: SplitFigures | None, name: str) -> str:
        return rate(None if split is None else split.figure(name))

    return pd.DataFrame([{"mode": mode_name(point.with_patient_data), "threshold": f"{point.threshold:.1%}",
                          "validation sensitivity": figure(point.validation, "sensitivity"),
                          "validation specificity": figure(point.validation, "specificity"),
                          "test sensitivity": figure(point.test, "sensitivity"),
                          "test specificity": figure(point.test, "specificity"),
                          "test ROC AUC": number(None if point.test is None else point.test.roc_auc)}
                         for point in points]).set_index("mode").T


def familiarity_table(familiarity: Familiarity, titles: dict[str, str]) -> pd.DataFrame:
    """Each familiarity band of each trained source's test photos: its share of the accepted photos, its
    melanomas and the model's ROC AUC inside it with its interval (`familiarity --record`)."""
    rows = []
    for name, bands in familiarity.sets.items():
        if not name.endswith(TEST_SET_SUFFIX):
            continue
        source = name.removesuffix(TEST_SET_SUFFIX)
        for band, measured in bands.items():
            bounds = measured.roc_auc_interval
            rows.append({"test photos": titles.get(source, source), "band": band,
                         "share of accepted": f"{measured.share_of_accepted:.0%}",
                         "ROC AUC (95% interval)": number(measured.roc_auc) + (
                             f" ({bounds[0]:.3f} - {bounds[1]:.3f})" if bounds and None not in bounds else "")})
    return pd.DataFrame(rows)


def interval_note(intervals: Intervals) -> str:
    return (f"{intervals.level:.0%} intervals: the test split's {intervals.n_lesions:,} lesions resampled "
            f"with replacement {intervals.resamples:,} times, so they show how much the figures could "
            "move on another set of lesions like these.")


def probability_bar(probability: float, threshold: float, suspicious: bool, mode: str | None = None) -> go.Figure:
    """P(melanoma) as a bar on 0-100% with the referral threshold marked on it (named with its mode where
    given), coloured by the call already made (`suspicious`)."""
    colour = MELANOMA_COLOUR if suspicious else OTHER_COLOUR
    figure = go.Figure(go.Bar(x=[100 * probability], y=[""], orientation="h", marker_color=colour,
                              hoverinfo="skip"))
    # The label above the plot, on the side of the line with room for it: inside, it would run over
    # the bar; on the other side, a narrow column would clip it.
    figure.add_vline(x=100 * threshold, line=dict(color="black", width=2, dash="dash"),
                     annotation_text=f"referral threshold {percent(threshold)}" + (f" ({mode})" if mode else ""),
                     annotation_position="top right" if threshold < 0.5 else "top left", annotation_yanchor="bottom")
    # Ticks every 25%, fixed: left to Plotly, a phone-width bar showed only 0% and 50%.
    figure.update_xaxes(range=[0, 100], tickvals=[0, 25, 50, 75, 100], ticktext=["0%", "25%", "50%", "75%", "100%"],
                        fixedrange=True)
    figure.update_yaxes(fixedrange=True)
    # Room on the right for the last tick's label ("100%"), which Plotly would otherwise drop.
    return _layout(figure, None, height=110, margin=dict(l=10, r=28, t=30, b=10), showlegend=False)


def differential_bar(differential: dict[str, float]) -> go.Figure:
    """The 7 diagnoses' probabilities, most likely on top; melanoma in its colour."""
    names, values = list(differential), [100 * p for p in differential.values()]
    colours = [MELANOMA_COLOUR if name == "melanoma" else OTHER_COLOUR for name in names]
    figure = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colours,
                              text=[percent(p) for p in differential.values()], textposition="outside",
                              cliponaxis=False, hoverinfo="skip"))
    # The longest name, wrapped, so a narrow column does not clip it.
    figure.update_yaxes(autorange="reversed", automargin=True, tickvals=names,
                        ticktext=[name.replace(" / ", " /<br>") for name in names])
    figure.update_xaxes(range=[0, 100 * LABEL_HEADROOM], ticksuffix="%", dtick=50)
    return _layout(figure, "Differential: the 7 diagnoses", height=300, margin=dict(l=10, r=10, t=40, b=10))


def batch_risk_bars(rows: list[tuple[str, float, float, bool]]) -> go.Figure:
    """(label, P(melanoma), threshold of the mode it was called in, whether that mode had patient data)
    per assessed photo, in the given order (highest risk on top), each bar coloured by its call
    (melanoma/call.py) against its own threshold, which is marked on its row and named under its label:
    a bundle that takes patient data has one threshold per mode, so photos beside each other can be
    judged against different ones. Each bar gets its own row, however many share a file name (the
    labels must differ)."""
    labels = [label for label, _, _, _ in rows]
    if len(set(labels)) != len(labels):
        raise ValueError("each bar needs its own label: two rows with one label would be stacked into one bar")
    probabilities, thresholds = [p for _, p, _, _ in rows], [threshold for _, _, threshold, _ in rows]
    ticks = [f"{label}<br><span style='font-size:11px'>threshold {threshold_short(threshold, with_patient_data)}"
             "</span>" for label, _, threshold, with_patient_data in rows]
    called = suspicious(probabilities, thresholds)
    figure = go.Figure(go.Bar(x=[100 * p for p in probabilities], y=ticks, orientation="h", name="P(melanoma)",
                              marker_color=[MELANOMA_COLOUR if call else OTHER_COLOUR for call in called],
                              text=[percent(p) for p in probabilities], textposition="outside", cliponaxis=False,
                              hoverinfo="skip", showlegend=False))
    figure.add_scatter(x=[100 * threshold for threshold in thresholds], y=ticks, mode="markers",
                       name="its referral threshold", hoverinfo="skip",
                       marker=dict(symbol="line-ns", size=26, line=dict(width=3, color="black")))
    figure.update_yaxes(autorange="reversed", automargin=True, type="category")
    figure.update_xaxes(range=[0, 100 * LABEL_HEADROOM], ticksuffix="%")
    return _layout(figure, "P(melanoma) by photo, highest first", height=90 + 42 * len(rows), showlegend=False)


def _wrapped(name: str, width: int = 12) -> str:
    """A diagnosis name broken into lines of about `width` characters, for a narrow axis."""
    lines, line = [], ""
    for word in name.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


def diagnosis_confusion_matrix(report: DifferentialFigures, names: dict[str, str]) -> go.Figure:
    """The differential's 7x7 confusion matrix (rows: truth; columns: most likely diagnosis), shaded by
    the share of each true diagnosis, so rare diagnoses are as visible as naevi. The names are wrapped
    so that on a phone the names do not squeeze the matrix to a strip."""
    labels = [_wrapped(names.get(dx, dx)) for dx in report.classes]
    matrix = report.confusion_matrix
    shares = [[count / max(sum(row), 1) for count in row] for row in matrix]
    figure = go.Figure(go.Heatmap(z=shares, x=labels, y=labels, text=matrix, texttemplate="%{text}",
                                  colorscale="Blues", zmin=0, zmax=1, showscale=False, hoverinfo="skip"))
    figure.update_xaxes(title="most likely diagnosis", tickangle=-90, automargin=True, tickfont=dict(size=10))
    figure.update_yaxes(title="confirmed", autorange="reversed", automargin=True, tickfont=dict(size=10))
    return _layout(figure, "Differential on the test split", height=560)


ROC_MARGIN = 0.04


def reader_study_roc(model_roc: dict, model_auc: float | None, model_point: tuple, your_roc: dict,
                     your_auc: float | None, your_point: tuple, anchor: tuple | None = None) -> go.Figure:
    """The model's ROC curve on the visitor's photos, with the visitor's own (from their likelihoods),
    both operating points as (specificity, sensitivity), and a published readers' point."""
    def auc_label(name, auc):
        return name if auc is None else f"{name} (AUC {auc:.2f})"

    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="grey"))
    figure.add_scatter(x=model_roc.get("fpr", []), y=model_roc.get("tpr", []), mode="lines",
                       name=auc_label("model", model_auc), line=dict(color=MELANOMA_COLOUR, width=3))
    figure.add_scatter(x=your_roc.get("fpr", []), y=your_roc.get("tpr", []), mode="lines",
                       name=auc_label("you, from your likelihoods", your_auc),
                       line=dict(color=OTHER_COLOUR, width=3, dash="dash"))
    points = [(model_point, "model's call at its threshold", MELANOMA_COLOUR, "x"),
              (your_point, "your refer / reassure calls", OTHER_COLOUR, "circle")]
    if anchor is not None:
        points.append((anchor[0], anchor[1], "black", "diamond-open"))
    for (specificity, sensitivity), name, colour, symbol in points:
        if specificity is not None and sensitivity is not None:
            figure.add_scatter(x=[1 - specificity], y=[sensitivity], mode="markers", name=name,
                               marker=dict(size=14, color=colour, symbol=symbol, line=dict(width=2, color=colour)))
    # A little room past 0 and 1, so that a marker at sensitivity 1 or specificity 1 shows whole.
    figure.update_xaxes(range=[-ROC_MARGIN, 1 + ROC_MARGIN], title="1 - specificity (other lesions referred)",
                        constrain="domain")
    figure.update_yaxes(range=[-ROC_MARGIN, 1 + ROC_MARGIN], title="sensitivity (melanomas referred)", scaleanchor="x")
    return _layout(figure, "ROC curve: you and the model on the same photos", height=520,
                   legend=dict(orientation="h", y=-0.25))


def roc_beside_published(roc: dict, auc: float | None, operating_point: tuple, published: dict) -> go.Figure:
    """A clinic's ROC curve (`evaluate.roc_points`) with the shipped threshold's point as (specificity,
    sensitivity), beside the model's published test curves (`local_check.published_curves`)."""
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="grey"))
    for curve, colour in zip(published.values(), GROUP_COLOURS):
        name = curve["title"] if curve["roc_auc"] is None else f"{curve['title']} (AUC {curve['roc_auc']:.3f})"
        figure.add_scatter(x=curve["fpr"], y=curve["tpr"], mode="lines", name=f"published: {name}",
                           line=dict(color=colour, width=2, dash="dash"))
    figure.add_scatter(x=roc.get("fpr", []), y=roc.get("tpr", []), mode="lines",
                       name="your photos" if auc is None else f"your photos (AUC {auc:.3f})",
                       line=dict(color=MELANOMA_COLOUR, width=3))
    specificity, sensitivity = operating_point
    if specificity is not None and sensitivity is not None:
        figure.add_scatter(x=[1 - specificity], y=[sensitivity], mode="markers", name="shipped threshold, your photos",
                           marker=dict(size=13, color="black", symbol="x"))
    figure.update_xaxes(range=[-ROC_MARGIN, 1 + ROC_MARGIN], title="1 - specificity (other lesions referred)",
                        constrain="domain")
    figure.update_yaxes(range=[-ROC_MARGIN, 1 + ROC_MARGIN], title="sensitivity (melanomas referred)", scaleanchor="x")
    return _layout(figure, "ROC: your photos beside the published test splits", height=480,
                   legend=dict(orientation="h", y=-0.3))
