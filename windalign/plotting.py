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
    fig, ax = _new_figure((7, 4.5))
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
    ax.grid(True, which="major", alpha=0.3)
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
    """Bar chart of ``values`` (label -> value, optional symmetric ``errors``) into a PNG."""
    labels = list(values)
    fig, ax = _new_figure((max(5, 0.9 * len(labels) + 2), 4))
    err = [errors[k] for k in labels] if errors else None
    ax.bar(labels, [values[k] for k in labels], yerr=err, capsize=3, color="tab:blue", alpha=0.8)
    ax.tick_params(axis="x", rotation=30)
    ax.grid(True, axis="y", alpha=0.3)
    return _finish(fig, ax, path, ylabel, title)
