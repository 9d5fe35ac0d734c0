"""Held-out evaluation of a policy against a baseline (THEORY.md 8, "Evaluation").

For each prompt, ``n`` responses of the policy ``A`` and ``n`` of the baseline ``B`` are sampled
(same temperature and length, seeded); the oracle compares every ``(a, b)`` cross pair, and the
prompt's win rate is their mean ``P(a > b)``. Reported:

* ``P(A > B) = E_x E_{a ~ A, b ~ B} P(a > b)`` with a 95% t-interval over prompts;
* ``KL(A || B)`` estimated on A's samples as the mean of ``log A(a) - log B(a)`` (sequence level,
  both tempered at the sampling temperature), with its interval over prompts;
* mean response length (tokens) and EOS rate of each model.

The same function serves ``wind evaluate`` and the trainer's periodic evaluation against the
initial policy.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy import stats

from windalign.llm import rollout
from windalign.llm.data import Prompt, encode_prompts, prompt_text
from windalign.llm.report import table_cell


def mean_interval(values: Any, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: Student-t interval over the values (NaN bounds for one value).

    >>> [round(v, 3) for v in mean_interval([0.4, 0.6, 0.8])]
    [0.6, 0.103, 1.097]
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


@dataclass
class Samples:
    """``n`` sampled responses per prompt of one model: token ids and whether each was cut."""

    ids: list[list[list[int]]]
    truncated: list[list[bool]]

    def stats(self) -> dict[str, float]:
        lengths = [len(y) for ys in self.ids for y in ys]
        cut = [t for ts in self.truncated for t in ts]
        return {"length": float(np.mean(lengths)), "eos_rate": 1.0 - float(np.mean(cut))}


@dataclass
class EvalResult:
    """Numbers of one evaluation (``summary``) and what produced them (per prompt, texts)."""

    summary: dict[str, float]
    per_prompt: list[dict[str, Any]] = field(default_factory=list)


def sample(
    model: Any,
    prompt_ids: list[list[int]],
    n: int,
    config: Any,
    eos: list[int],
    batch: int,
    seed: int,
) -> Samples:
    """``n`` responses per prompt, in batches of ``batch`` prompts, under a seeded generator."""
    ids, cut = [], []
    devices = [next(model.parameters()).device] if next(model.parameters()).is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for s in range(0, len(prompt_ids), batch):
            out, trunc = rollout.generate(model, prompt_ids[s : s + batch], n, config, eos)
            ids += out
            cut += trunc
    return Samples(ids, cut)


def evaluate(
    policy: Any,
    baseline: Any,
    tokenizer: Any,
    prompts: list[Prompt],
    oracle: Any,
    *,
    samples: int = 2,
    temperature: float = 0.7,
    max_new_tokens: int = 64,
    max_prompt_length: int = 256,
    batch_size: int = 8,
    seed: int = 0,
    baseline_context: Callable[[], Any] = contextlib.nullcontext,
) -> EvalResult:
    """Win rate of ``policy`` against ``baseline`` on ``prompts`` under ``oracle`` (module doc).

    ``baseline_context()`` wraps every use of the baseline (e.g. a LoRA policy's base model is
    the same module with the adapter disabled)."""
    eos = rollout.eos_token_ids(policy, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    config = rollout.sampling_config(
        eos, pad, temperature=temperature, max_new_tokens=max_new_tokens
    )
    prompt_ids = encode_prompts(tokenizer, prompts, max_prompt_length, "left")
    models = {"policy": policy, "baseline": baseline}
    was = {name: m.training for name, m in models.items()}
    for m in models.values():
        m.eval()
    try:
        contexts = {"policy": contextlib.nullcontext, "baseline": baseline_context}
        drawn, lp = {}, {}
        for i, (name, m) in enumerate(models.items()):
            with contexts[name]():
                drawn[name] = sample(m, prompt_ids, samples, config, eos, batch_size, seed + i)
        flat_p = [p for p in prompt_ids for _ in range(samples)]
        flat_a = [y for ys in drawn["policy"].ids for y in ys]
        for name, m in models.items():
            with contexts[name]():
                lp[name] = rollout.logprobs_no_grad(
                    m, flat_p, flat_a, temperature, pad, batch_size * samples
                ).double()
    finally:
        for name, m in models.items():
            m.train(was[name])
    kl = (lp["policy"] - lp["baseline"]).view(len(prompts), samples).mean(-1)
    texts = {
        name: [tokenizer.batch_decode(ys, skip_special_tokens=True) for ys in s.ids]
        for name, s in drawn.items()
    }
    cross = [(i, samples + j) for i in range(samples) for j in range(samples)]
    P = oracle(
        [prompt_text(p) for p in prompts],
        [a + b for a, b in zip(texts["policy"], texts["baseline"], strict=True)],
        pairs=cross,
    )
    wins = torch.nanmean(P[:, :samples, samples:].reshape(len(prompts), -1), dim=-1)
    win, win_lo, win_hi = mean_interval(wins.numpy())
    kl_mean, kl_lo, kl_hi = mean_interval(kl.numpy())
    a, b = drawn["policy"].stats(), drawn["baseline"].stats()
    summary = {
        "win_rate": win, "win_rate_lo": win_lo, "win_rate_hi": win_hi,
        "kl": kl_mean, "kl_lo": kl_lo, "kl_hi": kl_hi,
        "length": a["length"], "baseline_length": b["length"],
        "eos_rate": a["eos_rate"], "baseline_eos_rate": b["eos_rate"],
        "prompts": float(len(prompts)), "samples": float(samples),
    }  # fmt: skip
    per_prompt = [
        {
            "prompt": prompt_text(p),
            "win_rate": float(wins[x]),
            "kl": float(kl[x]),
            "policy": texts["policy"][x],
            "baseline": texts["baseline"][x],
        }
        for x, p in enumerate(prompts)
    ]
    return EvalResult(summary, per_prompt)


def report(result: EvalResult, title: str, examples: int = 5) -> str:
    """Markdown: the summary table and a few generations side by side."""
    s = result.summary
    lines = [
        f"# {title}",
        "",
        f"{int(s['prompts'])} held-out prompts x {int(s['samples'])} samples per model; every "
        "policy sample judged against every baseline sample of its prompt.",
        "",
        "| metric | value | 95% interval over prompts |",
        "|---|---|---|",
        f"| win rate P(policy > baseline) | **{s['win_rate']:.3f}** | "
        f"[{s['win_rate_lo']:.3f}, {s['win_rate_hi']:.3f}] |",
        f"| KL(policy \\|\\| baseline), nats per response | {s['kl']:.3f} | "
        f"[{s['kl_lo']:.3f}, {s['kl_hi']:.3f}] |",
        f"| response length (tokens), policy / baseline | {s['length']:.1f} / "
        f"{s['baseline_length']:.1f} | |",
        f"| EOS rate, policy / baseline | {s['eos_rate']:.2f} / {s['baseline_eos_rate']:.2f} | |",
        "",
        "## Generations side by side",
        "",
    ]
    for row in result.per_prompt[:examples]:
        lines += [
            f"**Prompt:** {row['prompt']} (win rate {row['win_rate']:.2f})",
            "",
            "| policy | baseline |",
            "|---|---|",
        ]
        for a, b in zip(row["policy"], row["baseline"], strict=True):
            lines.append(f"| {table_cell(a)} | {table_cell(b)} |")
        lines.append("")
    return "\n".join(lines)
