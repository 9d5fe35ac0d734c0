"""Small torch policies over K actions for the contextual bandit (THEORY.md 5).

Every policy maps contexts ``x [B, d]`` to logits ``[B, K]`` as ``ref(x) + head(x)``: a frozen
copy of the reference score plus a trainable head initialised to zero, so training starts
exactly at ``pi_0 = pi_ref`` (as an LLM policy starts from its reference model). The heads:

* ``tabular`` -- one free logit row per context of a finite pool (no generalisation);
* ``linear``  -- a linear-softmax policy, ``x W + b``;
* ``mlp``     -- one tanh hidden layer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from windalign.registry import Registry

POLICIES: Registry[Callable[..., Policy]] = Registry("policy")


class _AffineReference(nn.Module):
    """The frozen reference score ``x W_ref + b_ref`` (``w_ref [d + 1, K]``, last row = bias)."""

    def __init__(self, w_ref: np.ndarray) -> None:
        super().__init__()
        w = torch.as_tensor(w_ref, dtype=torch.float64)
        self.register_buffer("weight", w[:-1].clone())
        self.register_buffer("bias", w[-1].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.bias


class Policy(nn.Module):
    """``logits(x) = ref(x) + head(x)`` with a zero-initialised head: ``[B, d] -> [B, K]``."""

    def __init__(self, w_ref: np.ndarray, head: nn.Module) -> None:
        super().__init__()
        self.ref = _AffineReference(w_ref)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ref(x) + self.head(x)


class _TableHead(nn.Module):
    """One logit row per pool context; a context is matched to its pool row exactly."""

    def __init__(self, pool: np.ndarray, n_actions: int) -> None:
        super().__init__()
        self.register_buffer("pool", torch.as_tensor(pool, dtype=torch.float64))
        self.table = nn.Parameter(torch.zeros(len(pool), n_actions, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dist = torch.cdist(x, self.pool)
        best, idx = dist.min(dim=1)
        if bool((best > 1e-9).any()):
            worst = int(best.argmax())
            raise ValueError(
                f"tabular policy: context {worst} of the batch is not in its finite pool "
                f"(distance {float(best[worst]):.3g}); use env.n_contexts > 0 and contexts "
                "drawn from env.pool, or a linear / mlp policy"
            )
        return self.table[idx]


def _zero_linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out, dtype=torch.float64)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


@POLICIES.register("tabular", help="one free logit row per context of a finite pool")
def tabular_policy(
    w_ref: np.ndarray, pool: np.ndarray | None, hidden: int, generator: torch.Generator
) -> Policy:
    """Tabular policy on ``pool [N, d]``: ``[B, d] -> [B, K]`` logits (``pi_0 = pi_ref``).

    >>> pool = np.eye(3)
    >>> pi = tabular_policy(np.ones((4, 2)), pool, 0, torch.Generator())
    >>> pi(torch.as_tensor(pool[[2, 0]])).shape
    torch.Size([2, 2])
    """
    if pool is None:
        raise ValueError(
            "policy.kind = 'tabular' needs a finite context pool; set env.n_contexts > 0"
        )
    return Policy(w_ref, _TableHead(pool, w_ref.shape[1]))


@POLICIES.register("linear", help="linear-softmax over the context, x W + b")
def linear_policy(
    w_ref: np.ndarray, pool: np.ndarray | None, hidden: int, generator: torch.Generator
) -> Policy:
    """Linear-softmax policy ``softmax(x (W_ref + W) + b_ref + b)``: ``[B, d] -> [B, K]``.

    >>> pi = linear_policy(np.zeros((4, 5)), None, 0, torch.Generator())
    >>> pi(torch.zeros(2, 3, dtype=torch.float64)).tolist()
    [[0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]]
    """
    d, k = w_ref.shape[0] - 1, w_ref.shape[1]
    return Policy(w_ref, _zero_linear(d, k))


@POLICIES.register("mlp", help="one tanh hidden layer on top of the reference score")
def mlp_policy(
    w_ref: np.ndarray, pool: np.ndarray | None, hidden: int, generator: torch.Generator
) -> Policy:
    """MLP policy ``ref(x) + V tanh(U x + c)`` (``V = 0`` at init): ``[B, d] -> [B, K]``.

    >>> pi = mlp_policy(np.zeros((4, 5)), None, 16, torch.Generator().manual_seed(0))
    >>> pi(torch.ones(2, 3, dtype=torch.float64)).abs().max().item()
    0.0
    """
    d, k = w_ref.shape[0] - 1, w_ref.shape[1]
    first = nn.Linear(d, hidden, dtype=torch.float64)
    with torch.no_grad():
        first.weight.copy_(torch.randn(hidden, d, generator=generator, dtype=torch.float64))
        first.weight.div_(np.sqrt(d))
        first.bias.zero_()
    return Policy(w_ref, nn.Sequential(first, nn.Tanh(), _zero_linear(hidden, k)))


def make_policy(
    kind: str, w_ref: np.ndarray, pool: np.ndarray | None, hidden: int = 32, seed: int = 0
) -> Policy:
    """Build the policy registered as ``kind`` (see ``POLICIES``), starting at the reference.

    ``w_ref [d + 1, K]`` is the reference score (last row the bias), ``pool [N, d]`` the finite
    context set (tabular only), ``hidden`` the MLP width, ``seed`` its initialisation.

    >>> make_policy("linear", np.zeros((3, 4)), None)(torch.zeros(1, 2, dtype=torch.float64)).shape
    torch.Size([1, 4])
    """
    generator = torch.Generator().manual_seed(seed)
    return POLICIES[kind](w_ref, pool, hidden, generator)
