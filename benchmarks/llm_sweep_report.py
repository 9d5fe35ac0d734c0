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
  (``llm_sweep_stats.py``). "Better" is said only where that interval excludes 0 *and* every
  seed's difference has the same sign (three seeds are too few for a bootstrap alone);
  otherwise "not separated";
* the rounds, samples and queries each method needs to match Best-of-2 / Best-of-4 of the
  initial model, with intervals from the same bootstrap, and whether WIND needs fewer than each
  baseline (paired resamples);
* a first section that answers issue 18's question from those verdicts alone.
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
from llm_sweep_stats import (
    bon_kl_bound,
    difference,
    dominance,
    fewer,
    matched,
    reach,
    reach_interval,
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


#: the methods with a KL coefficient, whose tuning also tries :data:`KL_KNOB`
KL_METHODS = tuple(m for m in METHODS if "beta" in HYPER[m])


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


def _ci(d: dict[str, Any] | None) -> str:
    return "—" if d is None else f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def _seeds(values: list[float], spec: str = "+.3f") -> str:
    return "; ".join(format(v, spec) for v in values)


def _cost(c: dict[str, float]) -> str:
    """A cost with its interval; ``inf`` (not reached within the run) written out.

    >>> _cost({"point": 24.0, "lo": 12.0, "hi": math.inf})
    '24 [12, not reached]'
    """

    def f(x: float) -> str:
        return "not reached" if math.isinf(x) else f"{x:g}"

    return f"{f(c['point'])} [{f(c['lo'])}, {f(c['hi'])}]"


def _spent(cost: float, budget: float) -> str:
    """A seed's cost to reach a target; one never reached is known only to exceed the run's spend.

    >>> _spent(384.0, 768.0), _spent(math.inf, 576.0)
    ('384', 'not reached within 576')
    """
    return f"not reached within {budget:g}" if math.isinf(cost) else f"{cost:g}"


def _share(x: float) -> str:
    """A share of resamples in whole percent; a share that is not none (or not all) never reads
    as 0% (100%).

    >>> _share(0.0), _share(0.001), _share(0.5), _share(0.999), _share(1.0)
    ('0%', '<1%', '50%', '>99%', '100%')
    """
    if 0 < x < 0.01:
        return "<1%"
    if 0.99 < x < 1:
        return ">99%"
    return f"{x:.0%}"


def _reached(pairs: list[tuple[float, float]]) -> bool:
    return any(math.isfinite(x) for pair in pairs for x in pair)


def _kl_at(row: dict[str, Any], step: float) -> str:
    """A method's KL (mean over seeds) at an evaluation step; "—" where it has none."""
    values = row["curve"].get(int(step), {}).get("kl") if math.isfinite(step) else None
    return f"{np.mean(values):.2f}" if values else "—"


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
        row["dominance"] = {  # each side's end against the other's path at least as far out
            w: {"wind": dominance(final[w], runs, last), "other": dominance(runs, final[w], last)}
            for w in row["vs_wind"]
        }
        row["vs_target"] = {
            n: difference(runs, {s: v for s, v in t.items()}, last) for n, t in targets.items()
        }
        row["reach"] = {n: reach(runs, t) for n, t in targets.items()}
        row["reach_all"] = {n: reach_interval(runs, t) for n, t in targets.items()}
        row["fewer"] = {  # does the WIND loss reach each target spending less than this method
            w: {n: {c: fewer(final[w], runs, t, c) for c in ("samples", "queries")}
                for n, t in targets.items()}
            for w in row["vs_wind"]
        }  # fmt: skip
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


#: the question of issue 18: WIND against these on the cost to reach Best-of-2 ...
ASKED_COST = ("jbond", "sppo", "bok-distill")
#: ... and against these on the win rate at the end
ASKED_END = ("dpo", "trl-online-dpo")


def answer(t: dict[str, Any], n: int = 2) -> list[str]:
    """The page's first section: issue 18's question, answered from the verdicts alone (every
    cell is a verdict or a measured value with its interval)."""
    winds = [w for w in WINDS if w in t["methods"]]
    if not winds or n not in t["targets"]:
        return []
    last = t["steps"][-1]
    lines = [
        "## The answer so far",
        "",
        f"Does WIND reach the initial model's Best-of-{n} with fewer samples and queries than "
        + ", ".join(NAMES[m] for m in ASKED_COST)
        + ", at what KL, and how does it compare with "
        + " and ".join(NAMES[m] for m in ASKED_END)
        + '? Each cell is a verdict of the tables below ("none yet" until every method has '
        "its three seeds).",
        "",
        "| | " + " | ".join(NAMES[w] for w in winds) + " |",
        "|---|" + "---|" * len(winds),
    ]

    def reached(w: str) -> str:
        a = t["methods"][w]["reach_all"].get(n)
        if a is None:
            return "—"
        seeds = f"{a['n_seeds']} of {len(SEEDS)} seeds"
        if math.isinf(a["round"]["point"]):
            return f"not reached ({seeds}; {_cost(a['round'])})"
        return (
            f"round {_cost(a['round'])} ({seeds}), {a['samples']['point']:g} samples, "
            f"KL {_kl_at(t['methods'][w], a['round']['point'])} nats"
        )

    lines.append(
        f"| reaches Best-of-{n} at (pooled seeds) | " + " | ".join(map(reached, winds)) + " |"
    )

    def verdict(w: str, m: str, cost: str) -> str:
        f = t["methods"].get(m, {}).get("fewer", {}).get(w, {}).get(n, {}).get(cost)
        if f is None:
            return "—"
        return f"{f['verdict']}; less in {_share(f['less'])}, more in {_share(f['more'])} of resamples"

    for m in ASKED_COST:
        for cost in ("samples", "queries"):
            lines.append(
                f"| fewer {cost} than {NAMES[m]} | "
                + " | ".join(verdict(w, m, cost) for w in winds)
                + " |"
            )
    for m in ASKED_END:
        cells = []
        for w in winds:
            d = t["methods"].get(m, {}).get("vs_wind", {}).get(w)
            kl = _kl_at(t["methods"][w], last), _kl_at(t["methods"].get(m, {"curve": {}}), last)
            cells.append("—" if d is None else f"{d['verdict']}: {_ci(d)}, KL {kl[0]} / {kl[1]}")
        lines.append(f"| against {NAMES[m]} after round {last} | " + " | ".join(cells) + " |")

    def at_kl(w: str, m: str) -> str:
        sides = t["methods"].get(m, {}).get("dominance", {}).get(w)
        if sides is None:
            return "—"
        cells = [f"{who} end − {whose} path {_ci(d)}, {d['verdict']}"
                 for who, whose, d in (("WIND's", "its", sides["wind"]),
                                       ("its", "WIND's", sides["other"])) if d]  # fmt: skip
        return "; ".join(cells) or "neither moved as far as the other's end on every seed"

    for m in (*ASKED_COST, *ASKED_END):
        lines.append(
            f"| against {NAMES[m]} at no less KL (an end against the other's path as far out) | "
            + " | ".join(at_kl(w, m) for w in winds)
            + " |"
        )
    lines.append("")
    for m in ASKED_COST:  # a baseline that never got there bounds what "fewer" can decide
        r = t["methods"].get(m)
        seeds = (r or {}).get("reach", {}).get(n)
        if not seeds or any(x is not None for x in seeds.values()):
            continue
        f = next((f[n] for f in r["fewer"].values() if f.get(n, {}).get("samples")), None)
        spent = (
            ", ".join(f"{f[c]['budgets'][0][1]:g} {c}" for c in ("samples", "queries")) if f else ""
        )
        lines += [
            f"{NAMES[m]} reaches Best-of-{n} on none of its seeds within its runs ({spent}): "
            "where WIND needed more than that, whether it needs fewer is not decidable from these "
            "runs; the paired differences at equal samples and queries below compare them "
            "directly.",
            "",
        ]
    return lines


def at_no_more_kl(t: dict[str, Any]) -> list[str]:
    """The section comparing each method's end with the other's path at no less KL
    (``llm_sweep_stats.dominance``)."""
    lines = [
        "## At what KL: more win rate for less distance from the initial model?",
        "",
        "Win rate against the initial model grows as a method moves away from it, so a method "
        "that ends further away (more KL) may win by going further. Here one method's end meets "
        "the other's path where that one has moved at least as far: on each seed, the other's "
        "first evaluation whose KL is at least the end's (no interpolation between "
        "evaluations). The end *dominates* that point where its win rate is still better (the "
        "interval excludes 0 and every seed agrees): more win rate for less distance. A method "
        "that never moved as far on some seed gives no row.",
        "",
        "| end | against (round per seed) | difference in win rate | verdict | seeds "
        "| KL per seed, nats (end / against) | dominates |",
        "|---|---|---|---|---|---|---|",
    ]
    last = t["steps"][-1] if t["steps"] else None
    for m, r in t["methods"].items():
        for w, sides in r.get("dominance", {}).items():
            for end, other, d in ((w, m, sides["wind"]), (m, w, sides["other"])):
                if d is None:
                    continue
                kl = "; ".join(f"{a:.2f} / {b:.2f}" for a, b in d["kl"])
                lines.append(
                    f"| {NAMES[end]} (round {last}) | {NAMES[other]} "
                    f"({_seeds(d['y_steps'], 'g')}) | {_ci(d)} | {d['verdict']} | "
                    f"{_seeds(d['seeds'])} | {kl} | {'yes' if d['dominates'] else 'no'} |"
                )
    return [*lines, ""]


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
        *answer(t),
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
    edge_text = []
    for side, lr in (("smallest", min(LEARNING_RATES)), ("largest", max(LEARNING_RATES))):
        names = [NAMES[m] for m, c in t["chosen"].items() if c.split("_")[0] == f"lr{lr:g}"]
        if names:
            edge_text.append(f"the grid's {side} ({lr:g}) for {', '.join(names)}")
    if edge_text:
        lines += [
            "",
            f"The chosen learning rate is {'; '.join(edge_text)}: the best may lie beyond the "
            "grid, which was not widened (compute).",
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
    lines += ["", *at_no_more_kl(t)]
    lines += [
        "## Cost to match the initial model's Best-of-N",
        "",
        f"The first evaluation (every {FINAL_STEPS // 4} rounds) whose win rate is at or above "
        "the target's on the same prompts: over all seeds (mean over seeds and prompts) with a "
        '95% interval over resampled seeds and prompts, then per seed; "not reached": not '
        f"within the {FINAL_STEPS} rounds.",
        "",
        "| method | target | seeds | rounds [95%] | samples [95%] | queries [95%] | "
        "rounds per seed | KL there (nats) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, r in t["methods"].items():
        for n, a in r["reach_all"].items():
            if a is None:
                continue
            per_seed = _seeds([x["round"] if x else math.inf for x in r["reach"][n].values()], "g")
            lines.append(
                f"| {NAMES[m]} | Best-of-{n} | {a['n_seeds']} | {_cost(a['round'])} | "
                f"{_cost(a['samples'])} | "
                f"{_cost(a['queries'])} | {per_seed.replace('inf', 'not reached')} | "
                f"{_kl_at(r, a['round']['point'])} |"
            )
    lines += [
        "",
        "## Does WIND reach Best-of-N spending less?",
        "",
        "In each resample of seeds and prompts (the same for both methods) each method reaches "
        "the target at its first evaluation at or above it. A method that never reaches it is "
        "known only to need more than its whole run spent (J-BOND's rounds spend 12 samples and "
        "12 queries, WIND's 16 and 24), so WIND counts as spending less only within the other's "
        'spend. "fewer" where WIND spends less in at least 97.5% of the resamples and on every '
        "seed alone.",
        "",
        "| comparison | target | cost | per seed (WIND / other) | WIND less in | other less in "
        "| verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, r in t["methods"].items():
        for w, by_target in r["fewer"].items():
            for n, by_cost in by_target.items():
                for cost, f in by_cost.items():
                    if f is None or not (f["less"] or f["more"] or _reached(f["seeds"])):
                        continue  # neither reached the target in any seed or resample
                    seeds = "; ".join(
                        " / ".join(map(_spent, pair, budget))
                        for pair, budget in zip(f["seeds"], f["budgets"], strict=True)
                    )
                    lines.append(
                        f"| {NAMES[w]} − {NAMES[m]} | Best-of-{n} | {cost} | {seeds} | "
                        f"{_share(f['less'])} | {_share(f['more'])} | {f['verdict']} |"
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
