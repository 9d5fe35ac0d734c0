"""Shared fixtures of the LLM tests: a tiny model folder and a reward the policy can learn."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import save_tiny


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny random Llama + character tokenizer with a chat template, saved once per session."""
    return save_tiny(tmp_path_factory.mktemp("tiny") / "model")


def count_a(prompts: list[str], responses: list[list[str]]) -> list[list[float]]:
    """Reward: how many letters 'a' a response has, minus a little per character."""
    return [[r.count("a") - 0.05 * len(r) for r in rs] for rs in responses]
