"""A sweep in the run store: its points are ordinary runs carrying one tag.

Every point of a sweep (``bigmodels.train.sweep``) is queued with ``submit``
and tagged ``sweep:<name>``; a check point also carries ``check``. The tag is
the whole of a sweep's state: listing, progress, cancel and resume are queries
and actions over the runs that carry it, so a sweep survives restarts of the
app, the CLI and the executors like any run does.

Queueing a sweep is idempotent: a point whose run is queued, running or has
succeeded is left alone (a succeeded run of the same config elsewhere in the
store is reused, through the store's config hash, and gains the tag), and a
point whose run was interrupted, cancelled or failed is resumed from its
checkpoint. So ``resume`` is queueing the same sweep again.

What executes the queue is the home's dispatcher, one floor up
(``bigmodels.cluster.control.ensure_dispatcher``, which the CLI and the lab page
call): it places points on free device sessions of the Ray cluster (in parallel
where there are several).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from bigmodels.base.problems import ConfigError, Problem
from bigmodels.runs.queue import submit
from bigmodels.runs.store import ACTIVE, MAX_TAG, RESUMABLE, Prediction, Run, RunStore, RunStateError
from bigmodels.train.sweep import SweepPoint

SWEEP_TAG = "sweep:"
CHECK_TAG = "check"
MAX_NAME = MAX_TAG - len(SWEEP_TAG)  # the tag must fit the store's tag length
NAME_PATTERN = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{MAX_NAME - 1}}}")
WAIT_POLL_SECONDS = 2.0


COMMAND_NOTE = "queued by: "  # a sweep queued from the command line notes its runs with this, then the command

def check_name(name: str) -> str:
    """A sweep name as its tag needs it (lower-case letters, digits, - and _), or ConfigError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError([Problem.of("sweep.problem.name", got=str(name)[:60],
                                      n=MAX_NAME)])
    return name


def sweep_tag(name: str) -> str:
    return SWEEP_TAG + check_name(name)


@dataclass(frozen=True)
class SweepProgress:
    name: str
    counts: dict[str, int]  # runs by status
    checks: int  # how many of them are check runs

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def succeeded(self) -> int:
        return self.counts.get("succeeded", 0)

    @property
    def active(self) -> int:
        return sum(self.counts.get(s, 0) for s in ACTIVE)

    @property
    def resumable(self) -> int:
        return sum(self.counts.get(s, 0) for s in RESUMABLE)

    @property
    def done(self) -> bool:
        return self.active == 0

    def describe(self) -> str:
        parts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items()))
        return f"{self.name}: {self.succeeded}/{self.total} succeeded ({parts})"


def sweep_runs(store: RunStore, name: str) -> list[Run]:
    return store.list_runs(tag=sweep_tag(name))


def progress(store: RunStore, name: str, runs: list[Run] | None = None) -> SweepProgress:
    runs = sweep_runs(store, name) if runs is None else runs
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    return SweepProgress(name, counts, sum(CHECK_TAG in r.tags for r in runs))


def list_sweeps(store: RunStore) -> list[SweepProgress]:
    """Every sweep in the store, by name."""
    names = [t[len(SWEEP_TAG):] for t in store.tags() if t.startswith(SWEEP_TAG)]
    return [progress(store, n) for n in names if NAME_PATTERN.fullmatch(n)]


def queue_sweep(store: RunStore, name: str, points: Iterable[SweepPoint], note: str = "") -> list[Run]:
    """Queue every point not already queued, running or succeeded in this sweep;
    resume those that stopped. Returns the sweep's run for each point. ``note``
    (e.g. the command that queued it) goes on each newly queued run."""
    tag = sweep_tag(name)
    mine: dict[str, Run] = {}
    for run in sweep_runs(store, name):  # newest first: the latest run of a config speaks for it
        mine.setdefault(run.config_hash, run)
    out = []
    for point in points:
        tags = [tag, CHECK_TAG] if point.check else [tag]
        existing = mine.get(point.config.hash())
        if existing is not None and existing.status in RESUMABLE:
            out.append(store.resume(existing.id))
        elif existing is not None:
            out.append(existing)
        else:
            queued = submit(store, point.config, tags=tags)
            run = queued.run
            if note and not queued.cached and not run.note:
                run = store.set_info(run.id, run.name, list(run.tags), note)
            out.append(run)
    return out


def resume_sweep(store: RunStore, name: str) -> list[Run]:
    """Queue again every interrupted, cancelled or failed point (from its checkpoint);
    succeeded points are kept, not retrained."""
    resumed = []
    for run in sweep_runs(store, name):
        if run.status in RESUMABLE:
            try:
                resumed.append(store.resume(run.id))
            except RunStateError:
                continue  # its state changed since the listing (an executor or another user)
    return resumed


def cancel_sweep(store: RunStore, name: str) -> int:
    """Cancel every queued point and ask running ones to stop; how many were asked."""
    asked = 0
    for run in sweep_runs(store, name):
        if run.status in ACTIVE:
            try:
                store.request_cancel(run.id)
                asked += 1
            except RunStateError:
                continue  # it finished meanwhile
    return asked


def wait(store: RunStore, name: str, on_progress: Callable[[SweepProgress], None] | None = None,
         poll: float = WAIT_POLL_SECONDS, timeout: float | None = None) -> SweepProgress:
    """Follow a sweep until no point is queued or running (or ``timeout`` seconds)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        now = progress(store, name)
        if on_progress is not None and now != last:
            on_progress(now)
        last = now
        if now.done or (deadline is not None and time.monotonic() > deadline):
            return now
        time.sleep(poll)



def register_check(store: RunStore, name: str, points: Iterable[SweepPoint], payload: dict) -> tuple[Prediction, list[Run]]:
    """Predict, freeze, train: write ``payload`` (the prediction: value, interval, the fit
    and the grid it came from) into the store with its time and digest, and only then
    queue one fresh run per point (never a reused one: its measurement must come after),
    tagged with the sweep and ``check``; the runs are attached to the prediction, which
    the store refuses to change from the moment one of them starts."""
    tag = sweep_tag(name)
    points = list(points)
    if not points:
        raise ConfigError([Problem.of("sweep.problem.seeds", n=0)])
    prediction = store.register_prediction(name, payload)
    runs = [submit(store, p.config, train_again=True, tags=[tag, CHECK_TAG]).run for p in points]
    return store.attach_prediction_runs(prediction.id, [r.id for r in runs]), runs
