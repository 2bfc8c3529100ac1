"""A learning rate for each model size, chosen on held-out training images.

One rate for every size is what made the lab's first law fail: a rate that
suits a 6,000-parameter CNN makes a million-parameter one diverge in its first
few dozen steps, and the largest models looked saturated when they were only
mistrained. So, as Kaplan et al. (2020, section 6.1 and appendix D.4) and
Hoffmann et al. (2022, section 3) did, each size gets the rate that suits it:
every size of the grid is trained at each of ``SEARCH_LRS`` (a factor of 2
apart) on ``SEARCH_BUDGET`` images, scored on ``HOLDOUT`` images held out of
the *training* split, and the best rate of each size becomes a point of a
power law ``lr = c N^k`` (``LrRule``), which then gives every run its rate,
sizes beyond the grid included (where a search would need the run itself).

The test split is never read: the search trains on a ``holdout`` copy of the
data whose evaluation images are training images no search run trains on
(tests/test_lab.py passes data whose test split raises on any read).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from bigmodels.base.problems import ConfigError, Problem
from bigmodels.data.mnist import MNIST
from bigmodels.train.engine import train
from bigmodels.train.sweep import DEFAULT_DEPTHS, DEFAULT_WIDTHS, LrRule, _known_model, _point

FORMAT = "bigmodels-lr-search/1"
HOLDOUT = 10_000  # training images set aside to score the search (as many as the test split)
HOLDOUT_SEED = 1729  # the fixed shuffle that picks them
SEARCH_BUDGET = 10_000  # images each search run trains on (between the grid's smallest and largest budgets)
SEARCH_LRS = (1.5e-3, 3e-3, 6e-3, 1.2e-2, 2.4e-2)  # Adam peak rates, a factor of 2 apart, around the recipe's 1e-2


def holdout(data: MNIST, size: int = HOLDOUT, seed: int = HOLDOUT_SEED) -> MNIST:
    """``data``'s training split cut in two by a fixed shuffle: the runs train on
    the first part, and what the engine scores as its "test" set is the second,
    ``size`` training images. ``data``'s own test split is not read."""
    n = len(data.train_labels)
    if not 0 < size < n:
        raise ConfigError([Problem.of("sweep.problem.holdout", size=size, n=n)])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    kept, held = order[:-size], order[-size:]
    return MNIST(data.train_images[kept], data.train_labels[kept], data.train_images[held],
                 data.train_labels[held], data.source,
                 f"{data.location}: {n - size:,} training images, {size:,} more held out to score them")


@dataclass(frozen=True)
class Trial:
    width: int
    depth: int
    parameters: int
    lr: float
    validation_loss: float  # cross-entropy on the held-out training images; inf if it diverged
    seconds: float


@dataclass(frozen=True)
class LrSearch:
    model: str
    budget: int
    holdout: int
    trials: tuple[Trial, ...]
    meta: dict[str, Any]

    def best(self) -> list[Trial]:
        """The best trial of each size, smallest size first."""
        sizes: dict[tuple[int, int], Trial] = {}
        for trial in self.trials:
            key = (trial.width, trial.depth)
            if key not in sizes or trial.validation_loss < sizes[key].validation_loss:
                sizes[key] = trial
        return sorted((t for t in sizes.values() if math.isfinite(t.validation_loss)), key=lambda t: t.parameters)

    def rule(self) -> LrRule:
        best = self.best()
        if len(best) < 2:
            raise ConfigError([Problem.of("sweep.problem.lr_search")])
        lrs = sorted({t.lr for t in self.trials})
        return LrRule.through([t.parameters for t in best], [t.lr for t in best], lrs[0], lrs[-1])

    def to_json(self) -> dict[str, Any]:
        rule = self.rule()
        return {"format": FORMAT, "model": self.model, "budget": self.budget, "holdout": self.holdout, **self.meta,
                "rule": asdict(rule), "trials": [asdict(t) for t in self.trials]}

    @classmethod
    def from_json(cls, data: Any) -> "LrSearch":
        """A search written by ``to_json``; ConfigError for anything else."""
        try:
            if data.get("format") != FORMAT:
                raise ValueError
            trials = tuple(Trial(int(t["width"]), int(t["depth"]), int(t["parameters"]), float(t["lr"]),
                                 float(t["validation_loss"]), float(t["seconds"])) for t in data["trials"])
            meta = {k: data[k] for k in ("commands", "provenance", "data", "measured_at") if k in data}
            search = cls(str(data["model"]), int(data["budget"]), int(data["holdout"]), trials, meta)
            search.rule()
        except (AttributeError, KeyError, TypeError, ValueError):
            raise ConfigError([Problem.of("sweep.problem.lr_file", expected=FORMAT)]) from None
        return search


def read(path) -> LrSearch:
    try:
        data = json.loads(open(path, encoding="utf-8").read())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ConfigError([Problem.of("sweep.problem.lr_file", expected=FORMAT)]) from None
    return LrSearch.from_json(data)


def search(data: MNIST, model: str = "cnn", widths: tuple[int, ...] | None = None,
           depths: tuple[int, ...] | None = None, lrs: tuple[float, ...] = SEARCH_LRS, budget: int = SEARCH_BUDGET,
           size: int = HOLDOUT, seed: int = 0, on_trial: Callable[[Trial], None] | None = None,
           meta: dict[str, Any] | None = None) -> LrSearch:
    """Train every size of the grid at every rate of ``lrs`` on ``budget`` of the
    kept training images and score it on the held-out ones."""
    _known_model(model)
    widths = tuple(sorted(set(widths or DEFAULT_WIDTHS[model])))
    depths = tuple(sorted(set(depths or DEFAULT_DEPTHS[model])))
    if len(lrs) < 2 or not all(isinstance(v, float) and 0 < v <= 10 for v in lrs):
        raise ConfigError([Problem.of("sweep.problem.lr_search")])
    held = holdout(data, size)
    trials = []
    for width in widths:
        for depth in depths:
            for lr in lrs:
                point = _point(model, width, depth, budget, seed, lr=lr)
                started = time.perf_counter()
                try:
                    loss = float(train(point.config, data=held).final["test_loss"])  # the held-out images
                except FloatingPointError:
                    loss = math.inf
                trial = Trial(width, depth, point.parameters, lr, loss, time.perf_counter() - started)
                trials.append(trial)
                if on_trial is not None:
                    on_trial(trial)
    return LrSearch(model, budget, size, tuple(trials), dict(meta or {}))
