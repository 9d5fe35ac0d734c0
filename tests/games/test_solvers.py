"""Exact WIND solvers (THEORY.md 7 items 2 and 3)."""

import numpy as np
import pytest
from scipy.optimize import root
from scipy.special import softmax

from windalign.games import (
    BETA_MAX,
    BETA_MIN,
    duality_gap,
    exploitability,
    kl_logits,
    log_wind_mirror_step,
    mirror_solve,
    newton_solve,
    random_game,
    response_win_rates,
    solve_equilibrium,
    win_rate,
    wind_equilibrium_residual,
    wind_mirror_step,
)


def _mirror_path(g, beta, eta, steps):
    """log pi_t, t = 0..steps, of exact WIND from ref."""
    log_ref = np.log(g.ref)
    path = [log_ref]
    for _ in range(steps):
        path.append(log_wind_mirror_step(g.P, log_ref, path[-1], beta, eta))
    return np.array(path)


@pytest.mark.parametrize("K", [3, 6, 12])
@pytest.mark.parametrize("beta", [0.05, 0.3, 1.0])
def test_mirror_contracts_kl_to_equilibrium_at_every_step(K, beta):
    # 70 random games per (K, beta) with a mix of transitive and cyclic structure
    g = random_game(K, batch=(70,), nontransitive=0.8, seed=K)
    star = solve_equilibrium(g.P, g.ref, beta, tol=1e-15).log_pi
    for eta in (beta, beta / 3):
        path = _mirror_path(g, beta, eta, 250)
        dist = kl_logits(star[None], path)  # [T+1, B]
        rate = 1.0 / (1.0 + eta * beta)
        valid = dist[:-1] > 1e-11  # above the accuracy of pi*
        assert valid.sum() > 1000
        excess = dist[1:] - rate * dist[:-1] * (1 + 1e-7)
        assert np.max(np.where(valid, excess, -np.inf)) <= 0.0


@pytest.mark.parametrize("beta", [0.1, 0.4])
def test_mirror_gap_falls_at_the_asymptotic_rate(beta):
    g = random_game(8, batch=(40,), nontransitive=0.8, seed=2)
    eta = beta
    res = solve_equilibrium(g.P, g.ref, beta, method="mirror", tol=1e-11, max_iter=20_000)
    assert res.trace.converged
    gap = res.trace.gap
    assert np.all(gap >= -1e-14)
    late = np.flatnonzero(gap > 1e-10)
    t0, t1 = late[len(late) // 2], late[-1]
    slope = (np.log(gap[t1]) - np.log(gap[t0])) / (t1 - t0)
    assert slope <= np.log(1.0 / (1.0 + eta * beta)) + 1e-4


def test_newton_agrees_with_mirror_and_reaches_tiny_gap():
    g = random_game(8, batch=(20,), nontransitive=0.6, seed=4)
    beta = 0.5
    newton = solve_equilibrium(g.P, g.ref, beta)
    mirror = solve_equilibrium(g.P, g.ref, beta, method="mirror", tol=0.0, max_iter=800)
    assert newton.trace.converged
    assert newton.trace.gap[-1] <= 1e-12
    assert np.max(duality_gap(g.P, g.ref, newton.pi, beta)) <= 1e-12
    np.testing.assert_allclose(newton.pi, mirror.pi, atol=1e-9, rtol=0)
    np.testing.assert_allclose(
        wind_mirror_step(g.P, g.ref, newton.pi, beta, beta), newton.pi, atol=1e-12
    )


@pytest.mark.parametrize("beta", [1.0, 0.1, 0.01, 0.001])
def test_newton_reaches_gap_1e12_down_to_beta_1e3(beta):
    g = random_game(30, batch=(40,), nontransitive=0.5, seed=7)
    res = solve_equilibrium(g.P, g.ref, beta)
    assert res.trace.converged
    assert np.max(duality_gap(g.P, g.ref, res.pi, beta)) <= 1e-12
    assert np.max(wind_equilibrium_residual(g.P, g.ref, res.pi, beta)) <= 1e-7
    np.testing.assert_allclose(res.pi.sum(-1), 1.0, atol=1e-14)


def test_shared_oracle_broadcasts_over_references():
    g = random_game(5, batch=(3,), seed=8)
    refs = np.random.default_rng(0).dirichlet(np.ones(5), size=3)
    shared = solve_equilibrium(g.P[0], refs, 0.2).pi
    for b in range(3):
        np.testing.assert_allclose(
            shared[b], solve_equilibrium(g.P[0], refs[b], 0.2).pi, atol=1e-12
        )


@pytest.mark.parametrize(("seed", "beta"), [(0, 0.5), (1, 0.2), (2, 0.1), (3, 0.05)])
def test_uniform_reference_equilibrium_is_the_logit_qre(seed, beta):
    # independent method: scipy's hybrid root finder on the logit-QRE fixed point
    # x = softmax(P x / beta) of the symmetric game with payoff P, precision 1/beta
    g = random_game(6, nontransitive=0.8, ref="uniform", seed=seed)

    def fixed_point(z):
        return z - g.P @ softmax(z) / beta

    sol = root(fixed_point, g.P @ g.ref / beta, method="hybr", tol=1e-13)
    assert np.max(np.abs(fixed_point(sol.x))) < 1e-11
    qre = softmax(sol.x)
    wind = solve_equilibrium(g.P, g.ref, beta).pi
    np.testing.assert_allclose(wind, qre, atol=1e-10)


def test_exploitability_vanishes_as_beta_goes_to_zero():
    g = random_game(20, batch=(30,), nontransitive=0.7, seed=5)  # non-uniform (Dirichlet) ref
    assert np.min(exploitability(g.P, g.ref)) > 0.01
    bound = np.log(1.0 / g.ref.min(-1))
    worst = []
    for beta in [0.3, 0.1, 0.03, 0.01, 0.003, 0.001]:
        pi = solve_equilibrium(g.P, g.ref, beta).pi
        ex = exploitability(g.P, pi)
        # at pi*: max_y w(y) - 1/2 <= beta (log 1/ref(y) - KL(pi*||ref)) <= beta log(1/min ref)
        assert np.all(ex <= beta * bound + 1e-12)
        worst.append(np.max(ex))
    assert worst[-1] < 0.05 * worst[0]


def test_gap_formula_is_best_response_value_minus_one():
    g = random_game(6, batch=(4,), nontransitive=0.6, seed=11)
    rng = np.random.default_rng(0)
    beta = 0.3
    pi = rng.dirichlet(np.ones(6), size=4)
    w = response_win_rates(g.P, pi)
    br = softmax(np.log(g.ref) + w / beta, axis=-1)  # argmax_p p^T P pi - beta KL(p || ref)

    def value(p):
        return np.sum(p * w, -1) - beta * kl_logits(np.log(p), np.log(g.ref))

    gap = duality_gap(g.P, g.ref, pi, beta)
    kl_pi = kl_logits(np.log(pi), np.log(g.ref))
    np.testing.assert_allclose(gap, 2 * (value(br) + beta * kl_pi) - 1, atol=1e-13)
    for _ in range(20):  # no other p beats the best response
        p = rng.dirichlet(np.ones(6), size=4)
        assert np.all(value(p) <= value(br) + 1e-14)
    assert np.all(gap > 0)
    np.testing.assert_allclose(win_rate(g.P, pi, pi), 0.5, atol=1e-15)


def test_mirror_step_size_is_configurable():
    g = random_game(5, batch=(10,), seed=6)
    slow = solve_equilibrium(g.P, g.ref, 0.2, method="mirror", eta=0.05, tol=1e-10)
    safe = solve_equilibrium(g.P, g.ref, 0.2, method="mirror", tol=1e-10)
    assert slow.trace.converged and safe.trace.converged
    assert slow.trace.iterations > 2 * safe.trace.iterations


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beta": 0.0}, "beta must be a finite number > 0"),
        ({"method": "bisection"}, "unknown method 'bisection'"),
        ({"P": np.array([[0.5, 0.7], [0.7, 0.5]])}, r"P\[0, 1\] \+ P\[1, 0\] = 1.4"),
        ({"P": np.array([[0.5, 1.2], [-0.2, 0.5]])}, r"P\[1, 0\] = -0.2 is outside \[0, 1\]"),
        ({"ref": np.array([0.5, 0.6])}, r"ref\[\] sums to 1.1"),
        ({"ref": np.array([1.5, -0.5])}, r"ref\[1\] = -0.5 is negative"),
        ({"eta": 0.1}, "does not apply to method='newton'"),
    ],
)
def test_solver_validation_errors(kwargs, match):
    args = {"P": np.array([[0.5, 0.7], [0.3, 0.5]]), "ref": np.array([0.5, 0.5]), "beta": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        solve_equilibrium(**args)


@pytest.mark.parametrize("beta", [2.0, 0.01])
def test_newton_tolerance_below_the_rounding_floor_never_worsens_the_answer(beta):
    # a tol under the gap's rounding floor runs to max_iter, but converged contexts must not be
    # sent back along the continuation path: the answer stays at machine precision
    g = random_game(20, batch=(30,), seed=3)
    for max_iter in (50, 55):
        res = solve_equilibrium(g.P, g.ref, beta, tol=0.0, max_iter=max_iter)
        assert wind_equilibrium_residual(g.P, g.ref, res.pi, beta).max() < 1e-13


# -- input checks of the library (issue 10, "Inputs") ------------------------------------------

_P = np.array([[0.5, 0.7], [0.3, 0.5]])
_REF = np.array([0.5, 0.5])


@pytest.mark.parametrize(
    ("P", "ref", "match"),
    [
        (np.full((3, 2, 2), 0.5), np.full((4, 2), 0.5), r"ref has shape \(4, 2\) but P has shape"),
        (np.full((3, 2, 2), 0.5), np.full((3, 3), 1 / 3), r"ref needs K = 2 probabilities"),
        (np.zeros((0, 2, 2)), np.zeros((0, 2)), "the game has no contexts"),
        (np.full((2, 3), 0.5), np.full(3, 1 / 3), r"P must have shape \[..., K, K\]"),
    ],
)
@pytest.mark.parametrize("solver", [solve_equilibrium, newton_solve, mirror_solve])
def test_game_shapes_are_checked(solver, P, ref, match):
    with pytest.raises(ValueError, match=match):
        solver(P, ref, 0.1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beta": "0.1"}, r"beta must be a number, got '0.1' \(str\)"),
        ({"beta": None}, r"beta must be a number, got None \(NoneType\)"),
        ({"beta": True}, "beta must be a number"),
        ({"beta": float("nan")}, "beta must be a finite number > 0"),
        ({"beta": 1e-6}, r"beta = 1e-06 is outside \[0.0001, 100\]"),
        ({"beta": 1e300}, r"beta = 1e\+300 is outside \[0.0001, 100\]"),
        ({"max_iter": -1}, "max_iter must be an integer >= 0, got -1"),
        ({"max_iter": 2.5}, "max_iter must be an integer >= 0, got 2.5"),
        ({"tol": -1e-9}, "tol must be a finite number >= 0"),
        ({"tol": float("nan")}, "tol must be a finite number >= 0, got nan"),
        ({"tol": "1e-9"}, "tol must be a number"),
    ],
)
@pytest.mark.parametrize("solver", [solve_equilibrium, newton_solve, mirror_solve])
def test_solver_arguments_are_checked(solver, kwargs, match):
    args = {"P": _P, "ref": _REF, "beta": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        solver(**args)


@pytest.mark.parametrize("eta", [float("nan"), float("inf"), 0.0, -1.0])
def test_mirror_eta_must_be_finite_and_positive(eta):
    for call in (
        lambda: mirror_solve(_P, _REF, 0.1, eta=eta),
        lambda: solve_equilibrium(_P, _REF, 0.1, method="mirror", eta=eta),
    ):
        with pytest.raises(ValueError, match="eta must be a finite number > 0"):
            call()


def test_policies_off_the_simplex_are_refused_by_the_metrics():
    with pytest.raises(ValueError, match=r"pi\[\] sums to 1.5, not 1"):
        win_rate(_P, np.array([1.0, 0.5]), _REF)
    with pytest.raises(ValueError, match=r"pi2\[1\] = -0.5 is negative"):
        win_rate(_P, _REF, np.array([1.5, -0.5]))
    with pytest.raises(ValueError, match=r"pi\[0\] = nan is not finite"):
        exploitability(_P, np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"pi\[\] sums to 2"):
        exploitability(_P, np.array([1.0, 1.0]))


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_low_precision_games_are_solved_in_float64(dtype):
    g = random_game(12, batch=(20,), seed=9)
    P, ref = g.P.astype(dtype), g.ref.astype(dtype)
    for method in ("newton", "mirror"):
        res = solve_equilibrium(P, ref, 0.5, method=method, max_iter=5000)
        assert res.pi.dtype == np.float64
        assert res.trace.converged and res.trace.gap[-1] <= 1e-12, method
    assert solve_equilibrium(P, ref, 0.5).trace.iterations < 20


@pytest.mark.parametrize("beta", [BETA_MIN, BETA_MAX])
def test_newton_converges_at_the_ends_of_the_beta_range(beta):
    g = random_game(20, batch=(16,), nontransitive=0.5, seed=0)
    res = solve_equilibrium(g.P, g.ref, beta)
    assert res.trace.converged and res.trace.gap[-1] <= 1e-12
    assert np.max(wind_equilibrium_residual(g.P, g.ref, res.pi, beta)) <= 1e-7


def test_newton_reports_when_it_stops_short():
    g = random_game(30, batch=(10,), seed=2)
    res = newton_solve(g.P, g.ref, 0.001, max_iter=3)
    assert not res.trace.converged and res.trace.iterations == 3
    assert res.trace.gap[-1] > 1e-12
