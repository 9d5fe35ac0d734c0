"""Win rates, KL divergences, the WIND duality gap and exploitability (THEORY.md 1 and 3).

All functions are batched over leading context dimensions ``...``; ``P`` is ``[..., K, K]``,
policies are ``[..., K]``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from windalign.games.preference import validate_policy


def log_probs(p: np.ndarray) -> np.ndarray:
    """``log p`` as float64 with ``log 0 = -inf`` and no warning, ``[...]`` -> ``[...]``.

    >>> log_probs(np.array([1.0, 0.0]))
    array([  0., -inf])
    """
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(p, dtype=np.float64))


def response_win_rates(P: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Win rate of every response against ``pi``: ``w_pi = P pi``, ``[..., K]`` (THEORY.md 1).

    >>> response_win_rates(np.array([[0.5, 1.0], [0.0, 0.5]]), np.array([0.5, 0.5]))
    array([0.75, 0.25])
    """
    return np.einsum("...ij,...j->...i", P, np.asarray(pi, dtype=np.float64))


def win_rate(P: np.ndarray, pi: np.ndarray, pi2: np.ndarray) -> np.ndarray:
    """Win rate of ``pi`` against ``pi2``: ``pi^T P pi2``, shape ``[...]`` (THEORY.md 1).

    ``win_rate(P, pi, pi) = 1/2`` for every oracle. Both policies must lie on the simplex
    (``ValueError`` otherwise, see :func:`~windalign.games.preference.validate_policy`).

    >>> P = np.array([[0.5, 0.9], [0.1, 0.5]])
    >>> float(win_rate(P, np.array([1.0, 0.0]), np.array([0.5, 0.5])))
    0.7
    >>> win_rate(P, np.array([1.0, 1.0]), np.array([0.5, 0.5]))
    Traceback (most recent call last):
    ...
    ValueError: pi[] sums to 2, not 1 (off by 1 > atol=1e-08); normalize it, e.g. pi /
    pi.sum(-1, keepdims=True)
    """
    pi = validate_policy(pi, name="pi")
    pi2 = validate_policy(pi2, name="pi2")
    return np.sum(pi * response_win_rates(P, pi2), axis=-1)


def kl_logits(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """``KL(p || q) = sum p (log p - log q)`` from log-probabilities ``[..., K]`` -> ``[...]``.

    Terms with ``p = 0`` (``log p = -inf``) count 0; ``q = 0`` where ``p > 0`` gives ``inf``.

    >>> float(kl_logits(np.log([0.5, 0.5]), np.log([0.25, 0.75])))
    0.1438410362258904
    """
    log_p = np.asarray(log_p, dtype=np.float64)
    log_q = np.asarray(log_q, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        terms = np.exp(log_p) * (log_p - log_q)
    return np.sum(np.where(np.isneginf(log_p), 0.0, terms), axis=-1)


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``KL(p || q)`` for probability vectors ``[..., K]`` -> ``[...]``, with ``0 log 0 = 0``.

    >>> float(kl(np.array([1.0, 0.0]), np.array([0.5, 0.5])))
    0.6931471805599453
    """
    return kl_logits(log_probs(p), log_probs(q))


def gap_from_win_rates(
    w: np.ndarray, log_ref: np.ndarray, log_pi: np.ndarray, beta: float
) -> np.ndarray:
    """WIND duality gap given the win rates ``w = P pi`` ``[..., K]`` already computed, ``[...]``.

    Solvers call this with the ``w`` their step needs anyway; see :func:`duality_gap`. ``beta``
    is a scalar or one value per context ``[...]``.

    >>> float(gap_from_win_rates(np.full(2, 0.5), np.log([0.5, 0.5]), np.log([0.5, 0.5]), 1.0))
    0.0
    """
    b = np.asarray(beta, dtype=np.float64)
    V = b * logsumexp(np.asarray(log_ref, np.float64) + w / b[..., None], axis=-1)
    return 2.0 * (V + b * kl_logits(log_pi, log_ref)) - 1.0


def duality_gap_logits(
    P: np.ndarray, log_ref: np.ndarray, log_pi: np.ndarray, beta: float
) -> np.ndarray:
    """WIND duality gap from log-probabilities ``[..., K]``; see :func:`duality_gap`. ``[...]``.

    >>> P = np.array([[0.5, 0.9], [0.1, 0.5]])
    >>> float(duality_gap_logits(P, np.log([0.5, 0.5]), np.log([0.5, 0.5]), 1.0)) > 0
    True
    """
    log_pi = np.asarray(log_pi, dtype=np.float64)
    return gap_from_win_rates(response_win_rates(P, np.exp(log_pi)), log_ref, log_pi, beta)


def duality_gap(P: np.ndarray, ref: np.ndarray, pi: np.ndarray, beta: float) -> np.ndarray:
    """Duality gap of the symmetric strategy ``(pi, pi)`` in the WIND game, ``[...]``.

    ``gap(pi) = 2 [V(pi) + beta KL(pi || ref)] - 1`` with
    ``V(pi) = beta log sum_y ref(y) exp((P pi)(y) / beta)`` (THEORY.md 3): the best response's
    regularized value against ``pi`` on both sides. Zero exactly at the equilibrium, positive
    elsewhere.

    >>> P = np.array([[0.5, 0.5], [0.5, 0.5]])
    >>> float(duality_gap(P, np.array([0.5, 0.5]), np.array([0.5, 0.5]), beta=0.1))
    0.0
    """
    return duality_gap_logits(P, log_probs(ref), log_probs(pi), beta)


def exploitability(P: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Unregularized exploitability ``max_y (P pi)(y) - 1/2``, ``[...]`` (THEORY.md 3).

    Zero exactly at a von Neumann winner (maximal lottery) of ``P``. ``pi`` must lie on the
    simplex (``ValueError`` otherwise).

    >>> P = np.array([[0.5, 1.0, 0.0], [0.0, 0.5, 1.0], [1.0, 0.0, 0.5]])
    >>> float(exploitability(P, np.full(3, 1 / 3))), float(exploitability(P, np.eye(3)[0]))
    (0.0, 0.5)
    """
    return np.max(response_win_rates(P, validate_policy(pi, name="pi")), axis=-1) - 0.5
