"""Benchmark: time and iterations to reach duality gap 1e-10, Newton vs exact WIND mirror steps.

B contexts x K actions (default 1000 x 100), beta in {1, 0.1, 0.01}, on two game generators
(:func:`games`): the benchmark's own random mixed games, and the same oracles with references
redrawn from a flat Dirichlet(1) (a few tiny reference probabilities per context). The baseline
dynamics (iterated Bo2, regularized BoN, SPPO, Nash-MD) run for a fixed number of iterations on
the first, for reference. Where the mirror solver would run past ``--mirror-budget`` seconds it
is stopped and its time to the target is extrapolated from its measured linear rate (said so in
the table). Ratios (Newton's speed-up over mirror) are measured in the same run.

    python benchmarks/solvers.py --out docs/benchmarks          # the full run (~10 minutes)
    python benchmarks/solvers.py --quick --out /tmp/bench       # a smoke run (seconds)

Writes ``DIR/solvers.json`` and ``DIR/solvers.md``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from windalign.games import METHODS, mirror_solve, newton_solve, random_game

TARGET = 1e-10
BASELINES = ("iterated-bo2", "regularized-bon", "sppo", "nash-md")


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory in the process heap (no mmap/munmap per large temporary).

    Newton allocates a few B x K x K (80 MB) temporaries per step; by default glibc maps and
    unmaps each one, and on this VM faulting fresh pages in is slow and erratic (single runs
    took 5-100x longer). Returns whether the setting took (only glibc supports it).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 2**30) and libc.mallopt(m_trim_threshold, 2**31 - 1))


def games(B: int, K: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """The two generators: ``name -> (P, ref, description)``."""
    g = random_game(K, batch=(B,), nontransitive=0.5, seed=seed)
    ref = np.random.default_rng(seed + 1).dirichlet(np.ones(K), size=B)
    return {
        "mixed": (
            g.P,
            g.ref,
            f"`random_game(K, batch=(B,), nontransitive=0.5, seed={seed})`: random mixed oracle "
            "(non-transitive share 0.5) with its own flat-Dirichlet reference",
        ),
        "dirichlet-ref": (
            g.P,
            ref,
            f"the same oracles, references redrawn from Dirichlet(1) (seed {seed + 1}): the case "
            "issue 10 measured (a few tiny reference probabilities per context, the smallest "
            f"{ref.min():.1e})",
        ),
    }


def time_newton(P: np.ndarray, ref: np.ndarray, beta: float, repeats: int) -> dict:
    """Median wall time of Newton to gap <= TARGET over ``repeats`` runs after one warm-up."""
    newton_solve(P, ref, beta, tol=TARGET)  # untimed: faults the working memory in
    runs = [newton_solve(P, ref, beta, tol=TARGET) for _ in range(repeats)]
    best = sorted(runs, key=lambda r: r.trace.seconds)[len(runs) // 2]
    return {
        "method": "newton",
        "iterations": best.trace.iterations,
        "seconds": best.trace.seconds,
        "all_seconds": [r.trace.seconds for r in runs],
        "final_gap": float(best.trace.gap[-1]),
        "converged": best.trace.converged,
        "extrapolated": False,
    }


def linear_rate(gap: np.ndarray) -> float:
    """Per-iteration factor of the gap fitted on the last quarter of the trace (least squares)."""
    tail = np.arange(len(gap) * 3 // 4, len(gap))
    slope = np.polyfit(tail, np.log(np.maximum(gap[tail], 1e-300)), 1)[0]
    return float(np.exp(slope))


def asymptotic_rate(P: np.ndarray, pi: np.ndarray, beta: float, eta: float) -> float:
    """Per-iteration factor of the mirror gap near the equilibrium ``pi`` (slowest context).

    The mirror map's Jacobian in logits at ``pi*`` is ``(I + eta P J) / (1 + eta beta)`` with
    ``J = diag(pi) - pi pi^T``; the error shrinks by its spectral radius ``rho`` per step and the
    gap, quadratic in the error, by ``rho^2`` (docs/theory.md, "Mirror step").
    """
    J = pi[..., :, None] * (np.eye(pi.shape[-1]) - pi[..., None, :])
    rho = np.abs(np.linalg.eigvals(np.eye(pi.shape[-1]) + eta * P @ J)).max() / (1 + eta * beta)
    return float(rho**2)


def time_mirror(
    P: np.ndarray, ref: np.ndarray, beta: float, budget: float, probe: float, pi_star: np.ndarray
) -> dict:
    """Mirror (eta = beta) to gap <= TARGET; stop and extrapolate when it would exceed ``budget``.

    Runs ``probe`` seconds first; if the linear rate says the target needs more than ``budget``
    seconds in total, stops there and extrapolates, otherwise continues to the target. The rate
    used is the faster of the one fitted on the measured trace and the exact asymptotic rate at
    ``pi_star`` (so an extrapolation never overstates the mirror's time).
    """
    asym = asymptotic_rate(P, pi_star, beta, beta)

    def remaining(gap: np.ndarray) -> tuple[float, float]:
        rate = min(linear_rate(gap), asym)
        return rate, np.log(TARGET / gap[-1]) / np.log(rate)

    res = mirror_solve(P, ref, beta, tol=TARGET, max_iter=10**9, max_seconds=probe)
    gap, iters, secs = res.trace.gap, res.trace.iterations, res.trace.seconds
    row = {"method": "mirror", "eta": beta, "extrapolated": False}
    if not res.trace.converged:
        _, more = remaining(gap)
        if secs / iters * (iters + more) <= budget:
            cont = mirror_solve(
                P, ref, beta, tol=TARGET, max_iter=10**9, pi0=res.pi, max_seconds=budget - secs
            )
            gap = np.concatenate([gap, cont.trace.gap[1:]])
            iters += cont.trace.iterations
            secs += cont.trace.seconds
    if gap[-1] <= TARGET:
        row.update(iterations=iters, seconds=secs, final_gap=float(gap[-1]), converged=True)
        return row
    rate, more = remaining(gap)
    row.update(
        iterations=int(iters + np.ceil(more)),
        seconds=secs / iters * (iters + more),
        measured_iterations=iters,
        measured_seconds=secs,
        final_gap=float(gap[-1]),
        used_rate=rate,
        fitted_rate=linear_rate(gap),
        asymptotic_rate=asym,
        kl_contraction_bound=1.0 / (1.0 + beta * beta),
        converged=False,
        extrapolated=True,
    )
    return row


def run_baseline(name: str, P: np.ndarray, ref: np.ndarray, beta: float, iters: int) -> dict:
    """A baseline dynamics for ``iters`` iterations (it does not target the WIND equilibrium)."""
    res = METHODS[name](P, ref, beta, max_iter=iters, progress=False, tol=TARGET)
    tr = res.trace
    return {
        "method": name,
        "iterations": tr.iterations,
        "seconds": tr.seconds,
        "final_gap": float(tr.gap[-1]),
        "min_gap": float(np.min(tr.gap)),
        "converged": tr.converged,
        "extrapolated": False,
    }


def to_markdown(result: dict) -> str:
    """The results tables (one per generator, and their setting) as markdown."""
    cfg = result["config"]
    lines = [
        "# Exact solver benchmark: Newton vs exact WIND mirror steps",
        "",
        f"Generated by `{result['command']}` on {result['machine']}, {result['date']} "
        f"({cfg['contexts']} contexts x {cfg['K']} actions; load average at start "
        f"{result['load_average']}, at the end {result['load_average_end']}: the machine is "
        "shared, so absolute times vary by up to ~2x between runs; the ratios are measured in "
        "the same run).",
        "",
        f"Target: max duality gap over all contexts <= {TARGET:g}. Newton time is the median of "
        f"{cfg['newton_repeats']} runs after one untimed warm-up run (glibc told to keep freed "
        f"memory: {cfg['keep_freed_memory']}; see `keep_freed_memory` in the script). "
        "Mirror uses the safe step eta = beta and first runs for "
        f"{cfg['mirror_probe']:g} s; where that run says the target needs more than "
        f"{cfg['mirror_budget']:g} s in total it is stopped there and its iterations and time are "
        "extrapolated linearly in log-gap at the faster of two rates: the one fitted on the last "
        "quarter of its measured gap trace, and the exact asymptotic rate (squared spectral "
        "radius of the mirror map's Jacobian at the equilibrium, slowest context). Taking the "
        "faster rate errs in the mirror's favour: a run stopped before its gap starts to fall "
        "(as at beta = 0.01) is credited with the asymptotic rate from where it stopped.",
        "",
        "Newton at a glance (time to the target, median; iterations):",
        "",
        "| generator | " + " | ".join(f"beta = {b}" for b in cfg["betas"]) + " |",
        "|---|" + "---:|" * len(cfg["betas"]),
    ]
    for name, by_beta in result["results"].items():
        cells = []
        for rows in by_beta.values():
            newton = next(r for r in rows if r["method"] == "newton")
            cells.append(f"{newton['seconds']:.3f} s ({newton['iterations']} its)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, by_beta in result["results"].items():
        lines += [
            "",
            f"## Generator `{name}`",
            "",
            result["generators"][name] + ".",
            "",
            "| beta | method | iterations | seconds | final gap | note |",
            "|---:|---|---:|---:|---:|---|",
        ]
        for beta, rows in by_beta.items():
            for r in rows:
                lines.append(
                    f"| {beta} | {r['method']} | {r['iterations']} | {r['seconds']:.3f} | "
                    f"{r['final_gap']:.2e} | {_note(r)} |"
                )
        lines += ["", "Speed-up of Newton over mirror (time to the target, same run):", ""]
        lines += [f"- beta = {b}: **{x:.3g}x**" for b, x in result["speedup"][name].items()]
    lines += [
        "",
        "The baseline dynamics do not solve the WIND game (iterated Bo2 and SPPO are "
        "unregularized, regularized BoN and Nash-MD have other fixed points); their gap is "
        "measured at the same beta for reference.",
        "",
    ]
    return "\n".join(lines)


def _note(r: dict) -> str:
    """The table's note for one row."""
    if r["extrapolated"]:
        return (
            f"**extrapolated**: stopped after {r['measured_iterations']} its / "
            f"{r['measured_seconds']:.0f} s at gap {r['final_gap']:.2e}; rate used "
            f"{r['used_rate']:.7f}/it (fitted on the trace {r['fitted_rate']:.7f}, "
            f"asymptotic {r['asymptotic_rate']:.7f})"
        )
    if r["method"] in BASELINES:
        return "fixed budget; " + (
            "reached target" if r["converged"] else f"min gap {r['min_gap']:.2e}"
        )
    return "measured; " + ("converged" if r["converged"] else "**not converged**")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--quick", action="store_true", help="small smoke run (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mirror-budget", type=float, default=300.0, help="seconds")
    args = parser.parse_args()
    kept = keep_freed_memory()
    B, K = (50, 20) if args.quick else (1000, 100)
    budget = 5.0 if args.quick else args.mirror_budget
    probe = min(budget, 5.0 if args.quick else 60.0)
    baseline_iters = 50 if args.quick else 300
    repeats = 1 if args.quick else 5
    betas = (1.0, 0.1, 0.01)
    generators = games(B, K, args.seed)
    result: dict = {
        "command": "python benchmarks/solvers.py" + (" --quick" if args.quick else ""),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, "
        f"numpy {np.__version__}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": {
            "contexts": B,
            "K": K,
            "betas": list(betas),
            "nontransitive": 0.5,
            "seed": args.seed,
            "target_gap": TARGET,
            "mirror_budget": budget,
            "mirror_probe": probe,
            "newton_repeats": repeats,
            "keep_freed_memory": kept,
            "baseline_iterations": baseline_iters,
        },
        "generators": {name: desc for name, (_, _, desc) in generators.items()},
        "results": {},
        "speedup": {},
    }
    for name, (P, ref, _) in generators.items():
        result["results"][name], result["speedup"][name] = {}, {}
        for beta in betas:
            newton = time_newton(P, ref, beta, repeats)
            mirror = time_mirror(P, ref, beta, budget, probe, newton_solve(P, ref, beta).pi)
            rows = [newton, mirror]
            if name == "mixed":
                rows += [run_baseline(n, P, ref, beta, baseline_iters) for n in BASELINES]
            result["results"][name][str(beta)] = rows
            result["speedup"][name][str(beta)] = mirror["seconds"] / newton["seconds"]
            print(
                f"{name} beta={beta}: newton {newton['seconds']:.3f}s ({newton['iterations']} "
                f"its), mirror {mirror['seconds']:.1f}s ({mirror['iterations']} its"
                f"{', extrapolated' if mirror['extrapolated'] else ''})",
                flush=True,
            )
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "solvers.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "solvers.md").write_text(to_markdown(result))
    print(f"wrote {args.out / 'solvers.json'} and {args.out / 'solvers.md'}")


if __name__ == "__main__":
    main()
