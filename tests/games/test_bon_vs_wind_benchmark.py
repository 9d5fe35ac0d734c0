"""benchmarks/bon_vs_wind.py (THEORY.md 7 item 5): its --quick run writes what the docs claim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, benchmark_script) -> tuple[dict, Path]:
    module = benchmark_script("bon_vs_wind")
    out = tmp_path_factory.mktemp("bench")
    result = module.main(["--quick", "--out", str(out)])
    return result, out


def _row(rows: list[dict], **key: object) -> dict:
    (hit,) = [r for r in rows if all(r[k] == v for k, v in key.items())]
    return hit


def test_writes_json_and_markdown(quick):
    result, out = quick
    assert json.loads((out / "bon_vs_wind.json").read_text()) == json.loads(json.dumps(result))
    md = (out / "bon_vs_wind.md").read_text()
    assert "python benchmarks/bon_vs_wind.py --quick" in md
    assert "## What the numbers say" in md
    assert md.count("| matched |") == len(result["config"]["ns"]) * len(result["config"]["betas"])


def test_transitive_matched_lam_always_settles(quick):
    rows = quick[0]["transitive"]["rows"]
    matched = [r for r in rows if r["lam_rule"] == "matched"]
    assert matched
    assert all(r["settled_fraction"] == 1.0 for r in matched)


def test_bottom_exponent_predicts_pruning(quick):
    # (1-lam)N < 1: the bottom action's update contracts, the fixed point keeps full support;
    # (1-lam)N >= 1.2: its mass runs off to zero in every game and BoN collapses
    rows = quick[0]["transitive"]["rows"]
    K = quick[0]["config"]["K"]
    contractive = [r for r in rows if r["bottom_exponent"] < 0.99]
    expansive = [r for r in rows if r["bottom_exponent"] >= 1.2]
    assert contractive and expansive
    for r in contractive:
        assert r["pruned_fraction"] == 0.0 and r["support_mean"] == K
    for r in expansive:
        assert r["pruned_fraction"] == 1.0 and r["support_mean"] < 2.0


def test_matched_lam_is_close_only_in_the_contractive_regime(quick):
    result = quick[0]
    rows, ns = result["transitive"]["rows"], sorted(result["config"]["ns"])
    for n in ns:
        matched = _row(rows, n=n, beta=1.0, lam_rule="matched")
        halved = _row(rows, n=n, beta=1.0, lam_rule="x0.5")
        # closer to pi* than ref is (ratio < 1), and far closer than the collapsed lam x 0.5
        assert matched["tv_relative_mean"] < 0.9
        assert halved["tv_mean"] > 5 * matched["tv_mean"]
        # at beta = 0.3 the matched lam is expansive: further from pi* than ref is
        collapsed = _row(rows, n=n, beta=0.3, lam_rule="matched")
        assert collapsed["bottom_exponent"] > 1.0
        assert collapsed["tv_relative_mean"] > 1.0
    by_n = [_row(rows, n=n, beta=1.0, lam_rule="matched")["tv_mean"] for n in ns]
    assert by_n == sorted(by_n, reverse=True)


def test_general_oracle_bo2_cycles_at_small_beta_while_newton_converges(quick):
    rows = quick[0]["general"]
    assert all(r["newton_converged"] and r["newton_gap"] <= 1e-12 for r in rows)
    for r in rows:
        if r["beta"] >= 0.3:
            assert r["settled_fraction"] == 1.0
    cyclic = _row(rows, nontransitive=1.0, beta=0.03)
    assert cyclic["settled_fraction"] < 0.95 and cyclic["moving_fraction"] > 0.0
    # where it settles the match improves as preferences weaken (more non-transitive share
    # here means win rates closer to 1/2)
    rel = [_row(rows, nontransitive=s, beta=1.0)["tv_relative_mean_settled"] for s in (0, 0.5, 1)]
    assert rel[0] > rel[1] > rel[2]
    assert rel[2] < 0.2
