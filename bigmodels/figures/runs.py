"""Figures and tables for the launcher: live curves, run comparison, CSV export.

Pure functions from run-store rows to plotly figures, table rows and CSV text;
the page passes translated labels in, so nothing here knows the UI language.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Any, Sequence

import plotly.graph_objects as go

from bigmodels.base.formatting import WORD_JOINER
from bigmodels.reports.run_groups import Point, curve
from bigmodels.runs.store import Run
from bigmodels.train.config import settings

PALETTE = ["#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#5f3dc4", "#0b7285", "#a61e4d", "#5c940d"]
MAX_POINTS = 1500  # a step curve is thinned to this many points: a browser chart, not an archive


def smooth(values: Sequence[float | None], weight: float) -> list[float | None]:
    """TensorBoard's exponential moving average, debiased so the start is not
    dragged towards zero. ``weight`` 0 returns the values; missing values stay missing."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    out: list[float | None] = []
    last, steps = 0.0, 0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(None)
            continue
        steps += 1
        last = last * weight + (1 - weight) * v
        out.append(last / (1 - weight ** steps))
    return out


def thin(xs: Sequence, ys: Sequence, limit: int = MAX_POINTS) -> tuple[list, list]:
    """Every k-th point (always keeping the last) so a curve has at most ``limit`` points."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    k = math.ceil(n / limit)
    idx = list(range(0, n, k))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]


def _layout(fig: go.Figure, x_title: str, y_title: str, height: int = 320) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), xaxis_title=x_title,
                      yaxis_title=y_title, legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
                      hovermode="x unified")
    return fig


def steps_per_epoch(run: Run) -> float:
    """Optimizer steps in one epoch of ``run`` (1 before it has started)."""
    epochs = run.config.get("epochs") or 1
    return (run.total_steps or epochs) / epochs


X_AXES = ("epoch", "step", "time")  # what a run's curves are drawn against


def step_xs(steps: list[dict], per_epoch: float, x: str) -> list[float]:
    """Where each step row goes on the x axis: in epochs (runs with different batch
    sizes line up), in optimizer steps, or in seconds since the first step."""
    if x == "step":
        return [s["step"] for s in steps]
    if x == "time":
        t0 = steps[0]["t"] if steps else 0.0
        return [s["t"] - t0 for s in steps]
    return [s["step"] / per_epoch for s in steps]


def epoch_xs(epochs: list[dict], per_epoch: float, x: str) -> list[float]:
    """Where each epoch record goes: its epoch, its last step, or its training time."""
    if x == "step":
        return [e["epoch"] * per_epoch for e in epochs]
    if x == "time":
        return [e.get("elapsed") or 0.0 for e in epochs]
    return [e["epoch"] for e in epochs]


def _run_curves(runs: Sequence[tuple]) -> list[tuple[str, list[dict], float]]:
    """``(label, epochs)`` or ``(label, epochs, steps_per_epoch)`` as the latter."""
    return [(r[0], r[1], r[2] if len(r) > 2 else 1.0) for r in runs]


def loss_figure(runs: Sequence[tuple[str, list[dict], list[dict], float]], smoothing: float,
                texts: dict[str, str], x: str = "epoch", log_y: bool = False) -> go.Figure:
    """Training loss per step (raw, faint; smoothed, bold) and test loss per epoch,
    for each ``(label, steps, epochs, steps_per_epoch)``, against ``x`` (see
    ``X_AXES``); ``log_y``: a log loss axis, so one diverging run does not flatten
    the others' curves. ``texts["x"]`` is the title of that axis."""
    fig = go.Figure()
    # One run: its two curves are named. Several: one legend entry per run (its colour)
    # and a grey key for the line styles, so the legend stays one or two rows and
    # never covers the curves (two entries per run did, at three runs).
    several = len(runs) > 1
    for i, (label, steps, epochs, per_epoch) in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        shown_in_legend = True  # the run's first trace carries its legend entry
        if steps:
            xs = step_xs(steps, per_epoch, x)
            raw = [s["loss"] for s in steps]
            tx, ty = thin(xs, smooth(raw, smoothing))
            if smoothing > 0:
                rx, ry = thin(xs, raw)
                fig.add_trace(go.Scatter(x=rx, y=ry, mode="lines", line=dict(color=color, width=1), opacity=0.25,
                                         name=f"{label} · {texts['raw']}", showlegend=False, hoverinfo="skip",
                                         legendgroup=label))
            fig.add_trace(go.Scatter(x=tx, y=ty, mode="lines", line=dict(color=color, width=2), legendgroup=label,
                                     name=label if several else texts["train_loss"],
                                     hovertemplate=f"{label} · {texts['train_loss']}: %{{y:.4g}}<extra></extra>"))
            shown_in_legend = not several
        if epochs:
            fig.add_trace(go.Scatter(x=epoch_xs(epochs, per_epoch, x), y=[e["test_loss"] for e in epochs],
                                     mode="markers+lines", line=dict(color=color, dash="dot"), legendgroup=label,
                                     marker=dict(size=8, symbol="diamond"), showlegend=shown_in_legend,
                                     name=label if several else texts["test_loss"],
                                     hovertemplate=f"{label} · {texts['test_loss']}: %{{y:.4g}}<extra></extra>"))
    if several:
        _line_style_key(fig, texts)
    if log_y:
        fig.update_yaxes(type="log")
    return _layout(fig, texts["x"], texts["y"])


def _line_style_key(fig: go.Figure, texts: dict[str, str]) -> None:
    """The key to the loss charts' line styles, in grey, after the runs: solid for the
    training loss, dotted diamonds for the test loss."""
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color="#868e96", width=2),
                             name=texts["train_loss"], legendgroup="~key"))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers+lines", line=dict(color="#868e96", dash="dot"),
                             marker=dict(size=8, symbol="diamond"), name=texts["test_loss"], legendgroup="~key"))


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _band(fig: go.Figure, points: Sequence[Point], color: str, name: str, group: str, dash: str | None = None,
          marker: str | None = None, showlegend: bool = True, transform=lambda v: v, fmt: str = ":.4g") -> None:
    """A mean line with a shaded ± one standard deviation band around it."""
    xs = [p.x for p in points]
    upper = [transform(p.mean + p.std) for p in points]
    lower = [transform(p.mean - p.std) for p in points]
    means = [transform(p.mean) for p in points]
    fig.add_trace(go.Scatter(x=xs + xs[::-1], y=upper + lower[::-1], fill="toself", fillcolor=_rgba(color, 0.18),
                             mode="lines", line=dict(width=0), hoverinfo="skip", showlegend=False, legendgroup=group))
    # per-epoch points also get whiskers: a band needs two epochs to show, a whisker one
    whiskers = dict(type="data", symmetric=False, color=color, thickness=1.5, width=4,
                    array=[abs(u - m) for u, m in zip(upper, means)],
                    arrayminus=[abs(m - lo) for m, lo in zip(means, lower)]) if marker else None
    fig.add_trace(go.Scatter(
        x=xs, y=means, mode="lines+markers" if marker else "lines", name=name,
        legendgroup=group, showlegend=showlegend, line=dict(color=color, width=2, dash=dash),
        marker=dict(size=8, symbol=marker) if marker else None, error_y=whiskers,
        customdata=[[p.mean, p.std, p.n] for p in points],
        hovertemplate=f"{name}: %{{customdata[0]{fmt}}} ± %{{customdata[1]{fmt}}} (n=%{{customdata[2]}})<extra></extra>"))


def group_curves(members: Sequence[tuple[Run, list[dict], list[dict]]], smoothing: float,
                 x: str = "epoch") -> tuple[list[Point], list[Point], list[Point]]:
    """A group's (training loss, test loss, test accuracy) curves from its runs'
    ``(run, steps, epochs)``: each run's training loss smoothed first, then the runs
    averaged step by step and epoch by epoch (``run_groups.curve``)."""
    train, test, accuracy = [], [], []
    for run, steps, epochs in members:
        per_epoch = steps_per_epoch(run)
        train.append(list(zip([s["step"] for s in steps], step_xs(steps, per_epoch, x),
                              smooth([s["loss"] for s in steps], smoothing))))
        ex = epoch_xs(epochs, per_epoch, x)
        test.append([(e["epoch"], xv, e.get("test_loss")) for e, xv in zip(epochs, ex)])
        accuracy.append([(e["epoch"], xv, e.get("test_accuracy")) for e, xv in zip(epochs, ex)])
    train_points = curve(train)
    if len(train_points) > MAX_POINTS:
        keep = set(range(0, len(train_points), math.ceil(len(train_points) / MAX_POINTS))) | {len(train_points) - 1}
        train_points = [p for i, p in enumerate(train_points) if i in keep]
    return train_points, curve(test), curve(accuracy)


def group_loss_figure(groups: Sequence[tuple[str, Sequence[Point], Sequence[Point]]], texts: dict[str, str],
                      log_y: bool = False) -> go.Figure:
    """Each ``(label, train_points, test_points)`` group: its runs' smoothed training
    loss and test loss as mean ± one standard deviation (``bigmodels.reports.run_groups``)."""
    fig = go.Figure()
    for i, (label, train, test) in enumerate(groups):
        color = PALETTE[i % len(PALETTE)]
        if train:
            _band(fig, train, color, label, label)
        if test:
            _band(fig, test, color, f"{label} · {texts['test_loss']}", label, dash="dot", marker="diamond",
                  showlegend=not train)
    if groups:
        _line_style_key(fig, texts)
    if log_y:
        fig.update_yaxes(type="log")
    return _layout(fig, texts["x"], texts["y"])


def group_accuracy_figure(groups: Sequence[tuple[str, Sequence[Point]]], texts: dict[str, str]) -> go.Figure:
    """Each ``(label, points)`` group's test accuracy after each epoch, mean ± one
    standard deviation, on ``accuracy_axis``."""
    values = [v for _, points in groups for p in points for v in (p.mean - p.std, p.mean + p.std)]
    axis = accuracy_axis(values)
    on_error_axis = axis.get("type") == "log"
    fig = go.Figure()
    for i, (label, points) in enumerate(groups):
        _band(fig, points, PALETTE[i % len(PALETTE)], label, label, marker="circle",
              transform=(lambda v: max(1 - v, 1e-4)) if on_error_axis else (lambda v: v), fmt=":.2%")
    fig.update_yaxes(**axis)
    return _layout(fig, texts["x"], texts["y"])


# An error-rate axis is logarithmic; these are its ticks, labelled as accuracies.
_ERROR_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
WIDE_SPREAD = 0.15  # accuracies further apart than this are drawn on the error-rate axis


def accuracy_axis(values: Sequence[float]) -> dict[str, Any]:
    """A y axis that keeps every run readable. Close accuracies (the usual case)
    get a linear axis zoomed on them; when one weak run is far below the others,
    the axis shows the error rate on a log scale (labelled as accuracy, best at the
    top), so 98.9% and 99.2% stay apart while 40% is still on the chart."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return dict(tickformat=".0%", range=[0.0, 1.0])
    low, high = min(values), max(values)
    if high - low <= WIDE_SPREAD:
        floor = max(0.0, low - max(0.02, (high - low) * 0.15))
        return dict(tickformat=".1%", range=[floor, min(1.0, high + (high - floor) * 0.08) + 0.001])
    errors = [max(1 - v, 1e-4) for v in values]
    top, bottom = min(errors) * 0.7, min(1.0, max(errors) * 1.3)
    ticks = [e for e in _ERROR_TICKS if top <= e <= bottom]
    return dict(type="log", range=[math.log10(bottom), math.log10(top)], tickvals=ticks,
                ticktext=[f"{1 - e:.1%}".replace(".0%", "%") for e in ticks])


def accuracy_figure(runs: Sequence[tuple], texts: dict[str, str], x: str = "epoch") -> go.Figure:
    """Test accuracy after each epoch, one line per ``(label, epochs[, steps_per_epoch])``,
    against ``x``; the y axis from ``accuracy_axis``."""
    curves = _run_curves(runs)
    values = [e["test_accuracy"] for _, epochs, _ in curves for e in epochs if e.get("test_accuracy") is not None]
    axis = accuracy_axis(values)
    on_error_axis = axis.get("type") == "log"
    fig = go.Figure()
    for i, (label, epochs, per_epoch) in enumerate(curves):
        ys = [e["test_accuracy"] for e in epochs]
        fig.add_trace(go.Scatter(
            x=epoch_xs(epochs, per_epoch, x), y=[max(1 - v, 1e-4) for v in ys] if on_error_axis else ys,
            customdata=ys, hovertemplate="%{customdata:.2%}", mode="markers+lines", name=label,
            line=dict(color=PALETTE[i % len(PALETTE)])))
    fig.update_yaxes(**axis)
    return _layout(fig, texts["x"], texts["y"])


def confusion_figure(confusion: list[list[int]], texts: dict[str, str]) -> go.Figure:
    """confusion[true][predicted] as a heat map, digits 0-9 on both axes, the
    diagonal (correct answers) left out of the colour scale so mistakes show."""
    n = len(confusion)
    digits = [str(d) for d in range(n)]
    off = [[0 if t == p else c for p, c in enumerate(row)] for t, row in enumerate(confusion)]
    fig = go.Figure(go.Heatmap(z=off, x=digits, y=digits, colorscale="Reds", text=confusion, texttemplate="%{text}",
                               hovertemplate=texts["hover"] + "<extra></extra>", showscale=False))
    fig.update_yaxes(autorange="reversed", type="category", title=texts["true"])
    fig.update_xaxes(type="category", title=texts["predicted"], side="top")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def per_class_figure(per_class: list[float], texts: dict[str, str]) -> go.Figure:
    """Accuracy on each digit's test images, zoomed on the range they span."""
    fig = go.Figure(go.Bar(x=[str(d) for d in range(len(per_class))], y=per_class, marker_color=PALETTE[0],
                           text=[f"{v:.1%}" for v in per_class], textposition="outside", cliponaxis=False))
    floor = max(0.0, min(per_class, default=0.0) - 0.05)
    fig.update_yaxes(tickformat=".0%" if floor < 0.5 else ".1%", range=[floor, 1.0])
    fig.update_xaxes(type="category")
    return _layout(fig, texts["x"], texts["y"], height=360)


def system_figure(samples: list[dict], texts: dict[str, str]) -> go.Figure:
    """The device session's CPU utilisation (left axis, % of one core) and memory (right
    axis), and GPU utilisation and memory when it recorded them, over seconds."""
    fig = go.Figure()
    if samples:
        t0 = samples[0]["t"]
        xs = [s["t"] - t0 for s in samples]

        def add(key: str, name: str, color: str, right: bool, scale: float = 1.0, dash: str | None = None):
            ys = [None if s[key] is None else s[key] / scale for s in samples]
            if any(y is not None for y in ys):
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=name, yaxis="y2" if right else "y",
                                         line=dict(color=color, dash=dash)))
        add("cpu_percent", texts["cpu"], PALETTE[0], False)
        add("gpu_percent", texts["gpu"], PALETTE[2], False, dash="dot")
        add("memory_bytes", texts["memory"], PALETTE[1], True, scale=2**20)
        add("gpu_memory_bytes", texts["gpu_memory"], PALETTE[3], True, scale=2**20, dash="dot")
    fig.update_layout(yaxis=dict(title=texts["percent"], rangemode="tozero"),
                      yaxis2=dict(title=texts["mib"], overlaying="y", side="right", rangemode="tozero",
                                  showgrid=False))
    return _layout(fig, texts["x"], texts["percent"], height=300)


# ------------------------------------------------------------ comparison
HYPERPARAMETERS = ("model", "preset", *settings())  # every TrainConfig setting, in declaration order
RESULT_KEYS = ("best_accuracy", "final_accuracy", "samples_per_second", "duration_s", "device")


def _overrides_text(run: Run) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(run.config.get("model_overrides", {}).items())) or ""


def run_settings(run: Run) -> dict[str, Any]:
    """Every setting of ``run`` as compared: the config's, its model settings, processes."""
    return {**{key: run.config.get(key) for key in HYPERPARAMETERS}, "model_overrides": _overrides_text(run),
            "processes": run.world_size}


def differing_settings(runs: Sequence[Run]) -> list[str]:
    """The settings (keys of ``run_settings``) on which the runs do not all agree."""
    values = [run_settings(r) for r in runs]
    return [k for k in values[0] if len({repr(v[k]) for v in values}) > 1] if values else []


def comparison_rows(runs: Sequence[Run], only_differences: bool = False) -> list[dict[str, Any]]:
    """One row per run: its settings and its results, ready for a table or CSV.
    ``only_differences``: only the settings that differ between these runs."""
    keep = differing_settings(runs) if only_differences else None
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run.id, "name": table_text(run.title), "status": run.status}
        row.update({k: v for k, v in run_settings(run).items() if keep is None or k in keep})
        row["best_accuracy"] = run.best_accuracy
        row["final_accuracy"] = run.final_accuracy
        row["samples_per_second"] = run.samples_per_second
        row["duration_s"] = run.duration()
        row["device"] = run.device or run.target
        rows.append(row)
    return rows


def scientific(value: float) -> str:
    """A learning rate as people write it: 1e-3, 3e-4, 2.5e-3."""
    mantissa, exponent = f"{value:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def parallel_coordinates(runs: Sequence[Run], texts: dict[str, str]) -> go.Figure | None:
    """Settings against result: one line per run, coloured by best test accuracy.
    Every setting on which the runs differ gets an axis (plus the accuracy), each
    spanning exactly the values present: numbers on a numeric axis, the learning
    rate on a log axis whose ticks read as learning rates (1e-3), anything else
    (the model, the optimizer, model settings) as named categories. ``texts`` names
    each setting (a missing name shows the setting's key). None when no setting
    differs: an axis of accuracies alone is not a chart."""
    keys = differing_settings(runs)
    if not runs or not keys:
        return None

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    dims = []
    for key in keys:
        values = [run_settings(r)[key] for r in runs]
        label = texts.get(key, key)
        if key == "lr" and all(is_number(v) and v > 0 for v in values):
            distinct = sorted(set(values))
            dims.append(dict(label=texts.get("lr_log", label), values=[math.log10(v) for v in values],
                             tickvals=[math.log10(v) for v in distinct], ticktext=[scientific(v) for v in distinct]))
        elif all(is_number(v) for v in values):
            dims.append(dict(label=label, values=[float(v) for v in values]))
        else:
            shown = ["–" if v in (None, "") else str(v) for v in values]
            cats = sorted(set(shown))
            dims.append(dict(label=label, values=[cats.index(v) for v in shown], tickvals=list(range(len(cats))),
                             ticktext=cats))
    accuracies = [r.best_accuracy if r.best_accuracy is not None else 0.0 for r in runs]
    dims.append(dict(label=texts["accuracy"], values=accuracies, tickformat=".1%"))
    fig = go.Figure(go.Parcoords(line=dict(color=accuracies, colorscale="Viridis", showscale=True,
                                           colorbar=dict(title=texts["accuracy"], tickformat=".1%")),
                                 dimensions=dims))
    fig.update_layout(height=380, margin=dict(l=60, r=40, t=50, b=20))
    return fig


# ------------------------------------------------------------------ CSV
# A spreadsheet runs a cell that starts with one of these as a formula (OWASP, "CSV Injection"); the
# full-width forms too, which some localised spreadsheets read as the ASCII ones.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: Any) -> Any:
    """A cell as written to a CSV export: text that a spreadsheet would run as a formula
    gets a leading ``'`` (OWASP's escape: the cell is shown as text, the quote hidden);
    numbers, including negative ones, are written as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def table_text(value: Any) -> Any:
    """A person's text as a table on a page shows it: the table's own CSV download
    (Streamlit's dataframe toolbar) escapes nothing, so text a spreadsheet would run
    as a formula starts with an invisible WORD_JOINER there instead of ``'``: the page
    shows it unchanged, and a spreadsheet reads text."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return WORD_JOINER + value
    return value


class _EscapingWriter:
    """csv.writer that passes every cell through csv_cell (quoting stays csv's: a cell
    holding a comma, quote or newline is quoted and its quotes doubled)."""

    def __init__(self, out: io.StringIO):
        self._writer = csv.writer(out)

    def writerow(self, row: Sequence[Any]) -> None:
        self._writer.writerow([csv_cell(v) for v in row])


EPOCH_COLUMNS = ("epoch", "train_loss", "test_loss", "test_accuracy", "samples_per_second", "lr", "elapsed",
                 "memory_bytes")


# A per-epoch column's name in the export where it would repeat a setting's (the setting
# "lr" is the peak rate asked for; the epoch's is the rate the schedule had reached).
EPOCH_HEADINGS = {"lr": "lr_at_epoch_end"}


def epochs_csv(runs: Sequence[tuple[Run, list[dict]]]) -> str:
    """Per-epoch metrics of several runs, with each run's settings, one row per epoch.
    A per-epoch column no run recorded (device memory, on a CPU) is left out."""
    out = io.StringIO()
    writer = _EscapingWriter(out)
    recorded = [c for c in EPOCH_COLUMNS if any(e.get(c) is not None for _, epochs in runs for e in epochs)]
    writer.writerow(["run", "name", *HYPERPARAMETERS, "processes", *(EPOCH_HEADINGS.get(c, c) for c in recorded)])
    for run, epochs in runs:
        settings = [run.config.get(k) for k in HYPERPARAMETERS]
        for record in epochs:
            writer.writerow([run.id, run.title, *settings, run.world_size, *(record.get(c) for c in recorded)])
    return out.getvalue()


def steps_csv(runs: Sequence[tuple[Run, list[dict]]]) -> str:
    """Per-step training loss and learning rate of several runs."""
    out = io.StringIO()
    writer = _EscapingWriter(out)
    writer.writerow(["run", "step", "epoch", "loss", "lr", "time"])
    for run, steps in runs:
        for s in steps:
            writer.writerow([run.id, s["step"], s["epoch"], s["loss"], s["lr"], s["t"]])
    return out.getvalue()
