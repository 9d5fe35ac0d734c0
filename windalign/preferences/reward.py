"""Bradley-Terry preferences over a reward function (THEORY.md 1): ``P = sigmoid((r_i - r_j)/tau)``.

Any Python callable ``f(prompts, responses) -> list[list[float]]`` (one reward per response)
becomes an oracle, as TRL's ``reward_funcs`` take callables. The built-in ``heuristic`` reward is
a transparent, dependency-free signal for demos and smoke runs (the offline default oracle with a
sentence-embedding model is its own module).

>>> oracle = RewardFunctionOracle(lambda prompts, responses: [[len(r) for r in rs] for rs in
...     responses], temperature=1.0, name="length")
>>> P = oracle(["Say hi."], [["hi", "hello"]])
>>> round(P[0, 1, 0].item(), 4)  # sigmoid(5 - 2)
0.9526
>>> oracle.counters.calls, oracle.counters.queries
(2, 1)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from windalign.preferences.protocol import Pairs, PreferenceOracle, _short

RewardFn = Callable[[list[str], list[list[str]]], Sequence[Sequence[float]]]


class RewardFunctionOracle(PreferenceOracle):
    """Bradley-Terry over ``fn(prompts, responses) -> [[r_bk]]``: ``P_ij = sigmoid((r_i - r_j)
    / temperature)``. Spends one call per response scored (K per prompt, whatever the pairs)."""

    def __init__(self, fn: RewardFn, temperature: float = 1.0, name: str | None = None) -> None:
        if not callable(fn):
            raise ValueError(f"reward function {fn!r} is not callable")
        if not (isinstance(temperature, int | float) and math.isfinite(temperature)) or not (
            temperature > 0
        ):
            raise ValueError(f"temperature = {temperature!r} is invalid; it must be a float > 0")
        self.fn, self.temperature = fn, float(temperature)
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        super().__init__()

    def rewards(self, prompts: list[str], responses: list[list[str]]) -> Tensor:
        """``[B, K]`` float64 rewards, checked for shape and finiteness (errors name the prompt)."""
        raw = self.fn(prompts, responses)
        self.counters.calls += sum(len(r) for r in responses)
        try:
            r = torch.as_tensor([[float(v) for v in row] for row in raw], dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"reward function {self.name!r} must return one list of float rewards per prompt "
                f"(list[list[float]]), got {type(raw).__name__}: {err}"
            ) from None
        want = (len(prompts), len(responses[0]) if responses else 0)
        if tuple(r.shape) != want:
            raise ValueError(
                f"reward function {self.name!r} returned shape {tuple(r.shape)}, expected {want} "
                "(one reward per response of each prompt)"
            )
        bad = ~torch.isfinite(r)
        if bad.any():
            b, k = (int(v) for v in bad.nonzero()[0])
            raise ValueError(
                f"reward function {self.name!r} returned {r[b, k].item()} for response {k} of "
                f"prompt {_short(prompts[b])}; rewards must be finite"
            )
        return r

    def compare(self, prompts: list[str], responses: list[list[str]], pairs: Pairs) -> Tensor:
        """Bradley-Terry preferences from the rewards of all K responses."""
        r = self.rewards(prompts, responses) / self.temperature
        return torch.sigmoid(r[:, :, None] - r[:, None, :])


_WORD = re.compile(r"[a-z0-9']+")
_STOP = frozenset(
    "a an the and or of to in on for with is are was be it this that what how why who which "
    "your you i me my do does can give write explain one two three in at by as from about".split()
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def heuristic_reward(prompts: list[str], responses: list[list[str]]) -> list[list[float]]:
    """A transparent reward in about [-2, 1]: relevance - repetition - length penalty.

    * relevance: share of the prompt's content words (not stop words) that the response uses;
    * repetition: share of repeated word trigrams (``1 - unique / total``);
    * length: 1 if the response has no word, else the distance outside 3..80 words / 40.

    Gameable by echoing the prompt's words: use it for smoke runs, not as evidence of quality.

    >>> heuristic_reward(["Name a red fruit."], [["A strawberry is a red fruit.", "Blue blue."]])
    [[0.6666666666666666, -0.025]]
    """
    out = []
    for prompt, group in zip(prompts, responses, strict=True):
        content = {w for w in _words(prompt) if w not in _STOP}
        row = []
        for text in group:
            words = _words(text)
            relevance = len(content & set(words)) / max(len(content), 1)
            trigrams = list(zip(words, words[1:], words[2:], strict=False))
            repetition = 1 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0
            n = len(words)
            length = 1.0 if n == 0 else max(3 - n, n - 80, 0) / 40
            row.append(relevance - repetition - length)
        out.append(row)
    return out
