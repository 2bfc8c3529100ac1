"""Streamlit glue for the launcher page: the server's dispatcher, the store, access,
form parsing and formatting helpers.

Kept apart from ``pages/launcher.py`` so the page stays a view, and apart from
``bigmodels.app.session`` (shared by every page). The pure helpers here (``parse_form``,
``format_duration``...) do not touch Streamlit's session and are tested as
plain functions.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import streamlit as st

from bigmodels.base.i18n import LANGUAGES, translate

from bigmodels.app.comparison import BackgroundJobs
from bigmodels.app.models import checkpoint_digest
from bigmodels.data.mnist import DEFAULT_DATA_DIR, ENV_DATA_DIR, has_mnist, resolve_data_dir
from bigmodels.models.checkpoints import CheckpointError, load_checkpoint
from bigmodels.base.problems import ConfigError, Key, Problem
from bigmodels.runs.evaluations import cached_evaluation, evaluate_checkpoint
from bigmodels.runs.sweeps import COMMAND_NOTE
from bigmodels.base.home import home_dir
from bigmodels.runs.store import Run, RunStore, StoreError, check_run_id, InvalidRunId
from bigmodels.cluster.control import (
    dispatcher_alive, read_state, resources_from_state, start_dispatcher, startup_phase,
)
from bigmodels.train.config import Setting, TrainConfig, parse_model_settings, settings
from bigmodels.train.plan import Plan, Resources, plan

REPO = Path(__file__).resolve().parents[2]
LAUNCH_RESULTS = REPO / "benchmarks" / "results" / "launch_latency.json"
PRESET_RESULTS = REPO / "benchmarks" / "results" / "presets.json"  # written by python -m benchmarks.presets

ENV_SESSION_THREADS = "BIGMODELS_SESSION_THREADS"  # CPU threads of each CPU session (default: every core)
ENV_CLUSTER_ON_OPEN = "BIGMODELS_CLUSTER_ON_OPEN"  # "0": start the training cluster at the first launch only
_SUBMISSION_KEY = "launcher_submission"


# --------------------------------------------------------- the dispatcher
@dataclass
class _Dispatchers:
    """The dispatcher this server started (one per home), shared by every session."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    process: subprocess.Popen | None = None
    launched_at: float | None = None  # when this server started it


@st.cache_resource(show_spinner=False)
def _dispatchers(home: str) -> _Dispatchers:
    return _Dispatchers()


def ensure_dispatcher(store: RunStore) -> str:
    """Start this home's dispatcher unless one runs already (ours, or one an operator
    or systemd runs). Returns "running", "starting" or "started"."""
    registry = _dispatchers(str(store.home.resolve()))
    with registry.lock:  # two sessions launching at once start one dispatcher, not two
        if dispatcher_alive(store):
            return "running"
        if registry.process is not None and registry.process.poll() is None:
            return "starting"  # launched, still importing torch / joining Ray
        threads = os.environ.get(ENV_SESSION_THREADS, "").strip()
        registry.process = start_dispatcher(store.home, data_dir=os.environ.get(ENV_DATA_DIR),
                                            threads=int(threads) if threads.isdigit() else None)
        registry.launched_at = time.time()
        return "started"


def warm_on_open(store: RunStore) -> None:
    """Start the training cluster when a page that needs it is opened, so the first launch
    does not wait for it (unless BIGMODELS_CLUSTER_ON_OPEN=0: then at the first launch,
    for a server whose dispatcher is a service of its own, or a test)."""
    if store.disk_problem() is not None:
        return  # a store that cannot be written could not record a thing
    if os.environ.get(ENV_CLUSTER_ON_OPEN, "1").strip() != "0":
        ensure_dispatcher(store)
    else:
        serve_queued(store)


def cluster_startup(store: RunStore) -> tuple[str, float] | None:
    """(phase, seconds) while this home's training cluster is starting; None when ready or off."""
    registry = _dispatchers(str(store.home.resolve()))
    launched = registry.process is not None and registry.process.poll() is None
    return startup_phase(store, registry.launched_at if launched else None)


def serve_queued(store: RunStore) -> None:
    """After a restart of the app, queued runs need a dispatcher (not while the store's disk
    cannot be written: it could not record a thing)."""
    if store.disk_problem() is None and store.counts().get("queued"):
        ensure_dispatcher(store)


def cluster_state(store: RunStore) -> dict[str, Any] | None:
    """The dispatcher's last report of the cluster (None: no dispatcher reporting)."""
    return read_state(store)


def planning_resources(store: RunStore) -> Resources:
    """What the form plans against: the cluster's devices when a dispatcher reports
    them (GPUs on other nodes count), else this machine's."""
    return resources_from_state(read_state(store)) or Resources.local()


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


def submission_key() -> str:
    """A one-time key for the form on screen: resubmitting it cannot queue twice."""
    if _SUBMISSION_KEY not in st.session_state:
        st.session_state[_SUBMISSION_KEY] = uuid.uuid4().hex
    return st.session_state[_SUBMISSION_KEY]


def new_submission_key() -> None:
    st.session_state[_SUBMISSION_KEY] = uuid.uuid4().hex


# ------------------------------------------------------------------ the form
NUMBER_KINDS = ("int", "float", "subset")  # the settings entered in a number input
RESOURCE_NAME_MAX = 64
RESOURCE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,%d}" % (RESOURCE_NAME_MAX - 1))  # a Ray resource name
@dataclass(frozen=True)
class LaunchRequest:
    plan: Plan  # what will run where (its config and processes)
    train_again: bool
    needs: str | None = None  # a custom resource the run's node must offer


def setting_input(container, name: str, how: Setting, value: Any, label: str, help_text: str,
                  device_choices: list[str], format_func=str, key: str | None = None) -> Any:
    """The widget for one TrainConfig setting, from its declaration. Number inputs
    carry no bounds: an out-of-range value reaches the plan, which says what is
    wrong, instead of a field that silently refuses it.

    A number input's own default is None and ``value`` is put in its ``key`` of the
    session state instead: Streamlit answers a value it will not take (NaN, infinity,
    beyond JavaScript's safe integers: only a forged message can send one) with the
    widget's default, which would queue the recipe's value in silence; with None as
    that default, ``parse_form`` refuses it."""
    if how.kind == "choice":
        options = device_choices if name == "device" else list(how.choices)
        return container.selectbox(label, options, index=options.index(value) if value in options else 0,
                                   help=help_text, format_func=format_func)
    key = key or f"launcher_setting_{name}"
    if key not in st.session_state:
        st.session_state[key] = int(value or 0) if how.kind in ("int", "subset") else float(value)
    if how.kind in ("int", "subset"):
        return container.number_input(label, value=None, step=int(how.step or 1), help=help_text, key=key)
    return container.number_input(label, value=None, step=float(how.step), format=how.fmt or "%.4f",
                                  help=help_text, key=key)


#: A number box whose default is None gets a clear button, which the form's narrow boxes cannot
#: spare the room for (it hid "0.0000"); an emptied box is refused by parse_form all the same.
FORM_CSS = """<style>
[data-testid="stForm"] [data-testid="stNumberInputClearButton"] { display: none; }
</style>"""


def processes_input(container, label: str, help_text: str, key: str) -> int | None:
    """The processes box, one by default; None for a value Streamlit refused (as setting_input)."""
    if key not in st.session_state:
        st.session_state[key] = 1
    return container.number_input(label, value=None, step=1, help=help_text, key=key)


def parse_form(values: dict[str, Any], resources: Resources | None = None,
               data_size: int | None = None) -> LaunchRequest:
    """Turn the form's values into a planned launch request, or raise ConfigError
    listing every problem (nothing is queued then). ``data_size``: the training images
    the runs will have, so a larger subset is planned (and recorded) as what exists."""
    problems: list[Problem] = []
    overrides = parse_model_settings(values.get("model_settings", ""))
    if isinstance(overrides, Problem):
        problems.append(overrides)
        overrides = {}
    fields = {k: values[k] for k in ("model", "preset", *settings()) if k in values}
    for key, how in settings().items():  # an empty box, or a value Streamlit refused (see setting_input)
        if how.kind in NUMBER_KINDS and key in fields and fields[key] is None:
            problems.append(Problem.of("launcher.problem.no_number", label=Key(how.label_key(key))))
            fields.pop(key)
    for key, how in settings().items():  # number inputs give floats for whole-number fields at times
        if how.kind in ("int", "subset") and isinstance(fields.get(key), float) and fields[key].is_integer():
            fields[key] = int(fields[key])
    if "train_subset" in fields and fields["train_subset"] in (0, ""):
        fields["train_subset"] = None  # the form's 0 means all the data
    processes = values.get("processes", 1)
    if isinstance(processes, float) and processes.is_integer():
        processes = int(processes)
    if processes is None:
        problems.append(Problem.of("launcher.problem.no_number", label=Key("launcher.form.processes")))
        processes = 1
    needs = str(values.get("needs") or "").strip() or None
    if needs is not None and not RESOURCE_NAME.fullmatch(needs):
        problems.append(Problem.of("launcher.problem.needs", got=needs[:80], most=RESOURCE_NAME_MAX))
    config = TrainConfig(**fields, model_overrides=overrides)
    try:
        planned = plan(config, resources, world_size=processes, data_size=data_size)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if problems:
        raise ConfigError(problems)
    return LaunchRequest(planned, bool(values.get("train_again", False)), needs)


STATUS_EMOJI = {"queued": "⏳", "running": "🏃", "succeeded": "✅", "failed": "❌", "cancelled": "🚫",
                "interrupted": "⚠️"}


# ------------------------------------------------------- checkpoint check
@st.cache_data(show_spinner=False, max_entries=64)
def _checkpoint_problem(path: str, mtime_ns: int, size: int) -> str | None:
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


# ------------------------------------------------------------ quick demos
def data_kind() -> str:
    """Which MNIST this server's device sessions train on: "full" (a folder) or "sample"
    (the 4,000-digit fallback), decided as ``load_mnist`` decides, without loading it."""
    return "full" if resolve_data_dir() is not None or has_mnist(DEFAULT_DATA_DIR) else "sample"


def read_demo_measurements(path: str | os.PathLike = PRESET_RESULTS) -> dict[str, Any]:
    """What benchmarks/presets.py measured: {"presets": {data: {model: row}}, device_name,
    measured_at, note...}; empty when the file is missing or unreadable."""
    try:
        found = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) and isinstance(found.get("presets"), dict) else {}


@st.cache_data(show_spinner=False, max_entries=4)
def _demo_measurements(path: str, mtime_ns: int) -> dict[str, Any]:
    return read_demo_measurements(path)


def demo_measurements() -> dict[str, Any]:
    try:
        return _demo_measurements(str(PRESET_RESULTS), PRESET_RESULTS.stat().st_mtime_ns)
    except OSError:
        return {}


def cold_start_seconds() -> float | None:
    """Submit to first step on a cold cluster, as benchmarks.launch_latency measured it."""
    try:
        return float(json.loads(LAUNCH_RESULTS.read_text())["cold"]["submit_to_first_step_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def demo_measurement(measured: dict[str, Any], data: str, model: str, config: TrainConfig) -> dict[str, Any] | None:
    """The measured row of this quick demo, if it measured these very settings."""
    row = measured.get("presets", {}).get(data, {}).get(model)
    if not isinstance(row, dict) or row.get("config", {}) | {"device": config.device, "seed": config.seed} != \
            config.to_dict():
        return None  # measured for other settings: a stale number is worse than none
    return row


# ------------------------------------------------------------ the runs list
SORTS = ("created", "best", "duration", "name")


def select_runs(runs: Sequence[Run], statuses: Sequence[str] = (), models: Sequence[str] = (),
                tags: Sequence[str] = (), text: str = "") -> list[Run]:
    """The runs the table's filters let through: any of the statuses, architectures
    and tags chosen (none chosen: all), and ``text`` in the id, name, note or tags."""
    needle = (text or "").strip().lower()

    def matches(run: Run) -> bool:
        if statuses and run.status not in statuses or models and run.model not in models:
            return False
        if tags and not set(tags) & set(run.tags):
            return False
        haystack = " ".join([run.id, run.name or "", run.note, *run.tags]).lower()
        return not needle or needle in haystack
    return [r for r in runs if matches(r)]


def sort_runs(runs: Sequence[Run], by: str, descending: bool = True) -> list[Run]:
    """Newest, best test accuracy, longest or by name; runs without the value last."""
    keys = {"created": lambda r: r.created_at, "best": lambda r: r.best_accuracy,
            "duration": lambda r: r.duration(), "name": lambda r: r.title.lower()}
    key = keys[by]
    have = [r for r in runs if key(r) is not None]
    return sorted(have, key=key, reverse=descending) + [r for r in runs if key(r) is None]


def page_of(items: Sequence, page: int, size: int) -> tuple[list, int]:
    """(the items on 1-based ``page``, the number of pages); a page past the end is the last."""
    pages = max(1, -(-len(items) // size))
    page = min(max(1, page), pages)
    return list(items[(page - 1) * size: page * size]), pages


def deep_link(value: Any) -> str | None:
    """The run id of a ``?run=`` link, or None when it is not a run id."""
    try:
        return check_run_id(value)
    except InvalidRunId:
        return None


# --------------------------------------------------------- evaluations
@st.cache_resource(show_spinner=False)
def _evaluation_jobs(home: str) -> BackgroundJobs:
    return BackgroundJobs()


@dataclass(frozen=True)
class EvaluationState:
    record: dict[str, Any] | None = None  # confusion, per_class_accuracy, accuracy, data
    busy: bool = False
    error: str | None = None


def run_evaluation(store: RunStore, checkpoint: str | None) -> EvaluationState:
    """The test-split evaluation of this checkpoint: cached, or started in the
    background (busy) -- never computed in the script thread."""
    problem = checkpoint_problem(checkpoint)
    if problem:
        return EvaluationState(error=problem)
    key = checkpoint_digest(checkpoint)
    found = cached_evaluation(store.home, key)
    if found is not None:
        return EvaluationState(found)
    jobs = _evaluation_jobs(str(store.home))
    future = jobs.submit(key, evaluate_checkpoint, store.home, checkpoint, os.environ.get(ENV_DATA_DIR))
    if not future.done():
        return EvaluationState(busy=True)
    if future.exception() is not None:
        return EvaluationState(error=str(future.exception()))
    return EvaluationState(future.result())


# ------------------------------------------------------------ the app's own notes
def note_text(note: str, lang: str) -> str:
    """A run's note as the launcher shows it: a note the app wrote itself (the lab's, in
    whichever language its operator used; the sweep command's) reads in ``lang``; a
    person's note is shown as written."""
    if note in {translate("lab.launch.note", other) for other in LANGUAGES}:
        return translate("lab.launch.note", lang)
    if note.startswith(COMMAND_NOTE):
        return translate("launcher.note.queued_by", lang, command=note.removeprefix(COMMAND_NOTE))
    return note
