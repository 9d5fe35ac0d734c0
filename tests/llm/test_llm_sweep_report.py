"""benchmarks/llm_sweep_report.py and llm_sweep_page.py (issue 18): the page is built from
committed summaries alone, its differences are paired per prompt and seed, and it says "better"
only where they separate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def report(benchmark_script):
    return benchmark_script("llm_sweep_report")


@pytest.fixture(scope="module")
def sweep_page(benchmark_script):
    return benchmark_script("llm_sweep_page")


@pytest.fixture(scope="module")
def stats(benchmark_script):
    return benchmark_script("llm_sweep_stats")


def put(folder: Path, run: dict, evals: dict[int, np.ndarray], samples_per_step: int = 16):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run))
    (folder / "status.json").write_text('{"status": "complete"}')
    rows, metrics = [], [{"step": 1, "loss": 0.0}]
    for step, wins in sorted(evals.items()):
        prompts = [{"index": i, "win_rate": float(w), "kl": 0.1 * step} for i, w in enumerate(wins)]
        rows.append({"step": step, "prompts": prompts[::-1]})  # order must not matter
        metrics.append({"step": step, "eval_win_rate": float(np.mean(wins)),
                        "samples": step * samples_per_step, "queries": step * 24,
                        "seconds_wall": 10.0 * step})  # fmt: skip
    (folder / "evaluations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))


def sweep_tree(root: Path, gap: float, seed_noise: float = 0.0) -> None:
    """Three seeds, 40 prompts whose difficulty varies a lot (shared by every method of a seed);
    WIND beats SPPO by ``gap`` on every prompt; Best-of-2 sits between them."""
    rng = np.random.default_rng(1)
    base = rng.uniform(0.1, 0.9, size=40)
    for seed in range(3):
        shift = seed_noise * (seed - 1)
        put(root / "targets" / "best-of-2" / f"seed{seed}", {"stage": "targets"},
            {0: base + 0.03})  # fmt: skip
        for method, offset in (("wind-squared", gap), ("sppo", 0.0)):
            evals = {
                s: base + (offset + shift * (offset > 0)) * s / 48 + 0.01 for s in (12, 24, 36, 48)
            }
            setting = {"wind-squared": "lr2e-05_eta5", "sppo": "lr2e-05_eta5"}[method]  # chosen
            put(root / "final" / method / setting / f"seed{seed}",
                {"stage": "final", "method": method, "seed": seed}, evals)  # fmt: skip
    # a final run at a setting tuning later replaced: listed apart, never compared
    put(root / "final" / "wind-squared" / "lr1e-05_eta5" / "seed0",
        {"stage": "final", "method": "wind-squared", "seed": 0},
        {s: base - 0.2 for s in (12, 24, 36, 48)})  # fmt: skip
    tune = {
        "wind-squared": {
            "lr1e-05_eta5": 0.51,
            "lr2e-05_eta5": 0.55,
            "lr4e-05_eta5": 0.5,
            "lr2e-05_eta1": 0.53,
            "lr2e-05_eta5_beta0.03": 0.54,
            "lr2e-05_eta5_beta0.01": 0.52,
        },
        "sppo": {
            "lr1e-05_eta5": 0.5,
            "lr2e-05_eta5": 0.6,
            "lr4e-05_eta5": 0.5,
            "lr2e-05_eta1": 0.6,
        },
        "dpo": {"lr1e-05": 0.6, "lr2e-05": 0.52},
    }
    for method, wins in tune.items():
        for name, w in wins.items():
            put(root / "tune" / method / name / "seed0",
                {"stage": "tune", "method": method, "seed": 0}, {12: np.full(4, w)})  # fmt: skip


def test_a_difference_on_every_prompt_is_separated_however_much_the_prompts_differ(
    report, stats, tmp_path
):
    sweep_tree(tmp_path, gap=0.04)
    t = report.tables(report.load(tmp_path))
    d = t["methods"]["sppo"]["vs_wind"]["wind-squared"]
    assert d["mean"] == pytest.approx(0.04) and d["lo"] == pytest.approx(0.04)
    assert d["verdict"] == "better" and d["n_seeds"] == 3
    # unpaired (the prompts shuffled against each other) the same data would not separate
    a = np.tile(np.random.default_rng(1).uniform(0.1, 0.9, 40), (3, 1))
    shuffled = a + 0.04 - np.random.default_rng(2).permuted(a, axis=1)
    assert stats.paired_interval(shuffled)[1] < 0 < stats.paired_interval(shuffled)[2]


def test_seeds_that_disagree_or_a_gap_within_the_noise_are_not_separated(report, tmp_path):
    sweep_tree(tmp_path / "a", gap=0.0)
    assert report.tables(report.load(tmp_path / "a"))["methods"]["sppo"]["vs_wind"]["wind-squared"][
        "verdict"
    ] == ("not separated")
    sweep_tree(tmp_path / "b", gap=0.04, seed_noise=0.1)  # seed 0's WIND below SPPO's
    d = report.tables(report.load(tmp_path / "b"))["methods"]["sppo"]["vs_wind"]["wind-squared"]
    assert d["seeds"][0] < 0 < d["seeds"][2]
    assert d["verdict"].startswith("not separated")
    # a clear gap on fewer seeds than the protocol's: no verdict yet
    sweep_tree(tmp_path / "c", gap=0.04)
    shutil.rmtree(tmp_path / "c" / "final" / "sppo" / "lr2e-05_eta5" / "seed2")
    d = report.tables(report.load(tmp_path / "c"))["methods"]["sppo"]["vs_wind"]["wind-squared"]
    assert d["lo"] > 0 and d["n_seeds"] == 2 and d["verdict"] == "none yet (2 of 3 seeds)"


def test_the_interval_is_95_percent_and_carries_the_seeds_luck(stats):
    """Crossed bootstrap: with one seed its half-width is 1.96 standard errors over prompts;
    a seed effect shared by every prompt (one seed of three below 0) widens it past 0, which a
    bootstrap over prompts alone would not; and a positive interval whose seeds disagree in
    sign is not called a difference."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (1, 400))
    _, lo, hi = stats.paired_interval(x)
    assert (hi - lo) / 2 == pytest.approx(1.96 * x.std() / 20, rel=0.1)
    seeds = np.array([0.1, -0.05, 0.1])[:, None] + rng.normal(0.0, 0.05, (3, 98))
    assert stats.paired_interval(seeds)[1] < 0 < stats.paired_interval(seeds[[0, 2]])[1]
    noise = rng.normal(0.0, 0.06, (3, 98))
    d = noise - noise.mean(axis=1, keepdims=True) + np.array([0.05, 0.05, -0.0005])[:, None]
    runs = {s: {"evals": {48: {"win_rate": 0.5 + d[s]}}} for s in range(3)}
    out = stats.difference(runs, None, 48)
    assert out["lo"] > 0 and out["seeds"][2] < 0
    assert out["verdict"] == "not separated (seeds disagree)"


def test_the_cost_to_reach_best_of_2_is_the_first_evaluation_at_or_above_it(report, tmp_path):
    sweep_tree(tmp_path, gap=0.04)
    t = report.tables(report.load(tmp_path))
    # WIND's win rate minus base: 0.04 s / 48 + 0.01 >= 0.03 first at s = 24
    assert t["methods"]["wind-squared"]["reach"][2] == {
        s: {"round": 24, "samples": 384, "queries": 576} for s in range(3)
    }
    assert t["methods"]["sppo"]["reach"][2] == {s: None for s in range(3)}  # 0.01 < 0.03
    d = t["methods"]["sppo"]["vs_target"][2]
    assert d["mean"] == pytest.approx(-0.02) and d["verdict"] == "worse"


def test_the_page_names_the_choice_the_targets_and_the_verdicts(report, tmp_path):
    sweep_tree(tmp_path / "s", gap=0.04)
    (tmp_path / "s" / "targets" / "best-of-2" / "seed0" / "status.json").write_text(json.dumps(
        {"status": "complete", "started": "2026-01-01T10:00:00+00:00",
         "ended": "2026-01-01T11:00:00+00:00"}))  # fmt: skip
    page, js, fig = tmp_path / "page.md", tmp_path / "t.json", tmp_path / "f.png"
    argv = ["--summaries", str(tmp_path / "s"), "--page", str(page), "--json", str(js),
            "--figure", str(fig)]  # fmt: skip
    assert report.main(argv) == 0
    text = page.read_text()
    assert "| WIND (`wind-squared`) | `lr2e-05_eta5` **(chosen)** | 0.550 |" in text
    assert "| WIND (`wind-squared`) | `lr2e-05_eta1` | 0.530 |" in text
    assert "| online DPO | `lr1e-05` | 0.600 |" in text  # its grid is not complete: no choice
    assert (
        "Best-of-2: win rate" in text
        and "| WIND (`wind-squared`) − SPPO | +0.040 [+0.040, +0.040] | better" in text
    )
    assert "| +0.040; +0.040; +0.040 | 4.80 / 4.80 |" in text  # KL of each side
    assert "at most 0.19 nats" in text  # Best-of-2's KL bound
    replaced = "* WIND (`wind-squared`) `lr1e-05_eta5`, seeds 0: round 48 win rate"
    assert replaced in text
    assert "The eta of SPPO made no difference" in text  # 0.6 at eta 5 and 1 (WIND: 0.55, 0.53)
    assert fig.stat().st_size > 0 and json.loads(js.read_text())["steps"] == [12, 24, 36, 48]
    # the run times: a status's start to end, else the largest seconds_wall (10 s per step)
    assert "targets 1.0 h (one process, two threads), tuning 0.4 h and final runs 0.9 h" in text
    assert "Machine time so far: about 1.7 h" in text


def test_while_a_method_is_tuned_again_none_of_its_final_runs_is_compared(report, tmp_path):
    """A grid that grew (a new stage still running) has no choice yet: the method's final runs,
    at whatever setting, are listed apart, never merged across settings or compared."""
    sweep_tree(tmp_path, gap=0.04)
    shutil.rmtree(tmp_path / "tune" / "wind-squared" / "lr2e-05_eta5_beta0.01")
    data = report.load(tmp_path)
    assert "wind-squared" not in data["final"] and "wind-squared" not in data["chosen"]
    apart = {k: sorted(v) for k, v in data["superseded"].items()}
    assert apart == {("wind-squared", "lr2e-05_eta5"): [0, 1, 2],
                     ("wind-squared", "lr1e-05_eta5"): [0]}  # fmt: skip
    assert report.tables(data)["methods"]["sppo"]["vs_wind"] == {}


def test_methods_that_spend_differently_per_round_are_also_compared_at_equal_cost(stats):
    """J-BOND's rounds draw 12 samples where WIND's draw 16: at equal samples WIND's round 36
    (576 samples) meets J-BOND's round 48; at equal queries (24 vs 12 per round) WIND's round 24;
    runs that spend alike get no such row."""
    wins = {s: np.full(5, 0.5 + s / 1000) for s in (12, 24, 36, 48)}

    def runs(samples, queries):
        return {seed: {"evals": {s: {"win_rate": w} for s, w in wins.items()},
                       "metrics": {s: {"samples": samples * s, "queries": queries * s}
                                   for s in wins}} for seed in (0, 1, 2)}  # fmt: skip

    wind, jbond = runs(16, 24), runs(12, 12)
    e = stats.matched(wind, jbond, 48, "samples")
    assert (e["a_step"], e["b_step"], e["spent"]) == (36, 48, 576)
    assert e["mean"] == pytest.approx(0.036 - 0.048)
    e = stats.matched(wind, jbond, 48, "queries")
    assert (e["a_step"], e["b_step"], e["spent"]) == (24, 48, 576)
    e = stats.matched(jbond, wind, 48, "samples")  # either order
    assert (e["a_step"], e["b_step"]) == (48, 36) and e["mean"] == pytest.approx(0.012)
    assert stats.matched(wind, runs(16, 24), 48, "samples") is None
    short = runs(12, 12)  # a seed whose run was not evaluated at that step is left out
    del short[2]["evals"][48]
    assert stats.difference(wind, short, 48)["n_seeds"] == 2


def runs_of(wins: dict[int, np.ndarray], per_round: int = 16, queries: int = 24) -> dict:
    """A method's final runs from ``step -> (seeds, prompts)`` win rates."""
    seeds = next(iter(wins.values())).shape[0]
    return {seed: {"evals": {s: {"win_rate": w[seed]} for s, w in wins.items()},
                   "metrics": {s: {"samples": per_round * s, "queries": queries * s}
                               for s in wins}}
            for seed in range(seeds)}  # fmt: skip


def test_the_cost_to_reach_a_target_has_an_interval_over_seeds_and_prompts(report, stats, tmp_path):
    """Every prompt at the target by round 24 and none before: 24 [24, 24]; never at it: not
    reached; a method at the target's level at round 24 only on average (noisy prompts and
    seeds), a little below it at 12, gets an interval that reaches its neighbours."""
    sweep_tree(tmp_path, gap=0.04)
    t = report.tables(report.load(tmp_path))
    wind = t["methods"]["wind-squared"]["reach_all"][2]
    assert wind["round"] == {"point": 24, "lo": 24, "hi": 24} and wind["n_seeds"] == 3
    assert wind["samples"]["point"] == 384 and wind["queries"]["point"] == 576
    assert t["methods"]["sppo"]["reach_all"][2]["round"] == {"point": np.inf, "lo": np.inf,
                                                             "hi": np.inf}  # fmt: skip
    rng = np.random.default_rng(3)
    target = {s: np.full(98, 0.55) for s in range(3)}

    def at(mean: float) -> np.ndarray:  # noisy prompts and seeds, exactly ``mean`` on average
        x = rng.normal(0.0, 0.1, (3, 98))
        return mean + x - x.mean()

    noisy = runs_of({12: at(0.54), 24: at(0.55), 36: at(0.554), 48: at(0.58)})
    a = stats.reach_interval(noisy, target)
    # reached first at 12 in 14% of the resamples, at 48 or never in 11%: both inside 95%
    assert a["round"] == {"point": 24, "lo": 12, "hi": 48}
    assert a["samples"]["lo"] == 16 * 12 and a["queries"]["point"] == 24 * 24


def test_fewer_samples_needs_the_resamples_and_every_seed(report, stats, tmp_path, sweep_page):
    """WIND reaches Best-of-2 at round 24 on every seed and prompt, SPPO never: fewer, in every
    resample; a method ahead in 98% of resamples but level on one seed alone is not separated;
    two seeds give no verdict; the page's first section carries the verdict."""
    sweep_tree(tmp_path, gap=0.04)
    t = report.tables(report.load(tmp_path))
    f = t["methods"]["sppo"]["fewer"]["wind-squared"][2]["samples"]
    assert f["verdict"] == "fewer" and f["less"] == 1.0 and f["more"] == 0.0
    assert f["seeds"] == [(384.0, np.inf)] * 3
    page = sweep_page.markdown(t)
    assert "| fewer samples than SPPO | fewer; less in 100%, more in 0% of resamples |" in page
    row = "| reaches Best-of-2 at (pooled seeds) | round 24 [24, 24] (3 of 3 seeds), 384 samples,"
    assert row + " KL 2.40 nats |" in page
    assert "| 576 [576, 576] | 24; 24; 24 | 2.40 |" in page  # the cost table's rounds per seed
    assert "| not reached; not reached; not reached | — |" in page  # SPPO's
    assert "## The answer\n" in page  # every final run known is in
    t["progress"]["final"] = (6, 24)
    assert "## The answer so far\n" in sweep_page.markdown(t)
    sweep_tree(tmp_path / "flat", gap=0.0)  # WIND never reaches it
    page = sweep_page.markdown(report.tables(report.load(tmp_path / "flat")))
    assert "| not reached (3 of 3 seeds; not reached [not reached, not reached]) |" in page
    # b: at the target by round 24 on every seed. a: far past it at round 12 on seeds 1 and 2;
    # on seed 0 a hair below it at round 12 (past it in about half the prompt resamples)
    rng = np.random.default_rng(0)
    target = {s: np.full(98, 0.55) for s in range(3)}
    noise = rng.normal(0.0, 0.1, (3, 98))
    noise -= noise.mean(axis=1, keepdims=True)
    b = runs_of({12: np.full((3, 98), 0.4), 24: np.full((3, 98), 0.6)})
    a12 = 0.55 + noise + np.array([-0.001, 0.3, 0.3])[:, None]
    a = runs_of({12: a12, 24: np.full((3, 98), 0.6)})
    f = stats.fewer(a, b, target, "samples")
    assert f["less"] >= 0.975 and f["seeds"][0] == (384.0, 384.0)
    assert f["verdict"] == "not separated"
    two = {s: r for s, r in a.items() if s > 0}
    assert stats.fewer(two, b, target, "samples")["verdict"] == "none yet (2 of 3 seeds)"
    g = stats.fewer(b, a, target, "samples")  # the mirror: "more" needs every seed too
    assert g["more"] == f["less"] and g["verdict"] == "not separated"  # paired: same resamples


def test_a_run_that_never_reaches_the_target_is_only_known_to_need_more_than_it_spent(stats):
    """J-BOND's rounds spend 12 samples, WIND's 16: J-BOND not reaching the target in 48 rounds
    (576 samples) says nothing of WIND reaching it at 768; at 384 WIND spent fewer."""
    target = {s: np.full(98, 0.55) for s in range(3)}
    low, high = np.full((3, 98), 0.4), np.full((3, 98), 0.6)
    jbond = runs_of({s: low for s in (12, 24, 36, 48)}, per_round=12)
    late = runs_of({12: low, 24: low, 36: low, 48: high})
    f = stats.fewer(late, jbond, target, "samples")
    assert f["seeds"] == [(768.0, np.inf)] * 3 and f["budgets"] == [(768.0, 576.0)] * 3
    assert f["less"] == 0.0 and f["more"] == 0.0 and f["verdict"] == "not separated"
    early = runs_of({12: low, 24: high, 36: high, 48: high})
    f = stats.fewer(early, jbond, target, "samples")
    assert f["less"] == 1.0 and f["verdict"] == "fewer"
    assert stats.fewer(jbond, early, target, "samples")["verdict"] == "more"
    # far past it from round 12 on seeds 1 and 2; on seed 0 a hair below it until round 48 (past
    # it in about half the prompt resamples): ahead in 98% of the resamples, but seed 0 alone
    # reaches it beyond J-BOND's whole run
    noise = np.random.default_rng(0).normal(0.0, 0.1, (3, 98))
    near = 0.55 + noise - noise.mean(axis=1, keepdims=True) + np.array([-0.001, 0.3, 0.3])[:, None]
    mixed = runs_of({12: near, 24: near, 36: near, 48: high})
    f = stats.fewer(mixed, jbond, target, "samples")
    assert f["less"] >= 0.975 and f["seeds"][0] == (768.0, np.inf)
    assert f["verdict"] == "not separated"


def test_each_seed_meets_its_own_target(stats):
    """Best-of-N's samples differ by seed: a run 0.01 above its own seed's target on every
    prompt is 0.01 above, whatever the other seeds' targets."""
    targets = {s: np.full(98, 0.5 + 0.05 * s) for s in range(3)}
    runs = {s: {"evals": {48: {"win_rate": targets[s] + 0.01}}} for s in range(3)}
    d = stats.difference(runs, targets, 48)
    assert d["mean"] == pytest.approx(0.01) and d["seeds"] == pytest.approx([0.01] * 3)
    assert d["verdict"] == "better"


def test_the_answer_reads_each_cost_of_each_baseline(report, stats, tmp_path, sweep_page):
    """WIND reaches Best-of-2 at round 36 (576 samples, 864 queries); J-BOND, 12 samples and 12
    queries a round, not within its 576 of each: fewer samples, queries not separated."""
    sweep_tree(tmp_path, gap=0.04)
    t = report.tables(report.load(tmp_path))
    targets = {s: np.full(98, 0.55) for s in range(3)}
    low, high = np.full((3, 98), 0.4), np.full((3, 98), 0.6)
    wind = runs_of({12: low, 24: low, 36: high, 48: high})
    jbond = runs_of({s: low for s in (12, 24, 36, 48)}, per_round=12, queries=12)
    by_cost = {c: stats.fewer(wind, jbond, targets, c) for c in ("samples", "queries")}
    t["methods"]["jbond"] = {"fewer": {"wind-squared": {2: by_cost}},
                             "reach": {2: stats.reach(jbond, targets)}}  # fmt: skip
    page = "\n".join(sweep_page.answer(t))
    assert (
        "J-BOND reaches Best-of-2 on none of its seeds within its runs (576 samples, 576 " in page
    )
    assert "| fewer samples than J-BOND | fewer; less in 100%, more in 0% of resamples |" in page
    assert "| fewer queries than J-BOND | not separated; less in 0%, more in 0% of" in page


def kl_runs(kl: dict[int, list[float]], win: dict[int, list[float]], prompts: int = 40) -> dict:
    """Runs of 3 seeds from per-seed KL and win rate at each evaluation (every prompt alike)."""
    return {seed: {"evals": {t: {"kl": np.full(prompts, kl[t][seed]),
                                 "win_rate": np.full(prompts, win[t][seed])} for t in kl}}
            for seed in range(3)}  # fmt: skip


def test_an_end_meets_the_other_path_where_it_has_moved_as_far_on_that_seed(stats):
    """On each seed the other run is taken at its first evaluation at or beyond the end's KL:
    rounds 12, 24 and 48 here; the end dominates it only where its win rate is better on every
    seed; a run that never moved as far on one seed gives no comparison."""
    wind = kl_runs({48: [1.0, 2.0, 1.5]}, {48: [0.6, 0.6, 0.6]})
    other = kl_runs({12: [1.0, 0.5, 0.2], 24: [3.0, 2.5, 1.0], 48: [4.0, 3.0, 1.6]},
                    {12: [0.55, 0.5, 0.5], 24: [0.7, 0.58, 0.5], 48: [0.8, 0.8, 0.59]})  # fmt: skip
    wind[0]["evals"][48]["kl"] = np.r_[np.zeros(30), np.full(10, 4.0)]  # mean 1.0, median 0
    for run in other.values():  # evaluations in any order
        run["evals"] = dict(reversed(run["evals"].items()))
    d = stats.dominance(wind, other, 48)
    assert d["y_steps"] == [12, 24, 48]  # equal KL on seed 0 counts as as far
    assert d["kl"] == [(1.0, 1.0), (2.0, 2.5), (1.5, 1.6)]
    assert d["seeds"] == pytest.approx([0.05, 0.02, 0.01]) and d["dominates"]
    other[1]["evals"][24]["win_rate"] = np.full(40, 0.61)  # seed 1 now ahead of the end
    d = stats.dominance(wind, other, 48)
    assert d["verdict"].startswith("not separated") and not d["dominates"]
    other[2]["evals"][48]["kl"] = np.full(40, 1.4)  # seed 2 never as far as WIND's 1.5
    assert stats.dominance(wind, other, 48) is None
    assert stats.dominance(other, wind, 48) is None  # WIND has no evaluation beyond its end


def test_the_page_says_where_an_end_dominates_the_other_path(report, tmp_path, sweep_page):
    """SPPO moves twice as far as WIND by every round, and its round 24 (as far as WIND's end)
    is still below WIND's end: the page says WIND's end dominates it, in the section and the
    answer; SPPO's end meets no WIND evaluation as far out."""
    sweep_tree(tmp_path, gap=0.04)
    for seed in range(3):  # SPPO's KL twice WIND's at every evaluation
        path = tmp_path / "final" / "sppo" / "lr2e-05_eta5" / f"seed{seed}" / "evaluations.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()]
        for row in rows:
            for p in row["prompts"]:
                p["kl"] = 0.2 * row["step"]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    t = report.tables(report.load(tmp_path))
    sides = t["methods"]["sppo"]["dominance"]["wind-squared"]
    assert sides["other"] is None and sides["wind"]["y_steps"] == [24, 24, 24]
    assert sides["wind"]["mean"] == pytest.approx(0.04) and sides["wind"]["dominates"]
    page = sweep_page.markdown(t)
    assert (
        "| WIND (`wind-squared`) (round 48) | SPPO (24; 24; 24) | +0.040 [+0.040, +0.040] " in page
    )
    assert "| 4.80 / 4.80; 4.80 / 4.80; 4.80 / 4.80 | yes |" in page
    assert ("| against SPPO at no less KL (an end against the other's path as far out) | WIND's "
            "end − its path +0.040 [+0.040, +0.040], better |") in page  # fmt: skip
    assert t["methods"]["wind-squared"]["dominance"] == {}  # never against itself


def test_the_section_and_the_answer_list_each_side_in_order(stats, sweep_page):
    """Per-seed KL as end / against and per-seed differences in seed order; a side that does not
    dominate is still listed, and the other side's row appears when WIND's side has none."""
    wind = kl_runs({48: [1.0, 2.0, 1.5]}, {48: [0.6, 0.6, 0.6]})
    other = kl_runs({12: [1.0, 0.5, 0.2], 24: [3.0, 2.5, 1.0], 48: [4.0, 3.0, 1.6]},
                    {12: [0.55, 0.5, 0.5], 24: [0.7, 0.58, 0.5], 48: [0.8, 0.8, 0.59]})  # fmt: skip

    def page(sides: dict) -> str:
        t = {"steps": [48], "targets": {2: None},
             "methods": {"wind-squared": {"reach_all": {}, "curve": {}},
                         "sppo": {"dominance": {"wind-squared": sides}}}}  # fmt: skip
        return "\n".join([*sweep_page.at_no_more_kl(t), *sweep_page.answer(t)])

    text = page({"wind": stats.dominance(wind, other, 48), "other": None})
    assert "| 1.00 / 1.00; 2.00 / 2.50; 1.50 / 1.60 | yes |" in text
    assert "| +0.050; +0.020; +0.010 |" in text
    other[1]["evals"][24]["win_rate"] = np.full(40, 0.61)  # no longer dominated
    text = page({"wind": stats.dominance(wind, other, 48), "other": None})
    assert "| WIND's end − its path " in text and "| no |" in text
    text = page({"wind": None, "other": stats.dominance(other, kl_runs(
        {48: [5.0, 5.0, 5.0]}, {48: [0.6, 0.6, 0.6]}), 48)})  # fmt: skip
    assert "| SPPO (round 48) | WIND (`wind-squared`) (48; 48; 48) |" in text
    assert "| its end − WIND's path " in text
    assert "| neither moved as far as the other's end on every seed |" in page(
        {"wind": None, "other": None}
    )


def test_a_choice_at_the_edge_of_the_grid_is_said(report, tmp_path, sweep_page):
    """Both choices in the middle of the learning-rate grid: nothing said; one at its top: the
    page says the best may lie beyond it."""
    sweep_tree(tmp_path, gap=0.04)
    t = report.tables(report.load(tmp_path))
    assert "The chosen learning rate is" not in sweep_page.markdown(t)
    t["chosen"]["sppo"] = "lr4e-05_eta5"
    assert (
        "The chosen learning rate is the grid's largest (4e-05) for SPPO: the best may lie "
        "beyond the grid" in sweep_page.markdown(t)
    )
    t["chosen"]["sppo"] = "lr1e-05_eta5"
    assert "is the grid's smallest (1e-05) for SPPO: the best" in sweep_page.markdown(t)
