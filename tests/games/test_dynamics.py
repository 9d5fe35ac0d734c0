"""Baseline dynamics and the METHODS registry (THEORY.md 7 items 2 and 5)."""

from pathlib import Path

import numpy as np
import pytest

from windalign.games import (
    METHODS,
    SolveResult,
    bradley_terry,
    cyclic_oracle,
    exploitability,
    kl,
    kl_logits,
    log_regularized_bon_step,
    log_sppo_step,
    nash_md,
    random_game,
    regularized_iterated_bon,
    response_win_rates,
    solve_equilibrium,
    sppo_mw,
)


def test_sppo_last_iterate_does_not_converge_on_a_cyclic_game():
    P = cyclic_oracle(3)
    pi0 = np.array([0.5, 0.3, 0.2])
    uniform = np.full(3, 1 / 3)  # the unique von Neumann winner
    log_pi, dist, ex = np.log(pi0), [], []
    for _ in range(3000):
        log_pi = log_sppo_step(log_pi, response_win_rates(P, np.exp(log_pi)), eta=0.5)
        dist.append(kl(uniform, np.exp(log_pi)))
        ex.append(exploitability(P, np.exp(log_pi)))
    # multiplicative weights spirals away from the equilibrium at every step
    assert np.all(np.diff(dist) > 0)
    assert min(ex[-500:]) > exploitability(P, pi0)
    # exact WIND on the same game (ref = pi0) converges in the last iterate
    wind = solve_equilibrium(P, pi0, beta=0.1, method="mirror", tol=1e-12, max_iter=20_000)
    assert wind.trace.converged
    # and the runner's trace agrees with the step it wraps
    res = sppo_mw(P, pi0, eta=0.5, max_iter=3000)
    np.testing.assert_allclose(res.log_pi, log_pi, atol=1e-9)


def _settled(P, ref, lam, steps, window=200):
    """Which games' regularized Bo2 iterates stopped moving (L1 < 1e-8 over the last window)."""
    log_ref = np.log(ref)
    log_pi, moves = log_ref, []
    for t in range(steps):
        new = log_regularized_bon_step(log_pi, P, log_ref, lam)
        if t >= steps - window:
            moves.append(np.abs(np.exp(new) - np.exp(log_pi)).sum(-1))
        log_pi = new
    return np.max(moves, axis=0) < 1e-8, np.max(moves, axis=0)


def test_regularized_iterated_bon_cycles_on_nontransitive_games_at_small_lam():
    g = random_game(9, batch=(50,), nontransitive=1.0, ref="uniform", seed=0)
    settled, moves = _settled(g.P, g.ref, lam=0.02, steps=3000)
    # many games never settle, and they keep moving by a macroscopic amount (a cycle, not a
    # slow approach)
    assert (~settled).sum() >= 10
    assert np.sum(moves > 1e-3) >= 10
    settled, _ = _settled(g.P, g.ref, lam=0.3, steps=3000)
    assert settled.all()
    # exact WIND converges linearly on every one of these games
    beta = 0.02
    star = solve_equilibrium(g.P, g.ref, beta)
    assert star.trace.converged
    wind = solve_equilibrium(g.P, g.ref, beta, method="mirror", tol=0.0, max_iter=3000)
    start, end = kl_logits(star.log_pi, np.log(g.ref)), kl_logits(star.log_pi, wind.log_pi)
    assert np.all(end <= start / (1 + beta**2) ** 3000)


def test_regularized_iterated_bon_converges_on_transitive_oracles():
    rewards = np.random.default_rng(1).standard_normal((50, 9)) * 2
    settled, _ = _settled(bradley_terry(rewards), np.full((50, 9), 1 / 9), lam=0.02, steps=3000)
    assert settled.all()


def test_regularized_bon_fixed_point_approximates_wind_near_parity():
    # log(2w) ~ 2(w - 1/2) near parity: with lam = 2 beta / (1 + 2 beta) the fixed point of
    # regularized Bo2 tends to the WIND equilibrium as preferences weaken (error O(strength))
    g = random_game(7, batch=(20,), nontransitive=0.0, seed=3)
    beta = 0.05
    ratios = []
    for strength in (0.2, 0.05, 0.0125):
        P = 0.5 + strength * (g.P - 0.5)
        reg = regularized_iterated_bon(P, g.ref, beta, max_iter=3000)
        assert reg.trace.change[-1] < 1e-12
        star = solve_equilibrium(P, g.ref, beta).pi
        ratios.append(np.max(np.abs(reg.pi - star).sum(-1) / np.abs(star - g.ref).sum(-1)))
    assert ratios[1] < ratios[0] / 2.5 and ratios[2] < ratios[1] / 2.5
    assert ratios[-1] < 0.02


def test_nash_md_without_mixing_reaches_the_wind_equilibrium():
    g = random_game(6, batch=(10,), seed=2)
    star = solve_equilibrium(g.P, g.ref, 0.5).pi
    res = nash_md(g.P, g.ref, beta=0.5, alpha=0.0, max_iter=5000, tol=1e-14)
    assert res.trace.converged
    np.testing.assert_allclose(res.pi, star, atol=1e-7)
    mixed = nash_md(g.P, g.ref, beta=0.5, alpha=0.5, max_iter=2000)
    assert mixed.trace.gap[-1] > 1e-6  # the geometric mixture shifts the fixed point


@pytest.mark.parametrize("name", METHODS.names())
def test_every_registered_method_returns_a_consistent_trace(name):
    g = random_game(6, batch=(5,), seed=9)
    res = METHODS[name](g.P, g.ref, 0.3, max_iter=400, progress=False)
    assert isinstance(res, SolveResult)
    tr = res.trace
    assert res.pi.shape == (5, 6)
    np.testing.assert_allclose(res.pi.sum(-1), 1.0, atol=1e-12)
    assert len(tr.gap) == tr.iterations + 1 and np.all(np.isfinite(tr.gap))
    assert 1 <= tr.iterations <= 400 and tr.seconds > 0
    assert tr.converged == (tr.gap[-1] <= 1e-12)
    if name in ("newton", "mirror"):
        assert tr.converged


def test_method_registry_names_unknown_methods():
    with pytest.raises(KeyError, match="unknown method 'gradient'; choose one of: newton"):
        METHODS["gradient"]


def test_docs_method_table_is_the_registry():
    doc = (Path(__file__).parents[2] / "docs" / "theory.md").read_text()
    rows = METHODS.help_table().splitlines()[2:]
    assert len(rows) == len(METHODS)
    for row in rows:
        assert row in doc
