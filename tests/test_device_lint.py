"""Device placement, checked over the source (no GPU here): a tensor handed to numpy must be
moved to the CPU first. ``tensor.numpy()`` raises for a CUDA tensor, so in the code that runs
next to a model (``windalign.lm``, ``windalign.llm``, ``windalign.preferences``) every
``.numpy()`` call must be made on a ``.cpu()`` result. ``.item()`` and ``.tolist()`` copy from
any device and are fine."""

from __future__ import annotations

import ast
from pathlib import Path

import windalign

MODEL_SIDE = ("lm", "llm", "preferences")


def numpy_calls_off_the_cpu(source: str) -> list[int]:
    """Lines of ``X.numpy()`` calls whose ``X`` is not a ``.cpu()`` call.

    >>> numpy_calls_off_the_cpu("a = kl.numpy()\\nb = kl.detach().cpu().numpy()")
    [1]
    """
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr != "numpy":
                continue
            receiver = node.func.value
            on_cpu = (
                isinstance(receiver, ast.Call)
                and isinstance(receiver.func, ast.Attribute)
                and receiver.func.attr == "cpu"
            )
            if not on_cpu:
                bad.append(node.lineno)
    return bad


def test_every_numpy_conversion_next_to_a_model_is_on_the_cpu():
    root = Path(windalign.__file__).parent
    files = [f for part in MODEL_SIDE for f in sorted((root / part).rglob("*.py"))]
    assert len(files) > 10
    found = {
        f"{f.relative_to(root)}:{line}": f.read_text().splitlines()[line - 1].strip()
        for f in files
        for line in numpy_calls_off_the_cpu(f.read_text())
    }
    assert not found, f"call .cpu() before .numpy(): {found}"


def test_the_check_finds_the_evaluation_bug_it_was_written_for():
    old = "win, lo, hi = mean_interval(wins.numpy())\nkl_mean = mean_interval(kl.numpy())\n"
    assert numpy_calls_off_the_cpu(old) == [1, 2]
