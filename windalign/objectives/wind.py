"""Sample-based WIND losses: squared, kl, nce (THEORY.md section 5).

All three move ``pi_theta`` towards the exact proximal WIND step

    pi_{t+1}(y) = pi_t(y) exp(g_t(y)) / Z_t,
    g_t(y) = [eta beta (log pi_ref(y) - log pi_t(y)) + eta w_t(y)] / (1 + eta beta),

using only K i.i.d. samples of the frozen sampler ``pi_t`` per prompt (``sampling="policy"``:
``logp_old = log pi_t``) and their preference matrix. Write ``c = eta / (1 + eta beta)``,
``lam = eta beta / (1 + eta beta)``, so ``g = lam (logp_ref - logp_old) + c w``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from windalign.objectives.batch import (
    LossOutput,
    SampleBatch,
    pair_differences,
    pair_mean,
    prompt_mean,
    sample_stats,
)


def step_coefficients(eta: float, beta: float) -> tuple[float, float]:
    """``(c, lam) = (eta / (1 + eta beta), eta beta / (1 + eta beta))`` of the WIND step.

    Computed without overflow for any ``eta, beta >= 0`` (THEORY.md section 4, exact WIND).

    >>> step_coefficients(1.0, 1.0)
    (0.5, 0.5)
    >>> step_coefficients(1e4, 1e4)
    (0.0001, 1.0)
    """
    if not (eta > 0 and beta >= 0):
        raise ValueError(f"need eta > 0 and beta >= 0, got eta={eta}, beta={beta}")
    eb = eta * beta
    return eta / (1 + eb), eb / (1 + eb)


def _masked_log_softmax(x: Tensor, valid: Tensor) -> Tensor:
    """``log softmax`` over the valid entries of the last axis; 0 at invalid entries.

    Rows with no valid entry return zeros (no NaN, no NaN gradient).
    """
    any_valid = valid.any(-1, keepdim=True)
    x = x.masked_fill(~valid & any_valid, float("-inf")).masked_fill(~any_valid, 0)
    return torch.log_softmax(x, dim=-1).masked_fill(~valid, 0)


def wind_log_weights(batch: SampleBatch, eta: float, beta: float) -> tuple[Tensor, Tensor]:
    """Self-normalized log-weights ``log u_k = log softmax_k g_t(y_k)`` over valid samples.

    ``g_t(y_k) = lam (logp_ref - logp_old) + c w_k`` with ``w_k`` the leave-one-out win rate
    estimate (or ``batch.win_rates`` when given). Returns ``(log_u [B, K], valid [B, K])``; a
    sample is valid when present and it has a win rate. ``u`` is ``pi_{t+1} / pi_t`` up to
    normalization, i.e. importance weights from ``pi_t`` to ``pi_{t+1}`` (THEORY.md section 5).

    >>> lp = torch.log(torch.full((1, 2), 0.5, dtype=torch.float64))
    >>> b = SampleBatch(lp, lp, lp, torch.tensor([[[0.5, 1.0], [0.0, 0.5]]], dtype=torch.float64))
    >>> log_u, valid = wind_log_weights(b, eta=2.0, beta=0.0)
    >>> log_u.exp()  # softmax(2 * [1, 0])
    tensor([[0.8808, 0.1192]], dtype=torch.float64)
    """
    c, lam = step_coefficients(eta, beta)
    w, valid = batch.win_rate_estimates()
    g = lam * batch.ref_log_ratio() + c * w
    return _masked_log_softmax(g.detach(), valid), valid


def _weighted_loss(batch: SampleBatch, eta: float, beta: float, nce: bool) -> LossOutput:
    """Shared body of the kl and nce losses: ``-sum_k u_k log q_k`` per prompt."""
    log_u, valid = wind_log_weights(batch, eta, beta)
    u = log_u.exp().masked_fill(~valid, 0)
    log_q = _masked_log_softmax(batch.log_ratio(), valid) if nce else batch.logp
    per_prompt = -(u * log_q.masked_fill(~valid, 0)).sum(-1)
    contributes = valid.sum(-1) >= 2
    stats = sample_stats(batch, *batch.win_rate_estimates(), sampled=batch.mask)
    entropy = -(u * log_u).sum(-1)[contributes]
    stats["weight_entropy"] = entropy.mean().item() if entropy.numel() else float("nan")
    return LossOutput(prompt_mean(per_prompt, contributes, batch), stats)


def wind_squared(batch: SampleBatch, eta: float, beta: float) -> LossOutput:
    """WIND squared loss: pairwise regression of log-ratio differences on preferences.

    ``L = mean_{i != j} ((f_i - f_j) - c (o_ij - 1/2))^2`` per prompt, ``f = s - lam (logp_ref -
    logp_old)``, ``s = logp - logp_old``, over valid pairs ``[B, K, K]`` (one-way queries are
    completed, NaN pairs skipped); prompts with no valid pair contribute nothing. Population
    minimizer: exactly ``pi_{t+1}`` with 0/1 labels (THEORY.md section 5; derivation in
    docs/objectives.md). Sampling ``"policy"``: K i.i.d. samples from ``pi_t``.

    >>> lp = torch.log(torch.full((1, 2), 0.5, dtype=torch.float64))
    >>> b = SampleBatch(lp, lp, lp, torch.tensor([[[0.5, 1.0], [0.0, 0.5]]], dtype=torch.float64))
    >>> wind_squared(b, eta=2.0, beta=0.0).loss  # (0 - 2 * 0.5)^2
    tensor(1., dtype=torch.float64)
    """
    c, lam = step_coefficients(eta, beta)
    f = batch.log_ratio() - lam * batch.ref_log_ratio()
    diff, prefs, pairs = pair_differences(batch, f)
    per_prompt, contributes = pair_mean((diff - c * (prefs - 0.5)) ** 2, pairs)
    stats = sample_stats(batch, *batch.win_rate_estimates(), sampled=batch.mask)
    return LossOutput(prompt_mean(per_prompt, contributes, batch), stats)


def wind_kl(batch: SampleBatch, eta: float, beta: float) -> LossOutput:
    """WIND kl loss: weighted likelihood, forward ``KL(pi_{t+1} || pi_theta)``.

    ``L = -sum_k u_k logp_k`` per prompt with ``u = softmax_k g_t(y_k)`` over the valid samples
    (:func:`wind_log_weights`); needs K >= 2 valid samples per prompt. Consistent as K grows
    (self-normalized importance weights); biased at small K. Sampling ``"policy"``.
    Stats add ``weight_entropy`` (mean entropy of ``u``; ``log K`` = uniform weights).

    >>> lp = torch.log(torch.full((1, 2), 0.5, dtype=torch.float64))
    >>> b = SampleBatch(lp, lp, lp, torch.tensor([[[0.5, 1.0], [0.0, 0.5]]], dtype=torch.float64))
    >>> wind_kl(b, eta=2.0, beta=0.0).loss  # -(0.88 + 0.12) log 0.5
    tensor(0.6931, dtype=torch.float64)
    """
    return _weighted_loss(batch, eta, beta, nce=False)


def wind_nce(batch: SampleBatch, eta: float, beta: float) -> LossOutput:
    """WIND nce loss: ranking NCE of the model's softmax over the K candidates against ``u``.

    ``L = -sum_k u_k log softmax_k(s_k)``, ``s = logp - logp_old``, ``u`` as in :func:`wind_kl`.
    Normalizer-free; each K-tuple's loss is minimized by ``s = g_t + const``, so with exact win
    rates (``batch.win_rates``) the population minimizer is ``pi_{t+1}`` for any K >= 2.
    Sampling ``"policy"``. Stats add ``weight_entropy``.

    >>> lp = torch.log(torch.full((1, 2), 0.5, dtype=torch.float64))
    >>> b = SampleBatch(lp, lp, lp, torch.tensor([[[0.5, 1.0], [0.0, 0.5]]], dtype=torch.float64))
    >>> round(wind_nce(b, eta=2.0, beta=0.0).loss.item(), 4)  # log 2: s = 0 is uniform
    0.6931
    """
    return _weighted_loss(batch, eta, beta, nce=True)
