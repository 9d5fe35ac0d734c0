"""THEORY.md 8, property 7: sequence log-probabilities, the sampler, EOS handling, the mixture."""

from __future__ import annotations

import pytest
import torch
from tiny import tiny_model, tiny_tokenizer

from windalign.llm import rollout
from windalign.llm.data import encode_prompts
from windalign.lm import tokens


@pytest.fixture(scope="module")
def lm():
    tok = tiny_tokenizer()
    return tok, tiny_model(tok, seed=1).eval()


def token_by_token(model, prompt: list[int], response: list[int], tau: float = 1.0) -> float:
    """Independent reference: one unpadded forward per response token."""
    total = 0.0
    with torch.no_grad():
        for t, token in enumerate(response):
            logits = model(input_ids=torch.tensor([prompt + response[:t]])).logits[0, -1]
            total += torch.log_softmax(logits.double() / tau, -1)[token].item()
    return total


def sample(lm, prompts: list[str], k: int = 2, tau: float = 1.0, max_new: int = 10):
    tok, model = lm
    ids = encode_prompts(tok, prompts, 200)
    eos = rollout.eos_token_ids(model, tok)
    torch.manual_seed(0)
    config = rollout.sampling_config(eos, tok.pad_token_id, temperature=tau, max_new_tokens=max_new)
    responses, truncated = rollout.generate(model, ids, k, config, eos)
    return ids, responses, truncated, eos


@pytest.mark.parametrize("tau", [1.0, 0.7])
def test_sequence_logprobs_equal_token_by_token_and_ignore_batch_company(lm, tau):
    tok, model = lm
    ids, responses, _, eos = sample(lm, ["Hi.", "Name a fruit with a long name."], tau=tau)
    # End one response with EOS by hand so the EOS token is counted.
    responses[0][0] = [*responses[0][0][:3], eos[0]]
    prompts = [p for p in ids for _ in range(2)]
    flat = [r for rs in responses for r in rs]
    batched = tokens.logprobs_no_grad(model, prompts, flat, tau, tok.pad_token_id, 4)
    alone = tokens.logprobs_no_grad(model, prompts, flat, tau, tok.pad_token_id, 1)
    # a different company: padded next to a much longer prompt and response
    long_p, long_r = ids[1] + ids[1], flat[-1] * 3
    mixed = tokens.logprobs_no_grad(
        model, [long_p, prompts[0]], [long_r, flat[0]], tau, tok.pad_token_id, 2
    )
    for i, (p, r) in enumerate(zip(prompts, flat, strict=True)):
        assert batched[i].item() == pytest.approx(token_by_token(model, p, r, tau), abs=1e-5)
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)
    assert mixed[1].item() == pytest.approx(batched[0].item(), abs=1e-5)
    # the EOS token counts: dropping it changes the value by exactly its log-probability
    without = tokens.logprobs_no_grad(model, [prompts[0]], [flat[0][:-1]], tau, 0, 1)
    assert without.item() != pytest.approx(batched[0].item(), abs=1e-6)


def test_logprobs_use_only_response_positions_of_the_lm_head(lm, monkeypatch):
    tok, model = lm
    ids, responses, _, _ = sample(lm, ["A long prompt with many characters in it."])
    seen = {}
    forward = model.forward

    def spy(*args, **kwargs):
        seen["keep"] = kwargs.get("logits_to_keep")
        out = forward(*args, **kwargs)
        seen["positions"] = out.logits.shape[1]
        return out

    monkeypatch.setattr(model, "forward", spy)
    batch = tokens.pack([ids[0]], [responses[0][0]], tok.pad_token_id, "cpu")
    tokens.sequence_logprobs(model, batch, 1.0)
    R = batch["input_ids"].shape[1] - batch["prompt_width"]
    assert seen["positions"] == R + 1 < batch["input_ids"].shape[1]


def test_sampler_is_the_tempered_policy_whatever_the_model_generation_config(lm):
    """A polluted generation_config (top_k=2, repetition penalty, min_p) must not leak in."""
    tok, model = lm
    polluted = {
        "top_k": 2, "repetition_penalty": 3.0, "min_p": 0.5, "suppress_tokens": [5, 6, 7],
        "sequence_bias": {(8,): 5.0}, "forced_eos_token_id": 2, "bad_words_ids": [[9]],
    }  # fmt: skip
    for key, value in polluted.items():
        setattr(model.generation_config, key, value)
    try:
        ids = encode_prompts(tok, ["Say something."], 50)
        eos = rollout.eos_token_ids(model, tok)
        config = rollout.sampling_config(eos, tok.pad_token_id, temperature=0.8, max_new_tokens=6)
        with rollout.neutral_generation_defaults(model, config):
            out = model.generate(
                input_ids=torch.tensor(ids),
                generation_config=config,
                output_scores=True,
                return_dict_in_generate=True,
            )
        assert model.generation_config.top_k == 2  # restored after the block
        prompt = ids[0]
        for t, scores in enumerate(out.scores):
            prefix = out.sequences[0, : len(prompt) + t]
            logits = model(input_ids=prefix[None]).logits[0, -1]
            expected = torch.log_softmax(logits / 0.8, -1)
            assert torch.allclose(torch.log_softmax(scores[0], -1), expected, atol=1e-5)
    finally:
        for key in polluted:
            setattr(model.generation_config, key, None)


def test_cut_at_first_eos_of_any_id_even_when_pad_is_eos():
    assert rollout.cut_at_eos(torch.tensor([7, 3, 2, 2]), [2, 3]) == ([7, 3], False)
    assert rollout.cut_at_eos(torch.tensor([7, 8, 9]), [2, 3]) == ([7, 8, 9], True)
    # pad == eos: the padding after the real EOS is never part of the response
    assert rollout.cut_at_eos(torch.tensor([5, 2, 2, 2]), [2]) == ([5, 2], False)


def test_chat_template_applied_once_no_double_bos(lm):
    tok, _ = lm
    (ids,) = encode_prompts(tok, ["Hello there."], 100)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert tok.decode(ids).endswith("<|assistant|>")


def test_geometric_mixture_logits_match_full_forwards(lm):
    """The incremental reference (own KV cache, left padding) equals full forwards."""
    tok, policy = lm
    ref = tiny_model(tok, seed=7).eval()
    ids = encode_prompts(tok, ["Hi.", "A much longer prompt here."], 100)
    input_ids, mask = tokens.left_pad(ids, tok.pad_token_id)
    alpha = 0.3
    name = tokens.cache_kwarg(ref)
    mixture = rollout.GeometricMixture(lambda **kw: ref(**kw, use_cache=True), alpha, mask, name)
    seq = input_ids
    for step in range(4):
        full_mask = torch.cat([mask, torch.ones(2, step, dtype=torch.long)], 1)
        pos = tokens.position_ids(full_mask)
        with torch.no_grad():
            pol = policy(input_ids=seq, attention_mask=full_mask, position_ids=pos).logits[:, -1]
            want = ref(input_ids=seq, attention_mask=full_mask, position_ids=pos).logits[:, -1]
            got = mixture(seq, pol.clone())
        torch.testing.assert_close(got, (1 - alpha) * pol + alpha * want, atol=1e-5, rtol=0)
        seq = torch.cat([seq, got.argmax(-1, keepdim=True)], 1)


def test_truncation_penalty_keeps_unqueried_pairs_and_completes_one_way_ones():
    nan = float("nan")
    # Nash-MD shape: only (0, j) queried; (1, 2) never; (0, 1) answered in one direction only
    P = torch.tensor([[[nan, nan, 0.4], [0.3, nan, nan], [0.6, nan, nan]]], dtype=torch.float64)
    out = rollout.truncation_penalty(P, torch.tensor([[True, False, True]]))[0]
    assert out[1, 0] == 1 and out[0, 1] == 0  # the complete response wins the one-way pair
    assert torch.isnan(out[1, 2]) and torch.isnan(out[2, 1])  # not queried: stays NaN
    assert out[0, 2] == 0.4 and out[2, 0] == 0.6  # both truncated: as judged


def test_left_padding_is_exact_for_absolute_position_embeddings():
    """GPT-2 style absolute positions: position ids must skip the left padding (RoPE alone is
    blind to a constant shift, so the Llama tests cannot see this)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    model = GPT2LMHeadModel(config).eval()
    prompts, responses = [[1, 5, 6, 7, 8, 9, 10, 11], [1, 5]], [[20, 21, 22], [30, 31]]
    batched = tokens.logprobs_no_grad(model, prompts, responses, 1.0, tok.pad_token_id, 2)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        assert batched[i].item() == pytest.approx(token_by_token(model, p, r), abs=1e-5)
