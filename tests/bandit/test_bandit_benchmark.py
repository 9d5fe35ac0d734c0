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
    tuning_scores,
    with_overrides,
)
from windalign.bandit.config import config_from_dict, config_reference, load_config
from windalign.bandit.methods import BENCH_METHODS
from windalign.bandit.report import Yardsticks, collect, crossing, fmt, mean_ci, summary_tables

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "bandit.yaml"
TINY = {
    "env": {"n_actions": 4, "context_dim": 3, "feature_dim": 2, "n_eval": 16},
    "train": {"batch": 8, "samples": 3, "query_budget": 300, "evals": 3},
    "methods": ["wind-squared", "jbond", "bon-distill"],
    "tuning": {"lr": [0.03, 0.3], "eta": [1.0, 2.0], "gamma": [0.05, 0.3], "seeds": [7]},
    "report": {"seeds": 2, "bon_rounds": 2, "kl_levels": [0.01]},
    "workers": 1,
}


def test_default_config_file_loads_and_quick_overrides_apply():
    cfg = load_config(CONFIG)
    quick = load_config(CONFIG, quick=True)
    assert set(cfg.methods) == set(BENCH_METHODS.names())
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


#: each method's tuned hyperparameters at the TINY grid point (lr 0.3, second knob value), written
#: out by hand from the protocol (docs/results-bandit.md), not read back from the code under test
EXPECTED_POINT = {
    "wind-squared": {"eta": 2.0, "beta": 0.1},
    "wind-kl": {"eta": 2.0, "beta": 0.1},
    "wind-nce": {"eta": 2.0, "beta": 0.1},
    "sppo": {"eta": 2.0, "beta": 0.0},
    "sppo-hard": {"eta": 2.0, "beta": 0.0},
    "jbond": {"beta_anchor": 1.0, "fail_reward": -np.log(16), "jeffreys": 0.5, "beta": 0.1,
              "gamma": 0.3},
    "nash-md": {"eta": 2.0, "beta": 0.1, "alpha": 0.2 / 1.2},
    "nash-md-fixed-alpha": {"eta": 2.0, "beta": 0.1, "alpha": 0.125},
    "dpo": {"beta": 0.1},
    "ipo": {"beta": 0.1},
    "dpo-beta-tuned": {"beta": 0.05},
    "ipo-beta-tuned": {"beta": 0.05},
    "bon-distill": {},
}  # fmt: skip


@pytest.mark.parametrize("method", BENCH_METHODS.names())
def test_each_method_is_tuned_on_its_own_knob(method):
    cfg = config_from_dict(TINY)
    points = grid(cfg, method)
    lr_only = method in ("dpo", "ipo", "bon-distill")
    assert len(points) == (2 if lr_only else 4)
    assert points[-1][0] == 0.3
    hp = method_hyperparameters(cfg, method, points[-1][1])
    assert hp.keys() == EXPECTED_POINT[method].keys()
    for key, value in EXPECTED_POINT[method].items():
        assert hp[key] == pytest.approx(value, rel=1e-12), key


def test_tuned_knobs_cannot_be_fixed_in_the_config():
    with pytest.raises(ValueError, match=r"hyperparameters.jbond.gamma is set by the tuning grid"):
        config_from_dict({"hyperparameters": {"jbond": {"gamma": 0.1}}})
    with pytest.raises(ValueError, match=r"nash-md.alpha is set by the tuning grid; it is tied"):
        config_from_dict({"hyperparameters": {"nash-md": {"alpha": 0.1}}})
    cfg = config_from_dict({"hyperparameters": {"nash-md-fixed-alpha": {"alpha": 0.3}}})
    assert method_hyperparameters(cfg, "nash-md-fixed-alpha", 4.0)["alpha"] == 0.3


def test_tuning_score_is_the_mean_win_rate_against_the_bo2_targets():
    rows = [
        {"method": "m", "point": 0, "win_rate_ref": 0.9, "win_rate_vs_bo2_1": 0.6,
         "win_rate_vs_bo2_2": 0.2},
        {"method": "m", "point": 0, "win_rate_ref": 0.9, "win_rate_vs_bo2_1": 0.5,
         "win_rate_vs_bo2_2": 0.5},
    ]  # fmt: skip
    assert tuning_scores(rows) == {("m", 0): pytest.approx(0.45)}


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
    assert fmt(np.array([1.0, np.nan])) == "1.000 ± n/a (1/2)"
    assert fmt(np.array([2.5])) == "2.500 ± n/a"  # one seed has no interval, not ± 0
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
    assert runs["jbond"].values["win_rate_vs_bo2_2"].shape[0] == 2
    bo2 = [{"win_rate_ref": w, "kl_ref": k, "win_rate_vs_bo2_1": v, "win_rate_vs_bo2_2": u}
           for w, k, v, u in [(0.5, 0.0, 0.45, 0.4), (0.51, 0.01, 0.5, 0.45),
                              (0.52, 0.02, 0.55, 0.5)]]  # fmt: skip
    ys = Yardsticks(bo2=bo2, eqs=[{"beta": 0.1, **bo2[2]}], family=bo2)
    text = "\n".join(summary_tables(runs, best, ys, [0.01]))
    assert "Ratio of mean queries to dominance to `jbond`'s" in text
    for method in cfg.methods:
        # dominance: queries, KL, samples (+ ratio to J-BOND); frontier x 2; end; best; secondary
        assert text.count(f"| `{method}` |") == 8 + (method != "jbond")


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
