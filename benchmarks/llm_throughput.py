"""Throughput of WIND's trainer against TRL's OnlineDPOTrainer and a plain floor loop.

    python benchmarks/llm_throughput.py --out docs/benchmarks              # CPU, ~10 minutes
    python benchmarks/llm_throughput.py --out OUT --device cuda \\
        --random-init FOLDER --preference heuristic                        # a GPU, no weights

Three contenders on the same model, precision, prompts per step, samples per step (16), new
tokens and sampling temperature, each in its own process (so peak memory is its own):

* ``wind``: ``WINDTrainer`` (wind-squared, beta 0.1: reference log-probs every round), 4 prompts
  x K = 4 samples per step, all 6 pairs of each prompt queried.
* ``trl``: TRL 1.16's ``OnlineDPOTrainer`` (``trl.experimental``; ``pip install trl==1.16.0``),
  8 prompts x 2 samples per step, one pair queried per prompt, gradient checkpointing off as in
  ``wind``; ``trl-default`` is the same with TRL's default (gradient checkpointing on).
* ``wind:OBJECTIVE``: the same with another objective and its hyperparameters of
  ``benchmarks/llm_results.py`` (J-BOND: 4 prompts x 3 samples): the clean cost per round of each
  method of docs/results-llm.md.
* ``floor``: a plain loop that only calls ``generate`` (4 prompts x 4 samples) and one
  forward/backward of the summed response log-probs with an AdamW step: no reference, no oracle.

Each runs ``--warmup`` steps (not measured) and then ``--steps`` measured steps. Reported per
contender: samples/s and queries/s over the measured steps' wall time, generated tokens/s, peak
memory (the process's peak RSS on CPU; ``torch.cuda.max_memory_allocated`` on a GPU), and the
time breakdown (generate / reference / oracle / train / other = wall minus those); ratios against
``trl`` and ``floor`` are from the same run. Writes ``llm_throughput.json`` and
``llm_throughput.md`` into ``--out`` (``--tag`` names them, e.g. ``--tag h100``).
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

CONTENDERS = ("wind", "trl", "trl-default", "floor")
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


def bench_wind(cli: argparse.Namespace, tmp: str, objective: str) -> dict[str, Any]:
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
    )
    snap: dict[str, dict[str, float]] = {}

    class Snapshot(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step in (cli.warmup, cli.warmup + cli.steps):
                trainer.accelerator.wait_for_everyone()
                Clock(0).sync()
                snap[str(state.global_step)] = {**trainer.counters, "t": time.perf_counter()}

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
    return _result(d["t"], d["samples"], d["queries"], d["tokens"], phases)


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
        seqs = [p + r for p, r in zip(flat_p, flat_r, strict=True)]
        width = max(map(len, seqs))
        x = torch.full((len(seqs), width), pad, device=cli.device)
        mask = torch.zeros_like(x)
        resp = torch.zeros_like(x, dtype=torch.bool)
        for i, (s, p) in enumerate(zip(seqs, flat_p, strict=True)):
            x[i, width - len(s) :] = torch.tensor(s, device=cli.device)
            mask[i, width - len(s) :] = 1
            resp[i, width - len(s) + len(p) :] = True
        with autocast:
            logits = model(input_ids=x, attention_mask=mask).logits[:, :-1].float()
        logp = logits.log_softmax(-1).gather(-1, x[:, 1:, None]).squeeze(-1)
        loss = -(logp * resp[:, 1:]).sum() / len(seqs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.sync()
        t2 = time.perf_counter()
        if clock.measuring(step):
            clock.phases["generate"] += t1 - t0
            clock.phases["train"] += t2 - t1
            clock.samples += len(seqs)
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
    with tempfile.TemporaryDirectory(prefix="wind-throughput-") as tmp:
        if cli.contender.startswith("wind"):
            objective = cli.contender.partition(":")[2] or "wind-squared"
            result = bench_wind(cli, tmp, objective)
        elif cli.contender in ("trl", "trl-default"):
            result = bench_trl(cli, tmp, checkpointing=cli.contender == "trl-default")
        else:
            result = bench_floor(cli)
    result["peak_memory_gib"] = peak_memory_gib(cli.device)
    Path(cli.result).write_text(json.dumps(result))


def table(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    trl, floor = results.get("trl"), results.get("floor")
    lines = [
        f"# LLM throughput ({meta['device']})",
        "",
        f"`{meta['command']}`",
        "",
        f"{meta['model']}; {meta['precision']}; 16 samples per step (WIND and the floor: 4 prompts "
        f"x 4, `wind:jbond` 4 x 3; TRL: 8 prompts x 2), {meta['max_new_tokens']} new tokens at "
        "temperature 0.7; "
        f"oracle `{meta['preference']}`; {meta['warmup']} warmup step(s), then {meta['steps']} "
        "measured steps per contender, each in its own process, one after another in one run.",
        "",
        "| contender | samples/s | x TRL | x floor | queries/s | tokens/s | peak memory (GiB) | "
        "x TRL | generate | reference | oracle | train | other |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def ratio(r: dict[str, Any], base: dict[str, Any] | None, key: str) -> str:
        return f"{r[key] / base[key]:.2f}" if base and base.get(key) else "n/a"

    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error'][:80]} |" + " |" * 11)
            continue
        shares = {k: v / r["wall_seconds"] for k, v in r["seconds"].items()}
        lines.append(
            f"| {name} | {r['samples_per_second']:.2f} | {ratio(r, trl, 'samples_per_second')} | "
            f"{ratio(r, floor, 'samples_per_second')} | {r['queries_per_second']:.2f} | "
            f"{r['tokens_per_second']:.1f} | {r['peak_memory_gib']:.2f} | "
            f"{ratio(r, trl, 'peak_memory_gib')} | "
            + " | ".join(f"{shares[k]:.0%}" for k in (*PHASES, "other"))
            + " |"
        )
    lines += [
        "",
        "Time columns: share of each contender's measured wall time. WIND's `reference` includes "
        "its old-log-prob pass; TRL's `train` is the rest of its step (policy forward/backward, "
        "loss, decoding for the reward, optimizer step). Queries: WIND compares all 6 pairs of a "
        "prompt's 4 samples, TRL one pair per prompt; with a reward-model oracle both score every "
        "sample once, so samples/s is the like-for-like rate. `trl-default` keeps TRL's default "
        "gradient checkpointing, which also turns the KV cache off while generating. Peak memory "
        "on CPU is the process's peak resident set (policy, reference where the method uses one, "
        "optimizer state, activations, the oracle's model, Python); the floor has no reference "
        "and no oracle.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    p.add_argument("--tag", default="", help="suffix of the output names, e.g. h100")
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
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--contender", choices=CHOICES, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    cli = p.parse_args(argv)
    if cli.warmup < 1 or cli.steps < 1:
        p.error("--warmup and --steps must be >= 1 (the first step allocates and is not measured)")
    if cli.contender:
        child(cli)
        return 0
    if any(c.startswith("trl") for c in cli.contenders):
        try:
            import trl  # noqa: F401
        except ImportError:
            p.error("the TRL contenders need trl: pip install trl==1.16.0 (or --contenders wind "
                    "floor)")  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    for name in cli.contenders:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]),
                   "--contender", name, "--result", f.name]  # fmt: skip
            print(f"{name} ...", flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
                results[name] = {"error": lines[-1][:300]}
                print(proc.stderr[-3000:], file=sys.stderr)
            else:
                results[name] = json.loads(Path(f.name).read_text())
            print(f"{name}: {json.dumps(results[name])}", flush=True)
    import torch

    cpu = f"CPU, {os.cpu_count()} cores"
    device = torch.cuda.get_device_name(0) if cli.device != "cpu" else cpu
    meta = {
        "device": device,
        "command": "python benchmarks/llm_throughput.py " + " ".join(argv or sys.argv[1:]),
        "model": ("SmolLM2-135M-Instruct architecture, random weights" if cli.random_init
                  else "SmolLM2-135M-Instruct"),
        "precision": "fp32" if cli.device == "cpu" else "fp32 weights, bf16 autocast",
        "preference": cli.preference, "max_new_tokens": cli.max_new_tokens,
        "warmup": cli.warmup, "steps": cli.steps, "torch": torch.__version__,
    }  # fmt: skip
    cli.out.mkdir(parents=True, exist_ok=True)
    stem = "llm_throughput" + (f"_{cli.tag}" if cli.tag else "")
    (cli.out / f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    (cli.out / f"{stem}.md").write_text(table(results, meta))
    print(table(results, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
