"""The preference bandit: oracle validity, label and action statistics, budget counters."""

from __future__ import annotations

import numpy as np
import pytest

from windalign.bandit.env import (
    EnvConfig,
    PreferenceBandit,
    all_pairs,
    sample_categorical,
)
from windalign.games.preference import validate_preference

SMALL = EnvConfig(n_actions=5, context_dim=3, feature_dim=2, n_eval=16, seed=3)


def test_oracle_is_a_valid_preference_matrix_and_mixes_reward_and_cycles():
    env = PreferenceBandit(SMALL)
    x = env.sample_contexts(64)
    P = validate_preference(env.oracle(x))
    assert P.shape == (64, 5, 5)
    # s = 0 is Bradley-Terry on the reward: P_ij > 1/2 exactly when r_i > r_j
    bt = PreferenceBandit(EnvConfig(**{**SMALL.__dict__, "nontransitive": 0.0}))
    r = bt.rewards(x)
    assert np.array_equal(bt.oracle(x) > 0.5, r[:, :, None] > r[:, None, :])
    # s = 1 is purely skew: with m = 2 features the logit phi_i^T A phi_j is a rotation, so
    # some context has a preference cycle i > j > k > i (impossible for any reward)
    cyc = (
        PreferenceBandit(EnvConfig(**{**SMALL.__dict__, "nontransitive": 1.0})).oracle(x) > 0.5
    ).astype(int)
    has_cycle = np.einsum("nij,njk,nki->n", cyc, cyc, cyc) > 0
    assert has_cycle.any()


def test_reference_is_a_nonuniform_softmax_fixed_by_the_instance_seed():
    env = PreferenceBandit(SMALL)
    logp = env.reference_logp(env.eval_contexts)
    np.testing.assert_allclose(np.exp(logp).sum(-1), 1.0, atol=1e-12)
    entropy = -(np.exp(logp) * logp).sum(-1)
    assert entropy.mean() < np.log(5) - 0.1
    again = PreferenceBandit(SMALL)
    np.testing.assert_array_equal(again.reference_logp(again.eval_contexts), logp)
    other = PreferenceBandit(EnvConfig(**{**SMALL.__dict__, "seed": 4}))
    assert not np.allclose(other.reference_logp(env.eval_contexts), logp)


def test_labels_are_bernoulli_of_the_oracle_and_every_query_is_counted():
    env = PreferenceBandit(SMALL).reset(seed=0)
    n = 4000
    x = np.repeat(env.sample_contexts(1), n, axis=0)
    actions = np.tile([0, 1, 2], (n, 1))
    o = env.query(x, actions, [(0, 1), (1, 2)])
    assert env.queries == 2 * n and env.samples == 0
    p = env.oracle(x[:1])[0]
    for i, j in [(0, 1), (1, 2)]:
        se = np.sqrt(p[i, j] * (1 - p[i, j]) / n)
        assert abs(o[:, i, j].mean() - p[i, j]) < 4 * se
        np.testing.assert_array_equal(o[:, j, i], 1 - o[:, i, j])
    assert np.isnan(o[:, 0, 2]).all() and np.isnan(o[:, 2, 0]).all()
    assert np.isnan(o[:, [0, 1, 2], [0, 1, 2]]).all()


def test_action_samples_follow_the_policy_and_are_counted():
    env = PreferenceBandit(SMALL).reset(seed=1)
    probs = np.array([0.5, 0.3, 0.15, 0.05, 0.0])
    with np.errstate(divide="ignore"):
        logp = np.tile(np.log(probs), (2000, 1))
    a = env.sample_actions(logp, 3)
    assert a.shape == (2000, 3) and env.samples == 6000
    freq = np.bincount(a.ravel(), minlength=5) / a.size
    se = np.sqrt(probs * (1 - probs) / a.size)
    assert np.all(np.abs(freq - probs) <= 4 * se + 1e-12)


def test_gumbel_sampling_is_seeded():
    logp = np.log(np.full((3, 4), 0.25))
    a = sample_categorical(logp, 5, np.random.default_rng(7))
    b = sample_categorical(logp, 5, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


def test_finite_pool_draws_pool_contexts_and_evaluates_on_the_pool():
    env = PreferenceBandit(EnvConfig(**{**SMALL.__dict__, "n_contexts": 6})).reset(seed=0)
    x = env.sample_contexts(50)
    match = (np.abs(x[:, None, :] - env.pool[None]) < 1e-15).all(-1)
    assert match.any(1).all()
    assert env.eval_contexts is env.pool


def test_all_pairs_counts():
    assert [len(all_pairs(k)) for k in range(2, 6)] == [1, 3, 6, 10]


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_actions", 1), ("nontransitive", 1.5), ("feature_dim", 1), ("n_eval", 0)],
)
def test_invalid_env_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"env.{field} = "):
        EnvConfig(**{field: value})
