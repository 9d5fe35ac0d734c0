"""Preference oracles on finite response sets: validation and seeded generators.

A preference oracle on K responses is an array ``P`` of shape ``[..., K, K]`` with
``P[..., i, j] = P(y_i > y_j | x)``, entries in [0, 1] and ``P + P^T = 1`` (so the diagonal is 1/2).
A policy is an array ``[..., K]`` on the simplex. Leading dimensions ``...`` are contexts.
See docs/theory.md section "Oracles" (THEORY.md section 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

Seed = int | np.random.Generator


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _worst(violation: np.ndarray) -> tuple[tuple[int, ...], float]:
    """Index and value of the largest entry of ``violation`` (NaN counts as the worst)."""
    v = np.where(np.isnan(violation), np.inf, violation)
    idx = np.unravel_index(int(np.argmax(v)), v.shape)
    return tuple(int(i) for i in idx), float(violation[idx])


def validate_preference(P: np.ndarray, name: str = "P", atol: float = 1e-8) -> np.ndarray:
    """Check that ``P`` ``[..., K, K]`` is a preference oracle; return it as float64.

    Conditions (THEORY.md 1): finite, ``0 <= P_ij <= 1`` and ``P_ij + P_ji = 1`` within ``atol``.
    Raises ``ValueError`` naming the array, the worst index, its value and the tolerance.

    >>> validate_preference(np.array([[0.5, 0.9], [0.1, 0.5]])).dtype
    dtype('float64')
    >>> validate_preference(np.array([[0.5, 0.9], [0.2, 0.5]]), name="oracle")
    Traceback (most recent call last):
    ...
    ValueError: oracle[0, 1] + oracle[1, 0] = 1.1 is not 1 (off by 0.1 > atol=1e-08);
    a preference oracle needs P + P^T = 1: build it from a skew-symmetric logit,
    e.g. P = sigmoid(S) with S = -S^T
    """
    P, atol = _real_array(P, name, atol)
    if P.ndim < 2 or P.shape[-1] != P.shape[-2] or P.shape[-1] < 1:
        raise ValueError(
            f"{name} must have shape [..., K, K] with K >= 1, got {P.shape}; "
            "pass one square K x K matrix per context"
        )
    if not np.all(np.isfinite(P)):
        idx, val = _worst(~np.isfinite(P) * 1.0)
        raise ValueError(f"{name}{list(idx)} = {P[idx]} is not finite; fix the oracle's entries")
    out_of_range = np.maximum(-P, P - 1.0)
    idx, val = _worst(out_of_range)
    if val > atol:
        raise ValueError(
            f"{name}{list(idx)} = {P[idx]:.6g} is outside [0, 1] (by {val:.3g} > atol={atol:g}); "
            "preference probabilities must lie in [0, 1]"
        )
    asym = np.abs(P + np.swapaxes(P, -1, -2) - 1.0)
    idx, val = _worst(asym)
    if val > atol:
        tr = (*idx[:-2], idx[-1], idx[-2])
        total = P[idx] + P[tr]
        raise ValueError(
            f"{name}{list(idx)} + {name}{list(tr)} = {total:.15g} is not 1 (off by {val:.3g} > "
            f"atol={atol:g}); a preference oracle needs P + P^T = 1: build it from a "
            "skew-symmetric logit, e.g. P = sigmoid(S) with S = -S^T"
        )
    return P


def _real_array(x: np.ndarray, name: str, atol: float) -> tuple[np.ndarray, float]:
    """``(x as float64, tolerance)``; a ``ValueError`` naming ``name`` if ``x`` is not real.

    The tolerance is ``atol``, raised to 4 ulps of ``x``'s own float type (so a float32 oracle
    that is exact in float32 passes).

    >>> _real_array(np.ones(2, dtype=np.float32), "pi", 1e-8)[1]
    4.76837158203125e-07
    >>> _real_array([1 + 2j], "P", 1e-8)
    Traceback (most recent call last):
    ...
    ValueError: P must hold real numbers, got dtype complex128
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    ulp = float(np.finfo(arr.dtype).eps) if arr.dtype.kind == "f" else 0.0
    return arr.astype(np.float64, copy=False), max(atol, 4 * ulp)


def validate_policy(pi: np.ndarray, name: str = "pi", atol: float = 1e-8) -> np.ndarray:
    """Check that ``pi`` ``[..., K]`` lies on the probability simplex; return it as float64.

    Conditions: finite, ``pi >= -atol`` and ``|sum_y pi(y) - 1| <= atol`` per context.
    Raises ``ValueError`` naming the array, the worst index, its value and the tolerance.

    >>> validate_policy(np.array([0.25, 0.75]))
    array([0.25, 0.75])
    >>> validate_policy(np.array([[0.5, 0.5], [0.7, 0.7]]), name="ref")
    Traceback (most recent call last):
    ...
    ValueError: ref[1] sums to 1.4, not 1 (off by 0.4 > atol=1e-08);
    normalize it, e.g. ref / ref.sum(-1, keepdims=True)
    """
    pi, atol = _real_array(pi, name, atol)
    if pi.ndim < 1 or pi.shape[-1] < 1:
        raise ValueError(f"{name} must have shape [..., K] with K >= 1, got {pi.shape}")
    if not np.all(np.isfinite(pi)):
        idx, _ = _worst(~np.isfinite(pi) * 1.0)
        raise ValueError(f"{name}{list(idx)} = {pi[idx]} is not finite; fix the policy")
    idx, val = _worst(-pi)
    if val > atol:
        raise ValueError(
            f"{name}{list(idx)} = {pi[idx]:.6g} is negative (beyond atol={atol:g}); "
            "probabilities must be >= 0"
        )
    total = pi.sum(-1)
    idx, val = _worst(np.abs(total - 1.0))
    if val > atol:
        raise ValueError(
            f"{name}{list(idx)} sums to {total[idx]:.6g}, not 1 "
            f"(off by {val:.3g} > atol={atol:g}); "
            f"normalize it, e.g. {name} / {name}.sum(-1, keepdims=True)"
        )
    return pi


def game_shape(P: np.ndarray, ref: np.ndarray) -> tuple[int, ...]:
    """The context shape ``[..., K]`` of a game ``P [..., K, K]``, ``ref [..., K]``, or a
    ``ValueError`` naming the array at fault and the fix.

    ``P`` may be one ``[K, K]`` oracle shared by every context and ``ref`` one ``[K]`` reference
    shared by every context; otherwise they need the same leading (context) dimensions. A game
    needs at least one context.

    >>> game_shape(np.full((3, 2, 2), 0.5), np.full((3, 2), 0.5))
    (3, 2)
    >>> game_shape(np.full((2, 2), 0.5), np.full((4, 2), 0.5))
    (4, 2)
    >>> game_shape(np.full((3, 2, 2), 0.5), np.full((4, 2), 0.5))
    Traceback (most recent call last):
    ...
    ValueError: ref has shape (4, 2) but P has shape (3, 2, 2): give ref [..., K] with the same
    leading (context) dimensions as P [..., K, K], or one P [K, K] shared by every context
    """
    P_shape, ref_shape = np.shape(P), np.shape(ref)
    if len(P_shape) < 2 or P_shape[-1] != P_shape[-2] or P_shape[-1] < 1:
        raise ValueError(
            f"P must have shape [..., K, K] with K >= 1, got {P_shape}; "
            "pass one square K x K matrix per context"
        )
    K = P_shape[-1]
    if len(ref_shape) < 1 or ref_shape[-1] != K:
        raise ValueError(
            f"ref has shape {ref_shape} but P has shape {P_shape}: ref needs K = {K} "
            "probabilities per context (its last dimension), one per response of P"
        )
    shared = len(P_shape) == 2 or len(ref_shape) == 1
    if not shared and P_shape[:-1] != ref_shape:
        raise ValueError(
            f"ref has shape {ref_shape} but P has shape {P_shape}: give ref [..., K] with the "
            "same leading (context) dimensions as P [..., K, K], or one P [K, K] shared by every "
            "context"
        )
    shape = P_shape[:-1] if len(P_shape) > len(ref_shape) else ref_shape
    if 0 in shape:
        raise ValueError(
            f"the game has no contexts (P has shape {P_shape}, ref {ref_shape}); give at least "
            "one context"
        )
    return tuple(shape)


def oracle_from_logits(S: np.ndarray) -> np.ndarray:
    """``P = sigmoid(S)`` for a skew-symmetric logit ``S`` ``[..., K, K]``, with ``P + P^T = 1``.

    ``S`` is skew-symmetrized first, ``(S - S^T) / 2``, so rounding never breaks ``P + P^T = 1``
    beyond one ulp.

    >>> oracle_from_logits(np.array([[0.0, 2.0], [-2.0, 0.0]])).round(4)
    array([[0.5   , 0.8808],
           [0.1192, 0.5   ]])
    """
    S = np.asarray(S, dtype=np.float64)
    return expit(0.5 * (S - np.swapaxes(S, -1, -2)))


def bradley_terry(rewards: np.ndarray, tau: float = 1.0) -> np.ndarray:
    """Bradley–Terry oracle ``P_ij = sigmoid((r_i - r_j) / tau)``, ``[..., K]`` -> ``[..., K, K]``.

    THEORY.md 1. ``tau > 0`` is the temperature (``tau -> 0`` gives :func:`hard_order`).

    >>> bradley_terry(np.array([0.0, np.log(3.0)]))
    array([[0.5 , 0.25],
           [0.75, 0.5 ]])
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    r = np.asarray(rewards, dtype=np.float64)
    return oracle_from_logits((r[..., :, None] - r[..., None, :]) / tau)


def hard_order(rewards: np.ndarray) -> np.ndarray:
    """Hard reward order with ties split: ``P_ij = 1{r_i > r_j} + 1/2 * 1{r_i = r_j}``.

    Rewards ``[..., K]`` -> ``[..., K, K]`` (THEORY.md 1).

    >>> hard_order(np.array([1.0, 0.0, 1.0]))
    array([[0.5, 1. , 0.5],
           [0. , 0.5, 0. ],
           [0.5, 1. , 0.5]])
    """
    r = np.asarray(rewards, dtype=np.float64)
    diff = r[..., :, None] - r[..., None, :]
    return (diff > 0) + 0.5 * (diff == 0)


def mixed_oracle(
    rewards: np.ndarray, features: np.ndarray, A: np.ndarray, nontransitive: float
) -> np.ndarray:
    """Transitive + non-transitive mixture ``P_ij = sigmoid((1-s)(r_i - r_j) + s phi_i^T A phi_j)``.

    rewards ``[..., K]``, features ``[..., K, m]``, ``A`` ``[m, m]`` skew-symmetric, ``s =
    nontransitive`` in [0, 1] is the share of the logit that is non-transitive: ``s = 0`` is
    Bradley–Terry on ``r``, ``s = 1`` a purely skew-symmetric (cyclic-prone) oracle. The two parts
    are mixed linearly inside the logit (not the probabilities), so ``P + P^T = 1`` holds for all
    ``s``. Returns ``[..., K, K]`` (THEORY.md 1).

    >>> A = np.array([[0.0, 1.0], [-1.0, 0.0]])
    >>> P = mixed_oracle(np.zeros(3), np.eye(3)[:, :2], A, nontransitive=1.0)
    >>> float(P[0, 1]), float(P[1, 0])
    (0.7310585786300049, 0.2689414213699951)
    """
    if not 0.0 <= nontransitive <= 1.0:
        raise ValueError(f"nontransitive must be in [0, 1], got {nontransitive}")
    A = np.asarray(A, dtype=np.float64)
    skew = np.max(np.abs(A + A.T), initial=0.0)
    if skew > 1e-12:
        raise ValueError(f"A must be skew-symmetric (A = -A^T); max |A + A^T| = {skew:.3g}")
    r = np.asarray(rewards, dtype=np.float64)
    phi = np.asarray(features, dtype=np.float64)
    cyc = np.einsum("...im,mn,...jn->...ij", phi, A, phi)
    s = float(nontransitive)
    return oracle_from_logits((1.0 - s) * (r[..., :, None] - r[..., None, :]) + s * cyc)


def cyclic_oracle(K: int, strength: float = 1.0) -> np.ndarray:
    """Rock-paper-scissors-like oracle on ``K >= 3`` actions: ``[K, K]``.

    Action i beats the next ``(K-1)//2`` actions cyclically: ``P_ij = 1/2 + strength/2`` when
    ``(j - i) mod K`` is in ``1..(K-1)//2``, ``1/2 - strength/2`` for the mirrored pairs and 1/2
    otherwise (the self-pair, and the opposite action when K is even). ``strength`` in [0, 1]. The
    uniform policy is its unique von Neumann winner for odd K.

    >>> cyclic_oracle(3)
    array([[0.5, 1. , 0. ],
           [0. , 0.5, 1. ],
           [1. , 0. , 0.5]])
    """
    if K < 3:
        raise ValueError(f"a cyclic oracle needs K >= 3 actions, got K={K}")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    offset = (np.arange(K)[None, :] - np.arange(K)[:, None]) % K
    half = (K - 1) // 2
    sign = ((offset >= 1) & (offset <= half)) * 1.0 - ((offset >= K - half) & (offset > 0)) * 1.0
    return 0.5 + 0.5 * strength * sign


def random_skew(m: int, seed: Seed = 0) -> np.ndarray:
    """A random skew-symmetric ``[m, m]`` matrix ``(G - G^T)/sqrt(2)``, ``G`` standard normal.

    Off-diagonal entries are standard normal; ``A = -A^T`` exactly.

    >>> A = random_skew(4, seed=0)
    >>> bool(np.all(A == -A.T))
    True
    """
    G = _rng(seed).standard_normal((m, m))
    return (G - G.T) / np.sqrt(2.0)


@dataclass
class Game:
    """A batch of preference games: oracle ``P`` ``[..., K, K]``, reference ``ref`` ``[..., K]``,
    and the transitive ``rewards`` ``[..., K]`` it was built from (``None`` when there are none)."""

    P: np.ndarray
    ref: np.ndarray
    rewards: np.ndarray | None = None


def random_game(
    K: int,
    batch: tuple[int, ...] = (),
    nontransitive: float = 0.5,
    ref: str = "dirichlet",
    seed: Seed = 0,
    *,
    features: int = 4,
    scale: float = 2.0,
) -> Game:
    """A seeded random :func:`mixed_oracle` game with shape ``batch + (K, K)``.

    Rewards ``r ~ N(0, scale^2)`` ``[..., K]``, features ``phi ~ N(0, 1/features)`` ``[..., K,
    features]`` with one shared ``A = scale * random_skew(features)`` (so both logit parts have
    spread ~``scale``), mixed with share ``nontransitive``. ``ref`` is ``"dirichlet"`` (a
    flat-Dirichlet draw per context) or ``"uniform"``.

    >>> g = random_game(5, batch=(3,), seed=1)
    >>> g.P.shape, g.ref.shape, g.rewards.shape
    ((3, 5, 5), (3, 5), (3, 5))
    """
    if K < 1:
        raise ValueError(f"K must be >= 1, got {K}")
    rng = _rng(seed)
    batch = tuple(batch)
    rewards = scale * rng.standard_normal((*batch, K))
    phi = rng.standard_normal((*batch, K, features)) / np.sqrt(features)
    A = scale * random_skew(features, rng)
    P = mixed_oracle(rewards, phi, A, nontransitive)
    if ref == "dirichlet":
        pref = rng.dirichlet(np.ones(K), size=batch) if batch else rng.dirichlet(np.ones(K))
    elif ref == "uniform":
        pref = np.full((*batch, K), 1.0 / K)
    else:
        raise ValueError(f"ref must be 'dirichlet' or 'uniform', got {ref!r}")
    return Game(P=P, ref=pref, rewards=rewards)
