"""Figures of the scaling-law lab: loss against parameters and against compute,
and a check run's predicted loss against its measured one.

Pure functions from a ``SweepTable`` and its ``LabResult`` to plotly figures;
the page passes translated labels in (``labels``), so nothing here knows the
UI language. Every point is a measured run; every line is a fitted law.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from bigmodels.reports.scaling_lab import LabResult, optimal_curve
from bigmodels.reports.sweep_table import SweepTable
from bigmodels.figures.runs import PALETTE
from bigmodels.base.formatting import format_count_in, format_flops, log_axis

CHECK_COLOUR = "#212529"  # not one of the budgets' colours
FIT_DASH = "dot"


def _loss_label(v: float) -> str:
    return f"{v:.3g}"


def _layout(fig: go.Figure, height: int = 420) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0})
    return fig


def loss_vs_parameters(table: SweepTable, result: LabResult, labels: dict[str, str], lang: str = "en") -> go.Figure:
    """Measured test loss against parameters, one colour per data budget, with the
    fitted L(N, D) at that budget as a dotted line; check runs as diamonds with
    their predictive interval."""
    grid = table.grid()
    fig = go.Figure()
    budgets = sorted({r.images for r in grid.rows})
    every_n = [r.parameters for r in table.rows]
    line_n = np.geomspace(min(every_n) / 1.3, max(every_n) * 1.3, 60)
    for i, budget in enumerate(budgets):
        colour = PALETTE[i % len(PALETTE)]
        rows = [r for r in grid.rows if r.images == budget]
        name = labels["budget"].format(images=format_count_in(budget, lang))
        fig.add_trace(go.Scatter(
            x=[r.parameters for r in rows], y=[r.test_loss for r in rows], mode="markers", name=name,
            marker={"color": colour, "size": 8}, legendgroup=name,
            text=[labels["point"].format(width=r.width, depth=r.depth) for r in rows],
            hovertemplate="%{text}<br>N %{x:,.0f}<br>" + labels["loss"] + " %{y:.4f}<extra>" + name + "</extra>"))
        fig.add_trace(go.Scatter(x=line_n, y=result.fit.predict(line_n, budget), mode="lines", showlegend=False,
                                 line={"color": colour, "dash": FIT_DASH}, legendgroup=name, hoverinfo="skip"))
    _add_checks(fig, result, labels, x="parameters")
    fig.update_xaxes(title_text=labels["parameters"], **log_axis(every_n, label=lambda v: format_count_in(v, lang)))
    fig.update_yaxes(title_text=labels["loss"], **log_axis([r.test_loss for r in table.rows], label=_loss_label))
    return _layout(fig)


def loss_vs_compute(table: SweepTable, result: LabResult, labels: dict[str, str], lang: str = "en") -> go.Figure:
    """Every run's loss against its training compute, the measured compute-optimal
    frontier (runs no cheaper run beats), the fitted L(C) through it and the
    fitted L(N, D)'s best loss at each compute."""
    grid = table.grid()
    n, d, c, loss = grid.arrays()
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=c, y=loss, mode="markers", name=labels["runs"], marker={"color": "#adb5bd", "size": 7},
        text=[labels["point_budget"].format(width=r.width, depth=r.depth, images=format_count_in(r.images, lang))
              for r in grid.rows],
        hovertemplate="%{text}<br>C %{x:.3s}<br>" + labels["loss"] + " %{y:.4f}<extra></extra>"))
    edge = list(result.frontier)
    fig.add_trace(go.Scatter(x=c[edge], y=loss[edge], mode="markers+lines", name=labels["frontier"],
                             marker={"color": PALETTE[0], "size": 9}, line={"color": PALETTE[0], "width": 1}))
    every_c = [r.compute for r in table.rows]
    line_c = np.geomspace(min(every_c) / 1.5, max(every_c) * 1.5, 60)
    fig.add_trace(go.Scatter(x=line_c, y=result.loss_vs_compute.predict(line_c), mode="lines",
                             name=labels["fit_c"], line={"color": PALETTE[1], "dash": FIT_DASH}))
    fig.add_trace(go.Scatter(x=line_c, y=optimal_curve(result, line_c), mode="lines", name=labels["fit_optimal"],
                             line={"color": PALETTE[2], "dash": "dash"}))
    _add_checks(fig, result, labels, x="compute")
    fig.update_xaxes(title_text=labels["compute"], **log_axis(every_c, label=lambda v: format_flops(v)
                                                            .replace("1.00 × ", "")))
    fig.update_yaxes(title_text=labels["loss"], **log_axis([r.test_loss for r in table.rows], label=_loss_label))
    return _layout(fig)


def _add_checks(fig: go.Figure, result: LabResult, labels: dict[str, str], x: str) -> None:
    for check in result.checks:
        at = check.row.parameters if x == "parameters" else check.row.compute
        fig.add_trace(go.Scatter(
            x=[at], y=[check.predicted], mode="markers", name=labels["predicted"],
            marker={"color": CHECK_COLOUR, "size": 11, "symbol": "diamond-open", "line": {"width": 2}},
            error_y={"type": "data", "symmetric": False, "array": [check.interval.high - check.predicted],
                     "arrayminus": [check.predicted - check.interval.low], "color": CHECK_COLOUR},
            hovertemplate=labels["predicted"] + " %{y:.4f}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[at], y=[check.row.test_loss], mode="markers", name=labels["measured"],
                                 marker={"color": CHECK_COLOUR, "size": 11, "symbol": "diamond"},
                                 hovertemplate=labels["measured"] + " %{y:.4f}<extra></extra>"))


def check_figure(result: LabResult, labels: dict[str, str], lang: str = "en") -> go.Figure:
    """Each check run: its predicted loss with the interval, and the measured loss."""
    fig = go.Figure()
    names = [labels["check_name"].format(parameters=format_count_in(c.row.parameters, lang),
                                         images=format_count_in(c.row.images, lang)) for c in result.checks]
    fig.add_trace(go.Scatter(
        x=[c.predicted for c in result.checks], y=names, mode="markers", name=labels["predicted"],
        marker={"color": CHECK_COLOUR, "size": 12, "symbol": "diamond-open", "line": {"width": 2}},
        error_x={"type": "data", "symmetric": False, "array": [c.interval.high - c.predicted for c in result.checks],
                 "arrayminus": [c.predicted - c.interval.low for c in result.checks], "color": CHECK_COLOUR}))
    fig.add_trace(go.Scatter(x=[c.row.test_loss for c in result.checks], y=names, mode="markers",
                             name=labels["measured"], marker={"color": "#e8590c", "size": 12, "symbol": "x"}))
    fig.update_xaxes(title_text=labels["loss"])
    _layout(fig, height=170 + 50 * len(result.checks))
    fig.update_layout(legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0})  # clear of the axis
    return fig
