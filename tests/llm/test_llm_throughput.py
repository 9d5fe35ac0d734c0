"""benchmarks/llm_throughput.py (issue 17): ratios within a repetition, medians and ranges, the
padded share of a round's log-prob passes."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("llm_throughput")


def run(rep: int, name: str, rate: float, memory: float = 4.0) -> dict:
    return {"rep": rep, "contender": name, "wall_seconds": 80 / rate, "samples": 80.0,
            "queries": 0.0, "samples_per_second": rate, "queries_per_second": 0.0,
            "tokens_per_second": 32 * rate, "tokens_per_sample": 32.0, "peak_memory_gib": memory,
            "seconds": {"generate": 40 / rate, "reference": 0.0, "oracle": 0.0,
                        "train": 30 / rate, "other": 10 / rate}}  # fmt: skip


def test_ratios_pair_the_contenders_of_one_repetition(bench):
    """A machine that runs repetition 1 twice as fast: the per-repetition ratio stays 1.5 while
    the pooled rates spread; a ratio whose range holds 1 is marked."""
    runs = [run(0, "wind", 0.6), run(0, "trl", 0.4), run(1, "wind", 1.2), run(1, "trl", 0.8),
            run(2, "wind", 0.66), run(2, "trl", 0.44), run(0, "floor", 0.5), run(1, "floor", 1.3),
            run(2, "floor", 0.6)]  # fmt: skip
    summary = bench.summarize(runs, ["wind", "trl", "floor"])
    ratio = summary["wind"]["ratio"]["trl"]["samples_per_second"]
    assert ratio["min"] == pytest.approx(1.5) and ratio["max"] == pytest.approx(1.5)
    assert summary["wind"]["samples_per_second"] == {"median": 0.66, "min": 0.6, "max": 1.2,
                                                     "n": 3}  # fmt: skip
    assert summary["wind"]["share"]["generate"] == pytest.approx(0.5)
    assert bench._ratio(summary["wind"], "trl") == "1.50 [1.50, 1.50]"
    assert bench._ratio(summary["wind"], "floor").endswith(" ~")  # 1.2, 0.92, 1.1: holds 1
    assert "trl" not in summary["trl"]["ratio"]
    meta = {"device": "CPU", "command": "c", "model": "m", "precision": "p", "torch": "t",
            "fixed_length": True, "max_new_tokens": 32, "preference": "o", "warmup": 1,
            "steps": 5, "reps": 3}  # fmt: skip
    table = bench.table(summary, meta)
    assert "| wind | 3 | 0.66 [0.60, 1.20] |" in table


def test_padding_counts_each_prompt_once_when_shared(bench):
    """Prompts of 3 and 1 tokens, 2 responses each of 2 and 1 tokens: unshared 4 rows x (3 + 2)
    positions of which 2 x 4 + 6 are tokens; shared 2 x 3 + 4 x 2 positions, 4 + 6 tokens."""
    got = bench.padding([[1, 2, 3], [4]], [[5, 6], [7], [8, 9], [10]], 2)
    assert got["positions_unshared"] == 20 and got["positions_shared"] == 14
    assert got["padded_unshared"] == pytest.approx(1 - 14 / 20)
    assert got["padded_shared"] == pytest.approx(1 - 10 / 14)
