"""The markdown of issue 18's page (``docs/results-llm-sweep.md``) from the numbers
``llm_sweep_report.tables`` computes: the answer first, then the protocol, the tuning grid, the
Best-of-N targets, the curves, the paired differences, the comparison at no less KL, the cost
to reach Best-of-N and the compute spent. Every verdict is the statistics'
(``llm_sweep_stats``); this module only writes them down.
"""

from __future__ import annotations

import math
from collections import defaultdict
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
    NAMES,
    SEEDS,
    TUNE_STEPS,
    WINDS,
)
from llm_sweep_stats import bon_kl_bound

#: the methods with a KL coefficient, whose tuning also tries :data:`KL_KNOB`
KL_METHODS = tuple(m for m in METHODS if "beta" in HYPER[m])


def _ci(d: dict[str, Any] | None) -> str:
    return "—" if d is None else f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


def _seeds(values: list[float], spec: str = "+.3f") -> str:
    return "; ".join(format(v, spec) for v in values)


def _count(x: float) -> str:
    """A round, sample or query count; ``inf`` is a target not reached within the run."""
    return "not reached" if math.isinf(x) else f"{x:g}"


def _cost(c: dict[str, float]) -> str:
    """A cost with its interval; ``inf`` (not reached within the run) written out.

    >>> _cost({"point": 24.0, "lo": 12.0, "hi": math.inf})
    '24 [12, not reached]'
    """

    return f"{_count(c['point'])} [{_count(c['lo'])}, {_count(c['hi'])}]"


def _spent(cost: float, budget: float) -> str:
    """A seed's cost to reach a target; one never reached is known only to exceed the run's spend.

    >>> _spent(384.0, 768.0), _spent(math.inf, 576.0)
    ('384', 'not reached within 576')
    """
    return f"not reached within {budget:g}" if math.isinf(cost) else _count(cost)


def _share(x: float) -> str:
    """A share of resamples in whole percent; a share that is not none (or not all) never reads
    as 0% (100%).

    >>> [_share(x) for x in (0.0, 0.004, 0.5, 0.99, 0.996, 1.0)]
    ['0%', '<1%', '50%', '99%', '>99%', '100%']
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
    done, total = t.get("progress", {}).get("final", (0, 1))
    lines = [
        "## The answer" + ("" if done == total else " so far"),
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
        shares = f"less in {_share(f['less'])}, more in {_share(f['more'])} of resamples"
        return f"{f['verdict']}; {shares}"

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


def _header(t: dict[str, Any]) -> list[str]:
    """The title and the sweep's progress."""
    return [
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
    ]


def _protocol() -> list[str]:
    """What was run: setting, tuning grid, final runs, targets."""
    return [
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


def _tuning(t: dict[str, Any]) -> list[str]:
    """Every tuning run (the choice marked), knobs that made no difference, grid edges."""
    lines = [
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
    return lines


def _targets(t: dict[str, Any]) -> list[str]:
    """The initial model's Best-of-N against itself."""
    lines = [
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
    return lines


def _curves(t: dict[str, Any]) -> list[str]:
    """Each method's test win rate at every evaluation and its KL at the end."""
    steps = t["steps"]
    lines = [
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
    return lines


def _differences(t: dict[str, Any]) -> list[str]:
    """Paired differences at the end, at equal cost, and against Best-of-N."""
    steps = t["steps"]
    lines = [
        "",
        f"## Paired differences after round {steps[-1] if steps else '?'}",
        "",
        "Per test prompt and seed, the same initial-model samples; mean [95% two-way "
        "bootstrap interval]; per-seed means in the last column.",
        "",
        "| comparison | difference in win rate | verdict | seeds | KL, nats (first / second) |",
        "|---|---|---|---|---|",
    ]
    last = steps[-1] if steps else None
    for m, r in t["methods"].items():
        for w, d in r["vs_wind"].items():
            if d is not None:
                lines.append(
                    f"| {NAMES[w]} − {NAMES[m]} | {_ci(d)} | {d['verdict']} | "
                    f"{_seeds(d['seeds'])} | {_kl_at(t['methods'][w], last)} / {_kl_at(r, last)} |"
                )
            for cost, e in r["vs_wind_matched"].get(w, {}).items():
                if e is not None:  # the same comparison at equal cost
                    lines.append(
                        f"| {NAMES[w]} (round {e['a_step']}) − {NAMES[m]} (round {e['b_step']}), "
                        f"{e['spent']:g} {cost} each | {_ci(e)} | {e['verdict']} | "
                        f"{_seeds(e['seeds'])} | {_kl_at(t['methods'][w], e['a_step'])} / "
                        f"{_kl_at(r, e['b_step'])} |"
                    )
    for m, r in t["methods"].items():
        for n, d in r["vs_target"].items():
            if d is not None:
                lines.append(
                    f"| {NAMES[m]} − Best-of-{n} | {_ci(d)} | {d['verdict']} | "
                    f"{_seeds(d['seeds'])} | {_kl_at(r, last)} / at most {bon_kl_bound(n):.2f} |"
                )
    lines.append("")
    return lines


def _costs(t: dict[str, Any]) -> list[str]:
    """The rounds, samples and queries to reach each Best-of-N target."""
    lines = [
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
            per_seed = "; ".join(
                _count(x["round"] if x else math.inf) for x in r["reach"][n].values()
            )
            lines.append(
                f"| {NAMES[m]} | Best-of-{n} | {a['n_seeds']} | {_cost(a['round'])} | "
                f"{_cost(a['samples'])} | "
                f"{_cost(a['queries'])} | {per_seed} | "
                f"{_kl_at(r, a['round']['point'])} |"
            )
    return lines


def _spending(t: dict[str, Any]) -> list[str]:
    """Whether WIND reaches each target spending less than each other method."""
    lines = [
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
    return lines


def _compute(t: dict[str, Any]) -> list[str]:
    """The run time spent."""
    s = t["seconds"]
    return [
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


def markdown(t: dict[str, Any]) -> str:
    """The whole page, section by section."""
    sections = [_header(t), answer(t), _protocol()]
    for section in (_tuning, _targets, _curves, _differences, at_no_more_kl, _costs, _spending,
                    _compute):  # fmt: skip
        sections.append(section(t))
    return "\n".join(line for section in sections for line in section)
