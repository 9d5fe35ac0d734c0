"""Figures shared by the CLI subcommands (matplotlib, headless ``Agg`` backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def _new_figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A fresh ``(figure, axes)`` on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, dpi=120)


def _finish(fig: Any, ax: Any, path: str | Path, ylabel: str, title: str) -> Path:
    """Label, lay out, save ``fig`` as a PNG at ``path`` (parents created) and close it."""
    import matplotlib.pyplot as plt

    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


@dataclass
class Curve:
    """One line of a figure: ``y`` against ``x`` with an optional ``[lo, hi]`` band, an optional
    ``marker`` on every point and optional point ``labels`` written next to the points."""

    x: Sequence[float] | np.ndarray
    y: Sequence[float] | np.ndarray
    lo: Sequence[float] | np.ndarray | None = None
    hi: Sequence[float] | np.ndarray | None = None
    marker: str | None = None
    labels: Sequence[str] | None = None


#: curves with at most this many points get markers, so short traces stay visible
MARKER_MAX_POINTS = 30
#: more curves than this put the legend beside the axes
LEGEND_INSIDE_MAX = 8
#: line styles cycled once the ten default colours are used up
LINE_STYLES = ("-", "--", ":", "-.")


def clip_band(
    y: np.ndarray, lo: np.ndarray, hi: np.ndarray, valid: tuple[float, float], logy: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A band ``[lo, hi]`` clipped to the metric's ``valid`` range; on a log axis its lower edge
    is also kept positive (never below a tenth of the curve's smallest positive value).

    >>> clip_band(np.array([0.9]), np.array([0.8]), np.array([1.1]), (0.0, 1.0), False)
    (array([0.8]), array([1.]))
    >>> clip_band(np.array([0.02, 0.5]), np.array([-0.1, 0.4]), np.array([0.1, 0.6]),
    ...           (0.0, 1.0), True)[0]
    array([0.002, 0.4  ])
    """
    low, high = valid
    if logy:
        positive = y[np.isfinite(y) & (y > 0)]
        low = max(low, positive.min() / 10 if positive.size else np.inf)
    return np.clip(lo, low, high), np.clip(hi, low, high)


def line_plot(
    curves: Mapping[str, Curve],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    logx: bool = False,
    logy: bool = False,
    hline: float | None = None,
    valid: tuple[float, float] = (-np.inf, np.inf),
) -> Path:
    """Draw ``curves`` (label -> :class:`Curve`) into a PNG at ``path``; returns the path.

    Non-positive values are dropped from log-scaled axes instead of crashing the plot; bands are
    clipped to ``valid`` (the metric's range) and kept positive on a log axis (:func:`clip_band`).
    Curves of at most ``MARKER_MAX_POINTS`` points get markers; after ten curves the line style
    changes, so every curve stays distinguishable; many curves put the legend beside the axes.
    """
    many = len(curves) > LEGEND_INSIDE_MAX
    fig, ax = _new_figure((9.5, 4.5) if many else (7, 4.5))
    for i, (label, c) in enumerate(curves.items()):
        x = np.asarray(c.x, dtype=float)
        y = np.asarray(c.y, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y)
        if logy:
            keep &= y > 0
        if logx:
            keep &= x > 0
        marker = c.marker or ("o" if keep.sum() <= MARKER_MAX_POINTS else None)
        style = LINE_STYLES[(i // 10) % len(LINE_STYLES)]
        (line,) = ax.plot(x[keep], y[keep], label=label, lw=1.6, ls=style, marker=marker, ms=4)
        if c.lo is not None and c.hi is not None:
            lo, hi = np.asarray(c.lo, dtype=float), np.asarray(c.hi, dtype=float)
            lo, hi = clip_band(y[keep], lo[keep], hi[keep], valid, logy)
            ax.fill_between(x[keep], lo, hi, color=line.get_color(), alpha=0.2)
        for xi, yi, text in zip(x, y, c.labels or (), strict=False):
            if np.isfinite(xi) and np.isfinite(yi):
                ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
    if hline is not None:
        ax.axhline(hline, color="grey", lw=0.8, ls="--")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(True, which="major", alpha=0.3)
    if many:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize=8, loc="best")
    return _finish(fig, ax, path, ylabel, title)


def bar_plot(
    values: Mapping[str, float],
    path: str | Path,
    *,
    ylabel: str,
    errors: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Bar chart of ``values`` (label -> value >= 0, optional ``errors``) into a PNG; an error
    bar never reaches below zero (its lower arm is clipped at the value)."""
    labels = list(values)
    fig, ax = _new_figure((max(5, 0.9 * len(labels) + 2), 4))
    err = None
    if errors:
        err = np.array(
            [[min(errors[k], max(values[k], 0.0)) for k in labels], [errors[k] for k in labels]]
        )
    ax.bar(labels, [values[k] for k in labels], yerr=err, capsize=3, color="tab:blue", alpha=0.8)
    ax.tick_params(axis="x", rotation=30)
    ax.grid(True, axis="y", alpha=0.3)
    return _finish(fig, ax, path, ylabel, title)
