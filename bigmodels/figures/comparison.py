"""The comparison's charts: accuracy against size and latency, learning curves,
per-class errors, the confusion matrix, and digit tiles, drawn from the
measured entries of ``bigmodels.reports.comparison``."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from bigmodels.base.formatting import log_axis
from bigmodels.base.i18n import translate
from bigmodels.data.digits import enlarge
from bigmodels.figures.labels import place_labels
from bigmodels.reports.comparison import Entry, timings

FAMILY_COLOURS = {"CNN": "#1971c2", "RNN": "#e8590c", "Transformer": "#2b8a3e"}
ORIGIN_SYMBOLS = {"shipped": "circle", "run": "diamond"}


# ----------------------------------------------------------------- charts
def _style(entry: Entry) -> dict:
    return {"color": FAMILY_COLOURS.get(entry.family, "#495057"), "size": 14,
            "symbol": ORIGIN_SYMBOLS.get(entry.source.origin, "circle"), "line": {"width": 1, "color": "#ffffff"}}


#: Short point labels (the full name is in the legend and the hover): proper names, not UI text.
SHORT_NAMES = {"cnn": "CNN", "lstm": "LSTM", "transformer": "ViT"}
ERROR_FLOOR = 0.05  # % error drawn for a perfect score: a log axis has no zero
PLOT_SIZE = (330, 250)  # px inside the axes of a half-width chart on a 1280 px screen (for label placement)
LABEL_FONT = 12


def short_label(entry: Entry) -> str:
    """``CNN``, ``ViT``; a run adds its id (``CNN r7``): short enough to sit beside its point."""
    name = SHORT_NAMES.get(entry.source.model_name, entry.source.model_name)
    return f"{name} {entry.source.run_id}" if entry.source.run_id else name


def error_percent(accuracy_percent: float) -> float:
    """The error rate drawn for an accuracy (both in %), never below ``ERROR_FLOOR``."""
    return max(ERROR_FLOOR, 100.0 - accuracy_percent)


def accuracy_axis(accuracies_percent: Iterable[float], title: str) -> dict:
    """A y axis for accuracies that stays readable when a weak model joins: the
    error rate on a log scale, reversed so that better is higher, with ticks
    written as accuracies (99.5%, 99%, 98%, 95%, 90%, 80%, 50%). 98.4% and
    99.2% stay apart beside a 60% run, where a linear axis would squash them."""
    # 1-2-5 steps at most: 99.1 / 99.2 / 99.3 % ticks would crowd the top of the axis
    axis = log_axis([error_percent(a) for a in accuracies_percent], label=lambda e: f"{round(100.0 - e, 4):g}%",
                    pad=0.12, steps=((1,), (1, 2, 5)))
    if "range" in axis:
        axis["range"] = axis["range"][::-1]  # reversed: small error (high accuracy) at the top
    return axis | {"title_text": title}


def _to_px(value: float, axis: dict, length: float, log: bool = True) -> float:
    lo, hi = axis["range"]
    v = math.log10(value) if log else value
    return (v - lo) / (hi - lo) * length


def label_positions(xs: Sequence[float], ys: Sequence[float], texts: Sequence[str], x_axis: dict,
                    y_axis: dict) -> list[str]:
    """``place_labels`` for points in data units on two log axes (as the charts draw them)."""
    if not xs or "range" not in x_axis or "range" not in y_axis:
        return ["top center"] * len(xs)
    width, height = PLOT_SIZE
    points = [(_to_px(x, x_axis, width), _to_px(y, y_axis, height)) for x, y in zip(xs, ys)]
    return place_labels(points, texts, PLOT_SIZE, LABEL_FONT)


def _layout(fig: go.Figure, height: int = 380) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.3, "x": 0, "font": {"size": 11}})
    return fig


def _accuracy_scatter(entries: Sequence[Entry], xs: Sequence[float], x_axis: dict, hover_x: str,
                      lang: str) -> go.Figure:
    """Accuracy (log error axis) against ``xs`` on ``x_axis``: short labels placed
    not to overlap; the full names in the legend and the hover."""
    accuracies = [100 * e.metrics["accuracy"] for e in entries]
    y_axis = accuracy_axis(accuracies, translate("comparison.chart.accuracy", lang))
    errors = [error_percent(a) for a in accuracies]
    texts = [short_label(e) for e in entries]
    positions = label_positions(list(xs), errors, texts, x_axis, y_axis)  # its range is reversed: px follow
    fig = go.Figure()
    for e, x, err, acc, text, position in zip(entries, xs, errors, accuracies, texts, positions):
        fig.add_trace(go.Scatter(x=[x], y=[err], mode="markers+text", marker=_style(e), text=[text],
                                 textposition=position, textfont={"size": LABEL_FONT}, name=e.label,
                                 customdata=[acc], hovertemplate=hover_x + "<br>%{customdata:.2f}%<extra>"
                                 + e.label + "</extra>"))
    fig.update_xaxes(**x_axis)
    fig.update_yaxes(**y_axis)
    return fig


def accuracy_vs_parameters(entries: Sequence[Entry], lang: str) -> go.Figure:
    xs = [e.metrics["parameters"] for e in entries]
    x_axis = log_axis(xs) | {"title_text": translate("comparison.chart.parameters_log", lang)}
    fig = _accuracy_scatter(entries, xs, x_axis, "%{x:,} params", lang)
    fig.update_layout(title_text=translate("comparison.chart.acc_params", lang))
    return _layout(fig, 420)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: none is both at least as
    fast (lower x) and at least as accurate (higher y) and better in one.
    Returned in order of increasing x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def accuracy_vs_latency(entries: Sequence[Entry], measured: dict[str, dict | None], lang: str) -> go.Figure:
    timed = [(e, timings(e, measured.get(e.source.id)).get("latency_ms_batch1")) for e in entries]
    timed = [(e, latency) for e, latency in timed if latency is not None]  # not timed yet: left out
    xs = [latency for _, latency in timed]
    x_axis = log_axis(xs, label=lambda v: f"{v:g}") | {"title_text": translate("comparison.chart.latency", lang)}
    fig = _accuracy_scatter([e for e, _ in timed], xs, x_axis, "%{x:.2f} ms", lang)
    points = [(x, 100 * e.metrics["accuracy"]) for (e, x) in timed]
    front = pareto_front(points)
    fig.add_trace(go.Scatter(x=[points[i][0] for i in front], y=[error_percent(points[i][1]) for i in front],
                             mode="lines", line={"color": "#868e96", "dash": "dash"},
                             name=translate("comparison.chart.pareto", lang), hoverinfo="skip"))
    fig.update_layout(title_text=translate("comparison.chart.acc_latency", lang))
    return _layout(fig, 420)


def learning_curves(entries: Sequence[Entry], lang: str) -> go.Figure:
    """Test accuracy (log error axis, like the scatters) and training loss (log)
    per epoch: a weak run's curves sit apart without flattening the others'."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=[
        translate("comparison.chart.test_accuracy", lang), translate("comparison.chart.train_loss", lang)])
    accuracies, losses = [], []
    for e in entries:
        history = e.history
        if not history:
            continue
        epochs = [r["epoch"] for r in history]
        colour = FAMILY_COLOURS.get(e.family)
        dash = "solid" if e.source.origin == "shipped" else "dot"
        accuracy = [100 * r["test_accuracy"] for r in history]
        accuracies += accuracy
        losses += [r["train_loss"] for r in history]
        fig.add_trace(go.Scatter(x=epochs, y=[error_percent(a) for a in accuracy], customdata=accuracy,
                                 mode="lines+markers", name=e.label, legendgroup=e.source.id,
                                 line={"color": colour, "dash": dash},
                                 hovertemplate="%{x}: %{customdata:.2f}%<extra>" + e.label + "</extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=epochs, y=[r["train_loss"] for r in history], mode="lines+markers",
                                 name=e.label, legendgroup=e.source.id, showlegend=False,
                                 line={"color": colour, "dash": dash}), row=1, col=2)
    fig.update_xaxes(title_text=translate("comparison.chart.epoch", lang), dtick=1)
    fig.update_yaxes(**accuracy_axis(accuracies, "%"), row=1, col=1)
    fig.update_yaxes(**log_axis(losses, label=lambda v: f"{v:g}"), row=1, col=2)
    return _layout(fig)


def per_class_figure(entries: Sequence[Entry], lang: str) -> go.Figure:
    """Accuracy per digit, one line of markers per model, on the log error axis."""
    fig = go.Figure()
    accuracies = []
    for e in entries:
        accuracy = [100 * a for a in e.metrics["per_class_accuracy"]]
        accuracies += accuracy
        fig.add_trace(go.Scatter(x=[str(d) for d in range(10)], y=[error_percent(a) for a in accuracy],
                                 customdata=accuracy, mode="lines+markers", name=e.label,
                                 line={"color": FAMILY_COLOURS.get(e.family), "width": 1.5,
                                       "dash": "solid" if e.source.origin == "shipped" else "dot"},
                                 marker={"size": 9, "symbol": ORIGIN_SYMBOLS.get(e.source.origin, "circle")},
                                 hovertemplate="%{x}: %{customdata:.2f}%<extra>" + e.label + "</extra>"))
    fig.update_yaxes(**accuracy_axis(accuracies, translate("comparison.chart.accuracy", lang)))
    fig.update_xaxes(title_text=translate("comparison.chart.digit", lang))
    fig.update_layout(title_text=translate("comparison.chart.per_class", lang))
    return _layout(fig)


def confusion_figure(entry: Entry, lang: str) -> go.Figure:
    """Counts as text; colour on a log scale, so the few mistakes are visible
    beside a diagonal of about a thousand per digit."""
    counts = np.array(entry.metrics["confusion"])
    fig = go.Figure(go.Heatmap(
        z=np.log10(1 + counts), text=counts, texttemplate="%{text}", textfont={"size": 9},
        x=[str(d) for d in range(10)], y=[str(d) for d in range(10)], colorscale="Blues", showscale=False,
        hovertemplate=translate("comparison.chart.confusion_hover", lang) + "<extra></extra>"))
    fig.update_xaxes(title_text=translate("comparison.chart.predicted", lang), side="bottom", dtick=1)
    fig.update_yaxes(title_text=translate("comparison.chart.true", lang), autorange="reversed", dtick=1)
    fig.update_layout(title_text=entry.label, height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def digit_tile(image: torch.Tensor, scale: int = 3) -> np.ndarray:
    """A uint8 digit, dark on light like the rest of the page, enlarged with
    square pixels (no blur)."""
    return enlarge(255 - image.numpy(), scale)
