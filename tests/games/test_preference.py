"""Preference oracles: generators and validation (THEORY.md 1)."""

import numpy as np
import pytest

from windalign.games import (
    bradley_terry,
    cyclic_oracle,
    hard_order,
    mixed_oracle,
    random_game,
    random_skew,
    validate_policy,
    validate_preference,
    win_rate,
)


def _oracles():
    rng = np.random.default_rng(0)
    r = rng.standard_normal((3, 6))
    phi = rng.standard_normal((3, 6, 4))
    return {
        "bradley_terry": bradley_terry(r, tau=0.3),
        "hard_order": hard_order(np.round(r)),
        "mixed": mixed_oracle(r, phi, random_skew(4, seed=1), 0.6),
        "cyclic": cyclic_oracle(6, strength=0.8),
        "random_game": random_game(6, batch=(2, 3), seed=2).P,
    }


@pytest.mark.parametrize("name", list(_oracles()))
def test_generated_oracles_are_valid(name):
    P = _oracles()[name]
    validate_preference(P, atol=1e-15)
    np.testing.assert_allclose(np.diagonal(P, axis1=-2, axis2=-1), 0.5, atol=1e-15)
    pi = np.random.default_rng(1).dirichlet(np.ones(6), size=P.shape[:-2])
    np.testing.assert_allclose(win_rate(P, pi, pi), 0.5, atol=1e-14)


def test_bradley_terry_temperature_and_hard_limit():
    r = np.array([0.0, 1.0, 1.0, 3.0])
    np.testing.assert_allclose(bradley_terry(r, tau=1e-3), hard_order(r), atol=1e-12)
    P = bradley_terry(r, tau=2.0)
    assert P[1, 0] == pytest.approx(1 / (1 + np.exp(-0.5)))
    assert P[1, 2] == 0.5


def test_mixed_oracle_shares():
    rng = np.random.default_rng(3)
    r, phi, A = rng.standard_normal(5), rng.standard_normal((5, 3)), random_skew(3, seed=4)
    np.testing.assert_allclose(mixed_oracle(r, phi, A, 0.0), bradley_terry(r), atol=1e-15)
    pure = mixed_oracle(r, phi, A, 1.0)
    logit = np.log(pure / (1 - pure))
    np.testing.assert_allclose(logit, phi @ A @ phi.T, atol=1e-12)
    half = mixed_oracle(r, phi, A, 0.5)
    np.testing.assert_allclose(
        np.log(half / (1 - half)),
        0.5 * (r[:, None] - r[None, :]) + 0.5 * phi @ A @ phi.T,
        atol=1e-12,
    )


def test_cyclic_oracle_has_no_condorcet_winner():
    for K in (3, 4, 5, 8):
        P = cyclic_oracle(K)
        # every action loses to some other action: no transitive best response
        assert np.all(P.min(axis=1) < 0.5)
        np.testing.assert_allclose(P @ np.full(K, 1 / K), 0.5, atol=1e-15)


def test_random_game_is_seeded():
    a, b, c = (random_game(5, batch=(2,), seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.P, b.P)
    np.testing.assert_array_equal(a.ref, b.ref)
    assert not np.array_equal(a.P, c.P)
    gen = random_game(5, seed=np.random.default_rng(7))
    assert gen.P.shape == (5, 5) and gen.ref.shape == (5,)
    validate_policy(random_game(5, batch=(4,), ref="uniform").ref)


@pytest.mark.parametrize(
    ("P", "match"),
    [
        (np.ones(3), r"must have shape \[\.\.\., K, K\]"),
        (np.array([[0.5, np.nan], [0.5, 0.5]]), r"P\[0, 1\] = nan is not finite"),
        (
            np.array([[[0.5, 0.6], [0.4, 0.5]], [[0.5, 0.6], [0.5, 0.5]]]),
            r"P\[1, 0, 1\] \+ P\[1, 1, 0\] = 1.1 is not 1 .*atol=1e-08",
        ),
    ],
)
def test_validate_preference_names_the_worst_entry(P, match):
    with pytest.raises(ValueError, match=match):
        validate_preference(P)


def test_validate_policy_names_the_worst_entry():
    with pytest.raises(ValueError, match=r"pi\[2\] = -0.3 is negative"):
        validate_policy(np.array([0.8, 0.5, -0.3]))
    with pytest.raises(ValueError, match=r"q\[1\] sums to 0.9, not 1 .*atol=1e-08"):
        validate_policy(np.array([[0.5, 0.5], [0.45, 0.45]]), name="q")
    validate_policy(np.array([0.5, 0.5 + 1e-10]))  # within atol


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: bradley_terry(np.zeros(3), tau=0.0), "tau must be > 0"),
        (lambda: cyclic_oracle(2), "K >= 3"),
        (
            lambda: mixed_oracle(np.zeros(2), np.zeros((2, 2)), np.ones((2, 2)), 0.5),
            "skew-symmetric",
        ),
        (
            lambda: mixed_oracle(np.zeros(2), np.zeros((2, 2)), np.zeros((2, 2)), 1.5),
            r"nontransitive must be in \[0, 1\]",
        ),
        (lambda: random_game(4, ref="zipf"), "ref must be 'dirichlet' or 'uniform'"),
    ],
)
def test_generator_argument_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
