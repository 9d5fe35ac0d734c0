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
* ``tune``: every method the same way, one seed, :data:`TUNE_STEPS` steps, evaluated at the end
  on ``builtin:validation`` (never reported): first the learning rates (:data:`LEARNING_RATES`)
  with its own knob at its first value (:data:`KNOBS`), then that knob's other values at the best
  learning rate, then, for a method with a KL coefficient, :data:`KL_KNOB`'s values at the best
  setting so far (a coordinate search); the setting with the highest validation win rate is
  chosen.
* ``final``: every method at its chosen setting, :data:`SEEDS`, :data:`FINAL_STEPS` steps (768
  samples), evaluated on ``builtin:test`` every quarter of the run, a checkpoint kept at each
  evaluation so that a killed run resumes from it (TRL's runs start again).

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

from llm_results import HYPER, TRL, finished, wind_command

from windalign.llm.state import last_complete_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SUMMARIES = ROOT / "docs" / "benchmarks" / "llm_sweep"
#: in the order the sweep spends its budget: WIND and the paper's BOND-family baselines first
METHODS = ("wind-squared", "jbond", "wind-nce", "bok-distill", "sppo", TRL, "dpo", "nash-md")
LEARNING_RATES = (1e-5, 2e-5, 4e-5)
#: the WIND losses in the sweep: each is compared with every other method
WINDS = ("wind-squared", "wind-nce")
NAMES = {
    "wind-squared": "WIND (`wind-squared`)",
    "wind-nce": "WIND (`wind-nce`)",
    "sppo": "SPPO",
    "jbond": "J-BOND",
    "bok-distill": "Best-of-K distillation",
    "nash-md": "Nash-MD",
    "dpo": "online DPO",
    "trl-online-dpo": "TRL `OnlineDPOTrainer`",
}
#: each method's own knob: its value while the learning rate is tuned, then the others tried
KNOBS: dict[str, tuple[str, tuple[float, ...]]] = {
    "wind-squared": ("eta", (5.0, 1.0)),
    "wind-nce": ("eta", (5.0, 1.0, 20.0)),
    "sppo": ("eta", (5.0, 1.0)),
    "jbond": ("gamma", (0.1, 0.02, 0.3)),
    "nash-md": ("alpha", (0.5, 0.125)),
}
#: every method with a KL coefficient (``beta`` in ``llm_results.HYPER``: the WIND losses, J-BOND,
#: Nash-MD, online DPO, TRL) also tries these at its best setting so far, after its own knob (the
#: runs before use HYPER's 0.1): how far from the initial model a method may move decides much of
#: its win rate against it (SPPO and Best-of-K distillation have no such coefficient)
KL_KNOB = ("beta", (0.03, 0.01))
TUNE_STEPS, FINAL_STEPS = 12, 48
SEEDS = (0, 1, 2)
BEST_OF = (2, 4)
#: under ``--out``: the initial model's evaluation samples, shared by every run (and target) of a
#: seed (``eval_baseline_cache``)
BASELINE_SAMPLES = "baseline-samples"
SUMMARY_FILES = ("config.yaml", "metrics.jsonl", "evaluations.jsonl", "status.json")  # status last
#: held while a summary is written (and committed) and while the workers list the jobs left
LOCK = threading.Lock()


def grid(method: str, summaries: Path | None = None) -> list[dict[str, float]]:
    """The settings ``tune`` runs for ``method`` so far: the learning rates (its knob at its first
    value), then, once those are summarized under ``summaries``, the knob's other values at the
    best of them, then (for a method with a KL coefficient) :data:`KL_KNOB`'s values at the best
    setting so far.

    >>> [setting_name(s) for s in grid("jbond")]
    ['lr1e-05_gamma0.1', 'lr2e-05_gamma0.1', 'lr4e-05_gamma0.1']
    >>> grid("sppo")[0]
    {'learning_rate': 1e-05, 'eta': 5.0}
    """
    name, values = KNOBS.get(method, ("", (None,)))
    settings = [{"learning_rate": lr} | ({name: values[0]} if name else {})
                for lr in LEARNING_RATES]  # fmt: skip
    for knob, others in _stages(method):
        scores = [_score(summaries, method, s) for s in settings] if summaries else [None]
        if None in scores:
            break
        best = settings[scores.index(max(scores))]
        settings += [best | {knob: v} for v in others]
    return settings


def _stages(method: str) -> list[tuple[str, tuple[float, ...]]]:
    """The knobs tuned after the learning rate, in order, each with the values still to try."""
    name, values = KNOBS.get(method, ("", ()))
    return ([(name, values[1:])] if name else []) + ([KL_KNOB] if "beta" in HYPER[method] else [])


def _score(summaries: Path, method: str, setting: dict[str, float]) -> float | None:
    """A tuning run's validation win rate (None until it is summarized)."""
    folder = summaries / "tune" / method / setting_name(setting) / "seed0"
    return final_value(folder) if (folder / "status.json").is_file() else None


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
        overrides["eval_baseline_cache"] = str(out / BASELINE_SAMPLES)  # drawn once per seed
        lr = setting["learning_rate"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if method == TRL:
            extra = path.parent / f"{path.name}.overrides.json"
            extra.write_text(json.dumps(overrides))
            script = Path(__file__).with_name("llm_results.py")
            cmd = [sys.executable, str(script), "--trl-run", str(lr), str(seed), str(path),
                   str(extra)]  # fmt: skip
        else:
            if stage == "final":  # a checkpoint at each evaluation: a killed run resumes there
                overrides |= {"save_strategy": "steps", "save_steps": overrides["eval_steps"],
                              "save_total_limit": 1}  # fmt: skip
            cmd = wind_command(method, lr, seed, path, overrides)
            if last_complete_checkpoint(path) is not None:
                cmd[cmd.index("--overwrite")] = "--resume-from-checkpoint"
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
        for checkpoint in path.glob("checkpoint-*") if code == 0 else ():
            shutil.rmtree(checkpoint)  # gigabytes each; the summary and the model stay
    keep(path, out, summaries, commit, {"stage": stage, "method": method, "seed": seed,
                                        **setting})  # fmt: skip


def keep(path: Path, out: Path, summaries: Path, commit: bool, what: dict[str, Any]) -> None:
    """Copy a finished run's small files under ``summaries`` (and commit them); ``status.json``
    last, under :data:`LOCK`, so that a summary with a status is whole."""
    dest = summaries / path.relative_to(out)
    with LOCK:
        if finished(dest):  # a failed run's summary is replaced once a retry finishes
            return
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "status.json").unlink(missing_ok=True)
        for name in SUMMARY_FILES[:-1]:
            if (path / name).is_file():
                shutil.copy2(path / name, dest / name)
        config = path.parent / f"{path.name}.yaml"  # wind_command writes it beside the run
        if not (dest / "config.yaml").is_file() and config.is_file():
            shutil.copy2(config, dest / "config.yaml")
        (dest / "run.json").write_text(json.dumps(what, sort_keys=True) + "\n")
        shutil.copy2(path / "status.json", dest / "status.json")
        if commit:
            message = f"llm sweep: {dest.relative_to(summaries)} finished"
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
    (None until every setting of the grid has finished, or when none of them completed; the
    first of equals). :func:`grid` adds a stage only once every earlier setting has a score,
    so a grid without a missing score is whole."""
    settings = grid(method, summaries)
    scores = [_score(summaries, method, s) for s in settings]
    if None in scores or max(scores) == -math.inf:
        return None
    return settings[scores.index(max(scores))]


def targets(out: Path, summaries: Path, commit: bool) -> None:
    """Best-of-2 and Best-of-4 of the initial model against it on ``builtin:test``, per seed,
    with the baseline samples its trained runs meet (``WINDTrainer._seed(0, 1, 1)``)."""
    todo = [(seed, n) for seed in SEEDS for n in BEST_OF  # summarized here or elsewhere
            if not finished(summaries / "targets" / f"best-of-{n}" / f"seed{seed}")]  # fmt: skip
    if not todo:
        print("targets: every seed summarized", flush=True)
        return
    import torch
    from llm_results import base_config
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from windalign.llm.data import load_prompts
    from windalign.llm.evaluate import SampleCache, evaluate
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
    cache = SampleCache(out / BASELINE_SAMPLES, model)  # fp32: the key of wind train's runs
    for seed in SEEDS:
        _, base_seed = evaluation_seeds(seed, 0)  # the trained runs' initial-model samples
        for n in BEST_OF:
            path = out / "targets" / f"best-of-{n}" / f"seed{seed}"
            if (seed, n) not in todo:
                continue
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
    """``(method, setting, seed)`` of every run of ``stage`` known so far (tune: the knob's
    values appear once the learning rates are in; final: chosen settings only, seed by seed, so
    that every tuned method has a seed before any has a second: a budget cut short still pairs).
    """
    if stage == "tune":
        return [(m, s, 0) for m in methods for s in grid(m, summaries)]
    settings = {m: chosen(summaries, m) for m in methods}
    return [(m, s, seed) for seed in SEEDS for m, s in settings.items() if s is not None]


def summarized(summaries: Path, stage: str, job: tuple) -> bool:
    method, setting, seed = job
    return (summaries / stage / method / setting_name(setting) / f"seed{seed}" / "status.json"
            ).is_file()  # fmt: skip


def drain(args: argparse.Namespace) -> None:
    """Run every job of the stage, ``--workers`` at a time, taking up jobs that appear as others
    finish (a method's knob values after its learning rates)."""
    running: set[str] = set()

    def worker() -> None:
        while True:
            with LOCK:
                known = jobs(args.stage, args.summaries, args.methods)
                todo = [j for j in known if repr(j) not in running
                        and not summarized(args.summaries, args.stage, j)]  # fmt: skip
                if not todo and not running:
                    return
                job = todo[0] if todo else None
                if job is not None:
                    running.add(repr(job))
            if job is None:  # another worker's run may unlock more
                time.sleep(10)
                continue
            try:
                run(args.out, args.stage, *job, args.summaries, args.commit)
            finally:
                with LOCK:
                    running.discard(repr(job))

    with ThreadPoolExecutor(max_workers=args.workers) as pool:  # each run is a subprocess
        for future in [pool.submit(worker) for _ in range(args.workers)]:
            future.result()
    left = [m for m in args.methods if args.stage == "final" and chosen(args.summaries, m) is None]
    if left:
        print(f"not tuned yet, no final runs: {', '.join(left)}", flush=True)


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
            done = [j for j in todo if summarized(args.summaries, stage, j)]
            print(f"{stage}: {len(done)} of {len(todo)} runs known so far summarized")
        return 0
    if TRL in args.methods:
        try:
            import trl  # noqa: F401
        except ImportError:
            p.error(f"the TRL baseline needs trl: pip install trl==1.16.0 (or leave out {TRL})")
    drain(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
