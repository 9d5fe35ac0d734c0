"""The statistics of issue 18's page (``llm_sweep_report.py``): paired differences of win rates
and the cost to reach a target, each with a 95% interval from one two-way bootstrap.

Every final run of a seed meets the same initial-model samples on the same test prompts, so a
method is a ``(seeds, prompts)`` matrix of win rates per evaluation, and two methods (or a method
and a Best-of-N target) are compared prompt by prompt. The bootstrap resamples seeds and prompts
independently (crossed random effects: a prompt's difficulty is shared by the seeds, a seed's
training luck by the prompts); with ``seed`` fixed, every method sees the same resamples, so a
comparison of two methods' resampled statistics is paired too.

A verdict needs the protocol's seeds, an interval (or a share of resamples) that excludes no
difference, *and* every seed agreeing in sign: three seeds are too few for a bootstrap alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from llm_sweep import SEEDS

REPS = 20_000
#: what reaching a target costs, read from the run's metrics at the evaluation that reached it
COSTS = ("round", "samples", "queries")


def bon_kl_bound(n: int) -> float:
    """``log n - (n - 1) / n``: the most Best-of-n can move from the model it draws from, in KL
    (nats; Beirami et al. 2024).

    >>> round(bon_kl_bound(2), 3), round(bon_kl_bound(4), 3)
    (0.193, 0.636)
    """
    return math.log(n) - (n - 1) / n


def resample_counts(n_seeds: int, n_prompts: int, reps: int = REPS, seed: int = 0):
    """``(reps, n_seeds)`` and ``(reps, n_prompts)`` multinomial counts of a two-way bootstrap: a
    resample's mean of a ``(seeds, prompts)`` matrix ``d`` is ``cs[r] @ d @ cp[r] / (S P)``. The
    same arguments give the same resamples (methods compared under them are paired).

    >>> cs, cp = resample_counts(3, 5, reps=4)
    >>> cs.shape, cp.shape, cs.sum(axis=1).tolist(), cp.sum(axis=1).tolist()
    ((4, 3), (4, 5), [3.0, 3.0, 3.0, 3.0], [5.0, 5.0, 5.0, 5.0])
    """
    rng = np.random.default_rng(seed)
    cs = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=reps).astype(np.float64)
    cp = rng.multinomial(n_prompts, np.full(n_prompts, 1 / n_prompts), size=reps)
    return cs, cp.astype(np.float64)


def paired_interval(diffs: np.ndarray, reps: int = REPS, seed: int = 0) -> tuple[float, ...]:
    """Mean of a ``(seeds, prompts)`` matrix of paired differences and a 95% percentile interval
    from the two-way bootstrap (:func:`resample_counts`).

    >>> d = np.array([[0.1, 0.3], [0.2, 0.2]])
    >>> [round(x, 3) for x in paired_interval(d, reps=2000)][0]
    0.2
    >>> paired_interval(np.full((3, 5), 0.25), reps=100)
    (0.25, 0.25, 0.25)
    """
    d = np.asarray(diffs, dtype=np.float64)
    n_s, n_p = d.shape
    cs, cp = resample_counts(n_s, n_p, reps, seed)
    means = np.einsum("rs,sp,rp->r", cs, d, cp) / (n_s * n_p)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(d.mean()), float(lo), float(hi)


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


def _steps(runs: dict[int, Any], seeds: list[int]) -> list[int]:
    """The evaluation steps every one of ``seeds`` has (their pooled mean needs all of them)."""
    return sorted(set.intersection(*(set(runs[s]["evals"]) for s in seeds)))


def _cost_at(runs: dict[int, Any], seeds: list[int], step: int, cost: str) -> float:
    """``cost`` spent by ``step`` (the seeds spend alike; NaN where the metrics lack it)."""
    if cost == "round":
        return float(step)
    return float(runs[seeds[0]]["metrics"].get(step, {}).get(cost, math.nan))


def _budget(runs: dict[int, Any], seeds: list[int], cost: str) -> float:
    """``cost`` spent by the last evaluation of the run: one that never reaches a target only
    shows that it needs more than this."""
    steps = _steps(runs, seeds)
    return _cost_at(runs, seeds, steps[-1], cost) if steps else 0.0


def _first_costs(
    runs: dict[int, Any], target: dict[int, np.ndarray], seeds: list[int], cs, cp
) -> dict[str, np.ndarray]:
    """Per resample (rows of the counts ``cs``, ``cp``), the round, samples and queries of the
    first evaluation whose win rate, averaged over the resample's seeds and prompts, is at or
    above the target's on the same resample; ``inf`` where no evaluation reaches it."""
    steps = _steps(runs, seeds)
    if not steps:
        return {c: np.full(len(cs), np.inf) for c in COSTS}
    wins = np.stack([[runs[s]["evals"][t]["win_rate"] for s in seeds] for t in steps])
    level = np.einsum("rs,sp,rp->r", cs, np.stack([target[s] for s in seeds]), cp)
    curve = np.einsum("rs,tsp,rp->rt", cs, wins, cp)
    hit = curve >= level[:, None] - 1e-9 * wins.shape[1] * wins.shape[2]  # sums: equal is reached
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), len(steps))
    return {
        c: np.array([_cost_at(runs, seeds, t, c) for t in steps] + [np.inf])[first] for c in COSTS
    }


def reach(runs: dict[int, Any], target: dict[int, np.ndarray]) -> dict[int, Any]:
    """Per seed, the first evaluation whose mean win rate reaches that seed's target (Best-of-N of
    the initial model against the same initial-model samples), with its rounds, samples and
    queries; None where no evaluation of the run reaches it."""
    out = {}
    for s in sorted(set(runs) & set(target)):
        one = np.ones((1, 1))
        hit = _first_costs(runs, target, [s], one, np.ones((1, len(target[s]))))
        out[s] = None if math.isinf(hit["round"][0]) else {c: hit[c][0] for c in COSTS}
    return out


def _quantiles(x: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(x, [0.025, 0.975], method="inverted_cdf")  # values that occur
    return float(lo), float(hi)


def reach_interval(
    runs: dict[int, Any], target: dict[int, np.ndarray], reps: int = REPS, seed: int = 0
) -> dict[str, Any] | None:
    """The cost (rounds, samples, queries) to reach ``target`` over all seeds the run and target
    share: the first evaluation (among those every seed has) whose mean over seeds and prompts
    is at or above the target's mean (``point``) and a 95% interval of that evaluation's cost
    over the two-way bootstrap; ``inf`` stands for "not reached within the run"."""
    seeds = sorted(set(runs) & set(target))
    if not seeds:
        return None
    n_p = len(target[seeds[0]])
    point = _first_costs(runs, target, seeds, np.ones((1, len(seeds))), np.ones((1, n_p)))
    boot = _first_costs(runs, target, seeds, *resample_counts(len(seeds), n_p, reps, seed))
    out: dict[str, Any] = {"n_seeds": len(seeds)}
    for c in COSTS:
        lo, hi = _quantiles(boot[c])
        out[c] = {"point": float(point[c][0]), "lo": lo, "hi": hi}
    return out


def fewer(
    a: dict[int, Any],
    b: dict[int, Any],
    target: dict[int, np.ndarray],
    cost: str,
    reps: int = REPS,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Whether ``a`` reaches ``target`` spending less ``cost`` (samples or queries) than ``b``,
    over the seeds all three share: in each resample of seeds and prompts, the same for both
    (paired), each reaches the target at its first evaluation at or above it. A run that never
    reaches it needs more than its whole run spent (its budget) and no more is known: ``a``
    spent less where its cost is below ``b``'s and within ``b``'s budget. "fewer" where ``a``
    spent less in at least 97.5% of the resamples and on every seed alone; "more" the other way
    round; else "not separated"."""
    seeds = sorted(set(a) & set(b) & set(target))
    if not seeds:
        return None
    counts = resample_counts(len(seeds), len(target[seeds[0]]), reps, seed)
    ca, cb = (_first_costs(x, target, seeds, *counts)[cost] for x in (a, b))
    ba, bb = (_budget(x, seeds, cost) for x in (a, b))
    less = float(np.mean((ca < cb) & (ca <= bb)))
    more = float(np.mean((cb < ca) & (cb <= ba)))
    ra, rb = reach(a, target), reach(b, target)
    per_seed = [
        tuple(math.inf if r[s] is None else float(r[s][cost]) for r in (ra, rb)) for s in seeds
    ]
    budgets = [(_budget(a, [s], cost), _budget(b, [s], cost)) for s in seeds]
    pairs = list(zip(per_seed, budgets, strict=True))
    if len(seeds) < len(SEEDS):  # the protocol's seeds or no verdict
        verdict = f"none yet ({len(seeds)} of {len(SEEDS)} seeds)"
    elif less >= 0.975 and all(x < y and x <= by for (x, y), (_, by) in pairs):
        verdict = "fewer"
    elif more >= 0.975 and all(y < x and y <= bx for (x, y), (bx, _) in pairs):
        verdict = "more"
    else:
        verdict = "not separated"
    return {"less": less, "more": more, "seeds": per_seed, "budgets": budgets,
            "verdict": verdict, "n_seeds": len(seeds)}  # fmt: skip


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


def _kl(run: dict[str, Any], step: int) -> float:
    """A run's KL from the initial model at ``step`` (mean over the test prompts)."""
    return float(np.mean(run["evals"][step]["kl"]))


def dominance(x: dict[int, Any], y: dict[int, Any], last: int) -> dict[str, Any] | None:
    """``x`` at round ``last`` against ``y`` where ``y`` has moved at least as far from the
    initial model: on each seed, ``y``'s first evaluation whose KL is at least ``x``'s there (no
    interpolation). ``x`` *dominates* where its win rate is still better (``difference``'s
    verdict: the interval excludes 0 and every seed agrees): more win rate for less distance.
    None where ``y`` never moved as far as ``x`` on some seed.

    >>> def run(kl, win):  # 3 seeds, 2 prompts, evaluated at rounds 12 and 24
    ...     return {s: {"evals": {t: {"kl": np.full(2, kl[t]), "win_rate": np.full(2, win[t])}
    ...                           for t in (12, 24)}} for s in range(3)}
    >>> a = run({12: 0.3, 24: 1.0}, {12: 0.55, 24: 0.6})
    >>> b = run({12: 2.0, 24: 4.0}, {12: 0.52, 24: 0.7})
    >>> d = dominance(a, b, 24)
    >>> d["y_steps"], d["dominates"], round(d["mean"], 2)
    ([12, 12, 12], True, 0.08)
    >>> dominance(b, a, 24) is None  # a never moved as far as b's end
    True
    """
    seeds = sorted(s for s in set(x) & set(y) if last in x[s]["evals"] and last in y[s]["evals"])
    if not seeds:
        return None
    y_steps, kl = [], []
    for s in seeds:
        end = _kl(x[s], last)
        far = next((t for t in sorted(y[s]["evals"]) if _kl(y[s], t) >= end), None)
        if far is None:
            return None
        y_steps.append(far)
        kl.append((end, _kl(y[s], far)))
    d = difference(
        {s: {"evals": {0: x[s]["evals"][last]}} for s in seeds},
        {s: {"evals": {0: y[s]["evals"][t]}} for s, t in zip(seeds, y_steps, strict=True)},
        0,
    )
    return {
        **d,
        "y_steps": y_steps,
        "dominates": d["verdict"] == "better",
        "kl": kl,
    }
