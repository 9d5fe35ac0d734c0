"""The ``wind`` command: one entry point, one subcommand per capability.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` (which sets
``func`` on its parser) and imports its heavy dependencies lazily, so ``wind --help`` is instant
and ``wind solve`` never imports torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from windalign import __version__
from windalign.cli import bandit, solve

SUBCOMMANDS = (solve, bandit)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``wind`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"wind {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
