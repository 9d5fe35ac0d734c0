"""Issue 18's page from the committed sweep summaries alone (``docs/benchmarks/llm_sweep/``).

    python benchmarks/llm_sweep_report.py   # docs/results-llm-sweep.md, its JSON and figure

Reads what ``benchmarks/llm_sweep.py`` commits (no run directories, no models): the tuning
grid's validation win rates and the choice, the initial model's Best-of-2 / Best-of-4 on the
test prompts, every final run's evaluations, and writes

* the tuning table (every setting tried, the chosen one marked) and the compute spent;
* each method's test win rate and KL after every quarter, with Best-of-2 / Best-of-4 as targets;
* **paired differences**: WIND against each baseline, and each method against Best-of-2, per
  test prompt and seed (every run of a seed meets the same initial-model samples on the same
  prompts), with a 95% interval from a two-way bootstrap over seeds and prompts
  (:func:`paired_interval`). "Better" is said only where that interval excludes 0 *and* every
  seed's difference has the same sign (three seeds are too few for a bootstrap alone);
  otherwise "not separated";
* the rounds, samples and queries each method needs to match Best-of-2 / Best-of-4 of the
  initial model.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from llm_results import HYPER
from llm_sweep import (
    BEST_OF,
    FINAL_STEPS,
    KL_KNOB,
    KNOBS,
    LEARNING_RATES,
    METHODS,
    SEEDS,
    TUNE_STEPS,
    chosen,
    jobs,
    setting_name,
    summarized,
)

ROOT = Path(__file__).resolve().parents[1]
SUMMARIES = ROOT / "docs" / "benchmarks" / "llm_sweep"
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
REPS = 20_000


#: the methods with a KL coefficient, whose tuning also tries :data:`KL_KNOB`
KL_METHODS = tuple(m for m in METHODS if "beta" in HYPER[m])


def bon_kl_bound(n: int) -> float:
    """``log n - (n - 1) / n``: the most Best-of-n can move from the model it draws from, in KL
    (nats; Beirami et al. 2024).

    >>> round(bon_kl_bound(2), 3), round(bon_kl_bound(4), 3)
    (0.193, 0.636)
    """
    return math.log(n) - (n - 1) / n


def paired_interval(diffs: np.ndarray, reps: int = REPS, seed: int = 0) -> tuple[float, ...]:
    """Mean of a ``(seeds, prompts)`` matrix of paired differences and a 95% percentile interval
    from a two-way bootstrap: seeds and prompts resampled independently (crossed random effects:
    a prompt's difficulty is shared by the seeds, a seed's training luck by the prompts).

    >>> d = np.array([[0.1, 0.3], [0.2, 0.2]])
    >>> [round(x, 3) for x in paired_interval(d, reps=2000)][0]
    0.2
    >>> paired_interval(np.full((3, 5), 0.25), reps=100)
    (0.25, 0.25, 0.25)
    """
    d = np.asarray(diffs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n_s, n_p = d.shape  # a resample's mean is (seed counts) . d . (prompt counts) / (n_s n_p)
    cs = rng.multinomial(n_s, np.full(n_s, 1 / n_s), size=reps).astype(np.float64)
    cp = rng.multinomial(n_p, np.full(n_p, 1 / n_p), size=reps).astype(np.float64)
    means = np.einsum("rs,sp,rp->r", cs, d, cp) / (n_s * n_p)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x] if path.is_file() else []


def _complete(folder: Path) -> bool:
    status = folder / "status.json"
    return status.is_file() and json.loads(status.read_text()).get("status") == "complete"


def _per_prompt(folder: Path) -> dict[int, dict[str, np.ndarray]]:
    """step -> {"win": per-prompt win rates, "kl": per-prompt KL}, ordered by prompt index."""
    out = {}
    for row in _read_jsonl(folder / "evaluations.jsonl"):
        rows = sorted(row["prompts"], key=lambda r: r["index"])
        out[int(row["step"])] = {
            k: np.array([r[k] for r in rows], dtype=np.float64) for k in ("win_rate", "kl")
        }
    return out


def _seconds(folder: Path) -> float:
    """A run's duration: from its status's start to its end (model loading included), else the
    largest ``seconds_wall`` / ``seconds_evaluate`` its metrics logged (0 when none)."""
    status = json.loads((folder / "status.json").read_text())
    if status.get("started") and status.get("ended"):
        start, end = (datetime.fromisoformat(status[k]) for k in ("started", "ended"))
        return (end - start).total_seconds()
    rows = _read_jsonl(folder / "metrics.jsonl")
    return max([r.get(k, 0.0) for r in rows for k in ("seconds_wall", "seconds_evaluate")] or [0.0])


def load(summaries: Path) -> dict[str, Any]:
    """Everything the page needs, from the summaries alone."""
    tune: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for folder in sorted((summaries / "tune").glob("*/*/seed0")):
        run = json.loads((folder / "run.json").read_text())
        evals = [r for r in _read_jsonl(folder / "metrics.jsonl") if "eval_win_rate" in r]
        win = evals[-1]["eval_win_rate"] if evals and _complete(folder) else -math.inf
        tune[run["method"]].append(
            {"setting": folder.parent.name, "win": win, "seconds": _seconds(folder)}
        )
    targets: dict[int, dict[int, np.ndarray]] = defaultdict(dict)
    target_seconds = 0.0
    for folder in sorted((summaries / "targets").glob("best-of-*/seed*")):
        if _complete(folder):
            target_seconds += _seconds(folder)
            n, seed = int(folder.parent.name.split("-")[-1]), int(folder.name[4:])
            targets[n][seed] = _per_prompt(folder)[0]["win_rate"]
    picked = {m: chosen(summaries, m) for m in METHODS}
    final: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    superseded: dict[tuple[str, str], dict[int, dict[str, Any]]] = defaultdict(dict)
    for folder in sorted((summaries / "final").glob("*/*/seed*")):
        if _complete(folder):
            run = json.loads((folder / "run.json").read_text())
            metrics = [r for r in _read_jsonl(folder / "metrics.jsonl") if "eval_win_rate" in r]
            entry = {
                "setting": folder.parent.name,
                "evals": _per_prompt(folder),
                "metrics": {int(r["step"]): r for r in metrics},
                "seconds": _seconds(folder),
            }
            pick = picked[run["method"]]  # a setting tuning replaced, or none chosen: apart
            if pick is not None and setting_name(pick) == folder.parent.name:
                final[run["method"]][run["seed"]] = entry
            else:
                superseded[run["method"], folder.parent.name][run["seed"]] = entry
    progress = {}
    for stage in ("tune", "final"):
        known = jobs(stage, summaries, list(METHODS))
        progress[stage] = (sum(summarized(summaries, stage, j) for j in known), len(known))
    tuned = sum(x is not None for x in picked.values())
    return {
        "tune": dict(tune),
        "targets": dict(targets),
        "target_seconds": target_seconds,
        "final": dict(final),
        "superseded": dict(superseded),
        "chosen": {m: setting_name(x) for m, x in picked.items() if x is not None},
        "progress": {**progress, "tuned": (tuned, len(METHODS))},
    }


def difference(
    a: dict[int, Any], b: dict[int, Any] | None, step: int, b_step: int | None = None
) -> dict[str, Any] | None:
    """Paired per-prompt win-rate difference ``a - b`` at ``step`` over the seeds both have
    (``b`` None: against 1/2, the initial model itself; ``b_step``: b's step, default ``step``)."""
    at = step if b_step is None else b_step

    def has(x: Any) -> bool:  # a target (an array) or a run evaluated at b's step
        return isinstance(x, np.ndarray) or at in x["evals"]

    seeds = sorted(s for s in a if step in a[s]["evals"] and (b is None or (s in b and has(b[s]))))
    if not seeds:
        return None

    def value(x: Any) -> np.ndarray:
        return x if isinstance(x, np.ndarray) else x["evals"][at]["win_rate"]

    d = np.stack(
        [a[s]["evals"][step]["win_rate"] - (0.5 if b is None else value(b[s])) for s in seeds]
    )
    mean, lo, hi = paired_interval(d)
    per_seed = [float(x) for x in d.mean(axis=1)]
    same_sign = all(x > 0 for x in per_seed) or all(x < 0 for x in per_seed)
    verdict = "better" if lo > 0 else "worse" if hi < 0 else "not separated"
    if verdict != "not separated" and not same_sign:
        verdict = "not separated (seeds disagree)"
    if len(seeds) < len(SEEDS):  # the protocol's seeds or no verdict
        verdict = f"none yet ({len(seeds)} of {len(SEEDS)} seeds)"
    return {
        "mean": mean,
        "lo": lo,
        "hi": hi,
        "seeds": per_seed,
        "verdict": verdict,
        "n_seeds": len(seeds),
    }


def reach(runs: dict[int, Any], target: dict[int, np.ndarray]) -> dict[int, Any]:
    """Per seed, the first evaluation whose mean win rate reaches that seed's target (Best-of-N of
    the initial model against the same initial-model samples), with its rounds, samples and
    queries; None where no evaluation of the run reaches it."""
    out = {}
    for seed, run in sorted(runs.items()):
        if seed not in target:
            continue
        level = float(target[seed].mean())
        hit = next(
            (
                step
                for step in sorted(run["evals"])
                if run["evals"][step]["win_rate"].mean() >= level
            ),
            None,
        )
        m = run["metrics"].get(hit, {}) if hit is not None else {}
        out[seed] = (
            None
            if hit is None
            else {"round": hit, "samples": m.get("samples"), "queries": m.get("queries")}
        )
    return out


def matched(
    a: dict[int, Any], b: dict[int, Any], last: int, cost: str = "samples"
) -> dict[str, Any] | None:
    """``a - b`` at equal ``cost`` (``samples`` or ``queries``) where their rounds spend different
    amounts (J-BOND draws 3 samples per prompt and asks 3 queries, WIND 4 and 6): the run that
    spent less by round ``last`` is taken there, the other at its evaluation that spent as much;
    None when the amounts agree or no evaluation matches."""

    def spent(runs: dict[int, Any], step: int) -> float | None:
        counts = {r["metrics"].get(step, {}).get(cost) for r in runs.values()}
        return counts.pop() if len(counts) == 1 else None

    na, nb = spent(a, last), spent(b, last)
    if na is None or nb is None or na == nb:
        return None
    few = min(na, nb)
    other = b if na < nb else a
    steps = sorted({s for r in other.values() for s in r["metrics"]})
    match = [s for s in steps if spent(other, s) == few]
    if not match:
        return None
    a_step, b_step = (last, match[0]) if na < nb else (match[0], last)
    d = difference(a, b, a_step, b_step)
    return None if d is None else {**d, "spent": few, "a_step": a_step, "b_step": b_step}


def _ci(d: dict[str, Any] | None) -> str:
    return "—" if d is None else f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def _seeds(values: list[float], spec: str = "+.3f") -> str:
    return "; ".join(format(v, spec) for v in values)


def tables(data: dict[str, Any]) -> dict[str, Any]:
    """The page's numbers (also written as JSON)."""
    final, targets = data["final"], data["targets"]
    methods = [m for m in METHODS if m in final]
    steps = sorted({s for m in methods for r in final[m].values() for s in r["evals"]})
    out: dict[str, Any] = {
        "tune": data["tune"],
        "chosen": data["chosen"],
        "progress": data["progress"],
        "steps": steps,
        "methods": {},
    }
    out["targets"] = {
        n: {
            "seeds": sorted(t),
            "mean": float(np.mean([t[s].mean() for s in t])),
            "vs_initial": difference(
                {s: {"evals": {0: {"win_rate": v}}} for s, v in t.items()}, None, 0
            ),
        }
        for n, t in sorted(targets.items())
    }
    last = steps[-1] if steps else None
    for m in methods:
        runs = final[m]
        row: dict[str, Any] = {
            "setting": sorted({r["setting"] for r in runs.values()}),
            "seeds": sorted(runs),
            "curve": {},
        }
        for step in steps:
            have = [r for r in runs.values() if step in r["evals"]]
            row["curve"][step] = {
                "win": [float(r["evals"][step]["win_rate"].mean()) for r in have],
                "kl": [float(r["evals"][step]["kl"].mean()) for r in have],
                "samples": [r["metrics"].get(step, {}).get("samples") for r in have],
                "queries": [r["metrics"].get(step, {}).get("queries") for r in have],
                "vs_initial": difference(runs, None, step),
            }
        row["vs_wind"] = {  # each pair of methods once: a WIND loss minus a later method
            w: difference(final[w], runs, last)
            for w in WINDS
            if w in final and w != m and not (m in WINDS and WINDS.index(m) < WINDS.index(w))
        }
        row["vs_wind_matched"] = {
            w: {c: matched(final[w], runs, last, c) for c in ("samples", "queries")}
            for w in row["vs_wind"]
        }
        row["vs_target"] = {
            n: difference(runs, {s: v for s, v in t.items()}, last) for n, t in targets.items()
        }
        row["reach"] = {n: reach(runs, t) for n, t in targets.items()}
        out["methods"][m] = row
    out["superseded"] = []
    for (m, setting), runs in sorted(data.get("superseded", {}).items()):
        end = max(s for r in runs.values() for s in r["evals"])
        have = [r for r in runs.values() if end in r["evals"]]
        out["superseded"].append({
            "method": m, "setting": setting, "seeds": sorted(runs), "step": end,
            "win": float(np.mean([r["evals"][end]["win_rate"].mean() for r in have])),
            "kl": float(np.mean([r["evals"][end]["kl"].mean() for r in have])),
        })  # fmt: skip
    every_final = [*final.values(), *data.get("superseded", {}).values()]
    out["seconds"] = {
        "targets": data["target_seconds"],
        "tune": sum(r["seconds"] for rows in data["tune"].values() for r in rows),
        "final": sum(r["seconds"] for runs in every_final for r in runs.values()),
    }
    return out


def _knob_made_no_difference(rows: list[dict[str, Any]], knob: str) -> bool:
    """Whether some setting was tried with several values of ``knob`` (all else equal) that all
    gave the same validation win rate (to 1e-9).

    >>> rows = [{"setting": "lr1e-05_eta5", "win": 0.5}, {"setting": "lr1e-05_eta1", "win": 0.5},
    ...         {"setting": "lr1e-05_eta5_beta0.01", "win": 0.6}]
    >>> _knob_made_no_difference(rows, "eta"), _knob_made_no_difference(rows, "beta")
    (True, False)
    """
    by_rest: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        parts = r["setting"].split("_")
        if any(p.startswith(knob) for p in parts):
            by_rest["_".join(p for p in parts if not p.startswith(knob))].append(r["win"])
    return any(len(w) > 1 and max(w) - min(w) < 1e-9 for w in by_rest.values())


def markdown(t: dict[str, Any]) -> str:
    lines = [
        "# LLM sweep: tuned methods, three seeds, paired differences (issue 18)",
        "",
        "Generated by `python benchmarks/llm_sweep_report.py` from the committed summaries in",
        "`docs/benchmarks/llm_sweep/` (written by `benchmarks/llm_sweep.py`; edit the scripts,",
        "not this page).",
        "",
        f"**Status**: {t['progress']['tuned'][0]} of {t['progress']['tuned'][1]} methods tuned "
        f"({t['progress']['tune'][0]} of the {t['progress']['tune'][1]} tuning runs known so far "
        f"summarized); {t['progress']['final'][0]} of {len(SEEDS) * len(METHODS)} final runs "
        "summarized. A method without three final seeds is listed with the seeds it has, and no "
        "difference is claimed for it.",
        "",
        "## Protocol",
        "",
        "* Setting: `configs/demo.yaml` (SmolLM2-135M-Instruct, full fine-tune, fp32 on a 2-core "
        "CPU, the offline preference, K = 4 samples of 4 prompts per round at temperature 0.7, "
        "at most 40 new tokens; J-BOND 3 samples), trained on `builtin:train`.",
        f"* Tuning on `builtin:validation` (28 prompts), seed 0, {TUNE_STEPS} rounds, every method "
        f"the same way: learning rates {', '.join(f'{x:g}' for x in LEARNING_RATES)} with its own "
        "knob at its first value, then the knob's other values at the best learning rate ("
        + "; ".join(f"{m}: {k} {', '.join(f'{v:g}' for v in vs)}" for m, (k, vs) in KNOBS.items())
        + "), then, for every method with a KL coefficient ("
        + ", ".join(NAMES[m] for m in KL_METHODS)
        + f"), its {KL_KNOB[0]} at {', '.join(f'{v:g}' for v in KL_KNOB[1])} (0.1 before) at "
        "the best setting so far; the highest validation win rate is chosen.",
        f"* Final: the chosen setting, seeds {', '.join(map(str, SEEDS))}, {FINAL_STEPS} rounds "
        f"({FINAL_STEPS * 16} samples; J-BOND {FINAL_STEPS * 12}), evaluated on `builtin:test` "
        "(98 prompts, 2 samples per "
        f"model) every {FINAL_STEPS // 4} rounds against the initial model's samples, which are "
        "the same for every method of a seed.",
        "* Targets: the initial model's Best-of-"
        + " / Best-of-".join(map(str, BEST_OF))
        + " (N draws per sample, the oracle picks the winner) against the same initial-model "
        "samples, per seed.",
        "",
    ]
    lines += [
        "## Tuning (validation split, one seed, never reported as a result)",
        "",
        "| method | setting | validation win rate |",
        "|---|---|---|",
    ]
    for m in METHODS:
        for r in t["tune"].get(m, []):
            mark = " **(chosen)**" if t["chosen"].get(m) == r["setting"] else ""
            win = "failed" if r["win"] == -math.inf else f"{r['win']:.3f}"
            lines.append(f"| {NAMES[m]} | `{r['setting']}`{mark} | {win} |")
    flat = [m for m in KNOBS if _knob_made_no_difference(t["tune"].get(m, []), KNOBS[m][0])]
    if flat:
        lines += [
            "",
            f"The {' and '.join(f'{KNOBS[m][0]} of {NAMES[m]}' for m in flat)} made no difference "
            "(the same validation win rate at every value): with one optimizer step per round "
            "each round's gradient is the knob times a direction that does not depend on it, and "
            "neither Adam's step nor gradient clipping depends on that scale. Those runs bought "
            "nothing; with several steps per round the knob matters and needs its grid.",
        ]
    lines += [
        "",
        "## The Best-of-N target (the initial model's Best-of-N against itself, test)",
        "",
    ]
    for n, r in t["targets"].items():
        lines.append(
            f"* Best-of-{n}: win rate {0.5 + r['vs_initial']['mean']:.3f} "
            f"(seeds {_seeds([0.5 + x for x in r['vs_initial']['seeds']], '.3f')}), "
            f"minus 1/2: {_ci(r['vs_initial'])}; its KL from the initial model is at most "
            f"{bon_kl_bound(n):.2f} nats"
        )
    lines += [
        "",
        "A method's win rate against the initial model grows with how far it moves from it: "
        "compare win rates together with the KL column below (Best-of-N reaches its win rate "
        "within the KL bound above). A difference between methods that end at very different KL "
        "is a difference in how far they went as much as in how well they used their samples.",
    ]
    steps = t["steps"]
    lines += [
        "",
        "## Test win rate against the initial model, mean over seeds (each seed)",
        "",
        "| method | setting | seeds | "
        + " | ".join(f"round {s}" for s in steps)
        + " | KL at the end (nats) |",
        "|---|---|---|" + "---|" * (len(steps) + 1),
    ]
    for m, r in t["methods"].items():
        cells = [
            f"{np.mean(c['win']):.3f} ({_seeds(c['win'], '.3f')})" if c["win"] else "—"
            for c in r["curve"].values()
        ]
        kl = r["curve"][steps[-1]]["kl"]
        lines.append(
            f"| {NAMES[m]} | `{', '.join(r['setting'])}` | {len(r['seeds'])} | "
            + " | ".join(cells)
            + f" | {np.mean(kl):.2f} ({_seeds(kl, '.2f')}) |"
        )
    if t.get("superseded"):
        lines += [
            "",
            "Final runs at a setting other than the chosen one (tuning replaced it, or "
            "has not chosen yet; kept, not compared):",
            "",
        ]
        lines += [f"* {NAMES[r['method']]} `{r['setting']}`, seeds "
                  f"{', '.join(map(str, r['seeds']))}: round {r['step']} win rate {r['win']:.3f}, "
                  f"KL {r['kl']:.2f} nats" for r in t["superseded"]]  # fmt: skip
    lines += [
        "",
        f"## Paired differences after round {steps[-1] if steps else '?'}",
        "",
        "Per test prompt and seed, the same initial-model samples; mean [95% two-way "
        "bootstrap interval]; per-seed means in the last column.",
        "",
        "| comparison | difference in win rate | verdict | seeds | KL, nats (first / second) |",
        "|---|---|---|---|---|",
    ]

    def kl(m: str, step: int) -> str:
        values = t["methods"][m]["curve"].get(step, {}).get("kl")
        return f"{np.mean(values):.2f}" if values else "?"

    last = steps[-1] if steps else None
    for m, r in t["methods"].items():
        for w, d in r["vs_wind"].items():
            if d is not None:
                lines.append(
                    f"| {NAMES[w]} − {NAMES[m]} | {_ci(d)} | {d['verdict']} | "
                    f"{_seeds(d['seeds'])} | {kl(w, last)} / {kl(m, last)} |"
                )
            for cost, e in r["vs_wind_matched"].get(w, {}).items():
                if e is not None:  # the same comparison at equal cost
                    lines.append(
                        f"| {NAMES[w]} (round {e['a_step']}) − {NAMES[m]} (round {e['b_step']}), "
                        f"{e['spent']:g} {cost} each | {_ci(e)} | {e['verdict']} | "
                        f"{_seeds(e['seeds'])} | {kl(w, e['a_step'])} / {kl(m, e['b_step'])} |"
                    )
    for m, r in t["methods"].items():
        for n, d in r["vs_target"].items():
            if d is not None:
                lines.append(
                    f"| {NAMES[m]} − Best-of-{n} | {_ci(d)} | {d['verdict']} | "
                    f"{_seeds(d['seeds'])} | {kl(m, last)} / at most {bon_kl_bound(n):.2f} |"
                )
    lines += [
        "",
        "## Cost to match the initial model's Best-of-N (first evaluation at or above "
        "it; per seed)",
        "",
        "| method | target | rounds | samples | queries |",
        "|---|---|---|---|---|",
    ]
    for m, r in t["methods"].items():
        for n, per_seed in r["reach"].items():
            hits = list(per_seed.values())
            cell = {
                k: "; ".join("not reached" if h is None else f"{h[k]:g}" for h in hits)
                for k in ("round", "samples", "queries")
            }
            lines.append(
                f"| {NAMES[m]} | Best-of-{n} | {cell['round']} | {cell['samples']} | "
                f"{cell['queries']} |"
            )
    s = t["seconds"]
    lines += [
        "",
        "## Compute spent",
        "",
        f"Run time: Best-of-N targets {s['targets'] / 3600:.1f} h (one process, two threads), "
        f"tuning {s['tune'] / 3600:.1f} h and final runs {s['final'] / 3600:.1f} h (two runs at "
        "a time, one thread each, on the 2-core CPU: about half as many hours of the machine). "
        f"Machine time so far: about {(s['targets'] + (s['tune'] + s['final']) / 2) / 3600:.1f} h. "
        "These times were taken with the CPU shared, on machines that differ between sessions (one "
        "ran a WIND round in 51 s, the next in 25 s), and are not throughput measurements.",
        "",
    ]
    return "\n".join(lines)


def figure(t: dict[str, Any], path: Path) -> None:
    """Test win rate (mean over seeds) against samples, with Best-of-N's as lines, and against
    KL, with Best-of-N at its KL bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    cmap = plt.get_cmap("tab10")
    for i, (m, r) in enumerate(t["methods"].items()):
        for ax, key in zip(axes, ("samples", "kl"), strict=True):
            xs = [0.0] + [float(np.mean(c[key])) for c in r["curve"].values() if c["win"]]
            ys = [0.5] + [float(np.mean(c["win"])) for c in r["curve"].values() if c["win"]]
            ax.plot(xs, ys, marker="o", color=cmap(i), label=NAMES[m].replace("`", ""))
    for n, r in t["targets"].items():  # a line over samples; a point at its KL bound over KL
        win = 0.5 + r["vs_initial"]["mean"]
        axes[0].axhline(win, ls="--", color="grey", lw=1)
        axes[0].text(axes[0].get_xlim()[0], win, f" Best-of-{n}", va="bottom", color="grey")
        axes[1].plot([bon_kl_bound(n)], [win], marker="*", ms=12, color="grey", ls="none")
        axes[1].annotate(f"Best-of-{n} (KL at most)", (bon_kl_bound(n), win), color="grey",
                         xytext=(6, -4), textcoords="offset points")  # fmt: skip
    axes[0].set_xlabel("samples")
    axes[1].set_xlabel("KL to the initial model (nats)")
    axes[0].set_ylabel("test win rate vs the initial model")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--summaries", type=Path, default=SUMMARIES)
    p.add_argument("--page", type=Path, default=ROOT / "docs" / "results-llm-sweep.md")
    p.add_argument("--json", type=Path, default=ROOT / "docs" / "benchmarks" / "llm_sweep.json")
    p.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" / "llm" / "sweep.png")
    args = p.parse_args(argv)
    t = tables(load(args.summaries))
    args.json.write_text(json.dumps(_jsonable(t), indent=1) + "\n")
    text = markdown(t)
    if t["methods"]:
        figure(t, args.figure)
        text += f"\n![win rate against samples and KL]({Path('figures/llm') / args.figure.name})\n"
    args.page.write_text(text)
    print(f"wrote {args.page}, {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
