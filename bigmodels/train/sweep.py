"""A scaling sweep: one architecture trained at several sizes on several data budgets.

Each point is an ordinary ``TrainConfig`` (so it runs, is recorded and resumes
like any run): the model's size comes from the scale explorer's width and
depth knobs (``bigmodels.analysis.scaling``), and the data budget is the number
of training images seen, each once (``train_subset`` = budget, one epoch) --
the single-pass regime the scaling-law papers fit, where more data is new data.
The sweep's point is test cross-entropy loss against parameters ``N``, images
``D`` and training compute ``C = D x`` (training FLOPs per image, counted on the
real module).

Each size trains at its own learning rate: ``LrRule`` is the power law
through the best rates a search on held-out *training* images found per size
(``bigmodels.train.lr_search``); without one, the architecture's recipe rate
serves every size. The smallest budgets, where one run's luck moves the loss
most, are trained with several seeds (``SEEDS`` at the ``SEEDED_BUDGETS``
smallest), so the fit can weight each point by its spread.

A *check* point is a run outside the grid (a larger model, a larger budget, or
both): the law fitted on the grid predicts its loss, the prediction is
registered in the run store, and only then is it trained
(``bigmodels.runs.sweeps.register_check``).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from bigmodels.analysis.scaling import KNOBS, knob_overrides
from bigmodels.models.registry import parameter_count
from bigmodels.base.problems import ConfigError, Key, Problem
from bigmodels.train.config import TrainConfig, default_config

#: The CNN's default grid: 8 widths x 2 depths, from 5,800 to 970,000 parameters
#: (over two orders of magnitude), and 4 budgets from 2,000 to 30,000 images, so
#: that a check can go beyond the grid in data too (60,000: all of MNIST).
DEFAULT_WIDTHS = {"cnn": (2, 3, 4, 6, 9, 12, 18, 24)}
DEFAULT_DEPTHS = {"cnn": (1, 2)}
DEFAULT_BUDGETS = (2_000, 5_000, 12_000, 30_000)
#: The default checks, each beyond the grid: a larger model, a larger budget, both.
DEFAULT_CHECKS = {"cnn": ({"width": 36, "depth": 2, "budget": 30_000},
                          {"width": 24, "depth": 2, "budget": 60_000},
                          {"width": 36, "depth": 2, "budget": 60_000})}
DEFAULT_CHECK = {model: checks[-1] for model, checks in DEFAULT_CHECKS.items()}  # the page's default
MIN_SIZES, MIN_BUDGETS, MIN_SPAN = 6, 4, 100.0  # what a sweep must cover to fit a law
SEEDS = 3  # seeds per point at the smallest budgets (and per check)...
SEEDED_BUDGETS = 2  # ...at this many of the smallest budgets; one seed above them
MAX_SEEDS = 10
#: What a check registered from the page may ask: (lowest, highest) width, depth and training images.
CHECK_BOUNDS = {"width": (1, 256), "depth": (1, 4), "budget": (100, 60_000)}

# On top of the architecture's recipe. No label smoothing: it caps how confident
# a model may become, which puts a floor under the test cross-entropy that has
# nothing to do with size or data. A batch of 64 gives the smallest budget 32
# optimizer steps (the recipe's 256 would give it 8, and measure the schedule
# more than the model).
SWEEP_RECIPE = {"label_smoothing": 0.0, "batch_size": 64}


@dataclass(frozen=True)
class LrRule:
    """A learning rate per model size: ``lr = coefficient * N^exponent``, kept
    inside the searched range [low, high] (the power law through the best rate a
    search found for each size; ``bigmodels.train.lr_search``)."""

    coefficient: float
    exponent: float
    low: float
    high: float

    def __call__(self, parameters: float) -> float:
        lr = self.coefficient * float(parameters) ** self.exponent
        return float(f"{min(max(lr, self.low), self.high):.4g}")  # four digits: a config a person can read

    @classmethod
    def through(cls, parameters, lrs, low: float, high: float) -> "LrRule":
        """The least-squares line through (log N, log lr)."""
        xs, ys = [math.log(n) for n in parameters], [math.log(v) for v in lrs]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx > 0 else 0.0
        return cls(math.exp(my - slope * mx), slope, low, high)


@dataclass(frozen=True)
class SweepPoint:
    width: int
    depth: int
    budget: int  # training images seen
    parameters: int
    config: TrainConfig
    check: bool = False  # outside the grid: predicted by the grid's law, then measured

    @property
    def seed(self) -> int:
        return self.config.seed


def _point(model: str, width: int, depth: int, budget: int, seed: int, check: bool = False,
           lr_rule: LrRule | None = None, **changes) -> SweepPoint:
    overrides = knob_overrides(model, width, depth)
    parameters = parameter_count(model, KNOBS[model].preset, **overrides)
    if lr_rule is not None and "lr" not in changes:
        changes["lr"] = lr_rule(parameters)
    config = default_config(model, preset=KNOBS[model].preset, epochs=1, train_subset=budget, seed=seed,
                            model_overrides=overrides, **{**SWEEP_RECIPE, **changes})
    config.validate()
    return SweepPoint(width, depth, budget, parameters, config, check)


def _seeds(seed: int, count: int) -> tuple[int, ...]:
    if not 1 <= count <= MAX_SEEDS:
        raise ConfigError([Problem.of("sweep.problem.seeds", n=MAX_SEEDS)])
    return tuple(range(seed, seed + count))


def _known_model(model: str) -> None:
    if model not in KNOBS:
        raise ConfigError([Problem.of("train.problem.model", got=repr(model), choices=", ".join(KNOBS))])


def sweep_grid(model: str = "cnn", widths: tuple[int, ...] | None = None, budgets: tuple[int, ...] | None = None,
               depths: tuple[int, ...] | None = None, seed: int = 0, lr_rule: LrRule | None = None,
               seeds: int = SEEDS, seeded_budgets: int = SEEDED_BUDGETS, **changes) -> list[SweepPoint]:
    """Every (width, depth, budget, seed) point of a sweep, smallest first; ConfigError
    if the grid is too small to fit a law (fewer than 6 sizes spanning 100x in
    parameters, or fewer than 4 budgets) or a point is not a valid run.
    ``lr_rule``: each size's learning rate (None: the recipe's for every size);
    ``seeds`` seeds (from ``seed``) at the ``seeded_budgets`` smallest budgets, one above;
    ``changes``: TrainConfig settings on top of the sweep's recipe."""
    _known_model(model)
    widths = tuple(sorted(set(widths or DEFAULT_WIDTHS.get(model, KNOBS[model].widths))))
    depths = tuple(sorted(set(depths or DEFAULT_DEPTHS.get(model, (KNOBS[model].default_depth,)))))
    budgets = tuple(sorted(set(budgets or DEFAULT_BUDGETS)))
    if min(widths) < 1 or min(depths) < 1:
        raise ConfigError([Problem.of("sweep.problem.knobs")])
    sizes = {parameter_count(model, KNOBS[model].preset, **knob_overrides(model, w, d))
             for w, d in itertools.product(widths, depths)}
    problems = []
    if len(sizes) < MIN_SIZES or max(sizes) < MIN_SPAN * min(sizes):
        problems.append(Problem.of("sweep.problem.sizes", n=MIN_SIZES, span=f"{MIN_SPAN:.0f}"))
    if len(budgets) < MIN_BUDGETS:
        problems.append(Problem.of("sweep.problem.budgets", n=MIN_BUDGETS))
    if problems:
        raise ConfigError(problems)
    seeded = set(budgets[:seeded_budgets])
    all_seeds = _seeds(seed, seeds)
    points = [_point(model, w, d, b, s, lr_rule=lr_rule, **changes)
              for w, d, b in itertools.product(widths, depths, budgets)
              for s in (all_seeds if b in seeded else all_seeds[:1])]
    return sorted(points, key=lambda p: (p.parameters, p.budget, p.seed))


def check_point(model: str = "cnn", width: int | None = None, depth: int | None = None, budget: int | None = None,
                seed: int = 0, lr_rule: LrRule | None = None, **changes) -> SweepPoint:
    """One check run: by default the last of the default checks; the sweep's
    recipe, its learning-rate rule and ``changes`` as for the grid."""
    _known_model(model)
    default = DEFAULT_CHECK.get(model, {"width": max(KNOBS[model].widths), "depth": KNOBS[model].default_depth,
                                        "budget": max(DEFAULT_BUDGETS)})
    width, depth, budget = width or default["width"], depth or default["depth"], budget or default["budget"]
    if width < 1 or depth < 1:
        raise ConfigError([Problem.of("sweep.problem.knobs")])
    asked = {"width": width, "depth": depth, "budget": budget}
    wrong = [Problem.of("sweep.problem.check_bounds", field=Key(f"lab.register.{name}"), low=low, high=high, got=asked[name])
             for name, (low, high) in CHECK_BOUNDS.items() if not low <= asked[name] <= high]
    if wrong:
        raise ConfigError(wrong)
    return _point(model, width, depth, budget, seed, check=True, lr_rule=lr_rule, **changes)


def check_points(model: str = "cnn", width: int | None = None, depth: int | None = None, budget: int | None = None,
                 seed: int = 0, seeds: int = SEEDS, lr_rule: LrRule | None = None, **changes) -> list[SweepPoint]:
    """A check's runs: one per seed (its measurement is their mean)."""
    return [check_point(model, width, depth, budget, s, lr_rule, **changes) for s in _seeds(seed, seeds)]


def knobs_of(model: str, overrides: dict) -> tuple[int, int] | None:
    """The (width, depth) a sweep point of ``model`` was built from, read back from
    its model settings (None when they are not a point of the knobs)."""
    readers = {"cnn": lambda o: (o["conv_channels"][0], len(o["fc_sizes"])),
               "lstm": lambda o: (o["hidden_size"], o["num_layers"]),
               "transformer": lambda o: (o["dim"], o["depth"])}
    try:
        width, depth = readers[model](overrides)
        rebuilt = knob_overrides(model, int(width), int(depth))
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    as_lists = {k: list(v) if isinstance(v, tuple) else v for k, v in rebuilt.items()}
    return (int(width), int(depth)) if as_lists == {k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in overrides.items()} else None
