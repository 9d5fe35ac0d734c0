"""A contextual preference bandit with a mixed (transitive + cyclic) oracle (THEORY.md 1, 5, 6).

A context ``x`` in ``R^d`` determines, through fixed random linear maps, a reward ``r(x) [K]`` and
action features ``phi(x) [K, m]``; the oracle is ``windalign.games.mixed_oracle``:
``P_ij = sigmoid((1-s)(r_i - r_j) + s phi_i^T A phi_j)`` with a fixed skew-symmetric ``A`` and
non-transitive share ``s``. The reference policy is a fixed softmax of a linear score (not
uniform). The environment draws contexts, samples actions from any log-policy, answers pairwise
queries with noisy 0/1 labels ``o_ij ~ Bernoulli(P_ij)`` and counts every sample and query: the
budget every method is compared on.

The problem instance (maps, skew, reference, context pool, held-out contexts) is fixed by
``EnvConfig.seed``; :meth:`PreferenceBandit.reset` seeds the sampling noise of one training run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from windalign.config import option, validate
from windalign.games import mixed_oracle, random_skew


def _at_least(low: float) -> Callable[[float], bool]:
    return lambda v: v >= low


@dataclass(frozen=True)
class EnvConfig:
    """Shape of one bandit problem (every field validated on construction, ``windalign.config``).

    ``n_contexts = 0`` draws fresh Gaussian contexts every round and evaluates on ``n_eval``
    held-out contexts; ``n_contexts = N > 0`` fixes a finite pool of ``N`` contexts (needed by the
    tabular policy) and evaluates on the whole pool (the exact expectation over prompts).

    >>> EnvConfig(n_actions=1)
    Traceback (most recent call last):
    ...
    ValueError: env.n_actions = 1 is invalid; it must be an integer >= 2
    """

    n_actions: int = option(8, help="actions per context (K); an integer >= 2", check=_at_least(2))
    context_dim: int = option(
        6, help="context dimension, x ~ N(0, I_d) (d); an integer >= 1", check=_at_least(1)
    )
    feature_dim: int = option(
        4,
        help="action feature dimension, phi(x) [K, m] (m); an integer >= 2 (a skew form needs "
        "m >= 2)",
        check=_at_least(2),
    )
    nontransitive: float = option(
        0.5,
        help="share of the oracle logit that is skew-symmetric, cyclic (s); a share in [0, 1]",
        check=lambda v: 0.0 <= v <= 1.0,
    )
    reward_scale: float = option(
        3.0, help="spread of the transitive reward r(x) = x W + b; a float >= 0", check=_at_least(0)
    )
    ref_scale: float = option(
        1.5,
        help="spread of the reference score, pi_ref = softmax(x W_ref + b_ref); a float >= 0",
        check=_at_least(0),
    )
    n_contexts: int = option(
        0,
        help="finite context pool size, 0 = fresh contexts every round (N); "
        "0 (continuous contexts) or a pool size >= 1",
        check=_at_least(0),
    )
    n_eval: int = option(
        256,
        help="held-out evaluation contexts when n_contexts = 0; an integer >= 1",
        check=_at_least(1),
    )
    seed: int = option(0, help="seed of the problem instance; an integer >= 0", check=_at_least(0))

    def __post_init__(self) -> None:
        validate(self, "env")


def all_pairs(k: int) -> list[tuple[int, int]]:
    """Every unordered pair ``(i, j), i < j`` of ``k`` samples: ``k(k-1)/2`` queries.

    >>> all_pairs(3)
    [(0, 1), (0, 2), (1, 2)]
    """
    return list(combinations(range(k), 2))


def sample_categorical(logp: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` i.i.d. draws per row from ``softmax(logp)`` by the Gumbel-max trick.

    ``logp [B, K]`` (any log-weights; ``-inf`` entries are never drawn) -> indices ``[B, k]``.

    >>> rng = np.random.default_rng(0)
    >>> draws = sample_categorical(np.array([[-np.inf, 0.0, -np.inf]]), 4, rng)
    >>> draws.tolist()
    [[1, 1, 1, 1]]
    """
    gumbel = rng.gumbel(size=(logp.shape[0], k, logp.shape[1]))
    return np.argmax(logp[:, None, :] + gumbel, axis=-1)


class PreferenceBandit:
    """The problem instance plus the per-run sampling state (rng and budget counters).

    Counters: ``samples`` (actions drawn, every policy / anchor / mixture draw) and ``queries``
    (pairwise oracle calls, one per unordered pair and prompt).

    >>> env = PreferenceBandit(EnvConfig(n_actions=4, context_dim=3, seed=1)).reset(seed=0)
    >>> x = env.sample_contexts(5)
    >>> a = env.sample_actions(env.reference_logp(x), 3)
    >>> o = env.query(x, a, all_pairs(3))
    >>> a.shape, o.shape, env.samples, env.queries
    ((5, 3), (5, 3, 3), 15, 15)
    >>> bool(np.all(o[:, 0, 1] + o[:, 1, 0] == 1.0)), bool(np.isnan(o[:, 1, 1]).all())
    (True, True)
    """

    def __init__(self, cfg: EnvConfig) -> None:
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        d, k, m = cfg.context_dim, cfg.n_actions, cfg.feature_dim
        scale = 1.0 / np.sqrt(d + 1)
        self.w_reward = cfg.reward_scale * scale * rng.normal(size=(d + 1, k))
        self.w_feature = scale * rng.normal(size=(d + 1, k * m))
        self.w_ref = cfg.ref_scale * scale * rng.normal(size=(d + 1, k))
        self.skew = random_skew(m, seed=int(rng.integers(2**31)))
        self.pool = rng.normal(size=(cfg.n_contexts, d)) if cfg.n_contexts else None
        self.eval_contexts = (
            self.pool if self.pool is not None else rng.normal(size=(cfg.n_eval, d))
        )
        self.reset(seed=0)

    def reset(self, seed: int) -> PreferenceBandit:
        """Seed the run's sampling noise and zero the budget counters; returns ``self``."""
        self.rng = np.random.default_rng(seed)
        self.samples = 0
        self.queries = 0
        return self

    @staticmethod
    def _affine(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return x @ w[:-1] + w[-1]

    def rewards(self, x: np.ndarray) -> np.ndarray:
        """Transitive reward ``r(x) = x W + b``: contexts ``[n, d]`` -> ``[n, K]``."""
        return self._affine(x, self.w_reward)

    def features(self, x: np.ndarray) -> np.ndarray:
        """Unit-norm action features ``phi(x)``: ``[n, d]`` -> ``[n, K, m]``."""
        phi = self._affine(x, self.w_feature).reshape(len(x), self.cfg.n_actions, -1)
        return phi / np.linalg.norm(phi, axis=-1, keepdims=True)

    def oracle(self, x: np.ndarray) -> np.ndarray:
        """Exact preference matrices ``P_x`` (``mixed_oracle``): ``[n, d]`` -> ``[n, K, K]``."""
        return mixed_oracle(self.rewards(x), self.features(x), self.skew, self.cfg.nontransitive)

    def reference_logits(self, x: np.ndarray) -> np.ndarray:
        """Reference score ``x W_ref + b_ref`` (``pi_ref = softmax`` of it): ``[n, K]``."""
        return self._affine(x, self.w_ref)

    def reference_logp(self, x: np.ndarray) -> np.ndarray:
        """``log pi_ref(. | x)``: ``[n, d]`` -> ``[n, K]`` (log-softmax, float64)."""
        z = self.reference_logits(x)
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    def sample_contexts(self, n: int) -> np.ndarray:
        """``n`` prompts ``x ~ rho``: from the finite pool if there is one, else ``N(0, I)``."""
        if self.pool is not None:
            return self.pool[self.rng.integers(len(self.pool), size=n)]
        return self.rng.normal(size=(n, self.cfg.context_dim))

    def sample_actions(self, logp: np.ndarray, k: int) -> np.ndarray:
        """``k`` actions per row of ``logp [B, K]`` -> ``[B, k]``; adds ``B k`` to ``samples``."""
        self.samples += logp.shape[0] * k
        return sample_categorical(logp, k, self.rng)

    def query(self, x: np.ndarray, actions: np.ndarray, pairs: list[tuple[int, int]]) -> np.ndarray:
        """Noisy labels for the listed sample pairs; adds ``B len(pairs)`` to ``queries``.

        ``x [B, d]``, ``actions [B, k]`` -> ``o [B, k, k]`` with ``o_ij ~ Bernoulli(P_ij)``,
        ``o_ji = 1 - o_ij`` for each queried pair and NaN everywhere else (diagonal included).
        """
        b, k = actions.shape
        p = self.oracle(x)
        rows = np.arange(b)[:, None]
        p_samples = p[rows[:, :, None], actions[:, :, None], actions[:, None, :]]
        labels = (self.rng.random(size=(b, k, k)) < p_samples).astype(np.float64)
        out = np.full((b, k, k), np.nan)
        if pairs:
            i, j = np.array(pairs).T
            out[:, i, j] = labels[:, i, j]
            out[:, j, i] = 1.0 - labels[:, i, j]
        self.queries += b * len(pairs)
        return out
