"""``wind bandit``: the contextual-bandit benchmark of every objective (THEORY.md 5-6).

Tunes each method on the same grid and budget, reruns the best grid point on fresh seeds and
writes one run directory: ``config.yaml``, ``curves.csv``, ``tuning.csv``, ``summary.md`` and
PNG figures.
"""

from __future__ import annotations

import argparse
from importlib.resources import files

#: The built-in default, shipped inside the package (``configs/bandit.yaml`` links to it).
DEFAULT_CONFIG = str(files("windalign.configs") / "bandit.yaml")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``bandit`` subcommand to ``subparsers``."""
    p = subparsers.add_parser(
        "bandit",
        help="contextual-bandit benchmark of every objective",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config", default=DEFAULT_CONFIG, help="YAML config (default: the built-in bandit.yaml)"
    )
    p.add_argument("--quick", action="store_true", help="apply the config's quick: overrides")
    p.add_argument("--out", default=None, help="run directory (default: runs/bandit[-quick])")
    p.add_argument("--seeds", type=int, default=None, help="report seeds (overrides the config)")
    p.add_argument("--methods", nargs="+", default=None, help="methods to run (default: all)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (YAML), e.g. --set train.samples=2; repeatable",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Load and validate the config, run the benchmark, print where the results are."""
    from windalign.bandit.benchmark import with_overrides, write_run
    from windalign.bandit.config import load_config

    cfg = load_config(args.config, quick=args.quick, overrides=args.set)
    cfg = with_overrides(cfg, args.seeds, args.methods)
    out = args.out or ("runs/bandit-quick" if args.quick else "runs/bandit")
    summary = write_run(cfg, out, progress=not args.no_progress)
    print(summary.read_text())
    print(f"wrote {summary.parent}/ (summary.md, curves.csv, tuning.csv, config.yaml, *.png)")
    return 0
