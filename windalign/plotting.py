"""Figures shared by the CLI subcommands (matplotlib, headless ``Agg`` backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Curve:
    """One line of a figure: ``y`` against ``x`` with an optional ``[lo, hi]`` band."""

    x: Sequence[float] | np.ndarray
    y: Sequence[float] | np.ndarray
    lo: Sequence[float] | np.ndarray | None = None
    hi: Sequence[float] | np.ndarray | None = None


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
) -> Path:
    """Draw ``curves`` (label -> :class:`Curve`) into a PNG at ``path``; returns the path.

    Non-positive values are dropped from log-scaled axes instead of crashing the plot.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for label, c in curves.items():
        x = np.asarray(c.x, dtype=float)
        y = np.asarray(c.y, dtype=float)
        keep = np.isfinite(x) & np.isfinite(y)
        if logy:
            keep &= y > 0
        if logx:
            keep &= x > 0
        (line,) = ax.plot(x[keep], y[keep], label=label, lw=1.6)
        if c.lo is not None and c.hi is not None:
            lo, hi = np.asarray(c.lo, dtype=float), np.asarray(c.hi, dtype=float)
            ax.fill_between(x[keep], lo[keep], hi[keep], color=line.get_color(), alpha=0.2)
    if hline is not None:
        ax.axhline(hline, color="grey", lw=0.8, ls="--")
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def bar_plot(
    values: Mapping[str, float],
    path: str | Path,
    *,
    ylabel: str,
    errors: Mapping[str, float] | None = None,
    title: str = "",
) -> Path:
    """Bar chart of ``values`` (label -> value, optional symmetric ``errors``) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(values)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(labels) + 2), 4), dpi=120)
    err = [errors[k] for k in labels] if errors else None
    ax.bar(labels, [values[k] for k in labels], yerr=err, capsize=3, color="tab:blue", alpha=0.8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
