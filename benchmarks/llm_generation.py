"""What transformers offers to cut ``generate``'s per-token cost on this CPU, at equal work.

    python benchmarks/llm_generation.py --out docs/benchmarks          # CPU, ~15 minutes

One round of the trainer's sampling (the built-in train split's first prompts, ``--prompts`` x
``--k`` samples, temperature 0.7, exactly ``--max-new-tokens`` new tokens per sample: EOS masked
until then, so every variant does the same work) on SmolLM2-135M-Instruct in fp32, by:

* ``shared`` -- ``windalign.llm.rollout.generate`` as the trainer runs it: each prompt prefilled
  once, its dynamic KV cache repeated onto its K rows.
* ``unshared`` -- ``generate`` with the K rows of a prompt prefilled separately (dynamic cache).
* ``static`` -- ``generate`` with a static KV cache (``cache_implementation="static"``), no
  compilation. ``generate`` builds this cache itself, so it cannot start from a shared prefill:
  the static variants prefill every row, like ``unshared``, which is what to read them against.
* ``static-compiled`` -- the same with the decoding forward compiled by ``torch.compile``
  (``CompileConfig``; transformers compiles only on accelerators unless told to on every
  device). Compilation happens in the warmup calls and is reported apart.

Each variant runs ``--warmup`` calls (not measured), then ``--calls`` measured calls, in its own
process (so one variant's compiled graphs or allocator state do not help another); the set is
repeated ``--reps`` times with the order rotated. Reported: generated tokens/s per variant (median
and range over repetitions) and each variant's ratio to ``shared`` within a repetition. Also
checked: with the same seed, every variant draws from the same tempered distribution (its first
sampled tokens equal ``shared``'s).
Writes ``llm_generation.json`` and ``llm_generation.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VARIANTS = ("shared", "unshared", "static", "static-compiled")


def load(threads: int | None = None) -> tuple[Any, Any, list[list[int]], list[int]]:
    """``(model, tokenizer, prompts, eos_ids)``: SmolLM2 in fp32, the built-in train split's
    prompts encoded as the trainer encodes them (``threads``: torch's, when given)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from windalign.llm.data import encode_prompts, load_prompts
    from windalign.llm.rollout import eos_token_ids
    from windalign.lm.loading import resolve_model

    if threads is not None:
        torch.set_num_threads(threads)
    folder = resolve_model("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    prompts = encode_prompts(tokenizer, load_prompts("builtin:train", "prompt"), 256)
    return model, tokenizer, prompts, eos_token_ids(model, tokenizer)


def child(cli: argparse.Namespace) -> dict[str, Any]:
    """One variant: warmup, then the measured calls; tokens/s and the first tokens drawn."""
    import torch
    from transformers import CompileConfig

    from windalign.llm import rollout

    model, tokenizer, prompts, eos = load(cli.threads)
    config = rollout.sampling_config(eos, tokenizer.pad_token_id, temperature=0.7,
                                     max_new_tokens=cli.max_new_tokens)  # fmt: skip
    config.min_new_tokens = cli.max_new_tokens  # equal work: no variant stops early
    variant = cli.child
    share = variant == "shared"
    if variant.startswith("static"):
        config.cache_implementation = "static"
    if variant == "static-compiled":
        config.compile_config = CompileConfig(fullgraph=False)
        config.compile_config._compile_all_devices = True  # transformers' switch for CPUs
    batch = prompts[: cli.prompts]

    def call(seed: int) -> list[list[list[int]]]:
        torch.manual_seed(seed)
        with torch.no_grad():
            return rollout.generate(model, batch, cli.k, config, eos, share_prompts=share)[0]

    start = time.perf_counter()
    for i in range(cli.warmup):
        call(1000 + i)
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(cli.calls):
        call(i)
    seconds = time.perf_counter() - start
    first = call(12345)
    tokens = cli.calls * cli.prompts * cli.k * cli.max_new_tokens
    return {"variant": variant, "tokens_per_second": tokens / seconds, "seconds": seconds,
            "warmup_seconds": warmup, "first": [r[:4] for rows in first for r in rows]}  # fmt: skip


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    base = next((r["first"] for r in runs if r["variant"] == "shared"), None)
    for v in VARIANTS:
        mine = [r for r in runs if r["variant"] == v]
        if not mine:
            continue
        rates = [r["tokens_per_second"] for r in mine]
        ratios = [r["tokens_per_second"] / s["tokens_per_second"] for r in mine
                  for s in runs if s["variant"] == "shared" and s["rep"] == r["rep"]]  # fmt: skip
        out[v] = {
            "runs": len(mine),
            "tokens_per_second": [statistics.median(rates), min(rates), max(rates)],
            "x_shared": [statistics.median(ratios), min(ratios), max(ratios)] if ratios else None,
            "warmup_seconds": statistics.median(r["warmup_seconds"] for r in mine),
            "same_first_tokens": base is not None and mine[0]["first"] == base,
        }
    return out


def table(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    cell = lambda s: f"{s[0]:.2f} [{s[1]:.2f}, {s[2]:.2f}]"  # noqa: E731
    lines = [
        "# Generation on this CPU: the trainer's sampler against transformers' static cache and "
        "torch.compile", "",
        f"`{meta['command']}`: {meta['description']}", "",
        "| variant | runs | tokens/s | x shared | warmup s (compile) | same first tokens |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for v, e in summary.items():
        ratio = cell(e["x_shared"]) if e["x_shared"] else "n/a"
        same = "yes" if e["same_first_tokens"] else "no"
        lines.append(f"| {v} | {e['runs']} | {cell(e['tokens_per_second'])} | {ratio} | "
                     f"{e['warmup_seconds']:.0f} | {same} |")  # fmt: skip
    lines += [
        "",
        "The static variants prefill every row (`generate` builds the static cache "
        "itself, so it cannot start from the shared prefill): read them against `unshared`.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/llm-generation"))
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--prompts", type=int, default=4, help="prompts per call")
    p.add_argument("--k", type=int, default=4, help="samples per prompt")
    p.add_argument("--max-new-tokens", type=int, default=32, help="new tokens of every sample")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured calls (compilation)")
    p.add_argument("--calls", type=int, default=5, help="measured calls per run")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    cli = p.parse_args(argv)
    if cli.child:
        print(json.dumps(child(cli)))
        return 0
    runs = []
    for rep in range(cli.reps):
        order = cli.variants[rep % len(cli.variants) :] + cli.variants[: rep % len(cli.variants)]
        for v in order:
            done = subprocess.run([sys.executable, __file__, *argv, "--child", v],
                                  capture_output=True, text=True)  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"{v} failed:\n{done.stderr[-3000:]}")
            row = json.loads(done.stdout.strip().splitlines()[-1]) | {"rep": rep}
            print(f"rep {rep} {v}: {row['tokens_per_second']:.1f} tokens/s "
                  f"(warmup {row['warmup_seconds']:.0f} s)", flush=True)  # fmt: skip
            runs.append(row)
    import torch

    command = " ".join(["python benchmarks/llm_generation.py", *argv])
    meta = {"command": command, "description": (
        f"SmolLM2-135M-Instruct, fp32, torch {torch.__version__}, {cli.threads} threads; "
        f"{cli.prompts} prompts x {cli.k} samples per call, exactly {cli.max_new_tokens} new "
        f"tokens each, temperature 0.7; {cli.warmup} warmup call(s), then {cli.calls} measured "
        f"calls per run, each variant in its own process, {cli.reps} repetitions with the order "
        "rotated. Cells: median [min, max] over repetitions; `x shared` is taken within each "
        "repetition. `same first tokens`: with the same seed the variant drew the same first 4 "
        "tokens of every sample as `shared` (the same tempered sampler; the compiled or static "
        "forward can change a draw only through float rounding of the logits)."
    )}  # fmt: skip
    summary = summarize(runs)
    cli.out.mkdir(parents=True, exist_ok=True)
    (cli.out / "llm_generation.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1) + "\n"
    )
    (cli.out / "llm_generation.md").write_text(table(summary, meta))
    print(table(summary, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
