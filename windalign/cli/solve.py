"""``wind solve``: solve a batch of preference games with every exact method and compare them.

Builds a seeded random game (or loads ``P`` and ``ref`` from an ``.npz``), runs the methods of
``windalign.games.METHODS``, prints a table (final gap, exploitability, win rate vs ``ref``,
iterations, seconds) and writes the run directory ``--out``: ``gap.png`` (gap vs iteration, log
scale), ``summary.json`` (strict JSON: a non-finite number is ``null``) and ``status.json`` (see
:class:`windalign.rundir.RunDir`; the figure and summary are committed together at the end).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from windalign.rundir import OVERWRITE_HELP

HELP = "solve random (or loaded) preference games exactly and compare WIND with its baselines"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``solve`` subcommand to ``subparsers`` (sets ``func=run``)."""
    from windalign.games.methods import METHODS

    p = subparsers.add_parser(
        "solve",
        help=HELP,
        description=HELP,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--size", "-K", type=int, default=20, help="responses per context K")
    p.add_argument("--contexts", "-B", type=int, default=16, help="number of contexts B")
    p.add_argument(
        "--nontransitive", type=float, default=0.5, help="non-transitive share of the oracle"
    )
    p.add_argument("--beta", type=float, default=0.1, help="KL regularization of the WIND game")
    p.add_argument("--seed", type=int, default=0, help="seed of the random game")
    p.add_argument("--game", type=Path, help="load P [..., K, K] and ref [..., K] from an .npz")
    p.add_argument(
        "--methods",
        default=",".join(METHODS.names()),
        help="comma-separated list from: "
        + "; ".join(f"{e.name} ({e.help})" for e in METHODS.entries()),
    )
    p.add_argument("--max-iter", type=int, default=1000, help="iteration cap of every method")
    p.add_argument("--out", type=Path, default=Path("runs/solve"), help="output directory")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)
    return p


def load_game(path: Path) -> tuple[Any, Any]:
    """``(P, ref)`` from an ``.npz`` with keys ``P`` ``[..., K, K]`` and ``ref`` ``[..., K]``.

    Errors name the file, the key or shape at fault, and the fix.
    """
    import numpy as np

    from windalign.games.preference import validate_policy, validate_preference

    if not path.is_file():
        raise FileNotFoundError(f"game file {path} does not exist; pass an .npz with keys P, ref")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises several types for corrupt files
        raise ValueError(
            f"cannot read {path} as .npz ({err}); save it with np.savez(path, P=P, ref=ref)"
        ) from None
    with data:
        missing = [k for k in ("P", "ref") if k not in data.files]
        if missing:
            raise ValueError(
                f"{path} lacks key(s) {', '.join(missing)} "
                f"(has: {', '.join(data.files) or 'none'}); "
                "save it with np.savez(path, P=P, ref=ref)"
            )
        P, ref = data["P"], data["ref"]
    shared = P.ndim == 2 and ref.shape[-1:] == P.shape[-1:]  # one oracle for every ref
    if P.ndim < 2 or P.shape[-1] != P.shape[-2] or (P.shape[:-1] != ref.shape and not shared):
        raise ValueError(
            f"{path}: P has shape {P.shape} and ref {ref.shape}; need P [..., K, K] and "
            "ref [..., K] with the same leading dims and K (or one shared P [K, K])"
        )
    if P.size == 0 or ref.size == 0:
        raise ValueError(f"{path}: P {P.shape} or ref {ref.shape} is empty; store >= 1 context")
    return validate_preference(P, name=f"{path}:P"), validate_policy(ref, name=f"{path}:ref")


def run(args: argparse.Namespace) -> int:
    """Run ``wind solve``; returns the exit status."""
    import numpy as np

    from windalign.games.methods import METHODS
    from windalign.games.metrics import exploitability, win_rate
    from windalign.games.preference import random_game
    from windalign.plotting import Curve, line_plot
    from windalign.rundir import RunDir, dumps_json

    # --out a file is refused here; the directory is taken (locked, checked) after the input
    # checks, so a typo in an option leaves no run directory behind
    rundir = RunDir(args.out, getattr(args, "argv", None), overwrite=args.overwrite)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not names:
        raise ValueError(f"--methods is empty; choose from: {', '.join(METHODS.names())}")
    methods = {name: METHODS[name] for name in names}  # KeyError lists the valid names
    if not (np.isfinite(args.beta) and args.beta > 0):
        raise ValueError(f"--beta must be a finite number > 0, got {args.beta}")
    if args.max_iter < 0:
        raise ValueError(f"--max-iter must be >= 0, got {args.max_iter}")
    if args.contexts < 1:
        raise ValueError(f"--contexts must be >= 1, got {args.contexts}")
    if args.game is not None:
        P, ref = load_game(args.game)
        game = {"file": str(args.game), "shape": list(P.shape)}
    else:
        g = random_game(
            args.size, batch=(args.contexts,), nontransitive=args.nontransitive, seed=args.seed
        )
        P, ref = g.P, g.ref
        game = {
            "K": args.size,
            "contexts": args.contexts,
            "nontransitive": args.nontransitive,
            "seed": args.seed,
        }
    with rundir as rd:
        rows, curves = {}, {}
        for name, method in methods.items():
            res = method(P, ref, args.beta, max_iter=args.max_iter, progress=not args.no_progress)
            tr = res.trace
            rows[name] = {
                "gap": float(tr.gap[-1]),
                "exploitability": float(np.mean(exploitability(P, res.pi))),
                "win_rate_vs_ref": float(np.mean(win_rate(P, res.pi, ref))),
                "iterations": tr.iterations,
                "seconds": tr.seconds,
                "converged": tr.converged,
            }
            curves[name] = Curve(np.arange(len(tr.gap)), np.maximum(tr.gap, 1e-17))
        fig = line_plot(
            curves,
            rd.staging / "gap.png",
            xlabel="iteration",
            ylabel="max duality gap over contexts",
            title=f"WIND game, beta={args.beta:g}",
            logy=True,
        )
        summary = {"game": game, "beta": args.beta, "max_iter": args.max_iter, "methods": rows}
        fig, summary_path = rd.commit({"gap.png": fig, "summary.json": dumps_json(summary)})
    print(format_table(rows))
    print(f"figure: {fig}")
    print(f"summary: {summary_path}")
    return 0


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A fixed-width table of the per-method results (gap is the max over contexts, the others
    the mean).

    >>> print(format_table({"newton": {"gap": 1e-15, "exploitability": 0.01,
    ...     "win_rate_vs_ref": 0.7, "iterations": 5, "seconds": 0.01, "converged": True}}))
    method                  max gap  exploitab.  win vs ref   iters    seconds
    newton                1.000e-15      0.0100      0.7000       5      0.010
    """
    head = f"{'method':<16}{'max gap':>15}{'exploitab.':>12}{'win vs ref':>12}{'iters':>8}"
    lines = [head + f"{'seconds':>11}"]
    for name, r in rows.items():
        lines.append(
            f"{name:<16}{r['gap']:>15.3e}{r['exploitability']:>12.4f}"
            f"{r['win_rate_vs_ref']:>12.4f}{r['iterations']:>8d}{r['seconds']:>11.3f}"
        )
    return "\n".join(lines)
