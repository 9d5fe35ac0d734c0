"""benchmarks/llm_results.py: the results page is generated from the committed JSON, and the cost
and matched-KL tables interpolate only between two consecutive evaluations (issue 18)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(benchmark_script):
    return benchmark_script("llm_results")


def curve(results, *points):
    return [results.ORIGIN] + [
        {
            "step": s,
            "eval_win_rate": w,
            "eval_kl": k,
            "queries": 10.0 * s,
            "samples": 5.0 * s,
            "seconds_wall": 2.0 * s,
        }
        for s, w, k in points
    ]


def test_crossing_interpolates_between_consecutive_evaluations_only(results):
    seed = curve(results, (6, 0.51, 0.2), (12, 0.55, 0.6))
    got = results.crossing(seed, "eval_win_rate", 0.53)
    assert got["samples"] == pytest.approx(45.0)  # halfway from step 6 to step 12
    assert got["eval_kl"] == pytest.approx(0.4)
    # first crossed between the initial model and the first evaluation: not interpolated
    assert results.crossing(seed, "eval_win_rate", 0.505) == results.GAP
    # met exactly at an evaluation: measured there, even from the origin
    assert results.crossing(seed, "eval_win_rate", 0.51)["samples"] == pytest.approx(30.0)
    assert results.crossing(seed, "eval_win_rate", 0.6) is None
    # a missing evaluation (step 18 absent) is a gap too
    holed = curve(results, (6, 0.51, 0.2), (12, 0.52, 0.3), (24, 0.58, 0.9))
    assert results.crossing(holed, "eval_win_rate", 0.55) == results.GAP


def test_a_cell_averages_only_when_every_seed_is_measured(results):
    fmt = lambda m: f"{m['samples']:.0f}"  # noqa: E731
    assert (
        results._seed_cell([{"samples": 10.0}, {"samples": 20.0}], fmt, False) == "15 (mean of 2)"
    )
    assert results._seed_cell([{"samples": 10.0}, results.GAP], fmt, False) == "10; gap"
    assert results._seed_cell([None, {"samples": 20.0}], fmt, True) == "not reached; 20"


def test_the_committed_page_and_tables_are_what_the_committed_json_generates(results, tmp_path):
    """Every number on docs/results-llm.md and the two tables comes from the JSON next to them:
    regenerating them from it changes nothing."""
    folder = ROOT / "docs" / "benchmarks"
    page = tmp_path / "results-llm.md"
    shutil.copy(ROOT / "docs" / "results-llm.md", page)
    results.write_page(page, folder)
    assert page.read_text() == (ROOT / "docs" / "results-llm.md").read_text()
    for name in results.PAGE_NAMES:
        shutil.copy(folder / f"{name}.json", tmp_path / f"{name}.json")
    timing = {"llm_results": str(folder / "llm_method_rates.json"), "llm_results_m2": "none"}
    for name in results.PAGE_NAMES:
        args = ["--report", str(tmp_path), "--from-json", "--name", name, "--timing", timing[name]]
        assert results.main(args) == 0
        assert (tmp_path / f"{name}.md").read_text() == (folder / f"{name}.md").read_text()
