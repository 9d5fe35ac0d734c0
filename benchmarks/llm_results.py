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
evaluation seed depends only on (seed, step), so every method meets the same baseline samples).
The WIND runs go through ``wind train`` in a subprocess, one at a time; a finished run (its
``status.json`` says ``complete``) is skipped, so an interrupted sweep resumes where it stopped.

TRL's ``OnlineDPOTrainer`` (``pip install trl==1.16.0``; only this script needs it) gets the same
model, prompts (same chat template), reward (the offline oracle's reward), temperature, length,
optimizer, learning rate and beta, with 8 prompts x 2 samples per step: the same 16 samples per
step as K = 4 on 4 prompts. It is evaluated by the same function at the same steps. Its cost
counters: 16 samples and 8 preference queries (one pair per prompt) per step.

``--report`` reads every run's ``metrics.jsonl`` and writes ``llm_results.json``, ``llm_results.md``
and the figures (``--figures``).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

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
    TRL: {"beta": 0.1},
}
OBJECTIVE_KEYS = ("objective", "eta", "beta", "alpha", "gamma", "beta_anchor", "num_samples")


def base_config() -> dict[str, Any]:
    """The demo's config without its objective-specific keys."""
    config = yaml.safe_load(DEMO.read_text())
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
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
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


def run_trl(lr: float, seed: int, path: Path) -> None:
    """TRL's OnlineDPOTrainer with the demo's setting; the same evaluation at the same steps.

    Writes ``metrics.jsonl`` (rows like ``wind train``'s: ``eval_*`` with the cost counters
    ``samples``, ``queries``, ``seconds_wall``) and ``status.json``."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    from windalign.llm.config import WINDConfig
    from windalign.llm.data import load_prompts
    from windalign.llm.evaluate import evaluate
    from windalign.lm.loading import resolve_model
    from windalign.preferences import as_oracle
    from windalign.rundir import atomic_write_json

    demo = base_config()
    defaults = {f.name: f.default for f in dataclasses.fields(WINDConfig)}
    folder = resolve_model(demo["model"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    oracle = as_oracle(demo["preference"])
    train = load_prompts(demo["prompts"], "prompt")
    evals = load_prompts(demo["eval_prompts"], "prompt")[: demo["eval_prompt_count"]]
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
        beta=[HYPER[TRL]["beta"]],
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
    metrics = path / "metrics.jsonl"
    metrics.write_text("")
    state = {"seconds_wall": 0.0, "seconds_evaluate": 0.0, "mark": 0.0}

    class Evaluate(TrainerCallback):
        def on_train_begin(self, args: Any, st: Any, control: Any, **kw: Any) -> None:
            state["mark"] = time.perf_counter()

        def on_step_end(self, args: Any, st: Any, control: Any, **kw: Any) -> None:
            state["seconds_wall"] += time.perf_counter() - state["mark"]
            step = st.global_step
            row: dict[str, Any] = {"step": step, "samples": 16.0 * step, "queries": 8.0 * step,
                                   "oracle_calls": 16.0 * step}  # fmt: skip
            if step % EVAL_STEPS == 0:
                start = time.perf_counter()
                # the evaluation seed of wind train at this step (WINDTrainer._seed(step, 1))
                eval_seed = int(np.random.SeedSequence([seed, step, 1, 0]).generate_state(1)[0])
                result = evaluate(  # as WINDTrainer.evaluate with WINDConfig's defaults
                    model, ref, tokenizer, evals, oracle, samples=defaults["eval_samples"],
                    temperature=demo["temperature"], max_new_tokens=demo["max_new_tokens"],
                    max_prompt_length=defaults["max_prompt_length"],
                    batch_size=defaults["generation_batch_size"], seed=eval_seed,
                )  # fmt: skip
                state["seconds_evaluate"] += time.perf_counter() - start
                row |= {f"eval_{k}": v for k, v in result.summary.items()}
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


def crossing(points: list[dict[str, Any]], key: str, level: float) -> dict[str, float] | None:
    """Every value where ``points[key]`` first reaches ``level``, linearly interpolated between
    consecutive evaluations; None if it never does."""
    for a, b in itertools.pairwise(points):
        if b[key] >= level > a[key]:
            t = (level - a[key]) / (b[key] - a[key])
            return {k: a[k] + t * (b[k] - a[k]) for k in (*COST, "eval_win_rate", "eval_kl")}
    return None


def _mean_cell(found: list[dict[str, float] | None], fmt: Any) -> str:
    got = [f for f in found if f is not None]
    if not got:
        return f"not reached (0/{len(found)})"
    mean = {k: float(np.mean([g[k] for g in got])) for k in got[0]}
    return f"{fmt(mean)} ({len(got)}/{len(found)})"


def reach_table(
    runs: list[dict[str, Any]], targets: tuple[float, ...], clean: dict[str, float]
) -> str:
    """Cost to first reach each target win rate, per seed (interpolated), mean over the seeds
    that reach it; ``clean`` = samples/s of each method measured alone (llm_throughput.py)."""
    head = " | ".join(f"to {t:.2f}" for t in targets)
    lines = [f"| method | lr | {head} |", "|---|---|" + "---|" * len(targets)]

    def fmt(method: str) -> Any:
        rate = clean.get(method)
        return lambda m: (f"{m['queries']:.0f} q / {m['samples']:.0f} s"
                          + (f" / {m['samples'] / rate:.0f} sec" if rate else "")
                          + f" / KL {m['eval_kl']:.2f}")  # fmt: skip

    for (method, lr), seeds in sorted(curves(runs).items()):
        cells = [_mean_cell([crossing(c, "eval_win_rate", t) for c in seeds], fmt(method))
                 for t in targets]  # fmt: skip
        lines.append(f"| {method} | {lr:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def frontier_table(runs: list[dict[str, Any]], levels: tuple[float, ...]) -> str:
    """Win rate at matched KL: where each seed's KL first reaches each level (interpolated)."""
    head = " | ".join(f"KL {k:g}" for k in levels)
    lines = [f"| method | lr | {head} |", "|---|---|" + "---|" * len(levels)]
    for (method, lr), seeds in sorted(curves(runs).items()):
        cells = [_mean_cell([crossing(c, "eval_kl", k) for c in seeds],
                            lambda m: f"{m['eval_win_rate']:.3f}") for k in levels]  # fmt: skip
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


def report(out: Path, dest: Path, figs: Path, timing: Path | None, name: str) -> None:
    from windalign.rundir import atomic_write, atomic_write_json

    runs = read_runs(out)
    summary = summarize(runs)
    clean = clean_rates(timing)
    dest.mkdir(parents=True, exist_ok=True)
    atomic_write_json(dest / f"{name}.json", summary)
    text = "\n".join([
        "## Every evaluation", "", markdown(summary),
        "## Cost to reach a held-out win rate (q = queries, s = samples, sec = seconds at the "
        "method's own samples/s measured alone; seeds that reach it)", "",
        reach_table(runs, TARGETS, clean),
        "## Win rate at matched KL to the initial model (seeds whose KL reaches it)", "",
        frontier_table(runs, KL_LEVELS),
    ])  # fmt: skip
    atomic_write(dest / f"{name}.md", text)
    for p in figures(summary, figs, clean, name):
        print(f"wrote {p}")
    print(f"wrote {dest}/{name}.json, {name}.md")


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
    return key, yaml.safe_load(value)


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
    p.add_argument("--figures", type=Path, default=Path("docs/figures/llm"))
    p.add_argument(
        "--timing",
        type=Path,
        default=Path("docs/benchmarks/llm_throughput.json"),
        help="llm_throughput.py's JSON: each method's samples/s measured alone",
    )
    p.add_argument("--trl-run", nargs=3, metavar=("LR", "SEED", "DIR"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.trl_run:
        run_trl(float(args.trl_run[0]), int(args.trl_run[1]), Path(args.trl_run[2]))
        return 0
    if args.report:
        report(args.out, args.report, args.figures, args.timing, args.name)
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
