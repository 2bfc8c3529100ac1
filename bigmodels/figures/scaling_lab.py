"""Figures of the scaling-law lab: loss against parameters and against compute,
the learning-rate search, the local exponent, the IsoFLOP profiles (Approach 2),
and each registered check's predicted loss against its measured one.

Pure functions from a ``SweepTable`` and its ``LabResult`` to plotly figures;
the page passes translated labels in (``labels``), so nothing here knows the
UI language. Every point is a measured run; every line is a fitted law.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from bigmodels.reports.scaling_lab import LabResult, law_local_exponent, optimal_curve
from bigmodels.reports.sweep_table import SweepTable
from bigmodels.figures.runs import PALETTE
from bigmodels.base.formatting import format_count_in, format_flops, log_axis

CHECK_COLOUR = "#212529"  # not one of the budgets' colours
FIT_DASH = "dot"


def _loss_label(v: float) -> str:
    return f"{v:.3g}"


def _layout(fig: go.Figure, height: int = 420) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.24, "x": 0})
    return fig


def loss_vs_parameters(table: SweepTable, result: LabResult, labels: dict[str, str], lang: str = "en") -> go.Figure:
    """Measured test loss against parameters (the mean over a point's seeds, with
    their standard deviation as an error bar), one colour per data budget, with
    the fitted L(N, D) at that budget as a dotted line; registered checks as
    diamonds with their predictive interval."""
    fig = go.Figure()
    budgets = sorted({p.images for p in result.points})
    every_n = [r.parameters for r in table.rows] + [c.parameters for c in result.checks]
    line_n = np.geomspace(min(every_n) / 1.3, max(every_n) * 1.3, 60)
    for i, budget in enumerate(budgets):
        colour = PALETTE[i % len(PALETTE)]
        at = [p for p in result.points if p.images == budget]
        name = labels["budget"].format(images=format_count_in(budget, lang))
        fig.add_trace(go.Scatter(
            x=[p.parameters for p in at], y=[p.loss for p in at], mode="markers", name=name,
            marker={"color": colour, "size": 8}, legendgroup=name,
            error_y={"type": "data", "array": [float(np.std(p.losses, ddof=1)) if p.seeds > 1 else 0.0 for p in at],
                     "color": colour, "thickness": 1},
            text=[labels["point_seeds"].format(width=p.width, depth=p.depth, seeds=p.seeds) for p in at],
            hovertemplate="%{text}<br>N %{x:,.0f}<br>" + labels["loss"] + " %{y:.4f}<extra>" + name + "</extra>"))
        fig.add_trace(go.Scatter(x=line_n, y=result.fit.predict(line_n, budget), mode="lines", showlegend=False,
                                 line={"color": colour, "dash": FIT_DASH}, legendgroup=name, hoverinfo="skip"))
    _add_checks(fig, result, labels, x="parameters")
    fig.update_xaxes(title_text=labels["parameters"], **log_axis(every_n, label=lambda v: format_count_in(v, lang)))
    fig.update_yaxes(title_text=labels["loss"], **log_axis([r.test_loss for r in table.rows], label=_loss_label))
    return _layout(fig)


def _check_compute(result: LabResult, check) -> float:
    return float(result.flops(check.parameters)) * check.images


def loss_vs_compute(table: SweepTable, result: LabResult, labels: dict[str, str], lang: str = "en") -> go.Figure:
    """Every run's loss against its training compute, the measured compute-optimal
    frontier (runs no cheaper run beats), the fitted L(C) through it and the
    fitted L(N, D)'s best loss at each compute."""
    c = np.array([p.compute for p in result.points])
    loss = np.array([p.loss for p in result.points])
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=c, y=loss, mode="markers", name=labels["runs"], marker={"color": "#adb5bd", "size": 7},
        text=[labels["point_budget"].format(width=p.width, depth=p.depth, images=format_count_in(p.images, lang))
              for p in result.points],
        hovertemplate="%{text}<br>C %{x:.3s}<br>" + labels["loss"] + " %{y:.4f}<extra></extra>"))
    edge = list(result.frontier)
    fig.add_trace(go.Scatter(x=c[edge], y=loss[edge], mode="markers+lines", name=labels["frontier"],
                             marker={"color": PALETTE[0], "size": 9}, line={"color": PALETTE[0], "width": 1}))
    every_c = [r.compute for r in table.rows] + [_check_compute(result, ch) for ch in result.checks]
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
    for i, check in enumerate(result.checks):  # one legend entry for all the predictions, one for the measurements
        at = check.parameters if x == "parameters" else _check_compute(result, check)
        fig.add_trace(go.Scatter(
            x=[at], y=[check.predicted], mode="markers", name=labels["predicted"], legendgroup="predicted",
            showlegend=i == 0,
            marker={"color": CHECK_COLOUR, "size": 11, "symbol": "diamond-open", "line": {"width": 2}},
            error_y={"type": "data", "symmetric": False, "array": [check.high - check.predicted],
                     "arrayminus": [check.predicted - check.low], "color": CHECK_COLOUR},
            hovertemplate=labels["predicted"] + " %{y:.4f}<extra></extra>"))
        if check.measured is not None:
            fig.add_trace(go.Scatter(x=[at], y=[check.measured], mode="markers", name=labels["measured"],
                                     legendgroup="measured", showlegend=i == 0,
                                     marker={"color": CHECK_COLOUR, "size": 11, "symbol": "diamond"},
                                     hovertemplate=labels["measured"] + " %{y:.4f}<extra></extra>"))


def check_figure(result: LabResult, labels: dict[str, str], lang: str = "en") -> go.Figure:
    """Each registered check: its frozen prediction with the interval, and the measured loss."""
    fig = go.Figure()
    checks = result.checks
    names = [labels["check_name"].format(parameters=format_count_in(c.parameters, lang),
                                         images=format_count_in(c.images, lang)) for c in checks]
    fig.add_trace(go.Scatter(
        x=[c.predicted for c in checks], y=names, mode="markers", name=labels["predicted"],
        marker={"color": CHECK_COLOUR, "size": 12, "symbol": "diamond-open", "line": {"width": 2}},
        error_x={"type": "data", "symmetric": False, "array": [c.high - c.predicted for c in checks],
                 "arrayminus": [c.predicted - c.low for c in checks], "color": CHECK_COLOUR}))
    measured = [(c.measured, n) for c, n in zip(checks, names) if c.measured is not None]
    fig.add_trace(go.Scatter(x=[m for m, _ in measured], y=[n for _, n in measured], mode="markers",
                             name=labels["measured"], marker={"color": "#e8590c", "size": 12, "symbol": "x"}))
    fig.update_xaxes(title_text=labels["loss"])
    _layout(fig, height=170 + 50 * len(checks))
    fig.update_layout(legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0})  # clear of the axis
    return fig


def local_exponent_figure(result: LabResult, labels: dict[str, str], lang: str = "en") -> go.Figure:
    """-d log L / d log N between neighbouring widths, per budget (colour) and depth (dash):
    a power law is a flat line; saturation is the line falling towards 0."""
    fig = go.Figure()
    budgets = sorted({b for b, _ in result.local})
    dashes = ("solid", "dash", "dot", "dashdot")
    for (budget, depth), (mid, slope) in result.local.items():
        colour = PALETTE[budgets.index(budget) % len(PALETTE)]
        name = labels["local_line"].format(images=format_count_in(budget, lang), depth=depth)
        fig.add_trace(go.Scatter(x=mid, y=slope, mode="lines+markers", name=name,
                                 line={"color": colour, "dash": dashes[((depth or 1) - 1) % len(dashes)]},
                                 hovertemplate="N %{x:,.0f}<br>%{y:.2f}<extra>" + name + "</extra>"))
    every = [n for mid, _ in result.local.values() for n in mid]
    if every:
        largest = max(budgets)
        line_n = np.geomspace(min(every), max(every), 60)
        fig.add_trace(go.Scatter(x=line_n, y=law_local_exponent(result.fit, line_n, largest), mode="lines",
                                 name=labels["local_law"].format(images=format_count_in(largest, lang)),
                                 line={"color": CHECK_COLOUR, "dash": FIT_DASH, "width": 2}, hoverinfo="skip"))
    fig.add_hline(y=0, line={"color": "#adb5bd", "width": 1})
    if every:
        fig.update_xaxes(title_text=labels["parameters"], **log_axis(every, label=lambda v: format_count_in(v, lang)))
    fig.update_yaxes(title_text=labels["local_axis"])
    return _layout(fig, height=440)


def isoflop_figure(result: LabResult, labels: dict[str, str], lang: str = "en") -> go.Figure:
    """Approach 2: at each compute budget, each size's loss there and the parabola in
    log N through them; the parabolas' minima are the IsoFLOP estimate of the best N."""
    fig = go.Figure()
    profiles = result.approach2.profiles if result.approach2 else ()
    for i, profile in enumerate(profiles):
        colour = PALETTE[i % len(PALETTE)]
        name = labels["isoflop_line"].format(compute=format_flops(profile.compute))
        xs = np.exp(profile.log_n)
        fig.add_trace(go.Scatter(x=xs, y=np.exp(profile.log_loss), mode="markers", name=name, legendgroup=name,
                                 marker={"color": colour, "size": 7}))
        grid = np.linspace(min(profile.log_n), max(profile.log_n), 50)
        c0, c1, c2 = profile.coefficients
        fig.add_trace(go.Scatter(x=np.exp(grid), y=np.exp(c0 * grid**2 + c1 * grid + c2), mode="lines",
                                 line={"color": colour, "dash": FIT_DASH}, legendgroup=name, showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[profile.n_opt], y=[profile.loss_opt], mode="markers", legendgroup=name,
                                 showlegend=False, marker={"color": colour, "size": 12, "symbol": "star"},
                                 hovertemplate=labels["isoflop_min"] + " N %{x:,.0f}<extra></extra>"))
    every = [float(np.exp(x)) for p in profiles for x in p.log_n]
    if every:
        fig.update_xaxes(title_text=labels["parameters"], **log_axis(every, label=lambda v: format_count_in(v, lang)))
    fig.update_yaxes(title_text=labels["loss"], type="log")
    return _layout(fig, height=440)


def lr_search_figure(trials, rule, labels: dict[str, str], lang: str = "en") -> go.Figure:
    """Held-out loss against the learning rate, one line per size, and the rate each
    size then trains at (the rule through the best ones)."""
    fig = go.Figure()
    sizes = sorted({(t.parameters, t.width, t.depth) for t in trials})
    for i, (n, width, depth) in enumerate(sizes):
        mine = sorted((t for t in trials if t.parameters == n and np.isfinite(t.validation_loss)), key=lambda t: t.lr)
        colour = PALETTE[i % len(PALETTE)]
        name = labels["lr_size"].format(parameters=format_count_in(n, lang), width=width, depth=depth)
        fig.add_trace(go.Scatter(x=[t.lr for t in mine], y=[t.validation_loss for t in mine], mode="lines+markers",
                                 name=name, line={"color": colour, "width": 1}, marker={"size": 5},
                                 hovertemplate="lr %{x:g}<br>%{y:.4f}<extra>" + name + "</extra>"))
        if mine:
            chosen = rule(n)
            fig.add_trace(go.Scatter(x=[chosen], y=[float(np.interp(np.log(chosen), np.log([t.lr for t in mine]),
                                                                   [t.validation_loss for t in mine]))],
                                     mode="markers", showlegend=False, hoverinfo="skip",
                                     marker={"color": colour, "size": 11, "symbol": "star"}))
    fig.update_xaxes(title_text=labels["lr_axis"], type="log")
    fig.update_yaxes(title_text=labels["lr_loss"], type="log")
    return _layout(fig, height=460)
