"""``wind bandit``: the contextual-bandit benchmark of every objective (THEORY.md 5-6).

Tunes each method on the same grid and budget, reruns the best grid point on fresh seeds and
writes one run directory: ``curves.csv``, ``tuning.csv``, ``summary.md``, PNG figures and
``config.yaml``, committed together once the run is done, and ``status.json`` (running /
complete / failed / interrupted). A non-empty ``--out`` holding another run is refused unless
``--overwrite``.
"""

from __future__ import annotations

import argparse
from importlib.resources import files

from windalign.cli.options import METHODS_METAVAR, methods_help
from windalign.rundir import OVERWRITE_HELP

#: The built-in default, shipped inside the package (``configs/bandit.yaml`` links to it).
DEFAULT_CONFIG = str(files("windalign.configs") / "bandit.yaml")
#: ``windalign.bandit.methods.BENCH_METHODS.names()``, spelled out for ``--help`` because
#: building the parser must not import torch; a test keeps the two equal.
METHOD_NAMES = (
    "wind-squared",
    "wind-kl",
    "wind-nce",
    "sppo",
    "sppo-hard",
    "jbond",
    "nash-md",
    "nash-md-fixed-alpha",
    "dpo",
    "ipo",
    "dpo-beta-tuned",
    "ipo-beta-tuned",
    "bon-distill",
)


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
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--seeds", type=int, default=None, help="report seeds (overrides the config)")
    p.add_argument(
        "--methods",
        nargs="+",
        metavar=METHODS_METAVAR,
        default=None,
        help=methods_help(METHOD_NAMES, default="the config's methods"),
    )
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
    from windalign.bandit.methods import BENCH_METHODS
    from windalign.cli.options import parse_methods
    from windalign.rundir import RunDir

    out = args.out or ("runs/bandit-quick" if args.quick else "runs/bandit")
    RunDir(out)  # --out an existing file: refused before the config is even read
    methods = None if args.methods is None else parse_methods(args.methods, BENCH_METHODS.names())
    cfg = load_config(args.config, quick=args.quick, overrides=args.set)
    cfg = with_overrides(cfg, args.seeds, methods)
    command = getattr(args, "argv", None)
    summary = write_run(cfg, out, not args.no_progress, overwrite=args.overwrite, command=command)
    print(summary.read_text())
    print(f"wrote {summary.parent}/ (summary.md, curves.csv, tuning.csv, config.yaml, *.png)")
    return 0
