"""The scale explorer's charts: how parameters, MACs and training memory grow with
width and depth (``bigmodels.analysis.scaling`` measures the points)."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from bigmodels.analysis.scaling import ScalePoint
from bigmodels.base.formatting import format_count_in, format_si_bytes, log_axis

METRICS = ("parameters", "macs_per_image", "training_bytes")
METRIC_TICKS = {"parameters": format_count_in, "macs_per_image": format_count_in, "training_bytes": format_si_bytes}


def growth_figure(width_points: list[ScalePoint], depth_points: list[ScalePoint], current: ScalePoint,
                  labels: dict[str, str], reference: ScalePoint | None = None) -> go.Figure:
    """Two rows (grow the width; grow the depth) by three columns (parameters,
    MACs, training memory), log-scaled, with the chosen model and the article's
    model marked. ``labels`` holds the translated titles."""
    fig = make_subplots(rows=2, cols=3, horizontal_spacing=0.07, vertical_spacing=0.24,
                        subplot_titles=[labels[m] for m in METRICS] * 2)
    for row, points, axis in ((1, width_points, "width"), (2, depth_points, "depth")):
        xs = [getattr(p, axis) for p in points]
        for col, metric in enumerate(METRICS, start=1):
            fig.add_trace(go.Scatter(x=xs, y=[getattr(p, metric) for p in points], mode="lines+markers",
                                     line={"color": "#3b5bdb"}, name=labels[axis], showlegend=False,
                                     hovertemplate=f"{labels[axis]} %{{x}}<br>%{{y:,.0f}}<extra></extra>"),
                          row=row, col=col)
            fig.add_trace(go.Scatter(x=[getattr(current, axis)], y=[getattr(current, metric)], mode="markers",
                                     marker={"size": 13, "color": "#e8590c", "symbol": "circle"},
                                     name=labels["current"], showlegend=row == 1 and col == 1,
                                     hovertemplate=f"{labels['current']}: %{{y:,.0f}}<extra></extra>"),
                          row=row, col=col)
            if reference is not None and ((axis == "width" and reference.depth == current.depth)
                                          or (axis == "depth" and reference.width == current.width)):
                fig.add_trace(go.Scatter(x=[getattr(reference, axis)], y=[getattr(reference, metric)],
                                         mode="markers", marker={"size": 16, "color": "#2b8a3e", "symbol": "star"},
                                         name=labels["reference"], showlegend=row == 1 and col == 1,
                                         hovertemplate=f"{labels['reference']}: %{{y:,.0f}}<extra></extra>"),
                              row=row, col=col)
            # Ticks at 1, 10, 100 ... (1-2-5 on a short range), written 1K, 1M, 1 GB: never stacked.
            fig.update_xaxes(title_text=labels[axis], row=row, col=col, **log_axis(xs, label=lambda v: f"{v:g}"))
            fig.update_yaxes(row=row, col=col, **log_axis([getattr(p, metric) for p in points],
                                                          label=METRIC_TICKS[metric]))
    fig.update_layout(height=640, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.12})
    return fig


def architectures_figure(sweeps: dict[str, list[ScalePoint]], titles: dict[str, str], labels: dict[str, str],
                         reference: ScalePoint | None = None) -> go.Figure:
    """Parameters against MACs per image for each architecture's width sweep:
    how much compute each parameter buys (a shared conv filter is applied at
    every position, an LSTM weight at every row, a Transformer weight at every
    patch)."""
    colours = {"cnn": "#1971c2", "lstm": "#e8590c", "transformer": "#2b8a3e"}
    fig = go.Figure()
    for name, points in sweeps.items():
        fig.add_trace(go.Scatter(
            x=[p.parameters for p in points], y=[p.macs_per_image for p in points], mode="lines+markers",
            name=titles[name], line={"color": colours.get(name)},
            text=[f"{labels['width']} {p.width}, {labels['depth']} {p.depth}" for p in points],
            hovertemplate="%{text}<br>%{x:,.0f} params<br>%{y:,.0f} MACs<extra>" + titles[name] + "</extra>"))
    if reference is not None:  # named in the legend: a label on the chart would sit on the green line
        fig.add_trace(go.Scatter(x=[reference.parameters], y=[reference.macs_per_image], mode="markers",
                                 marker={"size": 16, "color": "#2b8a3e", "symbol": "star"},
                                 name=labels["reference"]))
    every = [p for points in sweeps.values() for p in points]
    fig.update_xaxes(title_text=labels["parameters"], **log_axis([p.parameters for p in every]))
    fig.update_yaxes(title_text=labels["macs_per_image"], **log_axis([p.macs_per_image for p in every]))
    fig.update_layout(height=440, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h", "y": -0.2})
    return fig
