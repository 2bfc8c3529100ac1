"""Streamlit glue for the comparison page: cached loads and background jobs.

Everything slow (evaluating a checkpoint on 10,000 digits, re-measuring speed
and peak memory) runs on one background thread per server, keyed so that
reruns and other tabs never start the same work twice; results go to files
under ``$BIGMODELS_HOME/comparison`` so they outlive the server. The page polls
with a fragment while work is pending.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import pickle
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import streamlit as st
import torch

from bigmodels.reports import comparison as cmp
from bigmodels.analysis.article_fixes import FIXES, Outcome, fix_locations
from bigmodels.app.live import LIVE_REFRESH_S
from bigmodels.app.models import checkpoint_digest, stat_key
from bigmodels.app.session import language
from bigmodels.data.mnist import MNIST
from bigmodels.models.checkpoints import CheckpointError, load_checkpoint
from bigmodels.models.profile import profile_model
from bigmodels.models.registry import create_model
from bigmodels.models.shipped import METRICS_PATH, load_metrics
from bigmodels.runs.sources import ModelSource, list_sources, shipped_sources


class BackgroundJobs:
    """A single worker thread (the CPU is shared: one measurement at a time
    keeps timings honest) and the futures of the jobs it was given, by key."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="comparison")
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, key: str, fn: Callable[..., Any], *args: Any, again: bool = False) -> Future:
        """Start ``fn(*args)`` unless a job with this key was started before;
        with ``again``, also when that one has finished (or failed). A failed
        job is not retried by itself: the page would rerun into it forever."""
        with self._lock:
            future = self._futures.get(key)
            if future is None or (again and future.done()):
                future = self._futures[key] = self._pool.submit(fn, *args)
            return future

    def get(self, key: str) -> Future | None:
        with self._lock:
            return self._futures.get(key)

    def busy(self, keys: list[str]) -> list[str]:
        with self._lock:
            return [k for k in keys if k in self._futures and not self._futures[k].done()]

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every job given so far has finished (for tests and scripts)."""
        with self._lock:
            futures = list(self._futures.values())
        concurrent.futures.wait(futures, timeout=timeout)

    def error(self, key: str) -> str | None:
        future = self.get(key)
        if future is None or not future.done() or future.exception() is None:
            return None
        return str(future.exception())


def inputs_key(*inputs: Any) -> str:
    """One digest of what a figure is drawn from: entries (their source, label and every
    measurement) and any plain values beside them. Pickled, not JSON: an entry carries
    10,000 predictions and confidences, which JSON took 26 ms to write per figure --
    more than building most of them -- and pickle 1 ms for all three entries. (Equal
    inputs pickle alike; a dict in another order only misses the cache.)"""
    def plain(value: Any) -> Any:
        if isinstance(value, cmp.Entry):
            return (value.source.id, value.source.label, value.metrics)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return hashlib.sha256(pickle.dumps([plain(v) for v in inputs], protocol=5)).hexdigest()


@st.cache_resource(show_spinner=False, max_entries=128)
def _figure(name: str, key: str, _build: Callable[[], Any]) -> Any:
    del name, key  # the cache key; _build is what to do on a miss
    return _build()


def figure(build: Callable[..., Any], *inputs: Any) -> Any:
    """``build(*inputs)``, made once per distinct input for the whole server and shared.

    A comparison figure is a pure function of the entries and the language, and the
    same few are asked for by every visitor: building one with plotly was about 5% of
    the server's CPU under 20 sessions (py-spy). Shared, not copied: ``st.plotly_chart``
    only reads a figure (it serialises a copy)."""
    return _figure(f"{build.__module__}.{build.__qualname__}", inputs_key(*inputs), lambda: build(*inputs))


@st.cache_resource(show_spinner=False)
def jobs() -> BackgroundJobs:
    return BackgroundJobs()


@st.cache_data(show_spinner=False, max_entries=64)
def _payload_summary(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    payload = load_checkpoint(path)
    return {k: payload.get(k) for k in ("model_name", "model_config", "history")}


@st.cache_data(show_spinner=False, max_entries=4)
def _shipped_metrics(mtime_ns: int) -> dict[str, Any]:
    return load_metrics()


def shipped_metrics() -> dict[str, Any]:
    """metrics.json, re-read when the file changes (raises CheckpointError if unreadable)."""
    return _shipped_metrics(METRICS_PATH.stat().st_mtime_ns) if METRICS_PATH.is_file() else {}


@st.cache_resource(show_spinner=False, max_entries=4)
def _split_fingerprint(location: str, source: str, n_test: int, _data: MNIST) -> str:
    return cmp.split_fingerprint(_data)


def split_key(data: MNIST) -> str:
    return _split_fingerprint(data.location, data.source, len(data.test_labels), data)


def measurements_store() -> cmp.MeasurementStore:
    return cmp.MeasurementStore(cmp.comparison_home() / "measurements.json")


def _evaluation_store(key: str) -> cmp.MeasurementStore:
    name = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cmp.MeasurementStore(cmp.comparison_home() / "evaluations" / f"{name}.json")


@st.cache_resource(show_spinner=False)
def untrained_model(name: str) -> torch.nn.Module:
    """An architecture's default, untrained: its structure, when no weights exist."""
    return create_model(name).eval()


@st.cache_resource(show_spinner=False, max_entries=16)
def _cached_profile(key: tuple, _model: torch.nn.Module):
    return profile_model(_model)


def profile_for(key: tuple, model: torch.nn.Module):
    """``profile_model`` of a model that does not change (a loaded checkpoint or
    an architecture's default), once per ``key``."""
    return _cached_profile(key, model)


# ------------------------------------------------------------- sources
def sources() -> tuple[list[ModelSource], str | None]:
    """Every model source, or the shipped ones and a message when the run store fails."""
    try:
        return list_sources(language()), None
    except Exception as exc:  # a broken run store must not hide the shipped models
        return shipped_sources(language()), str(exc)


# ------------------------------------------------------------- entries
class Pending:
    """Marks an entry whose evaluation is running in the background."""

    def __init__(self, key: str):
        self.key = key


def _evaluate_and_store(source: ModelSource, data: MNIST, key: str) -> dict[str, Any]:
    metrics = cmp.evaluate_source(source, data, timing=False)  # timed apart, in a fresh process
    _evaluation_store(key).put("metrics", metrics)
    return metrics


def evaluated_entry(source: ModelSource, data: MNIST) -> cmp.Entry | Pending:
    """This checkpoint evaluated on ``data``: from the file cache, else started
    in the background (``Pending``). Raises CheckpointError for a bad file and
    RuntimeError when the background evaluation failed."""
    key = f"eval:{source.id}@{checkpoint_digest(source.checkpoint)}@{split_key(data)}"
    stored = _evaluation_store(key).get("metrics")
    if stored is not None:
        return cmp.Entry(source, stored, from_metrics_json=False)
    error = jobs().error(key)
    if error:
        raise RuntimeError(error)
    jobs().submit(key, _evaluate_and_store, source, data, key)
    return Pending(key)


def entry_for(source: ModelSource, data: MNIST) -> cmp.Entry | Pending:
    """A shipped model's metrics.json entry when it describes this checkpoint;
    otherwise (runs, or weights newer than their metrics) an evaluation here."""
    if source.origin == "shipped":
        try:
            metrics = shipped_metrics().get(source.model_name)
        except CheckpointError:  # the page reports the unreadable file once; measure here instead
            metrics = None
        if metrics is not None:
            payload = _payload_summary(*stat_key(source.checkpoint))
            if cmp.shipped_metrics_match(source, metrics, payload):
                return cmp.Entry(source, metrics, from_metrics_json=True)
    return evaluated_entry(source, data)


def gallery_metrics(entry: cmp.Entry, data: MNIST) -> dict[str, Any] | Pending:
    """Metrics whose per-image predictions index ``data``'s test split: the
    entry's own when they do, else an evaluation on ``data``."""
    if cmp.predictions_fit(entry.metrics, data):
        return entry.metrics
    result = evaluated_entry(entry.source, data)
    return result.metrics if isinstance(result, cmp.Entry) else result


# --------------------------------------------------------- re-measuring
def _remeasure_and_store(source: ModelSource, key: str, requested: bool) -> dict[str, Any]:
    result = cmp.remeasure(source) | {"requested": requested}
    measurements_store().put(key, result)
    return result


def measurement_key(source: ModelSource) -> str:
    return cmp.measurement_key(source, checkpoint_digest(source.checkpoint), "cpu")


def measured_here(source: ModelSource) -> dict[str, Any] | None:
    return measurements_store().get(measurement_key(source))


def measurement_job(source: ModelSource) -> str:
    return f"measure:{measurement_key(source)}"


def start_measuring(source: ModelSource, again: bool = False) -> str:
    """Queue a speed + peak-memory measurement. ``again``: a person asked for
    it, so it runs even when one is stored, and its timings are shown."""
    jobs().submit(measurement_job(source), _remeasure_and_store, source, measurement_key(source), again,
                  again=again)
    return measurement_job(source)


# ------------------------------------------------------------- polling
@st.fragment(run_every=LIVE_REFRESH_S)
def wait_for(job_keys: list[str], message: str) -> None:
    """While any job runs, show ``message`` and check again; then rerun the page."""
    busy = jobs().busy(job_keys)
    if not busy:
        st.rerun()
    st.info(message, icon=":material/hourglass_top:")


# ------------------------------------------------------------ article fixes
@st.cache_data(show_spinner=False)
def article_fix_locations():
    return fix_locations()


@st.cache_data(show_spinner=False)
def article_fix_results() -> dict[str, Outcome]:
    """Each fix's live check, run once per server (the outcomes do not change while it runs)."""
    return {fix.id: fix.check() for fix in FIXES}

