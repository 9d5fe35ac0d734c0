"""Agreement of every offline-runnable oracle with the labeled pairs, and its cost per query.

    python benchmarks/oracles.py --out docs/benchmarks      # ~2 minutes on a 2-core CPU

Each labeled pair (windalign/preferences/labeled_pairs.jsonl: prompt, better, worse, kind) is one
query (K = 2). Agreement = share of pairs where ``P(better > worse) > 1/2`` (ties count 1/2), with
a 95% Wilson interval, overall and per kind; also the mean ``P(better > worse)``. Cost = wall
seconds, calls and seconds per query, measured in the same run. Writes ``oracles.json`` and
``oracles.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from pathlib import Path

import torch

from windalign.preferences import as_oracle
from windalign.preferences.offline import labeled_pairs
from windalign.rundir import atomic_write, atomic_write_json

ORACLES = {
    "offline": {},
    "heuristic": {},
    "judge": {"model": "smollm2", "batch_size": 8},
}


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``k / n``."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def measure(name: str, kwargs: dict, pairs: list[dict[str, str]]) -> dict:
    start = time.perf_counter()
    oracle = as_oracle(name, **kwargs)
    load = time.perf_counter() - start
    start = time.perf_counter()
    probs = []
    for pair in pairs:  # one query at a time: the per-query cost a trainer would see at K = 2
        P = oracle([pair["prompt"]], [[pair["better"], pair["worse"]]])
        probs.append(P[0, 0, 1].item())
    seconds = time.perf_counter() - start
    test = {p["prompt"] for p in labeled_pairs("test")}
    by_kind: dict[str, list[float]] = defaultdict(list)
    for pair, p in zip(pairs, probs, strict=True):
        by_kind[pair["kind"]].append(p)
        by_kind["all"].append(p)
        if pair["prompt"] in test:
            by_kind["test half"].append(p)

    def stats(ps: list[float]) -> dict:
        hits = sum(1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0 for p in ps)
        lo, hi = wilson(hits, len(ps))
        return {"n": len(ps), "agreement": hits / len(ps), "lo": lo, "hi": hi,
                "mean_p": sum(ps) / len(ps)}  # fmt: skip

    return {
        "oracle": oracle.name,
        "load_seconds": load,
        "seconds_per_query": seconds / len(pairs),
        "calls_per_query": oracle.counters.calls / oracle.counters.queries,
        "kinds": {kind: stats(ps) for kind, ps in sorted(by_kind.items())},
    }


def table(results: dict[str, dict]) -> str:
    kinds = sorted({k for r in results.values() for k in r["kinds"]} - {"all", "test half"})
    head = ["oracle", "all", "test half", *kinds, "s / query", "calls / query"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        a, t = r["kinds"]["all"], r["kinds"]["test half"]
        cells = [f"`{name}`", f"**{a['agreement']:.2f}** [{a['lo']:.2f}, {a['hi']:.2f}]"]
        cells.append(f"{t['agreement']:.2f} [{t['lo']:.2f}, {t['hi']:.2f}]")
        cells += [f"{r['kinds'][k]['agreement']:.2f}" for k in kinds]
        cells += [f"{r['seconds_per_query']:.3g}", f"{r['calls_per_query']:.3g}"]
        rows.append("| " + " | ".join(cells) + " |")
    n = next(iter(results.values()))["kinds"]
    counts = ", ".join(f"{k} {n[k]['n']}" for k in kinds)
    return "\n".join(
        [
            "# Preference oracles on the labeled pairs",
            "",
            "Agreement = share of the labeled pairs where the oracle gives "
            "`P(better > worse) > 1/2` (ties 1/2), with 95% Wilson intervals. The offline "
            "oracle's relevance cap and phrase lists were chosen looking at failures on the dev "
            "half of the pairs; the *test half* was not looked at, so its column is the unbiased "
            "estimate. Cost per query measured in the same "
            f"run (one query per call to the oracle, K = 2). Pairs: {n['all']['n']} ({counts}). "
            f"Machine: {torch.get_num_threads()} torch threads, CPU. Reproduce: "
            "`python benchmarks/oracles.py --out docs/benchmarks`.",
            "",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/benchmarks")
    parser.add_argument("--oracles", nargs="+", default=list(ORACLES), choices=list(ORACLES))
    args = parser.parse_args()
    pairs = labeled_pairs()
    results = {}
    for name in args.oracles:
        results[name] = measure(name, ORACLES[name], pairs)
        print(name, json.dumps(results[name]["kinds"]["all"]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "oracles.json", results)
    atomic_write(out / "oracles.md", table(results))
    print(table(results))


if __name__ == "__main__":
    main()
