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

This module reads and computes; ``llm_sweep_page.py`` writes the page's text.
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
from llm_sweep import (
    METHODS,
    NAMES,
    ROOT,
    SUMMARIES,
    WINDS,
    chosen,
    jobs,
    setting_name,
    summarized,
)
from llm_sweep_page import markdown
from llm_sweep_stats import (
    bon_kl_bound,
    difference,
    dominance,
    fewer,
    matched,
    reach,
    reach_interval,
)


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
