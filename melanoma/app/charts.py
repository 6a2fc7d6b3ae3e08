"""Plotly figures and tables the pages share: counts, training curves, ROC, calibration, confusion matrix."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

MELANOMA_COLOUR = "#c0392b"
OTHER_COLOUR = "#5b7c99"
VALIDATION_COLOUR = "#e67e22"
GROUP_COLOURS = (OTHER_COLOUR, "#2a9d8f", "#8e7cc3")  # red stays reserved for melanoma
HEIGHT = 340
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


def roc_curve(roc: dict, auc: float | None, operating_point: tuple[float, float] | None = None) -> go.Figure:
    """`roc` has lists fpr and tpr; `operating_point` is (specificity, sensitivity) at a threshold."""
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(dash="dot", color="grey"))
    label = "test ROC" if auc is None else f"test ROC (AUC {auc:.3f})"
    figure.add_scatter(x=roc.get("fpr", []), y=roc.get("tpr", []), mode="lines", name=label,
                       line=dict(color=MELANOMA_COLOUR, width=3))
    if operating_point is not None and None not in operating_point:
        specificity, sensitivity = operating_point
        figure.add_scatter(x=[1 - specificity], y=[sensitivity], mode="markers", name="threshold",
                           marker=dict(size=13, color="black", symbol="x"))
    figure.update_xaxes(range=[0, 1], title="1 - specificity (false positive rate)", constrain="domain")
    figure.update_yaxes(range=[0, 1.02], title="sensitivity (true positive rate)", scaleanchor="x")
    return _layout(figure, "ROC curve, test split", height=420, legend=dict(orientation="h", y=-0.3))


def reliability_curve(calibration: dict) -> go.Figure:
    """Observed melanoma rate against the mean probability given, in equal-count bins of the test
    split: the network's raw scores and the calibrated probabilities the app shows."""
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                       line=dict(dash="dot", color="grey"))
    for key, name, colour in (("test_before", "raw score", OTHER_COLOUR),
                              ("test_after", "calibrated (shown)", MELANOMA_COLOUR)):
        part = calibration.get(key)
        if part:
            figure.add_scatter(x=part["curve"]["predicted"], y=part["curve"]["observed"], mode="lines+markers",
                               name=f"{name}, Brier {part['brier']:.3f}", line=dict(color=colour, width=3))
    figure.update_xaxes(range=[0, 1], title="mean P(melanoma) given, per tenth of the test images")
    figure.update_yaxes(range=[0, 1.02], title="share that were melanoma")
    return _layout(figure, "Calibration, test split", height=420, legend=dict(orientation="h", y=-0.3))


def confusion_matrix(matrix: list[list[int]], title: str) -> go.Figure:
    """matrix rows: true not-melanoma, melanoma; columns: called the same."""
    names = ["not melanoma", "melanoma"]
    cell_names = [["true negative", "false positive"], ["false negative", "true positive"]]
    text = [[f"{cell_names[i][j]}<br><b>{matrix[i][j]}</b>" for j in range(2)] for i in range(2)]
    figure = go.Figure(go.Heatmap(z=matrix, x=names, y=names, text=text, texttemplate="%{text}",
                                  textfont=dict(size=15), colorscale="Blues", showscale=False, hoverinfo="skip"))
    figure.update_xaxes(title="called by the model", tickangle=0)
    figure.update_yaxes(title="truth", autorange="reversed", tickangle=-90)
    return _layout(figure, title, height=400)


def metrics_table(metrics: dict, intervals: dict | None = None) -> pd.DataFrame:
    """The headline metrics of one split as a table (value None: undefined), with a column of
    confidence intervals where `intervals` (from `lesion_bootstrap_intervals`) gives them."""
    def number(value):
        return "n/a" if value is None else f"{value:.3f}"

    def interval(key):
        bound = (intervals or {}).get(key)
        return "" if bound is None else f"{bound[0]:.3f} - {bound[1]:.3f}"

    rows = [{"metric": label, "value": number(metrics.get(key)), "interval": interval(key)}
            for key, label in METRIC_LABELS.items()]
    rows += [{"metric": "Threshold", "value": number(metrics.get("threshold")), "interval": ""},
             {"metric": "Images (melanoma)", "value": f"{metrics.get('n_images')} ({metrics.get('n_melanoma')})",
              "interval": ""}]
    table = pd.DataFrame(rows)
    if not intervals:
        return table.drop(columns="interval")
    return table.rename(columns={"interval": f"{intervals['level']:.0%} interval"})


def interval_note(intervals: dict) -> str:
    return (f"{intervals['level']:.0%} intervals: the test split's {intervals['n_lesions']:,} lesions resampled "
            f"with replacement {intervals['resamples']:,} times, so they show how much the figures could "
            "move on another set of lesions like these.")
