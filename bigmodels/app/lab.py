"""Streamlit glue for the scaling-law lab: which sweep is on screen, its table
and its fits, cached by what they are computed from.

The fits with their bootstrap take seconds (minutes on a machine shared with
busy neighbours), so they run in a background thread, once per sweep content
(its signature), and the page polls until they are done; a rerun caused by a
widget -- the compute slider, the language -- reuses them, and a sweep still
training is refitted only when a point lands. A sweep's table needs one store
query per run and is cached on the runs' states (``st.cache_data``). Pure logic
stays in ``bigmodels.analysis``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import streamlit as st

from bigmodels.reports import scaling_lab, sweep_table
from bigmodels.reports.scaling_lab import LabError, LabResult
from bigmodels.reports.sweep_table import SweepDataError, SweepTable
from bigmodels.app.comparison import BackgroundJobs
from bigmodels.base.problems import ConfigError, Problem
from bigmodels.cluster import control
from bigmodels.data.mnist import ENV_DATA_DIR
from bigmodels.runs import sweeps
from bigmodels.runs.store import RunStore
from bigmodels.train import lr_search
from bigmodels.train.sweep import DEFAULT_CHECKS, check_points

SHIPPED = "shipped"  # the choice of the shipped sweep
UPLOAD = "upload"  # the choice of a sweep file from the browser


@dataclass(frozen=True)
class Loaded:
    """The sweep on screen: its table, or the message why there is none."""

    table: SweepTable | None = None
    problem: Problem | None = None


@st.cache_data(show_spinner=False, max_entries=4)
def _shipped() -> Loaded:
    try:
        return Loaded(sweep_table.read_shipped())
    except SweepDataError as exc:
        return Loaded(problem=exc.problem)


def shipped() -> Loaded:
    return _shipped()


@st.cache_data(show_spinner=False, max_entries=16)
def _uploaded(content: bytes) -> Loaded:
    try:
        return Loaded(sweep_table.parse(content))
    except SweepDataError as exc:
        return Loaded(problem=exc.problem)


def uploaded(content: bytes) -> Loaded:
    return _uploaded(content)


@st.cache_data(show_spinner=False, max_entries=16)
def _from_store(home: str, name: str, state: tuple) -> Loaded:
    """``state``: the sweep's (run id, status, epoch) tuples and its predictions, so a point
    landing or a check registered refreshes it."""
    store = RunStore(home)
    try:
        table = sweep_table.table_from_runs(name, sweeps.sweep_runs(store, name), store.epochs,
                                            store.predictions(name))
    except SweepDataError as exc:
        return Loaded(problem=exc.problem)
    return Loaded(table)


def from_store(store: RunStore, name: str) -> Loaded:
    runs = sweeps.sweep_runs(store, name)
    if not runs:
        return Loaded(problem=Problem.of("lab.problem.no_sweep", name=name))
    state = (tuple((r.id, r.status, r.epoch) for r in runs), tuple((p.id, p.frozen_at) for p in store.predictions(name)))
    return _from_store(str(store.home), name, state)


@st.cache_resource(show_spinner=False)
def jobs() -> BackgroundJobs:
    """One thread for the lab's fits, shared by every session (the CPU is shared too)."""
    return BackgroundJobs()


def _analyse(table: SweepTable, samples: int) -> tuple[LabResult | None, Problem | None]:
    try:
        return scaling_lab.analyse(table, samples=samples), None
    except LabError as exc:
        return None, Problem.of(exc.key, **exc.values)


@dataclass(frozen=True)
class Analysis:
    """The fits of the sweep on screen: ready (``result`` or ``problem``), or still running."""

    result: LabResult | None = None
    problem: Problem | None = None
    busy: bool = False


def analysis(table: SweepTable, samples: int = scaling_lab.DEFAULT_SAMPLES) -> Analysis:
    """The lab's fits of ``table``, computed once per sweep content in a background
    thread: the script thread only looks whether they are done."""
    future = jobs().submit(f"{table.signature()}|{samples}", _analyse, table, samples)
    if not future.done():
        return Analysis(busy=True)
    if future.exception() is not None:  # a bug, not the user's sweep: say so without a traceback
        return Analysis(problem=Problem.of("lab.problem.failed", error=str(future.exception())[:300]))
    result, problem = future.result()
    return Analysis(result, problem)


# ------------------------------------------------------------ the search and the checks
@st.cache_data(show_spinner=False, max_entries=8)
def _lr_search(blob: str) -> lr_search.LrSearch | None:
    try:
        return lr_search.LrSearch.from_json(json.loads(blob))
    except ConfigError:
        return None


def shipped_rule(model: str):
    """The learning-rate rule of the shipped search of ``model`` (None: the recipe's one rate)."""
    path = sweep_table.shipped_lr_search(model)
    search = _lr_search(path.read_text(encoding="utf-8")) if path is not None else None
    return search.rule() if search is not None else None


def search_of(table: SweepTable) -> lr_search.LrSearch | None:
    """The learning-rate search a sweep was trained with: the one its file carries, else
    the shipped search of its model (a sweep queued from this app or the CLI uses that)."""
    if isinstance(table.meta.get("lr_search"), dict):
        return _lr_search(json.dumps(table.meta["lr_search"], sort_keys=True))
    path = sweep_table.shipped_lr_search(table.model)
    return _lr_search(path.read_text(encoding="utf-8")) if path is not None else None


def register(store: RunStore, table: SweepTable, result: LabResult, width: int, depth: int, budget: int,
             seeds: int, note: str):
    """Predict, freeze, train: the prediction for the run (from the fit on screen) into the
    store, then its runs queued and the dispatcher asked to train them."""
    search = search_of(table)
    model = table.model if table.model in DEFAULT_CHECKS else "cnn"
    points = check_points(model, width, depth, budget, seeds=seeds,
                          lr_rule=search.rule() if search is not None else None)
    first = points[0]
    payload = scaling_lab.prediction_payload(result, table, first.width, first.depth, first.parameters,
                                             first.budget, len(points), first.config.lr, model)
    payload["command"] = note
    prediction, runs = sweeps.register_check(store, table.name, points, payload)
    control.ensure_dispatcher(store, runs, os.environ.get(ENV_DATA_DIR))
    return prediction, runs
