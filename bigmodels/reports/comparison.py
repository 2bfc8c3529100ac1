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

Run as ``python -m bigmodels.reports.comparison measure CHECKPOINT`` it is that
fresh process.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch.nn import functional as F

from bigmodels.analysis.evaluation import measure_speed, metrics_entry, plain_json, split_fingerprint
from bigmodels.base.child_process import child_env
from bigmodels.data.mnist import MNIST
from bigmodels.base.i18n import translate
from bigmodels.models.checkpoints import (
    CheckpointError, atomic_write_bytes, checkpoint_digest, load_checkpoint, model_from_checkpoint,
)
from bigmodels.models.registry import get_spec
from bigmodels.runs.sources import ModelSource
from bigmodels.base.provenance import provenance
from bigmodels.base.home import home_dir
from bigmodels.runs.store import run_history as store_history

INFER_BATCH = 256  # peak memory of one inference batch of this size
TRAIN_BATCH = 128  # ... and of one Adam training step at this batch size


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
        [sys.executable, "-m", "bigmodels.reports.comparison", "measure", str(source.checkpoint), "--device", device,
         "--repeats", str(repeats)],
        capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"measuring process exited with {proc.returncode}")
    return {"fingerprint": checkpoint_digest(source.checkpoint), **json.loads(proc.stdout.strip().splitlines()[-1])}


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


# ------------------------------------------------------------ child process
def _main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bigmodels.reports.comparison")
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
