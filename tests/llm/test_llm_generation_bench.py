"""benchmarks/llm_generation.py and llm_padding.py (issue 17): ratios within a repetition, the
sampler check, and the padded share of each grouping of a round's prompts."""

from __future__ import annotations

import pytest


def test_generation_ratios_pair_the_variants_of_one_repetition(benchmark_script):
    """Repetition 1 runs on a machine twice as fast: each ratio to ``shared`` stays 1.25; a
    variant that drew other first tokens is reported as such."""
    gen = benchmark_script("llm_generation")
    first = [[1, 2, 3, 4]]

    def run(rep, variant, rate, warmup=2, drawn=first):
        return {"rep": rep, "variant": variant, "tokens_per_second": rate,
                "warmup_seconds": warmup, "first": drawn}  # fmt: skip

    runs = [run(0, "shared", 10.0), run(0, "static", 12.5, 3), run(1, "shared", 20.0),
            run(1, "static", 25.0, 3), run(0, "unshared", 5.0, drawn=[[9]])]  # fmt: skip
    summary = gen.summarize(runs)
    assert summary["static"]["x_shared"] == pytest.approx([1.25, 1.25, 1.25])
    assert summary["static"]["tokens_per_second"] == [pytest.approx(18.75), 12.5, 25.0]
    assert summary["static"]["same_first_tokens"] and not summary["unshared"]["same_first_tokens"]
    table = gen.table(summary, {"command": "c", "description": "d"})
    assert "| static | 2 | 18.75 [12.50, 25.00] | 1.25 [1.25, 1.25] | 3 | yes |" in table


def test_padding_of_each_grouping_of_a_round(benchmark_script):
    """Two prompts of 2 and 1 tokens; responses of 1, 3 (prompt a) and 2, 2 (prompt b): 11 tokens.
    One pack: 2 x 2 + 4 x 3 = 16 positions; each prompt alone: (2 + 2 x 3) + (1 + 2 x 2) = 13."""
    pad = benchmark_script("llm_padding")
    groups = [([1, 2], [[3], [4, 5, 6]]), ([7], [[8, 9], [10, 11]])]
    shares = pad.padded_shares(groups)
    assert shares["one pack"] == pytest.approx(1 - 11 / 16)
    assert shares["each prompt alone"] == pytest.approx(1 - 11 / 13)
    assert shares["pairs by length"] == pytest.approx(1 - 11 / 13)  # one prompt per half
    # four prompts, short and long responses alternating: sorted pairs (short, short) and
    # (long, long) hold no padding (in the given order each pair would pad 16 of 44 positions)
    groups = [([1], [[2], [3]]), ([4], [[5] * 5, [6] * 5]), ([7], [[8], [9]]), ([1], [[2] * 5] * 2)]
    assert pad.padded_shares(groups)["pairs by length"] == pytest.approx(0.0)
    assert pad.padded_shares(groups)["one pack"] == pytest.approx(1 - 28 / 44)
