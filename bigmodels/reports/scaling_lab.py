"""The scaling-law lab's analysis of one sweep: fits, frontier, allocation, checks.

From a ``SweepTable`` (``bigmodels.reports.sweep_table``):

* the grid's runs averaged per point (a size on a budget): the mean test loss
  of its seeds and their spread, which weights the point in the fit (``points``,
  ``point_weights``);
* Chinchilla's ``L(N, D) = E + A/N^alpha + B/D^beta`` fitted on those points
  (Hoffmann et al.'s Approach 3; the check runs left out), with bootstrap
  intervals;
* Approach 2 beside it: IsoFLOP profiles, a parabola of log loss in log N at
  each compute budget, whose minima give ``N_opt ~ C^a`` (``isoflops``). Its
  parabolic approximation is biased even on noise-free data (Xu et al. 2026,
  arXiv 2603.22339: grid width, off-centre sampling, alpha != beta), which is
  why the checks are predicted by Approach 3;
* the local exponent ``-d log L / d log N`` between neighbouring sizes at each
  budget, so a loss that saturates shows it;
* ``L(N)`` at the largest budget and ``L(C)`` along the compute-optimal frontier;
* the fitted best ``N`` and ``D`` for a compute budget, along ``C = f(N) D``
  with ``f`` the power law through the measured training FLOPs per image (a CNN
  is not ``6 N`` per image: ``flops_table``);
* ``predict``: the law's prediction for a run beyond the grid, with a
  predictive interval, which ``bigmodels.runs.sweeps.register_check`` writes
  into the run store before the run is queued; and the registered checks,
  scored (``RegisteredCheck``).

Numbers in, numbers out: no Streamlit, no store.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bigmodels.analysis.scaling_laws import (
    ChinchillaFit, Interval, IsoFlop, PowerFit, bootstrap_fits, fit_chinchilla, fit_power, isoflop_profiles,
    local_exponents, optimum_exponent, percentile_interval,
)
from bigmodels.reports.sweep_table import RegisteredCheck, SweepRow, SweepTable

DEFAULT_SAMPLES = 30  # bootstrap refits: about a second on a quiet 2-core CPU
LEVEL = 0.8  # intervals are the central 80% (10th to 90th percentile) of the bootstrap fits
TARGET_ERROR = 0.05  # a check holds when inside its interval and within this relative error
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
class GridPoint:
    """One point of the grid: a size on a budget, over its seeds."""

    parameters: int
    images: int
    width: int | None
    depth: int | None
    flops_per_image: int
    losses: tuple[float, ...]  # one per seed
    lr: float | None

    @property
    def loss(self) -> float:
        return float(np.mean(self.losses))

    @property
    def seeds(self) -> int:
        return len(self.losses)

    @property
    def spread(self) -> float | None:
        """The seeds' standard deviation of log loss (None with one seed)."""
        return float(np.std(np.log(self.losses), ddof=1)) if self.seeds > 1 else None

    @property
    def compute(self) -> float:
        return float(self.flops_per_image) * self.images


@dataclass(frozen=True)
class FlopsRow:
    parameters: int
    flops_per_image: int  # measured: forward + backward, PyTorch's FLOP counter on the module

    @property
    def ratio(self) -> float:
        """Measured FLOPs per image over 6 N (1 for a transformer's rule of thumb)."""
        return self.flops_per_image / (6.0 * self.parameters)


@dataclass(frozen=True)
class Approach2:
    profiles: tuple[IsoFlop, ...]
    exponent: float | None  # a in N_opt ~ C^a from the parabolas' minima
    approach3_exponent: float | None  # the same a from the parametric fit, along the same FLOPs law


@dataclass(frozen=True)
class LabResult:
    fit: ChinchillaFit
    intervals: dict[str, Interval]
    bootstrap: tuple[ChinchillaFit, ...]
    loss_vs_parameters: PowerFit  # at the largest budget
    largest_budget: int
    loss_vs_compute: PowerFit  # along the frontier
    frontier: tuple[int, ...]  # indices into ``points``, cheapest first
    flops: FlopsLaw
    checks: tuple[RegisteredCheck, ...]
    grid_runs: int
    points: tuple[GridPoint, ...] = ()
    weights: tuple[float, ...] = ()
    residuals: tuple[float, ...] = ()  # log(measured / fitted) of each point
    local: dict | None = None  # (budget, depth) -> (N between neighbours, -d log L / d log N)
    approach2: Approach2 | None = None
    flops_table: tuple[FlopsRow, ...] = ()


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


def points(rows) -> list[GridPoint]:
    """The rows averaged per (size, budget), smallest first."""
    groups: dict[tuple[int, int], list[SweepRow]] = {}
    for row in rows:
        groups.setdefault((row.parameters, row.images), []).append(row)
    return [GridPoint(n, d, g[0].width, g[0].depth, g[0].flops_per_image, tuple(r.test_loss for r in g), g[0].lr)
            for (n, d), g in sorted(groups.items())]


def point_weights(grid: list[GridPoint]) -> np.ndarray:
    """Each point's weight in the fit: 1 / the standard error of its mean log loss,
    scaled to a median of 1. A point's seeds give its spread; a point with one
    seed takes the spread the seeded points show at its budget (a power law of the
    spread in the budget, through the seeded points: loss scatters less with more
    data), and a seeded point's own is kept from falling below half of that (three
    seeds can agree by luck). Without seeded points every weight is 1."""
    seeded = [p for p in grid if p.spread is not None and p.spread > 0]
    if not seeded:
        return np.ones(len(grid))
    budgets = np.log([p.images for p in seeded])
    spreads = np.log([p.spread for p in seeded])
    slope, intercept = np.polyfit(budgets, spreads, 1) if len(set(budgets)) > 1 else (0.0, float(np.mean(spreads)))
    slope = min(slope, 0.0)  # never more scatter with more data

    def trend(images):
        return float(np.exp(intercept + slope * np.log(images)))

    sigma = np.array([(max(p.spread, trend(p.images) / 2) if p.spread is not None else trend(p.images))
                      / np.sqrt(p.seeds) for p in grid])
    weights = 1 / sigma
    return weights / np.median(weights)


def flops_table(table: SweepTable) -> tuple[FlopsRow, ...]:
    """Measured training FLOPs per image of each size, beside 6 N."""
    sizes = {r.parameters: r.flops_per_image for r in table.rows}
    return tuple(FlopsRow(n, f) for n, f in sorted(sizes.items()))


def local_slopes(grid: list[GridPoint]) -> dict[tuple[int, int | None], tuple[tuple[float, ...], tuple[float, ...]]]:
    """At each (budget, depth), -d log L / d log N between neighbouring widths."""
    out = {}
    for budget, depth in sorted({(p.images, p.depth) for p in grid}, key=lambda k: (k[0], k[1] or 0)):
        at = sorted((p for p in grid if p.images == budget and p.depth == depth), key=lambda p: p.parameters)
        mid, slope = local_exponents([p.parameters for p in at], [p.loss for p in at])
        if len(mid):
            out[(budget, depth)] = (tuple(map(float, mid)), tuple(map(float, slope)))
    return out


def law_local_exponent(fit: ChinchillaFit, n, d) -> np.ndarray:
    """-d log L / d log N of the fitted law itself: alpha A N^-alpha / L(N, D). It falls
    with N as the law nears its floor E + B/D^beta, but smoothly, as the law prescribes."""
    n = np.asarray(n, float)
    return fit.alpha * fit.A / n**fit.alpha / fit.predict(n, d)


def approach2(grid: list[GridPoint], fit: ChinchillaFit, flops: FlopsLaw) -> Approach2:
    """IsoFLOP parabolas through the grid (each size's loss interpolated to common
    compute budgets) and the exponent of their minima, beside Approach 3's."""
    sizes: dict[float, tuple[list[float], list[float]]] = {}
    for p in grid:
        c, loss = sizes.setdefault(float(p.parameters), ([], []))
        c.append(p.compute)
        loss.append(p.loss)
    usable = {n: (np.array(c), np.array(loss)) for n, (c, loss) in sizes.items() if len(c) >= 2}
    if not usable:
        return Approach2((), None, None)
    low = min(c.min() for c, _ in usable.values())
    high = max(c.max() for c, _ in usable.values())
    budgets = np.geomspace(low, high, 9)[1:-1]
    profiles = tuple(isoflop_profiles(usable, budgets))
    a2 = optimum_exponent(np.array([p.compute for p in profiles]), np.array([p.n_opt for p in profiles])) \
        if len(profiles) >= 2 else None
    optima = [_optimum(fit, flops, c)[0] for c in budgets]
    a3 = optimum_exponent(budgets, np.array(optima))
    return Approach2(profiles, a2, a3)


def analyse(table: SweepTable, samples: int = DEFAULT_SAMPLES, seed: int = 0) -> LabResult:
    """Every fit of the lab; LabError when the grid has too few measured points
    or does not vary both size and budget."""
    grid_table = table.grid()
    grid = points(grid_table.rows)
    if len(grid) < MIN_GRID_RUNS:
        raise LabError("lab.problem.too_few", n=len(grid), need=MIN_GRID_RUNS)
    n = np.array([p.parameters for p in grid], float)
    d = np.array([p.images for p in grid], float)
    c = np.array([p.compute for p in grid], float)
    loss = np.array([p.loss for p in grid], float)
    if len(np.unique(n)) < 3 or len(np.unique(d)) < 2:
        raise LabError("lab.problem.no_spread")
    weights = point_weights(grid)
    fit = fit_chinchilla(n, d, loss, weights=weights)
    fits = tuple(bootstrap_fits(n, d, loss, samples=samples, seed=seed, full=fit, weights=weights))
    intervals = {name: percentile_interval([getattr(f, name) for f in fits], LEVEL)
                 for name in ("E", "A", "alpha", "B", "beta")}
    largest = int(d.max())
    at_largest = d == largest
    loss_vs_n = fit_power(n[at_largest], loss[at_largest]) if at_largest.sum() >= 3 else fit_power(n, loss)
    edge = frontier(c, loss)
    loss_vs_c = fit_power(c[edge], loss[edge]) if len(edge) >= 3 else fit_power(c, loss)
    flops = fit_flops_law(np.array([r.parameters for r in table.rows], float),
                          np.array([r.flops_per_image for r in table.rows], float))
    residuals = np.log(loss) - np.log(fit.predict(n, d))
    return LabResult(fit, intervals, fits, loss_vs_n, largest, loss_vs_c, tuple(edge), flops, table.registered,
                     len(grid_table.rows), tuple(grid), tuple(map(float, weights)), tuple(map(float, residuals)),
                     local_slopes(grid), approach2(grid, fit, flops), flops_table(table))


@dataclass(frozen=True)
class Prediction:
    predicted: float
    interval: Interval


def predict(result: LabResult, parameters: float, images: float, seed: int = 0) -> Prediction:
    """The fitted law's loss for a run of ``parameters`` on ``images``, with a predictive
    interval: each bootstrap fit's prediction times one of the full fit's residual factors
    (a point's scatter about the law), so it holds both the fit's uncertainty and a point's
    scatter (the central ``LEVEL``)."""
    if not (parameters > 0 and images > 0):
        raise LabError("lab.problem.compute")
    rng = np.random.default_rng(seed)
    predictions = np.array([f.predict(parameters, images) for f in result.bootstrap])
    scattered = predictions * np.exp(rng.choice(np.array(result.residuals), size=predictions.size))
    return Prediction(float(result.fit.predict(parameters, images)), percentile_interval(scattered, LEVEL))


def prediction_payload(result: LabResult, table: SweepTable, width: int | None, depth: int | None,
                       parameters: int, images: int, seeds: int, lr: float | None, model: str) -> dict:
    """What ``register_check`` writes into the store: the prediction and everything it came from."""
    made = predict(result, parameters, images)
    fit = result.fit
    return {"point": {"model": model, "width": width, "depth": depth, "parameters": int(parameters),
                      "images": int(images), "seeds": int(seeds), "lr": lr},
            "predicted": made.predicted, "interval": [made.interval.low, made.interval.high], "level": LEVEL,
            "fit": {"E": fit.E, "A": fit.A, "alpha": fit.alpha, "B": fit.B, "beta": fit.beta},
            "grid": {"sweep": table.name, "signature": table.grid().signature(), "runs": result.grid_runs,
                     "points": len(result.points), "bootstrap": len(result.bootstrap),
                     "depths": sorted({p.depth for p in result.points if p.depth is not None})}}
