"""Aggregate benchmark runs over seeds (means with 95% t-intervals), write tables and figures.

Answers, with measured numbers (see ``docs/results-bandit.md``), KL always in view:

1. **dominance** -- preference queries (and samples) until the learned policy wins at least half
   of its duels against exact iterated Best-of-2 ``Bo2^t(pi_ref)`` (THEORY.md 2), with its
   ``KL(pi || pi_ref)`` then, and the ratio of each method's queries to J-BOND's (bootstrap
   interval over seeds);
2. **the frontier** -- win rate against the reference at matched ``KL(pi || pi_ref)``, at the KL
   of each ``Bo2^t`` (beside ``Bo2^t`` itself and the exact WIND equilibria over beta) and at
   the config's levels;
3. end-of-run and best-along-the-run distances to the equilibrium, side by side; and, as a
   secondary table that ignores KL, queries to reach ``Bo2^t``'s win rate against the reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from windalign.bandit.methods import BENCH_METHODS
from windalign.bandit.runner import BO2_KEY
from windalign.plotting import Curve, bar_plot, line_plot

METRICS = ("win_rate_ref", "exploitability", "kl_to_eq", "gap", "kl_ref")
#: the method every query count is compared with
BASELINE = "jbond"
#: bootstrap resamples of the seeds for the ratio intervals (seeded: reruns give the same text)
BOOTSTRAP = 2000


def mean_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 and the half-width of its 95% Student-t interval (NaN for one seed).

    ``values [n_seeds, ...]`` -> ``(mean [...], half [...])``; NaN entries are ignored.

    >>> m, h = mean_ci(np.array([1.0, 2.0, 3.0]))
    >>> float(m), round(float(h), 3)
    (2.0, 2.484)
    >>> bool(np.isnan(mean_ci(np.array([1.0]))[1]))
    True
    """
    values = np.asarray(values, dtype=np.float64)
    n = np.sum(np.isfinite(values), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(values, axis=0) if values.size else np.nan
        sd = np.nanstd(values, axis=0, ddof=1) if values.shape[0] > 1 else np.full_like(mean, 0.0)
        half = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n), np.nan)
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

    def best(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-seed minimum of ``metric`` along the run and the queries where it occurs ``[S]``."""
        values = self.values[metric]
        return values.min(axis=1), self.queries[values.argmin(axis=1)]


def collect(rows: Sequence[Mapping]) -> dict[str, MethodRuns]:
    """Group report rows by method and seed into :class:`MethodRuns` (order of appearance).

    The metrics are ``METRICS`` and every ``win_rate_vs_bo2_t`` the rows hold.
    """
    by: dict[str, dict[int, list[Mapping]]] = {}
    for r in rows:
        by.setdefault(r["method"], {}).setdefault(r["seed"], []).append(r)
    out = {}
    for method, seeds in by.items():
        runs = [sorted(v, key=lambda r: r["round"]) for v in seeds.values()]
        first = runs[0]
        keys = [*METRICS, *(k for k in first[0] if k.startswith(BO2_KEY.format("")))]
        out[method] = MethodRuns(
            queries=np.array([r["queries"] for r in first], dtype=float),
            samples=np.array([r["samples"] for r in first], dtype=float),
            values={m: np.array([[r[m] for r in run] for run in runs]) for m in keys},
            wall_s=np.array([run[-1]["wall_s"] for run in runs]),
        )
    return out


def fmt(values: np.ndarray, digits: int = 3, scale: float = 1.0) -> str:
    """``mean ± half`` over the finite entries, with ``(n/N)`` when some seeds are NaN; the
    interval is ``n/a`` when only one seed is finite.

    >>> fmt(np.array([1.0, 2.0, 3.0])), fmt(np.array([1.0, np.nan])), fmt(np.array([np.nan]))
    ('2.000 ± 2.484', '1.000 ± n/a (1/2)', 'not reached')
    """
    values = np.asarray(values, dtype=float) / scale
    ok = np.isfinite(values)
    if not ok.any():
        return "not reached"
    m, h = mean_ci(values[ok])
    half = "n/a" if not np.isfinite(h) else f"{float(h):.{digits}f}"
    text = f"{float(m):.{digits}f} ± {half}"
    return text if ok.all() else f"{text} ({ok.sum()}/{len(values)})"


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def bootstrap_ratio(
    ours: np.ndarray, base: np.ndarray, n_boot: int = BOOTSTRAP, seed: int = 0
) -> tuple[float, float, float]:
    """Ratio of the mean of ``ours`` to the mean of ``base`` (finite seeds) with a 95% percentile
    bootstrap interval, resampling each method's seeds independently: ``(ratio, lo, hi)``.

    Resamples in which either side has no finite seed are dropped; NaN if none is left.

    >>> r, lo, hi = bootstrap_ratio(np.array([1.0, 2.0, 3.0]), np.array([4.0, 4.0, 4.0]))
    >>> r, bool(lo < r < hi), bool(hi <= 0.75)
    (0.5, True, True)
    """
    ratio = _finite_mean(ours) / _finite_mean(base)
    rng = np.random.default_rng(seed)
    a = ours[rng.integers(len(ours), size=(n_boot, len(ours)))]
    b = base[rng.integers(len(base), size=(n_boot, len(base)))]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no finite seed: NaN
        boot = np.nanmean(a, axis=1) / np.nanmean(b, axis=1)
    boot = boot[np.isfinite(boot)]
    if not boot.size:
        return ratio, float("nan"), float("nan")
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return ratio, float(lo), float(hi)


def ratio_cell(ours: np.ndarray, base: np.ndarray) -> str:
    """``ratio [lo, hi] (n/N, m/M)``: :func:`bootstrap_ratio` and how many seeds of ours and of
    the baseline reached the target.

    >>> ratio_cell(np.array([1.0, np.nan]), np.array([4.0, 4.0]))
    '0.25 [0.25, 0.25] (1/2, 2/2)'
    >>> ratio_cell(np.array([1.0]), np.array([np.nan]))
    'n/a (1/1, 0/1)'
    """
    reached = f"({np.isfinite(ours).sum()}/{len(ours)}, {np.isfinite(base).sum()}/{len(base)})"
    r, lo, hi = bootstrap_ratio(ours, base)
    if not np.isfinite(r):
        return f"n/a {reached}"
    return f"{r:.2f} [{lo:.2f}, {hi:.2f}] {reached}"


def frontier_value(family: Sequence[Mapping[str, float]], kl: float) -> float:
    """Win rate against the reference of the exact WIND equilibria at ``KL(pi || pi_ref) = kl``,
    interpolated linearly along the family (rows with ``kl_ref`` and ``win_rate_ref``, any order);
    NaN outside the family's KL range.

    >>> frontier_value([{"kl_ref": 1.0, "win_rate_ref": 0.7}, {"kl_ref": 0.0, "win_rate_ref": 0.5}],
    ...                0.25)
    0.55
    """
    kls = np.array([r["kl_ref"] for r in family])
    wins = np.array([r["win_rate_ref"] for r in family])
    order = np.argsort(kls)
    return float(np.interp(kl, kls[order], wins[order], left=np.nan, right=np.nan))


@dataclass
class Yardsticks:
    """The exact reference points: ``bo2`` rows for ``Bo2^t(pi_ref)``, ``t = 0..T``; ``eqs``
    rows of the WIND equilibria at the drawn betas; ``family`` the same on a dense beta grid
    (for interpolation). Rows are :class:`~windalign.bandit.runner.Evaluator` metrics."""

    bo2: Sequence[Mapping[str, float]]
    eqs: Sequence[Mapping[str, float]]
    family: Sequence[Mapping[str, float]]

    @property
    def targets(self) -> list[int]:
        """``t = 1..T``."""
        return list(range(1, len(self.bo2)))


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in body]


def _knob(method: str, value: float | None) -> str:
    """The tuned knob's value as a table cell (``beta / 8`` for the beta-tuned rows).

    >>> _knob("jbond", 0.2), _knob("dpo-beta-tuned", 8.0), _knob("dpo", None)
    ('gamma = 0.2', 'beta / 8', '-')
    """
    knob = BENCH_METHODS[method].knob if method in BENCH_METHODS else None
    if knob is None or value is None:
        return "-"
    return f"beta / {value:g}" if knob == "beta" else f"{knob} = {value:g}"


def dominance_tables(runs: Mapping[str, MethodRuns], ys: Yardsticks) -> list[str]:
    """Markdown: queries, samples and KL at dominance of ``Bo2^t``, and the ratio to J-BOND."""
    keys = [(t, BO2_KEY.format(t)) for t in ys.targets]
    header = ["method", *[f"vs Bo2^{t}" for t, _ in keys]]
    lines = [
        "## (1) Dominance: queries (thousands) until the policy wins >= 1/2 against exact "
        "Bo2^t(pi_ref)",
        "",
    ]
    lines += _table(
        header,
        [[f"`{m}`", *[fmt(r.cross(k, 0.5), 2, 1e3) for _, k in keys]] for m, r in runs.items()],
    )
    lines += ["", "KL(pi‖ref) of the policy at that moment:", ""]
    lines += _table(
        header,
        [[f"`{m}`", *[fmt(r.at("kl_ref", 0.5, k), 2) for _, k in keys]] for m, r in runs.items()],
    )
    lines += ["", "Samples (thousands) to the same moment:", ""]
    lines += _table(
        header,
        [
            [f"`{m}`", *[fmt(r.cross(k, 0.5, "samples"), 2, 1e3) for _, k in keys]]
            for m, r in runs.items()
        ],
    )
    if BASELINE in runs:
        lines += [
            "",
            f"Ratio of mean queries to dominance to `{BASELINE}`'s: ratio [95% bootstrap "
            "interval over seeds] (seeds that reached it: the method's, the baseline's):",
            "",
        ]
        base = [runs[BASELINE].cross(k, 0.5) for _, k in keys]
        body = [
            [
                f"`{m}`",
                *[ratio_cell(r.cross(k, 0.5), b) for (_, k), b in zip(keys, base, strict=True)],
            ]
            for m, r in runs.items()
            if m != BASELINE
        ]
        lines += _table(header, body)
    return lines


def yardstick_table(ys: Yardsticks) -> list[str]:
    """Markdown: the exact ``Bo2^t`` and WIND equilibria, head to head and against the ref."""
    header = [
        "exact policy",
        "win rate vs ref",
        "KL(pi‖ref)",
        *[f"win rate vs Bo2^{t}" for t in ys.targets],
    ]
    rows = [(f"Bo2^{t}(pi_ref)", r) for t, r in enumerate(ys.bo2) if t > 0]
    rows += [(f"WIND pi*, beta = {r['beta']:g}", r) for r in ys.eqs]
    body = [
        [
            name,
            f"{r['win_rate_ref']:.4f}",
            f"{r['kl_ref']:.3f}",
            *[f"{r[BO2_KEY.format(t)]:.4f}" for t in ys.targets],
        ]
        for name, r in rows
    ]
    return ["## Exact yardsticks (no sampling)", "", *_table(header, body)]


def frontier_tables(
    runs: Mapping[str, MethodRuns], ys: Yardsticks, kl_levels: Sequence[float]
) -> list[str]:
    """Markdown: win rate vs the reference at the KL of each ``Bo2^t`` (with the exact points)
    and at ``kl_levels`` (with the queries spent to get there)."""
    kls = [ys.bo2[t]["kl_ref"] for t in ys.targets]
    header = ["method", *[f"@ KL={k:.3f} (Bo2^{t})" for t, k in zip(ys.targets, kls, strict=True)]]
    body = [
        [f"`{m}`", *[fmt(r.at("win_rate_ref", k, "kl_ref")) for k in kls]] for m, r in runs.items()
    ]
    body.append(["exact Bo2^t", *[f"{ys.bo2[t]['win_rate_ref']:.4f}" for t in ys.targets]])
    body.append(
        [
            "exact WIND equilibria (beta family)",
            *[f"{frontier_value(ys.family, k):.4f}" for k in kls],
        ]
    )
    lines = ["## (2) Frontier: win rate vs ref at matched KL(pi‖ref)", ""]
    lines += ["At the KL of each Bo2^t:", "", *_table(header, body), ""]
    header = ["method", *[f"win rate @ KL={k:g}" for k in kl_levels]]
    header += [f"queries (k) @ KL={k:g}" for k in kl_levels]
    body = [
        [
            f"`{m}`",
            *[fmt(r.at("win_rate_ref", k, "kl_ref")) for k in kl_levels],
            *[fmt(r.cross("kl_ref", k), 2, 1e3) for k in kl_levels],
        ]
        for m, r in runs.items()
    ]
    body.append(
        [
            "exact WIND equilibria (beta family)",
            *[f"{frontier_value(ys.family, k):.4f}" for k in kl_levels],
            *["-" for _ in kl_levels],
        ]
    )
    return [*lines, "At the config's KL levels:", "", *_table(header, body)]


def end_and_best_table(
    runs: Mapping[str, MethodRuns], best: Mapping[str, tuple[float, float | None]]
) -> list[str]:
    """Markdown: end-of-run metrics with the tuned point, then the distance to ``pi*`` at the end
    and at its best along the run (separately, never mixed)."""
    body = []
    for m, r in runs.items():
        lr, value = best[m]
        fin = [fmt(r.values[k][:, -1]) for k in METRICS]
        body.append([f"`{m}`", f"{lr:g}", _knob(m, value), *fin, fmt(r.wall_s, 2)])
    cols = ["win rate vs ref", "exploitability", "KL(pi*‖pi)", "gap", "KL(pi‖ref)", "train s"]
    lines = ["## End of the run (query budget spent), with the tuned grid point", ""]
    lines += _table(["method", "lr", "knob", *cols], body)
    body = []
    for m, r in runs.items():
        kl_min, kl_at = r.best("kl_to_eq")
        gap_min, _ = r.best("gap")
        body.append(
            [
                f"`{m}`",
                fmt(r.values["kl_to_eq"][:, -1]),
                fmt(kl_min),
                fmt(kl_at, 2, 1e3),
                fmt(r.values["gap"][:, -1]),
                fmt(gap_min),
            ]
        )
    lines += ["", "## Distance to the equilibrium pi*: end of the run vs best along the run", ""]
    header = [
        "method",
        "KL(pi*‖pi) end",
        "KL(pi*‖pi) best",
        "queries (k) at best",
        "gap end",
        "gap best",
    ]
    return lines + _table(header, body)


def crossing_table(runs: Mapping[str, MethodRuns], ys: Yardsticks) -> list[str]:
    """Markdown (secondary, ignores KL): queries to reach ``Bo2^t``'s win rate vs the ref."""
    targets = [(t, ys.bo2[t]["win_rate_ref"]) for t in ys.targets]
    header = ["method", *[f"Bo2^{t}: {w:.3f}" for t, w in targets]]
    body = [
        [f"`{m}`", *[fmt(r.cross("win_rate_ref", w), 2, 1e3) for _, w in targets]]
        for m, r in runs.items()
    ]
    title = (
        "## Secondary, ignores KL: queries (thousands) to reach Bo2^t's win rate against the "
        "reference"
    )
    return [title, "", *_table(header, body)]


def summary_tables(
    runs: Mapping[str, MethodRuns],
    best: Mapping[str, tuple[float, float | None]],
    ys: Yardsticks,
    kl_levels: Sequence[float],
) -> list[str]:
    """Markdown lines of every table, headline first."""
    parts = [
        yardstick_table(ys),
        dominance_tables(runs, ys),
        frontier_tables(runs, ys, kl_levels),
        end_and_best_table(runs, best),
        crossing_table(runs, ys),
    ]
    return [line for part in parts for line in [*part, ""]][:-1]


FIGURES = {
    "win_rate_vs_queries.png": ("win_rate_ref", "win rate against pi_ref", False, (0.0, 1.0)),
    "exploitability_vs_queries.png": ("exploitability", "exploitability", True, (0.0, 0.5)),
    "kl_to_equilibrium_vs_queries.png": (
        "kl_to_eq",
        "KL(pi* || pi), pi* = WIND equilibrium",
        True,
        (0.0, np.inf),
    ),
}


def _band(values: np.ndarray) -> Curve:
    """Mean curve with its 95% band (the band is omitted where one seed leaves no interval)."""
    mean, half = mean_ci(values)
    return Curve([], mean, mean - half, mean + half)


def write_figures(
    runs: Mapping[str, MethodRuns], out: Path, eq: Mapping[str, float], ys: Yardsticks
) -> list[Path]:
    """The PNGs: metrics against queries (mean and 95% band clipped to the metric's range, log
    axis), win rate against the hardest ``Bo2^T`` against queries (dominance), win rate against
    KL to the reference for every method with ``Bo2^t`` and the exact WIND equilibria, and
    training wall time per method. ``eq`` holds the equilibrium's metrics. The KL figure draws
    every method's mean curve without bands (both coordinates are means over seeds)."""
    paths = []
    hardest = BO2_KEY.format(ys.targets[-1]) if ys.targets else None
    figures = dict(FIGURES)
    if hardest:
        label = f"win rate against exact Bo2^{ys.targets[-1]}(pi_ref)"
        figures["dominance_vs_queries.png"] = (hardest, label, False, (0.0, 1.0))
    for name, (metric, label, logy, valid) in figures.items():
        curves = {}
        for m, r in runs.items():
            c = _band(r.values[metric])
            curves[m] = Curve(r.queries, c.y, c.lo, c.hi)
        hline = 0.5 if metric == hardest else None if metric == "kl_to_eq" else eq[metric]
        what = "1/2" if metric == hardest else "exact WIND equilibrium"
        title = label if hline is None else f"{label} (dashed: {what})"
        paths.append(
            line_plot(
                curves,
                out / name,
                xlabel="preference queries",
                ylabel=label,
                logy=logy,
                logx=True,
                hline=hline,
                title=title,
                valid=valid,
            )
        )
    frontier = {
        m: Curve(mean_ci(r.values["kl_ref"])[0], mean_ci(r.values["win_rate_ref"])[0])
        for m, r in runs.items()
    }
    frontier["exact Bo2^t(pi_ref), t = 0.."] = Curve(
        [r["kl_ref"] for r in ys.bo2],
        [r["win_rate_ref"] for r in ys.bo2],
        marker="s",
        labels=[f"t={t}" for t in range(len(ys.bo2))],
    )
    frontier["exact WIND equilibria over beta"] = Curve(
        [r["kl_ref"] for r in ys.eqs],
        [r["win_rate_ref"] for r in ys.eqs],
        marker="o",
        labels=[f"b={r['beta']:g}" for r in ys.eqs],
    )
    paths.append(
        line_plot(
            frontier,
            out / "win_rate_vs_kl.png",
            xlabel="KL(pi || pi_ref)",
            ylabel="win rate against pi_ref",
            valid=(0.0, 1.0),
            title=f"win rate at matched KL: all {len(runs)} methods (means over seeds, no bands)",
        )
    )
    walls = {m: mean_ci(r.wall_s) for m, r in runs.items()}
    paths.append(
        bar_plot(
            {m: float(v[0]) for m, v in walls.items()},
            out / "wall_time.png",
            errors={m: float(np.nan_to_num(v[1])) for m, v in walls.items()},
            ylabel="training wall time per run (s)",
            title="wall time for the query budget",
        )
    )
    return paths
