"""``wind evaluate``: held-out win rate of a model against a baseline (THEORY.md 8).

    wind evaluate --model runs/demo-train/model --baseline smollm2 [--prompts builtin:heldout]

Samples ``--samples`` responses per prompt from both models (same temperature and length), judges
every cross pair with the preference oracle, and reports the win rate with a 95% interval over
prompts, ``KL(model || baseline)`` estimated on the model's samples, response lengths and EOS
rates. Writes ``report.md``, ``results.json`` (summary and per-prompt rows) and ``status.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from windalign.cli.options import import_from_cwd
from windalign.lm.loading import DTYPES  # imports no torch


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "evaluate",
        help="held-out win rate of a model against a baseline, with KL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model", required=True, help="model folder (or adapter folder), alias or hub id"
    )
    p.add_argument(
        "--baseline", required=True, help="baseline folder, alias (e.g. smollm2) or hub id"
    )
    p.add_argument("--prompts", default="builtin:heldout", help="builtin:heldout or a file")
    p.add_argument("--max-prompts", type=int, default=None, help="use the first N prompts")
    p.add_argument("--preference", default="offline", help="oracle name or module:function")
    p.add_argument("--samples", type=int, default=2, help="responses per prompt and model")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (> 0)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens per response at most")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generate call")
    p.add_argument(
        "--best-of", type=int, default=1,
        help="evaluate Best-of-N of --model: each sample is the oracle's winner among N draws "
        "(its KL is not estimated); e.g. --model X --baseline X --best-of 4 measures the target "
        "BOND-family methods distil",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument(
        "--dtype",
        default="float32",
        choices=DTYPES,
        help="precision both models are loaded in (default float32; auto: the checkpoint's)",
    )
    p.add_argument(
        "--bf16",
        action="store_true",
        help="run both models under bf16 autocast (as bf16: true in wind train)",
    )
    p.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: a GPU if any)")
    p.add_argument("--model-revision", default=None, help="hub revision of a --model hub id")
    p.add_argument("--baseline-revision", default=None, help="hub revision of --baseline")
    p.add_argument(
        "--trust-remote-code", action="store_true", help="allow hub models' own modeling code"
    )
    p.add_argument("--out", default="runs/evaluate", help="run directory")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    p.set_defaults(func=run)
    return p


def _check(args: argparse.Namespace) -> None:
    for name in ("samples", "max_new_tokens", "batch_size", "best_of"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} = {getattr(args, name)} must be >= 1")
    if not args.temperature > 0:
        raise ValueError(f"--temperature = {args.temperature} must be > 0")
    if args.max_prompts is not None and args.max_prompts < 1:
        raise ValueError(f"--max-prompts = {args.max_prompts} must be >= 1")


def load_policy(name: str, args: argparse.Namespace, what: str, revision: str | None) -> Any:
    """A model (folder, LoRA adapter folder merged, alias or hub id) in ``--dtype``, on
    ``--device``."""
    from windalign.lm.loading import default_device, load_causal_lm

    model = load_causal_lm(name, args.dtype, revision, args.trust_remote_code, what=what)
    return model.to(args.device or default_device())


def run(args: argparse.Namespace) -> int:
    """Check the options, load both models, evaluate, write the run directory."""
    _check(args)
    import torch

    from windalign.llm.data import load_prompts
    from windalign.llm.evaluate import evaluate, report
    from windalign.lm.loading import check_same_tokenizer, load_tokenizer, resolve_model
    from windalign.preferences import as_oracle
    from windalign.rundir import RunDir, dumps_json

    prompts = load_prompts(args.prompts)[: args.max_prompts]
    import_from_cwd()
    oracle = as_oracle(args.preference)
    revisions = {"model": args.model_revision, "baseline": args.baseline_revision}
    for what, revision in revisions.items():  # a name that cannot load: before the run starts
        resolve_model(getattr(args, what), revision, what=f"--{what}")
    with RunDir(args.out, command=getattr(args, "argv", None), overwrite=args.overwrite) as rd:
        toks = {
            what: load_tokenizer(getattr(args, what), rev, args.trust_remote_code, f"--{what}")
            for what, rev in revisions.items()
        }
        names = (f"--model {args.model!r}", f"--baseline {args.baseline!r}")
        check_same_tokenizer(toks["model"], toks["baseline"], names)
        model = load_policy(args.model, args, "--model", args.model_revision)
        baseline = load_policy(args.baseline, args, "--baseline", args.baseline_revision)
        device = next(model.parameters()).device.type
        result = evaluate(
            model, baseline, toks["model"], prompts, oracle,
            samples=args.samples, temperature=args.temperature,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
            best_of=args.best_of,
            autocast=lambda: torch.autocast(device, torch.bfloat16, enabled=args.bf16),
        )  # fmt: skip
        best = f"Best-of-{args.best_of} of " if args.best_of > 1 else ""
        title = f"{best}`{args.model}` against `{args.baseline}` under `{oracle.name}`"
        rd.commit(
            {
                "results.json": dumps_json(
                    {"summary": result.summary, "prompts": result.per_prompt}
                ),
                "report.md": report(result, title),
            }
        )
    s = result.summary
    kl = f"KL {s['kl']:.3f} [{s['kl_lo']:.3f}, {s['kl_hi']:.3f}]"
    print(
        f"win rate {s['win_rate']:.3f} [{s['win_rate_lo']:.3f}, {s['win_rate_hi']:.3f}], "
        f"{kl if args.best_of == 1 else 'KL not estimated'}, over {int(s['prompts'])} "
        f"prompts; wrote {args.out}/"
    )
    return 0
