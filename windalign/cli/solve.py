"""``wind solve``: solve a batch of preference games with every exact method and compare them.

Builds a seeded random game (or loads ``P`` and ``ref`` from an ``.npz``), runs the methods of
``windalign.games.METHODS``, prints a table (final gap, exploitability, win rate vs ``ref``,
iterations, seconds, converged) and writes the run directory ``--out``: ``gap.png`` (gap vs
iteration, log-log scale), ``summary.json`` (strict JSON: a non-finite number is ``null``) and
``status.json`` (see :class:`windalign.rundir.RunDir`; the figure and summary are committed
together at the end).

Exit status: 0 when every exact solver (newton, mirror) reached ``--tol``; 3 when one did not
(the results are written and the run directory is complete; a warning names the solver and the
fix; ``--allow-unconverged`` turns this into 0); 2 for bad input, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from windalign.cli.options import METHODS_METAVAR, methods_help
from windalign.rundir import OVERWRITE_HELP

HELP = "solve random (or loaded) preference games exactly and compare WIND with its baselines"
#: the exit status of a run in which an exact solver did not reach ``--tol``
EXIT_UNCONVERGED = 3
#: float64 arrays of B x K x K alive at the peak (the oracle, its construction, Newton's matrices)
PEAK_ARRAYS = 6
#: the options that describe a random game; ``--game`` refuses them
_RANDOM_GAME = {"size": "-K/--size", "contexts": "-B/--contexts", "seed": "--seed"}
_RANDOM_GAME |= {"nontransitive": "--nontransitive"}
_DEFAULTS = {"size": 20, "contexts": 16, "seed": 0, "nontransitive": 0.5}

EPILOG = (
    f"exit status: 0 done; {EXIT_UNCONVERGED} done, but an exact solver (newton, mirror) did not "
    "reach --tol within its iteration cap (results written, a warning on stderr; "
    "--allow-unconverged exits 0); 2 bad input (one line on stderr); 130 interrupted (Ctrl-C)."
)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in ``--help``, but not the uninformative ``None`` / ``False``."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``solve`` subcommand to ``subparsers`` (sets ``func=run``)."""
    from windalign.games.methods import BASELINE_MAX_ITER, DEFAULT_MAX_ITER, METHODS
    from windalign.games.solvers import BETA_MAX, BETA_MIN

    p = subparsers.add_parser(
        "solve",
        help=HELP,
        description=HELP,
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    suppress = argparse.SUPPRESS  # given or not: --game refuses the random-game options
    p.add_argument(
        "--size", "-K", type=int, default=suppress, help="responses per context K (default 20)"
    )
    p.add_argument(
        "--contexts", "-B", type=int, default=suppress, help="number of contexts B (default 16)"
    )
    p.add_argument(
        "--nontransitive",
        type=float,
        default=suppress,
        help="non-transitive share of the random oracle, in [0, 1] (default 0.5)",
    )
    p.add_argument(
        "--beta",
        type=float,
        default=0.1,
        help=f"KL regularization of the WIND game, in [{BETA_MIN:g}, {BETA_MAX:g}]",
    )
    p.add_argument(
        "--seed", type=int, default=suppress, help="seed of the random game, >= 0 (default 0)"
    )
    p.add_argument(
        "--game",
        type=Path,
        help="load P [..., K, K] and ref [..., K] from an .npz (np.savez(path, P=P, ref=ref)); "
        "not with -K, -B, --seed, --nontransitive",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        metavar=METHODS_METAVAR,
        default=suppress,
        help=methods_help(METHODS.names())
        + "; "
        + "; ".join(f"{e.name}: {e.help}" for e in METHODS.entries()),
    )
    caps = ", ".join(f"{name} {cap}" for name, cap in DEFAULT_MAX_ITER.items())
    p.add_argument(
        "--max-iter",
        type=int,
        default=None,
        help=f"iteration cap of every method (default: {caps}, the baselines {BASELINE_MAX_ITER})",
    )
    p.add_argument(
        "--tol", type=float, default=1e-12, help="max duality gap the exact solvers must reach"
    )
    p.add_argument(
        "--allow-unconverged",
        action="store_true",
        help=f"exit 0, not {EXIT_UNCONVERGED}, when an exact solver does not reach --tol",
    )
    p.add_argument("--out", type=Path, default=Path("runs/solve"), help="output directory")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)
    return p


def _describe(path: Path) -> str:
    """What a non-regular file is, for messages (``'a directory'``, ``'a character device'``)."""
    import stat

    mode = path.stat().st_mode
    for test, what in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def load_game(path: Path) -> tuple[Any, Any]:
    """``(P, ref)`` in float64 from an ``.npz`` with keys ``P`` ``[..., K, K]`` and ``ref``
    ``[..., K]`` (a lower-precision ``P`` is projected onto ``P + P^T = 1``, see
    :func:`windalign.games.as_float64_game`).

    Errors name the file, the key or shape at fault, and the fix: a missing file, a directory or
    device, a ``.npy`` (one array), a text or other non-``.npz`` file, missing keys, object
    arrays, wrong shapes, an empty game, values that are not an oracle / a policy.
    """
    import zipfile

    import numpy as np

    from windalign.games.preference import game_shape, validate_policy, validate_preference
    from windalign.games.solvers import as_float64_game

    fix = "save it with np.savez(path, P=P, ref=ref)"
    if not path.exists():
        raise FileNotFoundError(f"--game {path} does not exist; pass an .npz with keys P, ref")
    if not path.is_file():
        raise ValueError(f"--game {path} is {_describe(path)}, not a file; pass an .npz ({fix})")
    with path.open("rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        raise ValueError(
            f"--game {path} is a .npy file (a single array); the game needs two arrays: {fix}"
        )
    if not zipfile.is_zipfile(path):
        what = "an empty file" if not head else "not an .npz archive"
        raise ValueError(f"--game {path} is {what}; {fix}")
    try:
        data = np.load(path, allow_pickle=False)
        with data:
            missing = [k for k in ("P", "ref") if k not in data.files]
            if missing:
                raise ValueError(
                    f"{path} lacks key(s) {', '.join(missing)} "
                    f"(has: {', '.join(data.files) or 'none'}); {fix}"
                )
            P, ref = data["P"], data["ref"]
    except MemoryError:
        raise ValueError(f"--game {path} does not fit in memory; pass a smaller game") from None
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"cannot read {path} as .npz ({err}); {fix}") from None
    except Exception as err:  # numpy and zipfile raise several types for corrupt files
        raise ValueError(f"cannot read {path} as .npz ({err}); {fix}") from None
    try:
        game_shape(P, ref)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    validate_preference(P, name=f"{path}:P")
    validate_policy(ref, name=f"{path}:ref")
    return as_float64_game(P, ref)


def _check_options(args: argparse.Namespace) -> dict[str, Any]:
    """Check every option before any compute; returns the random game's settings (or ``{}``)."""
    import math

    from windalign.games.solvers import check_beta

    check_beta(args.beta, name="--beta")
    if args.max_iter is not None and args.max_iter < 0:
        raise ValueError(f"--max-iter must be >= 0, got {args.max_iter}")
    if not (math.isfinite(args.tol) and args.tol > 0):  # the gap's rounding floor is ~1e-16
        raise ValueError(f"--tol must be a finite number > 0, got {args.tol}")
    given = [flag for key, flag in _RANDOM_GAME.items() if hasattr(args, key)]
    if args.game is not None:
        if given:
            verb, them = ("describes", "it") if len(given) == 1 else ("describe", "them")
            raise ValueError(
                f"--game loads the game from {args.game}; {', '.join(given)} {verb} a random "
                f"game and cannot be combined with it: drop {them}"
            )
        return {}
    game = {key: getattr(args, key, default) for key, default in _DEFAULTS.items()}
    if game["size"] < 1:
        raise ValueError(f"--size must be >= 1, got {game['size']}")
    if game["contexts"] < 1:
        raise ValueError(f"--contexts must be >= 1, got {game['contexts']}")
    if not 0.0 <= game["nontransitive"] <= 1.0:  # NaN fails too
        raise ValueError(f"--nontransitive must be in [0, 1], got {game['nontransitive']}")
    if game["seed"] < 0:
        raise ValueError(f"--seed must be >= 0, got {game['seed']}")
    check_game_memory(game["contexts"], game["size"], f"-B {game['contexts']} x -K {game['size']}")
    return game


def check_game_memory(contexts: int, K: int, what: str) -> None:
    """Refuse a game of ``contexts`` x ``K`` x ``K`` whose solve would not fit in memory."""
    from windalign.resources import FLOAT64, check_memory

    fix = f"lower -B or -K: the solvers hold about {PEAK_ARRAYS} float64 arrays of B x K x K"
    check_memory(PEAK_ARRAYS * FLOAT64 * contexts * K * K, what, fix)


def run(args: argparse.Namespace) -> int:
    """Run ``wind solve``; returns the exit status."""
    import numpy as np

    from windalign.cli.options import parse_methods
    from windalign.games.methods import BASELINE_MAX_ITER, DEFAULT_MAX_ITER, EXACT, METHODS
    from windalign.games.metrics import exploitability, win_rate
    from windalign.games.preference import random_game
    from windalign.plotting import Curve, line_plot
    from windalign.rundir import RunDir, dumps_json

    # --out a file is refused here; the directory is taken (locked, checked) after the input
    # checks, so a typo in an option leaves no run directory behind
    rundir = RunDir(args.out, getattr(args, "argv", None), overwrite=args.overwrite)
    names = parse_methods(getattr(args, "methods", METHODS.names()), METHODS.names())
    random = _check_options(args)
    if args.game is not None:
        P, ref = load_game(args.game)
        n = int(np.prod(np.broadcast_shapes(P.shape[:-1], ref.shape)[:-1]))
        check_game_memory(n, P.shape[-1], f"--game {args.game} ({n} contexts x K {P.shape[-1]})")
        game = {"file": str(args.game), "shape": list(P.shape)}
    else:
        g = random_game(
            random["size"],
            batch=(random["contexts"],),
            nontransitive=random["nontransitive"],
            seed=random["seed"],
        )
        P, ref = g.P, g.ref
        game = {
            "K": random["size"],
            "contexts": random["contexts"],
            "nontransitive": random["nontransitive"],
            "seed": random["seed"],
        }
    with rundir as rd:
        rows, curves = {}, {}
        for name in names:
            cap = args.max_iter
            if cap is None:
                cap = DEFAULT_MAX_ITER.get(name, BASELINE_MAX_ITER)
            res = METHODS[name](
                P, ref, args.beta, max_iter=cap, tol=args.tol, progress=not args.no_progress
            )
            tr = res.trace
            rows[name] = {
                "gap": float(tr.gap[-1]),
                "exploitability": float(np.mean(exploitability(P, res.pi))),
                "win_rate_vs_ref": float(np.mean(win_rate(P, res.pi, ref))),
                "iterations": tr.iterations,
                "max_iter": cap,
                "seconds": tr.seconds,
                "exact": name in EXACT,
                "converged": bool(tr.converged),
            }
            curves[name] = Curve(np.arange(1, len(tr.gap) + 1), np.maximum(tr.gap, 1e-17))
        fig = line_plot(
            curves,
            rd.staging / "gap.png",
            xlabel="iteration + 1 (log scale: Newton's few steps stay visible)",
            logx=True,
            ylabel="max duality gap over contexts",
            title=f"WIND game, beta={args.beta:g}",
            logy=True,
        )
        unconverged = [name for name, r in rows.items() if r["exact"] and not r["converged"]]
        summary = {
            "game": game,
            "beta": args.beta,
            "tol": args.tol,
            "max_iter": args.max_iter,
            "methods": rows,
            "exact_converged": not unconverged,
        }
        fig, summary_path = rd.commit({"gap.png": fig, "summary.json": dumps_json(summary)})
    print(format_table(rows))
    print(f"figure: {fig}")
    print(f"summary: {summary_path}")
    for name in unconverged:
        r = rows[name]
        print(
            f"wind solve: warning: {name} did not converge: max gap {r['gap']:.3g} > --tol "
            f"{args.tol:g} after {r['iterations']} iterations (cap {r['max_iter']}); raise "
            "--max-iter, loosen --tol, leave it out of --methods, or pass --allow-unconverged",
            file=sys.stderr,
        )
    return EXIT_UNCONVERGED if unconverged and not args.allow_unconverged else 0


def format_table(rows: dict[str, dict[str, Any]]) -> str:
    """A fixed-width table of the per-method results (gap is the max over contexts, the others
    the mean). ``converged`` is ``yes`` / ``NO`` for the exact solvers and ``-`` for the
    baselines (they do not converge to the WIND equilibrium).

    >>> print(format_table({"newton": {"gap": 1e-15, "exploitability": 0.01,
    ...     "win_rate_vs_ref": 0.7, "iterations": 5, "seconds": 0.01, "converged": True,
    ...     "exact": True}}))
    method                  max gap  exploitab.  win vs ref   iters    seconds  converged
    newton                1.000e-15      0.0100      0.7000       5      0.010        yes
    """
    head = f"{'method':<16}{'max gap':>15}{'exploitab.':>12}{'win vs ref':>12}{'iters':>8}"
    lines = [head + f"{'seconds':>11}{'converged':>11}"]
    for name, r in rows.items():
        conv = ("yes" if r["converged"] else "NO") if r.get("exact", True) else "-"
        lines.append(
            f"{name:<16}{r['gap']:>15.3e}{r['exploitability']:>12.4f}"
            f"{r['win_rate_vs_ref']:>12.4f}{r['iterations']:>8d}{r['seconds']:>11.3f}"
            f"{conv:>11}"
        )
    return "\n".join(lines)
