"""THEORY.md 8, "Precision", and property 8 in every precision regime a GPU user picks.

``bf16: true`` (fp32 weights under bf16 autocast), ``dtype: bfloat16`` (bf16 weights), both, and
fp32: every model that enters a log-ratio (the policy, the reference, the evaluation baseline)
runs in the same regime, so a policy equal to its reference logs a KL of exactly 0 and
``logp - logp_old`` is exactly 0 before the first update. J-BOND's anchor accumulates in fp32.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import count_a
from tiny import tiny_model, tiny_tokenizer

from windalign.llm import WINDConfig, WINDTrainer
from windalign.llm.state import EMAAnchor

PROMPTS = ["Say hi.", "Name a fruit.", "Count to three.", "Write a word."]
REGIMES = {
    "fp32": {},
    "bf16-autocast": {"bf16": True},
    "bf16-weights": {"dtype": "bfloat16"},
    "bf16-weights-and-autocast": {"dtype": "bfloat16", "bf16": True},
}


def lm_head_dtypes(model: torch.nn.Module, seen: list) -> None:
    """Record the dtype of every logits tensor the model's LM head produces."""
    model.get_output_embeddings().register_forward_hook(lambda m, i, out: seen.append(out.dtype))


@pytest.mark.parametrize("regime", REGIMES)
def test_property_8_holds_exactly_in_every_precision_regime(tiny_dir, tmp_path, regime):
    """Learning rate 0: the policy stays equal to its reference (the initial model). The round's
    reference pass and the training forward see the same rows (one micro-batch per generation
    batch), so their log-probabilities agree bit for bit when they run in the same regime; the
    periodic evaluation against the initial model logs a KL of exactly 0."""
    args = WINDConfig(
        output_dir=str(tmp_path / "run"), use_cpu=True, max_steps=2, learning_rate=0.0,
        per_device_train_batch_size=2, generation_batch_size=2, num_samples=3, max_new_tokens=6,
        objective="wind-squared", beta=0.1, eval_strategy="steps", eval_steps=1,
        eval_on_start=True, eval_samples=2, save_strategy="no", disable_tqdm=True, report_to=[],
        **REGIMES[regime],
    )  # fmt: skip
    tr = WINDTrainer(
        str(tiny_dir), args=args, preference=count_a, train_dataset=PROMPTS,
        eval_dataset=PROMPTS[:3],
    )  # fmt: skip
    seen = {"policy": [], "reference": []}
    lm_head_dtypes(tr.model, seen["policy"])
    lm_head_dtypes(tr.ref_model, seen["reference"])
    tr.train()
    low = bool(REGIMES[regime])
    for name, dtypes in seen.items():  # the regime really applied, to both models, every pass
        assert dtypes and set(dtypes) == {torch.bfloat16 if low else torch.float32}, name
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval_kl" in r]
    assert len(train) == 2 and len(evals) == 3
    for r in train:
        assert r["objective/kl_ref"] == 0, (regime, r["step"], r["objective/kl_ref"])
        assert r["objective/log_ratio_mean"] == 0 and r["objective/log_ratio_std"] == 0
    for r in evals:
        assert r["eval_kl"] == 0, (regime, r["step"], r["eval_kl"])


def test_the_jbond_anchor_is_the_exact_fp32_ema_of_bf16_weights():
    """100 steps of ``a <- 0.98 a + 0.02 theta`` on a bf16 model: the anchor equals the EMA
    computed in float64 to float32 precision (a bf16 shadow loses most of each step), runs as
    the model inside ``swapped()`` and gives the bf16 weights back exactly."""
    torch.manual_seed(0)
    model = tiny_model(tiny_tokenizer()).to(torch.bfloat16)
    params = [p for p in model.parameters() if p.requires_grad]
    anchor = EMAAnchor(model)
    exact = [p.detach().double().clone() for p in params]
    for _ in range(100):
        with torch.no_grad():
            for p in params:  # an optimizer-like step of about 1% of the weights' scale
                p.add_(0.01 * p.abs().mean() * torch.randn_like(p))
        anchor.update(0.02)
        exact = [0.98 * e + 0.02 * p.detach().double() for e, p in zip(exact, params, strict=True)]
    worst = max(
        ((a.double() - e).abs().max() / e.abs().max()).item()
        for a, e in zip(anchor.shadow, exact, strict=True)
    )
    assert worst < 1e-5, worst
    now = [p.detach().clone() for p in params]
    with anchor.swapped():
        for p, e in zip(params, exact, strict=True):
            assert p.dtype == torch.bfloat16
            torch.testing.assert_close(p, e.to(torch.bfloat16), rtol=0, atol=0)
    assert all(torch.equal(p, n) for p, n in zip(params, now, strict=True))
