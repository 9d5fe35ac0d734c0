"""Benchmark protocol: config validation, the shared tuning grid, CIs, crossings, tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from windalign.bandit.benchmark import (
    best_points,
    grid,
    method_hyperparameters,
    run_benchmark,
    step_hyperparameter,
    with_overrides,
)
from windalign.bandit.config import config_from_dict, config_reference, load_config
from windalign.bandit.report import collect, crossing, fmt, mean_ci, summary_tables
from windalign.bandit.runner import METHODS

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "bandit.yaml"
TINY = {
    "env": {"n_actions": 4, "context_dim": 3, "feature_dim": 2, "n_eval": 16},
    "train": {"batch": 8, "samples": 3, "query_budget": 300, "evals": 3},
    "methods": ["wind-squared", "jbond", "bon-distill"],
    "tuning": {"lr": [0.03, 0.3], "eta": [1.0, 2.0], "seeds": [7]},
    "report": {"seeds": 2, "bon_rounds": 2, "kl_levels": [0.01]},
    "workers": 1,
}


def test_default_config_file_loads_and_quick_overrides_apply():
    cfg = load_config(CONFIG)
    quick = load_config(CONFIG, quick=True)
    assert set(cfg.methods) == set(METHODS.names())
    assert cfg.report.seeds >= 5
    assert quick.train.query_budget < cfg.train.query_budget
    assert quick.env == cfg.env


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"train": {"batch": 0}}, r"train.batch = 0 is invalid; it must be an integer >= 1"),
        ({"train": {"bach": 8}}, r"unknown key train.bach; valid keys: policy, hidden, beta"),
        ({"trian": {}}, r"unknown key trian; valid top-level keys: env, train"),
        ({"env": {"nontransitive": 2}}, r"env.nontransitive = 2.0 is invalid; it must be a share"),
        ({"tuning": {"lr": []}}, r"tuning.lr = \[\] is invalid"),
        ({"tuning": {"lr": "fast"}}, r"tuning.lr must be a list"),
        ({"train": {"beta": "big"}}, r"train.beta must be of type float"),
        ({"train": {"policy": "tabular"}}, r"needs a finite pool: set env.n_contexts"),
        ({"hyperparameters": {"dpo": {"eta": 1}}}, r"hyperparameters.dpo.eta is not a hyper"),
        ({"workers": 0}, r"workers = 0 is invalid"),
    ],
)
def test_config_errors_name_the_key_and_the_valid_range(raw, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(raw)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'wind-sqaured'; choose one of: wind-sq"):
        config_from_dict({"methods": ["wind-sqaured"]})
    with pytest.raises(ValueError, match="--seeds = 0"):
        with_overrides(config_from_dict({}), 0, None)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_every_method_gets_the_same_grid_on_its_step_hyperparameter():
    cfg = config_from_dict(TINY)
    for method in METHODS.names():
        points = grid(cfg, method)
        if step_hyperparameter(method) is None:
            assert points == [(0.03, None), (0.3, None)]
            continue
        assert len(points) == 4
        name, sign = step_hyperparameter(method)
        base = method_hyperparameters(cfg, method, None)[name]
        for _, eta in points:
            scaled = method_hyperparameters(cfg, method, eta)[name]
            assert scaled == pytest.approx(base * eta**sign)


def test_shared_beta_applies_except_to_published_sppo():
    cfg = config_from_dict({"train": {"beta": 0.3}})
    assert method_hyperparameters(cfg, "wind-nce", None)["beta"] == 0.3
    assert method_hyperparameters(cfg, "jbond", None)["beta"] == 0.3
    assert method_hyperparameters(cfg, "sppo", None)["beta"] == 0.0


def test_best_points_pick_the_highest_score_first_on_ties():
    scores = {("a", 0): 0.6, ("a", 1): 0.7, ("a", 2): 0.7, ("b", 0): 0.1}
    assert best_points(["a", "b"], scores) == {"a": 1, "b": 0}


def test_mean_ci_is_the_student_t_interval():
    x = np.random.default_rng(0).normal(size=(7, 3))
    m, h = mean_ci(x)
    lo, hi = stats.t.interval(0.95, 6, loc=x.mean(0), scale=stats.sem(x, axis=0))
    np.testing.assert_allclose(m - h, lo)
    np.testing.assert_allclose(m + h, hi)
    assert fmt(np.array([1.0, np.nan])) == "1.000 ± 0.000 (1/2)"
    assert fmt(np.array([np.nan])) == "not reached"


def test_crossing_interpolates_and_reports_never():
    x = np.array([0.0, 100.0, 200.0])
    assert crossing(x, np.array([0.5, 0.55, 0.65]), 0.6) == pytest.approx(150.0)
    assert crossing(x, np.array([0.7, 0.8, 0.9]), 0.6) == 0.0
    assert np.isnan(crossing(x, np.array([0.5, 0.55, 0.58]), 0.6))


def test_benchmark_tunes_then_reports_fresh_seeds():
    cfg = config_from_dict(TINY)
    tuning, report, best = run_benchmark(cfg, progress=False)
    assert {r["seed"] for r in tuning} == {7} and {r["seed"] for r in report} == {0, 1}
    assert {r["method"] for r in report} == set(cfg.methods)
    for method, (lr, eta) in best.items():
        assert (lr, eta) in grid(cfg, method)
        rows = [r for r in report if r["method"] == method]
        assert all(r["lr"] == lr for r in rows)
    runs = collect(report)
    assert runs["jbond"].values["win_rate_ref"].shape[0] == 2
    text = "\n".join(
        summary_tables(runs, best, [{"win_rate_ref": 0.5}, {"win_rate_ref": 0.51}], [0.01])
    )
    assert "Ratio of mean queries to `jbond`'s" in text
    for method in cfg.methods:
        # final metrics, queries, samples, matched KL (+ the ratio to J-BOND for WIND losses)
        assert text.count(f"| `{method}` |") == 4 + method.startswith("wind-")


def test_set_overrides_are_applied_last_and_validated():
    cfg = load_config(CONFIG, quick=True, overrides=["train.samples=2", "tuning.eta=[1, 2]"])
    assert cfg.train.samples == 2 and cfg.tuning.eta == [1.0, 2.0]
    assert cfg.train.query_budget == load_config(CONFIG, quick=True).train.query_budget
    with pytest.raises(ValueError, match=r"train\.samples = 1 is invalid"):
        load_config(CONFIG, overrides=["train.samples=1"])
    with pytest.raises(ValueError, match=r"must look like SECTION\.KEY=VALUE"):
        load_config(CONFIG, overrides=["train.samples"])
    with pytest.raises(ValueError, match=r"unknown key train\.sample;"):
        load_config(CONFIG, overrides=["train.sample=3"])


def test_docs_config_reference_is_current():
    page = Path(__file__).resolve().parents[2] / "docs" / "bandit-config.md"
    assert page.read_text() == config_reference(), (
        "docs/bandit-config.md is stale; regenerate it with: python -c 'from "
        'windalign.bandit.config import config_reference as c; print(c(), end="")\' '
        "> docs/bandit-config.md"
    )
