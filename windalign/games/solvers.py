"""Exact WIND solvers on finite response sets: the mirror step and damped Newton (THEORY.md 3-4).

The WIND game ``max_pi min_pi' pi^T P pi' - beta KL(pi||ref) + beta KL(pi'||ref)`` has the unique
symmetric equilibrium ``pi* = softmax(log ref + P pi* / beta)`` per context. Everything here works
on log-probabilities in float64 and is batched over leading context dimensions ``...``.
Derivations: docs/theory.md, sections "The WIND game", "Mirror step" and "Newton".
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.special import log_softmax

from windalign.games.metrics import gap_from_win_rates, log_probs, response_win_rates
from windalign.games.preference import game_shape, validate_policy, validate_preference

#: The ``beta`` range the exact solvers support (measured, docs/theory.md section 7). Newton
#: reaches gap ``1e-12`` across it on every game tried, in <= 200 steps at ``1e-4``; below it
#: some games need more than 500 steps (at ``3e-5``) and the equilibrium is anyway a best
#: response to within ``beta log(1 / min ref)``. Above ``BETA_MAX`` the duality gap cannot be
#: evaluated to ``1e-12`` in float64: its rounding floor grows like ``beta * 1e-15`` (``1e-13`` at
#: 100, ``1e-12`` at 1000, where Newton can no longer show convergence), and ``pi*`` is within
#: ``1 / beta`` of ``ref`` there.
BETA_MIN, BETA_MAX = 1e-4, 100.0


def _number(value: object, name: str) -> float:
    """``value`` as a float if it is a real number (not a bool, str or None), else a
    ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    return float(value)


def check_beta(beta: object, name: str = "beta") -> float:
    """``beta`` as a float, or a ``ValueError`` naming ``name`` unless it is a finite number in
    ``[BETA_MIN, BETA_MAX]`` (the range the exact solvers support).

    >>> check_beta(0.1)
    0.1
    >>> check_beta(1e-6)
    Traceback (most recent call last):
    ...
    ValueError: beta = 1e-06 is outside [0.0001, 100], the range the exact solvers support;
    give a beta in that range
    """
    value = _number(beta, name)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {beta!r}")
    if not BETA_MIN <= value <= BETA_MAX:
        raise ValueError(
            f"{name} = {value:g} is outside [{BETA_MIN:g}, {BETA_MAX:g}], the range the exact "
            "solvers support; give a beta in that range"
        )
    return value


def check_solver_args(beta: object, tol: object, max_iter: object) -> tuple[float, float, int]:
    """``(beta, tol, max_iter)`` checked (:func:`check_beta`; ``tol`` a finite number ``>= 0``;
    ``max_iter`` an integer ``>= 0``), as ``(float, float, int)``.

    >>> check_solver_args(0.1, float("nan"), 10)
    Traceback (most recent call last):
    ...
    ValueError: tol must be a finite number >= 0, got nan
    """
    tol_f = _number(tol, "tol")
    if not (math.isfinite(tol_f) and tol_f >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter must be an integer >= 0, got {max_iter!r}")
    return check_beta(beta), tol_f, int(max_iter)


def as_float64_game(P: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P, ref)`` in float64, shapes checked (:func:`~windalign.games.preference.game_shape`).

    A ``P`` stored in lower precision (float32, float16, integers) satisfies ``P + P^T = 1`` only
    to its own rounding, which floors the duality gap there (float32: ``~1e-8``): it is converted
    and projected onto exact oracles, ``(P + 1 - P^T) / 2``. ``ref`` is renormalized in float64.

    >>> P, ref = as_float64_game(np.array([[0.5, 0.7], [0.3, 0.5]], np.float32), [0.25, 0.75])
    >>> P.dtype, float(P[0, 1] + P[1, 0]), ref.dtype
    (dtype('float64'), 1.0, dtype('float64'))
    """
    game_shape(P, ref)
    ref = np.maximum(np.asarray(ref, dtype=np.float64), 0.0)
    return _float64_oracle(P), ref / ref.sum(-1, keepdims=True)


def _float64_oracle(P: np.ndarray) -> np.ndarray:
    """``P`` in float64; from a lower precision, projected onto ``P + P^T = 1`` exactly."""
    P_in = np.asarray(P)
    P = P_in.astype(np.float64, copy=False)
    if P_in.dtype != np.float64:
        P = np.clip(0.5 * (P + 1.0 - np.swapaxes(P, -1, -2)), 0.0, 1.0)
    return P


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

    start = time.perf_counter()
    beta, tol, max_iter = check_solver_args(beta, tol, max_iter)
    if max_seconds is not None and not _number(max_seconds, "max_seconds") > 0:
        raise ValueError(f"max_seconds must be a number > 0, got {max_seconds!r}")
    P = _float64_oracle(P)
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


#: an action with ``pi(y) <= _DROP * b`` is left out of the LU of a Newton step: its column of
#: the Newton matrix is ``b e_y`` to relative accuracy ``_DROP``, so its row is solved afterwards
#: by substitution (exact block-triangular elimination up to that perturbation)
_DROP = 1e-10


def _win(P: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """``P pi`` for ``P [n, K, K]``, ``pi [n, K]`` (batched BLAS; faster than ``einsum``)."""
    return np.matmul(P, pi[..., None])[..., 0]


def _win_rows(P: np.ndarray, rows: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """``P[rows] pi`` for ``pi [len(rows), K]``, without copying ``P[rows]`` when ``rows`` cover
    more than a third of ``P`` (a gather costs two passes over the rows, a product one)."""
    if len(rows) == len(P):
        return _win(P, pi)
    if 3 * len(rows) < len(P):
        return _win(P[rows], pi)
    full = np.zeros(P.shape[:-1])
    full[rows] = pi
    return _win(P, full)[rows]


def _groups(counts: np.ndarray, min_size: int = 64, max_groups: int = 4) -> list[np.ndarray]:
    """Positions of ``counts`` in up to ``max_groups`` groups of similar count (sorted; >=
    ``min_size`` per group), so each group's LU is only as large as its own largest support."""
    order = np.argsort(counts, kind="stable")
    return np.array_split(order, max(1, min(max_groups, len(order) // min_size)))


def _newton_system(
    P: np.ndarray,
    rows: np.ndarray,
    pi: np.ndarray,
    w: np.ndarray,
    rhs: np.ndarray,
    b: np.ndarray,
    support: np.ndarray,
) -> np.ndarray:
    """Solve ``M X = rhs`` for ``X [n, K, r]`` with ``M = b I - P diag(pi) + (P pi) pi^T``.

    The contexts are ``P[rows]`` (``P`` is not copied where it can be avoided); ``pi``, ``w``,
    ``rhs``, ``b`` and ``support`` are given for those rows. ``M`` is ``b`` times the Jacobian
    ``I - P J / b`` of the residual (``J = diag(pi) - pi pi^T``). Its column ``y`` is
    ``b e_y + (w - P[:, y]) pi(y)``: where ``pi(y) <= _DROP * b`` the second term is dropped,
    which makes ``M`` block lower-triangular: an LU on the ``m`` kept actions (contexts grouped
    by ``m``, :func:`_groups`), then the other rows by substitution,
    ``X_y = (rhs_y - w_y sum(u) + (P u)_y) / b`` with ``u = pi X`` on the kept actions. At small
    ``b`` the equilibrium puts mass on few actions, so ``m << K``. Rows off the support of
    ``ref`` are pinned to ``X = 0``.
    """
    K = pi.shape[-1]
    counts = np.count_nonzero(pi > _DROP * b[:, None], axis=-1)
    groups = _groups(counts)
    if 2 * int(counts[groups[0]].max()) > K:  # every group dense: one full solve
        groups = [np.arange(len(rows))]
    out = np.empty_like(rhs)
    for idx in groups:
        bi, sup, rhs_i, pi_i, w_i = b[idx], support[idx], rhs[idx], pi[idx], w[idx]
        m = max(int(counts[idx].max()), 1)
        if 2 * m > K:  # dense enough: the full system
            whole = len(idx) == len(P) and np.array_equal(rows[idx], np.arange(len(P)))
            M = np.subtract(w_i[:, :, None], P) if whole else P[rows[idx]]
            if not whole:
                np.subtract(w_i[:, :, None], M, out=M)
            M *= pi_i[:, None, :]
            M[:, np.arange(K), np.arange(K)] += bi[:, None]
            pinned = np.nonzero(~sup)
            M[pinned] = 0.0
            M[(*pinned, pinned[-1])] = bi[pinned[0]]
            out[idx] = np.linalg.solve(M, rhs_i)
            continue
        S = np.argpartition(-pi_i, m - 1, axis=-1)[:, :m]  # the m largest pi per context
        PS = P[rows[idx][:, None, None], np.arange(K)[None, :, None], S[:, None, :]]  # P[:, :, S]
        pS = np.take_along_axis(pi_i, S, -1)
        M = np.take_along_axis(PS, S[:, :, None], 1)
        np.subtract(np.take_along_axis(w_i, S, -1)[:, :, None], M, out=M)
        M *= pS[:, None, :]
        M[:, np.arange(m), np.arange(m)] += bi[:, None]
        pinned = np.nonzero(~np.take_along_axis(sup, S, -1))
        M[pinned] = 0.0
        M[(*pinned, pinned[-1])] = bi[pinned[0]]
        r = np.arange(len(idx))[:, None]
        XS = np.linalg.solve(M, rhs_i[r, S])
        u = pS[..., None] * XS
        X = rhs_i - w_i[:, :, None] * u.sum(1)[:, None, :] + np.matmul(PS, u)
        X /= bi[:, None, None]
        X[~sup] = 0.0
        X[r, S] = XS
        out[idx] = X
    return out


def _residual(
    z: np.ndarray, log_ref: np.ndarray, w: np.ndarray, t: np.ndarray, support: np.ndarray
) -> np.ndarray:
    """``G = z - log ref - t P pi`` (``t = 1 / b``), 0 off the support of ``ref``."""
    with np.errstate(invalid="ignore"):
        return np.where(support, z - log_ref - t[:, None] * w, 0.0)


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
    ``J = diag(pi) - pi pi^T`` (THEORY.md 4), batched over the contexts still running, each
    damped by Armijo backtracking on ``|G|^2``. Actions with ``pi(y) <= 1e-10 b`` are left out of
    the LU and solved by substitution (:func:`_newton_system`), so a step at small ``beta``, where
    the equilibrium is concentrated, costs far less than a dense ``K x K`` solve.

    Continuation (path following in ``t = 1 / b``): every context starts at ``b = max(beta, 1)``
    and, once its gap at ``b`` is ``<= stage_tol``, moves to ``b / continuation`` (never below
    ``beta``) from the Euler predictor ``z + (t_new - t) dz/dt``, where the path's tangent
    ``dz/dt`` solves ``(I - P J / b) dz/dt = P pi`` with the same matrix as the Newton step (a
    second right-hand side, no extra factorization). A context whose stage takes more than
    ``stage_steps`` steps returns to its last solved stage and continues with the square root of
    its factor, so stages shrink until Newton converges in each. LAPACK runs on one thread
    meanwhile (via ``threadpoolctl`` when installed). A context stops once its gap at ``beta`` is
    ``<= tol``, after one more Newton step (quadratic convergence squares its error).
    ``max_iter`` counts batched Newton steps. Computes in float64 whatever the input dtype.

    >>> P = np.array([[0.5, 0.9, 0.2], [0.1, 0.5, 0.7], [0.8, 0.3, 0.5]])
    >>> res = newton_solve(P, np.full(3, 1 / 3), beta=0.01)
    >>> res.trace.converged, bool(res.trace.gap[-1] <= 1e-12)
    (True, True)
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    beta, tol, max_iter = check_solver_args(beta, tol, max_iter)
    if not (isinstance(continuation, int | float) and 1.0 < continuation < math.inf):
        raise ValueError(f"continuation must be a finite number > 1, got {continuation!r}")
    P, ref = as_float64_game(P, ref)
    shape = np.broadcast_shapes(P.shape[:-1], ref.shape)
    K = shape[-1]
    Pf = np.broadcast_to(P, (*shape, K)).reshape(-1, K, K)
    log_ref = np.broadcast_to(log_probs(ref), shape).reshape(-1, K)
    support = np.isfinite(log_ref)
    n = len(log_ref)
    t_final = 1.0 / beta
    v0 = _win(Pf, np.exp(log_ref))  # the path's tangent at t = 0 (pi = ref)
    t = np.full(n, min(1.0, t_final))  # the current stage, t = 1 / b
    factor = np.full(n, float(continuation))
    # the last solved stage: ref's first-order image at t / continuation
    anchor_t = t / continuation
    anchor_z = log_ref + anchor_t[:, None] * v0
    anchor_v = v0.copy()
    z = log_ref + t[:, None] * v0
    tangent = v0.copy()
    log_pi = log_softmax(z, axis=-1)
    pi = np.exp(log_pi)
    w = _win(Pf, pi)
    gap = np.zeros(n)
    count = np.zeros(n, dtype=int)
    polished = np.zeros(n, dtype=bool)
    done = np.zeros(n, dtype=bool)
    # the contexts still computed on and their oracles: compacted (copied) once fewer than half
    # of them are running, so that late steps touch only the running ones
    work, Pw = np.arange(n), Pf
    gaps: list[float] = []
    steps = 0
    bar = tqdm(total=max_iter, desc="newton", disable=not progress, leave=False, delay=1.0)
    with _one_blas_thread():
        while True:
            run = np.flatnonzero(~done[work])  # positions in the work set
            a = work[run]
            gap[a] = gap_from_win_rates(w[a], log_ref[a], log_pi[a], beta)
            gaps.append(float(np.max(gap)))
            final = t[a] >= t_final
            stage = gap_from_win_rates(w[a], log_ref[a], log_pi[a], 1.0 / t[a])
            reached = np.where(final, gap[a] <= tol, stage <= stage_tol)
            finished = final & reached & polished[a]
            polished[a] |= final & reached
            done[a[finished]] = True
            if finished.all() or steps >= max_iter:
                break
            keep = ~finished
            run, a, final, reached = run[keep], a[keep], final[keep], reached[keep]
            if 2 * len(a) < len(work):  # compact
                work, Pw, run = a, Pw[run], np.arange(len(a))
            # path following: advance solved stages, retreat from stages that take too long
            advance = reached & ~final
            # a final-stage context already within stage_tol is converging: never reset it
            settled = final & (gap[a] <= stage_tol)
            retreat = ~reached & ~settled & (count[a] >= stage_steps)
            move = advance | retreat
            if move.any():
                adv, ret, mv = a[advance], a[retreat], a[move]
                factor[ret] = np.sqrt(factor[ret])
                anchor_z[adv], anchor_t[adv], anchor_v[adv] = z[adv], t[adv], tangent[adv]
                t_new = np.minimum(t_final, anchor_t[mv] * factor[mv])
                z[mv] = anchor_z[mv] + (t_new - anchor_t[mv])[:, None] * anchor_v[mv]
                t[mv] = t_new
                count[mv] = 0
                log_pi[mv] = log_softmax(z[mv], axis=-1)
                pi[mv] = np.exp(log_pi[mv])
                w[mv] = _win_rows(Pw, run[move], pi[mv])
            z_a, w_a, t_a, sup_a, lr_a = z[a], w[a], t[a], support[a], log_ref[a]
            G = _residual(z_a, lr_a, w_a, t_a, sup_a)
            b_a = 1.0 / t_a
            rhs = np.stack([-b_a[:, None] * G, np.where(sup_a, b_a[:, None] * w_a, 0.0)], -1)
            X = _newton_system(Pw, run, pi[a], w_a, rhs, b_a, sup_a)
            d, tangent[a] = X[..., 0], X[..., 1]
            # Armijo backtracking on |G|^2, re-evaluating only the contexts that fail
            merit = np.sum(G**2, axis=-1)
            alpha = np.ones(len(a))
            zt = z_a + d
            lpt = log_softmax(zt, axis=-1)
            pt = np.exp(lpt)
            wt = _win_rows(Pw, run, pt)
            Gt = _residual(zt, lr_a, wt, t_a, sup_a)
            bad = np.sum(Gt**2, -1) > (1.0 - 1e-4) * merit
            for _ in range(30):
                if not bad.any():
                    break
                i = np.flatnonzero(bad)
                alpha[i] /= 2.0
                zt[i] = z_a[i] + alpha[i, None] * d[i]
                lpt[i] = log_softmax(zt[i], axis=-1)
                pt[i] = np.exp(lpt[i])
                wt[i] = _win_rows(Pw, run[i], pt[i])
                Gi = _residual(zt[i], lr_a[i], wt[i], t_a[i], sup_a[i])
                bad[i] = np.sum(Gi**2, -1) > (1.0 - 1e-4 * alpha[i]) * merit[i]
            z[a], log_pi[a], pi[a], w[a] = zt, lpt, pt, wt
            count[a] += 1
            steps += 1
            bar.update()
            bar.set_postfix(running=len(a), gap=f"{gaps[-1]:.2e}", refresh=False)
    bar.close()
    log_pi = log_pi.reshape(shape)
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
    beta, tol, max_iter = check_solver_args(beta, tol, max_iter)
    eta = beta if eta is None else _number(eta, "eta")
    if not (math.isfinite(eta) and eta > 0):
        raise ValueError(f"eta must be a finite number > 0, got {eta!r}")
    P, ref = as_float64_game(P, ref)
    log_ref = log_probs(ref)
    if pi0 is None:
        log_pi0 = log_ref
    else:
        game_shape(P, pi0)
        log_pi0 = log_probs(validate_policy(pi0, name="pi0"))

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
    ``beta`` in ``[BETA_MIN, BETA_MAX]`` (:func:`check_beta`). ``method="newton"``
    (:func:`newton_solve`, default) or ``"mirror"`` (:func:`mirror_solve`, step ``eta``, default
    ``beta``). Inputs are validated (shapes, a preference oracle, a reference on the simplex,
    ``tol``, ``max_iter``) and computed in float64. The result may be unconverged (``max_iter``
    reached): check ``res.trace.converged``. THEORY.md 3-4.

    >>> P = np.array([[0.5, 0.9], [0.1, 0.5]])
    >>> res = solve_equilibrium(P, np.array([0.5, 0.5]), beta=1.0)
    >>> res.pi.round(6), res.trace.converged
    (array([0.598688, 0.401312]), True)
    """
    check_solver_args(beta, tol, 0 if max_iter is None else max_iter)
    game_shape(P, ref)
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
