"""A scaling sweep: one architecture trained at several sizes on several data budgets.

Each point is an ordinary ``TrainConfig`` (so it runs, is recorded and resumes
like any run): the model's width comes from the scale explorer's knobs
(``bigmodels.analysis.scaling``), and the data budget is the number of training
images seen, each once (``train_subset`` = budget, one epoch) -- the
single-pass regime the scaling-law papers fit, where more data is new data.
The sweep's point is test cross-entropy loss against parameters ``N``, images
``D`` and training compute ``C = D x`` (training FLOPs per image, counted on the
real module).
"""
from __future__ import annotations

from dataclasses import dataclass

from bigmodels.analysis.scaling import KNOBS, knob_overrides
from bigmodels.models.registry import parameter_count
from bigmodels.problems import ConfigError, Problem
from bigmodels.train.config import TrainConfig, default_config

#: The CNN's default grid: 8 widths from 7,000 to 970,000 parameters (over two
#: orders of magnitude) and 4 budgets from 2,000 to 60,000 images (all of MNIST).
DEFAULT_WIDTHS = {"cnn": (2, 3, 4, 6, 9, 12, 18, 24)}
DEFAULT_BUDGETS = (2_000, 6_000, 20_000, 60_000)
MIN_SIZES, MIN_BUDGETS, MIN_SPAN = 6, 4, 100.0  # what a sweep must cover to fit a law


@dataclass(frozen=True)
class SweepPoint:
    width: int
    depth: int
    budget: int  # training images seen
    parameters: int
    config: TrainConfig


def sweep_grid(model: str = "cnn", widths: tuple[int, ...] | None = None, budgets: tuple[int, ...] | None = None,
               depth: int | None = None, seed: int = 0, **changes) -> list[SweepPoint]:
    """Every (width, budget) point of a sweep, smallest first; ConfigError if the
    grid is too small to fit a law (fewer than 6 sizes spanning 100x in
    parameters, or fewer than 4 budgets) or a point is not a valid run."""
    if model not in KNOBS:
        raise ConfigError([Problem.of("train.problem.model", got=repr(model), choices=", ".join(KNOBS))])
    widths = tuple(sorted(set(widths or DEFAULT_WIDTHS.get(model, KNOBS[model].widths))))
    budgets = tuple(sorted(set(budgets or DEFAULT_BUDGETS)))
    depth = depth or KNOBS[model].default_depth
    sizes = {w: parameter_count(model, KNOBS[model].preset, **knob_overrides(model, w, depth)) for w in widths}
    problems = []
    if len(widths) < MIN_SIZES or max(sizes.values()) < MIN_SPAN * min(sizes.values()):
        problems.append(Problem.of("sweep.problem.sizes", n=MIN_SIZES, span=f"{MIN_SPAN:.0f}"))
    if len(budgets) < MIN_BUDGETS:
        problems.append(Problem.of("sweep.problem.budgets", n=MIN_BUDGETS))
    if problems:
        raise ConfigError(problems)
    points = []
    for width in widths:
        for budget in budgets:
            config = default_config(model, preset=KNOBS[model].preset, epochs=1, train_subset=budget, seed=seed,
                                    model_overrides=knob_overrides(model, width, depth), **changes)
            config.validate()
            points.append(SweepPoint(width, depth, budget, sizes[width], config))
    return points
