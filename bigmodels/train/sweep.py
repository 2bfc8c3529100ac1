"""A scaling sweep: one architecture trained at several sizes on several data budgets.

Each point is an ordinary ``TrainConfig`` (so it runs, is recorded and resumes
like any run): the model's size comes from the scale explorer's width and
depth knobs (``bigmodels.analysis.scaling``), and the data budget is the number
of training images seen, each once (``train_subset`` = budget, one epoch) --
the single-pass regime the scaling-law papers fit, where more data is new data.
The sweep's point is test cross-entropy loss against parameters ``N``, images
``D`` and training compute ``C = D x`` (training FLOPs per image, counted on the
real module).

A *check* point is a run outside the grid (a larger model than any in it):
the law fitted on the grid predicts its loss before it is trained, and the
measured loss then says how far the prediction carried.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from bigmodels.analysis.scaling import KNOBS, knob_overrides
from bigmodels.models.registry import parameter_count
from bigmodels.base.problems import ConfigError, Problem
from bigmodels.train.config import TrainConfig, default_config

#: The CNN's default grid: 8 widths x 3 depths, from 5,000 to 1,000,000
#: parameters (over two orders of magnitude), and 4 budgets from 2,000 to 60,000
#: images (all of MNIST).
DEFAULT_WIDTHS = {"cnn": (2, 3, 4, 6, 9, 12, 18, 24)}
DEFAULT_DEPTHS = {"cnn": (1, 2, 3)}
DEFAULT_BUDGETS = (2_000, 6_000, 20_000, 60_000)
#: The default check: a model wider than the grid's widest, on all of MNIST.
DEFAULT_CHECK = {"cnn": {"width": 36, "depth": 2, "budget": 60_000}}
MIN_SIZES, MIN_BUDGETS, MIN_SPAN = 6, 4, 100.0  # what a sweep must cover to fit a law

# On top of the architecture's recipe. No label smoothing: it caps how confident
# a model may become, which puts a floor under the test cross-entropy that has
# nothing to do with size or data. A batch of 64 gives the smallest budget 32
# optimizer steps (the recipe's 256 would give it 8, and measure the schedule
# more than the model).
SWEEP_RECIPE = {"label_smoothing": 0.0, "batch_size": 64}


@dataclass(frozen=True)
class SweepPoint:
    width: int
    depth: int
    budget: int  # training images seen
    parameters: int
    config: TrainConfig
    check: bool = False  # outside the grid: predicted by the grid's law, then measured


def _point(model: str, width: int, depth: int, budget: int, seed: int, check: bool = False,
           **changes) -> SweepPoint:
    overrides = knob_overrides(model, width, depth)
    config = default_config(model, preset=KNOBS[model].preset, epochs=1, train_subset=budget, seed=seed,
                            model_overrides=overrides, **{**SWEEP_RECIPE, **changes})
    config.validate()
    return SweepPoint(width, depth, budget, parameter_count(model, KNOBS[model].preset, **overrides), config, check)


def _known_model(model: str) -> None:
    if model not in KNOBS:
        raise ConfigError([Problem.of("train.problem.model", got=repr(model), choices=", ".join(KNOBS))])


def sweep_grid(model: str = "cnn", widths: tuple[int, ...] | None = None, budgets: tuple[int, ...] | None = None,
               depths: tuple[int, ...] | None = None, seed: int = 0, **changes) -> list[SweepPoint]:
    """Every (width, depth, budget) point of a sweep, smallest first; ConfigError
    if the grid is too small to fit a law (fewer than 6 sizes spanning 100x in
    parameters, or fewer than 4 budgets) or a point is not a valid run.
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
    points = [_point(model, w, d, b, seed, **changes) for w, d, b in itertools.product(widths, depths, budgets)]
    return sorted(points, key=lambda p: (p.parameters, p.budget))


def check_point(model: str = "cnn", width: int | None = None, depth: int | None = None, budget: int | None = None,
                seed: int = 0, **changes) -> SweepPoint:
    """The check run: by default a model wider than the default grid's widest,
    on all the data; the sweep's recipe and ``changes`` as for the grid."""
    _known_model(model)
    default = DEFAULT_CHECK.get(model, {"width": max(KNOBS[model].widths), "depth": KNOBS[model].default_depth,
                                        "budget": max(DEFAULT_BUDGETS)})
    width, depth = width or default["width"], depth or default["depth"]
    if width < 1 or depth < 1:
        raise ConfigError([Problem.of("sweep.problem.knobs")])
    return _point(model, width, depth, budget or default["budget"], seed, check=True, **changes)


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
