"""A training run's figures and ``report.md``, from its ``metrics.jsonl`` (and its evaluations).

Plots (PNG, in ``plots/``): the loss, the objective's estimated win rates, the KL to the
reference (when the objective uses it), response length and EOS rate, all against preference
queries; the held-out win rate against the initial policy with its 95% band (when the run was
evaluated); and where the seconds went (generate, reference, old log-probs, oracle, train,
evaluate, other).
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
TIMES = ("generate", "reference", "old_logprobs", "oracle", "train", "evaluate")


def read_metrics(path: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(training rows, evaluation rows)`` of a ``metrics.jsonl``, in order."""
    train, evals = [], []
    for line in Path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in row:
            train.append(row)
        elif "eval_win_rate" in row:
            evals.append(row)
    return train, evals


def time_breakdown(row: dict[str, Any], wall: float) -> dict[str, float]:
    """Seconds per phase from a metrics row's counters; ``other`` = ``wall`` minus their sum."""
    parts = {name: float(row.get(f"seconds_{name}", 0.0)) for name in TIMES}
    parts["other"] = max(wall - sum(parts.values()), 0.0)
    return parts


def _finite(values: Sequence[Any]) -> bool:
    return any(isinstance(v, float | int) and math.isfinite(v) for v in values)


def plot_metrics(
    rows: Sequence[dict[str, Any]], evals: Sequence[dict[str, Any]], out: str | Path, wall: float
) -> list[Path]:
    """Write the line plots, the evaluation curve and the time breakdown into ``out``."""
    out, files = Path(out), []
    x = [r.get("queries", math.nan) for r in rows]
    for key, label, name in LINES:
        y = [r.get(key, math.nan) for r in rows]
        if _finite(y):
            curve = {key: Curve(x, y)}
            files.append(line_plot(curve, out / name, xlabel="preference queries", ylabel=label))
    if evals:
        get = lambda k: [r.get(k, math.nan) for r in evals]  # noqa: E731
        curve = Curve(get("queries"), get("eval_win_rate"), get("eval_win_rate_lo"),
                      get("eval_win_rate_hi"))  # fmt: skip
        files.append(
            line_plot(
                {"held-out win rate vs the initial policy (95% band)": curve},
                out / "eval_win_rate.png",
                xlabel="preference queries",
                ylabel="P(policy > initial policy)",
                hline=0.5,
            )
        )
    last = (list(rows) + list(evals))[-1:] if rows or evals else []
    if last:
        files.append(
            bar_plot(
                time_breakdown(last[0], wall),
                out / "time.png",
                ylabel="seconds",
                title="where the time went",
            )
        )
    return files


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table_cell(text: str) -> str:
    """One line of text, safe inside a markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|") or "(empty)"


def write_report(
    run_dir: str | Path,
    config: dict[str, Any],
    wall: float,
    examples: Sequence[tuple[str, Sequence[str], Sequence[float]]] = (),
    evaluation: Any = None,
) -> str:
    """The text of ``report.md``: setup, the held-out evaluations, last logged values, cost,
    time breakdown, generations before / after (from the last evaluation) and samples of the
    last round ``(prompt, responses, estimated win rates)``."""
    rows, evals = read_metrics(Path(run_dir) / "metrics.jsonl")
    last = rows[-1] if rows else {}
    lines = [
        f"# WIND training run: `{config.get('objective')}`",
        "",
        f"Model `{config.get('model')}`, prompts `{config.get('prompts')}`, preference "
        f"`{config.get('preference')}`; K = {config.get('num_samples')}, temperature "
        f"{config.get('temperature')}, max_new_tokens {config.get('max_new_tokens')}.",
        "",
    ]
    if evals:
        lines += [
            "## Held-out win rate against the initial policy",
            "",
            "| step | queries | samples | win rate | 95% interval | KL to initial (nats) | "
            "length | EOS rate |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in evals:
            lines.append(
                f"| {e['step']} | {int(e.get('queries', 0))} | {int(e.get('samples', 0))} | "
                f"**{e['eval_win_rate']:.3f}** | [{e['eval_win_rate_lo']:.3f}, "
                f"{e['eval_win_rate_hi']:.3f}] | {e['eval_kl']:.3f} | {e['eval_length']:.1f} | "
                f"{e['eval_eos_rate']:.2f} |"
            )
        e = evals[-1]
        lines += [
            "",
            f"{int(e['eval_prompts'])} held-out prompts x {int(e['eval_samples'])} samples per "
            "model; every trained sample judged against every initial-policy sample of its "
            "prompt by the training oracle; the interval is a t-interval over prompts.",
            "",
        ]
    lines += ["## Last logged training step", "", "| metric | value |", "|---|---|"]
    keep = ("step", "loss", "objective/win_rate_max", "objective/kl_ref", "response_length",
            "eos_rate", "rounds", "samples", "tokens", "queries", "oracle_calls")  # fmt: skip
    lines += [f"| {k} | {_fmt(last[k])} |" for k in keep if k in last]
    final = (list(rows) + list(evals))[-1] if rows or evals else {}
    times = time_breakdown(final, wall) if final else {}
    lines += ["", f"## Time ({wall:.1f} s of training)", "", "| phase | seconds | share |",
              "|---|---|---|"]  # fmt: skip
    lines += [f"| {k} | {v:.1f} | {v / max(wall, 1e-9):.0%} |" for k, v in times.items()]
    lines += ["", "Figures: `plots/` (loss, win rate, KL, length, EOS rate against queries; "
              "held-out win rate; time)."]  # fmt: skip
    if evaluation is not None:
        lines += ["", "## Before and after (held-out prompts, last evaluation)", ""]
        for row in evaluation.per_prompt[:4]:
            lines += [f"**Prompt:** {row['prompt']} (win rate {row['win_rate']:.2f})", "",
                      "| trained | initial |", "|---|---|"]  # fmt: skip
            lines += [
                f"| {table_cell(a)} | {table_cell(b)} |"
                for a, b in zip(row["policy"], row["baseline"], strict=True)
            ]
            lines.append("")
    if examples:
        lines += ["", "## Samples of the last training round", ""]
        for prompt, responses, wins in examples:
            lines += [f"**Prompt:** {prompt}", ""]
            lines += [f"- ({w:.2f}) {table_cell(r)}" for r, w in zip(responses, wins, strict=True)]
            lines.append("")
    return "\n".join(lines) + "\n"
