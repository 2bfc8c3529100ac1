"""Runs grouped by their settings, and each group's curves and results as mean ± std.

Runs that differ only in settings the reader chose to ignore (the seed, usually)
are repeats of one experiment: a group. A group's curve is, at each step or
epoch, the mean over its runs and their sample standard deviation; its table
row gives the same for the results. Pure functions over run-store rows: the
page chooses what to ignore, the figures draw the bands.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from bigmodels.runs.store import Run

DEFAULT_IGNORED = ("seed",)  # what repeats of one experiment differ in


@dataclass(frozen=True)
class RunGroup:
    """Runs whose settings agree on everything but the ignored ones.

    ``distinct``: the settings (and values) that tell this group from the others
    shown with it, in declaration order; empty when there is one group."""

    runs: tuple[Run, ...]
    distinct: tuple[tuple[str, Any], ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.runs)


@dataclass(frozen=True)
class Point:
    """One x position of a group's curve: the mean over the ``n`` runs that reached it."""

    x: float
    mean: float
    std: float  # sample standard deviation; 0 for a single run
    n: int


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample std, n) of the finite values; (None, None, 0) when there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None, 0
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0, len(finite)


def group_runs(runs: Sequence[Run], settings_of: Callable[[Run], dict[str, Any]],
               ignore: Sequence[str] = DEFAULT_IGNORED) -> list[RunGroup]:
    """Group ``runs`` by every setting (``settings_of(run)``) except ``ignore``; groups
    keep the order of their first run."""
    keyed: dict[tuple, list[Run]] = {}
    shared: dict[tuple, dict[str, Any]] = {}
    for run in runs:
        kept = {k: v for k, v in settings_of(run).items() if k not in ignore}
        key = tuple((k, repr(v)) for k, v in kept.items())
        keyed.setdefault(key, []).append(run)
        shared.setdefault(key, kept)
    values = list(shared.values())
    differing = [k for k in (values[0] if values else {}) if len({repr(v.get(k)) for v in values}) > 1]
    return [RunGroup(tuple(members), tuple((k, shared[key][k]) for k in differing)) for key, members in keyed.items()]


def curve(series: Sequence[Sequence[tuple[Any, float, float | None]]]) -> list[Point]:
    """One group curve from its runs' series of ``(key, x, y)``: the points that share
    a key (a step number, an epoch) are averaged, x and y alike, in key order. A key
    only some runs reached has fewer runs in its mean (``Point.n`` says how many)."""
    by_key: dict[Any, tuple[list[float], list[float | None]]] = {}
    for points in series:
        for key, x, y in points:
            xs, ys = by_key.setdefault(key, ([], []))
            xs.append(x)
            ys.append(y)
    out = []
    for key in sorted(by_key):
        xs, ys = by_key[key]
        mean, std, n = mean_std(ys)
        if n:
            out.append(Point(statistics.fmean(xs), mean, std, n))
    return out


RESULT_FIELDS = ("best_accuracy", "final_accuracy", "samples_per_second", "duration_s")


def result_stats(group: RunGroup) -> dict[str, tuple[float | None, float | None, int]]:
    """Each result of the group's runs as (mean, sample std, n): accuracies,
    throughput, duration."""
    values = {"best_accuracy": [r.best_accuracy for r in group.runs],
              "final_accuracy": [r.final_accuracy for r in group.runs],
              "samples_per_second": [r.samples_per_second for r in group.runs],
              "duration_s": [r.duration() for r in group.runs]}
    return {k: mean_std(values[k]) for k in RESULT_FIELDS}
