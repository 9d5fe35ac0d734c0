"""Aggregate benchmark runs over seeds (means with 95% t-intervals), write tables and figures.

Answers, with measured numbers (see ``docs/results-bandit.md``): (1) queries and samples each
method needs to reach the win rate of exact iterated Best-of-2 ``Bo2^t(pi_ref)`` (THEORY.md 2);
(2) the win rate each method has when its KL to the reference reaches a level (matched KL);
(3) the final metrics of every method (squared vs kl vs nce among them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from windalign.plotting import Curve, bar_plot, line_plot

METRICS = ("win_rate_ref", "exploitability", "kl_to_eq", "gap", "kl_ref")
#: the method WIND's query counts are compared with (the goal: at most half of its queries)
BASELINE = "jbond"


def mean_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 and the half-width of its 95% Student-t interval (0 for one seed).

    ``values [n_seeds, ...]`` -> ``(mean [...], half [...])``; NaN entries are ignored.

    >>> m, h = mean_ci(np.array([1.0, 2.0, 3.0]))
    >>> float(m), round(float(h), 3)
    (2.0, 2.484)
    """
    values = np.asarray(values, dtype=np.float64)
    n = np.sum(np.isfinite(values), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(values, axis=0) if values.size else np.nan
        sd = np.nanstd(values, axis=0, ddof=1) if values.shape[0] > 1 else np.zeros_like(mean)
        half = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n), 0.0)
    return mean, half


def crossing(x: np.ndarray, y: np.ndarray, target: float) -> float:
    """First ``x`` where ``y`` reaches ``target``, linearly interpolated; NaN if it never does.

    >>> crossing(np.array([0.0, 10.0, 20.0]), np.array([0.5, 0.6, 0.8]), 0.7)
    15.0
    """
    above = np.flatnonzero(y >= target)
    if len(above) == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(x[0])
    frac = (target - y[i - 1]) / (y[i] - y[i - 1])
    return float(x[i - 1] + frac * (x[i] - x[i - 1]))


@dataclass
class MethodRuns:
    """One method's report runs as arrays: ``queries, samples [E]``, ``metric -> [S, E]``."""

    queries: np.ndarray
    samples: np.ndarray
    values: dict[str, np.ndarray]
    wall_s: np.ndarray

    def cross(self, metric: str, target: float, axis: str = "queries") -> np.ndarray:
        """Per-seed ``axis`` value where ``metric`` first reaches ``target`` ``[S]``."""
        x = self.queries if axis == "queries" else self.samples
        return np.array([crossing(x, y, target) for y in self.values[metric]])

    def at(self, metric: str, level: float, by: str) -> np.ndarray:
        """Per-seed value of ``metric`` where ``by`` first reaches ``level`` (interpolated)."""
        out = []
        for b, y in zip(self.values[by], self.values[metric], strict=True):
            idx = np.arange(len(b), dtype=float)
            pos = crossing(idx, b, level)
            out.append(np.interp(pos, idx, y) if np.isfinite(pos) else np.nan)
        return np.array(out)


def collect(rows: Sequence[Mapping]) -> dict[str, MethodRuns]:
    """Group report rows by method and seed into :class:`MethodRuns` (order of appearance)."""
    by: dict[str, dict[int, list[Mapping]]] = {}
    for r in rows:
        by.setdefault(r["method"], {}).setdefault(r["seed"], []).append(r)
    out = {}
    for method, seeds in by.items():
        runs = [sorted(v, key=lambda r: r["round"]) for v in seeds.values()]
        first = runs[0]
        out[method] = MethodRuns(
            queries=np.array([r["queries"] for r in first], dtype=float),
            samples=np.array([r["samples"] for r in first], dtype=float),
            values={m: np.array([[r[m] for r in run] for run in runs]) for m in METRICS},
            wall_s=np.array([run[-1]["wall_s"] for run in runs]),
        )
    return out


def fmt(values: np.ndarray, digits: int = 3, scale: float = 1.0) -> str:
    """``mean ± half`` over the finite entries, with ``(n/N)`` when some seeds are NaN."""
    values = np.asarray(values, dtype=float) / scale
    ok = np.isfinite(values)
    if not ok.any():
        return "not reached"
    m, h = mean_ci(values[ok])
    text = f"{float(m):.{digits}f} ± {float(h):.{digits}f}"
    return text if ok.all() else f"{text} ({ok.sum()}/{len(values)})"


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in body]


def summary_tables(
    runs: Mapping[str, MethodRuns],
    best: Mapping[str, tuple[float, float | None]],
    exact_bo2: Sequence[Mapping[str, float]],
    kl_levels: Sequence[float],
) -> list[str]:
    """Markdown lines: final metrics, queries to the exact ``Bo2^t`` targets, matched KL."""
    lines = ["## Final metrics (end of the query budget)", ""]
    body = []
    for m, r in runs.items():
        lr, eta = best[m]
        fin = [fmt(r.values[k][:, -1]) for k in METRICS]
        body.append([f"`{m}`", f"{lr:g}", "-" if eta is None else f"{eta:g}", *fin])
        body[-1].append(fmt(r.wall_s, 2))
    cols = ["win rate vs ref", "exploitability", "KL(pi*‖pi)", "gap", "KL(pi‖ref)", "train s"]
    lines += _table(["method", "lr", "eta", *cols], body)
    lines += ["", "## Queries (thousands) to reach the win rate of exact iterated Best-of-2", ""]
    targets = [(t, row["win_rate_ref"]) for t, row in enumerate(exact_bo2) if t > 0]
    header = ["method", *[f"Bo2^{t}: {w:.3f}" for t, w in targets]]
    body = [[f"`{m}`", *[fmt(r.cross("win_rate_ref", w), 1, 1e3) for _, w in targets]]
            for m, r in runs.items()]  # fmt: skip
    lines += _table(header, body)
    if BASELINE in runs:
        lines += ["", f"Ratio of mean queries to `{BASELINE}`'s (the goal is <= 0.5):", ""]
        base = [_finite_mean(runs[BASELINE].cross("win_rate_ref", w)) for _, w in targets]
        body = []
        for m, r in runs.items():
            if m.startswith("wind-"):
                ours = [_finite_mean(r.cross("win_rate_ref", w)) for _, w in targets]
                body.append([f"`{m}`", *[f"{o / b:.2f}" for o, b in zip(ours, base, strict=True)]])
        lines += _table(header, body)
    lines += ["", "Samples (thousands) to reach the same targets:", ""]
    body = [
        [f"`{m}`", *[fmt(r.cross("win_rate_ref", w, "samples"), 1, 1e3) for _, w in targets]]
        for m, r in runs.items()
    ]
    lines += _table(header, body)
    lines += ["", "## Matched KL to the reference: win rate, and queries (thousands) to get there"]
    lines += [""]
    header = ["method", *[f"win rate @ KL={k:g}" for k in kl_levels]]
    header += [f"queries @ KL={k:g}" for k in kl_levels]
    body = []
    for m, r in runs.items():
        wr = [fmt(r.at("win_rate_ref", k, "kl_ref")) for k in kl_levels]
        q = [fmt(r.cross("kl_ref", k), 1, 1e3) for k in kl_levels]
        body.append([f"`{m}`", *wr, *q])
    return lines + _table(header, body)


#: methods drawn on the matched-KL figure (with the exact curves), when present
FRONTIER = ("wind-squared", "wind-kl", "wind-nce", "sppo", "jbond", "bon-distill")

FIGURES = {
    "win_rate_vs_queries.png": ("win_rate_ref", "win rate against pi_ref", False),
    "exploitability_vs_queries.png": ("exploitability", "exploitability", True),
    "kl_to_equilibrium_vs_queries.png": ("kl_to_eq", "KL(pi* || pi), pi* = WIND equilibrium", True),
}


def write_figures(
    runs: Mapping[str, MethodRuns],
    out: Path,
    eq: Mapping[str, float],
    exact: Mapping[str, Sequence[Mapping[str, float]]],
) -> list[Path]:
    """The PNGs: three metrics against queries (mean and 95% band, log axis), win rate against
    KL to the reference, and training wall time per method. ``eq`` holds the equilibrium's
    metrics; ``exact`` named exact trajectories (rows of metrics) drawn on the KL figure."""
    paths = []
    for name, (metric, label, logy) in FIGURES.items():
        curves = {}
        for m, r in runs.items():
            mean, half = mean_ci(r.values[metric])
            curves[m] = Curve(r.queries, mean, mean - half, mean + half)
        hline = eq[metric] if metric != "kl_to_eq" else None
        title = label if hline is None else f"{label} (dashed: exact WIND equilibrium)"
        paths.append(
            line_plot(curves, out / name, xlabel="preference queries", ylabel=label, logy=logy,
                      logx=True, hline=hline, title=title)
        )  # fmt: skip
    frontier = {}
    for m, r in runs.items():
        if m not in FRONTIER and set(FRONTIER) & set(runs):
            continue
        kl, _ = mean_ci(r.values["kl_ref"])
        wr, half = mean_ci(r.values["win_rate_ref"])
        frontier[m] = Curve(kl, wr, wr - half, wr + half)
    for label, rows in exact.items():
        frontier[label] = Curve([r["kl_ref"] for r in rows], [r["win_rate_ref"] for r in rows])
    paths.append(
        line_plot(frontier, out / "win_rate_vs_kl.png", xlabel="KL(pi || pi_ref)",
                  ylabel="win rate against pi_ref", hline=eq["win_rate_ref"],
                  title="win rate at matched KL to the reference")
    )  # fmt: skip
    walls = {m: mean_ci(r.wall_s) for m, r in runs.items()}
    paths.append(
        bar_plot({m: float(v[0]) for m, v in walls.items()}, out / "wall_time.png",
                 errors={m: float(v[1]) for m, v in walls.items()},
                 ylabel="training wall time per run (s)", title="wall time for the query budget")
    )  # fmt: skip
    return paths
