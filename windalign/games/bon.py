"""Best-of-N distributions in log space (THEORY.md 2; docs/theory.md "Best-of-N").

Reward Best-of-N with ties: draw N responses from ``pi``, keep the highest reward, break ties
uniformly. With ``F(y) = pi(r <= r(y))`` and ``F_(y) = pi(r < r(y))``,

    BoN_N(pi)(y) = pi(y) * (F^N - F_^N) / (F - F_).

Best-of-2 under a general oracle ``P``: ``Bo2(pi)(y) = 2 pi(y) (P pi)(y)``.
Everything is computed on log-probabilities, so actions whose probability underflows in linear
space keep exact log-masses.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from windalign.games.metrics import log_probs, response_win_rates


def _log_ratio(d: np.ndarray, n: float) -> np.ndarray:
    """``log((1 - e^{n d}) / (1 - e^{d}))`` for ``d <= 0`` (the limit ``log n`` at ``d = 0``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(-np.expm1(n * d)) - np.log(-np.expm1(d))
    return np.where(d == 0.0, np.log(n), out)


def log_bon_distribution(log_pi: np.ndarray, rewards: np.ndarray, n: float) -> np.ndarray:
    """``log BoN_n(pi)`` for reward Best-of-``n`` with ties; ``[..., K]`` -> ``[..., K]``.

    ``log_pi`` ``[..., K]`` (may contain ``-inf``; normalized first), ``rewards`` broadcastable
    to it, ``n >= 1`` (real ``n`` is allowed; integer ``n`` is the sampling procedure).
    Per tie group ``G`` with log-mass ``m`` and log-mass strictly below ``L = log F_``:
    ``log BoN(y) = log pi(y) + (n-1) log F + log((1 - e^{n d}) / (1 - e^{d}))`` with
    ``d = log F_ - log F = -log(1 + e^{m - L})``, which equals ``log pi(y) - m + log(F^n - F_^n)``
    without ever subtracting two small probabilities. THEORY.md 2 and 7.6.

    >>> np.exp(log_bon_distribution(np.log([0.5, 0.5]), np.array([0.0, 1.0]), 2))
    array([0.25, 0.75])
    >>> np.exp(log_bon_distribution(np.log([0.5, 0.5]), np.array([1.0, 1.0]), 3))  # a tie
    array([0.5, 0.5])
    """
    if n < 1:
        raise ValueError(f"Best-of-N needs n >= 1, got n={n}")
    log_pi = np.asarray(log_pi, dtype=np.float64)
    r = np.broadcast_to(np.asarray(rewards, dtype=np.float64), log_pi.shape)
    K = log_pi.shape[-1]
    lp = log_pi.reshape(-1, K)
    rr = r.reshape(-1, K)
    order = np.argsort(rr, axis=-1, kind="stable")
    lp_s = np.take_along_axis(lp, order, -1)
    lp_s = lp_s - logsumexp(lp_s, axis=-1, keepdims=True)  # exact top F = 1: no drift when iterated
    r_s = np.take_along_axis(rr, order, -1)
    # tie groups: a new group starts where the sorted reward changes (and at every row start)
    starts = np.ones_like(r_s, dtype=bool)
    starts[:, 1:] = r_s[:, 1:] != r_s[:, :-1]
    group = np.cumsum(starts.ravel()) - 1
    log_mass = np.logaddexp.reduceat(lp_s.ravel(), np.flatnonzero(starts.ravel()))[group]
    log_mass = log_mass.reshape(lp_s.shape)
    # log F_ = log-mass of all groups strictly below: inclusive cumsum at the previous position
    cum = np.logaddexp.accumulate(lp_s, axis=-1)
    below = np.concatenate([np.full((lp_s.shape[0], 1), -np.inf), cum[:, :-1]], axis=-1)
    first = np.maximum.accumulate(np.where(starts, np.arange(K), 0), axis=-1)
    log_below = np.take_along_axis(below, first, -1)
    with np.errstate(invalid="ignore"):
        gap = log_mass - log_below  # +inf for the lowest group, nan if both are -inf
    d = -np.logaddexp(0.0, np.where(np.isnan(gap), -np.inf, gap))
    log_F = np.logaddexp(log_below, log_mass)
    # a log-mass near -1.8e308 times (n - 1) overflows to -inf: the exact limit, not an error
    with np.errstate(invalid="ignore", over="ignore"):
        log_bon = lp_s + (n - 1.0) * log_F + _log_ratio(d, n)
    log_bon = np.where(np.isneginf(lp_s), -np.inf, log_bon)
    out = np.empty_like(log_bon)
    np.put_along_axis(out, order, log_bon, -1)
    return out.reshape(log_pi.shape)


def bon_distribution(pi: np.ndarray, rewards: np.ndarray, n: float) -> np.ndarray:
    """Reward Best-of-``n`` with ties, ``[..., K]`` -> ``[..., K]``: ``exp`` of
    :func:`log_bon_distribution` (THEORY.md 2).

    >>> bon_distribution(np.array([0.25, 0.25, 0.5]), np.array([0.0, 1.0, 2.0]), 2)
    array([0.0625, 0.1875, 0.75  ])
    """
    return np.exp(log_bon_distribution(log_probs(pi), rewards, n))


def log_best_of_two(log_pi: np.ndarray, P: np.ndarray) -> np.ndarray:
    """``log Bo2(pi) = log 2 + log pi + log (P pi)`` under a general oracle ``P`` ``[..., K, K]``.

    ``log_pi`` ``[..., K]`` normalized (``-inf`` allowed); the result is exact and normalized
    (``sum 2 pi (P pi) = 2 pi^T P pi = 1``).
    THEORY.md 2.

    >>> P = np.array([[0.5, 0.8], [0.2, 0.5]])
    >>> np.exp(log_best_of_two(np.log([0.5, 0.5]), P))
    array([0.65, 0.35])
    """
    log_pi = np.asarray(log_pi, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.log(2.0) + log_pi + np.log(response_win_rates(P, np.exp(log_pi)))


def best_of_two(pi: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Best-of-2 under a general oracle: ``Bo2(pi) = 2 pi * (P pi)``, ``[..., K]`` (THEORY.md 2).

    Draw two responses from ``pi`` and keep the first with probability ``P(y1 > y2)``.

    >>> best_of_two(np.array([0.5, 0.5]), np.array([[0.5, 0.8], [0.2, 0.5]]))
    array([0.65, 0.35])
    """
    pi = np.asarray(pi, dtype=np.float64)
    return 2.0 * pi * response_win_rates(P, pi)
