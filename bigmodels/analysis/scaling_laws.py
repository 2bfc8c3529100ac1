"""Fitting scaling laws to measured losses, the way Hoffmann et al. (2022) did.

Chinchilla's parametric form predicts the loss of a model with ``N`` parameters
trained on ``D`` examples:

    L(N, D) = E + A / N**alpha + B / D**beta

``E`` is the loss no model reaches (the data's own entropy), the two other
terms are what a finite model and a finite data budget cost. As in the paper
(section 3.3 and appendix D.2), the five parameters are fitted by minimising
the Huber loss (delta = 1e-3) between the predicted and the measured *log*
loss, with L-BFGS from a grid of starting points, in the reparametrisation
``A = exp(a)``, ``B = exp(b)``, ``E = exp(e)`` so that the prediction is a
log-sum-exp and every parameter stays positive. The robust loss keeps one
outlying run (a diverged or unlucky seed) from dragging the exponents.

``bootstrap`` refits on resampled runs to give intervals; ``fit_power`` fits a
one-variable law ``L(x) = E + A / x**alpha`` (loss against parameters, or
against compute); ``compute_optimal`` gives the fitted best ``N`` and ``D`` for
a compute budget ``C = k N D`` (k: training FLOPs per parameter and example,
6 for a transformer's forward and backward pass, measured on the real modules
here).

Nothing here knows about training or the UI: arrays in, numbers out.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

HUBER_DELTA = 1e-3  # Hoffmann et al., appendix D.2
# Starting points for L-BFGS, after the paper's grid (a coarser one: five parameters, not a supercomputer).
_GRID = {
    "a": (0.0, 5.0, 10.0),
    "b": (0.0, 5.0, 10.0),
    "e": (-1.5, 0.0),
    "alpha": (0.2, 0.6),
    "beta": (0.2, 0.6),
}
_BOUNDS = [(-20, 40), (-20, 40), (-10, 5), (0.0, 3.0), (0.0, 3.0)]
SCREEN = 12  # L-BFGS runs from the 12 grid starts with the lowest objective (of 72)


@dataclass(frozen=True)
class ChinchillaFit:
    E: float
    A: float
    alpha: float
    B: float
    beta: float
    objective: float  # the minimised Huber loss, summed over runs

    def predict(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
        return self.E + self.A / np.asarray(n, float) ** self.alpha + self.B / np.asarray(d, float) ** self.beta

    @property
    def data_share(self) -> float:
        """beta / (alpha + beta): the exponent of N_opt in C (0.5 means N and D grow alike)."""
        return self.beta / (self.alpha + self.beta)


@dataclass(frozen=True)
class PowerFit:
    E: float
    A: float
    alpha: float
    objective: float

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        return self.E + self.A / np.asarray(x, float) ** self.alpha


def huber(residual: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    r = np.abs(residual)
    return np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))


def _checked(*arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a, float).ravel() for a in arrays]
    if len({len(a) for a in out}) != 1:
        raise ValueError("every array must have one value per run")
    if len(out[0]) < 3:
        raise ValueError(f"a fit needs at least 3 runs, got {len(out[0])}")
    if not all(np.all(np.isfinite(a)) and np.all(a > 0) for a in out):
        raise ValueError("sizes, budgets and losses must be positive finite numbers")
    return out


def _huber_slope(residual: np.ndarray, delta: float) -> np.ndarray:
    return np.clip(residual, -delta, delta)


def _objective_chinchilla(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray,
                          delta: float, weights: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The summed Huber loss of the (weighted) log-loss residuals, and its gradient (exact:
    the prediction is a log-sum-exp, whose derivatives are its softmax weights)."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    predicted = logsumexp(terms, axis=0)
    w_run = 1.0 if weights is None else weights
    residual = (predicted - log_l) * w_run
    slope = _huber_slope(residual, delta) * w_run
    w = np.exp(terms - predicted)  # softmax over the three terms, per run
    grad = np.array([(slope * w[0]).sum(), (slope * w[1]).sum(), (slope * w[2]).sum(),
                     -(slope * w[0] * log_n).sum(), -(slope * w[1] * log_d).sum()])
    return float(huber(residual, delta).sum()), grad


def fit_chinchilla(n: np.ndarray, d: np.ndarray, loss: np.ndarray, delta: float = HUBER_DELTA,
                   starts: list[tuple[float, ...]] | None = None, screen: int | None = SCREEN,
                   weights: np.ndarray | None = None) -> ChinchillaFit:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta to measured (N, D, loss) runs;
    ``starts``: L-BFGS starting points (a, b, e, alpha, beta), default the grid.
    ``screen``: run L-BFGS only from this many starts, those where the objective
    is lowest (None: from every start, as the paper did). ``weights``: each
    point's residual is multiplied by its weight (e.g. the inverse of its
    seeds' spread, scaled to a median of 1); None: all alike."""
    if weights is None:
        n, d, loss = _checked(n, d, loss)
    else:
        n, d, loss, weights = _checked(n, d, loss, weights)
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)
    best = None
    starts = list(starts or itertools.product(*_GRID.values()))
    if screen is not None and len(starts) > screen:
        # Evaluating the objective is microseconds, a descent milliseconds to a second: the
        # grid's best starting values lead to the best optimum (tests/test_scaling_laws.py).
        values = [_objective_chinchilla(np.array(s, float), log_n, log_d, log_l, delta, weights)[0] for s in starts]
        starts = [starts[i] for i in np.argsort(values)[:screen]]
    for start in starts:
        result = minimize(_objective_chinchilla, np.array(start, float), args=(log_n, log_d, log_l, delta, weights),
                          method="L-BFGS-B", jac=True, bounds=_BOUNDS)
        if best is None or result.fun < best.fun:
            best = result
    a, b, e, alpha, beta = best.x
    return ChinchillaFit(E=float(np.exp(e)), A=float(np.exp(a)), alpha=float(alpha), B=float(np.exp(b)),
                         beta=float(beta), objective=float(best.fun))


def _theta(fit: ChinchillaFit) -> tuple[float, ...]:
    return (np.log(fit.A), np.log(fit.B), np.log(fit.E), fit.alpha, fit.beta)


def _objective_power(theta: np.ndarray, log_x: np.ndarray, log_l: np.ndarray,
                     delta: float) -> tuple[float, np.ndarray]:
    a, e, alpha = theta
    term = a - alpha * log_x
    predicted = np.logaddexp(term, e)
    residual = predicted - log_l
    slope = _huber_slope(residual, delta)
    w = np.exp(term - predicted)
    grad = np.array([(slope * w).sum(), (slope * (1 - w)).sum(), -(slope * w * log_x).sum()])
    return float(huber(residual, delta).sum()), grad


def fit_power(x: np.ndarray, loss: np.ndarray, delta: float = HUBER_DELTA) -> PowerFit:
    """Fit L(x) = E + A/x^alpha (loss against parameters, examples or compute)."""
    x, loss = _checked(x, loss)
    log_x, log_l = np.log(x), np.log(loss)
    best = None
    for start in itertools.product(_GRID["a"], _GRID["e"], _GRID["alpha"]):
        result = minimize(_objective_power, np.array(start), args=(log_x, log_l, delta), method="L-BFGS-B",
                          jac=True, bounds=[(-20, 60), (-10, 5), (0.0, 3.0)])
        if best is None or result.fun < best.fun:
            best = result
    a, e, alpha = best.x
    return PowerFit(E=float(np.exp(e)), A=float(np.exp(a)), alpha=float(alpha), objective=float(best.fun))


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def bootstrap_fits(n: np.ndarray, d: np.ndarray, loss: np.ndarray, samples: int = 100, seed: int = 0,
                   full: ChinchillaFit | None = None, weights: np.ndarray | None = None) -> list[ChinchillaFit]:
    """Fits to runs resampled with replacement (``full``: the fit to all runs,
    if already made; each resample starts from it; ``weights`` go with their runs)."""
    n, d, loss = _checked(n, d, loss)
    weights = None if weights is None else np.asarray(weights, float)
    rng = np.random.default_rng(seed)
    # Each resample starts from the full fit (and two grid corners): the full grid per resample
    # would cost minutes, and a resample's optimum lies near the full one.
    starts = [_theta(full or fit_chinchilla(n, d, loss, weights=weights)), (5.0, 5.0, -1.5, 0.2, 0.2),
              (10.0, 10.0, 0.0, 0.6, 0.6)]
    fits = []
    for _ in range(samples):
        pick = rng.integers(0, len(n), len(n))
        if len(np.unique(n[pick])) < 2 or len(np.unique(d[pick])) < 2:
            continue  # a resample with one size or one budget says nothing about that exponent
        fits.append(fit_chinchilla(n[pick], d[pick], loss[pick], starts=starts,
                                   weights=None if weights is None else weights[pick]))
    if not fits:
        raise ValueError("no resample had two sizes and two budgets")
    return fits


def percentile_interval(values, level: float = 0.8) -> Interval:
    """The central ``level`` share of ``values`` (0.8 = 10th to 90th percentile)."""
    tail = (1 - level) / 2 * 100
    return Interval(*(float(v) for v in np.percentile(np.asarray(values, float), [tail, 100 - tail])))


def bootstrap(n: np.ndarray, d: np.ndarray, loss: np.ndarray, samples: int = 100, level: float = 0.8,
              seed: int = 0) -> dict[str, Interval]:
    """Percentile intervals of each Chinchilla parameter over fits to runs
    resampled with replacement (``level``: the central share, 0.8 = 10th-90th)."""
    fits = bootstrap_fits(n, d, loss, samples, seed)
    return {name: percentile_interval([getattr(f, name) for f in fits], level)
            for name in ("E", "A", "alpha", "B", "beta")}


def compute_optimal(fit: ChinchillaFit, compute: float, flops_per_param_example: float = 6.0) -> tuple[float, float]:
    """(N, D) that minimise the fitted loss at ``compute = k N D`` training FLOPs.

    Setting dL/dN = 0 along D = C/(kN) gives Hoffmann et al.'s equation (4):
    N_opt = G (C/k)^(beta/(alpha+beta)), D_opt = (C/k) / N_opt, with
    G = (alpha A / (beta B))^(1/(alpha+beta)).
    """
    if not compute > 0:
        raise ValueError(f"compute must be positive, got {compute!r}")
    if fit.alpha <= 0 or fit.beta <= 0:
        raise ValueError("the fit has a zero exponent: loss does not fall with that axis, so no optimum exists")
    budget = compute / flops_per_param_example
    g = (fit.alpha * fit.A / (fit.beta * fit.B)) ** (1 / (fit.alpha + fit.beta))
    n_opt = g * budget ** fit.data_share
    return float(n_opt), float(budget / n_opt)


# ------------------------------------------------------ published exponents
@dataclass(frozen=True)
class PublishedLaw:
    """Exponents a paper reports, to set a fit here beside (language models: D counts tokens)."""

    key: str
    alpha: float  # exponent of N
    beta: float  # exponent of D
    source_title: str
    source_url: str


PUBLISHED = (
    # Kaplan et al. (2020), "Scaling Laws for Neural Language Models", eq. 1.1-1.2: L(N) ~ N^-0.076, L(D) ~ D^-0.095.
    PublishedLaw("kaplan", 0.076, 0.095, "Kaplan et al. 2020, Scaling Laws for Neural Language Models",
                 "https://arxiv.org/abs/2001.08361"),
    # Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", eq. 10 (their Approach 3):
    # E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28. Their Approaches 1 and 2 give about
    # 20 tokens per parameter at the optimum; this parametric fit gives more (about 90 at Chinchilla's budget).
    PublishedLaw("chinchilla", 0.34, 0.28, "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models",
                 "https://arxiv.org/abs/2203.15556"),
)
# Hoffmann et al.'s Approaches 1 and 2 (and Chinchilla itself, 70B parameters on 1.4T tokens).
CHINCHILLA_TOKENS_PER_PARAMETER = 20
CHINCHILLA = ChinchillaFit(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28, objective=0.0)
# Besiroglu, Erdil, Barnett and You (2024), "Chinchilla Scaling: A replication attempt" (arXiv 2404.10102):
# Hoffmann et al.'s Approach 3 refitted to the data read off their figure, their eq. 4.
BESIROGLU = ChinchillaFit(E=1.8172, A=482.01, alpha=0.3478, B=2085.43, beta=0.3658, objective=0.0)
BESIROGLU_SOURCE = ("Besiroglu et al. 2024, Chinchilla Scaling: A replication attempt",
                    "https://arxiv.org/abs/2404.10102")


# ------------------------------------------------------ other views of a grid
def local_exponents(n: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """-d log L / d log N between neighbouring sizes (``n`` sorted, one loss per size):
    the geometric middle of each pair and the slope there. A power law's is constant;
    a loss that saturates shows it falling towards 0."""
    n, loss = np.asarray(n, float), np.asarray(loss, float)
    if len(n) < 2:
        return np.array([]), np.array([])
    order = np.argsort(n)
    n, loss = n[order], loss[order]
    return np.sqrt(n[1:] * n[:-1]), -np.diff(np.log(loss)) / np.diff(np.log(n))


@dataclass(frozen=True)
class IsoFlop:
    """Hoffmann et al.'s Approach 2 at one compute budget: a parabola of log loss
    in log N through the sizes' losses at that compute, and its minimum."""

    compute: float
    log_n: tuple[float, ...]
    log_loss: tuple[float, ...]
    coefficients: tuple[float, float, float]  # of log L = c0 (log N)^2 + c1 log N + c2
    n_opt: float
    loss_opt: float


def isoflop_profiles(sizes: dict[float, tuple[np.ndarray, np.ndarray]], computes: np.ndarray) -> list[IsoFlop]:
    """``sizes``: for each N, (compute, loss) of its runs. At each budget of ``computes``,
    each size whose runs bracket it gives its loss there (log-log interpolation), and a
    parabola through them gives the best N (Approach 2). Budgets where fewer than 3
    sizes bracket the budget, or where the parabola opens downwards or has its minimum
    outside the sizes, are left out: there the data do not locate a minimum."""
    profiles = []
    for compute in computes:
        xs, ys = [], []
        for n, (c, loss) in sizes.items():
            order = np.argsort(c)
            c, loss = np.asarray(c, float)[order], np.asarray(loss, float)[order]
            if c[0] <= compute <= c[-1]:
                xs.append(np.log(n))
                ys.append(float(np.interp(np.log(compute), np.log(c), np.log(loss))))
        if len(xs) < 3:
            continue
        c0, c1, c2 = np.polyfit(xs, ys, 2)
        if c0 <= 0:
            continue
        x_opt = -c1 / (2 * c0)
        if not min(xs) <= x_opt <= max(xs):
            continue
        profiles.append(IsoFlop(float(compute), tuple(map(float, xs)), tuple(map(float, ys)),
                                (float(c0), float(c1), float(c2)), float(np.exp(x_opt)),
                                float(np.exp(c0 * x_opt**2 + c1 * x_opt + c2))))
    return profiles


def optimum_exponent(computes: np.ndarray, n_opt: np.ndarray) -> float | None:
    """a in N_opt ~ C^a, the slope of log N_opt against log C (None with fewer than 2 budgets)."""
    if len(computes) < 2:
        return None
    return float(np.polyfit(np.log(computes), np.log(n_opt), 1)[0])
