"""Every registered loss: finite, masked correctly, differentiable, clear errors, documented."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import pytest
import torch

from windalign.objectives import LOSSES, SampleBatch, compute_loss
from windalign.objectives.registry import loss_table

F64 = torch.float64
NAMES = LOSSES.names()


def k_for(name: str) -> int:
    spec = LOSSES[name]
    return spec.max_k or 4


def random_batch(
    B: int, K: int, seed: int, soft: bool = False, dtype: torch.dtype = F64
) -> SampleBatch:
    """Random log-probs and a consistent preference matrix (0/1 or soft) for B prompts."""
    gen = torch.Generator().manual_seed(seed)
    draw = lambda *shape: torch.rand(*shape, generator=gen, dtype=dtype)  # noqa: E731
    upper = draw(B, K, K) if soft else (draw(B, K, K) < 0.5).to(dtype)
    triu = torch.triu(torch.ones(K, K, dtype=torch.bool), 1)
    prefs = torch.where(triu, upper, 1 - upper.transpose(-1, -2))
    prefs = prefs.masked_fill(torch.eye(K, dtype=torch.bool), 0.5)
    return SampleBatch(
        logp=-3 * draw(B, K),
        logp_old=-3 * draw(B, K),
        logp_ref=-3 * draw(B, K),
        prefs=prefs,
    )


def loss_and_grad(name: str, batch: SampleBatch, **hp) -> tuple[torch.Tensor, torch.Tensor]:
    logp = batch.logp.detach().clone().requires_grad_(True)
    out = compute_loss(name, dataclasses.replace(batch, logp=logp), **hp)
    (grad,) = torch.autograd.grad(out.loss, logp)
    return out.loss.detach(), grad


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("soft", "dtype"), [(False, F64), (True, F64), (True, torch.float32)])
def test_every_loss_is_a_finite_scalar_with_finite_stats(name, soft, dtype):
    out = compute_loss(name, random_batch(5, k_for(name), seed=1, soft=soft, dtype=dtype))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss) and out.loss.dtype == dtype
    _, stats = out  # a NamedTuple
    assert {"win_rate_mean", "log_ratio_mean", "log_ratio_std", "kl_ref", "pairs"} <= set(stats)
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values()), stats


@pytest.mark.parametrize("name", NAMES)
def test_gradients_match_finite_differences(name):
    batch = random_batch(3, k_for(name), seed=2, soft=True)
    hp = {k: v * 1.3 for k, v in LOSSES[name].defaults.items()}  # off the defaults
    if "beta" in hp and hp["beta"] == 0:
        hp["beta"] = 0.4

    def loss(logp: torch.Tensor) -> torch.Tensor:
        return compute_loss(name, dataclasses.replace(batch, logp=logp), **hp).loss

    logp = batch.logp.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (logp,), eps=1e-6, atol=1e-7, rtol=1e-5)
    assert torch.autograd.grad(loss(logp), logp)[0].abs().max() > 1e-6  # not a constant


@pytest.mark.parametrize("name", NAMES)
def test_masked_samples_drop_out(name):
    """Garbage (NaN, -inf) at masked samples changes neither the loss nor other gradients."""
    K = k_for(name)
    batch = random_batch(4, K, seed=3)
    mask = torch.ones(4, K, dtype=torch.bool)
    mask[0, K - 1] = False  # prompt 0 keeps K-1 samples (jbond drops the prompt)
    mask[1, 1:] = False  # prompt 1 keeps one sample: contributes nothing
    clean = dataclasses.replace(batch, mask=mask)
    junk = batch.prefs.clone()
    junk[~(mask[:, :, None] & mask[:, None, :])] = float("nan")
    dirty = dataclasses.replace(
        clean,
        logp=batch.logp.masked_fill(~mask, float("nan")),
        logp_old=batch.logp_old.masked_fill(~mask, float("-inf")),
        logp_ref=batch.logp_ref.masked_fill(~mask, 7.0),
        prefs=junk,
    )
    loss_c, grad_c = loss_and_grad(name, clean)
    loss_d, grad_d = loss_and_grad(name, dirty)
    assert torch.isfinite(loss_d) and torch.isfinite(grad_d).all()
    torch.testing.assert_close(loss_d, loss_c, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_d, grad_c, rtol=1e-12, atol=1e-12)
    assert (grad_d[~mask] == 0).all()
    # prompt 1 (a single valid sample) contributes nothing: same loss without it
    keep = torch.tensor([0, 2, 3])
    sub = SampleBatch(
        *(getattr(clean, f)[keep] for f in ("logp", "logp_old", "logp_ref", "prefs", "mask"))
    )
    torch.testing.assert_close(compute_loss(name, sub).loss, loss_c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_one_way_queries_are_completed(name):
    """Querying each pair in one direction only (NaN in the other) gives the same loss."""
    batch = random_batch(4, k_for(name), seed=4, soft=True)
    K = batch.K
    lower = torch.tril(torch.ones(K, K, dtype=torch.bool), -1)
    one_way = dataclasses.replace(batch, prefs=batch.prefs.masked_fill(lower, float("nan")))
    torch.testing.assert_close(
        compute_loss(name, one_way).loss, compute_loss(name, batch).loss, rtol=1e-12, atol=0
    )


@pytest.mark.parametrize("name", NAMES)
def test_extreme_eta_beta_stay_finite(name):
    defaults = LOSSES[name].defaults
    keys = [k for k in ("eta", "beta", "beta_anchor") if k in defaults]
    batch = random_batch(3, k_for(name), seed=5)
    for values in itertools.product([1e-4, 1e4], repeat=len(keys)):
        loss, grad = loss_and_grad(name, batch, **dict(zip(keys, values, strict=True)))
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), (values, loss)


@pytest.mark.parametrize("name", NAMES)
def test_too_few_samples_is_a_clear_error(name):
    spec = LOSSES[name]
    batch = random_batch(2, spec.min_k - 1, seed=6)
    with pytest.raises(ValueError, match=rf"loss '{name}' needs K >= {spec.min_k} .* got K="):
        compute_loss(name, batch)
    full = random_batch(2, k_for(name), seed=6)
    lonely = torch.zeros(2, full.K, dtype=torch.bool)
    lonely[:, 0] = True
    with pytest.raises(ValueError, match="unmasked samples"):
        compute_loss(name, dataclasses.replace(full, mask=lonely))


def test_unknown_hyperparameter_and_loss_are_named():
    batch = random_batch(2, 4, seed=7)
    with pytest.raises(ValueError, match="no hyperparameter 'temperature'"):
        compute_loss("wind-kl", batch, temperature=1.0)
    with pytest.raises(KeyError, match="unknown loss 'wind-foo'"):
        compute_loss("wind-foo", batch)
    with pytest.raises(ValueError, match="exactly K=3"):
        compute_loss("jbond", batch)


def test_sampling_params_are_accepted_but_not_passed():
    batch = random_batch(2, 3, seed=8)
    base = compute_loss("nash-md", batch).loss
    torch.testing.assert_close(compute_loss("nash-md", batch, alpha=0.9).loss, base)
    torch.testing.assert_close(
        compute_loss("jbond", batch, gamma=0.5).loss, compute_loss("jbond", batch).loss
    )


def test_sppo_hard_matches_published_formula():
    """``(s_w - eta/2)^2 + (s_l + eta/2)^2`` with best/worst by SPPO's win-rate estimate."""
    batch, eta = random_batch(6, 5, seed=9), 1.7
    got = compute_loss("sppo-hard", batch, eta=eta, beta=0.0).loss
    terms = []
    for b in range(batch.B):
        o, K = batch.prefs[b].tolist(), batch.K
        w = [(0.5 + sum(o[k][j] for j in range(K) if j != k)) / K for k in range(K)]
        best, worst = w.index(max(w)), w.index(min(w))
        s = (batch.logp[b] - batch.logp_old[b]).tolist()
        if w[best] > w[worst]:
            terms.append((s[best] - eta / 2) ** 2 + (s[worst] + eta / 2) ** 2)
    assert len(terms) >= 4
    assert math.isclose(got.item(), sum(terms) / len(terms), rel_tol=1e-12)


def test_dpo_ipo_match_published_formulas_on_one_pair():
    batch, beta = random_batch(5, 2, seed=10), 0.3
    h = (batch.logp - batch.logp_ref).tolist()
    dpo, ipo = [], []
    for b in range(batch.B):
        win, lose = (0, 1) if batch.prefs[b, 0, 1] == 1 else (1, 0)
        margin = h[b][win] - h[b][lose]
        dpo.append(math.log1p(math.exp(-beta * margin)))
        ipo.append((margin - 1 / (2 * beta)) ** 2)
    got_dpo = compute_loss("dpo", batch, beta=beta).loss.item()
    got_ipo = compute_loss("ipo", batch, beta=beta).loss.item()
    assert math.isclose(got_dpo, sum(dpo) / len(dpo), rel_tol=1e-12)
    assert math.isclose(got_ipo, sum(ipo) / len(ipo), rel_tol=1e-12)


def test_jbond_reward_and_forward_target():
    """Policy sample that loses to both anchors gets ``fail_reward``; forward term picks BoN-2."""
    lp = torch.log(torch.tensor([[0.2, 0.3, 0.5]], dtype=F64))
    prefs = torch.tensor([[[0.5, 0, 0], [1, 0.5, 0], [1, 1, 0.5]]], dtype=F64)
    logp = lp.clone().requires_grad_(True)
    batch = SampleBatch(logp, lp, lp, prefs)
    out = compute_loss("jbond", batch, jeffreys=0.5, beta=0.0, fail_reward=-2.0)
    (grad,) = torch.autograd.grad(out.loss, logp)
    assert out.stats["fail_rate"] == 1.0
    # d/dlogp: sample 0 gets -jeffreys * fail_reward; anchor winner (2) gets -(1 - jeffreys)
    torch.testing.assert_close(grad, torch.tensor([[1.0, 0.0, -0.5]], dtype=F64))


def test_jbond_kl_terms_pull_towards_anchor_and_reference():
    """With ``s_0 != 0`` and ``beta > 0`` the policy sample's gradient is
    ``jeffreys (-r + beta_anchor s_0) + beta (logp_0 - logp_ref_0)``: both KL terms push
    ``logp_0`` back towards the anchor and the reference (a sign flip fails here)."""
    anchor = torch.log(torch.tensor([[0.2, 0.3, 0.5]], dtype=F64))
    ref = torch.log(torch.tensor([[0.1, 0.3, 0.6]], dtype=F64))
    logp = torch.log(torch.tensor([[0.4, 0.2, 0.4]], dtype=F64)).requires_grad_(True)
    prefs = torch.tensor([[[0.5, 1, 0], [0, 0.5, 1], [1, 0, 0.5]]], dtype=F64)  # 0 beats 1: r = 0
    hp = {"jeffreys": 0.5, "beta": 0.3, "beta_anchor": 2.0, "fail_reward": -2.0}
    out = compute_loss("jbond", SampleBatch(logp, anchor, ref, prefs), **hp)
    (grad,) = torch.autograd.grad(out.loss, logp)
    s0 = (logp - anchor)[0, 0].detach()
    kl0 = (logp - ref)[0, 0].detach()
    expected0 = 0.5 * (0.0 + 2.0 * s0) + 0.3 * kl0
    torch.testing.assert_close(grad[0, 0], expected0)
    assert s0 > 0 and kl0 > 0 and grad[0, 0] > 0  # gradient descent lowers logp_0 towards both


def test_docs_table_matches_registry():
    doc = Path(__file__).resolve().parents[2] / "docs" / "objectives.md"
    assert loss_table() in doc.read_text(), (
        "docs/objectives.md is out of date; paste this table:\n" + loss_table()
    )


# -- input checks (issue 10, "Inputs") ----------------------------------------------------------


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 0.0, -1.0])
def test_eta_must_be_finite_and_positive(value):
    batch = random_batch(2, 4, seed=9)
    with pytest.raises(
        ValueError, match=r"hyperparameter eta = .* is invalid; it must be a finite"
    ):
        compute_loss("wind-squared", batch, eta=value)


@pytest.mark.parametrize("value", ["1.0", None, [1.0], True])
def test_hyperparameters_must_be_numbers(value):
    with pytest.raises(ValueError, match=r"hyperparameter eta = .* is invalid"):
        compute_loss("wind-kl", random_batch(2, 4, seed=9), eta=value)


@pytest.mark.parametrize("name", NAMES)
def test_k1_error_names_the_real_settings_not_a_k_option(name):
    spec = LOSSES[name]
    with pytest.raises(ValueError) as err:
        compute_loss(name, random_batch(2, spec.min_k - 1, seed=6))
    message = str(err.value)
    assert "--k" not in message
    assert "train.samples in a bandit config" in message and "num_samples" in message
