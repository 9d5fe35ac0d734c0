"""Preference oracles: ``oracle(prompts, responses) -> P [B, K, K]`` (THEORY.md 1, 8).

Torch only (never transformers at import). ``ORACLES`` maps names to oracle factories (the CLI's
``preference:`` choices); :func:`as_oracle` turns an oracle, a plain reward function, a registry
name or a ``"package.module:function"`` reference into a :class:`PreferenceOracle`.

>>> ORACLES.names()[:4]
['offline', 'heuristic', 'reward-model', 'judge']
>>> as_oracle("heuristic").name
'heuristic'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from windalign.preferences.http import HTTPJudge
from windalign.preferences.judge import ModelJudge, PairwiseJudge
from windalign.preferences.offline import OfflineOracle
from windalign.preferences.protocol import (
    OracleCounters,
    Pairs,
    PreferenceOracle,
    count_queries,
    validate_preferences,
)
from windalign.preferences.reward import (
    RewardFunctionOracle,
    RewardModelOracle,
    RewardSum,
    heuristic_reward,
)
from windalign.registry import Registry

ORACLES: Registry[Callable[..., PreferenceOracle]] = Registry("preference oracle")
ORACLES.register(
    "offline",
    help="the offline default: MiniLM relevance + completeness, repetition, length, echo, "
    "rudeness and filler terms, Bradley-Terry",
)(OfflineOracle)
ORACLES.register(
    "heuristic",
    help="Bradley-Terry over a transparent reward: prompt-word relevance - repetition - length",
)(lambda temperature=0.1: RewardFunctionOracle(heuristic_reward, temperature, name="heuristic"))
ORACLES.register(
    "reward-model",
    help="Bradley-Terry over a sequence-classification reward model (model: folder)",
)(RewardModelOracle)
ORACLES.register(
    "judge",
    help="a causal LM asked 'A or B?' in both orders (model: folder or alias, e.g. smollm2)",
)(ModelJudge)
ORACLES.register(
    "http-judge",
    help="an LLM judge at an OpenAI-compatible /v1/chat/completions (base_url, model, api_key_env)",
)(HTTPJudge)


def _import(reference: str) -> Any:
    module, _, attr = reference.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"preference {reference!r} could not be imported ({err}); give a registered oracle "
            f"({', '.join(ORACLES.names())}) or 'package.module:function'"
        ) from None


def as_oracle(preference: Any, **kwargs: Any) -> PreferenceOracle:
    """A :class:`PreferenceOracle` from an oracle, a reward function, a name or a reference.

    * an oracle is returned as is (``kwargs`` must be empty);
    * a registered name (``ORACLES``) is built with ``kwargs``;
    * ``"package.module:attr"`` imports ``attr``: an oracle, an oracle class / factory (called
      with ``kwargs``) or a reward function ``f(prompts, responses) -> list[list[float]]``;
    * any other callable is a reward function, wrapped in Bradley-Terry
      (:class:`RewardFunctionOracle`, ``kwargs`` such as ``temperature`` passed on).
    """
    if isinstance(preference, str):
        if preference in ORACLES:
            return ORACLES[preference](**kwargs)
        if ":" not in preference:
            raise ValueError(
                f"unknown preference oracle {preference!r}; choose one of: "
                f"{', '.join(ORACLES.names())}, or give 'package.module:function'"
            )
        preference = _import(preference)
        if isinstance(preference, type) and issubclass(preference, PreferenceOracle):
            return preference(**kwargs)
    if isinstance(preference, PreferenceOracle):
        if kwargs:
            raise ValueError(f"oracle {preference.name!r} is already built; drop {sorted(kwargs)}")
        return preference
    if callable(preference):
        return RewardFunctionOracle(preference, **kwargs)
    raise ValueError(
        f"preference must be an oracle, a reward function f(prompts, responses) -> "
        f"list[list[float]], or a name; got {type(preference).__name__}"
    )


__all__ = [
    "ORACLES",
    "HTTPJudge",
    "ModelJudge",
    "OfflineOracle",
    "OracleCounters",
    "Pairs",
    "PairwiseJudge",
    "PreferenceOracle",
    "RewardFunctionOracle",
    "RewardModelOracle",
    "RewardSum",
    "as_oracle",
    "count_queries",
    "heuristic_reward",
    "validate_preferences",
]
