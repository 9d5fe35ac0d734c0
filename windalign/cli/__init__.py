"""The ``wind`` command: one entry point, one subcommand per capability.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` (which sets
``func`` on its parser) and imports its heavy dependencies lazily, so ``wind --help`` is instant
and ``wind solve`` never imports torch. A subcommand that writes ``--out`` opens it with
:class:`windalign.rundir.RunDir` (``command=args.argv``, the full command line) before any compute.

Options are spelled with dashes (``--max-new-tokens``); the same name with underscores
(``--max_new_tokens``, as the config keys of ``wind train`` are written) is accepted everywhere.

Exit status: 0 done, 2 bad input (a one-line ``wind COMMAND: error: ...``), 130 Ctrl-C and 143
SIGTERM (a one-line ``wind COMMAND: interrupted``, no traceback; the run directory says
``interrupted``); ``wind solve`` also 3: done, but an exact solver did not reach ``--tol`` (a
warning on stderr; ``--allow-unconverged`` exits 0).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

from windalign import __version__
from windalign.cli import bandit, evaluate, prepare_model, solve, train
from windalign.rundir import Terminated

#: one module per subcommand, in ``wind --help`` order; append new ones at the end
SUBCOMMANDS = (
    solve,
    bandit,
    train,
    evaluate,
    prepare_model,
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``wind`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="wind",
        description="WIND (win-rate dominance) alignment: exact games, bandit benchmark, LLMs.",
    )
    parser.add_argument("--version", action="version", version=f"windalign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    return parser


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(f"terminated by signal {signum} (SIGTERM)")


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` while a command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def dashed(argv: Sequence[str]) -> list[str]:
    """Option names with dashes: ``--max_new_tokens=5`` -> ``--max-new-tokens=5``.

    >>> dashed(["--resume-from-checkpoint", "runs/a_b", "--x_y=1_0"])
    ['--resume-from-checkpoint', 'runs/a_b', '--x-y=1_0']
    """
    out = []
    for token in argv:
        if token.startswith("--"):
            name, eq, value = token.partition("=")
            token = name.replace("_", "-") + eq + value
        out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wind`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(dashed(argv))
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra  # --KEY VALUE overrides, for the subcommands that take them
    args.argv = ["wind", *argv]  # recorded in the run directory's status.json
    try:
        with _sigterm_interrupts():
            return int(args.func(args) or 0)
    except KeyboardInterrupt as err:  # Ctrl-C, SIGTERM: RunDir has recorded "interrupted"
        print(f"wind {args.command}: interrupted", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    except (ValueError, FileNotFoundError, KeyError, FloatingPointError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"wind {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
