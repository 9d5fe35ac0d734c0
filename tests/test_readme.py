"""The README's front door stays true: its Python examples run and its make targets exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code: str) -> None:
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_readme_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    rules = re.findall(r"^([a-z][\w -]*):", makefile, flags=re.M)
    targets = {name for rule in rules for name in rule.split()}
    for target in set(re.findall(r"^make ([\w-]+)", README, flags=re.M)):
        assert target in targets, f"README mentions `make {target}`, which the Makefile lacks"


def test_readme_links_resolve() -> None:
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), f"README links to missing {link}"
