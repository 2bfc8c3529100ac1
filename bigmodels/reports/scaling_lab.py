"""The scaling-law lab's analysis of one sweep: fits, frontier, allocation, check.

From a ``SweepTable`` (``bigmodels.reports.sweep_table``):

* Chinchilla's ``L(N, D) = E + A/N^alpha + B/D^beta`` fitted on the grid (the
  check runs left out), with bootstrap intervals;
* ``L(N)``: loss against parameters at the largest budget, and ``L(C)``: loss
  against compute along the compute-optimal frontier (the runs no cheaper run
  beats), each ``E + A/x^alpha``;
* the fitted best ``N`` and ``D`` for a compute budget. Hoffmann et al.'s
  closed form assumes ``C = 6 N D``, which holds for a transformer; a CNN
  reuses each filter weight at every position, so its FLOPs per image are not
  proportional to ``N``. Here ``C = f(N) D`` with ``f`` the power law through
  the measured training FLOPs per image of the sweep's own models, and the
  optimum is found along that curve numerically;
* the prediction for each check run (a model beyond the grid) with a
  predictive interval (the bootstrap fits' predictions, each with one of the
  fit's residuals: the fit's uncertainty and one run's scatter), beside its
  measured loss.

Numbers in, numbers out: no Streamlit, no store.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bigmodels.analysis.scaling_laws import (
    ChinchillaFit, Interval, PowerFit, bootstrap_fits, fit_chinchilla, fit_power, percentile_interval,
)
from bigmodels.reports.sweep_table import SweepRow, SweepTable

DEFAULT_SAMPLES = 30  # bootstrap refits: about a second on a quiet 2-core CPU
LEVEL = 0.8  # intervals are the central 80% (10th to 90th percentile) of the bootstrap fits
MIN_GRID_RUNS = 8  # fewer measured grid points than this cannot pin five parameters
_N_SEARCH = np.geomspace(1e1, 1e13, 4801)  # sizes searched for the optimum at a compute budget


class LabError(ValueError):
    """The sweep cannot be analysed; ``key`` and ``values`` are a catalogue message."""

    def __init__(self, key: str, **values):
        super().__init__(key)
        self.key, self.values = key, values


@dataclass(frozen=True)
class FlopsLaw:
    """Training FLOPs per image ~ ``coefficient * N^exponent``, fitted on the sweep's models."""

    coefficient: float
    exponent: float

    def __call__(self, n):
        return self.coefficient * np.asarray(n, float) ** self.exponent


@dataclass(frozen=True)
class Allocation:
    compute: float
    parameters: float
    images: float
    loss: float
    parameters_interval: Interval
    images_interval: Interval

    @property
    def images_per_parameter(self) -> float:
        return self.images / self.parameters


@dataclass(frozen=True)
class CheckResult:
    row: SweepRow
    predicted: float
    interval: Interval

    @property
    def inside(self) -> bool:
        return self.interval.low <= self.row.test_loss <= self.interval.high

    @property
    def error(self) -> float:
        """(measured - predicted) / predicted."""
        return (self.row.test_loss - self.predicted) / self.predicted


@dataclass(frozen=True)
class LabResult:
    fit: ChinchillaFit
    intervals: dict[str, Interval]
    bootstrap: tuple[ChinchillaFit, ...]
    loss_vs_parameters: PowerFit  # at the largest budget
    largest_budget: int
    loss_vs_compute: PowerFit  # along the frontier
    frontier: tuple[int, ...]  # indices into the grid's rows, cheapest first
    flops: FlopsLaw
    checks: tuple[CheckResult, ...]
    grid_runs: int


def frontier(compute: np.ndarray, loss: np.ndarray) -> list[int]:
    """Indices of the runs no cheaper run beats (lower envelope of loss against
    compute), cheapest first."""
    order = np.argsort(compute, kind="stable")
    best, keep = np.inf, []
    for i in order:
        if loss[i] < best:
            keep.append(int(i))
            best = loss[i]
    return keep


def fit_flops_law(n: np.ndarray, flops: np.ndarray) -> FlopsLaw:
    slope, intercept = np.polyfit(np.log(n), np.log(flops), 1)
    return FlopsLaw(float(np.exp(intercept)), float(slope))


def _optimum(fit: ChinchillaFit, flops: FlopsLaw, compute: float) -> tuple[float, float, float]:
    d = compute / flops(_N_SEARCH)
    losses = fit.predict(_N_SEARCH, d)
    i = int(np.argmin(losses))
    return float(_N_SEARCH[i]), float(d[i]), float(losses[i])


def allocate(result: LabResult, compute: float) -> Allocation:
    """The fitted best (N, D) for ``compute`` training FLOPs, with the bootstrap fits' spread."""
    if not (np.isfinite(compute) and compute > 0):
        raise LabError("lab.problem.compute")
    n, d, loss = _optimum(result.fit, result.flops, compute)
    spread = [_optimum(f, result.flops, compute) for f in result.bootstrap]
    return Allocation(compute, n, d, loss, percentile_interval([s[0] for s in spread], LEVEL),
                      percentile_interval([s[1] for s in spread], LEVEL))


def optimal_curve(result: LabResult, computes: np.ndarray) -> np.ndarray:
    """The fitted law's best loss at each compute budget (the fitted frontier)."""
    return np.array([_optimum(result.fit, result.flops, c)[2] for c in computes])


def analyse(table: SweepTable, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> LabResult:
    """Every fit of the lab; LabError when the grid has too few measured points
    or does not vary both size and budget."""
    grid = table.grid()
    if len(grid.rows) < MIN_GRID_RUNS:
        raise LabError("lab.problem.too_few", n=len(grid.rows), need=MIN_GRID_RUNS)
    n, d, c, loss = grid.arrays()
    if len(np.unique(n)) < 3 or len(np.unique(d)) < 2:
        raise LabError("lab.problem.no_spread")
    fit = fit_chinchilla(n, d, loss)
    fits = tuple(bootstrap_fits(n, d, loss, samples=samples, seed=seed, full=fit))
    intervals = {name: percentile_interval([getattr(f, name) for f in fits], LEVEL)
                 for name in ("E", "A", "alpha", "B", "beta")}
    largest = int(d.max())
    at_largest = d == largest
    loss_vs_n = fit_power(n[at_largest], loss[at_largest]) if at_largest.sum() >= 3 else fit_power(n, loss)
    edge = frontier(c, loss)
    loss_vs_c = fit_power(c[edge], loss[edge]) if len(edge) >= 3 else fit_power(c, loss)
    flops = fit_flops_law(np.array([r.parameters for r in table.rows], float),
                          np.array([r.flops_per_image for r in table.rows], float))
    # A check's interval is predictive: each bootstrap fit's prediction times one of the full
    # fit's residual factors, so it holds both the fit's uncertainty and a single run's scatter.
    residuals = np.log(loss) - np.log(fit.predict(n, d))
    rng = np.random.default_rng(seed)
    checks = []
    for row in table.checks:
        predictions = np.array([f.predict(row.parameters, row.images) for f in fits])
        scattered = predictions * np.exp(rng.choice(residuals, size=predictions.size))
        checks.append(CheckResult(row, float(fit.predict(row.parameters, row.images)),
                                  percentile_interval(scattered, LEVEL)))
    checks = tuple(checks)
    return LabResult(fit, intervals, fits, loss_vs_n, largest, loss_vs_c, tuple(edge), flops, checks, len(grid.rows))
