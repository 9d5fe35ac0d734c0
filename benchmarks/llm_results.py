"""Every objective (and TRL's OnlineDPOTrainer) on SmolLM2-135M at the same cost: the data of
docs/results-llm.md.

    python benchmarks/llm_results.py --out runs/llm-results            # the runs (resumable)
    python benchmarks/llm_results.py --out runs/llm-results --report docs/benchmarks
                                                                        # tables and figures only

One run = ``configs/demo.yaml``'s setting (SmolLM2-135M-Instruct, full fine-tune, fp32 on CPU,
offline oracle, 12 rounds of 4 built-in training prompts, K = 4 samples at temperature 0.7,
40 new tokens, Adam at ``--lr``) with the method's objective, evaluated after rounds 6 and 12 on
the first 32 held-out prompts x 2 samples against the initial model (win rate under the same
oracle with a t-interval over prompts, KL to the initial model on the policy's samples; the
policy's evaluation seed depends only on (seed, step), the initial model's only on the seed, and
its samples are drawn once per run, so every method meets the same baseline samples).
The WIND runs go through ``wind train`` in a subprocess, one at a time; a finished run (its
``status.json`` says ``complete``) is skipped, so an interrupted sweep resumes where it stopped.

TRL's ``OnlineDPOTrainer`` (``pip install trl==1.16.0``; only this script needs it) gets the same
model, prompts (same chat template), reward (the offline oracle's reward), temperature, length,
optimizer, learning rate and beta, with 8 prompts x 2 samples per step: the same 16 samples per
step as K = 4 on 4 prompts. It is evaluated by the same function at the same steps. Its cost
counters: 16 samples and 8 preference queries (one pair per prompt) per step.

``--report`` reads every run's ``metrics.jsonl`` and writes ``llm_results.json``, ``llm_results.md``
and the figures (``--figures``); with ``--from-json`` it rewrites only ``llm_results.md`` from the
committed ``llm_results.json`` (no run directories needed). ``--page docs/results-llm.md``
rewrites the page's generated blocks (its tables and every sentence with a number from the runs)
from ``llm_results.json`` and ``llm_results_m2.json``; the prose around them is written by hand:

    python benchmarks/llm_results.py --page docs/results-llm.md        # the page, from the JSON
    python benchmarks/llm_results.py --report docs/benchmarks --from-json   # the tables, from it

Matched KL and cost to reach a win rate interpolate only between two consecutive evaluations:
where a seed first crosses between the initial model and its first evaluation (or across a
missing evaluation) its entry is ``gap``, not measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from windalign.config import dump_yaml, load_yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"
WIND_METHODS = (
    "wind-squared", "wind-kl", "wind-nce", "sppo", "jbond", "nash-md", "dpo", "ipo",
    "bon-distill",
)  # fmt: skip
TRL = "trl-online-dpo"
METHODS = (*WIND_METHODS, TRL)
EVAL_STEPS = 6
TARGETS = (0.52, 0.55)  # win rates whose cost the reach table reports
KL_LEVELS = (0.25, 0.5, 1.0)  # KL levels of the matched-KL table
# Each method's own hyperparameters; everything else is the demo's. The WIND step eta = 5 and
# beta = 0.1 are the demo's (chosen for wind-squared in the first session); SPPO and Nash-MD use
# the same eta, Nash-MD its mixture tied to the step (alpha = eta * beta), J-BOND and DPO/IPO
# their defaults at the same beta.
HYPER: dict[str, dict[str, Any]] = {
    "wind-squared": {"eta": 5.0, "beta": 0.1},
    "wind-kl": {"eta": 5.0, "beta": 0.1},
    "wind-nce": {"eta": 5.0, "beta": 0.1},
    "sppo": {"eta": 5.0},
    "jbond": {"beta": 0.1, "num_samples": 3},
    "nash-md": {"eta": 5.0, "beta": 0.1, "alpha": 0.5},
    "dpo": {"beta": 0.1},
    "ipo": {"beta": 0.1},
    "bon-distill": {},
    "bok-distill": {},
    TRL: {"beta": 0.1},
}
OBJECTIVE_KEYS = ("objective", "eta", "beta", "alpha", "gamma", "beta_anchor", "num_samples")


def base_config() -> dict[str, Any]:
    """The demo's config without its objective-specific keys."""
    config = load_yaml(DEMO.read_text())
    for key in OBJECTIVE_KEYS:
        config.pop(key, None)
    config.update(eval_steps=EVAL_STEPS, save_strategy="no", logging_steps=1)
    return config


def run_dir(out: Path, method: str, lr: float, seed: int) -> Path:
    return out / method / f"lr{lr:g}" / f"seed{seed}"


def finished(path: Path) -> bool:
    status = path / "status.json"
    return status.is_file() and json.loads(status.read_text()).get("status") == "complete"


def wind_command(
    method: str, lr: float, seed: int, path: Path, overrides: dict[str, Any]
) -> list[str]:
    """The ``wind train`` command of one run (its config is written beside its directory)."""
    config = base_config() | HYPER[method]
    config.update(objective=method, learning_rate=lr, seed=seed, output_dir=str(path))
    config.update(overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = path.parent / f"{path.name}.yaml"
    cfg.write_text(dump_yaml(config))
    wind = Path(sys.executable).with_name("wind")
    return [str(wind), "train", "--config", str(cfg), "--overwrite", "--no-progress"]


# ---- TRL's OnlineDPOTrainer on the same problem ----------------------------------------------


def trl_reward(oracle: Any) -> Any:
    """A windalign oracle's Bradley-Terry rewards in TRL's ``reward_funcs`` signature.

    TRL passes the B prompts twice (first samples, then second samples) as chats; the oracle sees
    each user text as ``wind train`` gives it and each prompt's two responses in one group."""

    def reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
        n = len(prompts) // 2
        if prompts[:n] != prompts[n:]:
            raise ValueError("expected TRL's two halves of the same prompts")
        users = [p[-1]["content"] if isinstance(p, list) else p for p in prompts[:n]]
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        r = oracle.rewards(users, [[texts[i], texts[i + n]] for i in range(n)])
        return [float(x) for x in r[:, 0]] + [float(x) for x in r[:, 1]]

    return reward


def run_trl(lr: float, seed: int, path: Path, overrides: dict[str, Any] | None = None) -> None:
    """TRL's OnlineDPOTrainer with the demo's setting (updated by ``overrides``: steps, prompts,
    evaluation prompts, steps and samples); the same evaluation at the same steps.

    Writes ``metrics.jsonl`` (rows like ``wind train``'s: ``eval_*`` with the cost counters
    ``samples``, ``queries``, ``seconds_wall``), ``evaluations.jsonl`` (each evaluation's
    per-prompt win rates and KL, as ``wind train`` writes it) and ``status.json``."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    from windalign.llm.config import WINDConfig
    from windalign.llm.data import load_prompts
    from windalign.llm.evaluate import SampleCache, evaluate
    from windalign.llm.trainer import evaluation_seeds
    from windalign.lm.loading import resolve_model
    from windalign.preferences import as_oracle
    from windalign.rundir import atomic_write_json

    demo = base_config() | (overrides or {})
    defaults = {f.name: f.default for f in dataclasses.fields(WINDConfig)}
    defaults |= {k: demo[k] for k in ("eval_samples",) if k in demo}
    folder = resolve_model(demo["model"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    oracle = as_oracle(demo["preference"])
    train = load_prompts(demo["prompts"], "prompt")
    evals = load_prompts(demo["eval_prompts"], "prompt")[: demo.get("eval_prompt_count")]
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p in train])

    prompts_per_step = demo["per_device_train_batch_size"] * 4 // 2  # 16 samples per step
    args = OnlineDPOConfig(
        output_dir=str(path / "trl"),
        per_device_train_batch_size=prompts_per_step,
        learning_rate=lr,
        lr_scheduler_type="constant",
        max_grad_norm=demo["max_grad_norm"],
        max_steps=demo["max_steps"],
        max_new_tokens=demo["max_new_tokens"],
        temperature=demo["temperature"],
        top_k=0,
        top_p=1.0,
        gradient_checkpointing=False,  # TRL's default is on; wind train does not checkpoint
        beta=[{**HYPER[TRL], **(overrides or {})}["beta"]],  # a sweep may tune it
        loss_type="sigmoid",
        seed=seed,
        use_cpu=True,
        bf16=False,  # TRL's config turns bf16 autocast on by default, also on a CPU
        fp16=False,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    path.mkdir(parents=True, exist_ok=True)
    metrics, per_prompt = path / "metrics.jsonl", path / "evaluations.jsonl"
    metrics.write_text("")
    per_prompt.write_text("")
    baseline_samples: dict[Any, Any] = {}  # the initial model's, drawn once (as wind train)
    if demo.get("eval_baseline_cache"):  # as wind train with the same key (the fp32 CPU regime)
        baseline_samples = SampleCache(demo["eval_baseline_cache"], ref)
    state = {"seconds_wall": 0.0, "seconds_evaluate": 0.0, "mark": 0.0}

    class Evaluate(TrainerCallback):
        def on_train_begin(self, args: Any, st: Any, control: Any, **kw: Any) -> None:
            state["mark"] = time.perf_counter()

        def on_step_end(self, args: Any, st: Any, control: Any, **kw: Any) -> None:
            state["seconds_wall"] += time.perf_counter() - state["mark"]
            step = st.global_step
            row: dict[str, Any] = {"step": step, "samples": 16.0 * step, "queries": 8.0 * step,
                                   "oracle_calls": 16.0 * step}  # fmt: skip
            if step % demo["eval_steps"] == 0:
                start = time.perf_counter()
                # wind train's evaluation seeds at this step: the same initial-model samples
                eval_seed, base_seed = evaluation_seeds(seed, step)
                result = evaluate(  # as WINDTrainer.evaluate with WINDConfig's defaults
                    model, ref, tokenizer, evals, oracle, samples=defaults["eval_samples"],
                    temperature=demo["temperature"], max_new_tokens=demo["max_new_tokens"],
                    max_prompt_length=defaults["max_prompt_length"],
                    batch_size=defaults["generation_batch_size"], seed=eval_seed,
                    baseline_seed=base_seed, baseline_cache=baseline_samples,
                )  # fmt: skip
                state["seconds_evaluate"] += time.perf_counter() - start
                row |= {f"eval_{k}": v for k, v in result.summary.items()}
                keep = [{k: r[k] for k in ("index", "win_rate", "kl")} for r in result.per_prompt]
                with per_prompt.open("a") as f:
                    f.write(json.dumps({"step": step, "prompts": keep}) + "\n")
            row |= {k: state[k] for k in ("seconds_wall", "seconds_evaluate")}
            with metrics.open("a") as f:
                f.write(json.dumps(row) + "\n")
            state["mark"] = time.perf_counter()

    trainer = OnlineDPOTrainer(
        model=model,
        ref_model=ref,
        reward_funcs=trl_reward(oracle),
        args=args,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[Evaluate()],
    )
    trainer.train()
    atomic_write_json(path / "status.json", {"status": "complete", "method": TRL})


# ---- the report ---------------------------------------------------------------------------------


def read_runs(out: Path) -> list[dict[str, Any]]:
    """One record per finished run: method, lr, seed and its evaluation rows."""
    runs = []
    for metrics in sorted(out.glob("*/lr*/seed*/metrics.jsonl")):
        path = metrics.parent
        if not finished(path):
            continue
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        evals = [r for r in rows if "eval_win_rate" in r]
        method = path.parent.parent.name
        lr = float(path.parent.name[2:])
        seed = int(path.name[4:])
        runs.append({"method": method, "lr": lr, "seed": seed, "evals": evals})
    return runs


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and per-seed values of every (method, lr, step)."""
    groups: dict[tuple[str, float, int], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        for e in run["evals"]:
            groups[(run["method"], run["lr"], int(e["step"]))].append({"seed": run["seed"], **e})
    table = []
    for (method, lr, step), rows in sorted(groups.items()):
        entry: dict[str, Any] = {"method": method, "lr": lr, "step": step, "seeds": len(rows)}
        for key in ("eval_win_rate", "eval_kl", "samples", "queries", "seconds_wall",
                    "eval_length", "eval_eos_rate"):  # fmt: skip
            values = np.array([float(r.get(key, math.nan)) for r in rows])
            entry[key] = float(np.mean(values))
            entry[f"{key}_seeds"] = values.tolist()
        entry["eval_win_rate_lo_seeds"] = [r["eval_win_rate_lo"] for r in rows]
        entry["eval_win_rate_hi_seeds"] = [r["eval_win_rate_hi"] for r in rows]
        table.append(entry)
    return {"rows": table}


SEED_KEYS = ("eval_win_rate", "eval_kl", "samples", "queries", "seconds_wall", "eval_length",
             "eval_eos_rate", "eval_win_rate_lo", "eval_win_rate_hi")  # fmt: skip


def runs_from_summary(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs back from ``summarize``'s output (a committed ``llm_results.json``), so that the
    tables and the page regenerate without the run directories. The JSON keeps no seed ids:
    seeds are numbered in their stored order (``read_runs`` reads ``seed0``, ``seed1``, ... in
    that order), and every step of a (method, lr) must hold the same number of seeds."""
    runs: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in summary["rows"]:
        key = (r["method"], r["lr"])
        seeds = runs.setdefault(key, [
            {"method": r["method"], "lr": r["lr"], "seed": i, "evals": []}
            for i in range(r["seeds"])
        ])  # fmt: skip
        if len(seeds) != r["seeds"]:
            raise ValueError(f"{key}: steps with different numbers of seeds; the JSON cannot "
                             "tell which seed is which")  # fmt: skip
        for i, run in enumerate(seeds):
            run["evals"].append({"step": r["step"]} | {k: r[f"{k}_seeds"][i] for k in SEED_KEYS})
    return [run for seeds in runs.values() for run in seeds]


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| method | lr | step | seeds | win rate vs initial (mean; per seed [95% interval]) | "
        "KL (nats) | samples | queries | seconds | length | EOS rate |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        per = "; ".join(
            f"{w:.3f} [{lo:.3f}, {hi:.3f}]"
            for w, lo, hi in zip(r["eval_win_rate_seeds"], r["eval_win_rate_lo_seeds"],
                                 r["eval_win_rate_hi_seeds"], strict=True)
        )  # fmt: skip
        lines.append(
            f"| {r['method']} | {r['lr']:g} | {r['step']} | {r['seeds']} | "
            f"**{r['eval_win_rate']:.3f}** ({per}) | {r['eval_kl']:.2f} | {r['samples']:.0f} | "
            f"{r['queries']:.0f} | {r['seconds_wall']:.0f} | {r['eval_length']:.1f} | "
            f"{r['eval_eos_rate']:.2f} |"
        )
    return "\n".join(lines) + "\n"


ORIGIN = {"step": 0, "eval_win_rate": 0.5, "eval_kl": 0.0, "queries": 0.0, "samples": 0.0,
          "seconds_wall": 0.0}  # fmt: skip
COST = ("queries", "samples", "seconds_wall")


def curves(runs: list[dict[str, Any]]) -> dict[tuple[str, float], list[list[dict[str, Any]]]]:
    """Per (method, lr): each seed's evaluations in step order, from the initial policy (win
    rate 1/2, KL 0, cost 0)."""
    out: dict[tuple[str, float], list[list[dict[str, Any]]]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: r["seed"]):
        out[(run["method"], run["lr"])].append(
            [ORIGIN, *sorted(run["evals"], key=lambda e: e["step"])]
        )
    return out


GAP = "gap"  # a crossing that no two consecutive evaluations bracket: not measured


def crossing(points: list[dict[str, Any]], key: str, level: float) -> dict[str, float] | str | None:
    """Every value where ``points[key]`` first reaches ``level``, linearly interpolated between
    two consecutive evaluations; None if it never does; ``GAP`` (not measured, not interpolated)
    if it first does between the initial model and the first evaluation, or between evaluations
    more than one evaluation interval apart (a missing evaluation). ``points`` starts at
    ``ORIGIN``; a level met exactly at an evaluation is measured there."""
    steps = [p["step"] for p in points if p is not ORIGIN]
    interval = min((b - a for a, b in itertools.pairwise(steps)), default=None)
    for a, b in itertools.pairwise(points):
        if b[key] >= level > a[key]:
            if b[key] > level and (
                a is ORIGIN or interval is None or b["step"] - a["step"] > interval
            ):
                return GAP
            t = (level - a[key]) / (b[key] - a[key])
            return {k: a[k] + t * (b[k] - a[k]) for k in (*COST, "eval_win_rate", "eval_kl")}
    return None


def _seed_cell(found: list[dict[str, float] | str | None], fmt: Any, show_seeds: bool) -> str:
    """One table cell from each seed's crossing: the mean where every seed is measured (with
    each seed's value if ``show_seeds``), else each seed's entry (seed order, ``; ``): its
    value, ``gap`` (not measured) or ``not reached``."""
    got = [f for f in found if isinstance(f, dict)]
    if len(got) == len(found):
        mean = {k: float(np.mean([g[k] for g in got])) for k in got[0]}
        seeds = "; ".join(fmt(g) for g in got) if show_seeds else f"mean of {len(got)}"
        return f"{fmt(mean)} ({seeds})"
    return "; ".join(
        fmt(f) if isinstance(f, dict) else GAP if f == GAP else "not reached" for f in found
    )


CELLS = (
    "Each seed's crossing is interpolated linearly between two consecutive evaluations and only "
    "there. A cell holds the mean over the seeds where every seed's crossing is measured, else "
    "each seed's entry in seed order: its value, `gap` (the seed first crosses between the initial "
    "model and its first evaluation, or across a missing evaluation: not measured, not "
    "interpolated) or `not reached`."
)


def reach_table(
    runs: list[dict[str, Any]], targets: tuple[float, ...], clean: dict[str, float]
) -> str:
    """Cost to first reach each target win rate, per seed (interpolated between consecutive
    evaluations only, see ``crossing``): the mean over the seeds where every seed's crossing is
    measured, else each seed's entry; ``clean`` = samples/s of each method measured alone
    (llm_throughput.py)."""
    head = " | ".join(f"to {t:.2f}" for t in targets)
    lines = [f"| method | lr | {head} |", "|---|---|" + "---|" * len(targets)]

    def fmt(method: str) -> Any:
        rate = clean.get(method)
        return lambda m: (f"{m['queries']:.0f} q / {m['samples']:.0f} s"
                          + (f" / {m['samples'] / rate:.0f} sec" if rate else "")
                          + f" / KL {m['eval_kl']:.2f}")  # fmt: skip

    for (method, lr), seeds in sorted(curves(runs).items()):
        cells = [_seed_cell([crossing(c, "eval_win_rate", t) for c in seeds], fmt(method),
                            show_seeds=False) for t in targets]  # fmt: skip
        lines.append(f"| {method} | {lr:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def frontier_table(runs: list[dict[str, Any]], levels: tuple[float, ...]) -> str:
    """Win rate at matched KL: where each seed's KL first reaches each level, interpolated
    between consecutive evaluations only (``crossing``); the mean where every seed is measured,
    with each seed's value."""
    head = " | ".join(f"KL {k:g}" for k in levels)
    lines = [f"| method | lr | {head} |", "|---|---|" + "---|" * len(levels)]
    for (method, lr), seeds in sorted(curves(runs).items()):
        cells = [_seed_cell([crossing(c, "eval_kl", k) for c in seeds],
                            lambda m: f"{m['eval_win_rate']:.3f}", show_seeds=True)
                 for k in levels]  # fmt: skip
        lines.append(f"| {method} | {lr:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figures(
    summary: dict[str, Any], folder: Path, clean: dict[str, float], name: str
) -> list[Path]:
    """Win rate against queries, samples and seconds, and against KL (one line per method).
    Seconds are ``samples / clean[method]`` (each method's samples/s measured alone) where
    known, else the run's own training wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    by_method: dict[tuple[str, float], list[dict[str, Any]]] = defaultdict(list)
    for r in summary["rows"]:
        rate = clean.get(r["method"])
        seconds = {"seconds": r["samples"] / rate if rate else r["seconds_wall"]}
        seconds["seconds_seeds"] = (
            [x / rate for x in r["samples_seeds"]] if rate else r["seconds_wall_seeds"]
        )
        by_method[(r["method"], r["lr"])].append({**r, **seconds})
    timed = "alone" if clean else "in the sweep"
    axes_spec = [
        ("queries", "preference queries"),
        ("samples", "samples"),
        ("seconds", f"training seconds on this CPU (measured {timed})"),
        ("eval_kl", "KL to initial (nats)"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.5), sharey=True)
    cmap = plt.get_cmap("tab10")  # a colour per method, a line style per learning rate
    lrs = sorted({lr for _, lr in by_method})
    for (method, lr), rows in sorted(by_method.items()):
        i = METHODS.index(method)
        rows = sorted(rows, key=lambda r: r["step"])
        for ax, (key, label) in zip(axes, axes_spec, strict=True):
            xs = [0.0] + [r[key] for r in rows]
            ys = [0.5] + [r["eval_win_rate"] for r in rows]
            style = ("-", ":", "--", "-.")[lrs.index(lr) % 4]
            color = cmap(i % 10)
            marker = "s" if method == TRL else "o"
            ax.plot(xs, ys, style, marker=marker, color=color, label=f"{method} (lr {lr:g})")
            for r in rows:  # every seed as a faint point
                ax.scatter(r[f"{key}_seeds"], r["eval_win_rate_seeds"], s=10, alpha=0.35,
                           color=color)  # fmt: skip
            ax.set_xlabel(label)
    for ax in axes:
        ax.axhline(0.5, color="grey", lw=0.8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out win rate vs initial model")
    axes[-1].legend(fontsize=7, loc="best")
    fig.suptitle("SmolLM2-135M, offline oracle: mean over seeds (lines), each seed (points)")
    fig.tight_layout()
    path = folder / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def clean_rates(path: Path | None) -> dict[str, float]:
    """Samples/s of each method measured alone (``llm_throughput.py``'s JSON), by method name."""
    if path is None or not path.is_file():
        return {}
    results = json.loads(path.read_text())["results"]
    names = {"wind": "wind-squared", "trl": TRL}
    return {names.get(k, k.partition(":")[2] or k): r["samples_per_second"]
            for k, r in results.items() if "samples_per_second" in r}  # fmt: skip


def report(
    out: Path, dest: Path, figs: Path, timing: Path | None, name: str, from_json: bool = False
) -> None:
    """Tables (``dest/NAME.md``), ``dest/NAME.json`` and the figures from the run directories
    under ``out``; with ``from_json``, only the tables, from the committed ``dest/NAME.json``
    (no run directories needed; the JSON and the figures stay as they are)."""
    from windalign.rundir import atomic_write, atomic_write_json

    if from_json:
        summary = json.loads((dest / f"{name}.json").read_text())
        runs = runs_from_summary(summary)
    else:
        runs = read_runs(out)
        if not runs:  # would overwrite a committed NAME.json with an empty one
            raise SystemExit(f"no finished runs under {out}: nothing written (--from-json "
                             f"rewrites the tables from {dest / name}.json)")  # fmt: skip
        summary = summarize(runs)
    clean = clean_rates(timing)
    dest.mkdir(parents=True, exist_ok=True)
    if not from_json:
        atomic_write_json(dest / f"{name}.json", summary)
    text = "\n".join([
        "## Every evaluation", "", markdown(summary),
        "## Cost to reach a held-out win rate (q = queries, s = samples, sec = seconds at the "
        "method's own samples/s measured alone)", "", CELLS, "",
        reach_table(runs, TARGETS, clean),
        "## Win rate at matched KL to the initial model", "", CELLS, "",
        frontier_table(runs, KL_LEVELS),
    ])  # fmt: skip
    atomic_write(dest / f"{name}.md", text)
    if from_json:
        print(f"wrote {dest}/{name}.md (from {name}.json)")
        return
    for p in figures(summary, figs, clean, name):
        print(f"wrote {p}")
    print(f"wrote {dest}/{name}.json, {name}.md")


# ---- the page: docs/results-llm.md's generated parts -------------------------------------------

PAGE_NAMES = ("llm_results", "llm_results_m2")  # the JSON files the page's blocks read
BEGIN = (
    "<!-- generated by benchmarks/llm_results.py --page: {} (edit the script, not this block) -->"
)
END = "<!-- end of generated block: {} -->"
LABELS = {"dpo": "`dpo` (online, soft labels)", "bon-distill": "`bon-distill` (iterated Best-of-2)",
          TRL: "TRL `OnlineDPOTrainer`"}  # fmt: skip
SHORT = {"dpo": "online DPO", "nash-md": "Nash-MD", "sppo": "SPPO", "jbond": "J-BOND",
         TRL: "TRL's OnlineDPOTrainer"}  # fmt: skip
CONTRASTIVE = ("wind-nce", "wind-squared", "nash-md", "dpo", "sppo", TRL)  # ipo = wind-squared
LIKELIHOOD = ("wind-kl", "bon-distill", "jbond")


def _require(holds: bool, what: str) -> None:
    """The page's words are fixed; where one depends on the data, regenerating checks it."""
    if not holds:
        raise ValueError(f"the data no longer supports the page's text ({what}): rewrite the "
                         "text of page_blocks in benchmarks/llm_results.py")  # fmt: skip


def _by_method(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Each method's rows in step order (the page shows one learning rate and two seeds)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in summary["rows"]:
        out[r["method"]].append(r)
    for method, rows in out.items():
        _require(len({r["lr"] for r in rows}) == 1, f"{method}: one learning rate")
        _require(all(r["seeds"] == 2 for r in rows), f"{method}: two seeds")
        rows.sort(key=lambda r: r["step"])
    return dict(out)


def _ci(r: dict[str, Any], i: int) -> str:
    lo, hi = _interval(r, i)
    return f"{r['eval_win_rate_seeds'][i]:.3f} [{lo:.3f}, {hi:.3f}]"


def _seeds(r: dict[str, Any], key: str = "eval_win_rate", spec: str = ".3f") -> str:
    return "; ".join(format(x, spec) for x in r[f"{key}_seeds"])


def _interval(r: dict[str, Any], i: int) -> tuple[float, float]:
    return r["eval_win_rate_lo_seeds"][i], r["eval_win_rate_hi_seeds"][i]


def _win(crossed: dict[str, float]) -> str:
    return f"{crossed['eval_win_rate']:.3f}"


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _same_steps(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """The same evaluations: equal steps and win rates, KL equal to 4 digits (float noise)."""
    return len(a) == len(b) and all(
        x["step"] == y["step"]
        and x["eval_win_rate_seeds"] == y["eval_win_rate_seeds"]
        and np.allclose(x["eval_kl_seeds"], y["eval_kl_seeds"], rtol=1e-4, atol=0)
        for x, y in zip(a, b, strict=True)
    )


def _half_widths(rows: list[dict[str, Any]]) -> list[float]:
    return [(hi - lo) / 2 for r in rows for lo, hi in
            zip(r["eval_win_rate_lo_seeds"], r["eval_win_rate_hi_seeds"], strict=True)]  # fmt: skip


def _below_half(r: dict[str, Any]) -> str:
    below = [i for i, w in enumerate(r["eval_win_rate_seeds"]) if w < 0.5]
    if len(below) == 2:
        return "below 1/2 on both seeds"
    if not below:
        return "above 1/2 on both seeds"
    other = 1 - below[0]
    return (f"below 1/2 on seed {below[0]} only (seed {other} ends at "
            f"{r['eval_win_rate_seeds'][other]:.3f})")  # fmt: skip


def _summary_block(rows: dict[str, list[dict[str, Any]]]) -> str:
    final = {m: rs[-1] for m, rs in rows.items()}
    twins = "ipo" in rows and _same_steps(rows["ipo"], rows["wind-squared"])
    hw = _half_widths(list(final.values()))
    rounds, samples = final["wind-squared"]["step"], final["wind-squared"]["samples"]
    lines = [
        f"Two seeds per method, {rounds} rounds ({samples:.0f} samples) each, win rate against the "
        f"initial model on 32 held-out prompts after round {rounds}; each seed's 95% interval "
        f"over prompts is ±{min(hw):.2f} to ±{max(hw):.2f} (median ±{np.median(hw):.2f}):",
        "",
        "| method | win rate, mean (seed 0; seed 1) | KL to initial, nats (seed 0; seed 1) | "
        "queries | samples |",
        "|---|---|---|---|---|",
    ]
    for m in sorted(final, key=lambda m: -final[m]["eval_win_rate"]):
        if twins and m == "ipo":
            continue
        label = ("`wind-squared` = `ipo` (identical runs, below)" if twins and m == "wind-squared"
                 else LABELS.get(m, f"`{m}`"))  # fmt: skip
        r = final[m]
        lines.append(
            f"| {label} | {r['eval_win_rate']:.3f} ({_seeds(r)}) | {r['eval_kl']:.2f} "
            f"({_seeds(r, 'eval_kl', '.2f')}) | {r['queries']:.0f} | {r['samples']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _claims_block(
    rows: dict[str, list[dict[str, Any]]], m2: dict[str, list[dict[str, Any]]]
) -> str:
    final = {m: rs[-1] for m, rs in rows.items()}
    rounds = final["wind-squared"]["step"]
    per_round = final["wind-squared"]["samples"] / rounds
    wind = ("wind-nce", "wind-squared")

    # WIND against J-BOND and iterated Best-of-N
    baseline = [(r["eval_win_rate_seeds"][i], m, i, r) for m in ("jbond", "bon-distill")
                for r in rows[m] for i in range(2)]  # fmt: skip
    _, best_m, best_i, best_r = max(baseline, key=lambda b: b[0])
    _require(all(_overlap(_interval(best_r, best_i), _interval(final[m], i))
                 for m in wind for i in range(2)),
             "the baselines' best evaluation overlaps every WIND seed's interval")  # fmt: skip
    low_m, low_i = min(
        ((m, i) for m in wind for i in range(2)),
        key=lambda mi: max(r["eval_win_rate_seeds"][mi[1]] for r in rows[mi[0]]),
    )
    low = rows[low_m]
    low_steps = ", ".join(f"{r['eval_win_rate_seeds'][low_i]:.3f} after {r['step']} rounds"
                          for r in low)  # fmt: skip
    jb, bon, sppo, kl = final["jbond"], final["bon-distill"], final["sppo"], final["wind-kl"]
    _require(all(w < 0.5 for w in kl["eval_win_rate_seeds"]), "wind-kl below 1/2")
    paper = (
        "* **The paper's question (does WIND need fewer samples and queries than J-BOND and "
        f"iterated Best-of-N?) is not answered by these runs.** After {rounds} rounds `wind-nce` "
        f"is at {_ci(final['wind-nce'], 0)} and {_ci(final['wind-nce'], 1)} (seed 0; seed 1) and "
        f"`wind-squared` at {_ci(final['wind-squared'], 0)} and "
        f"{_ci(final['wind-squared'], 1)}; J-BOND ends at {_ci(jb, 0)} and {_ci(jb, 1)}, "
        f"{_below_half(jb)}, and iterated Best-of-2 distillation at {_ci(bon, 0)} and "
        f"{_ci(bon, 1)}, {_below_half(bon)}. The best evaluation of either, "
        f"{_ci(best_r, best_i)} (`{best_m}`, seed {best_i}, after {best_r['step']} rounds), "
        f"overlaps the interval of every WIND seed after {rounds} rounds, and `{low_m}`'s seed "
        f"{low_i} reaches at most {max(r['eval_win_rate_seeds'][low_i] for r in low):.3f} "
        f"({low_steps}). With two seeds and overlapping intervals no ranking of WIND against "
        "these two baselines is established, in samples, queries or seconds."
    )
    against_sppo = (
        "* **Nor against SPPO**: its seeds end at "
        f"{_ci(sppo, 0)} (KL {sppo['eval_kl_seeds'][0]:.2f}) and {_ci(sppo, 1)} "
        f"(KL {sppo['eval_kl_seeds'][1]:.2f}), and at matched KL too few seeds are measured to "
        f"compare (below). Not every WIND loss shows a gain: `wind-kl` ends at {_ci(kl, 0)} and "
        f"{_ci(kl, 1)}, {_below_half(kl)}."
    )

    # the methods whose mean improves
    up = sorted((m for m in CONTRASTIVE if final[m]["eval_win_rate"] > 0.5),
                key=lambda m: -final[m]["eval_win_rate"])  # fmt: skip
    means = [final[m]["eval_win_rate"] for m in up]
    spread_m = max(final, key=lambda m: np.ptp(final[m]["eval_win_rate_seeds"]))
    spread = float(np.ptp(final[spread_m]["eval_win_rate_seeds"]))
    _require(max(means) - min(means) < spread, "the means differ less than one method's seeds")
    names = [f"{SHORT.get(m, f'`{m}`')} {final[m]['eval_win_rate']:.3f}" for m in up]
    pairwise = (
        "* **No ranking among the methods whose mean improves either**: "
        f"{', '.join(names[:-1])} and {names[-1]} (the table above): their means span "
        f"{min(means):.3f}-{max(means):.3f}, less than the two seeds of one method differ (up "
        f"to {spread:.3f}, `{spread_m}`)."
    )

    # the pattern by loss type
    lik = [w for m in LIKELIHOOD for w in final[m]["eval_win_rate_seeds"]]
    con = [(w, m, i) for m in CONTRASTIVE for i, w in enumerate(final[m]["eval_win_rate_seeds"])]
    top = max(lik)
    under = [f"`{m}` seed {i} at {w:.3f}" for w, m, i in con if w <= top]
    _require(len(under) < len(con) / 2, "most contrastive seeds end above the likelihood ones")

    def holds_half(methods: tuple[str, ...]) -> int:
        return sum(lo <= 0.5 <= hi for m in methods
                   for lo, hi in zip(final[m]["eval_win_rate_lo_seeds"],
                                     final[m]["eval_win_rate_hi_seeds"], strict=True))  # fmt: skip

    pattern = (
        "* **The clearest pattern is by loss type, and it is a pattern, not a per-method "
        "result**: every seed of the likelihood-type losses (`wind-kl`, `bon-distill`, `jbond`: "
        "maximum likelihood on weighted or winning samples of the model's own outputs) ends "
        f"between {min(lik):.3f} and {top:.3f}, and {len(con) - len(under)} of the {len(con)} "
        "seeds of the contrastive losses (`wind-nce`, `wind-squared` / `ipo`, `nash-md`, `dpo`, "
        f"`sppo`, TRL) end above {top:.3f}"
        + (f" (the others: {', '.join(under)})" if under else "")
        + f". But 1/2 lies inside the interval of {holds_half(LIKELIHOOD)} of the {len(lik)} "
        f"likelihood-type seeds and of {holds_half(CONTRASTIVE)} of the {len(con)} contrastive "
        "ones, so no single method's gain, or lack of one, is established. A possible reason for "
        "the pattern, not tested here: a likelihood step on the model's own samples mostly "
        "sharpens the model on what it already says (the shared part of every sample's "
        "gradient), and one Adam step per round at lr 2e-5 leaves little for the preference "
        "signal; the pairwise losses cancel that shared part."
    )

    # wind-squared = online IPO, and where they part
    _require(_same_steps(rows["ipo"], rows["wind-squared"]), "wind-squared and ipo agree")
    sq, ipo = m2["wind-squared"], m2["ipo"]

    def at(r: dict[str, Any]) -> str:
        return f"{r['eval_win_rate']:.3f} ({_seeds(r)}), KL {r['eval_kl']:.2f}"

    half = sq[0]["samples"] / per_round
    same = (
        "* **`wind-squared` and online IPO took the same steps** (every evaluation of the two runs "
        "agrees: the same win rates, KL equal to 4 digits): at its own sampler (`logp_old = "
        "logp`, the first step on a round's samples) the squared loss's gradient is exactly "
        "`lam = eta beta / (1 + eta beta)` times IPO's at the same beta (docs/objectives.md, "
        "tested to 1e-12), Adam removes the constant, and this setting takes one step per round. "
        "The two part only when a round's samples are used for more than one step: with two "
        "optimizer steps per round on the same samples "
        f"({sq[-1]['step']} steps, the same {sq[-1]['samples']:.0f} samples; two seeds) "
        f"`wind-squared` ends at {at(sq[-1])} and online IPO at {at(ipo[-1])} (after {half:.0f} "
        f'rounds: {at(sq[0])} and {at(ipo[0])}); section "Two steps per round".'
    )
    return "\n".join([paper, against_sppo, pairwise, pattern, same]) + "\n"


def _matched_kl_block(summary: dict[str, Any], rows: dict[str, list[dict[str, Any]]]) -> str:
    runs = runs_from_summary(summary)
    seeds = {m: c for (m, _), c in curves(runs).items()}
    first = rows["wind-squared"][0]["step"]
    sppo0 = rows["sppo"][0]["eval_kl_seeds"][0]
    drop = max(((r["eval_kl_seeds"][i] - s["eval_kl_seeds"][i], m, i, r, s)
                for m, rs in rows.items() for r, s in itertools.pairwise(rs) for i in range(2)),
               key=lambda d: d[0])  # fmt: skip
    _require(drop[0] > 0, "KL is not monotone along some run")
    _, dm, di, dr, ds = drop
    head = (
        "Each seed's win rate where its KL to the initial model first reaches the level, "
        f"interpolated linearly between two consecutive evaluations (rounds {first} and "
        f"{2 * first}) and only there. `gap`: the seed's KL first passes the level between the "
        f"initial model (round 0, KL 0) and its first evaluation at round {first}; that stretch "
        "is not measured and not interpolated (an earlier version of this table interpolated "
        f"across it: SPPO's seed 0, for one, goes from KL 0 to {sppo0:.2f} by round {first}). "
        "A cell holds the mean (seed 0; seed 1) where both seeds are measured, else seed 0; "
        f"seed 1. Even a measured entry interpolates across {first} rounds, and KL is not "
        f"monotone along a run (`{dm}` seed {di}: {dr['eval_kl_seeds'][di]:.2f} after "
        f"{dr['step']} rounds, {ds['eval_kl_seeds'][di]:.2f} after {ds['step']}):"
    )
    both = []
    for m, cs in sorted(seeds.items()):
        if m == "ipo":
            continue
        for k in KL_LEVELS:
            found = [crossing(c, "eval_kl", k) for c in cs]
            if all(isinstance(f, dict) for f in found):
                cell = _seed_cell(found, _win, show_seeds=True)
                name = "`wind-squared` / `ipo`" if m == "wind-squared" else f"`{m}`"
                both.append(f"{name} at KL {k:g}, {cell}")
    _require(bool(both), "some cell is measured on both seeds")
    trl = [[crossing(c, "eval_kl", k) for c in seeds[TRL]] for k in KL_LEVELS]
    _require(any(GAP in f for f in trl), "TRL has a gap")
    trl_cells = [f"`{_seed_cell(f, _win, show_seeds=True)}`" for f in trl]
    levels = [f"{k:g}" for k in KL_LEVELS]
    t6 = rows[TRL][0]
    tail = (
        f"Both seeds are measured only for {'; '.join(both)}; every other entry rests on one seed "
        "or none. With at most two seeds per cell and per-seed intervals of about ±0.06, this "
        "table ranks no method by KL-efficiency; that needs evaluations dense enough that "
        "interpolation is short (issue 18).\n\n"
        f"TRL in particular: its entries at KL {', '.join(levels[:-1])} and {levels[-1]} are "
        f"{', '.join(trl_cells[:-1])} and {trl_cells[-1]} (after {t6['step']} rounds its seeds "
        f"are at KL {' and '.join(f'{x:.2f}' for x in t6['eval_kl_seeds'])}), so whether TRL "
        "is less KL-efficient than the other methods is not established by these runs. This "
        "page used to attribute it to TRL's log-probabilities at temperature 1 for samples "
        "drawn at 0.7 (its KL term then restrains an untempered policy, not the one it samples; "
        "THEORY.md 8). That is a hypothesis, untested here: TRL also differs in its hard chosen "
        "/ rejected label from the two rewards (the WIND losses use the oracle's probability), "
        "in querying one pair per prompt (the others all 6 pairs of K = 4 samples, J-BOND and "
        "Nash-MD 3) and in taking 8 prompts x 2 samples per step (the others 4 prompts x 4)."
    )
    return "\n".join([head, "", frontier_table(runs, KL_LEVELS), tail]) + "\n"


def _two_steps_block(m2: dict[str, list[dict[str, Any]]], rows: dict[str, Any]) -> str:
    one = rows["wind-squared"][-1]
    per_round = one["samples"] / one["step"]
    sq, ipo = m2["wind-squared"], m2["ipo"]
    hw = _half_widths(sq + ipo)
    _require(all(_overlap(_interval(sq[-1], i), _interval(ipo[-1], j))
                 for i in range(2) for j in range(2)), "the two overlap")  # fmt: skip
    _require(max(sq[-1]["eval_win_rate"], ipo[-1]["eval_win_rate"]) < one["eval_win_rate"],
             "neither above one step per round")  # fmt: skip
    rounds = [f"{r['samples'] / per_round:.0f} rounds" for r in sq]
    lines = [f"| method | after {rounds[0]}: win rate (seed 0; seed 1), KL | after {rounds[-1]} |",
             "|---|---|---|"]  # fmt: skip
    for name, rs in (("wind-squared", sq), ("ipo", ipo)):
        cells = [f"{r['eval_win_rate']:.3f} ({_seeds(r)}), KL {r['eval_kl']:.2f}" for r in rs]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        f"\n\nWith two seeds and per-seed intervals of ±{min(hw):.2f} to ±{max(hw):.2f} that "
        "overlap, the two are not told apart, and neither ends above one step per round "
        f"({one['eval_win_rate']:.3f} after {one['step']} rounds, above): at this budget the "
        "second step on the same samples buys nothing measurable. Tables: "
        "[benchmarks/llm_results_m2.md](benchmarks/llm_results_m2.md).\n"
    )


def page_blocks(main: dict[str, Any], m2: dict[str, Any]) -> dict[str, str]:
    """The generated blocks of docs/results-llm.md from ``llm_results.json`` (``main``) and
    ``llm_results_m2.json`` (``m2``), by name."""
    rows, rows2 = _by_method(main), _by_method(m2)
    blocks = {
        "summary": _summary_block(rows),
        "claims": _claims_block(rows, rows2),
        "matched-kl": _matched_kl_block(main, rows),
        "two-steps": _two_steps_block(rows2, rows),
    }
    return {name: _wrap(text) for name, text in blocks.items()}


def _wrap(text: str, width: int = 100) -> str:
    """Paragraphs and ``* `` bullets wrapped at ``width`` as the page's prose is; table rows
    stay whole. Refuses a wrap that would start a line with Markdown syntax."""
    import textwrap

    out = []
    for line in text.split("\n"):
        if not line or line.startswith("|"):
            out.append(line)
            continue
        indent = "  " if line.startswith("* ") else ""
        wrapped = textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False,
                                break_on_hyphens=False)  # fmt: skip
        for w in wrapped[1:]:
            if re.match(r"\s*([-+*>#|]|\d+[.)])(\s|$)", w):
                raise ValueError(f"wrapping would start a Markdown construct: {w!r}")
        out.extend(wrapped)
    return "\n".join(out)


def write_page(page: Path, folder: Path) -> None:
    """Rewrite every generated block of ``page`` (between its ``BEGIN`` and ``END`` lines) from
    the JSON files in ``folder``; the text around them stays as written."""
    from windalign.rundir import atomic_write

    main, m2 = (json.loads((folder / f"{n}.json").read_text()) for n in PAGE_NAMES)
    text = page.read_text()
    for name, block in page_blocks(main, m2).items():
        begin, end = BEGIN.format(name) + "\n", "\n" + END.format(name) + "\n"
        if text.count(begin) != 1 or text.count(end) != 1:
            raise SystemExit(f"{page}: expected one line {begin.strip()!r} and one line "
                             f"{end.strip()!r}")  # fmt: skip
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + begin + "\n" + block + end + tail  # a blank line each side of the block
    atomic_write(page, text)
    print(f"wrote {page} (generated blocks from {folder}/{PAGE_NAMES[0]}*.json)")


def one_run(out: Path, overrides: dict[str, Any], method: str, lr: float, seed: int) -> None:
    path = run_dir(out, method, lr, seed)
    if finished(path):
        print(f"skip {path} (complete)", flush=True)
        return
    start = time.perf_counter()
    print(f"run {method} lr={lr:g} seed={seed} -> {path}", flush=True)
    if method == TRL:
        cmd = [sys.executable, __file__, "--trl-run", str(lr), str(seed), str(path)]
    else:
        cmd = wind_command(method, lr, seed, path, overrides)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.parent / f"{path.name}.log"
    with log.open("w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    what = "done" if code == 0 else f"FAILED (exit {code}, see {log})"
    print(f"{what} {path} in {time.perf_counter() - start:.0f} s", flush=True)


def parse_set(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
    return key, load_yaml(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/llm-results"), help="runs folder")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--lr", nargs="+", type=float, default=[2e-5], help="learning rates")
    p.add_argument("--workers", type=int, default=1, help="runs at a time")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (0: torch's)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config overrides of every wind train run (YAML values), e.g. "
                   "steps_per_round=2 max_steps=24 eval_steps=12")  # fmt: skip
    p.add_argument("--name", default="llm_results", help="stem of the report's files")
    p.add_argument("--report", type=Path, help="write tables into this folder (no runs)")
    p.add_argument(
        "--from-json",
        action="store_true",
        help="with --report: the tables from that folder's committed NAME.json, not "
        "from run directories (the JSON and the figures stay as they are)",
    )
    p.add_argument("--page", type=Path, metavar="PAGE",
                   help="rewrite the generated blocks of PAGE (docs/results-llm.md) from "
                   "llm_results.json and llm_results_m2.json in --report's folder "
                   "(default docs/benchmarks); no runs")  # fmt: skip
    p.add_argument("--figures", type=Path, default=Path("docs/figures/llm"))
    p.add_argument(
        "--timing",
        type=Path,
        default=Path("docs/benchmarks/llm_method_rates.json"),
        help="each method's samples/s measured alone (an earlier llm_throughput.py run at "
        "unequal work: indicative)",
    )
    p.add_argument("--trl-run", nargs="+", metavar="LR SEED DIR [OVERRIDES_JSON]",
                   help=argparse.SUPPRESS)  # fmt: skip
    args = p.parse_args(argv)
    if args.trl_run:
        lr, seed, folder, *extra = args.trl_run
        overrides = json.loads(Path(extra[0]).read_text()) if extra else None
        run_trl(float(lr), int(seed), Path(folder), overrides)
        return 0
    if args.from_json and not args.report:
        p.error("--from-json needs --report FOLDER (the folder that holds NAME.json)")
    if args.report:
        report(args.out, args.report, args.figures, args.timing, args.name, args.from_json)
    if args.page:
        write_page(args.page, args.report or ROOT / "docs" / "benchmarks")
    if args.report or args.page:
        return 0
    if TRL in args.methods:
        try:
            import trl  # noqa: F401
        except ImportError:
            p.error("the TRL baseline needs trl: pip install trl==1.16.0 (or leave out --methods "
                    f"{TRL})")  # fmt: skip
    if args.threads:  # torch's intra-op threads in every run (the runs' wall times depend on it)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    jobs = [(m, lr, seed) for seed in args.seeds for lr in args.lr for m in args.methods]
    with ThreadPoolExecutor(max_workers=args.workers) as pool:  # each job is a subprocess
        overrides = dict(parse_set(item) for item in args.set)
        if overrides and TRL in args.methods:
            p.error(f"--set applies to wind train runs only: leave {TRL} out")
        for future in [pool.submit(one_run, args.out, overrides, *job) for job in jobs]:
            future.result()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
