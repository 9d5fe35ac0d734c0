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
from typing import Any

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


def _chat_or_pair(tokenizer: Any, prompt: str, response: str) -> dict[str, Any]:
    """Token ids of (prompt, response) in the scorer's own format: its chat template as a
    user/assistant exchange (tokenized without extra special tokens), else a text pair."""
    if getattr(tokenizer, "chat_template", None):
        chat = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        text = tokenizer.apply_chat_template(chat, tokenize=False)
        return tokenizer(text, add_special_tokens=False)
    return tokenizer(prompt, response)


class RewardModelOracle(RewardFunctionOracle):
    """Bradley-Terry over a sequence-classification reward model (one logit per text).

    ``model``: an ``AutoModelForSequenceClassification`` with ``num_labels == 1``, or its folder
    or hub id (loaded in ``dtype`` at ``revision`` onto ``device``, default this process's GPU
    if any: :mod:`windalign.lm.loading`). A hub id comes through the Hugging Face cache,
    downloaded where there is a network, from the cache alone with ``HF_HUB_OFFLINE=1``; a model
    that is missing or does not load is one ``ValueError`` line naming it. It is scored with its
    *own* ``tokenizer`` and chat template (in general not the policy's), in batches of
    ``batch_size`` texts of at most ``max_length`` tokens (longer ones keep their start and are
    counted in ``truncated``). One call per response scored.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        temperature: float = 1.0,
        batch_size: int = 16,
        max_length: int = 1024,
        name: str | None = None,
        dtype: str = "float32",
        revision: str | None = None,
        device: Any = None,
    ) -> None:
        from transformers import AutoModelForSequenceClassification

        from windalign.lm.loading import (
            _load_error,
            default_device,
            load_tokenizer,
            resolve_model,
            torch_dtype,
        )

        if isinstance(model, str):
            what = "the reward model (preference_kwargs.model)"
            tokenizer = tokenizer or load_tokenizer(model, revision, what=what)
            path = resolve_model(model, revision, what=what)
            try:
                loaded = AutoModelForSequenceClassification.from_pretrained(
                    path, revision=revision, dtype=torch_dtype(dtype)
                )
            except (OSError, ValueError) as err:  # one line naming the model, as for the judge
                raise _load_error(what, model, revision, err) from None
            model = loaded.to(device or default_device())
        if tokenizer is None:
            raise ValueError("RewardModelOracle needs the reward model's tokenizer")
        if getattr(model.config, "num_labels", 1) != 1:
            raise ValueError(
                f"reward model has num_labels = {model.config.num_labels}; a reward model "
                "outputs one logit per text (num_labels = 1)"
            )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_length, self.truncated = batch_size, max_length, 0
        label = name or f"reward-model({getattr(model.config, '_name_or_path', '') or 'model'})"
        super().__init__(self._score, temperature, name=label)

    @torch.no_grad()
    def _score(self, prompts: list[str], responses: list[list[str]]) -> list[list[float]]:
        pairs = [(p, r) for p, rs in zip(prompts, responses, strict=True) for r in rs]
        device = next(self.model.parameters()).device
        scores: list[float] = []
        for start in range(0, len(pairs), self.batch_size):
            encoded = [
                _chat_or_pair(self.tokenizer, p, r)
                for p, r in pairs[start : start + self.batch_size]
            ]
            ids = [e["input_ids"][: self.max_length] for e in encoded]
            self.truncated += sum(len(e["input_ids"]) > self.max_length for e in encoded)
            width = max(len(i) for i in ids)
            pad = self.tokenizer.pad_token_id
            # right padding: sequence classifiers read the last non-pad token
            batch = torch.full((len(ids), width), pad, dtype=torch.long)
            mask = torch.zeros((len(ids), width), dtype=torch.long)
            for n, row in enumerate(ids):
                batch[n, : len(row)], mask[n, : len(row)] = torch.as_tensor(row), 1
            logits = self.model(input_ids=batch.to(device), attention_mask=mask.to(device)).logits
            scores += logits[:, 0].float().tolist()
        K = len(responses[0]) if responses else 0
        return [scores[b * K : (b + 1) * K] for b in range(len(prompts))]


class RewardSum(PreferenceOracle):
    """A weighted sum of Bradley-Terry logits from several reward sources:
    ``logit_ij = sum_s w_s (r_s(y_i) - r_s(y_j)) / tau_s``.

    ``sources``: ``(weight, source)`` with ``source`` a :class:`RewardFunctionOracle` (its own
    temperature applies) or a plain reward function (temperature 1). Calls are the sources'.

    >>> both = RewardSum([(1.0, lambda p, r: [[len(y) for y in ys] for ys in r]),
    ...                   (2.0, lambda p, r: [[y.count("!") for y in ys] for ys in r])])
    >>> round(both(["Hi"], [["hi!", "hello"]])[0, 0, 1].item(), 4)  # sigmoid((3-5) + 2 (1-0))
    0.5
    """

    def __init__(self, sources: Sequence[tuple[float, Any]], name: str = "reward-sum") -> None:
        if not sources:
            raise ValueError("RewardSum needs at least one (weight, source)")
        self.sources = [
            (float(w), s if isinstance(s, RewardFunctionOracle) else RewardFunctionOracle(s))
            for w, s in sources
        ]
        self.name = name
        super().__init__()

    def compare(self, prompts: list[str], responses: list[list[str]], pairs: Pairs) -> Tensor:
        total = 0
        for weight, source in self.sources:
            calls = source.counters.calls
            total = total + weight * source.rewards(prompts, responses) / source.temperature
            self.counters.calls += source.counters.calls - calls
        return torch.sigmoid(total[:, :, None] - total[:, None, :])
