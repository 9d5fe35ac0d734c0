"""Throughput of WIND's trainer against TRL's OnlineDPOTrainer and a floor loop, at equal work.

    python benchmarks/llm_throughput.py --out docs/benchmarks              # CPU, ~40 minutes
    python benchmarks/llm_throughput.py --out OUT --resume                 # go on after a kill
    python benchmarks/llm_throughput.py --out OUT --device cuda \\
        --random-init FOLDER --preference heuristic                        # a GPU, no weights

Every contender runs on the same model, precision, prompts (the built-in train split, in order),
16 samples per step and sampling temperature, and generates exactly ``--max-new-tokens`` tokens
per sample (``min_new_tokens = max_new_tokens``, so no contender stops early: equal work), each in
its own process (so peak memory is its own):

* ``wind``: ``WINDTrainer`` (wind-squared, beta 0.1: reference log-probs every round), 4 prompts
  x K = 4 samples per step, all 6 pairs of each prompt queried, each prompt run once for its K
  responses in every log-prob pass (``share_prompt_cache``, issue 17).
* ``wind-unshared``: the same with ``share_prompt_cache: false`` (every prompt recomputed for
  each of its K responses): the trainer before issue 17, measured in the same run.
* ``trl``: TRL 1.16's ``OnlineDPOTrainer`` (``trl.experimental``; ``pip install trl==1.16.0``),
  8 prompts x 2 samples per step, one pair queried per prompt, gradient checkpointing off as in
  ``wind``; ``trl-default`` is the same with TRL's default (gradient checkpointing on, which also
  turns its KV cache off while generating).
* ``floor``: a plain loop that only calls ``generate`` (4 prompts x 4 samples) and one
  forward/backward of the summed response log-probs computed as the trainer computes them
  (response positions only, each prompt once) with an AdamW step: no reference, no oracle.
* ``wind:OBJECTIVE``: ``wind`` with another objective and its hyperparameters of
  ``benchmarks/llm_results.py`` (J-BOND: 4 prompts x 3 samples): each method's cost per round.

Each contender runs ``--warmup`` steps (not measured) and then ``--steps`` measured steps, and the
whole set is repeated ``--reps`` times, interleaved (repetition r runs the contenders in an order
rotated by r). Reported per contender: the median over repetitions of samples/s, generated
tokens/s, peak memory (the process's peak RSS on CPU; ``torch.cuda.max_memory_allocated`` on a
GPU) and the time breakdown (generate / reference / oracle / train / other = wall minus those),
with the range; ratios are taken within each repetition (both contenders measured in it) and
reported as their median and range. WIND's padded fraction of its log-prob passes is computed
from its rounds, prompts shared and not. Each finished run is appended to
``llm_throughput.runs.jsonl`` at once (``--resume`` skips the runs it holds); the summary goes to
``llm_throughput.json`` and ``llm_throughput.md`` in ``--out`` (``--tag`` names them, e.g.
``--tag gpu``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llm_results import (  # each objective's hyperparameters in the sweep
    HYPER,
    WIND_METHODS,
    trl_reward,
)

ROOT = Path(__file__).resolve().parents[1]

CONTENDERS = ("wind", "wind-unshared", "trl", "trl-default", "floor")
CHOICES = (*CONTENDERS, *(f"wind:{m}" for m in WIND_METHODS))
PHASES = ("generate", "reference", "oracle", "train")
PROMPTS, K = 4, 4  # 16 samples per step for every contender


def load(cli: argparse.Namespace, need_ref: bool = True) -> tuple[Any, Any, Any]:
    """(model, reference or None, tokenizer): SmolLM2 converted offline, or a random init."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from windalign.lm.loading import resolve_model

    folder = cli.random_init or resolve_model(cli.model)
    tokenizer = AutoTokenizer.from_pretrained(folder)

    def build() -> Any:
        if cli.random_init:
            torch.manual_seed(0)
            config = AutoConfig.from_pretrained(folder)
            return AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)

    model = build().to(cli.device)
    ref = build().to(cli.device).eval() if need_ref else None
    return model, ref, tokenizer


def common_args(cli: argparse.Namespace, out: str) -> dict[str, Any]:
    return {
        "output_dir": out,
        "learning_rate": 2e-5,
        "lr_scheduler_type": "constant",
        "max_grad_norm": 1.0,
        "max_steps": cli.warmup + cli.steps,
        "seed": 0,
        "use_cpu": cli.device == "cpu",
        "bf16": cli.device != "cpu",
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
    }


class Clock:
    """Wall time and phase seconds of the measured steps (after ``warmup``)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.phases = warmup, dict.fromkeys(PHASES, 0.0)
        self.start = self.end = 0.0
        self.samples = self.queries = self.tokens = 0.0

    def sync(self) -> None:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    def measuring(self, step: int) -> bool:
        return step >= self.warmup  # steps counted from 0 before they run

    def mark_start(self) -> None:
        self.sync()
        self.start = time.perf_counter()

    def mark_end(self) -> None:
        self.sync()
        self.end = time.perf_counter()


def fixed_length(cli: argparse.Namespace) -> None:
    """Every sampler of this process generates exactly ``max_new_tokens`` tokens (EOS masked
    until then): ``rollout.sampling_config`` with ``min_new_tokens = max_new_tokens``."""
    if not cli.fixed_length:
        return
    from windalign.llm import rollout

    original = rollout.sampling_config

    def fixed(*args: Any, **kw: Any) -> Any:
        config = original(*args, **kw)
        config.min_new_tokens = config.max_new_tokens
        return config

    rollout.sampling_config = fixed


def padding(prompts: list[list[int]], responses: list[list[int]], k: int) -> dict[str, float]:
    """Token positions of one log-prob pass over a round's rows, prompts shared and not.

    Unshared: ``n`` rows of ``Lp + R`` positions (each prompt K times); shared: ``U`` prompts of
    ``Lp`` then ``n`` responses of ``R`` (``windalign.lm.tokens.pack``)."""
    lp, r = max(map(len, prompts)), max(map(len, responses))
    n, u = len(responses), len(prompts)
    prompt_tokens, response_tokens = sum(map(len, prompts)), sum(map(len, responses))
    unshared = n * (lp + r)
    shared = u * lp + n * r
    return {
        "positions_unshared": float(unshared),
        "positions_shared": float(shared),
        "padded_unshared": 1 - (k * prompt_tokens + response_tokens) / unshared,
        "padded_shared": 1 - (prompt_tokens + response_tokens) / shared,
    }


def bench_wind(cli: argparse.Namespace, tmp: str, objective: str, share: bool) -> dict[str, Any]:
    from transformers import TrainerCallback

    from windalign.llm import WINDConfig, WINDTrainer

    hyper = {"num_samples": K, **HYPER[objective]}
    # the trainer builds no reference without beta or a Nash-MD mixture: do not load one
    model, ref, tokenizer = load(cli, hyper.get("beta", 0) > 0 or hyper.get("alpha", 0) > 0)
    args = WINDConfig(
        **common_args(cli, tmp),
        objective=objective,
        **hyper,
        temperature=0.7,
        max_new_tokens=cli.max_new_tokens,
        per_device_train_batch_size=PROMPTS,
        share_prompt_cache=share,
    )
    snap: dict[str, dict[str, float]] = {}
    pads: list[dict[str, float]] = []

    class Snapshot(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step in (cli.warmup, cli.warmup + cli.steps):
                trainer.accelerator.wait_for_everyone()
                Clock(0).sync()
                snap[str(state.global_step)] = {**trainer.counters, "t": time.perf_counter()}
            rnd = trainer.round
            if state.global_step > cli.warmup and rnd is not None:
                flat = [y for ys in rnd.responses for y in ys]
                pads.append(padding(rnd.prompt_ids, flat, len(rnd.responses[0])))

    trainer = WINDTrainer(
        model,
        ref_model=ref,
        args=args,
        preference=cli.preference,
        train_dataset="builtin:train",
        processing_class=tokenizer,
        callbacks=[Snapshot()],
    )
    trainer.train()
    a, b = snap[str(cli.warmup)], snap[str(cli.warmup + cli.steps)]
    d = {k: b[k] - a[k] for k in b}
    phases = {p: d[f"seconds_{p}"] for p in ("generate", "reference", "oracle", "train")}
    phases["reference"] += d["seconds_old_logprobs"]
    result = _result(d["t"], d["samples"], d["queries"], d["tokens"], phases)
    result["padding"] = {k: sum(p[k] for p in pads) / len(pads) for k in pads[0]}
    return result


def bench_trl(cli: argparse.Namespace, tmp: str, checkpointing: bool) -> dict[str, Any]:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    from windalign.llm.data import builtin_prompts
    from windalign.preferences import as_oracle

    model, ref, tokenizer = load(cli)
    oracle = as_oracle(cli.preference)
    clock = Clock(cli.warmup)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]}
                              for p in builtin_prompts("train")])  # fmt: skip

    class Timed(OnlineDPOTrainer):
        """TRL's trainer with its phases timed (nothing else changed)."""

        def _timed(self, phase: str, fn: Any, *args: Any, **kw: Any) -> Any:
            if not clock.measuring(self.state.global_step):
                return fn(*args, **kw)
            clock.sync()
            start = time.perf_counter()
            out = fn(*args, **kw)
            clock.sync()
            clock.phases[phase] += time.perf_counter() - start
            return out

        def _generate(self, model: Any, prompts: Any, images: Any = None) -> Any:
            out = self._timed("generate", super()._generate, model, prompts, images)
            if clock.measuring(self.state.global_step):
                clock.samples += out[2].shape[0]
                clock.queries += out[2].shape[0] // 2
                clock.tokens += float(out[3].sum())
            return out

        def _forward(self, model: Any, *args: Any, **kw: Any) -> Any:
            if model is self.ref_model:
                return self._timed("reference", super()._forward, model, *args, **kw)
            return super()._forward(model, *args, **kw)

        def _calculate_rewards_from_functions(self, *args: Any, **kw: Any) -> Any:
            return self._timed("oracle", super()._calculate_rewards_from_functions, *args, **kw)

    class Steps(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == cli.warmup:
                clock.mark_start()
            if state.global_step == cli.warmup + cli.steps:
                clock.mark_end()

    args = OnlineDPOConfig(
        **common_args(cli, tmp),
        per_device_train_batch_size=PROMPTS * K // 2,
        max_new_tokens=cli.max_new_tokens,
        temperature=0.7,
        top_k=0,
        top_p=1.0,
        beta=[0.1],
        gradient_checkpointing=checkpointing,
        generation_kwargs={"min_new_tokens": cli.max_new_tokens} if cli.fixed_length else None,
    )
    trainer = Timed(
        model=model,
        ref_model=ref,
        reward_funcs=trl_reward(oracle),
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[Steps()],
    )
    trainer.train()
    wall = clock.end - clock.start
    phases = dict(clock.phases)
    # train = everything else a step does (policy forward/backward, loss, optimizer step), so
    # TRL has no separate "other"
    phases["train"] = max(wall - sum(phases.values()), 0.0)
    result = _result(wall, clock.samples, clock.queries, clock.tokens, phases)
    result["note"] = "train = the rest of TRL's step (its overhead cannot be told apart)"
    return result


def bench_floor(cli: argparse.Namespace) -> dict[str, Any]:
    import torch

    from windalign.llm import rollout
    from windalign.llm.data import builtin_prompts, encode_prompts
    from windalign.lm import tokens

    model, _, tokenizer = load(cli, need_ref=False)
    tokenizer.padding_side = "left"
    eos = rollout.eos_token_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    config = rollout.sampling_config(eos, pad, temperature=0.7, max_new_tokens=cli.max_new_tokens)
    prompts = encode_prompts(tokenizer, builtin_prompts("train"), 256, "left")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    autocast = torch.autocast(cli.device, dtype=torch.bfloat16, enabled=cli.device != "cpu")
    clock = Clock(cli.warmup)
    torch.manual_seed(0)
    for step in range(cli.warmup + cli.steps):
        if step == cli.warmup:
            clock.mark_start()
        batch = prompts[step * PROMPTS : (step + 1) * PROMPTS]
        t0 = time.perf_counter()
        model.eval()
        with autocast:
            ids, _ = rollout.generate(model, batch, K, config, eos)
        clock.sync()
        t1 = time.perf_counter()
        model.train()
        flat_p = [p for p in batch for _ in range(K)]
        flat_r = [r for rs in ids for r in rs]
        packed = tokens.pack(flat_p, flat_r, pad, cli.device, share_prompts=True)
        with autocast:
            loss = -tokens.sequence_logprobs(model, packed, 0.7).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.sync()
        t2 = time.perf_counter()
        if clock.measuring(step):
            clock.phases["generate"] += t1 - t0
            clock.phases["train"] += t2 - t1
            clock.samples += len(flat_r)
            clock.tokens += sum(map(len, flat_r))
    clock.mark_end()
    return _result(clock.end - clock.start, clock.samples, 0.0, clock.tokens, clock.phases)


def _result(
    wall: float, samples: float, queries: float, tokens: float, phases: dict[str, float]
) -> dict[str, Any]:
    seconds = {p: float(phases.get(p, 0.0)) for p in PHASES}
    seconds["other"] = max(wall - sum(seconds.values()), 0.0)
    return {
        "wall_seconds": wall,
        "samples": samples,
        "queries": queries,
        "samples_per_second": samples / wall,
        "queries_per_second": queries / wall,
        "tokens_per_second": tokens / wall,
        "tokens_per_sample": tokens / samples,
        "seconds": seconds,
    }


def peak_memory_gib(device: str) -> float:
    if device != "cpu":
        import torch

        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def child(cli: argparse.Namespace) -> None:
    """Run one contender in this process and write its result as JSON to ``--result``."""
    import torch

    torch.manual_seed(0)
    fixed_length(cli)
    with tempfile.TemporaryDirectory(prefix="wind-throughput-") as tmp:
        if cli.contender.startswith("wind"):
            objective = cli.contender.partition(":")[2] or "wind-squared"
            result = bench_wind(cli, tmp, objective, share=cli.contender != "wind-unshared")
        elif cli.contender in ("trl", "trl-default"):
            result = bench_trl(cli, tmp, checkpointing=cli.contender == "trl-default")
        else:
            result = bench_floor(cli)
    result["peak_memory_gib"] = peak_memory_gib(cli.device)
    Path(cli.result).write_text(json.dumps(result))


def _stats(values: list[float]) -> dict[str, float]:
    """Median and range (an even count: the mean of the two middle values)."""
    v = sorted(values)
    mid = len(v) // 2
    median = v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2
    return {"median": median, "min": v[0], "max": v[-1], "n": len(v)}


BASELINES = ("trl", "trl-default", "floor", "wind-unshared")


def summarize(runs: list[dict[str, Any]], contenders: list[str]) -> dict[str, Any]:
    """Per contender: the median and range over repetitions, and the ratios to each baseline
    taken within each repetition (both measured in it)."""
    by = {c: {r["rep"]: r for r in runs if r["contender"] == c and "error" not in r}
          for c in contenders}  # fmt: skip
    out: dict[str, Any] = {}
    for c in contenders:
        reps = by[c]
        errors = [r["error"] for r in runs if r["contender"] == c and "error" in r]
        if not reps:
            out[c] = {"error": errors[-1] if errors else "not run"}
            continue
        rows = list(reps.values())
        entry: dict[str, Any] = {"errors": len(errors)}
        for key in ("samples_per_second", "tokens_per_second", "tokens_per_sample",
                    "queries_per_second", "peak_memory_gib"):  # fmt: skip
            entry[key] = _stats([r[key] for r in rows])
        entry["share"] = {p: _stats([r["seconds"][p] / r["wall_seconds"] for r in rows])["median"]
                          for p in rows[0]["seconds"]}  # fmt: skip
        if "padding" in rows[0]:
            entry["padding"] = {k: _stats([r["padding"][k] for r in rows])["median"]
                                for k in rows[0]["padding"]}  # fmt: skip
        entry["ratio"] = {}
        for base in BASELINES:
            paired = [rep for rep in reps if rep in by.get(base, {})]
            if base != c and paired:
                entry["ratio"][base] = {
                    key: _stats([reps[rep][key] / by[base][rep][key] for rep in paired])
                    for key in ("samples_per_second", "peak_memory_gib")
                }
        out[c] = entry
    return out


def _cell(s: dict[str, float], fmt: str = ".2f") -> str:
    return f"{s['median']:{fmt}} [{s['min']:{fmt}}, {s['max']:{fmt}}]"


def _ratio(entry: dict[str, Any], base: str, key: str = "samples_per_second") -> str:
    r = entry["ratio"].get(base, {}).get(key)
    if r is None:
        return "n/a"
    mark = " ~" if r["min"] <= 1 <= r["max"] else ""  # the range holds 1: no difference shown
    few = f" (n={r['n']})" if r["n"] < 3 else ""  # too few repetitions for a range to mean much
    return _cell(r) + mark + few


def table(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = [
        f"# LLM throughput at equal work ({meta['device']})",
        "",
        f"`{meta['command']}`",
        "",
        f"{meta['model']}; {meta['precision']}; torch {meta['torch']}; 16 samples per step "
        "(WIND and the floor: 4 prompts x 4, `wind:jbond` 4 x 3; TRL: 8 prompts x 2) from the "
        "same prompts; "
        + (f"every sample exactly {meta['max_new_tokens']} new tokens (min_new_tokens = "
           "max_new_tokens)" if meta["fixed_length"]
           else f"up to {meta['max_new_tokens']} new tokens")
        + f" at temperature 0.7; oracle `{meta['preference']}`; {meta['warmup']} warmup "
        f"step(s), then {meta['steps']} measured steps per contender, each in its own process; "
        f"{meta['reps']} repetitions planned, interleaved (rotated order; `runs`: measured). "
        "Cells: median [min, max] over the repetitions; ratios are taken within each "
        "repetition, then summarized; `~` marks a ratio whose range holds 1 (no difference "
        "shown), `(n=...)` one from fewer than 3 repetitions. With 3 repetitions a range that "
        "excludes 1 still happens 1 time in 4 by chance when nothing differs: read a ratio as "
        "a difference only when its whole range is far from 1.",
        "",
        "| contender | runs | samples/s | tokens/s | x TRL | x TRL defaults | x floor | "
        "x unshared | peak memory (GiB) | memory x TRL |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for name, e in summary.items():
        if "error" in e:
            what = "not run yet" if e["error"] == "not run" else f"failed: {e['error'][:80]}"
            lines.append(f"| {name} | 0 | {what} |" + " |" * 7)
            continue
        lines.append(
            f"| {name} | {e['samples_per_second']['n']} | {_cell(e['samples_per_second'])} | "
            f"{_cell(e['tokens_per_second'], '.1f')} "
            f"| {_ratio(e, 'trl')} | {_ratio(e, 'trl-default')} | {_ratio(e, 'floor')} | "
            f"{_ratio(e, 'wind-unshared')} | {_cell(e['peak_memory_gib'])} | "
            f"{_ratio(e, 'trl', 'peak_memory_gib')} |"
        )
    lines += ["", "Where the time goes (median share of each contender's measured wall time):", "",
              "| contender | generate | reference | oracle | train | other | tokens per sample |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, e in summary.items():
        if "error" not in e:
            shares = " | ".join(f"{e['share'][k]:.0%}" for k in (*PHASES, "other"))
            lines.append(f"| {name} | {shares} | {e['tokens_per_sample']['median']:.1f} |")
    pads = {n: e["padding"] for n, e in summary.items() if "padding" in e}
    if pads:
        lines += ["", "WIND's log-prob passes over a round (reference, old log-probs, training "
                  "forward; the median round): token positions computed and the share of them "
                  "that is padding, each prompt once (shared) or K times (unshared):", "",
                  "| contender | positions shared / unshared | padded, shared | padded, unshared |",
                  "|---|---|---|---|"]  # fmt: skip
        for name, p in pads.items():
            lines.append(
                f"| {name} | {p['positions_shared'] / p['positions_unshared']:.2f} | "
                f"{p['padded_shared']:.0%} | {p['padded_unshared']:.0%} |"
            )
    lines += [
        "",
        "WIND's `reference` column includes its old-log-prob pass; TRL's `train` is the rest of "
        "its step (policy forward/backward, loss, decoding for the reward, optimizer step), so "
        "its `other` is 0 by construction. Queries: WIND compares all 6 pairs of a prompt's 4 "
        "samples, TRL one pair per prompt; with a reward-model oracle both score every sample "
        "once, so samples/s is the like-for-like rate (at fixed length tokens/s gives the same "
        "ratios). WIND and TRL differ in design as well as implementation at the same 16 "
        "samples per step (WIND: 4 prompts x 4 samples, each prompt shared by its 4; TRL: 8 "
        "prompts x 2): `x TRL` is the cost per sample of each trainer as a user runs it. Peak "
        "memory on CPU is the process's peak resident set (policy, reference where the method "
        "uses one, optimizer state, activations, the oracle's model, Python and the libraries "
        "it imports: TRL's and datasets' too); the floor has no reference and no oracle.",
    ]
    return "\n".join(lines) + "\n"


def _read_runs(path: Path, settings: dict[str, Any], resume: bool) -> list[dict[str, Any]]:
    """The runs already in ``path`` (``--resume``: refused if they were measured otherwise)."""
    if not resume or not path.is_file():
        path.write_text(json.dumps({"settings": settings}) + "\n")
        return []
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    if not lines or lines[0].get("settings") != settings:
        raise SystemExit(f"{path} holds runs measured with other settings "
                         f"({lines[0].get('settings') if lines else 'none'}); drop --resume "
                         "to start over")  # fmt: skip
    return lines[1:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    p.add_argument("--tag", default="", help="suffix of the output names, e.g. gpu")
    p.add_argument(
        "--contenders",
        nargs="+",
        default=list(CONTENDERS),
        choices=CHOICES,
        metavar="NAME",
        help=f"any of {', '.join(CHOICES)} (wind = wind:wind-squared)",
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--model", default="smollm2", help="model alias or folder")
    p.add_argument("--random-init", help="a folder with config + tokenizer: random weights")
    p.add_argument("--preference", default="offline", help="oracle name (offline, heuristic)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument(
        "--fixed-length",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="every sample exactly --max-new-tokens tokens (equal work; default)",
    )
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--reps", type=int, default=3, help="repetitions, interleaved")
    p.add_argument("--resume", action="store_true", help="keep the finished runs of --out")
    p.add_argument("--summarize", action="store_true",
                   help="only write the summary of the runs --out holds (no new runs)")  # fmt: skip
    p.add_argument("--contender", choices=CHOICES, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    cli = p.parse_args(argv)
    if cli.warmup < 1 or cli.steps < 1 or cli.reps < 1:
        p.error("--warmup, --steps and --reps must be >= 1 (the first step allocates and is not "
                "measured)")  # fmt: skip
    if cli.contender:
        child(cli)
        return 0
    if any(c.startswith("trl") for c in cli.contenders):
        try:
            import trl  # noqa: F401
        except ImportError:
            p.error("the TRL contenders need trl: pip install trl==1.16.0 (or --contenders wind "
                    "floor)")  # fmt: skip
    import torch

    argv = list(argv if argv is not None else sys.argv[1:])
    cpu = f"CPU, {os.cpu_count()} cores"
    meta = {
        "device": torch.cuda.get_device_name(0) if cli.device != "cpu" else cpu,
        "command": "python benchmarks/llm_throughput.py "
                   + " ".join(a for a in argv if a not in ("--resume", "--summarize")),
        "model": ("SmolLM2-135M-Instruct architecture, random weights" if cli.random_init
                  else "SmolLM2-135M-Instruct"),
        "precision": "fp32" if cli.device == "cpu" else "fp32 weights, bf16 autocast",
        "preference": cli.preference, "max_new_tokens": cli.max_new_tokens,
        "fixed_length": cli.fixed_length, "warmup": cli.warmup, "steps": cli.steps,
        "reps": cli.reps, "torch": torch.__version__,
    }  # fmt: skip
    cli.out.mkdir(parents=True, exist_ok=True)
    stem = "llm_throughput" + (f"_{cli.tag}" if cli.tag else "")
    log = cli.out / f"{stem}.runs.jsonl"
    settings = {k: v for k, v in meta.items() if k != "command"}
    runs = _read_runs(log, settings, cli.resume or cli.summarize)
    done = {(r["rep"], r["contender"]) for r in runs}
    order = list(cli.contenders)
    for rep in range(0 if cli.summarize else cli.reps):
        for name in order[rep % len(order) :] + order[: rep % len(order)]:
            if (rep, name) in done:
                continue
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                cmd = [sys.executable, __file__, *(a for a in argv if a != "--resume"),
                       "--contender", name, "--result", f.name]  # fmt: skip
                print(f"repetition {rep + 1}/{cli.reps}: {name} ...", flush=True)
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
                    result = {"error": lines[-1][:300]}
                    print(proc.stderr[-3000:], file=sys.stderr)
                else:
                    result = json.loads(Path(f.name).read_text())
            run = {"rep": rep, "contender": name, **result}
            with log.open("a") as out:  # one line per finished run, at once
                out.write(json.dumps(run) + "\n")
                out.flush()
                os.fsync(out.fileno())
            runs.append(run)
            print(f"{name}: {json.dumps(result)}", flush=True)
    summary = summarize(runs, order)
    from windalign.rundir import atomic_write, atomic_write_json

    atomic_write_json(cli.out / f"{stem}.json", {"meta": meta, "results": summary})
    atomic_write(cli.out / f"{stem}.md", table(summary, meta))
    print(table(summary, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
