"""Runs grouped as repeats of one experiment: the groups, their mean ± std curves and rows."""
import statistics

import pytest

from bigmodels.figures.runs import group_accuracy_figure, group_curves, group_loss_figure, run_settings
from bigmodels.reports.run_groups import curve, group_runs, mean_std, result_stats
from bigmodels.runs.queue import submit
from bigmodels.runs.store import RunStore
from tests.test_runs import cfg, finish_run


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "home")


def test_mean_and_sample_std_of_the_finite_values():
    assert mean_std([0.9, 0.95, None, float("nan")]) == pytest.approx((0.925, statistics.stdev([0.9, 0.95]), 2))
    assert mean_std([0.5]) == (0.5, 0.0, 1)
    assert mean_std([None]) == (None, None, 0)


def test_runs_that_differ_only_in_the_seed_are_one_group(store):
    a = finish_run(store, submit(store, cfg(seed=0)).run.id, accuracies=(0.90, 0.94))
    b = finish_run(store, submit(store, cfg(seed=1)).run.id, accuracies=(0.92, 0.96))
    c = finish_run(store, submit(store, cfg(seed=0, lr=1e-3)).run.id, accuracies=(0.80, 0.85))
    groups = group_runs([a, b, c], run_settings)
    assert [g.ids for g in groups] == [(a.id, b.id), (c.id,)]
    assert [dict(g.distinct) for g in groups] == [{"lr": 0.01}, {"lr": 1e-3}]  # what tells them apart
    best = result_stats(groups[0])["best_accuracy"]
    assert best == pytest.approx((0.95, statistics.stdev([0.94, 0.96]), 2))
    assert result_stats(groups[1])["best_accuracy"] == pytest.approx((0.85, 0.0, 1))
    # ignoring nothing: every run is its own group, and the seed is among what tells them apart
    alone = group_runs([a, b, c], run_settings, ignore=())
    assert len(alone) == 3 and "seed" in dict(alone[0].distinct)
    # ignoring the learning rate too: one group of three, nothing to tell apart
    (everything,) = group_runs([a, b, c], run_settings, ignore=("seed", "lr"))
    assert everything.distinct == () and len(everything.runs) == 3


def test_a_group_curve_averages_its_runs_point_by_point(store):
    a = finish_run(store, submit(store, cfg(seed=0)).run.id, accuracies=(0.90, 0.94))
    b = finish_run(store, submit(store, cfg(seed=1)).run.id, accuracies=(0.92, 0.96))
    members = [(r, store.steps(r.id), store.epochs(r.id)) for r in (a, b)]
    train, test, accuracy = group_curves(members, smoothing=0.0)
    assert [p.x for p in accuracy] == [1, 2] and [p.n for p in accuracy] == [2, 2]
    assert accuracy[1].mean == pytest.approx(0.95) and accuracy[1].std == pytest.approx(statistics.stdev([0.94, 0.96]))
    assert len(train) == 64 and train[0].x == pytest.approx(1 / 32) and train[0].std == 0.0  # same losses: no spread
    # a key only one run reached is averaged over that one run
    partial = curve([[(1, 1.0, 0.5), (2, 2.0, 0.7)], [(1, 1.0, 0.7)]])
    assert [(p.mean, p.n) for p in partial] == [pytest.approx((0.6, 2)), (0.7, 1)]
    texts = {"train_loss": "train", "test_loss": "test", "x": "epoch", "y": "y"}
    loss = group_loss_figure([("g", train, test)], texts)
    bands = [d for d in loss.data if d.fill == "toself"]
    assert len(bands) == 2  # training and test loss, each with its band
    acc = group_accuracy_figure([("g", accuracy)], texts)
    upper = list(acc.data[0].y)[:2]
    assert upper == pytest.approx([0.91 + statistics.stdev([0.90, 0.92]), 0.95 + statistics.stdev([0.94, 0.96])])
