"""Streamlit glue for the scaling-law lab: which sweep is on screen, its table
and its fits, cached by what they are computed from.

The fits with their bootstrap take about a second (more on a busy machine); a
sweep's table needs one store query per run. Both are cached on the inputs'
signature (``st.cache_data``), so a rerun caused by a widget -- the compute
slider, the language -- costs nothing, and a sweep still training is refitted
only when a point lands. Pure logic stays in ``bigmodels.analysis``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import streamlit as st

from bigmodels.analysis import scaling_lab, sweep_table
from bigmodels.analysis.scaling_lab import LabError, LabResult
from bigmodels.analysis.sweep_table import SweepDataError, SweepTable
from bigmodels.problems import Problem
from bigmodels.runs import sweeps
from bigmodels.runs.store import RunStore

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
    """``state``: the sweep's (run id, status, epoch) tuples, so a point landing refreshes it."""
    store = RunStore(home)
    try:
        table = sweep_table.table_from_runs(name, sweeps.sweep_runs(store, name), store.epochs)
    except SweepDataError as exc:
        return Loaded(problem=exc.problem)
    return Loaded(table)


def from_store(store: RunStore, name: str) -> Loaded:
    runs = sweeps.sweep_runs(store, name)
    if not runs:
        return Loaded(problem=Problem.of("lab.problem.no_sweep", name=name))
    state = tuple((r.id, r.status, r.epoch) for r in runs)
    return _from_store(str(store.home), name, state)


@st.cache_data(show_spinner=False, max_entries=16)
def _analysed(signature: str, _table: SweepTable, samples: int) -> tuple[LabResult | None, tuple | None]:
    # ``_table`` is not hashed (the leading underscore): ``signature`` stands for it
    try:
        return scaling_lab.analyse(_table, samples=samples), None
    except LabError as exc:
        return None, (exc.key, json.dumps(exc.values))


def analysed(table: SweepTable, samples: int = scaling_lab.DEFAULT_SAMPLES) -> tuple[LabResult | None, Problem | None]:
    """The lab's fits of ``table`` (cached on its rows), or the problem with it."""
    result, problem = _analysed(table.signature(), table, samples)
    if problem is not None:
        return None, Problem.of(problem[0], **json.loads(problem[1]))
    return result, None
