"""Exact baseline dynamics on finite response sets (THEORY.md 2 and 4).

Each runs in log space through :func:`windalign.games.solvers.iterate` and returns the same
:class:`~windalign.games.solvers.SolveResult` as the WIND solvers; the trace's gap is the WIND
duality gap at the ``beta`` passed (the dynamics themselves need not use ``beta``).
Derivations: docs/theory.md, sections "Iterated Best-of-N" and "Baseline dynamics".
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from windalign.games.bon import log_best_of_two, log_bon_distribution
from windalign.games.metrics import log_probs
from windalign.games.solvers import SolveResult, iterate


def log_iterated_bon_step(
    log_pi: np.ndarray,
    P: np.ndarray,
    n: float = 2,
    rewards: np.ndarray | None = None,
) -> np.ndarray:
    """One Best-of-N step in log space, ``[..., K]``: reward ``BoN_n`` when ``rewards`` are given,
    else Best-of-2 under the general oracle ``P`` (``n`` must then be 2). THEORY.md 2.

    >>> P = np.array([[0.5, 0.8], [0.2, 0.5]])
    >>> np.exp(log_iterated_bon_step(np.log([0.5, 0.5]), P))
    array([0.65, 0.35])
    """
    if rewards is not None:
        return log_bon_distribution(log_pi, rewards, n)
    if n != 2:
        raise ValueError(
            f"Best-of-{n} under a general oracle is not defined here; pass rewards= for reward "
            "Best-of-N, or use n=2 (Best-of-2 under P)"
        )
    return log_softmax(log_best_of_two(log_pi, P), axis=-1)


def log_regularized_bon_step(
    log_pi: np.ndarray,
    P: np.ndarray,
    log_ref: np.ndarray,
    lam: float,
    n: float = 2,
    rewards: np.ndarray | None = None,
) -> np.ndarray:
    """Regularized iterated BoN: ``pi_{t+1} ∝ BoN_n(pi_t)^(1-lam) ref^lam``, ``[..., K]``.

    ``lam`` in (0, 1]; see :func:`log_iterated_bon_step` for ``n`` and ``rewards``. THEORY.md 2.

    >>> P = np.array([[0.5, 0.8], [0.2, 0.5]])
    >>> np.exp(log_regularized_bon_step(np.log([0.5, 0.5]), P, np.log([0.5, 0.5]), lam=1.0))
    array([0.5, 0.5])
    """
    if not 0.0 < lam <= 1.0:
        raise ValueError(f"lam must be in (0, 1], got {lam}")
    log_bon = log_iterated_bon_step(log_pi, P, n, rewards)
    with np.errstate(invalid="ignore"):
        mixed = (1.0 - lam) * log_bon + lam * np.asarray(log_ref)
    return log_softmax(mixed, axis=-1)


def log_sppo_step(log_pi: np.ndarray, w: np.ndarray, eta: float) -> np.ndarray:
    """SPPO multiplicative weights ``pi_{t+1} ∝ pi_t exp(eta w_t)``, ``w_t = P pi_t``, ``[..., K]``.

    THEORY.md 4. Its last iterate cycles on non-transitive oracles.

    >>> np.exp(log_sppo_step(np.log([0.5, 0.5]), np.array([0.75, 0.25]), eta=np.log(3) * 2))
    array([0.75, 0.25])
    """
    return log_softmax(log_pi + eta * w, axis=-1)


def log_nash_md_step(
    log_pi: np.ndarray, P: np.ndarray, log_ref: np.ndarray, beta: float, eta: float, alpha: float
) -> np.ndarray:
    """Nash-MD: ``pi_{t+1} ∝ pi_t^(1-eta beta) ref^(eta beta) exp(eta P pi_mix)``, ``[..., K]``.

    ``pi_mix ∝ pi_t^(1-alpha) ref^alpha`` is the geometric mixture; needs ``eta beta <= 1``.
    THEORY.md 4.

    >>> P = np.full((2, 2), 0.5)
    >>> np.exp(log_nash_md_step(np.log([0.9, 0.1]), P, np.log([0.5, 0.5]), 1.0, 1.0, 0.1))
    array([0.5, 0.5])
    """
    eb = eta * beta
    if not 0.0 < eb <= 1.0:
        raise ValueError(f"Nash-MD needs 0 < eta * beta <= 1, got eta={eta}, beta={beta}")
    log_ref = np.asarray(log_ref)
    with np.errstate(invalid="ignore"):
        log_mix = log_softmax((1.0 - alpha) * log_pi + alpha * log_ref, axis=-1)
        w_mix = np.einsum("...ij,...j->...i", P, np.exp(log_mix))
        return log_softmax((1.0 - eb) * log_pi + eb * log_ref + eta * w_mix, axis=-1)


def iterated_bon(
    P: np.ndarray,
    ref: np.ndarray,
    beta: float,
    *,
    n: float = 2,
    rewards: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-12,
    progress: bool = False,
) -> SolveResult:
    """Iterated Best-of-N from ``ref``: ``pi_{t+1} = BoN_n(pi_t)`` (reward BoN with ``rewards``,
    Bo2 under ``P`` otherwise). Unregularized: it collapses towards a best response, so its gap
    at ``beta`` does not go to zero. THEORY.md 2.

    >>> P = np.array([[0.5, 0.8], [0.2, 0.5]])
    >>> iterated_bon(P, np.array([0.5, 0.5]), 0.1, max_iter=30).pi.round(3)
    array([1., 0.])
    """
    log_ref = log_probs(ref)

    def step(log_pi: np.ndarray, w: np.ndarray) -> np.ndarray:
        return log_iterated_bon_step(log_pi, P, n, rewards)

    return iterate(
        step,
        P,
        log_ref,
        log_ref,
        beta,
        max_iter=max_iter,
        tol=tol,
        progress=progress,
        desc="iterated-bon",
    )


def matched_lam(n: float, beta: float) -> float:
    """``lam = 2 (n-1) beta / (1 + 2 (n-1) beta)``: the regularization whose fixed point matches
    the WIND equilibrium at ``beta`` to first order near parity (docs/theory.md section 3).

    >>> matched_lam(2, 1.0)
    0.6666666666666666
    """
    c = 2.0 * (n - 1.0) * beta
    return c / (1.0 + c)


def regularized_iterated_bon(
    P: np.ndarray,
    ref: np.ndarray,
    beta: float,
    *,
    lam: float | None = None,
    n: float = 2,
    rewards: np.ndarray | None = None,
    max_iter: int = 1000,
    tol: float = 1e-12,
    progress: bool = False,
) -> SolveResult:
    """Regularized iterated BoN from ``ref`` (:func:`log_regularized_bon_step`).

    ``lam`` defaults to ``2 (n-1) beta / (1 + 2 (n-1) beta)``, the value whose fixed point
    matches the WIND equilibrium at ``beta`` to first order near parity (docs/theory.md,
    "Iterated Best-of-N"). It may cycle on non-transitive oracles for small ``lam``
    (THEORY.md 7.5).

    >>> P = np.array([[0.5, 0.8], [0.2, 0.5]])
    >>> res = regularized_iterated_bon(P, np.array([0.5, 0.5]), 1.0, max_iter=200)
    >>> bool(res.trace.change[-1] < 1e-12)
    True
    """
    lam = matched_lam(n, beta) if lam is None else lam
    log_ref = log_probs(ref)

    def step(log_pi: np.ndarray, w: np.ndarray) -> np.ndarray:
        return log_regularized_bon_step(log_pi, P, log_ref, lam, n, rewards)

    return iterate(
        step,
        P,
        log_ref,
        log_ref,
        beta,
        max_iter=max_iter,
        tol=tol,
        progress=progress,
        desc="regularized-bon",
    )


def sppo_mw(
    P: np.ndarray,
    pi0: np.ndarray,
    eta: float,
    *,
    beta: float = 0.1,
    ref: np.ndarray | None = None,
    max_iter: int = 1000,
    tol: float = 1e-12,
    progress: bool = False,
) -> SolveResult:
    """SPPO multiplicative weights from ``pi0`` (:func:`log_sppo_step`), ``[..., K]``.

    The trace's gap is the WIND gap at ``beta`` against ``ref`` (default ``pi0``).

    >>> from windalign.games.preference import cyclic_oracle
    >>> res = sppo_mw(cyclic_oracle(3), np.array([0.5, 0.3, 0.2]), eta=0.5, max_iter=50)
    >>> res.trace.converged
    False
    """
    log_ref = log_probs(pi0 if ref is None else ref)

    def step(log_pi: np.ndarray, w: np.ndarray) -> np.ndarray:
        return log_sppo_step(log_pi, w, eta)

    return iterate(
        step,
        P,
        log_ref,
        log_probs(pi0),
        beta,
        max_iter=max_iter,
        tol=tol,
        progress=progress,
        desc="sppo",
    )


def nash_md(
    P: np.ndarray,
    ref: np.ndarray,
    beta: float,
    eta: float | None = None,
    alpha: float = 0.1,
    *,
    max_iter: int = 1000,
    tol: float = 1e-12,
    progress: bool = False,
) -> SolveResult:
    """Nash-MD from ``ref`` (:func:`log_nash_md_step`); ``eta`` defaults to ``beta`` (capped so
    that ``eta beta <= 1``). Its fixed point is not the WIND equilibrium unless ``alpha = 0``.

    >>> P = np.array([[0.5, 0.8], [0.2, 0.5]])
    >>> res = nash_md(P, np.array([0.5, 0.5]), beta=1.0, alpha=0.0, max_iter=500)
    >>> res.trace.converged
    True
    """
    eta = min(beta, 1.0 / beta) if eta is None else eta
    log_ref = log_probs(ref)

    def step(log_pi: np.ndarray, w: np.ndarray) -> np.ndarray:
        return log_nash_md_step(log_pi, P, log_ref, beta, eta, alpha)

    return iterate(
        step,
        P,
        log_ref,
        log_ref,
        beta,
        max_iter=max_iter,
        tol=tol,
        progress=progress,
        desc="nash-md",
    )
