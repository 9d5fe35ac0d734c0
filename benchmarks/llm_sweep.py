"""Issue 18's protocol on SmolLM2-135M: the Best-of-N target, tuning on validation, seeds on test.

    python benchmarks/llm_sweep.py targets --out runs/llm-sweep   # Best-of-2/4 of the initial model
    python benchmarks/llm_sweep.py tune --out runs/llm-sweep --workers 2
    python benchmarks/llm_sweep.py final --out runs/llm-sweep --workers 2   # after tune
    python benchmarks/llm_sweep.py status --out runs/llm-sweep          # what is done, what is left

Every run is ``configs/demo.yaml``'s setting (SmolLM2-135M-Instruct, full fine-tune, fp32 on CPU,
offline oracle, K = 4 samples of 4 prompts per step at temperature 0.7, 40 new tokens, constant
learning rate; J-BOND 3 samples) with its method's objective, trained on ``builtin:train``:

* ``targets``: the initial model's Best-of-2 and Best-of-4 (N draws, the oracle's winner)
  against the initial model on ``builtin:test``, for each seed the same initial-model samples the
  trained runs of that seed meet (``wind evaluate --best-of`` computes the same).
* ``tune``: every method on its grid (:data:`GRID`: 3 learning rates x its own knob), one seed,
  :data:`TUNE_STEPS` steps, evaluated at the end on ``builtin:validation`` (never reported);
  the setting with the highest validation win rate is chosen.
* ``final``: every method at its chosen setting, :data:`SEEDS`, :data:`FINAL_STEPS` steps (768
  samples), evaluated on ``builtin:test`` every quarter of the run.

A finished run (``status.json`` says ``complete``) is skipped, so a sweep resumes where it
stopped, on this machine or another. Each finished run's small summary (its config,
``metrics.jsonl``, ``evaluations.jsonl``, ``status.json``; no checkpoints, no models) is copied
under ``--summaries`` at once (``docs/benchmarks/llm_sweep``, committed as it lands: ``--commit``
runs ``git add`` + ``git commit`` of that summary alone); the page is built from those alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from llm_results import TRL, finished, wind_command

ROOT = Path(__file__).resolve().parents[1]
SUMMARIES = ROOT / "docs" / "benchmarks" / "llm_sweep"
METHODS = ("wind-squared", "sppo", "jbond", "nash-md", "dpo", "bok-distill", TRL)
LEARNING_RATES = (1e-5, 2e-5, 4e-5)
#: each method's own knob and its values (the learning rate is tuned for every method)
KNOBS: dict[str, tuple[str, tuple[float, ...]]] = {
    "wind-squared": ("eta", (1.0, 5.0)),
    "sppo": ("eta", (1.0, 5.0)),
    "jbond": ("gamma", (0.02, 0.1, 0.3)),
    "nash-md": ("alpha", (0.125, 0.5)),
}
TUNE_STEPS, FINAL_STEPS = 24, 48
SEEDS = (0, 1, 2)
BEST_OF = (2, 4)
SUMMARY_FILES = ("config.yaml", "metrics.jsonl", "evaluations.jsonl", "status.json")
GIT = threading.Lock()  # two workers finishing together commit one after the other


def grid(method: str) -> list[dict[str, float]]:
    """Every setting ``tune`` tries for ``method``: learning rates x its own knob.

    >>> len(grid("jbond")), grid("dpo")[0]
    (9, {'learning_rate': 1e-05})
    """
    name, values = KNOBS.get(method, ("", (None,)))
    return [{"learning_rate": lr} | ({name: v} if name else {})
            for lr in LEARNING_RATES for v in values]  # fmt: skip


def setting_name(setting: dict[str, float]) -> str:
    """A folder name for a setting: ``lr2e-05_eta5``.

    >>> setting_name({"learning_rate": 2e-5, "gamma": 0.1})
    'lr2e-05_gamma0.1'
    """
    parts = [f"lr{setting['learning_rate']:g}"]
    parts += [f"{k}{v:g}" for k, v in setting.items() if k != "learning_rate"]
    return "_".join(parts)


def stage_config(stage: str) -> dict[str, Any]:
    """The ``wind train`` keys every run of ``stage`` shares (on top of the demo's)."""
    if stage == "tune":
        return {"max_steps": TUNE_STEPS, "eval_steps": TUNE_STEPS, "eval_prompts":
                "builtin:validation", "eval_prompt_count": None}  # fmt: skip
    return {"max_steps": FINAL_STEPS, "eval_steps": FINAL_STEPS // 4, "eval_prompts":
            "builtin:test", "eval_prompt_count": None}  # fmt: skip


def run_path(out: Path, stage: str, method: str, setting: dict[str, float], seed: int) -> Path:
    return out / stage / method / setting_name(setting) / f"seed{seed}"


def run(out: Path, stage: str, method: str, setting: dict[str, float], seed: int,
        summaries: Path, commit: bool) -> None:  # fmt: skip
    """One run (skipped when finished), then its summary copied under ``summaries``."""
    path = run_path(out, stage, method, setting, seed)
    if not finished(path):
        overrides = stage_config(stage) | {k: v for k, v in setting.items()
                                           if k != "learning_rate"}  # fmt: skip
        lr = setting["learning_rate"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if method == TRL:
            extra = path.parent / f"{path.name}.overrides.json"
            extra.write_text(json.dumps(overrides))
            script = Path(__file__).with_name("llm_results.py")
            cmd = [sys.executable, str(script), "--trl-run", str(lr), str(seed), str(path),
                   str(extra)]  # fmt: skip
        else:
            cmd = wind_command(method, lr, seed, path, overrides)
        start = time.perf_counter()
        print(f"run {path.relative_to(out)}", flush=True)
        log = path.parent / f"{path.name}.log"
        with log.open("w") as f:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
        what = "done" if code == 0 else f"FAILED (exit {code}, see {log})"
        print(f"{what} {path.relative_to(out)} in {time.perf_counter() - start:.0f} s", flush=True)
        if code != 0:  # summarized as failed: tuning scores it -inf and goes on
            path.mkdir(parents=True, exist_ok=True)
            (path / "status.json").write_text(json.dumps({"status": "failed", "exit": code}))
    keep(path, out, summaries, commit, {"stage": stage, "method": method, "seed": seed,
                                        **setting})  # fmt: skip


def keep(path: Path, out: Path, summaries: Path, commit: bool, what: dict[str, Any]) -> None:
    """Copy a finished run's small files under ``summaries`` (and commit them)."""
    dest = summaries / path.relative_to(out)
    if finished(dest):  # a failed run's summary is replaced once a retry finishes
        return
    dest.mkdir(parents=True, exist_ok=True)
    for name in SUMMARY_FILES:
        if (path / name).is_file():
            shutil.copy2(path / name, dest / name)
    config = path.parent / f"{path.name}.yaml"  # wind_command writes the run's config beside it
    if not (dest / "config.yaml").is_file() and config.is_file():
        shutil.copy2(config, dest / "config.yaml")
    (dest / "run.json").write_text(json.dumps(what, sort_keys=True) + "\n")
    if commit:
        message = f"llm sweep: {dest.relative_to(summaries)} finished"
        with GIT:
            subprocess.run(["git", "add", str(dest)], cwd=ROOT, check=True)
            subprocess.run(["git", "commit", "-q", "-m", message, "--", str(dest)], cwd=ROOT,
                           check=True)  # fmt: skip


def final_value(summary: Path) -> float:
    """The last evaluation's win rate of a run summary; -inf for a failed run or one without
    a finite evaluation (it cannot be chosen)."""
    if json.loads((summary / "status.json").read_text()).get("status") != "complete":
        return -math.inf
    metrics = summary / "metrics.jsonl"
    rows = (
        [json.loads(x) for x in metrics.read_text().splitlines() if x] if metrics.exists() else []
    )
    evals = [float(r["eval_win_rate"]) for r in rows if "eval_win_rate" in r]
    return evals[-1] if evals and math.isfinite(evals[-1]) else -math.inf


def chosen(summaries: Path, method: str) -> dict[str, float] | None:
    """The tuned setting of ``method``: the highest final validation win rate over its grid
    (None until every setting of the grid has finished)."""
    scores = {}
    for setting in grid(method):
        folder = summaries / "tune" / method / setting_name(setting) / "seed0"
        if not (folder / "status.json").is_file():
            return None
        scores[setting_name(setting)] = (final_value(folder), setting)
    return max(scores.values(), key=lambda x: x[0])[1]


def targets(out: Path, summaries: Path, commit: bool) -> None:
    """Best-of-2 and Best-of-4 of the initial model against it on ``builtin:test``, per seed,
    with the baseline samples its trained runs meet (``WINDTrainer._seed(0, 1, 1)``)."""
    import torch
    from llm_results import base_config
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from windalign.llm.data import load_prompts
    from windalign.llm.evaluate import evaluate
    from windalign.llm.trainer import derived_seed, evaluation_seeds
    from windalign.lm.loading import resolve_model
    from windalign.preferences import as_oracle

    demo = base_config()
    folder = resolve_model(demo["model"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    oracle = as_oracle(demo["preference"])
    prompts = load_prompts(stage_config("final")["eval_prompts"], "prompt")
    for seed in SEEDS:
        cache: dict[Any, Any] = {}
        _, base_seed = evaluation_seeds(seed, 0)  # the trained runs' initial-model samples
        for n in BEST_OF:
            path = out / "targets" / f"best-of-{n}" / f"seed{seed}"
            if not finished(path):
                start = time.perf_counter()
                result = evaluate(
                    model, model, tokenizer, prompts, oracle, samples=2,
                    temperature=demo["temperature"], max_new_tokens=demo["max_new_tokens"],
                    seed=derived_seed(seed, n, 2),
                    baseline_seed=base_seed, baseline_cache=cache, best_of=n,
                )  # fmt: skip
                path.mkdir(parents=True, exist_ok=True)
                keep_rows = [{k: r[k] for k in ("index", "win_rate", "kl")}
                             for r in result.per_prompt]  # fmt: skip
                (path / "evaluations.jsonl").write_text(
                    json.dumps({"step": 0, "prompts": keep_rows}) + "\n"
                )
                row = {"step": 0, **{f"eval_{k}": v for k, v in result.summary.items()},
                       "seconds_evaluate": time.perf_counter() - start}  # fmt: skip
                (path / "metrics.jsonl").write_text(json.dumps(row) + "\n")
                (path / "status.json").write_text(json.dumps({"status": "complete"}) + "\n")
                print(f"best-of-{n} seed {seed}: win rate {result.summary['win_rate']:.3f} "
                      f"[{result.summary['win_rate_lo']:.3f}, "
                      f"{result.summary['win_rate_hi']:.3f}]", flush=True)  # fmt: skip
            keep(path, out, summaries, commit, {"stage": "targets", "best_of": n, "seed": seed})


def jobs(stage: str, summaries: Path, methods: list[str]) -> list[tuple]:
    """``(method, setting, seed)`` of every run of ``stage`` (final: chosen settings only)."""
    if stage == "tune":
        return [(m, s, 0) for m in methods for s in grid(m)]
    out = []
    for m in methods:
        setting = chosen(summaries, m)
        if setting is None:
            print(f"{m}: tuning not finished, no final runs yet", flush=True)
            continue
        out += [(m, setting, seed) for seed in SEEDS]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("stage", choices=("targets", "tune", "final", "status"))
    p.add_argument("--out", type=Path, default=Path("runs/llm-sweep"), help="runs folder")
    p.add_argument("--summaries", type=Path, default=SUMMARIES, help="committed summaries")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--workers", type=int, default=1, help="runs at a time (one per core)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--commit", action="store_true", help="git commit each summary as it lands")
    args = p.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.stage == "targets":
        targets(args.out, args.summaries, args.commit)
        return 0
    if args.stage == "status":
        for stage in ("tune", "final"):
            todo = jobs(stage, args.summaries, args.methods)
            done = [j for j in todo if (args.summaries / stage / j[0] / setting_name(j[1])
                                        / f"seed{j[2]}" / "status.json").is_file()]  # fmt: skip
            print(f"{stage}: {len(done)} of {len(todo)} runs summarized")
        return 0
    if TRL in args.methods:
        try:
            import trl  # noqa: F401
        except ImportError:
            p.error(f"the TRL baseline needs trl: pip install trl==1.16.0 (or leave out {TRL})")
    todo = jobs(args.stage, args.summaries, args.methods)
    with ThreadPoolExecutor(max_workers=args.workers) as pool:  # each run is a subprocess
        futures = [pool.submit(run, args.out, args.stage, *job, args.summaries, args.commit)
                   for job in todo]  # fmt: skip
        for future in futures:
            future.result()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
