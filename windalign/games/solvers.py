"""Exact WIND solvers on finite response sets: the mirror step and damped Newton (THEORY.md 3-4).

The WIND game ``max_pi min_pi' pi^T P pi' - beta KL(pi||ref) + beta KL(pi'||ref)`` has the unique
symmetric equilibrium ``pi* = softmax(log ref + P pi* / beta)`` per context. Everything here works
on log-probabilities in float64 and is batched over leading context dimensions ``...``.
Derivations: docs/theory.md, sections "The WIND game", "Mirror step" and "Newton".
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_softmax

from windalign.games.metrics import gap_from_win_rates, log_probs, response_win_rates
from windalign.games.preference import validate_policy, validate_preference


@dataclass
class Trace:
    """What a solver or dynamics did.

    ``gap[t]`` is the largest duality gap over contexts of iterate ``t`` (``t = 0..iterations``),
    ``converged`` whether that reached ``tol``, ``change[t-1]`` the largest L1 move
    ``|pi_t - pi_{t-1}|_1`` over contexts (empty for solvers that do not record it).
    """

    gap: np.ndarray
    iterations: int
    seconds: float
    converged: bool
    change: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class SolveResult:
    """Final policy ``pi`` ``[..., K]`` (and ``log_pi``, exact where ``pi`` underflows) and its
    :class:`Trace`."""

    pi: np.ndarray
    trace: Trace
    log_pi: np.ndarray | None = None


def log_wind_mirror_step(
    P: np.ndarray,
    log_ref: np.ndarray,
    log_pi: np.ndarray,
    beta: float,
    eta: float,
    w: np.ndarray | None = None,
) -> np.ndarray:
    """One exact WIND proximal step on log-probabilities, ``[..., K]`` -> ``[..., K]``.

    ``pi_{t+1} = argmax_pi eta [pi^T P pi_t - beta KL(pi||ref)] - KL(pi||pi_t)``, i.e.
    ``log pi_{t+1} = (log pi_t + eta beta log ref + eta P pi_t) / (1 + eta beta) - log Z``
    (THEORY.md 4). ``w = P pi_t`` may be passed when already computed. For ``eta <= beta``,
    ``KL(pi* || pi_t)`` contracts by ``1 / (1 + eta beta)`` per step.

    >>> P = np.array([[0.5, 1.0], [0.0, 0.5]])
    >>> np.exp(log_wind_mirror_step(P, np.log([0.5, 0.5]), np.log([0.5, 0.5]), 1.0, 1.0))
    array([0.5621765, 0.4378235])
    """
    log_pi = np.asarray(log_pi, dtype=np.float64)
    if w is None:
        w = response_win_rates(P, np.exp(log_pi))
    eb = eta * beta
    return log_softmax((log_pi + eb * np.asarray(log_ref) + eta * w) / (1.0 + eb), axis=-1)


def wind_mirror_step(
    P: np.ndarray, ref: np.ndarray, pi: np.ndarray, beta: float, eta: float
) -> np.ndarray:
    """One exact WIND proximal step on probabilities ``[..., K]``; see :func:`log_wind_mirror_step`.

    >>> P = np.array([[0.5, 1.0], [0.0, 0.5]])
    >>> wind_mirror_step(P, np.array([0.5, 0.5]), np.array([0.5, 0.5]), beta=1.0, eta=1.0)
    array([0.5621765, 0.4378235])
    """
    return np.exp(log_wind_mirror_step(P, log_probs(ref), log_probs(pi), beta, eta))


def wind_equilibrium_residual(
    P: np.ndarray, ref: np.ndarray, pi: np.ndarray, beta: float
) -> np.ndarray:
    """Fixed-point residual ``max_y |pi(y) - softmax(log ref + P pi / beta)(y)|``, ``[...]``.

    Zero exactly at the WIND equilibrium (THEORY.md 3).

    >>> P = np.array([[0.5, 1.0], [0.0, 0.5]])
    >>> float(wind_equilibrium_residual(P, np.array([0.5, 0.5]), np.array([0.5, 0.5]), 1.0))
    0.12245933
    """
    pi = np.asarray(pi, dtype=np.float64)
    target = np.exp(log_softmax(log_probs(ref) + response_win_rates(P, pi) / beta, axis=-1))
    return np.max(np.abs(pi - target), axis=-1)


Step = Callable[[np.ndarray, np.ndarray], np.ndarray]


def iterate(
    step: Step,
    P: np.ndarray,
    log_ref: np.ndarray,
    log_pi0: np.ndarray,
    beta: float,
    *,
    max_iter: int,
    tol: float,
    progress: bool = False,
    desc: str = "",
    max_seconds: float | None = None,
) -> SolveResult:
    """Run ``log_pi <- step(log_pi, P pi)`` until the max duality gap at ``beta`` is ``<= tol``.

    The shared loop of the mirror solver and every baseline dynamics (THEORY.md 4): ``w = P pi``
    is computed once per iteration and used for both the gap and the step; it also stops after
    ``max_iter`` steps or ``max_seconds`` of wall time. Returns the last iterate and a
    :class:`Trace` with the gap of every iterate and the L1 move of every step.

    >>> P = np.array([[0.5, 1.0], [0.0, 0.5]])
    >>> res = iterate(lambda lp, w: lp, P, np.log([0.5, 0.5]), np.log([0.5, 0.5]), 1.0,
    ...               max_iter=3, tol=0.0)
    >>> res.trace.iterations, res.trace.converged, res.trace.change
    (3, False, array([0., 0., 0.]))
    """
    from tqdm.auto import tqdm

    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    start = time.perf_counter()
    log_pi = np.asarray(log_pi0, dtype=np.float64)
    pi = np.exp(log_pi)
    gaps: list[float] = []
    moves: list[float] = []
    bar = tqdm(total=max_iter, desc=desc, disable=not progress, leave=False, delay=1.0)
    for t in range(max_iter + 1):
        w = response_win_rates(P, pi)
        gaps.append(float(np.max(gap_from_win_rates(w, log_ref, log_pi, beta))))
        out_of_time = max_seconds is not None and time.perf_counter() - start > max_seconds
        if gaps[-1] <= tol or t == max_iter or out_of_time:
            break
        log_pi = step(log_pi, w)
        new = np.exp(log_pi)
        moves.append(float(np.max(np.sum(np.abs(new - pi), axis=-1))))
        pi = new
        bar.update()
        if t % 100 == 0:
            bar.set_postfix(gap=f"{gaps[-1]:.2e}", refresh=False)
    bar.close()
    trace = Trace(
        gap=np.array(gaps),
        iterations=len(moves),
        seconds=time.perf_counter() - start,
        converged=gaps[-1] <= tol,
        change=np.array(moves),
    )
    return SolveResult(pi=pi, trace=trace, log_pi=log_pi)


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """Limit BLAS/LAPACK to one thread while Newton runs (a no-op without ``threadpoolctl``).

    Batched K x K solves gain nothing from threads inside each LU, and when the cores are
    oversubscribed OpenBLAS's spinning threads made the same 1000 x 100 x 100 solve 5-100x slower
    on a busy 2-core machine (measured while writing the solver benchmark).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _newton_direction(
    P: np.ndarray, log_ref: np.ndarray, z: np.ndarray, beta: np.ndarray, support: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Residual ``G = z - log ref - P softmax(z) / beta`` and the Newton step ``d``, ``[n, K]``.

    ``beta`` ``[n]`` (one per context). Solves ``(beta I - P diag(pi) + (P pi) pi^T) d = -beta G``
    (the Jacobian ``I - P J / beta`` with ``J = diag(pi) - pi pi^T``, times ``beta``); rows off
    the support of ``ref`` are pinned to ``d = 0``.
    """
    G = _residual(P, log_ref, z, beta, support)
    pi = np.exp(log_softmax(z, axis=-1))
    K = z.shape[-1]
    M = np.subtract(response_win_rates(P, pi)[..., :, None], P)
    M *= pi[..., None, :]
    M[..., np.arange(K), np.arange(K)] += beta[:, None]
    rows = np.nonzero(~support)
    M[rows] = 0.0
    M[(*rows, rows[-1])] = beta[rows[0]]
    d = np.linalg.solve(M, -(beta[:, None] * G)[..., None])[..., 0]
    return G, d


def _residual(
    P: np.ndarray, log_ref: np.ndarray, z: np.ndarray, beta: np.ndarray, support: np.ndarray
) -> np.ndarray:
    w = response_win_rates(P, np.exp(log_softmax(z, axis=-1)))
    with np.errstate(invalid="ignore"):
        return np.where(support, z - log_ref - w / beta[:, None], 0.0)


def _damped_step(
    P: np.ndarray, log_ref: np.ndarray, z: np.ndarray, beta: np.ndarray, support: np.ndarray
) -> np.ndarray:
    """One Newton step with Armijo backtracking on ``|G|^2`` per context; returns new logits."""
    G, d = _newton_direction(P, log_ref, z, beta, support)
    merit = np.sum(G**2, axis=-1)
    alpha = np.ones(len(z))
    for _ in range(30):
        trial = z + alpha[:, None] * d
        bad = (
            np.sum(_residual(P, log_ref, trial, beta, support) ** 2, axis=-1)
            > (1.0 - 1e-4 * alpha) * merit
        )
        if not bad.any():
            break
        alpha = np.where(bad, alpha / 2.0, alpha)
    return z + alpha[:, None] * d


def newton_solve(
    P: np.ndarray,
    ref: np.ndarray,
    beta: float,
    *,
    tol: float = 1e-12,
    max_iter: int = 500,
    continuation: float = 10.0,
    stage_tol: float = 1e-4,
    stage_steps: int = 8,
    progress: bool = False,
) -> SolveResult:
    """Damped Newton on the equilibrium fixed point with per-context continuation in ``beta``.

    Solves ``G(z) = z - log ref - P softmax(z) / beta = 0`` for the logits ``z`` ``[..., K]``
    (``pi* = softmax(z)``) by Newton steps ``(I - P J(pi) / beta) d = -G`` with
    ``J = diag(pi) - pi pi^T`` (THEORY.md 4), one batched ``np.linalg.solve`` per step over the
    contexts still running, each step damped by Armijo backtracking on ``|G|^2``.

    Continuation (path following): every context starts at ``b = max(beta, 1)`` and, once its
    gap at ``b`` is ``<= stage_tol``, moves to ``b / continuation`` (never below ``beta``) from the
    fixed-point image ``log ref + P pi / b``. A context whose stage takes more than
    ``stage_steps`` steps returns to its last solved stage (for the first stage: ``ref``, taken
    as solved at ``continuation * b``) and continues with the square root of its factor, so
    stages shrink until Newton converges in each. LAPACK runs on one thread meanwhile (via
    ``threadpoolctl`` when installed). A context stops once its gap at ``beta`` is ``<= tol``,
    after one more Newton step (quadratic convergence squares its error). ``max_iter`` counts
    batched Newton steps.

    >>> P = np.array([[0.5, 0.9, 0.2], [0.1, 0.5, 0.7], [0.8, 0.3, 0.5]])
    >>> res = newton_solve(P, np.full(3, 1 / 3), beta=0.01)
    >>> res.trace.converged, bool(res.trace.gap[-1] <= 1e-12)
    (True, True)
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    P = np.asarray(P, dtype=np.float64)
    shape = np.broadcast_shapes(P.shape[:-1], np.shape(ref))
    K = shape[-1]
    Pf = np.broadcast_to(P, (*shape, K)).reshape(-1, K, K)
    log_ref = np.broadcast_to(log_probs(ref), shape).reshape(-1, K)
    support = np.isfinite(log_ref)
    n = len(log_ref)
    b = np.full(n, max(beta, 1.0))
    factor = np.full(n, float(continuation))
    z = log_ref + response_win_rates(Pf, np.exp(log_ref)) / b[:, None]
    anchor_pi, anchor_b = np.exp(log_ref), b * continuation  # ref: the limit beta -> inf
    count = np.zeros(n, dtype=int)
    active = np.ones(n, dtype=bool)
    polished = np.zeros(n, dtype=bool)
    gaps: list[float] = []
    steps = 0
    bar = tqdm(total=max_iter, desc="newton", disable=not progress, leave=False, delay=1.0)
    with _one_blas_thread():
        while True:
            log_pi = log_softmax(z, axis=-1)
            pi = np.exp(log_pi)
            w = response_win_rates(Pf, pi)
            gap = gap_from_win_rates(w, log_ref, log_pi, beta)
            gaps.append(float(np.max(gap)))
            final = b <= beta
            reached = np.where(
                final, gap <= tol, gap_from_win_rates(w, log_ref, log_pi, b) <= stage_tol
            )
            active &= ~(final & reached & polished)
            polished |= final & reached
            if not active.any() or steps >= max_iter:
                break
            # path following: advance solved stages, retreat from stages that take too long
            advance = active & reached & ~final
            # a final-stage context already within stage_tol is converging: never reset it
            settled = final & (gap <= stage_tol)
            retreat = active & ~reached & ~settled & (count >= stage_steps)
            factor[retreat] = np.sqrt(factor[retreat])
            anchor_pi[advance], anchor_b[advance] = pi[advance], b[advance]
            move = advance | retreat
            b[move] = np.maximum(beta, anchor_b[move] / factor[move])
            z[move] = log_ref[move] + response_win_rates(Pf[move], anchor_pi[move]) / b[move, None]
            count[move] = 0
            if active.all():  # no gather copies while every context is running
                z = _damped_step(Pf, log_ref, z, b, support)
            else:
                idx = np.flatnonzero(active)
                z[idx] = _damped_step(Pf[idx], log_ref[idx], z[idx], b[idx], support[idx])
            count[active] += 1
            steps += 1
            bar.update()
            bar.set_postfix(running=int(active.sum()), gap=f"{gaps[-1]:.2e}", refresh=False)
    bar.close()
    log_pi = log_softmax(z, axis=-1).reshape(shape)
    trace = Trace(
        gap=np.array(gaps),
        iterations=steps,
        seconds=time.perf_counter() - start,
        converged=gaps[-1] <= tol,
    )
    return SolveResult(pi=np.exp(log_pi), trace=trace, log_pi=log_pi)


def mirror_solve(
    P: np.ndarray,
    ref: np.ndarray,
    beta: float,
    *,
    eta: float | None = None,
    tol: float = 1e-12,
    max_iter: int = 100_000,
    pi0: np.ndarray | None = None,
    progress: bool = False,
    max_seconds: float | None = None,
) -> SolveResult:
    """Exact WIND: iterate :func:`log_wind_mirror_step` from ``pi0`` (default ``ref``).

    ``eta`` defaults to ``beta`` (the safe step: ``eta <= beta`` gives linear convergence at rate
    ``1 / (1 + eta beta)``, THEORY.md 4). Stops when the max gap is ``<= tol``, after
    ``max_iter`` steps, or after ``max_seconds``.

    >>> P = np.array([[0.5, 0.9], [0.1, 0.5]])
    >>> mirror_solve(P, np.array([0.5, 0.5]), beta=1.0).trace.converged
    True
    """
    eta = beta if eta is None else eta
    if eta <= 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    log_ref = log_probs(ref)
    log_pi0 = log_ref if pi0 is None else log_probs(pi0)

    def step(log_pi: np.ndarray, w: np.ndarray) -> np.ndarray:
        return log_wind_mirror_step(P, log_ref, log_pi, beta, eta, w=w)

    return iterate(
        step,
        P,
        log_ref,
        log_pi0,
        beta,
        max_iter=max_iter,
        tol=tol,
        progress=progress,
        desc="mirror",
        max_seconds=max_seconds,
    )


def solve_equilibrium(
    P: np.ndarray,
    ref: np.ndarray,
    beta: float,
    method: str = "newton",
    tol: float = 1e-12,
    max_iter: int | None = None,
    eta: float | None = None,
    progress: bool = False,
) -> SolveResult:
    """The WIND equilibrium ``pi* = softmax(log ref + P pi* / beta)`` per context, ``[..., K]``.

    ``P`` ``[..., K, K]`` (or one ``[K, K]`` shared by all contexts), ``ref`` ``[..., K]``,
    ``beta > 0``. ``method="newton"`` (:func:`newton_solve`, default) or ``"mirror"``
    (:func:`mirror_solve`, step ``eta``, default ``beta``). Inputs are validated.
    THEORY.md 3-4.

    >>> P = np.array([[0.5, 0.9], [0.1, 0.5]])
    >>> res = solve_equilibrium(P, np.array([0.5, 0.5]), beta=1.0)
    >>> res.pi.round(6), res.trace.converged
    (array([0.598688, 0.401312]), True)
    """
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a finite number > 0, got {beta}")
    validate_preference(P, name="P")
    validate_policy(ref, name="ref")
    if method not in ("newton", "mirror"):
        raise ValueError(f"unknown method {method!r}; choose one of: newton, mirror")
    kwargs: dict = {"tol": tol, "progress": progress}
    if max_iter is not None:
        kwargs["max_iter"] = max_iter
    if method == "mirror":
        kwargs["eta"] = eta
    elif eta is not None:
        raise ValueError("eta is the mirror step size; it does not apply to method='newton'")
    return (newton_solve if method == "newton" else mirror_solve)(P, ref, beta, **kwargs)
