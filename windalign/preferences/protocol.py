"""The preference-oracle protocol: ``oracle(prompts, responses) -> P [B, K, K]`` (THEORY.md 1, 8).

An oracle compares the K responses of each of B prompts and returns ``P[b, i, j] = P(y_i > y_j |
x_b)`` as a float64 tensor, NaN where a pair was not queried. Every oracle counts what it spent,
the same way for every method (THEORY.md 8): *queries* (unordered pairs compared), *calls* (model
evaluations, function evaluations or HTTP requests), cache hits and seconds. The output of every
oracle is validated (:func:`validate_preferences`) before a loss sees it.

>>> import torch
>>> class Longer(PreferenceOracle):
...     def compare(self, prompts, responses, pairs):
...         n = torch.tensor([[len(r) for r in rs] for rs in responses], dtype=torch.float64)
...         self.counters.calls += n.numel()
...         return 0.5 + 0.5 * torch.sign(n[:, :, None] - n[:, None, :])
>>> oracle = Longer()
>>> oracle(["Say hi."], [["hi", "hello", "yo"]])[0]  # the diagonal is never a query
tensor([[   nan, 0.0000, 0.5000],
        [1.0000,    nan, 1.0000],
        [0.5000, 0.0000,    nan]], dtype=torch.float64)
>>> oracle.counters.queries, oracle.counters.calls
(3, 3)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

#: Pairs to query per prompt: ``None`` = every unordered pair, else a list of ``(i, j)``, i != j.
Pairs = Sequence[tuple[int, int]] | None


@dataclass
class OracleCounters:
    """What an oracle has spent so far (THEORY.md 8: counted the same way for every method)."""

    queries: int = 0  # unordered pairs compared
    calls: int = 0  # model / function evaluations or HTTP requests
    cache_hits: int = 0
    skipped: int = 0  # queries that failed and were left unanswered (NaN), never a silent 1/2
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """The counters as a plain dict (for logs and checkpoints)."""
        return asdict(self)


def pair_mask(K: int, pairs: Pairs) -> Tensor:
    """``[K, K]`` bool: True at ``(i, j)`` and ``(j, i)`` for every queried pair.

    >>> pair_mask(3, [(0, 1), (0, 2)]).int()
    tensor([[0, 1, 1],
            [1, 0, 0],
            [1, 0, 0]], dtype=torch.int32)
    """
    if pairs is None:
        return ~torch.eye(K, dtype=torch.bool)
    mask = torch.zeros(K, K, dtype=torch.bool)
    for i, j in pairs:
        if not (0 <= i < K and 0 <= j < K and i != j):
            raise ValueError(f"pair ({i}, {j}) is not a pair of two of the K={K} responses")
        mask[i, j] = mask[j, i] = True
    return mask


def _short(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def validate_preferences(P: object, name: str, prompts: Sequence[str], K: int) -> Tensor:
    """Check an oracle's output and return it as float64 ``[B, K, K]`` with NaN diagonal.

    Rejects, naming the oracle ``name`` and the first offending prompt: a non-tensor, a wrong
    shape, values outside [0, 1], and ``P_ij + P_ji != 1`` (tolerance 1e-6) where both are
    present. NaN means "not queried"; a pair queried in one direction only is completed later.

    >>> validate_preferences(torch.full((1, 2, 2), 0.7), "judge", ["Hi."], 2)
    Traceback (most recent call last):
    ...
    ValueError: oracle 'judge' returned P[0, 0, 1] + P[0, 1, 0] = 1.4, not 1, for prompt 'Hi.'; preferences must satisfy P(y > y') + P(y' > y) = 1
    """  # noqa: E501
    B = len(prompts)
    if not isinstance(P, Tensor):
        raise ValueError(f"oracle {name!r} returned {type(P).__name__}, expected a torch.Tensor")
    if tuple(P.shape) != (B, K, K):
        raise ValueError(
            f"oracle {name!r} returned shape {tuple(P.shape)}, expected {(B, K, K)} "
            f"(B={B} prompts x K={K} responses x K)"
        )
    P = P.detach().to("cpu", torch.float64).clone()
    eye = torch.eye(K, dtype=torch.bool).expand(B, K, K)
    P[eye] = float("nan")
    bad = ~torch.isnan(P) & ((P < 0) | (P > 1))
    if bad.any():
        b, i, j = (int(v) for v in bad.nonzero()[0])
        raise ValueError(
            f"oracle {name!r} returned P[{b}, {i}, {j}] = {P[b, i, j].item():.6g} for prompt "
            f"{_short(prompts[b])}; preferences are probabilities in [0, 1] (NaN = not queried)"
        )
    total = P + P.transpose(1, 2)
    bad = ~torch.isnan(total) & ((total - 1).abs() > 1e-6)
    if bad.any():
        b, i, j = (int(v) for v in bad.nonzero()[0])
        raise ValueError(
            f"oracle {name!r} returned P[{b}, {i}, {j}] + P[{b}, {j}, {i}] = "
            f"{total[b, i, j].item():.6g}, not 1, for prompt {_short(prompts[b])}; "
            "preferences must satisfy P(y > y') + P(y' > y) = 1"
        )
    return P


def count_queries(P: Tensor) -> int:
    """Unordered pairs with a known preference in ``P [B, K, K]`` (NaN = not queried).

    >>> count_queries(torch.tensor([[[0.5, 1.0], [float("nan"), 0.5]]]))
    1
    """
    known = ~torch.isnan(P)
    known = (known | known.transpose(1, 2)) & ~torch.eye(P.shape[-1], dtype=torch.bool)
    return int(known.sum()) // 2


class PreferenceOracle:
    """Base class: subclasses implement :meth:`compare`; ``__call__`` validates and counts.

    ``compare(prompts, responses, pairs)`` returns ``[B, K, K]`` preferences for the requested
    ``pairs`` (others may be NaN or filled; entries outside ``pairs`` are set to NaN here so the
    query count is exactly what was asked for) and adds its own ``calls`` / ``cache_hits``.
    """

    #: Name used in errors and logs (default: the class name).
    name: str = ""

    def __init__(self) -> None:
        self.counters = OracleCounters()
        self.name = self.name or type(self).__name__

    def compare(self, prompts: list[str], responses: list[list[str]], pairs: Pairs) -> Tensor:
        """``[B, K, K]`` preferences of the responses; see the class docstring."""
        raise NotImplementedError

    def __call__(
        self, prompts: Sequence[str], responses: Sequence[Sequence[str]], pairs: Pairs = None
    ) -> Tensor:
        """Validated ``P [B, K, K]`` (float64, NaN diagonal and NaN outside ``pairs``)."""
        prompts, responses = list(prompts), [list(r) for r in responses]
        if len(responses) != len(prompts):
            raise ValueError(
                f"oracle {self.name!r} got {len(prompts)} prompts but {len(responses)} "
                "response lists; pass one list of K responses per prompt"
            )
        K = len(responses[0]) if responses else 0
        for b, r in enumerate(responses):
            if len(r) != K:
                raise ValueError(
                    f"oracle {self.name!r} needs the same number of responses for every prompt: "
                    f"prompt 0 has {K}, prompt {b} ({_short(prompts[b])}) has {len(r)}"
                )
        start = time.perf_counter()
        P = validate_preferences(self.compare(prompts, responses, pairs), self.name, prompts, K)
        P[:, ~pair_mask(K, pairs)] = float("nan")
        self.counters.seconds += time.perf_counter() - start
        self.counters.queries += count_queries(P)
        return P
