"""The examples in the docstrings of ``benchmarks/`` run as tests too (pytest's doctest
collection covers ``tests`` and ``windalign`` only)."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
WITH_EXAMPLES = sorted(p for p in BENCHMARKS.glob("*.py") if ">>> " in p.read_text())


def test_the_benchmarks_with_examples_are_found():
    names = {p.stem for p in WITH_EXAMPLES}
    assert {"llm_padding", "llm_sweep", "llm_sweep_page", "llm_sweep_stats"} <= names, names


@pytest.mark.parametrize("path", WITH_EXAMPLES, ids=lambda p: p.stem)
def test_the_docstring_examples_of_a_benchmark_hold(path, benchmark_script):
    module = benchmark_script(path.stem)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0 and result.failed == 0, result
