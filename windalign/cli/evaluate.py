"""``wind evaluate``: held-out win rate of a model against a baseline (THEORY.md 8).

    wind evaluate --model runs/demo-train/model --baseline smollm2 [--prompts builtin:heldout]

Samples ``--samples`` responses per prompt from both models (same temperature and length), judges
every cross pair with the preference oracle, and reports the win rate with a 95% interval over
prompts, ``KL(model || baseline)`` estimated on the model's samples, response lengths and EOS
rates. Writes ``report.md``, ``results.json`` (summary and per-prompt rows) and ``status.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "evaluate",
        help="held-out win rate of a model against a baseline, with KL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="model folder (or adapter folder, or alias)")
    p.add_argument("--baseline", required=True, help="baseline folder or alias (e.g. smollm2)")
    p.add_argument("--prompts", default="builtin:heldout", help="builtin:heldout or a file")
    p.add_argument("--max-prompts", type=int, default=None, help="use the first N prompts")
    p.add_argument("--preference", default="offline", help="oracle name or module:function")
    p.add_argument("--samples", type=int, default=2, help="responses per prompt and model")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (> 0)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens per response at most")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generate call")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--out", default="runs/evaluate", help="run directory")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.set_defaults(func=run)
    return p


def _check(args: argparse.Namespace) -> None:
    for name in ("samples", "max_new_tokens", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} = {getattr(args, name)} must be >= 1")
    if not args.temperature > 0:
        raise ValueError(f"--temperature = {args.temperature} must be > 0")
    if args.max_prompts is not None and args.max_prompts < 1:
        raise ValueError(f"--max-prompts = {args.max_prompts} must be >= 1")


def load_policy(name: str) -> tuple[object, object]:
    """``(model, tokenizer)`` from a model folder, a LoRA adapter folder or an alias."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from windalign.llm.models import resolve_model

    path = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if (Path(path) / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        return model.merge_and_unload(), tokenizer
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), tokenizer


def run(args: argparse.Namespace) -> int:
    """Check the options, load both models, evaluate, write the run directory."""
    _check(args)
    from windalign.llm.data import load_prompts
    from windalign.llm.evaluate import evaluate, report
    from windalign.preferences import as_oracle
    from windalign.rundir import RunDir, dumps_json

    prompts = load_prompts(args.prompts)[: args.max_prompts]
    oracle = as_oracle(args.preference)
    with RunDir(args.out, command=getattr(args, "argv", None), overwrite=args.overwrite) as rd:
        model, tokenizer = load_policy(args.model)
        baseline, _ = load_policy(args.baseline)
        result = evaluate(
            model, baseline, tokenizer, prompts, oracle,
            samples=args.samples, temperature=args.temperature,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
        )  # fmt: skip
        title = f"`{args.model}` against `{args.baseline}` under `{oracle.name}`"
        rd.commit(
            {
                "results.json": dumps_json(
                    {"summary": result.summary, "prompts": result.per_prompt}
                ),
                "report.md": report(result, title),
            }
        )
    s = result.summary
    print(
        f"win rate {s['win_rate']:.3f} [{s['win_rate_lo']:.3f}, {s['win_rate_hi']:.3f}], "
        f"KL {s['kl']:.3f}, over {int(s['prompts'])} prompts; wrote {args.out}/"
    )
    return 0
