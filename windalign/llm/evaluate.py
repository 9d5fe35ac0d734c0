"""Held-out evaluation of a policy against a baseline (THEORY.md 8, "Evaluation").

For each prompt, ``n`` responses of the policy ``A`` and ``n`` of the baseline ``B`` are sampled
(same temperature and length, seeded); the oracle compares every ``(a, b)`` cross pair, and the
prompt's win rate is their mean ``P(a > b)``. Reported:

* ``P(A > B) = E_x E_{a ~ A, b ~ B} P(a > b)`` with a 95% t-interval over prompts, clipped to
  [0, 1] (with fewer than :data:`FEW_PROMPTS` prompts the report says the interval is rough);
* ``KL(A || B)`` estimated on A's samples as the mean of ``log A(a) - log B(a)`` (sequence level,
  both tempered at the sampling temperature), with its interval over prompts. The estimator is
  unbiased, not non-negative: a negative estimate is sampling noise around a small KL, and the
  report says so;
* mean response length (tokens) and EOS rate of each model.

The same function serves ``wind evaluate`` and the trainer's periodic evaluation against the
initial policy.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from windalign.llm import rollout
from windalign.llm.data import Prompt, encode_prompts, prompt_text
from windalign.llm.report import table_cell
from windalign.lm import tokens

#: below this many prompts the report calls the win-rate interval rough
FEW_PROMPTS = 10


def mean_interval(
    values: Any, level: float = 0.95, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: Student-t interval over the values (NaN bounds for one value),
    clipped to ``bounds`` (the range the quantity cannot leave).

    >>> [round(v, 3) for v in mean_interval([0.4, 0.6, 0.8])]
    [0.6, 0.103, 1.097]
    >>> [round(v, 3) for v in mean_interval([0.4, 0.6, 0.8], bounds=(0, 1))]
    [0.6, 0.103, 1.0]
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, max(mean - half, float(bounds[0])), min(mean + half, float(bounds[1]))


@dataclass
class EvalResult:
    """Numbers of one evaluation (``summary``) and what produced them (per prompt, texts)."""

    summary: dict[str, float]
    per_prompt: list[dict[str, Any]] = field(default_factory=list)


class SampleCache(dict):
    """The baseline's samples of :func:`evaluate` kept in ``folder`` as well as in memory, for
    runs that evaluate against the same initial model (a sweep's runs of one seed draw them once).

    A batch's samples are filed under a hash of :func:`evaluate`'s cache key (seed, batch,
    samples, temperature, length, EOS and pad ids, the batch's prompt ids) and of ``model``'s
    fingerprint: every tensor of its state dict byte for byte (this process's shard of a sharded
    one), ``precision`` (the autocast regime it runs in, named as accelerate names it: the default
    ``no`` is a trainer's run without autocast), its device type and the torch and transformers
    versions. Another model, regime or version never meets these samples. Files are written
    atomically; an unreadable one is drawn again.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> cache = SampleCache(folder, torch.nn.Linear(2, 2))
    >>> cache[("key",)] = ([[[5, 6]]], [[False]])
    >>> SampleCache(folder, torch.nn.Linear(2, 2))[("key",)]  # another model: not its samples
    Traceback (most recent call last):
    KeyError: ('key',)
    """

    def __init__(self, folder: str | Path, model: Any, precision: str = "no") -> None:
        super().__init__()
        import transformers

        self.folder = Path(folder)
        self._whole: set[Any] = set()  # keys whose file was read or written whole
        digest = hashlib.sha256()
        for name, tensor in model.state_dict().items():
            local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
            local = local.detach().contiguous()
            digest.update(f"{name} {local.dtype} {tuple(local.shape)}".encode())
            digest.update(local.flatten().view(torch.uint8).cpu().numpy().tobytes())
        device = next(iter(model.parameters())).device.type
        digest.update(
            f"{precision} {device} {torch.__version__} {transformers.__version__}".encode()
        )
        self.tag = digest.hexdigest()

    def _path(self, key: Any) -> Path:
        return self.folder / f"{hashlib.sha256(repr((self.tag, key)).encode()).hexdigest()}.json"

    def __contains__(self, key: Any) -> bool:
        if not dict.__contains__(self, key):
            try:
                ids, cut = json.loads(self._path(key).read_text())
            except (OSError, ValueError):
                return False
            dict.__setitem__(self, key, (ids, cut))
            self._whole.add(key)
        return True

    def __getitem__(self, key: Any) -> tuple[list, list]:
        if key not in self:
            raise KeyError(key)
        return dict.__getitem__(self, key)

    def __setitem__(self, key: Any, value: tuple[list, list]) -> None:
        dict.__setitem__(self, key, value)
        if key in self._whole:
            return
        path = self._path(key)  # missing or damaged: (re)written whole, atomically
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps([list(value[0]), list(value[1])]))
        os.replace(tmp, path)
        self._whole.add(key)


def batch_seed(seed: int, batch: int, model: int) -> int:
    """The sampling seed of one batch of prompts and one model (0 policy, 1 baseline): a
    function of these alone, so a batch draws the same responses on any process."""
    return int(np.random.SeedSequence([seed, batch, model]).generate_state(1)[0])


def _sample(
    model: Any, prompt_ids: list[list[int]], n: int, config: Any, eos: list[int], seed: int,
    share: bool,
) -> tuple[list, list]:  # fmt: skip
    """``n`` responses per prompt under a generator seeded with ``seed`` (CUDA's too)."""
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return rollout.generate(model, prompt_ids, n, config, eos, share_prompts=share)


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
    autocast: Callable[[], Any] = contextlib.nullcontext,
    shard: tuple[int, int] = (0, 1),
    gather: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
    baseline_seed: int | None = None,
    baseline_cache: dict[Any, tuple[list, list]] | None = None,
    share_prompts: bool = True,
    best_of: int = 1,
) -> EvalResult:
    """Win rate of ``policy`` against ``baseline`` on ``prompts`` under ``oracle`` (module doc).

    The prompts are taken ``batch_size`` at a time; batch ``b`` draws model ``m``'s responses
    under :func:`batch_seed` ``(seed, b, m)``. ``baseline_context()`` wraps every use of the
    baseline (a LoRA policy's base model is the same module with the adapter disabled);
    ``autocast()`` wraps every forward pass of both models, so they run in the same precision
    regime (the trainer passes its accelerator's autocast). Several processes: ``shard = (rank,
    world)`` evaluates batches ``rank, rank + world, ...`` on this process and ``gather`` joins
    every process's per-prompt rows (e.g. ``accelerate.utils.gather_object``); the result equals
    one process's evaluation of the same prompts.

    The baseline's responses are drawn under ``baseline_seed`` (default ``seed``): a fixed
    baseline (the trainer's initial policy) gives the same responses at every evaluation, so with
    a ``baseline_cache`` dict (kept by the caller across calls) they are sampled once and reused.
    A :class:`SampleCache` keeps them on disk for other runs against the same baseline.
    ``share_prompts``: each prompt runs once for its samples, in ``generate``'s prefill and in
    the log-prob passes (:func:`windalign.lm.tokens.pack`).

    ``best_of = N > 1`` evaluates Best-of-N of ``policy`` instead: each of its samples is the
    winner among N draws, the one with the highest mean preference over the other N - 1 under
    ``oracle`` (the reward's best under a reward oracle; THEORY.md 2). Best-of-N has no tractable
    log-probability, so its KL is not estimated (NaN).
    """
    if not (isinstance(best_of, int) and best_of >= 1):
        raise ValueError(f"best_of must be an integer >= 1, got {best_of!r}")
    eos = rollout.eos_token_ids(policy, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    config = rollout.sampling_config(
        eos, pad, temperature=temperature, max_new_tokens=max_new_tokens
    )
    prompt_ids = encode_prompts(tokenizer, prompts, max_prompt_length, "left")
    rank, world = shard
    starts = list(range(0, len(prompts), batch_size))[rank::world]
    models = {"policy": policy, "baseline": baseline}
    contexts = {"policy": contextlib.nullcontext, "baseline": baseline_context}
    was = {name: m.training for name, m in models.items()}
    seeds = {"policy": seed, "baseline": seed if baseline_seed is None else baseline_seed}
    cache = baseline_cache if baseline_cache is not None else {}
    rows: list[dict[str, Any]] = []
    try:
        for m in models.values():
            m.eval()
        for start in starts:
            stop = min(start + batch_size, len(prompts))
            drawn, lp = {}, {}
            key = (seeds["baseline"], start // batch_size, samples, temperature, max_new_tokens,
                   tuple(eos), pad, tuple(map(tuple, prompt_ids[start:stop])))  # fmt: skip
            with autocast():
                for i, name in enumerate(models):
                    if name == "baseline" and key in cache:
                        drawn[name] = cache[key]
                        continue
                    n = samples * (best_of if name == "policy" else 1)
                    with contexts[name]():
                        drawn[name] = _sample(
                            models[name], prompt_ids[start:stop], n, config, eos,
                            batch_seed(seeds[name], start // batch_size, i), share_prompts,
                        )  # fmt: skip
                cache[key] = drawn["baseline"]
                if best_of > 1:
                    drawn["policy"] = _winners(
                        drawn["policy"], prompts[start:stop], best_of, tokenizer, oracle
                    )
                flat_p = [p for p in prompt_ids[start:stop] for _ in range(samples)]
                flat_a = [y for ys in drawn["policy"][0] for y in ys]
                for name, m in models.items() if best_of == 1 else ():
                    with contexts[name]():
                        lp[name] = tokens.logprobs_no_grad(
                            m, flat_p, flat_a, temperature, pad, len(flat_p), share_prompts
                        ).cpu()
            rows += _judge(prompts, start, stop, samples, drawn, lp, tokenizer, oracle)
    finally:
        for name, m in models.items():
            m.train(was[name])
    if gather is not None:
        rows = gather(rows)
    rows.sort(key=lambda row: row["index"])
    return EvalResult(_summary(rows, samples), rows)


def _winners(
    drawn: tuple[list, list], prompts: list[Prompt], n: int, tokenizer: Any, oracle: Any
) -> tuple[list, list]:
    """Best-of-``n``: from each prompt's ``samples x n`` draws ``(ids, truncated)``, the winner
    of each consecutive group of ``n`` (highest mean preference over the group's others; the
    first of equals)."""
    ids, cut = drawn
    total = len(ids[0])
    pairs = [(g + i, g + j) for g in range(0, total, n) for i in range(n) for j in range(n)
             if i < j]  # fmt: skip
    texts = [tokenizer.batch_decode(ys, skip_special_tokens=True) for ys in ids]
    P = oracle([prompt_text(p) for p in prompts], texts, pairs=pairs).double()
    known = ~torch.isnan(P)
    P = torch.where(known, P, 1 - P.transpose(1, 2))  # each pair in both directions
    best: tuple[list, list] = ([], [])
    for b in range(len(ids)):
        picks = []
        for g in range(0, total, n):
            block = P[b, g : g + n, g : g + n]
            score = torch.nanmean(block.masked_fill(torch.eye(n, dtype=torch.bool), torch.nan), -1)
            picks.append(g + int(torch.nan_to_num(score, nan=-1.0).argmax()))
        best[0].append([ids[b][k] for k in picks])
        best[1].append([cut[b][k] for k in picks])
    return best


def _judge(
    prompts: list[Prompt],
    start: int,
    stop: int,
    samples: int,
    drawn: dict[str, tuple[list, list]],
    lp: dict[str, torch.Tensor],
    tokenizer: Any,
    oracle: Any,
) -> list[dict[str, Any]]:
    """Per-prompt rows of one batch: the oracle on every cross pair, the KL terms, lengths."""
    n = stop - start
    if lp:
        kl = (lp["policy"] - lp["baseline"]).view(n, samples).mean(-1)
    else:  # Best-of-N: no log-probability
        kl = torch.full((n,), math.nan)
    texts = {
        name: [tokenizer.batch_decode(ys, skip_special_tokens=True) for ys in ids]
        for name, (ids, _) in drawn.items()
    }
    cross = [(i, samples + j) for i in range(samples) for j in range(samples)]
    P = oracle(
        [prompt_text(p) for p in prompts[start:stop]],
        [a + b for a, b in zip(texts["policy"], texts["baseline"], strict=True)],
        pairs=cross,
    )
    wins = torch.nanmean(P[:, :samples, samples:].reshape(n, -1), dim=-1)
    return [
        {
            "index": start + x,
            "prompt": prompt_text(prompts[start + x]),
            "win_rate": float(wins[x]),
            "kl": float(kl[x]),
            "policy": texts["policy"][x],
            "baseline": texts["baseline"][x],
            **{
                f"{name}_{key}": [len(y) for y in ids[x]] if key == "lengths" else cut[x]
                for name, (ids, cut) in drawn.items()
                for key in ("lengths", "truncated")
            },
        }
        for x in range(n)
    ]


def _summary(rows: list[dict[str, Any]], samples: int) -> dict[str, float]:
    """The summary table of :func:`evaluate` from every prompt's row."""
    win, win_lo, win_hi = mean_interval([r["win_rate"] for r in rows], bounds=(0.0, 1.0))
    kl_mean, kl_lo, kl_hi = mean_interval([r["kl"] for r in rows])

    def mean_of(key: str) -> float:
        return float(np.mean([v for r in rows for v in r[key]]))

    return {
        "win_rate": win, "win_rate_lo": win_lo, "win_rate_hi": win_hi,
        "kl": kl_mean, "kl_lo": kl_lo, "kl_hi": kl_hi,
        "length": mean_of("policy_lengths"), "baseline_length": mean_of("baseline_lengths"),
        "eos_rate": 1.0 - mean_of("policy_truncated"),
        "baseline_eos_rate": 1.0 - mean_of("baseline_truncated"),
        "prompts": float(len(rows)), "samples": float(samples),
    }  # fmt: skip


def caveats(summary: dict[str, float]) -> list[str]:
    """Lines the report adds where a number is easy to misread (too few prompts; a KL
    estimate below zero, which only sampling noise can give)."""
    out = []
    if summary["prompts"] < FEW_PROMPTS:
        out.append(
            f"Only {int(summary['prompts'])} prompts: the intervals are rough (the t-interval "
            f"assumes more; use {FEW_PROMPTS} or more prompts for a win rate to rely on)."
        )
    if summary["kl"] < 0:
        out.append(
            f"The KL estimate {summary['kl']:.3f} is below zero: KL is never negative, so this "
            "is sampling noise around a small KL (the mean of log-ratios over the policy's "
            "samples is unbiased but not non-negative); read the interval, not the sign."
        )
    return [*(f"> {line}" for line in out), *([""] if out else [])]


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
        f"[{s['kl_lo']:.3f}, {s['kl_hi']:.3f}] |"
        if math.isfinite(s["kl"])
        else "| KL(policy \\|\\| baseline) | not estimated (Best-of-N: no log-probability) | |",
        f"| response length (tokens), policy / baseline | {s['length']:.1f} / "
        f"{s['baseline_length']:.1f} | |",
        f"| EOS rate, policy / baseline | {s['eos_rate']:.2f} / {s['baseline_eos_rate']:.2f} | |",
        "",
        *caveats(s),
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
