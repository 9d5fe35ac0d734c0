"""Issue 17: each prompt runs once for its K responses (``tokens.pack(share_prompts=True)``).

The shared pass must give the unshared pass's token log-probabilities and gradients to float
tolerance (THEORY.md 8, property 7 is asserted on both paths in test_rollout.py): Llama (RoPE)
and GPT-2 (absolute positions), left-padded prompts of different lengths, responses of
different lengths (one of a single token), full fine-tuning and LoRA.
"""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_model, tiny_tokenizer

from windalign.lm import tokens

K = 3
PROMPTS = [[1, 40, 41, 42, 43, 44, 45, 46], [1, 47], [1, 48, 49, 50]]  # 40..50: prompt-only
RESPONSES = [[10, 11, 12], [13], [14, 15, 16, 17, 2], [18, 19], [20, 21, 22, 23], [24],
             [25, 26, 27, 28, 29, 2], [30, 31], [32, 33, 34]]  # fmt: skip
ROWS = [p for p in PROMPTS for _ in range(K)]


def gpt2(tok):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


MODELS = {"llama": lambda tok: tiny_model(tok, seed=2), "gpt2": gpt2}
LORA_TARGETS = {"llama": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}


def build(kind: str, lora: bool = False):
    tok = tiny_tokenizer()
    model = MODELS[kind](tok)
    if lora:
        from peft import LoraConfig, get_peft_model

        targets = LORA_TARGETS[kind]
        config = LoraConfig(r=4, target_modules=targets, init_lora_weights=False)
        model = get_peft_model(model, config)  # random B: both factors get gradients
    return tok, model


def both(tok):
    return [tokens.pack(ROWS, RESPONSES, tok.pad_token_id, "cpu", share) for share in (False, True)]


@pytest.mark.parametrize("kind", list(MODELS))
def test_shared_token_logprobs_equal_the_unshared_pass(kind):
    tok, model = build(kind)
    model.eval()
    plain, shared = both(tok)
    assert shared["prompt_ids"].shape[0] == len(PROMPTS) and "group" not in plain
    mask = plain["response_mask"]
    with torch.no_grad():
        a = tokens.response_token_logprobs(model, plain, 0.7)[mask]
        b = tokens.response_token_logprobs(model, shared, 0.7)[mask]
    torch.testing.assert_close(b, a, atol=2e-6, rtol=0)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_shared_gradients_equal_the_unshared_ones_and_reach_the_prompt(kind, lora):
    tok, model = build(kind, lora)
    model.train()
    weights = torch.linspace(-1.0, 2.0, len(ROWS), dtype=torch.float64)
    grads = []
    for batch in both(tok):
        model.zero_grad()
        (weights * tokens.sequence_logprobs(model, batch, 1.0)).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, atol=1e-5, rtol=1e-4, msg=name)
    if not lora:  # tokens seen only in prompts move only through the shared keys and values
        embed = model.get_input_embeddings().weight.grad
        assert embed[40:51].abs().sum(-1).min() > 0


def test_each_prompt_runs_once_and_the_responses_on_its_cache(monkeypatch):
    tok, model = build("llama")
    seen = []
    forward = model.forward

    def spy(*args, **kwargs):
        seen.append(tuple(kwargs["input_ids"].shape))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", spy)
    _, shared = both(tok)
    with torch.no_grad():
        tokens.sequence_logprobs(model, shared, 1.0)
    Lp, R = shared["prompt_width"], shared["input_ids"].shape[1] - shared["prompt_width"]
    assert seen == [(len(PROMPTS), Lp), (len(ROWS), R)]  # U prompts, then n responses alone


def test_chunks_that_cut_a_prompts_responses_apart_are_exact():
    """``logprobs_no_grad`` chunks rows without regard to prompts: a chunk may start or end in
    the middle of a prompt's responses, and a prompt may come back after another."""
    tok, model = build("gpt2")
    model.eval()
    rows = ROWS + ROWS[:2]
    responses = RESPONSES + RESPONSES[:2]
    unshared = tokens.logprobs_no_grad(model, rows, responses, 1.0, tok.pad_token_id, 11, False)
    for size in (4, 11):
        shared = tokens.logprobs_no_grad(model, rows, responses, 1.0, tok.pad_token_id, size)
        torch.testing.assert_close(shared, unshared, atol=1e-5, rtol=0)


def test_rows_without_a_repeated_prompt_run_unshared():
    tok = tiny_tokenizer()
    batch = tokens.pack(PROMPTS, RESPONSES[:3], tok.pad_token_id, "cpu", share_prompts=True)
    assert "group" not in batch  # nothing to share: one forward, not two


def train(tiny_dir, tmp_path, **kw):
    from conftest import count_a

    from windalign.llm import WINDConfig, WINDTrainer

    base = dict(
        output_dir=str(tmp_path / "run"), use_cpu=True, max_steps=2, per_device_train_batch_size=2,
        prompts_per_round=4, steps_per_round=2, num_samples=K, max_new_tokens=8,
        learning_rate=1e-2, objective="wind-squared", beta=0.1, save_strategy="no", report_to=[],
        disable_tqdm=True, seed=0,
    )  # fmt: skip
    args = WINDConfig(**{**base, **kw})
    prompts = [f"Write {w} with many a letters." for w in ("one", "two", "three", "four")]
    trainer = WINDTrainer(str(tiny_dir), args=args, preference=count_a, train_dataset=prompts)
    trainer.train()
    return trainer


def test_training_with_shared_prompts_equals_training_without(tiny_dir, tmp_path):
    """Two steps of one round (the reference pass, the old-log-prob pass of the second
    minibatch, two training forwards): the same weights either way."""
    shared = train(tiny_dir, tmp_path / "a")
    plain = train(tiny_dir, tmp_path / "b", share_prompt_cache=False)
    assert shared._share and not plain._share
    for (name, a), b in zip(shared.model.named_parameters(), plain.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)
    moved = train(tiny_dir, tmp_path / "c", learning_rate=0.0).model.parameters()
    assert any(not torch.equal(a, b) for a, b in zip(moved, shared.model.parameters(), strict=True))


def test_gradient_checkpointing_recomputes_the_prompt_per_response(tiny_dir, tmp_path):
    trainer = train(tiny_dir, tmp_path, gradient_checkpointing=True)
    assert not trainer._share  # a recomputed forward would run the shared cache twice
    assert trainer.state.global_step == 2


@pytest.mark.parametrize("kind", list(MODELS))
def test_generate_prefills_each_prompt_once_and_draws_the_same_samples(kind, monkeypatch):
    """``rollout.generate``: the prompt (but its last token) runs once for its K rows, and under
    the same seed the samples are those of generating every row from scratch."""
    from windalign.llm import rollout

    tok, model = build(kind)
    model.eval()
    eos = rollout.eos_token_ids(model, tok)
    config = rollout.sampling_config(eos, tok.pad_token_id, temperature=3.0, max_new_tokens=40)
    drawn = {}
    for share in (False, True):
        torch.manual_seed(3)
        drawn[share] = rollout.generate(model, PROMPTS, K, config, eos, share_prompts=share)
    assert drawn[True] == drawn[False]
    assert len({len(y) for ys in drawn[True][0] for y in ys}) > 1  # rows end apart
    seen = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda **kw: seen.append(kw) or forward(**kw))
    rollout.generate(model, PROMPTS, K, config, eos)
    width = max(map(len, PROMPTS))
    assert tuple(seen[0]["input_ids"].shape) == (len(PROMPTS), width - 1)  # the shared prefill
    assert tuple(seen[1]["input_ids"].shape) == (len(PROMPTS) * K, 1)  # then one token per row
