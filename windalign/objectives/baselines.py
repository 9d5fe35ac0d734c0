"""Baseline objectives on the same SampleBatch: SPPO, J-BOND, Nash-MD, online DPO / IPO, and
sampled iterated Best-of-N distillation (Best-of-2 from pairs, Best-of-K from all K samples).

THEORY.md section 5 ("Baselines on the same sample interface"). Notation as in
:mod:`windalign.objectives.wind`: ``s = logp - logp_old``, ``c = eta / (1 + eta beta)``,
``lam = eta beta / (1 + eta beta)``. Every loss here is an ordinary differentiable function of
``logp`` (no stop-gradient tricks), so its gradient is checked against finite differences.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from windalign.objectives.batch import (
    LossOutput,
    SampleBatch,
    pair_differences,
    pair_mean,
    prompt_mean,
    sample_stats,
)
from windalign.objectives.wind import step_coefficients


def _doc_batch() -> SampleBatch:
    """A 1-prompt, 3-sample batch used by the doctests (sample 0 beats both others)."""
    lp = torch.log(torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64))
    prefs = torch.tensor([[[0.5, 1, 1], [0, 0.5, 1], [0, 0, 0.5]]], dtype=torch.float64)
    return SampleBatch(lp, lp, lp, prefs)


def _first_sample(batch: SampleBatch, value: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Per-prompt ``value [B]`` and ``valid [B]`` placed in column 0 of ``[B, K]`` tensors."""
    out = torch.full_like(batch.logp_old, 0.5)
    out[:, 0] = value.detach()
    mask = torch.zeros_like(batch.mask)
    mask[:, 0] = valid
    return out, mask


def _sppo_target(batch: SampleBatch, eta: float, beta: float) -> tuple[Tensor, Tensor, Tensor]:
    """SPPO's regression target ``h = lam (logp_ref - logp_old) + c (w_hat - 1/2)``.

    ``w_hat`` counts the self-pair as 1/2. Returns ``(h [B, K], w_hat [B, K], valid [B, K])``.
    """
    c, lam = step_coefficients(eta, beta)
    w, valid = batch.win_rate_estimates(self_pair=True)
    return lam * batch.ref_log_ratio() + c * (w - 0.5), w, valid


def sppo(batch: SampleBatch, eta: float, beta: float) -> LossOutput:
    """SPPO (soft): regress each log-ratio on its win rate, assuming ``log Z_t = c / 2``.

    ``L = mean_k (s_k - lam (logp_ref_k - logp_old_k) - c (w_hat_k - 1/2))^2`` per prompt, with
    ``w_hat_k = (1/2 + sum_{j != k} o_kj) / K`` (self-pair counts 1/2) or ``batch.win_rates``.
    With ``beta = 0`` (default) this is the published ``(s - eta (w_hat - 1/2))^2``; ``beta > 0``
    targets the WIND step's shape. Unlike ``wind-squared`` its minimizer is not ``pi_{t+1}``
    unless ``log Z_t = c / 2`` (THEORY.md section 5). Sampling ``"policy"``.

    >>> sppo(_doc_batch(), eta=1.0, beta=0.0).loss  # w_hat = [5/6, 1/2, 1/6]: mean of 2 (1/3)^2
    tensor(0.0741, dtype=torch.float64)
    """
    h, w, valid = _sppo_target(batch, eta, beta)
    sq = torch.where(valid, batch.log_ratio() - h, 0) ** 2
    count = valid.sum(-1)
    per_prompt = sq.sum(-1) / count.clamp(min=1)
    stats = sample_stats(batch, w, valid, sampled=batch.mask)
    return LossOutput(prompt_mean(per_prompt, count > 0, batch), stats)


def sppo_hard(batch: SampleBatch, eta: float, beta: float) -> LossOutput:
    """SPPO (hard): push the best sample's log-ratio to ``+c/2`` and the worst's to ``-c/2``.

    Per prompt, ``b = argmax_k w_hat_k``, ``l = argmin_k w_hat_k`` (first index on ties):
    ``L = (s_b - lam r_b - c/2)^2 + (s_l - lam r_l + c/2)^2`` with ``r = logp_ref - logp_old``;
    with ``beta = 0`` this is the published ``(s_w - eta/2)^2 + (s_l + eta/2)^2``. Prompts where
    all valid samples tie contribute nothing. Sampling ``"policy"``.

    >>> sppo_hard(_doc_batch(), eta=1.0, beta=0.0).loss  # (0 - 1/2)^2 + (0 + 1/2)^2
    tensor(0.5000, dtype=torch.float64)
    """
    h, w, valid = _sppo_target(batch, eta, beta)
    c, _ = step_coefficients(eta, beta)
    best = w.masked_fill(~valid, float("-inf")).argmax(-1, keepdim=True)
    worst = w.masked_fill(~valid, float("inf")).argmin(-1, keepdim=True)
    resid = batch.log_ratio() - (h - c * (w - 0.5))  # s - lam r
    pick = lambda t, i: t.gather(-1, i).squeeze(-1)  # noqa: E731
    per_prompt = (pick(resid, best) - c / 2) ** 2 + (pick(resid, worst) + c / 2) ** 2
    contributes = (valid.sum(-1) >= 2) & (pick(w, best) > pick(w, worst))
    stats = sample_stats(batch, w, valid, sampled=batch.mask)
    return LossOutput(prompt_mean(per_prompt, contributes, batch), stats)


def jbond(
    batch: SampleBatch, beta_anchor: float, fail_reward: float, jeffreys: float, beta: float
) -> LossOutput:
    """J-BOND: Jeffreys-mixed distillation of Best-of-2 of the EMA anchor, with a KL pull.

    Sampling ``"jbond"`` (K = 3): sample 0 from the current policy, samples 1, 2 from the anchor
    ``pi_a``; ``logp_old = log pi_a``. With ``o`` the preferences, per prompt:

    * forward (likelihood of the anchor's Best-of-2): ``-(o_12 logp_1 + o_21 logp_2)``;
    * backward (policy gradient of ``E_pi[r] - beta_anchor KL(pi || pi_a)``):
      ``-r logp_0 + beta_anchor s_0^2 / 2``, reward ``r = fail_reward * (1 - o_01)(1 - o_02)``
      (0 if sample 0 beats at least one anchor sample);
    * KL pull to the reference: ``beta (logp_0 - logp_ref_0)^2 / 2``.

    ``L = (1 - jeffreys) forward + jeffreys backward + KL pull``. The squared log-ratio terms
    have per-sample gradients ``s_0 grad logp_0``: the on-policy score-function gradients of
    the KL terms, written as plain functions. Prompts missing a sample or a pair are skipped.

    >>> out = jbond(_doc_batch(), beta_anchor=1.0, fail_reward=-2.77, jeffreys=0.5, beta=0.1)
    >>> out.loss  # forward only: 0.5 * -log(0.25)
    tensor(0.6931, dtype=torch.float64)
    >>> out.stats["fail_rate"]
    0.0
    """
    if batch.K != 3:
        raise ValueError(
            f"jbond needs exactly K=3 samples per prompt (1 policy + 2 anchor), got K={batch.K}"
        )
    _, o, pairs = pair_differences(batch, batch.logp)
    logp, s = batch.logp.masked_fill(~batch.mask, 0), batch.log_ratio()
    fail = (1 - o[:, 0, 1]) * (1 - o[:, 0, 2])
    forward = -(o[:, 1, 2] * logp[:, 1] + o[:, 2, 1] * logp[:, 2])
    backward = -fail_reward * fail * logp[:, 0] + beta_anchor * s[:, 0] ** 2 / 2
    pull = beta * (logp[:, 0] - batch.logp_ref.masked_fill(~batch.mask, 0)[:, 0]) ** 2 / 2
    per_prompt = (1 - jeffreys) * forward + jeffreys * backward + pull
    contributes = pairs[:, 0, 1] & pairs[:, 0, 2] & pairs[:, 1, 2]
    w, valid = _first_sample(batch, (o[:, 0, 1] + o[:, 0, 2]) / 2, contributes)
    anchor = batch.mask.clone()
    anchor[:, 0] = False
    stats = sample_stats(batch, w, valid, sampled=anchor)
    stats["fail_rate"] = fail[contributes].mean().item() if contributes.any() else float("nan")
    return LossOutput(prompt_mean(per_prompt, contributes, batch), stats)


def nash_md(batch: SampleBatch, eta: float, beta: float) -> LossOutput:
    """Nash-MD: importance-sampled proximal step against the geometric mixture ``pi_t^mix``.

    Sampling ``"nash-md"``: sample 0 from ``pi_t``, samples 1..K-1 from ``pi_t^mix``;
    ``logp_old = log pi_t``. ``w = mean_{j >= 1} o_0j`` estimates ``P(y_0 > pi_t^mix)`` (or
    ``batch.win_rates[:, 0]``). With ``rho = exp(s_0)``,

    ``L = -rho (c (w - 1/2) - lam (logp_0 - logp_ref_0) - (1 - lam) s_0 + 1)``

    is, in expectation over ``y_0 ~ pi_t``, ``-(1/(1+eta beta))`` times the proximal objective
    ``eta E_pi[w] - eta beta KL(pi||pi_ref) - KL(pi||pi_t)`` up to a constant (the ``+1`` is a
    zero-mean control variate), so its minimizer is
    ``pi_{t+1} ∝ pi_t^(1-c beta) pi_ref^(c beta) exp(c P pi_t^mix)``: THEORY.md section 4's
    Nash-MD step with step ``c``. ``alpha`` is used by the runner only.

    >>> out = nash_md(_doc_batch(), eta=1.0, beta=0.0)
    >>> out.loss, out.stats["win_rate_mean"]  # -(1 * (1 - 1/2) + 1)
    (tensor(-1.5000, dtype=torch.float64), 1.0)
    """
    c, lam = step_coefficients(eta, beta)
    _, o, pairs = pair_differences(batch, batch.logp)
    vs_mix = pairs[:, 0, 1:]
    w = torch.where(vs_mix, o[:, 0, 1:], 0).sum(-1) / vs_mix.sum(-1).clamp(min=1)
    contributes = vs_mix.any(-1)
    if batch.win_rates is not None:
        w, contributes = batch.win_rates[:, 0], batch.mask[:, 0]
    s0 = batch.log_ratio()[:, 0]
    kl0 = (s0 - batch.ref_log_ratio()[:, 0]).masked_fill(~batch.mask[:, 0], 0)
    per_prompt = -torch.exp(s0) * (c * (w - 0.5) - lam * kl0 - (1 - lam) * s0 + 1)
    w, first = _first_sample(batch, w, contributes)
    stats = sample_stats(batch, w, first, sampled=first)
    return LossOutput(prompt_mean(per_prompt, contributes, batch), stats)


def _preference_pairs(
    batch: SampleBatch, beta: float
) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
    """``(h_ij, o_ij, pairs, stats)`` with implicit reward margins ``h = logp - logp_ref``.

    Stats add ``margin``: mean ``h_ij`` over pairs with ``o_ij > 1/2`` (chosen minus rejected).
    """
    if not beta > 0:
        raise ValueError(f"need beta > 0, got beta={beta}")
    h = batch.logp.masked_fill(~batch.mask, 0) - batch.logp_ref.masked_fill(~batch.mask, 0)
    diff, o, pairs = pair_differences(batch, h)
    stats = sample_stats(batch, *batch.win_rate_estimates(), sampled=batch.mask)
    won = pairs & (o > 0.5)
    stats["margin"] = diff.detach()[won].mean().item() if won.any() else float("nan")
    return diff, o, pairs, stats


def dpo(batch: SampleBatch, beta: float) -> LossOutput:
    """Online DPO on every queried pair of samples, with soft labels.

    ``L = mean_{i != j} -[o_ij log sigmoid(beta h_ij) + (1 - o_ij) log sigmoid(-beta h_ij)]``,
    ``h_ij = (logp_i - logp_ref_i) - (logp_j - logp_ref_j)``; with a 0/1 label this is DPO on
    (chosen, rejected). ``logp_ref`` is DPO's reference. Sampling ``"policy"``.

    >>> dpo(_doc_batch(), beta=0.1).loss  # h = 0: log 2
    tensor(0.6931, dtype=torch.float64)
    """
    h, o, pairs, stats = _preference_pairs(batch, beta)
    nll = -(o * F.logsigmoid(beta * h) + (1 - o) * F.logsigmoid(-beta * h))
    per_prompt, contributes = pair_mean(nll, pairs)
    return LossOutput(prompt_mean(per_prompt, contributes, batch), stats)


def ipo(batch: SampleBatch, beta: float) -> LossOutput:
    """Online IPO on every queried pair: ``L = mean_{i != j} (h_ij - (o_ij - 1/2) / beta)^2``.

    With a 0/1 label this is IPO's ``(h_w - h_l - 1/(2 beta))^2``; ``h`` as in :func:`dpo`.
    Sampling ``"policy"``.

    >>> ipo(_doc_batch(), beta=0.5).loss  # (0 - 1)^2
    tensor(1., dtype=torch.float64)
    """
    h, o, pairs, stats = _preference_pairs(batch, beta)
    per_prompt, contributes = pair_mean((h - (o - 0.5) / beta) ** 2, pairs)
    return LossOutput(prompt_mean(per_prompt, contributes, batch), stats)


def bon_distill(batch: SampleBatch) -> LossOutput:
    """Sampled Best-of-2 distillation: likelihood of the winner of every queried pair.

    The Best-of-2 variant of iterated Best-of-N (:func:`bok_distill` is Best-of-K).

    ``L = -(1 / n_pairs) sum_{i != j queried} o_ij log pi_theta(y_i)`` per prompt (each
    unordered pair contributes its winner, or with soft labels its expectation). With samples
    i.i.d. from ``pi_t`` its population minimizer is ``Bo2(pi_t) = 2 pi_t w_t`` (THEORY.md 2), so
    iterating it is sampled iterated Best-of-N; with K = 2 it is one duel per prompt.
    ``logp [B, K]``; ``logp_old`` and ``logp_ref`` are not used. Sampling ``"policy"``.

    >>> round(bon_distill(_doc_batch()).loss.item(), 4)  # winners 0, 0, 1: (2 log 2 + log 4) / 3
    0.9242
    """
    o = batch.completed_prefs()
    valid = ~torch.isnan(o)
    n_pairs = valid.sum((-1, -2)) / 2
    logp = batch.logp.masked_fill(~batch.mask, 0)
    per_prompt = -(torch.where(valid, o, 0) * logp[:, :, None]).sum((-1, -2)) / n_pairs.clamp(1)
    stats = sample_stats(batch, *batch.win_rate_estimates(), sampled=batch.mask)
    return LossOutput(prompt_mean(per_prompt, n_pairs > 0, batch), stats)


def bok_distill(batch: SampleBatch) -> LossOutput:
    """Sampled Best-of-K distillation: likelihood of the winner among all K samples of a prompt.

    The winner is the sample with the highest estimated win rate against the others,
    ``k* = argmax_k w_hat_k`` with ``w_hat_k = mean_{j != k} o_kj`` (ties share the weight
    equally); ``L = -log pi_theta(y_k*)`` per prompt. When the oracle ranks by a reward ``r``
    (0/1 labels ``1[r_k > r_j]``, or Bradley-Terry ``sigmoid(r_k - r_j)``: both increasing in
    ``r_k``), the winner is the sample of highest reward, so with samples i.i.d. from ``pi_t``
    the population minimizer is reward Best-of-K, ``BoK(pi_t)(y) = pi_t(y) / pi_t(r(y)) (F^K -
    F_^K)`` with ``F``, ``F_`` the mass of rewards at most and strictly below ``r(y)`` and
    ``pi_t(r(y))`` the mass of ``y``'s reward level (THEORY.md 2): iterating it is sampled
    iterated Best-of-K. Under a non-transitive
    oracle the winner is the K samples' Borda winner. ``logp [B, K]``; ``logp_old`` and
    ``logp_ref`` are not used. Sampling ``"policy"`` (every pair queried).

    >>> round(bok_distill(_doc_batch()).loss.item(), 4)  # sample 0 wins both: -log 0.5
    0.6931
    """
    w, valid = batch.win_rate_estimates()
    score = w.masked_fill(~valid, -torch.inf)
    best = score.max(-1, keepdim=True).values
    winner = (score == best) & valid
    weight = winner / winner.sum(-1, keepdim=True).clamp(min=1)
    logp = batch.logp.masked_fill(~batch.mask, 0)
    per_prompt = -(weight * logp).sum(-1)
    stats = sample_stats(batch, w, valid, sampled=batch.mask)
    return LossOutput(prompt_mean(per_prompt, valid.any(-1), batch), stats)
