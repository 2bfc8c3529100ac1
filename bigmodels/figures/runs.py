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


def loss_figure(runs: Sequence[tuple[str, list[dict], list[dict], float]], smoothing: float,
                texts: dict[str, str]) -> go.Figure:
    """Training loss per step (raw, faint; smoothed, bold) and test loss per epoch,
    for each ``(label, steps, epochs, steps_per_epoch)``; x is training progress in
    epochs, so runs with different batch sizes line up."""
    fig = go.Figure()
    for i, (label, steps, epochs, per_epoch) in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        if steps:
            xs = [s["step"] / per_epoch for s in steps]
            raw = [s["loss"] for s in steps]
            tx, ty = thin(xs, smooth(raw, smoothing))
            if smoothing > 0:
                rx, ry = thin(xs, raw)
                fig.add_trace(go.Scatter(x=rx, y=ry, mode="lines", line=dict(color=color, width=1), opacity=0.25,
                                         name=f"{label} · {texts['raw']}", showlegend=False, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=tx, y=ty, mode="lines", line=dict(color=color, width=2),
                                     name=f"{label} · {texts['train_loss']}"))
        if epochs:
            fig.add_trace(go.Scatter(x=[e["epoch"] for e in epochs], y=[e["test_loss"] for e in epochs],
                                     mode="markers+lines", line=dict(color=color, dash="dot"),
                                     marker=dict(size=8, symbol="diamond"), name=f"{label} · {texts['test_loss']}"))
    return _layout(fig, texts["x"], texts["y"])


def accuracy_figure(runs: Sequence[tuple[str, list[dict]]], texts: dict[str, str]) -> go.Figure:
    """Test accuracy after each epoch, one line per ``(label, epochs)``."""
    fig = go.Figure()
    for i, (label, epochs) in enumerate(runs):
        fig.add_trace(go.Scatter(x=[e["epoch"] for e in epochs], y=[e["test_accuracy"] for e in epochs],
                                 mode="markers+lines", name=label, line=dict(color=PALETTE[i % len(PALETTE)])))
    values = [e["test_accuracy"] for _, epochs in runs for e in epochs if e.get("test_accuracy") is not None]
    low = max(0.0, min(values) - 0.02) if values else 0.0  # accuracy lives near the top: show that part
    fig.update_yaxes(tickformat=".1%", range=[low, 1.0 + (1.0 - low) * 0.03])
    return _layout(fig, texts["x"], texts["y"])


# ------------------------------------------------------------ comparison
HYPERPARAMETERS = ("model", "preset", *settings())  # every TrainConfig setting, in declaration order


def comparison_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One row per run: its settings and its results, ready for a table or CSV."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run.id, "status": run.status}
        for key in HYPERPARAMETERS:
            row[key] = run.config.get(key)
        row["model_overrides"] = ", ".join(f"{k}={v}" for k, v in sorted(run.config.get("model_overrides",
                                                                                         {}).items())) or ""
        row["processes"] = run.world_size
        row["best_accuracy"] = run.best_accuracy
        row["final_accuracy"] = run.final_accuracy
        row["samples_per_second"] = run.samples_per_second
        row["duration_s"] = run.duration()
        row["device"] = run.device or run.target
        rows.append(row)
    return rows


def parallel_coordinates(runs: Sequence[Run], texts: dict[str, str]) -> go.Figure:
    """Settings against result: one line per run, coloured by best test accuracy.
    The learning rate is on a log scale (log10), categories get integer ticks."""
    dims = []
    if not runs:
        return go.Figure()

    def categorical(label: str, values: list[str]) -> dict:
        cats = sorted(set(values))
        return dict(label=label, values=[cats.index(v) for v in values], tickvals=list(range(len(cats))),
                    ticktext=cats, range=[-0.5, len(cats) - 0.5] if len(cats) == 1 else None)

    def numeric(label: str, values: list[float]) -> dict:
        lo, hi = min(values), max(values)
        pad = abs(lo) * 0.1 or 1.0
        return dict(label=label, values=values, range=[lo - pad, hi + pad] if lo == hi else [lo, hi])

    configs = [r.config for r in runs]
    dims.append(categorical(texts["model"], [c["model"] for c in configs]))
    dims.append(categorical(texts["optimizer"], [c["optimizer"] for c in configs]))
    dims.append(numeric(texts["log_lr"], [math.log10(c["lr"]) for c in configs]))
    dims.append(numeric(texts["batch_size"], [float(c["batch_size"]) for c in configs]))
    dims.append(numeric(texts["epochs"], [float(c["epochs"]) for c in configs]))
    dims.append(numeric(texts["weight_decay"], [float(c["weight_decay"]) for c in configs]))
    dims.append(numeric(texts["label_smoothing"], [float(c["label_smoothing"]) for c in configs]))
    accuracies = [r.best_accuracy if r.best_accuracy is not None else 0.0 for r in runs]
    dims.append(dict(label=texts["accuracy"], values=accuracies, range=[min(accuracies), max(accuracies)]
                     if min(accuracies) < max(accuracies) else [0, 1]))
    for d in dims:
        if d.get("range") is None:
            d.pop("range", None)
    fig = go.Figure(go.Parcoords(line=dict(color=accuracies, colorscale="Viridis", showscale=True,
                                           colorbar=dict(title=texts["accuracy"], tickformat=".1%")),
                                 dimensions=dims))
    fig.update_layout(height=380, margin=dict(l=60, r=40, t=50, b=20))
    return fig


# ------------------------------------------------------------------ CSV
EPOCH_COLUMNS = ("epoch", "train_loss", "test_loss", "test_accuracy", "samples_per_second", "lr", "elapsed",
                 "memory_bytes")


def epochs_csv(runs: Sequence[tuple[Run, list[dict]]]) -> str:
    """Per-epoch metrics of several runs, with each run's settings, one row per epoch."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run", *HYPERPARAMETERS, "processes", *EPOCH_COLUMNS])
    for run, epochs in runs:
        settings = [run.config.get(k) for k in HYPERPARAMETERS]
        for record in epochs:
            writer.writerow([run.id, *settings, run.world_size, *(record.get(c) for c in EPOCH_COLUMNS)])
    return out.getvalue()


def steps_csv(runs: Sequence[tuple[Run, list[dict]]]) -> str:
    """Per-step training loss and learning rate of several runs."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run", "step", "epoch", "loss", "lr", "time"])
    for run, steps in runs:
        for s in steps:
            writer.writerow([run.id, s["step"], s["epoch"], s["loss"], s["lr"], s["t"]])
    return out.getvalue()
