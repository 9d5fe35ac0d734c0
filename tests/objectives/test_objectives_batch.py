"""SampleBatch validation and the win-rate estimates every loss builds on."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys

import pytest
import torch

from windalign.objectives import SampleBatch

F64 = torch.float64


def fields(B: int = 2, K: int = 3) -> dict[str, torch.Tensor]:
    lp = torch.log(torch.full((B, K), 1 / K, dtype=F64))
    return {"logp": lp, "logp_old": lp.clone(), "logp_ref": lp.clone(),
            "prefs": torch.full((B, K, K), 0.5, dtype=F64)}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("logp", torch.zeros(3, dtype=F64), r"logp must be a \[B, K\] tensor, got \(3,\)"),
        ("logp_old", torch.zeros(2, 4, dtype=F64),
         r"logp_old has shape \(2, 4\), expected \(2, 3\)"),
        ("prefs", torch.zeros(2, 3, dtype=F64), r"prefs has shape \(2, 3\), expected \(2, 3, 3\)"),
        ("mask", torch.ones(2, 3, dtype=F64), r"mask has dtype torch.float64, expected torch.bool"),
        ("logp_ref", torch.zeros(2, 3),
         r"logp_ref has dtype torch.float32, expected torch.float64"),
        ("weight", torch.ones(3, dtype=F64), r"weight has shape \(3,\), expected \(2,\)"),
        ("win_rates", torch.ones(2, 3, dtype=F64) * 1.5, r"win_rates\[0, 0\] = 1.5 is outside"),
        ("logp_old", torch.zeros(2, 3, dtype=F64).index_fill(1, torch.tensor([2]), -float("inf")),
         r"logp_old is not finite at unmasked sample \(0, 2\)"),
        ("weight", torch.tensor([1.0, -2.0], dtype=F64), r"weight\[1\] = -2.0 must be >= 0"),
        ("win_rates", torch.full((2, 3), float("nan"), dtype=F64), r"win_rates\[0, 0\] = nan"),
        ("prefs", [[0.5]], "prefs must be a torch.Tensor"),
    ],
)  # fmt: skip
def test_validation_names_field_and_shape(field, value, message):
    with pytest.raises(ValueError, match=message):
        SampleBatch(**{**fields(), field: value})


def test_device_mismatch_is_named():
    with pytest.raises(ValueError, match=r"logp_ref is on meta but logp is on cpu; move it"):
        SampleBatch(**{**fields(), "logp_ref": torch.zeros(2, 3, dtype=F64, device="meta")})


def test_prefs_outside_unit_interval_names_the_index():
    prefs = fields()["prefs"].clone()
    prefs[1, 0, 2] = -0.25
    with pytest.raises(ValueError, match=r"prefs\[1, 0, 2\] = -0.25 is outside \[0, 1\]"):
        SampleBatch(**{**fields(), "prefs": prefs})


def test_masked_entries_may_hold_anything():
    f = fields()
    mask = torch.tensor([[True, True, False], [True, True, True]])
    f["logp_old"][0, 2] = -float("inf")
    f["logp"][0, 2] = float("nan")
    batch = SampleBatch(**f, mask=mask)
    assert (batch.B, batch.K) == (2, 3)
    assert torch.isfinite(batch.log_ratio()).all() and torch.isfinite(batch.ref_log_ratio()).all()
    assert not batch.pair_mask()[0, 2].any() and not batch.pair_mask()[0, :, 2].any()


def test_default_mask_is_all_true():
    assert SampleBatch(**fields()).mask.all()


def test_leave_one_out_win_rate_is_unbiased():
    """``E[w_k | y_k = y] = (P pi)(y)`` under exact enumeration of K i.i.d. samples."""
    gen = torch.Generator().manual_seed(0)
    n, K = 3, 4
    a = torch.randn(n, n, generator=gen, dtype=F64)
    P = torch.sigmoid(a - a.T)
    pi = torch.softmax(torch.randn(n, generator=gen, dtype=F64), -1)
    idx = torch.tensor(list(itertools.product(range(n), repeat=K)))
    prob = pi[idx].prod(-1)
    lp = torch.log(pi[idx])
    batch = SampleBatch(lp, lp, lp, P[idx[:, :, None], idx[:, None, :]])
    w, valid = batch.win_rate_estimates()
    assert valid.all()
    for y in range(n):
        hit = idx[:, 0] == y
        cond = (prob[hit] * w[hit, 0]).sum() / prob[hit].sum()
        torch.testing.assert_close(cond, (P @ pi)[y], rtol=1e-12, atol=1e-12)
    # SPPO's self-pair version is shrunk towards 1/2 by exactly (K - 1) / K
    w_self, _ = batch.win_rate_estimates(self_pair=True)
    torch.testing.assert_close(w_self - 0.5, (w - 0.5) * (K - 1) / K)


def test_explicit_win_rates_override_prefs():
    f = fields()
    w = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.4]], dtype=F64)
    batch = dataclasses.replace(SampleBatch(**f), win_rates=w)
    torch.testing.assert_close(batch.win_rate_estimates()[0], w)


def test_objectives_never_import_transformers():
    code = "import sys, windalign.objectives; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- input checks (issue 10, "Inputs") ----------------------------------------------------------


@pytest.mark.parametrize(("B", "K"), [(0, 3), (2, 0), (0, 0)])
def test_empty_batches_are_refused(B, K):
    lp = torch.zeros(B, K, dtype=F64)
    with pytest.raises(ValueError, match=r"needs at least one prompt \(B\) and one sample"):
        SampleBatch(lp, lp, lp, torch.zeros(B, K, K, dtype=F64))


@pytest.mark.parametrize("name", ["logp", "logp_old", "logp_ref"])
def test_positive_log_probabilities_are_refused(name):
    f = fields()
    f[name] = f[name].clone()
    f[name][1, 2] = 0.7  # a probability (or a logit), not a log-probability
    with pytest.raises(ValueError, match=rf"SampleBatch.{name}\[1, 2\] = 0.7 is positive"):
        SampleBatch(**f)
    f[name][1, 2] = 1e-7  # rounding of a log-prob that is 0 in exact arithmetic is accepted
    SampleBatch(**f)
    mask = torch.ones(2, 3, dtype=torch.bool)
    mask[1, 2] = False
    f[name][1, 2] = 5.0  # masked samples may hold anything
    SampleBatch(**f, mask=mask)


def test_contradictory_preferences_are_refused():
    f = fields()
    f["prefs"] = f["prefs"].clone()
    f["prefs"][0, 0, 1] = f["prefs"][0, 1, 0] = 1.0  # both "0 beats 1" and "1 beats 0"
    with pytest.raises(ValueError, match=r"prefs\[0, 0, 1\] = 1 and prefs\[0, 1, 0\] = 1 contra"):
        SampleBatch(**f)
    f["prefs"][0, 1, 0] = float("nan")  # one direction only: completed, accepted
    SampleBatch(**f)
    f["prefs"][0, 1, 0] = 0.0
    SampleBatch(**f)
