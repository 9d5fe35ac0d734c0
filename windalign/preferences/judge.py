"""Pairwise judges: "which of two responses is better?", asked in both orders (THEORY.md 1, 8).

A judge returns, for an ordered comparison ``(prompt, first, second)``, the probability that the
first response is better. :class:`PairwiseJudge` asks every queried pair in both orders and
averages ``P(a > b) = (p(a, b) + 1 - p(b, a)) / 2`` to remove position bias; one query costs two
calls (THEORY.md 8). Which pairs are queried is a choice (``pairs``): ``all`` of them, a ``cycle``
``(0,1), (1,2), ..., (K-1,0)`` (K queries instead of K(K-1)/2), or ``random`` pairs, ``K`` per
prompt, from a seeded generator. Unqueried pairs are NaN; the losses complete one-way pairs and skip
missing ones.

Subclasses implement :meth:`PairwiseJudge.judge`, the batched ordered comparisons, returning a
probability or ``None`` (the comparison failed and ``on_error = "skip"``: the pair becomes NaN and
is counted in ``counters.skipped``, never a silent 1/2).

>>> class Longer(PairwiseJudge):
...     def judge(self, items):
...         self.counters.calls += len(items)
...         return [1.0 if len(a) > len(b) else 0.0 for _, a, b in items]
>>> judge = Longer(pairs="cycle")
>>> P = judge(["Hi."], [["hello", "hi", "hey", "howdy"]])
>>> P[0].tolist()
[[nan, 1.0, nan, 0.5], [0.0, nan, 0.0, nan], [nan, 1.0, nan, 0.0], [0.5, nan, 1.0, nan]]
>>> judge.counters.queries, judge.counters.calls
(4, 8)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from windalign.preferences.protocol import Pairs, PreferenceOracle

PAIR_SCHEMES = ("all", "cycle", "random")

#: The question every judge asks (a causal LM as a chat, an HTTP judge as its user message).
JUDGE_TEMPLATE = (
    "Which response answers the instruction better? Judge helpfulness, correctness, relevance "
    "and clarity; ignore the order in which they are shown.\n\n"
    "Instruction:\n{prompt}\n\nResponse A:\n{first}\n\nResponse B:\n{second}\n\n"
    "Answer with a single letter, A or B."
)
#: The two answers, in the order (first better, second better).
ANSWERS = ("A", "B")


def scheme_pairs(
    K: int, scheme: str, rng: np.random.Generator | None = None
) -> list[tuple[int, int]]:
    """Unordered pairs ``(i, j)``, ``i < j``, of ``K`` responses that a scheme queries.

    >>> scheme_pairs(4, "cycle")
    [(0, 1), (0, 3), (1, 2), (2, 3)]
    >>> len(scheme_pairs(5, "all")), len(scheme_pairs(5, "random", np.random.default_rng(0)))
    (10, 5)
    """
    if scheme not in PAIR_SCHEMES:
        raise ValueError(
            f"unknown pair scheme {scheme!r}; choose one of: {', '.join(PAIR_SCHEMES)}"
        )
    every = [(i, j) for i in range(K) for j in range(i + 1, K)]
    if scheme == "all":
        return every
    if scheme == "cycle":
        return sorted({tuple(sorted((i, (i + 1) % K))) for i in range(K)})
    rng = rng if rng is not None else np.random.default_rng(0)
    chosen = rng.choice(len(every), size=min(K, len(every)), replace=False)
    return sorted(every[c] for c in chosen)


class PairwiseJudge(PreferenceOracle):
    """Base class of judges: both orders of every queried pair, averaged (see module docs).

    ``pairs``: ``all``, ``cycle`` or ``random``; a caller's explicit ``pairs`` argument (e.g.
    Nash-MD's ``(0, j)``) replaces the scheme. ``seed`` seeds the ``random`` scheme.
    """

    def __init__(self, pairs: str = "all", seed: int = 0) -> None:
        if pairs not in PAIR_SCHEMES:
            raise ValueError(f"pairs = {pairs!r} is invalid; it must be one of {PAIR_SCHEMES}")
        super().__init__()
        self.scheme, self.rng = pairs, np.random.default_rng(seed)

    def judge(self, items: list[tuple[str, str, str]]) -> list[float | None]:
        """``P(first better)`` for each ordered ``(prompt, first, second)``; ``None`` = skipped."""
        raise NotImplementedError

    def compare(self, prompts: list[str], responses: list[list[str]], pairs: Pairs) -> Tensor:
        """Ask both orders of each queried pair in one batch; average them."""
        K = len(responses[0])
        asked: list[tuple[int, int, int]] = []
        for b in range(len(prompts)):
            chosen = pairs if pairs is not None else scheme_pairs(K, self.scheme, self.rng)
            asked += [(b, i, j) for i, j in chosen]
        items = []
        for b, i, j in asked:
            items.append((prompts[b], responses[b][i], responses[b][j]))
            items.append((prompts[b], responses[b][j], responses[b][i]))
        answers = self.judge(items) if items else []
        P = torch.full((len(prompts), K, K), float("nan"), dtype=torch.float64)
        for n, (b, i, j) in enumerate(asked):
            forward, backward = answers[2 * n], answers[2 * n + 1]
            if forward is None or backward is None:
                self.counters.skipped += 1
                continue
            p = (float(forward) + 1.0 - float(backward)) / 2
            P[b, i, j], P[b, j, i] = p, 1.0 - p
        return P


class ModelJudge(PairwiseJudge):
    """A causal LM as a pairwise judge: the probability of answering "A" rather than "B".
    ``model``: the model, or its folder, alias or hub id (loaded in ``dtype`` at ``revision``
    onto ``device``, default this process's GPU if any: :mod:`windalign.lm.loading`).

    The question (:data:`JUDGE_TEMPLATE`) is one user turn in the judge's own chat template
    (tokenized once, no double BOS); ``P(first better) = softmax(l_A, l_B)[0]`` from the
    next-token logits after the generation prompt. Batched with left padding, ``batch_size``
    comparisons per forward pass; one call per ordered comparison (two per query).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        pairs: str = "all",
        seed: int = 0,
        batch_size: int = 8,
        max_length: int = 1024,
        name: str | None = None,
        dtype: str = "float32",
        revision: str | None = None,
        device: Any = None,
    ) -> None:
        from windalign.lm.loading import default_device, load_causal_lm, load_tokenizer

        if isinstance(model, str):
            what = "the judge model (preference_kwargs.model)"
            tokenizer = tokenizer or load_tokenizer(model, revision, what=what)
            model = load_causal_lm(model, dtype, revision, what=what)
            model.to(device or default_device())
        if tokenizer is None:
            raise ValueError("ModelJudge needs the judge model's tokenizer")
        answer_ids = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in ANSWERS]
        if any(len(ids) != 1 for ids in answer_ids):
            raise ValueError(
                f"the judge's tokenizer splits the answers {ANSWERS} into {answer_ids}; each must "
                "be a single token"
            )
        self.answer_ids = [ids[0] for ids in answer_ids]
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        self.name = name or f"judge({getattr(model.config, '_name_or_path', '') or 'model'})"
        super().__init__(pairs, seed)

    def encode(self, prompt: str, first: str, second: str) -> list[int]:
        """Token ids of one ordered question, ready for the next-token answer."""
        text = JUDGE_TEMPLATE.format(prompt=prompt, first=first, second=second)
        if getattr(self.tokenizer, "chat_template", None):
            chat = [{"role": "user", "content": text}]
            text = self.tokenizer.apply_chat_template(
                chat, tokenize=False, add_generation_prompt=True
            )
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = self.tokenizer(text + "\nAnswer:")["input_ids"]
        if len(ids) > self.max_length:
            raise ValueError(
                f"judge question of {len(ids)} tokens exceeds max_length = {self.max_length} for "
                f"prompt {prompt[:50]!r}; raise max_length or shorten max_new_tokens"
            )
        return ids

    @torch.no_grad()
    def judge(self, items: list[tuple[str, str, str]]) -> list[float | None]:
        from windalign.lm.tokens import left_pad, position_ids

        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        pad = self.tokenizer.eos_token_id if pad is None else pad
        out: list[float | None] = []
        for start in range(0, len(items), self.batch_size):
            rows = [self.encode(*item) for item in items[start : start + self.batch_size]]
            ids, mask = left_pad(rows, pad, device)
            logits = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=position_ids(mask),
                logits_to_keep=1,
            ).logits[:, -1]
            pair = logits[:, self.answer_ids].double()
            out += torch.softmax(pair, -1)[:, 0].tolist()
            self.counters.calls += len(rows)
        return out
