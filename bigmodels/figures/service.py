"""Figures for the service page: throughput, latency percentiles, batch sizes,
errors, and load-generator runs side by side.

Pure functions from ``bigmodels.serving.metrics.Summary`` (and load reports) to
plotly figures; the page passes translated labels in.
"""
from __future__ import annotations

import plotly.graph_objects as go

from bigmodels.serving.metrics import Summary

HEIGHT = 250
MARGIN = {"l": 10, "r": 10, "t": 36, "b": 10}
RUN_COLOURS = ["#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#5f3dc4", "#0b7285", "#a61e4d", "#5c940d"]
COLOURS = {"p50": "#3b5bdb", "p95": "#e8590c", "p99": "#c2255c", "rps": "#2b8a3e", "batch": "#5f3dc4",
           "error": "#e03131"}


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=HEIGHT, margin=MARGIN,
                      xaxis_title=x_title, yaxis_title=y_title, legend={"orientation": "h", "y": -0.3},
                      hovermode="x unified")
    return fig


def throughput_figure(summary: Summary, labels: dict[str, str]) -> go.Figure:
    fig = go.Figure(go.Bar(x=summary.seconds, y=summary.requests_per_s, marker_color=COLOURS["rps"],
                           name=labels["rps"]))
    return _layout(fig, labels["throughput_title"], labels["seconds_ago"], labels["rps"])


def latency_figure(summary: Summary, labels: dict[str, str]) -> go.Figure:
    fig = go.Figure()
    for name, values in (("p50", summary.p50_ms), ("p95", summary.p95_ms), ("p99", summary.p99_ms)):
        fig.add_trace(go.Scatter(x=summary.seconds, y=values, mode="lines+markers", name=name, connectgaps=False,
                                 line={"color": COLOURS[name], "width": 2}, marker={"size": 4}))
    return _layout(fig, labels["latency_title"], labels["seconds_ago"], labels["ms"])


def _count_bars(counts: dict[int, int], colour: str, title: str, x_title: str, y_title: str) -> go.Figure:
    keys = list(counts)
    fig = go.Figure(go.Bar(x=[str(k) for k in keys], y=[counts[k] for k in keys], marker_color=colour))
    fig.update_xaxes(type="category")  # batch sizes and statuses are names, not a scale
    return _layout(fig, title, x_title, y_title)


def batch_figure(summary: Summary, labels: dict[str, str]) -> go.Figure:
    return _count_bars(summary.batch_sizes, COLOURS["batch"], labels["batch_title"], labels["batch_size"],
                       labels["requests"])


def errors_figure(summary: Summary, labels: dict[str, str]) -> go.Figure:
    return _count_bars(summary.errors, COLOURS["error"], labels["errors_title"], labels["status"], labels["requests"])


def load_runs_figure(runs: list[dict], labels: dict[str, str]) -> go.Figure:
    """Load runs side by side as serving dashboards draw them: throughput (images/s on
    this machine's device) against latency per request. Each run is a point at its
    median latency with a whisker to its p99; up and to the left is better, so a
    batching gain reads as a point that rose without moving right."""
    fig = go.Figure()
    for i, run in enumerate(runs):
        p50, p99 = run.get("p50_ms"), run.get("p99_ms")
        if p50 is None or not run.get("images_per_s"):
            continue  # a run that got no answer has no place on this chart (its row in the table says why)
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        fig.add_trace(go.Scatter(
            x=[p50], y=[run["images_per_s"]], mode="markers", name=run["label"],
            marker={"size": 12, "color": colour},
            error_x={"type": "data", "symmetric": False, "array": [max(0.0, (p99 or p50) - p50)], "arrayminus": [0],
                     "color": colour, "thickness": 2, "width": 6},
            hovertemplate=(f"<b>{run['label']}</b><br>%{{y:,.0f}} {labels['images_per_s']}<br>p50 %{{x:.1f}} "
                           f"{labels['ms']} · p99 {p99 if p99 is not None else float('nan'):.1f} {labels['ms']}"
                           "<extra></extra>")))
    fig.update_xaxes(rangemode="tozero")
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(legend={"orientation": "h", "y": -0.35}, hovermode="closest")
    _layout(fig, labels["runs_title"], labels["latency_axis"], labels["images_per_s"])
    fig.update_layout(height=HEIGHT + 90, hovermode="closest")  # room for one legend row per run or two
    return fig


# ------------------------------------------------------------------ tables
def load_run_label(model_id: str, settings: dict, images_per_request: int, concurrency: int,
                   rate: float | None = None) -> str:
    """What distinguishes one load run from another, short: model, replicas, batching, images
    per request, and the load: ``32∥`` in flight as fast as answered, or ``50/s`` offered."""
    replicas = f"≤{settings['replicas']}" if settings.get("autoscale") else str(settings["replicas"])
    load = f"{concurrency}∥" if rate is None else f"{rate:g}/s"
    return (f"{model_id} · {replicas}× · b{settings['max_batch_size']}/{settings['batch_wait_ms']:g}ms"
            f" · {images_per_request}img · {load}")


def key_rows(keys, usage, headings: dict[str, str], status_words: dict[str, str]) -> list[dict]:
    """One row per key and model used (a key never used has one row), for the keys table."""
    by_key: dict[str, list] = {}
    for u in usage:
        by_key.setdefault(u.key_id, []).append(u)
    rows = []
    for key in keys:
        for u in by_key.get(key.id) or [None]:
            rows.append({headings["name"]: key.name, headings["id"]: key.id,
                         headings["status"]: status_words["revoked" if key.revoked else "active"],
                         headings["rate"]: key.rate_per_s,
                         headings["quota"]: key.quota_images or None,
                         headings["model"]: u.model if u else "",
                         headings["requests"]: u.requests if u else 0, headings["images"]: u.images if u else 0,
                         headings["compute_ms"]: round(u.compute_ms, 1) if u else 0.0})
    return rows
