"""The architecture comparison: measured numbers per model, the side-by-side
table, the charts and the mistake gallery -- all without Streamlit.

A model on the page is an ``Entry``: a model source (shipped weights or a
finished run) plus a dict of metrics with the keys ``python -m bigmodels eval``
writes to ``bigmodels/weights/metrics.json`` (accuracy, per-class accuracy,
confusion, predictions, confidences, latency, throughput, parameters, MACs,
disk bytes, history, device and date). Shipped models take theirs from
metrics.json when it describes the very checkpoint on disk; every other model
is evaluated here by ``evaluate_source`` with the same code. Peak memory is not
in metrics.json: ``remeasure`` measures it, with latency and throughput, in a
fresh process.

Run as ``python -m bigmodels.analysis.comparison measure CHECKPOINT`` it is that
fresh process.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import json
import math
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch.nn import functional as F

from bigmodels.analysis.evaluation import measure_speed, metrics_entry, plain_json, split_fingerprint
from bigmodels.child_process import child_env
from bigmodels.data.digits import enlarge
from bigmodels.data.mnist import MNIST
from bigmodels.figures.labels import place_labels
from bigmodels.formatting import log_axis
from bigmodels.i18n import translate
from bigmodels.models.checkpoints import CheckpointError, atomic_write_bytes, load_checkpoint, model_from_checkpoint
from bigmodels.models.registry import get_spec
from bigmodels.models.sources import ModelSource
from bigmodels.provenance import provenance
from bigmodels.runs.store import home_dir, run_history as store_history

INFER_BATCH = 256  # peak memory of one inference batch of this size
TRAIN_BATCH = 128  # ... and of one Adam training step at this batch size
FAMILY_COLOURS = {"CNN": "#1971c2", "RNN": "#e8590c", "Transformer": "#2b8a3e"}
ORIGIN_SYMBOLS = {"shipped": "circle", "run": "diamond"}


# ---------------------------------------------------------------- entries
@dataclass
class Entry:
    source: ModelSource
    metrics: dict[str, Any]
    from_metrics_json: bool  # True: shipped metrics.json; False: evaluated by this app

    @property
    def label(self) -> str:
        return self.source.label

    @property
    def family(self) -> str:
        return get_spec(self.source.model_name).family

    @property
    def history(self) -> list[dict]:
        return list(self.metrics.get("history") or [])


def comparison_home() -> Path:
    """Where the page keeps what it measured (beside the launcher's run store)."""
    return home_dir() / "comparison"


def file_fingerprint(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def shipped_metrics_match(source: ModelSource, metrics: dict[str, Any], payload: dict[str, Any]) -> bool:
    """Whether a metrics.json entry was measured on this checkpoint: same model,
    same config and the same training history (a retrained file differs)."""
    return (metrics.get("model") == source.model_name == payload.get("model_name")
            and plain_json(metrics.get("model_config")) == plain_json(payload.get("model_config"))
            and plain_json(metrics.get("history")) == plain_json(payload.get("history")))


def run_history(source: ModelSource, payload: dict[str, Any]) -> list[dict]:
    """Per-epoch records: the launcher's run store for runs, else the checkpoint's own."""
    if source.run_id is not None:
        try:
            history = store_history(source.run_id)
        except (RuntimeError, OSError):  # an unreadable store
            history = None
        if history:
            return list(history)
    return list(payload.get("history") or [])


def evaluate_source(source: ModelSource, data: MNIST, timing: bool = True) -> dict[str, Any]:
    """The metrics ``python -m bigmodels eval`` would write, measured here now on
    ``data`` (with a run's history from the run store)."""
    payload = load_checkpoint(source.checkpoint)
    return metrics_entry(source.checkpoint, payload, model_from_checkpoint(payload), data, timing=timing,
                         history=run_history(source, payload))


def predictions_fit(metrics: dict[str, Any], data: MNIST) -> bool:
    """Whether ``metrics``' per-image predictions index the test split in ``data``.

    Entries this app evaluated carry the test set's key. metrics.json entries
    do not: there, the data source, the number of test images and the number
    of images per class (the confusion matrix's row sums) must all agree."""
    predictions = metrics.get("predictions")
    if not predictions or len(predictions) != len(data.test_labels):
        return False
    if "test_set" in metrics:
        return metrics["test_set"] == split_fingerprint(data)
    if metrics.get("data_source") != data.source:
        return False
    per_class = torch.bincount(data.test_labels, minlength=10).tolist()
    return [sum(row) for row in metrics.get("confusion", [])] == per_class


# ----------------------------------------------------------- peak memory
def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_rss_peak() -> None:
    # Linux >= 4.0: writing 5 resets the high-water mark (VmHWM) to the current RSS.
    Path("/proc/self/clear_refs").write_text("5")


def _release_freed_memory() -> None:
    """Ask glibc to return freed heap pages to the system, so the next phase's
    resident-set baseline holds only live data (a no-op elsewhere)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _one_pass(model: torch.nn.Module, x_infer, x_train, y_train, sync) -> tuple[Callable, Callable]:
    """Returns the two phases measured: one inference batch; one Adam step."""
    def infer():
        model.eval()
        with torch.no_grad():
            model(x_infer)
        sync()

    def train_step():
        model.train()
        optimizer = torch.optim.Adam(model.parameters())
        F.cross_entropy(model(x_train), y_train).backward()
        optimizer.step()
        sync()

    return infer, train_step


def peak_memory_in_this_process(checkpoint: str, device: str = "cpu", infer_batch: int = INFER_BATCH,
                                train_batch: int = TRAIN_BATCH) -> dict[str, Any]:
    """Peak memory that the model adds, in bytes: the weights plus everything
    one inference batch, and then one Adam training step (forward, backward,
    update: gradients and the optimizer's two moments), hold at their peak.
    Meant for a fresh process (see ``remeasure``).

    A warm-up copy of the model runs both phases first and is thrown away, so
    the one-time cost of loading PyTorch's kernels (code pages, thread pools)
    is not charged to the model; the baseline is taken after that, before the
    measured model is loaded. CPU: the kernel's resident-set high-water mark
    (VmHWM), reset before each phase. CUDA: ``torch.cuda.max_memory_allocated``."""
    dev = torch.device(device)
    x_infer = torch.zeros(infer_batch, 1, 28, 28, device=dev)
    x_train = torch.zeros(train_batch, 1, 28, 28, device=dev)
    y_train = torch.zeros(train_batch, dtype=torch.long, device=dev)
    if dev.type == "cuda":
        method = "torch.cuda.max_memory_allocated"
        sync = lambda: torch.cuda.synchronize(dev)  # noqa: E731
        current = lambda: torch.cuda.memory_allocated(dev)  # noqa: E731
        peak = lambda: torch.cuda.max_memory_allocated(dev)  # noqa: E731
        reset = lambda: torch.cuda.reset_peak_memory_stats(dev)  # noqa: E731
    else:
        method = "VmHWM (peak resident set), Linux /proc"
        sync = lambda: None  # noqa: E731
        current, peak, reset = (lambda: _rss_bytes("VmRSS")), (lambda: _rss_bytes("VmHWM")), _reset_rss_peak

    warm = model_from_checkpoint(checkpoint, dev)
    for phase in _one_pass(warm, x_infer, x_train, y_train, sync):
        phase()
    del warm, phase
    _release_freed_memory()

    reset()
    baseline = current()
    model = model_from_checkpoint(checkpoint, dev)
    infer, train_step = _one_pass(model, x_infer, x_train, y_train, sync)
    infer()
    inference = peak() - baseline
    _release_freed_memory()
    reset()
    train_step()
    training = peak() - baseline
    return {"peak_inference_bytes": inference, "peak_training_bytes": training, "infer_batch": infer_batch,
            "train_batch": train_batch, "memory_method": method, "memory_device": str(dev)}


def peak_memory_supported(device: str = "cpu") -> bool:
    if torch.device(device).type == "cuda":
        return torch.cuda.is_available()
    return Path("/proc/self/clear_refs").exists() and Path("/proc/self/status").exists()


def _heap_for_speed() -> None:
    """Undo the memory phase's malloc setting: with large thresholds, freed
    activations are reused from the heap instead of being mapped afresh (and
    page-faulted in) on every call, as in a normal process."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 * 2**20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 512 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def measure_in_this_process(checkpoint: str, device: str = "cpu", repeats: int = 50) -> dict[str, Any]:
    """Peak memory (when this platform can measure it), then latency and
    throughput, of one checkpoint; meant for a fresh process."""
    out: dict[str, Any] = {}
    if peak_memory_supported(device):
        out |= peak_memory_in_this_process(checkpoint, device)
    _heap_for_speed()
    out |= measure_speed(model_from_checkpoint(checkpoint, device), repeats=repeats)
    return out | provenance(device)


def remeasure(source: ModelSource, device: str = "cpu", repeats: int = 50, timeout: float = 600) -> dict[str, Any]:
    """Latency, throughput and peak memory of one model, measured now on this
    machine in a fresh Python process -- so nothing the app holds is counted,
    and no other thread of the app competes with the timings. glibc is told to
    give large blocks back to the system at once, so that the resident set
    follows the tensors that are alive. Raises ``RuntimeError`` with the
    child's message; ``CheckpointError`` for a bad file, before starting anything."""
    load_checkpoint(source.checkpoint)
    env = child_env(MALLOC_MMAP_THRESHOLD_="131072")
    proc = subprocess.run(
        [sys.executable, "-m", "bigmodels.analysis.comparison", "measure", str(source.checkpoint), "--device", device,
         "--repeats", str(repeats)],
        capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"measuring process exited with {proc.returncode}")
    return {"fingerprint": file_fingerprint(source.checkpoint), **json.loads(proc.stdout.strip().splitlines()[-1])}


# ------------------------------------------------------- measurement store
class MeasurementStore:
    """A JSON file of measurements keyed by name, written atomically. A
    damaged file is reported in ``error`` and treated as empty (and replaced on
    the next write), so one bad file never takes the page down."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.error: str | None = None

    def read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.error = f"{self.path}: unreadable ({exc})"
            return {}
        if not isinstance(data, dict):
            self.error = f"{self.path}: expected a JSON object"
            return {}
        return data

    def get(self, key: str) -> dict[str, Any] | None:
        value = self.read().get(key)
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        data = self.read()
        data[key] = value
        atomic_write_bytes(self.path, json.dumps(data, sort_keys=True).encode())
        self.error = None


def measurement_key(source: ModelSource, fingerprint: str, device: str) -> str:
    return f"{source.id}@{fingerprint}@{device}"


# ------------------------------------------------------------------ table
def _mb(n: float | None) -> float | None:
    return None if n is None else n / 2**20


def timings(entry: Entry, here: dict[str, Any] | None) -> dict[str, Any]:
    """Where a model's latency and throughput come from: a re-measurement a
    person asked for (``requested``), else the entry's own evaluation when it
    timed the model (metrics.json does), else the measurement the page started
    by itself. That one is not preferred when there is a choice: it may have
    run while the machine was busy with other work."""
    if here and "latency_ms_batch1" in here and (here.get("requested")
                                                 or entry.metrics.get("latency_ms_batch1") is None):
        return here
    return entry.metrics


_CPU_NAME = re.compile(r"CPU: (?P<processor>.+), (?P<threads>\d+) threads of (?P<cores>\d+) cores")


def device_text(name: str, lang: str) -> str:
    """A measurement's device (``describe_device``'s words) in ``lang``: the CPU
    line is translated; a GPU's name is a proper name and stays."""
    found = _CPU_NAME.fullmatch(name or "")
    return translate("comparison.device.cpu", lang, **found.groupdict()) if found else name


def table_rows(entries: Sequence[Entry], measured: dict[str, dict | None], lang: str) -> list[dict[str, Any]]:
    """One row per model. ``measured[source.id]`` holds this machine's
    re-measurement (peak memory, timings) or None."""
    rows = []
    for e in entries:
        m, here = e.metrics, measured.get(e.source.id) or {}
        timing = timings(e, here)
        n_test = len(m.get("predictions") or []) or sum(sum(r) for r in m.get("confusion", []))
        data_word = "comparison.data.sample" if m.get("data_source") == "sample" else "comparison.data.full"
        rows.append({
            "model": e.label,
            "family": e.family,
            "parameters": m.get("parameters"),
            "macs": m.get("macs_per_image"),
            "disk_mb": _mb(m.get("disk_bytes")),
            "accuracy": 100 * m["accuracy"] if m.get("accuracy") is not None else None,
            "train_s_per_epoch": m.get("train_seconds_per_epoch"),
            "latency_ms": timing.get("latency_ms_batch1"),
            "throughput": round(timing["throughput_batch256"]) if timing.get("throughput_batch256") else None,
            "peak_infer_mb": _mb(here.get("peak_inference_bytes")),
            "peak_train_mb": _mb(here.get("peak_training_bytes")),
            "test_data": translate(data_word, lang, n=f"{n_test:,}"),
            "measured": f"{device_text(timing.get('device_name', '?'), lang)} · {str(timing.get('measured_at', ''))[:10]}",
        })
    return rows


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


# ---------------------------------------------------------- mistake gallery
@dataclass(frozen=True)
class Mistake:
    index: int  # into the test split
    true: int
    predicted: int
    confidence: float


def mistakes(metrics: dict[str, Any], labels: torch.Tensor, limit: int = 12) -> list[Mistake]:
    """The model's wrong answers, most confident first (the most telling ones)."""
    predictions, confidences = metrics["predictions"], metrics["confidences"]
    wrong = [i for i, (p, y) in enumerate(zip(predictions, labels.tolist())) if p != y]
    wrong.sort(key=lambda i: -confidences[i])
    return [Mistake(i, int(labels[i]), predictions[i], confidences[i]) for i in wrong[:limit]]


def right_here_wrong_there(right: dict[str, Any], wrong: dict[str, Any], labels: torch.Tensor,
                           limit: int = 12) -> tuple[list[Mistake], int]:
    """Digits the first model gets right and the second gets wrong, as the
    second model's mistakes (most confident first), and how many there are."""
    y = labels.tolist()
    found = [i for i, (a, b, t) in enumerate(zip(right["predictions"], wrong["predictions"], y)) if a == t != b]
    found.sort(key=lambda i: -wrong["confidences"][i])
    shown = [Mistake(i, y[i], wrong["predictions"][i], wrong["confidences"][i]) for i in found[:limit]]
    return shown, len(found)


def digit_tile(image: torch.Tensor, scale: int = 3) -> np.ndarray:
    """A uint8 digit, dark on light like the rest of the page, enlarged with
    square pixels (no blur)."""
    return enlarge(255 - image.numpy(), scale)


# ------------------------------------------------------------ child process
def _main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bigmodels.analysis.comparison")
    sub = parser.add_subparsers(dest="command", required=True)
    measure = sub.add_parser("measure", help="peak memory, latency and throughput of one checkpoint, as JSON")
    measure.add_argument("checkpoint")
    measure.add_argument("--device", default="cpu")
    measure.add_argument("--repeats", type=int, default=50, help="timed single-image runs")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        result = measure_in_this_process(args.checkpoint, args.device, args.repeats)
    except (CheckpointError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
