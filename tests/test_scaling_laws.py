"""The scaling-law fits recover known laws from noisy data drawn from them."""
import numpy as np
import pytest

from bigmodels.analysis.scaling_laws import (
    CHINCHILLA, ChinchillaFit, bootstrap, compute_optimal, fit_chinchilla, fit_power, huber,
)

TRUE = dict(E=0.3, A=40.0, alpha=0.45, B=30.0, beta=0.35)  # each term matters somewhere on the grid


def draws(noise: float = 0.01, seed: int = 0):
    """A 6 x 4 grid of sizes and budgets (as a sweep here would be), losses from
    the law with multiplicative noise."""
    rng = np.random.default_rng(seed)
    n, d = np.meshgrid(np.geomspace(2e3, 2e6, 6), np.geomspace(5e3, 3e5, 4))
    n, d = n.ravel(), d.ravel()
    law = ChinchillaFit(**TRUE, objective=0.0)
    return n, d, law.predict(n, d) * np.exp(rng.normal(0, noise, n.size))


def test_the_fit_recovers_known_exponents_from_noisy_draws():
    n, d, loss = draws(noise=0.01)
    fit = fit_chinchilla(n, d, loss)
    assert fit.alpha == pytest.approx(TRUE["alpha"], abs=0.06)
    assert fit.beta == pytest.approx(TRUE["beta"], abs=0.06)
    assert fit.E == pytest.approx(TRUE["E"], abs=0.05)
    # the fitted law predicts held-out points of the true one
    law = ChinchillaFit(**TRUE, objective=0.0)
    assert np.allclose(fit.predict(5e6, 1e6), law.predict(5e6, 1e6), rtol=0.1)


def test_the_huber_loss_shrugs_off_an_outlier():
    n, d, loss = draws(noise=0.005, seed=1)
    loss[3] *= 3.0  # one diverged run
    fit = fit_chinchilla(n, d, loss)
    assert fit.alpha == pytest.approx(TRUE["alpha"], abs=0.08)
    assert fit.beta == pytest.approx(TRUE["beta"], abs=0.08)
    assert huber(np.array([0.0, 1e-3, 1.0])).tolist() == pytest.approx([0.0, 5e-7, 1e-3 * (1 - 5e-4)])


def test_bootstrap_intervals_contain_the_truth():
    n, d, loss = draws(noise=0.01, seed=2)
    intervals = bootstrap(n, d, loss, samples=30, level=0.9, seed=0)
    for name in ("alpha", "beta"):
        assert intervals[name].low <= TRUE[name] <= intervals[name].high, (name, intervals[name])
        assert intervals[name].high - intervals[name].low < 0.5


def test_one_variable_power_law():
    x = np.geomspace(1e3, 1e7, 8)
    loss = 0.1 + 20.0 / x**0.3 * np.exp(np.random.default_rng(3).normal(0, 0.005, 8))
    fit = fit_power(x, loss)
    assert fit.alpha == pytest.approx(0.3, abs=0.05) and fit.E == pytest.approx(0.1, abs=0.03)


def test_compute_optimal_allocation_matches_the_closed_form():
    fit = CHINCHILLA  # Hoffmann et al.'s fit
    n_opt, d_opt = compute_optimal(fit, 5.76e23)  # Chinchilla's own budget
    assert 6 * n_opt * d_opt == pytest.approx(5.76e23)
    # brute force along the budget's curve: no N does better
    grid = np.geomspace(n_opt / 30, n_opt * 30, 2001)
    best = grid[np.argmin(fit.predict(grid, 5.76e23 / 6 / grid))]
    assert best == pytest.approx(n_opt, rel=0.01)
    # The paper's parametric fit (its Approach 3) puts the optimum for Chinchilla's budget at about 32B
    # parameters; Approaches 1 and 2, and Chinchilla itself (70B on 1.4T tokens), at about 20 tokens each.
    assert 2e10 < n_opt < 5e10


@pytest.mark.parametrize("args", [
    ([1, 2], [1, 2], [1, 2]),  # too few runs
    ([1, 2, 3], [1, 2], [1, 2, 3]),  # ragged
    ([1, 2, 3], [1, 2, 3], [1, 0, 3]),  # a zero loss
    ([1, 2, float("nan")], [1, 2, 3], [1, 2, 3]),
])
def test_bad_inputs_are_refused_with_a_message(args):
    with pytest.raises(ValueError):
        fit_chinchilla(*(np.array(a, float) for a in args))


# ------------------------------------------------------------ the sweep grid
def test_the_default_sweep_spans_two_orders_of_magnitude_and_four_budgets():
    from bigmodels.train.sweep import SEEDED_BUDGETS, SEEDS, sweep_grid

    points = sweep_grid("cnn")
    sizes = sorted({p.parameters for p in points})
    budgets = sorted({p.budget for p in points})
    assert len(sizes) >= 6 and sizes[-1] / sizes[0] >= 100 and len(budgets) >= 4
    # SEEDS seeds at the SEEDED_BUDGETS smallest budgets, one above them
    assert SEEDS >= 3 and len(points) == len(sizes) * (len(budgets) + (SEEDS - 1) * SEEDED_BUDGETS)
    for budget in budgets:
        seeds = {(p.parameters, p.seed) for p in points if p.budget == budget}
        assert len(seeds) == len(sizes) * (SEEDS if budget in budgets[:SEEDED_BUDGETS] else 1)
    for p in points:  # every point is an ordinary, valid run that sees each of its images once
        assert p.config.epochs == 1 and p.config.train_subset == p.budget and not p.config.problems()


def test_a_sweep_too_small_to_fit_is_refused():
    from bigmodels.base.problems import ConfigError
    from bigmodels.train.sweep import sweep_grid

    with pytest.raises(ConfigError, match="at least 6 model sizes"):
        sweep_grid("cnn", widths=(2, 3, 4))
    with pytest.raises(ConfigError, match="at least 4 data budgets"):
        sweep_grid("cnn", budgets=(1000, 2000))


def test_training_flops_count_forward_and_backward():
    from bigmodels.models.profile import profile_model, training_flops_per_image
    from bigmodels.models.registry import create_model

    model = create_model("cnn")
    forward = profile_model(model).flops_per_image
    # backward costs about twice the forward (less: the first layer needs no input gradient)
    assert 2.2 * forward < training_flops_per_image(model) < 3.1 * forward


def test_a_weighted_fit_on_synthetic_data_still_recovers_the_known_exponents():
    """Points with three noisy seeds and points with one quiet one, weighted by their spread."""
    from bigmodels.analysis.scaling_laws import fit_chinchilla

    rng = np.random.default_rng(11)
    truth = dict(E=0.05, A=30.0, alpha=0.4, B=200.0, beta=0.6)
    n, d = np.meshgrid(np.geomspace(2e3, 2e6, 7), np.array([2e3, 6e3, 2e4, 6e4]))
    n, d = n.ravel(), d.ravel()
    clean = truth["E"] + truth["A"] / n ** truth["alpha"] + truth["B"] / d ** truth["beta"]
    noise = np.where(d < 1e4, 0.05, 0.005)  # the small budgets scatter ten times more
    loss = clean * np.exp(rng.normal(0, noise))
    fit = fit_chinchilla(n, d, loss, weights=(1 / noise) / np.median(1 / noise))
    assert fit.alpha == pytest.approx(truth["alpha"], abs=0.05)
    assert fit.beta == pytest.approx(truth["beta"], abs=0.05)


def test_the_local_exponent_is_flat_for_a_power_law_and_falls_where_loss_saturates():
    from bigmodels.analysis.scaling_laws import local_exponents

    n = np.geomspace(1e3, 1e6, 7)
    _, slope = local_exponents(n, 3.0 / n**0.4)
    assert np.allclose(slope, 0.4)
    _, saturating = local_exponents(n, 0.03 + 3.0 / n**0.4)
    assert np.all(np.diff(saturating) < 0) and saturating[-1] < 0.2


def test_isoflop_parabolas_find_the_optimum_of_a_known_surface():
    """Approach 2 on noise-free losses of a known law (C = 6 N D): its exponent is near
    beta/(alpha+beta), but not exact -- the parabola is an approximation (arXiv 2603.22339)."""
    from bigmodels.analysis.scaling_laws import isoflop_profiles, optimum_exponent

    alpha, beta = 0.34, 0.28
    sizes = {}
    for n in np.geomspace(1e6, 1e10, 17):
        d = np.geomspace(1e6, 1e12, 25)
        sizes[n] = (6 * n * d, 1.69 + 406.4 / n**alpha + 410.7 / d**beta)
    budgets = np.geomspace(1e17, 1e20, 5)
    profiles = isoflop_profiles(sizes, budgets)
    assert len(profiles) == 5
    a = optimum_exponent(np.array([p.compute for p in profiles]), np.array([p.n_opt for p in profiles]))
    assert a == pytest.approx(beta / (alpha + beta), abs=0.06)
