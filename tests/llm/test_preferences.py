"""The preference protocol: validation, query counting, pair subsets, Bradley-Terry, as_oracle."""

from __future__ import annotations

import math

import pytest
import torch

from windalign.preferences import (
    ORACLES,
    PreferenceOracle,
    RewardFunctionOracle,
    as_oracle,
    heuristic_reward,
    validate_preferences,
)


def lengths(prompts, responses):
    return [[float(len(r)) for r in rs] for rs in responses]


def test_bradley_terry_over_a_reward_function():
    oracle = RewardFunctionOracle(lengths, temperature=2.0, name="len")
    P = oracle(["a", "b"], [["xx", "x", ""], ["", "", "xxxx"]])
    assert P.dtype == torch.float64 and P.shape == (2, 3, 3)
    assert P[0, 0, 1].item() == pytest.approx(1 / (1 + math.exp(-0.5)))
    assert P[1, 2, 0].item() == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert torch.isnan(torch.diagonal(P, dim1=1, dim2=2)).all()
    assert (oracle.counters.queries, oracle.counters.calls) == (6, 6)


def test_a_pair_subset_is_all_that_is_counted_and_returned():
    oracle = RewardFunctionOracle(lengths, name="len")
    P = oracle(["a"], [["x", "xx", "xxx", "xxxx"]], pairs=[(0, 1), (0, 3)])
    known = ~torch.isnan(P[0])
    assert known.sum() == 4 and known[0, 1] and known[3, 0] and not known[1, 2]
    assert oracle.counters.queries == 2 and oracle.counters.calls == 4
    with pytest.raises(ValueError, match=r"pair \(0, 0\) is not a pair"):
        oracle(["a"], [["x", "y"]], pairs=[(0, 0)])


@pytest.mark.parametrize(
    ("P", "match"),
    [
        ([[0.5, 0.5]], r"shape \(1, 2\), expected \(1, 2, 2\)"),
        ([[[0.5, -0.1], [1.1, 0.5]]], r"P\[0, 0, 1\] = -0.1 for prompt 'x'"),
        ([[[0.5, 0.7], [0.7, 0.5]]], r"P\[0, 0, 1\] \+ P\[0, 1, 0\] = 1.4, not 1"),
    ],
)
def test_validation_names_the_oracle_and_the_prompt(P, match):
    with pytest.raises(ValueError, match="oracle 'judge' returned " + match):
        validate_preferences(torch.tensor(P), "judge", ["x"], 2)


def test_one_way_and_missing_queries_are_valid():
    nan = float("nan")
    P = validate_preferences(torch.tensor([[[nan, 0.8], [nan, nan]]]), "j", ["x"], 2)
    assert P[0, 0, 1].item() == pytest.approx(0.8) and torch.isnan(P[0, 1, 0])


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda p, r: [[1.0]], r"returned shape \(1, 1\), expected \(1, 2\)"),
        (lambda p, r: [[1.0, math.inf]], "returned inf for response 1 of prompt 'x'"),
        (lambda p, r: "bad", "must return one list of float rewards per prompt"),
    ],
)
def test_bad_reward_functions_are_named(fn, match):
    with pytest.raises(ValueError, match=match):
        RewardFunctionOracle(fn, name="r")(["x"], [["a", "b"]])


def test_as_oracle_takes_names_references_functions_and_oracles():
    assert as_oracle("heuristic").name == "heuristic" and "heuristic" in ORACLES
    assert as_oracle("windalign.preferences:heuristic_reward").name == "heuristic_reward"
    assert isinstance(as_oracle(lengths), RewardFunctionOracle)
    built = as_oracle(lengths, temperature=3.0)
    assert built.temperature == 3.0 and as_oracle(built) is built
    with pytest.raises(ValueError, match="unknown preference oracle 'nope'"):
        as_oracle("nope")
    with pytest.raises(ValueError, match="could not be imported"):
        as_oracle("no.such.module:fn")
    with pytest.raises(ValueError, match="temperature = 0 is invalid"):
        RewardFunctionOracle(lengths, temperature=0)
    with pytest.raises(ValueError, match="already built"):
        as_oracle(built, temperature=1.0)
    assert isinstance(
        as_oracle("windalign.preferences:RewardFunctionOracle", fn=lengths), PreferenceOracle
    )


def test_heuristic_prefers_relevant_unrepetitive_answers():
    prompt = ["Name a red fruit."]
    good, echo_free = "A strawberry is a red fruit.", "Blue blue blue blue blue blue."
    r = heuristic_reward(prompt, [[good, echo_free, ""]])[0]
    assert r[0] > r[1] and r[0] > r[2]
