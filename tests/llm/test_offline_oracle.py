"""The offline default oracle: each transparent term, the labeled pairs, and its agreement."""

from __future__ import annotations

import pytest

from windalign.preferences import OfflineOracle
from windalign.preferences.offline import WEIGHTS, labeled_pairs, text_terms

KINDS = ("off-topic", "truncated", "repetitive", "rude", "wrong")


@pytest.fixture(scope="module")
def oracle():
    return OfflineOracle()


def test_each_text_term():
    q = "How do I boil an egg?"
    assert text_terms(q, "Boil it for nine minutes.")["complete"] == 1.0
    assert text_terms(q, "Boil it for nine")["complete"] == 0.0
    assert text_terms(q, "a b c a b c a b c")["repetition"] == pytest.approx(1 - 3 / 7)
    assert text_terms(q, "")["length"] == 1.0 and text_terms(q, "one two")["length"] == 1 / 20
    assert text_terms(q, " ".join(["word"] * 100))["length"] == pytest.approx(20 / 20)
    assert text_terms(q, "How do I boil an egg? Like this.")["echo"] == pytest.approx(4 / 6)
    assert text_terms(q, "Look it up, idiot.")["rudeness"] == 1.0
    assert text_terms(q, "Good question! Hard to say.")["filler"] == 1.0
    assert set(text_terms(q, "x")) | {"relevance"} == set(WEIGHTS)


def test_labeled_pairs_cover_the_failure_kinds_and_split_in_halves():
    pairs = labeled_pairs()
    assert len(pairs) >= 60
    for kind in KINDS:
        assert sum(p["kind"] == kind for p in pairs) >= 12, kind
    dev, test = labeled_pairs("dev"), labeled_pairs("test")
    assert len(dev) + len(test) == len(pairs) and not {p["prompt"] for p in dev} & {
        p["prompt"] for p in test
    }


def test_agreement_on_the_held_out_half(oracle):
    """Measured 0.75 (docs/benchmarks/oracles.md); a wrong sign or weight drops it."""
    pairs = labeled_pairs("test")
    wins = [oracle([p["prompt"]], [[p["better"], p["worse"]]])[0, 0, 1].item() > 0.5 for p in pairs]
    assert sum(wins) / len(wins) >= 0.65


def test_echoing_or_padding_the_prompt_does_not_win(oracle):
    q = "What is the boiling point of water at sea level?"
    answer = "Water boils at 100 degrees Celsius at sea level."
    echo = (
        "What is the boiling point of water at sea level? The boiling point of water at sea level."
    )
    pad = " ".join([answer] * 12)
    calls = oracle.counters.calls
    P = oracle([q], [[answer, echo, pad]])
    assert P[0, 0, 1] > 0.5 and P[0, 0, 2] > 0.5
    assert oracle.counters.calls - calls == 3
