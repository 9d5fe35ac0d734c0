"""A training run's figures and ``report.md``, from its ``metrics.jsonl`` (and the last round).

Plots (PNG, in ``plots/``): the loss, the objective's estimated win rates, the KL to the
reference (when the objective uses it), response length and EOS rate, all against preference
queries; and where the seconds went (generate, reference, old log-probs, oracle, train, other).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from windalign.plotting import Curve, bar_plot, line_plot

#: (metric key, y label, file name) of the line plots, drawn when the metric was logged.
LINES = (
    ("loss", "training loss", "loss.png"),
    ("objective/win_rate_max", "best estimated win rate in a prompt's K samples", "win_rate.png"),
    ("objective/kl_ref", "KL(pi_t || pi_ref) estimate (nats)", "kl_ref.png"),
    ("response_length", "mean response length (tokens)", "response_length.png"),
    ("eos_rate", "share of responses ending with EOS", "eos_rate.png"),
)
TIMES = ("generate", "reference", "old_logprobs", "oracle", "train")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The training rows of a ``metrics.jsonl`` (rows with a ``loss``), in order."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in row:
            rows.append(row)
    return rows


def time_breakdown(row: dict[str, Any], wall: float) -> dict[str, float]:
    """Seconds per phase from a metrics row's counters; ``other`` = ``wall`` minus their sum."""
    parts = {name: float(row.get(f"seconds_{name}", 0.0)) for name in TIMES}
    parts["other"] = max(wall - sum(parts.values()), 0.0)
    return parts


def plot_metrics(rows: Sequence[dict[str, Any]], out: str | Path, wall: float) -> list[Path]:
    """Write the line plots and the time breakdown into ``out``; returns the files."""
    out, files = Path(out), []
    x = [r.get("queries", math.nan) for r in rows]
    for key, label, name in LINES:
        y = [r.get(key, math.nan) for r in rows]
        if any(isinstance(v, float | int) and math.isfinite(v) for v in y):
            curve = {key: Curve(x, y)}
            files.append(line_plot(curve, out / name, xlabel="preference queries", ylabel=label))
    if rows:
        times = time_breakdown(rows[-1], wall)
        files.append(
            bar_plot(times, out / "time.png", ylabel="seconds", title="where the time went")
        )
    return files


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_report(
    run_dir: str | Path,
    config: dict[str, Any],
    wall: float,
    examples: Sequence[tuple[str, Sequence[str], Sequence[float]]] = (),
) -> str:
    """The text of ``report.md``: the run's setup, last logged values, cost, time breakdown and
    example responses ``(prompt, responses, estimated win rates)`` of the last round."""
    rows = read_metrics(Path(run_dir) / "metrics.jsonl")
    last = rows[-1] if rows else {}
    lines = [
        f"# WIND training run: `{config.get('objective')}`",
        "",
        f"Model `{config.get('model')}`, prompts `{config.get('prompts')}`, preference "
        f"`{config.get('preference')}`; K = {config.get('num_samples')}, temperature "
        f"{config.get('temperature')}, max_new_tokens {config.get('max_new_tokens')}.",
        "",
        "## Last logged step",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    keep = (
        "step",
        "loss",
        "objective/win_rate_max",
        "objective/kl_ref",
        "response_length",
        "eos_rate",
        "rounds",
        "samples",
        "tokens",
        "queries",
        "oracle_calls",
    )
    lines += [f"| {k} | {_fmt(last[k])} |" for k in keep if k in last]
    times = time_breakdown(last, wall) if last else {}
    lines += [
        "",
        f"## Time ({wall:.1f} s of training)",
        "",
        "| phase | seconds | share |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {v:.1f} | {v / max(wall, 1e-9):.0%} |" for k, v in times.items()]
    lines += ["", "Figures: `plots/` (loss, win rate, KL, length, EOS rate against queries; time)."]
    if examples:
        lines += ["", "## Samples of the last round", ""]
        for prompt, responses, wins in examples:
            lines += [f"**Prompt:** {prompt}", ""]
            lines += [
                f"- ({w:.2f}) {r.strip() or '(empty)'}"
                for r, w in zip(responses, wins, strict=True)
            ]
            lines.append("")
    return "\n".join(lines) + "\n"
