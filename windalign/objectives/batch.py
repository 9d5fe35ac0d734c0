"""The one sample interface every objective consumes (ARCHITECTURE.md, "The spine").

A :class:`SampleBatch` holds K sampled responses for each of B prompts: their log-probabilities
under the trained policy (differentiable), under the sampler that drew them (recorded at sampling
time) and under the reference, plus the observed preference matrix. Every loss is a pure function
``fn(batch, **hyperparameters) -> LossOutput``.

>>> import torch
>>> lp = torch.log(torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64))
>>> prefs = torch.tensor([[[0.5, 1.0, 1.0], [0.0, 0.5, float("nan")], [0.0, 1.0, 0.5]]],
...                      dtype=torch.float64)
>>> batch = SampleBatch(logp=lp, logp_old=lp, logp_ref=lp, prefs=prefs)
>>> batch.B, batch.K
(1, 3)
>>> w, valid = batch.win_rate_estimates()
>>> w  # leave-one-out: the NaN (1, 2) is completed from prefs[2, 1] = 1
tensor([[1.0000, 0.0000, 0.5000]], dtype=torch.float64)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor


class LossOutput(NamedTuple):
    """What every loss returns: a scalar ``loss`` to minimize and float ``stats`` to monitor."""

    loss: Tensor
    stats: dict[str, float]


#: a log-probability above this is rejected as positive (logits or probabilities passed instead;
#: summed float32 token log-probabilities round to at most ~1e-6 above 0)
LOGP_ATOL = 1e-4
#: a queried pair's two directions must sum to 1 within this (as the preference oracles check)
PREFS_ATOL = 1e-6


def _worst(bad: Tensor) -> tuple[int, ...]:
    """Index (as a tuple) of the first True entry of ``bad``."""
    return tuple(int(i) for i in bad.nonzero()[0])


@dataclass
class SampleBatch:
    """K sampled responses for each of B prompts, with everything a loss needs.

    Fields (``B`` prompts, ``K`` samples per prompt):

    * ``logp [B, K]`` -- ``log pi_theta(y_k | x_b)``, differentiable.
    * ``logp_old [B, K]`` -- log-probability under the sampler, recorded at sampling time (which
      sampler depends on the loss's ``sampling`` convention, see ``windalign.objectives``).
    * ``logp_ref [B, K]`` -- ``log pi_ref(y_k | x_b)``.
    * ``prefs [B, K, K]`` -- observed ``P(y_i > y_j)``, 0/1 labels or soft probabilities in
      [0, 1]; NaN where not queried. The diagonal is ignored. A pair queried in one direction
      only is completed by ``prefs[j, i] = 1 - prefs[i, j]``.
    * ``mask [B, K]`` bool -- which samples exist (default: all). Masked samples and their pairs
      drop out of every loss; their log-probabilities may be anything (even -inf or NaN).
    * ``win_rates [B, K]`` optional -- win rates ``w_t(y_k)`` of each sample against the sampler,
      known exactly or estimated elsewhere (e.g. against many more samples); when given, the
      win-rate based losses (wind-kl, wind-nce, sppo, sppo-hard, nash-md) use them instead of
      the estimate from ``prefs``. THEORY.md section 7 item 4 uses this for exact weights.
    * ``weight [B]`` optional -- nonnegative prompt weights (default 1): losses are the weighted
      mean of per-prompt losses. Used to take exact expectations over enumerated samples.

    Treat a batch as immutable after construction (derived pair data is cached); use
    ``dataclasses.replace`` to change a field.
    """

    logp: Tensor
    logp_old: Tensor
    logp_ref: Tensor
    prefs: Tensor
    mask: Tensor | None = None
    win_rates: Tensor | None = None
    weight: Tensor | None = None
    _pair_cache: tuple[Tensor, Tensor] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.logp, Tensor) or self.logp.dim() != 2:
            shape = tuple(self.logp.shape) if isinstance(self.logp, Tensor) else type(self.logp)
            raise ValueError(f"SampleBatch.logp must be a [B, K] tensor, got {shape}")
        if not self.logp.is_floating_point():
            raise ValueError(f"SampleBatch.logp must be floating point, got {self.logp.dtype}")
        B, K = self.logp.shape
        if B == 0 or K == 0:
            raise ValueError(
                f"SampleBatch.logp has shape {(B, K)}: a batch needs at least one prompt (B) and "
                "one sample per prompt (K); skip empty batches before building one"
            )
        if self.mask is None:
            self.mask = torch.ones(B, K, dtype=torch.bool, device=self.logp.device)
        expected = {
            "logp_old": (B, K),
            "logp_ref": (B, K),
            "prefs": (B, K, K),
            "mask": (B, K),
            "win_rates": (B, K),
            "weight": (B,),
        }
        for name, shape in expected.items():
            self._check_tensor(name, shape)
        self._check_values()

    def _check_tensor(self, name: str, shape: tuple[int, ...]) -> None:
        value = getattr(self, name)
        if value is None:
            return
        if not isinstance(value, Tensor):
            raise ValueError(f"SampleBatch.{name} must be a torch.Tensor, got {type(value)}")
        if tuple(value.shape) != shape:
            raise ValueError(
                f"SampleBatch.{name} has shape {tuple(value.shape)}, expected {shape} "
                f"(B={self.B} prompts x K={self.K} samples, from logp)"
            )
        if value.device != self.logp.device:
            raise ValueError(
                f"SampleBatch.{name} is on {value.device} but logp is on {self.logp.device}; "
                f"move it with .to({str(self.logp.device)!r})"
            )
        want = torch.bool if name == "mask" else self.logp.dtype
        if value.dtype != want:
            raise ValueError(f"SampleBatch.{name} has dtype {value.dtype}, expected {want}")

    def _check_values(self) -> None:
        mask = self.mask
        for name in ("logp", "logp_old", "logp_ref"):
            bad = mask & ~torch.isfinite(getattr(self, name).detach())
            if bad.any():
                idx = _worst(bad)
                raise ValueError(
                    f"SampleBatch.{name} is not finite at unmasked sample {idx} "
                    f"(value {getattr(self, name)[idx].item()}); mask it out or fix the log-prob"
                )
            value = getattr(self, name).detach()
            bad = mask & (value > LOGP_ATOL)
            if bad.any():
                idx = _worst(bad)
                raise ValueError(
                    f"SampleBatch.{name}{list(idx)} = {value[idx].item():.6g} is positive; "
                    "log-probabilities are <= 0: pass log_softmax / summed token log-probs, not "
                    "logits or probabilities"
                )
        for name in ("prefs", "win_rates"):
            value = getattr(self, name)
            if value is None:
                continue
            bad = (value < 0) | (value > 1)  # NaN prefs mean "not queried"
            if name == "win_rates":
                bad = self.mask & ~((value >= 0) & (value <= 1))
            if bad.any():
                idx = _worst(bad)
                raise ValueError(
                    f"SampleBatch.{name}{list(idx)} = {value[idx].item()} is outside [0, 1]; "
                    "preferences and win rates are probabilities (prefs: NaN where not queried)"
                )
        self._check_complementary()
        if self.weight is not None and bool((~(self.weight >= 0)).any()):
            idx = _worst(~(self.weight >= 0))
            raise ValueError(
                f"SampleBatch.weight[{idx[0]}] = {self.weight[idx].item()} must be >= 0"
            )

    def _check_complementary(self) -> None:
        """Both directions of a pair given: they must sum to 1 (within ``PREFS_ATOL``)."""
        prefs = self.prefs.detach()
        present = self.mask[:, :, None] & self.mask[:, None, :]
        total = prefs + prefs.transpose(-1, -2)
        eye = torch.eye(self.K, dtype=torch.bool, device=prefs.device)
        bad = present & ~eye & ~torch.isnan(total) & ((total - 1).abs() > PREFS_ATOL)
        if bad.any():
            b, i, j = _worst(bad)
            raise ValueError(
                f"SampleBatch.prefs[{b}, {i}, {j}] = {prefs[b, i, j].item():.6g} and "
                f"prefs[{b}, {j}, {i}] = {prefs[b, j, i].item():.6g} contradict each other: "
                "P(y_i > y_j) + P(y_j > y_i) must be 1; give complementary values, or one "
                "direction and NaN in the other"
            )

    @property
    def B(self) -> int:
        """Number of prompts."""
        return self.logp.shape[0]

    @property
    def K(self) -> int:
        """Number of samples per prompt."""
        return self.logp.shape[1]

    def _pairs(self) -> tuple[Tensor, Tensor]:
        """``(completed prefs, pair mask)``, computed once per batch (treat it as immutable)."""
        if self._pair_cache is None:
            prefs = torch.where(
                torch.isnan(self.prefs), 1 - self.prefs.transpose(-1, -2), self.prefs
            )
            eye = torch.eye(self.K, dtype=torch.bool, device=prefs.device)
            present = self.mask[:, :, None] & self.mask[:, None, :]
            pairs = present & ~eye & ~torch.isnan(prefs)
            self._pair_cache = (prefs.masked_fill(~pairs, float("nan")), pairs)
        return self._pair_cache

    def completed_prefs(self) -> Tensor:
        """``[B, K, K]`` preferences with one-way queries completed by ``1 - prefs^T``.

        Entries are NaN where neither direction was queried, on the diagonal, and on pairs that
        touch a masked sample.
        """
        return self._pairs()[0]

    def pair_mask(self) -> Tensor:
        """``[B, K, K]`` bool: ``i != j``, both samples present, preference known."""
        return self._pairs()[1]

    def win_rate_estimates(self, self_pair: bool = False) -> tuple[Tensor, Tensor]:
        """Estimated win rates ``w_k`` of each sample against the sampler, and validity.

        ``w_k = mean_{j != k, valid} o_kj`` (leave-one-out, unbiased for ``w_t(y_k)`` when the
        other samples are i.i.d. from the sampler). With ``self_pair=True`` the sample's pair
        with itself counts as 1/2 (SPPO's choice): ``w_k = (1/2 + sum_j o_kj) / (1 + n_k)``.
        If ``win_rates`` was given, it is returned instead (valid where ``mask``).
        Returns ``(w [B, K], valid [B, K] bool)``; ``w`` is 1/2 where invalid.
        """
        if self.win_rates is not None:
            return self.win_rates.masked_fill(~self.mask, 0.5), self.mask.clone()
        prefs = self.completed_prefs()
        pairs = ~torch.isnan(prefs)
        wins = torch.where(pairs, prefs, 0).sum(-1)
        count = pairs.sum(-1).to(prefs.dtype)
        valid = self.mask & (count > 0)
        if self_pair:
            return (wins + 0.5) / (count + 1), valid
        return torch.where(valid, wins / count.clamp(min=1), 0.5), valid

    def log_ratio(self) -> Tensor:
        """``s = logp - logp_old`` ``[B, K]``, zero (and gradient-free) at masked samples."""
        return self.logp.masked_fill(~self.mask, 0) - self.logp_old.masked_fill(~self.mask, 0)

    def ref_log_ratio(self) -> Tensor:
        """``logp_ref - logp_old`` ``[B, K]`` (minus the sampler's log-ratio to the reference)."""
        return self.logp_ref.masked_fill(~self.mask, 0) - self.logp_old.masked_fill(~self.mask, 0)


def prompt_mean(per_prompt: Tensor, contributes: Tensor, batch: SampleBatch) -> Tensor:
    """Weighted mean over contributing prompts: ``sum_b c_b w_b l_b / sum_b c_b w_b``.

    ``per_prompt [B]`` losses, ``contributes [B]`` bool; prompt weights from ``batch.weight``
    (default 1). Non-contributing prompts are excluded even if their loss is NaN; if none
    contributes the result is a zero that still depends on ``batch.logp`` (so ``backward`` works).

    >>> lp = torch.zeros(2, 2)
    >>> b = SampleBatch(lp, lp, lp, torch.full((2, 2, 2), 0.5))
    >>> prompt_mean(torch.tensor([1.0, float("nan")]), torch.tensor([True, False]), b)
    tensor(1.)
    """
    weight = torch.ones_like(per_prompt) if batch.weight is None else batch.weight
    weight = torch.where(contributes, weight, 0)
    total = (weight * torch.where(contributes, per_prompt, 0)).sum()
    zero = 0 * batch.logp.masked_fill(~batch.mask, 0).sum()
    return total / weight.sum().clamp(min=torch.finfo(weight.dtype).tiny) + zero


def pair_differences(batch: SampleBatch, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Pairwise differences of a per-sample quantity, with preferences and the pair mask.

    ``x [B, K]`` -> ``(x_i - x_j [B, K, K], o [B, K, K], pairs [B, K, K] bool)``; ``o`` is the
    completed preference matrix with 1/2 at invalid pairs (so it is finite everywhere).

    >>> lp = torch.zeros(1, 2)
    >>> b = SampleBatch(lp, lp, lp, torch.tensor([[[0.5, 1.0], [float("nan"), 0.5]]]))
    >>> d, o, pairs = pair_differences(b, torch.tensor([[1.0, 3.0]]))
    >>> d[0, 0, 1].item(), o[0, 1, 0].item(), pairs.sum().item()
    (-2.0, 0.0, 2)
    """
    return x[:, :, None] - x[:, None, :], batch.completed_prefs().nan_to_num(0.5), batch.pair_mask()


def pair_mean(values: Tensor, pairs: Tensor) -> tuple[Tensor, Tensor]:
    """Per-prompt mean of ``values [B, K, K]`` over valid ``pairs``: ``(mean [B], any [B])``.

    Invalid entries are ignored even if NaN.

    >>> pair_mean(torch.tensor([[[9.0, 1.0], [3.0, 9.0]]]), ~torch.eye(2, dtype=torch.bool)[None])
    (tensor([2.]), tensor([True]))
    """
    count = pairs.sum((-1, -2))
    total = torch.where(pairs, values, 0).sum((-1, -2))
    return total / count.clamp(min=1), count > 0


def sample_stats(batch: SampleBatch, w: Tensor, valid: Tensor, sampled: Tensor) -> dict[str, float]:
    """Monitoring statistics shared by all losses.

    ``w [B, K]`` estimated win rates valid where ``valid``; ``sampled [B, K]`` bool marks the
    samples drawn from the sampler whose log-probability is ``logp_old`` (for ``kl_ref``).
    Keys: ``win_rate_mean``, ``win_rate_max`` (over valid samples), ``log_ratio_mean``,
    ``log_ratio_std`` (of ``s = logp - logp_old``), ``kl_ref`` (mean of ``logp_old - logp_ref``
    over sampled samples: a Monte Carlo estimate of ``KL(sampler || pi_ref)``), ``pairs`` (valid
    preference pairs, each unordered pair once), ``samples`` (valid samples).

    >>> lp = torch.zeros(1, 2)
    >>> b = SampleBatch(lp, lp, lp, torch.tensor([[[0.5, 1.0], [0.0, 0.5]]]))
    >>> w, v = b.win_rate_estimates()
    >>> sample_stats(b, w, v, b.mask)["win_rate_max"]
    1.0
    """
    with torch.no_grad():
        s = batch.log_ratio()[batch.mask]
        kl = -batch.ref_log_ratio()[sampled & batch.mask]
        wv = w[valid]
        nan = float("nan")
        return {
            "win_rate_mean": wv.mean().item() if wv.numel() else nan,
            "win_rate_max": wv.max().item() if wv.numel() else nan,
            "log_ratio_mean": s.mean().item() if s.numel() else nan,
            "log_ratio_std": s.std(correction=0).item() if s.numel() else nan,
            "kl_ref": kl.mean().item() if kl.numel() else nan,
            "pairs": batch.pair_mask().sum().item() / 2,
            "samples": float(batch.mask.sum().item()),
        }
