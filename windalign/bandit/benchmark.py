"""The bandit benchmark: tune every method on its own knobs, rerun on fresh seeds, report.

Protocol (``configs/bandit.yaml``): every method gets the same policy class, the same preference
query budget and the same tuning seeds; each is tuned on the learning rate times one knob of its
own (:mod:`windalign.bandit.methods`, :class:`~windalign.bandit.config.TuningSettings`). The grid
point with the best tuning score (:func:`tuning_scores`: the mean exact win rate against
``Bo2^t(pi_ref)`` over the run's log-spaced evaluations) is rerun on fresh seeds ``0..n-1``.
Runs go to a process pool (``workers``); each process builds the environment and its exact
evaluator once.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from windalign.bandit.config import (
    BenchConfig,
    check_methods,
    check_runs,
    config_to_dict,
    grid,
    method_hyperparameters,
)
from windalign.bandit.env import EnvConfig, PreferenceBandit
from windalign.bandit.methods import BENCH_METHODS
from windalign.bandit.runner import Evaluator, RunConfig, dominance_score, train

if TYPE_CHECKING:
    from windalign.rundir import RunDir


@dataclass(frozen=True)
class Task:
    """One run of the benchmark (picklable): method, grid point, seed and phase."""

    phase: str
    method: str
    point: int
    lr: float
    value: float | None
    seed: int
    run: RunConfig


def make_task(cfg: BenchConfig, phase: str, method: str, point: int, seed: int) -> Task:
    """The :class:`Task` for ``method`` at its grid point number ``point`` and ``seed``."""
    lr, value = grid(cfg, method)[point]
    t = cfg.train
    run = RunConfig(
        method=BENCH_METHODS[method].loss,
        lr=lr,
        hp=method_hyperparameters(cfg, method, value),
        seed=seed,
        policy=t.policy,
        hidden=t.hidden,
        batch=t.batch,
        samples=t.samples,
        steps_per_round=t.steps_per_round,
        query_budget=t.query_budget,
        evals=t.evals,
    )
    return Task(phase, method, point, lr, value, seed, run)


_WORKER: dict[str, tuple[PreferenceBandit, Evaluator]] = {}


def _init_worker(env_cfg: EnvConfig, beta: float, bon_rounds: int) -> None:
    env = PreferenceBandit(env_cfg)
    _WORKER["env"] = (env, Evaluator(env, beta, bon_rounds))


def _init_pool_worker(env_cfg: EnvConfig, beta: float, bon_rounds: int) -> None:
    import signal

    import torch

    # Ctrl-C reaches the whole process group: the parent handles it (status "interrupted",
    # one line, exit 130); a worker must not print a traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)  # one process per core; tiny tensors gain nothing from threads
    _init_worker(env_cfg, beta, bon_rounds)


def _run_task(task: Task) -> list[dict]:
    env, evaluator = _WORKER["env"]
    tags = {"phase": task.phase, "method": task.method, "seed": task.seed, "point": task.point}
    tags["lr"] = task.lr
    tags["knob"] = BENCH_METHODS[task.method].knob or ""
    tags["value"] = float("nan") if task.value is None else task.value
    return [tags | row for row in train(env, evaluator, task.run)]


@contextlib.contextmanager
def task_runner(cfg: BenchConfig) -> Iterator[Callable[..., Iterator[list[dict]]]]:
    """A ``map``-like callable running tasks: in-process for ``workers = 1``, else in a pool of
    spawned processes (started once, reused by the tuning and report phases)."""
    init = (cfg.env, cfg.train.beta, cfg.report.bon_rounds)
    if cfg.workers == 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny tensors: extra threads only spin against other work
        try:
            _init_worker(*init)
            yield map
        finally:
            torch.set_num_threads(threads)
        return
    ctx = multiprocessing.get_context("spawn")
    workers = min(cfg.workers, os.cpu_count() or 1)
    with ProcessPoolExecutor(workers, ctx, initializer=_init_pool_worker, initargs=init) as pool:
        yield functools.partial(pool.map, chunksize=1)


def run_tasks(
    mapper: Callable[..., Iterator[list[dict]]], tasks: Sequence[Task], progress: bool, desc: str
) -> list[dict]:
    """Run ``tasks`` with ``mapper`` (see :func:`task_runner`); all their rows, in task order."""
    bar = tqdm(mapper(_run_task, tasks), total=len(tasks), desc=desc, disable=not progress)
    return [row for rows in bar for row in rows]


def tuning_scores(rows: Iterable[Mapping]) -> dict[tuple[str, int], float]:
    """Tuning score per (method, grid point): the mean over the run's evaluations and the tuning
    seeds of :func:`~windalign.bandit.runner.dominance_score` (the mean exact win rate against
    ``Bo2^t(pi_ref)``, ``t = 1..report.bon_rounds``). Evaluations are log-spaced in rounds, so
    this is the area under the head-to-head curves on a log-query axis: early progress and final
    strength count alike, and the score is the headline's own quantity.

    >>> rows = [{"method": "m", "point": 0, "win_rate_vs_bo2_1": w} for w in (0.4, 0.6)]
    >>> tuning_scores(rows)
    {('m', 0): 0.5}
    """
    groups: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["point"]), []).append(dominance_score(r))
    return {key: float(np.mean(v)) for key, v in groups.items()}


def best_points(methods: Iterable[str], scores: Mapping[tuple[str, int], float]) -> dict[str, int]:
    """Each method's grid point with the best tuning score (ties: the first in the grid).

    >>> best_points(["m"], {("m", 0): 0.6, ("m", 1): 0.7, ("m", 2): 0.7})
    {'m': 1}
    """
    best = {}
    for method in methods:
        points = sorted(p for m, p in scores if m == method)
        best[method] = max(points, key=lambda p: (scores[(method, p)], -p))
    return best


def run_benchmark(cfg: BenchConfig, progress: bool = True) -> tuple[list[dict], list[dict], dict]:
    """Tune every method, rerun the best grid point on fresh seeds.

    Returns ``(tuning_rows, report_rows, best)`` where ``best[method] = (lr, knob value)``. Each
    row is one evaluation of one run (see :func:`windalign.bandit.runner.train`) tagged with
    ``phase``, ``method``, ``seed``, grid ``point``, ``lr``, ``knob`` (its name, empty for lr
    only) and ``value`` (NaN for lr only).
    """
    tasks = [
        make_task(cfg, "tune", m, point, seed)
        for m in cfg.methods
        for point in range(len(grid(cfg, m)))
        for seed in cfg.tuning.seeds
    ]
    with task_runner(cfg) as mapper:
        tuning = run_tasks(mapper, tasks, progress, "tuning")
        best = best_points(cfg.methods, tuning_scores(tuning))
        seeds = range(cfg.report.seeds)
        tasks = [make_task(cfg, "report", m, best[m], s) for m in cfg.methods for s in seeds]
        report = run_tasks(mapper, tasks, progress, "report")
    return tuning, report, {m: grid(cfg, m)[p] for m, p in best.items()}


def csv_text(rows: Sequence[Mapping]) -> str:
    """Rows (dicts with the same keys) as CSV text with a header (``csv``'s default dialect).

    >>> csv_text([{"a": 1, "b": 0.5}])
    'a,b\\r\\n1,0.5\\r\\n'
    """
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(rows: Sequence[Mapping], path: Path) -> Path:
    """Write rows (dicts with the same keys) as CSV at ``path``, atomically."""
    from windalign.rundir import atomic_write

    return atomic_write(path, csv_text(rows))


def with_overrides(cfg: BenchConfig, seeds: int | None, methods: list[str] | None) -> BenchConfig:
    """``cfg`` with the CLI's ``--seeds`` / ``--methods`` applied (validated)."""
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"--seeds = {seeds} is invalid; it must be an integer >= 1")
        cfg = replace(cfg, report=replace(cfg.report, seeds=seeds))
    if methods:
        cfg = replace(cfg, methods=check_methods(list(methods), key="--methods"))
        check_runs(cfg)
    return cfg


def write_run(
    cfg: BenchConfig,
    out: str | Path,
    progress: bool = True,
    *,
    overwrite: bool = False,
    command: list[str] | None = None,
) -> Path:
    """Run the benchmark and write the run directory ``out``; returns the ``summary.md`` path.

    Files: ``curves.csv`` (every evaluation of every report run), ``tuning.csv``,
    ``summary.md`` (tables with 95% intervals), the PNG figures of
    :func:`windalign.bandit.report.write_figures` and ``config.yaml`` (resolved), all committed
    together after the run (config last), and ``status.json``: see
    :class:`windalign.rundir.RunDir`, which also takes ``overwrite`` and ``command``.
    """
    from windalign.rundir import RunDir

    with RunDir(out, command, overwrite=overwrite) as rd:
        return _run_and_commit(cfg, rd, progress)


#: betas of the dense WIND equilibrium family the frontier tables interpolate along
FAMILY_BETAS = tuple(np.geomspace(0.005, 20.0, 49).tolist())


def grid_protocol(cfg: BenchConfig) -> str:
    """One line per method: its tuned knob and its number of grid points (they differ).

    >>> print(grid_protocol(BenchConfig(methods=["wind-kl", "dpo"])))
    - `wind-kl`: lr x eta (25 points)
    - `dpo`: lr (5 points)
    """
    lines = []
    for m in cfg.methods:
        knob = BENCH_METHODS[m].knob
        axis = "lr" if knob is None else f"lr x {'beta / eta' if knob == 'beta' else knob}"
        lines.append(f"- `{m}`: {axis} ({len(grid(cfg, m))} points)")
    return "\n".join(lines)


def _run_and_commit(cfg: BenchConfig, rd: RunDir, progress: bool) -> Path:
    """The body of :func:`write_run` inside the open run directory ``rd``."""
    import time

    import yaml

    from windalign.bandit.report import Yardsticks, collect, summary_tables, write_figures

    config = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)  # fails before the run
    start = time.perf_counter()
    tuning, report, best = run_benchmark(cfg, progress)
    elapsed = time.perf_counter() - start
    evaluator = Evaluator(PreferenceBandit(cfg.env), cfg.train.beta, cfg.report.bon_rounds)
    eq = evaluator(np.log(evaluator.pi_star))
    ys = Yardsticks(
        bo2=evaluator.iterated_bo2(cfg.report.bon_rounds),
        eqs=evaluator.equilibria(cfg.report.eq_betas),
        family=evaluator.equilibria(FAMILY_BETAS),
    )
    runs = collect(report)
    figures = write_figures(runs, rd.staging, eq, ys)
    e, t, tu = cfg.env, cfg.train, cfg.tuning
    lines = [
        "# Bandit benchmark summary",
        "",
        f"{len(cfg.methods)} methods, each tuned on {len(tu.seeds)} seeds over lr {tu.lr} x one "
        f"knob of its own (eta {tu.eta}, J-BOND's gamma {tu.gamma}) by the mean exact win rate "
        f"against Bo2^1..{cfg.report.bon_rounds}(pi_ref) over the run's evaluations, reported on "
        f"{cfg.report.seeds} fresh seeds (mean ± 95% t-interval). Budget {t.query_budget} "
        f"preference queries per run, {t.batch} prompts x {t.samples} samples per round, "
        f"{t.steps_per_round} gradient step(s) per round, `{t.policy}` policy, beta = "
        f"{t.beta:g}. Environment: K = {e.n_actions} actions, d = {e.context_dim}, "
        f"non-transitive share {e.nontransitive:g}, {len(evaluator.x)} evaluation contexts. "
        f"Total time {elapsed:.0f} s.",
        "",
        "Grid points per method:",
        "",
        grid_protocol(cfg),
        "",
        f"Exact WIND equilibrium pi* (beta = {t.beta:g}): win rate vs ref "
        f"{eq['win_rate_ref']:.4f}, exploitability {eq['exploitability']:.4f}, KL(pi*‖ref) "
        f"{eq['kl_ref']:.4f}.",
        "",
        *summary_tables(runs, best, ys, cfg.report.kl_levels),
        "",
        "Figures: " + ", ".join(f"[{p.name}]({p.name})" for p in figures),
        "",
    ]
    files: dict[str, str | Path] = {"tuning.csv": csv_text(tuning), "curves.csv": csv_text(report)}
    files |= {p.name: p for p in figures}
    files |= {"summary.md": "\n".join(lines), "config.yaml": config}  # the config last
    rd.commit(files)
    return rd.path / "summary.md"
