"""The runner: every method trains by name with exact budget accounting; WIND improves."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from windalign.bandit.env import EnvConfig, PreferenceBandit
from windalign.bandit.runner import (
    METHODS,
    Evaluator,
    RunConfig,
    queries_per_prompt,
    samples_per_prompt,
    train,
)
from windalign.objectives import LOSSES

TINY = EnvConfig(n_actions=4, context_dim=3, feature_dim=2, n_eval=32, seed=5)
BETA = 0.1


@pytest.fixture(scope="module")
def env_eval():
    env = PreferenceBandit(TINY)
    return env, Evaluator(env, BETA)


def test_methods_are_the_registry_losses_sampled_bon_included():
    assert METHODS is LOSSES and "bon-distill" in METHODS


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_runs_with_exact_budget_accounting(env_eval, method):
    env, evaluator = env_eval
    cfg = RunConfig(method=method, lr=0.05, batch=8, samples=3, query_budget=600, evals=3)
    rows = train(env, evaluator, cfg)
    spec = METHODS[method]
    q = cfg.batch * queries_per_prompt(spec, cfg.samples)
    rounds = cfg.query_budget // q
    assert rows[0]["round"] == 0 and rows[-1]["round"] == rounds
    for row in rows:
        assert row["queries"] == row["round"] * q
        assert row["samples"] == row["round"] * cfg.batch * samples_per_prompt(spec, cfg.samples)
        assert all(np.isfinite(row[k]) for k in ("win_rate_ref", "kl_to_eq", "gap", "kl_ref"))
    assert rows[0]["win_rate_ref"] == pytest.approx(0.5, abs=1e-12)
    assert rows[-1]["kl_ref"] > 0  # the policy moved


def test_queries_follow_each_sampling_scheme():
    assert queries_per_prompt(METHODS["wind-squared"], 4) == 6
    assert queries_per_prompt(METHODS["jbond"], 4) == 3
    assert samples_per_prompt(METHODS["jbond"], 4) == 3
    assert queries_per_prompt(METHODS["nash-md"], 4) == 3
    assert queries_per_prompt(METHODS["bon-distill"], 2) == 1


def test_wind_moves_towards_the_equilibrium_and_beats_the_reference(env_eval):
    env, evaluator = env_eval
    start = evaluator(np.log(evaluator.ref))
    eq = evaluator(np.log(evaluator.pi_star))
    cfg = RunConfig(
        method="wind-squared", lr=0.1, hp={"eta": 2.0, "beta": BETA}, batch=16,
        samples=4, steps_per_round=2, query_budget=6000, evals=4, seed=0,
    )  # fmt: skip
    end = train(env, evaluator, cfg)[-1]
    gain = eq["win_rate_ref"] - 0.5
    assert gain > 0.05
    assert end["win_rate_ref"] > 0.5 + 0.6 * gain
    assert end["kl_to_eq"] < 0.3 * start["kl_to_eq"]
    assert end["gap"] < 0.3 * start["gap"]


def test_runs_are_reproducible_by_seed(env_eval):
    env, evaluator = env_eval
    cfg = RunConfig(method="jbond", lr=0.05, batch=8, query_budget=240, evals=2, seed=3)
    a, b = train(env, evaluator, cfg), train(env, evaluator, cfg)
    assert [r["win_rate_ref"] for r in a] == [r["win_rate_ref"] for r in b]
    c = train(env, evaluator, RunConfig(**{**cfg.__dict__, "seed": 4}))
    assert c[-1]["win_rate_ref"] != a[-1]["win_rate_ref"]


def test_unknown_hyperparameter_is_rejected_by_name(env_eval):
    env, evaluator = env_eval
    with pytest.raises(ValueError, match="'dpo' has no hyperparameter 'eta'"):
        train(env, evaluator, RunConfig(method="dpo", hp={"eta": 1.0}))


def test_evaluator_exact_quantities(env_eval):
    _, evaluator = env_eval
    eq = evaluator(np.log(evaluator.pi_star))
    assert abs(eq["gap"]) < 1e-9 and eq["kl_to_eq"] < 1e-12
    assert eq["win_rate_eq"] == pytest.approx(0.5, abs=1e-12)
    bo2 = evaluator.iterated_bo2(3)
    assert bo2[0]["win_rate_ref"] == pytest.approx(0.5, abs=1e-12) and bo2[0]["kl_ref"] == 0
    wins = [r["win_rate_ref"] for r in bo2]
    assert all(b > a for a, b in itertools.pairwise(wins))


def test_a_single_evaluation_still_measures_the_end_of_the_run(env_eval):
    env, evaluator = env_eval
    cfg = RunConfig(method="wind-squared", batch=8, samples=3, query_budget=240, evals=1)
    rows = train(env, evaluator, cfg)
    assert [r["round"] for r in rows] == [0, 1, 10]


def test_budget_below_one_round_is_a_clear_error(env_eval):
    env, evaluator = env_eval
    cfg = RunConfig(method="wind-squared", batch=8, samples=3, query_budget=20)
    with pytest.raises(ValueError, match="query_budget = 20 is less than one round"):
        train(env, evaluator, cfg)
