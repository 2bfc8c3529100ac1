"""Streamlit glue for the launcher page: the server's worker, the store, access,
form parsing and formatting helpers.

Kept apart from ``pages/launcher.py`` so the page stays a view, and apart from
``bigmodels.app.session`` (shared by every page). The pure helpers here (``parse_form``,
``format_duration``...) do not touch Streamlit's session and are tested as
plain functions.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from bigmodels.access import AccessPolicy, load_policy
from bigmodels.runs.store import RunStore, StoreError, home_dir
from bigmodels.train.engine import ConfigError, TrainConfig

_TOKEN_KEY = "launcher_operator_token"
ENV_WORKER_THREADS = "BIGMODELS_WORKER_THREADS"  # CPU threads for the worker the app starts (default: PyTorch's)
_SUBMISSION_KEY = "launcher_submission"


# ------------------------------------------------------------- the worker
@dataclass
class _Workers:
    """The workers this server started: one per device, shared by every session."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)


@st.cache_resource(show_spinner=False)
def _workers(home: str) -> _Workers:
    return _Workers()


def ensure_worker(store: RunStore, device: str) -> str:
    """Start a worker for ``device`` unless one serves it already (ours, or one an
    operator runs by hand). Returns "running", "starting" or "started"."""
    from bigmodels.runs.worker import start_worker, worker_alive

    registry = _workers(str(store.home.resolve()))
    with registry.lock:  # two sessions launching at once start one worker, not two
        if worker_alive(store, device):
            return "running"
        process = registry.processes.get(device)
        if process is not None and process.poll() is None:
            return "starting"  # launched, still importing torch / loading data
        threads = os.environ.get(ENV_WORKER_THREADS, "").strip()
        registry.processes[device] = start_worker(store.home, device, data_dir=os.environ.get("BIGMODELS_DATA_DIR"),
                                                  threads=int(threads) if threads.isdigit() else None)
        return "started"


def serve_queued(store: RunStore) -> None:
    """After a restart of the app, queued runs for this machine's devices need a worker."""
    from bigmodels.train.devices import available_devices

    local = set(available_devices())
    for target in {r.target for r in store.list_runs(statuses=["queued"])}:
        if target in local:
            ensure_worker(store, target)


# -------------------------------------------------------------- the store
@st.cache_resource(show_spinner=False)
def _store(home: str) -> RunStore:
    return RunStore(home)


def open_store() -> tuple[RunStore | None, str | None]:
    """(store, None), or (None, a message) when the store cannot be opened."""
    try:
        return _store(str(home_dir().resolve())), None
    except StoreError as exc:
        return None, str(exc)


# ----------------------------------------------------------------- access
def access_policy() -> AccessPolicy:
    return load_policy()


def operator_token() -> str | None:
    return st.session_state.get(_TOKEN_KEY) or None


def token_key() -> str:
    return _TOKEN_KEY


def submission_key() -> str:
    """A one-time key for the form on screen: resubmitting it cannot queue twice."""
    if _SUBMISSION_KEY not in st.session_state:
        st.session_state[_SUBMISSION_KEY] = uuid.uuid4().hex
    return st.session_state[_SUBMISSION_KEY]


def new_submission_key() -> None:
    st.session_state[_SUBMISSION_KEY] = uuid.uuid4().hex


# ------------------------------------------------------------ pure helpers
@dataclass(frozen=True)
class LaunchRequest:
    config: TrainConfig
    world_size: int
    train_again: bool


def parse_model_settings(text: str) -> dict[str, Any]:
    """The form's model-settings box: a JSON object, e.g. ``{"hidden_size": 64}``
    (empty means none). Raises ConfigError with a sentence a user can act on."""
    text = (text or "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([f"model settings are not valid JSON ({exc.msg} at character {exc.pos}); "
                           f'write e.g. {{"hidden_size": 64}}']) from None
    if not isinstance(value, dict):
        raise ConfigError(['model settings must be a JSON object, e.g. {"hidden_size": 64}'])
    return value


def parse_form(values: dict[str, Any]) -> LaunchRequest:
    """Turn the form's values into a validated launch request, or raise
    ConfigError listing every problem (nothing is queued then)."""
    errors: list[str] = []
    try:
        overrides = parse_model_settings(values.get("model_settings", ""))
    except ConfigError as exc:
        errors += exc.errors
        overrides = {}
    subset = values.get("train_subset")
    subset = None if subset in (None, 0, "") else subset
    fields = {k: values[k] for k in ("model", "preset", "epochs", "batch_size", "optimizer", "lr", "schedule",
                                     "weight_decay", "label_smoothing", "momentum", "seed", "device", "precision")
              if k in values}
    for key in ("epochs", "batch_size", "seed"):  # number inputs give floats for whole-number fields at times
        if isinstance(fields.get(key), float) and fields[key].is_integer():
            fields[key] = int(fields[key])
    config = TrainConfig(**fields, model_overrides=overrides, train_subset=subset)
    errors += config.problems()
    world_size = values.get("processes", 1)
    if not isinstance(world_size, int) or world_size < 1:
        errors.append(f"processes must be a whole number of at least 1 (got {world_size!r})")
    if errors:
        raise ConfigError(errors)
    return LaunchRequest(config, world_size, bool(values.get("train_again", False)))


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def format_bytes(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


STATUS_EMOJI = {"queued": "⏳", "running": "🏃", "succeeded": "✅", "failed": "❌", "cancelled": "🚫",
                "interrupted": "⚠️"}


# ------------------------------------------------------- checkpoint check
@st.cache_data(show_spinner=False, max_entries=64)
def _checkpoint_problem(path: str, mtime_ns: int, size: int) -> str | None:
    from bigmodels.models.checkpoints import CheckpointError, load_checkpoint

    try:
        load_checkpoint(path)
    except CheckpointError as exc:
        return str(exc)
    return None


def checkpoint_problem(path: str | None) -> str | None:
    """None if the checkpoint loads (weights_only), else why not (checked once per
    file version: the cache key is the path with its size and mtime)."""
    if not path:
        return "no checkpoint was written"
    p = Path(path)
    try:
        stat = p.stat()
    except OSError:
        return f"{path}: checkpoint file not found"
    return _checkpoint_problem(str(p), stat.st_mtime_ns, stat.st_size)
