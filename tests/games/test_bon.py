"""Best-of-N distributions (THEORY.md 7 items 1 and 6)."""

import warnings

import numpy as np
import pytest

from windalign.games import (
    best_of_two,
    bon_distribution,
    hard_order,
    log_best_of_two,
    log_bon_distribution,
    log_iterated_bon_step,
    random_game,
    response_win_rates,
)


def _mc_bon(pi, rewards, n, draws, rng):
    """Monte Carlo reward Best-of-n: draw n, keep the highest reward, ties uniform among draws."""
    idx = rng.choice(len(pi), size=(draws, n), p=pi)
    key = rewards[idx] * 10.0 + rng.random((draws, n))  # reward gaps >= 1: noise only breaks ties
    kept = idx[np.arange(draws), np.argmax(key, axis=1)]
    return np.bincount(kept, minlength=len(pi)) / draws


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_bon_matches_monte_carlo_selection_with_ties(n):
    rng = np.random.default_rng(n)
    pi = np.array([0.1, 0.25, 0.15, 0.3, 0.2])
    rewards = np.array([0.0, 1.0, 1.0, 2.0, 0.0])  # two tie groups
    draws = 400_000
    freq = _mc_bon(pi, rewards, n, draws, rng)
    exact = bon_distribution(pi, rewards, n)
    sigma = np.sqrt(exact * (1 - exact) / draws)
    np.testing.assert_array_less(np.abs(freq - exact), 5 * sigma + 1e-12)
    assert exact.sum() == pytest.approx(1.0, abs=1e-14)


def test_ties_share_mass_in_proportion_to_pi():
    pi = np.array([0.2, 0.6, 0.2])
    out = bon_distribution(pi, np.array([1.0, 1.0, 0.0]), 4)
    assert out[0] / out[1] == pytest.approx(pi[0] / pi[1], rel=1e-13)
    # the tied top group {0, 1} holds 1 - P(all n draws land in the bottom group)
    assert out[0] + out[1] == pytest.approx(1 - 0.2**4, rel=1e-13)


def test_best_of_two_matches_monte_carlo_under_general_oracle():
    rng = np.random.default_rng(3)
    g = random_game(4, nontransitive=1.0, seed=3)
    pi = rng.dirichlet(np.ones(4))
    draws = 400_000
    y = rng.choice(4, size=(draws, 2), p=pi)
    keep_first = rng.random(draws) < g.P[y[:, 0], y[:, 1]]
    kept = np.where(keep_first, y[:, 0], y[:, 1])
    freq = np.bincount(kept, minlength=4) / draws
    exact = best_of_two(pi, g.P)
    np.testing.assert_array_less(np.abs(freq - exact), 5 * np.sqrt(exact / draws))


def test_bo2_identity_and_log_form():
    g = random_game(7, batch=(5,), nontransitive=0.7, seed=1)
    pi = np.random.default_rng(0).dirichlet(np.ones(7), size=5)
    w = response_win_rates(g.P, pi)
    np.testing.assert_allclose(best_of_two(pi, g.P), 2 * pi * w, rtol=1e-14)
    np.testing.assert_allclose(best_of_two(pi, g.P).sum(-1), 1.0, rtol=1e-14)
    # iterated Bo2 is mirror ascent on the log win rate: log pi' = log pi + log w + log 2
    step = log_iterated_bon_step(np.log(pi), g.P)
    np.testing.assert_allclose(step, np.log(pi) + np.log(w) + np.log(2), atol=1e-13)
    np.testing.assert_allclose(log_best_of_two(np.log(pi), g.P), step, atol=1e-13)


def test_bo2_under_hard_order_is_reward_bo2():
    rng = np.random.default_rng(5)
    rewards = rng.integers(0, 4, size=(6, 9)).astype(float)  # many ties
    pi = rng.dirichlet(np.ones(9), size=6)
    np.testing.assert_allclose(
        best_of_two(pi, hard_order(rewards)), bon_distribution(pi, rewards, 2), atol=1e-15
    )


@pytest.mark.parametrize(("n", "m"), [(2, 3), (3, 3), (4, 2), (1, 7)])
def test_bon_composition(n, m):
    rng = np.random.default_rng(n * 10 + m)
    rewards = rng.integers(0, 5, size=(8, 12)).astype(float)
    pi = rng.dirichlet(np.ones(12) * 0.5, size=8)
    twice = log_bon_distribution(log_bon_distribution(np.log(pi), rewards, m), rewards, n)
    np.testing.assert_allclose(twice, log_bon_distribution(np.log(pi), rewards, n * m), atol=1e-11)


def test_bon_survives_underflowing_actions():
    # probabilities e^-800 and e^-1200 are 0.0 in float64: the naive ratio is 0/0 there
    log_pi = np.array([-1200.0, np.log(0.5), -800.0, np.log(0.5)])
    rewards = np.array([0.0, 1.0, 2.0, 3.0])
    n = 4
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = np.exp(log_pi)
        F = np.array([pi[: i + 1].sum() for i in range(4)])
        F_ = F - pi
        naive = pi * (F**n - F_**n) / (F - F_)
    assert np.isnan(naive[[0, 2]]).all()
    out = log_bon_distribution(log_pi, rewards, n)
    assert np.all(np.isfinite(out))
    # lowest action wins only if all n draws are it: log BoN = n log pi
    assert out[0] == pytest.approx(n * -1200.0, rel=1e-14)
    # a tiny action above mass 1/2: BoN = (F^n - F_^n) with F - F_ = e^-800 -> n F^(n-1) e^-800
    assert out[2] == pytest.approx(np.log(n) + (n - 1) * np.log(0.5) - 800.0, rel=1e-14)
    assert np.exp(out).sum() == pytest.approx(1.0, abs=1e-15)


def test_bon_with_zero_probability_members_of_a_tie_group():
    with np.errstate(divide="ignore"):
        log_pi = np.log([0.0, 0.5, 0.5])
    out = log_bon_distribution(log_pi, np.array([1.0, 1.0, 0.0]), 3)
    assert out[0] == -np.inf
    assert not np.isnan(out).any()
    np.testing.assert_allclose(np.exp(out), [0.0, 1 - 0.5**3, 0.5**3], rtol=1e-14)


def test_iterated_reward_bon_in_log_space_stays_finite():
    log_pi = np.log(np.full(5, 0.2))
    rewards = np.arange(5.0)
    for _ in range(60):  # effective N = 2^60: all but the best action underflow
        log_pi = log_iterated_bon_step(log_pi, None, 2, rewards)
    assert not np.isnan(log_pi).any()
    assert np.exp(log_pi[-1]) == pytest.approx(1.0, abs=1e-14)
    # the runner-up: BoN_{2^60} of a uniform policy puts mass 0.8^N - 0.6^N on it
    assert log_pi[3] == pytest.approx(2.0**60 * np.log(0.8), rel=1e-10)


def test_bon_rejects_n_below_one():
    with pytest.raises(ValueError, match="n >= 1"):
        bon_distribution(np.array([0.5, 0.5]), np.zeros(2), 0.5)


def test_bon_of_vanishing_mass_is_exact_and_silent():
    # a log-mass near the float limit times (n - 1) overflows to -inf: exact, and no warning
    log_pi = np.array([-1e308, np.log(0.5), np.log(0.5)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = log_bon_distribution(log_pi, np.array([0.0, 1.0, 2.0]), 8)
    assert out[0] == -np.inf
    np.testing.assert_allclose(np.exp(out[1:]), [0.5**8, 1 - 0.5**8])
