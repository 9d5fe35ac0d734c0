"""Sampling responses and their sequence log-probabilities (THEORY.md section 8).

* :func:`sampling_config` -- a ``GenerationConfig`` whose sampler is exactly the tempered policy
  ``softmax(logits / tau)`` (every other logits processor neutralized, whatever the model's own
  generation config says), unless the user asks for top-k / top-p truncation.
* :func:`generate` -- K responses for each of a list of prompts (left-padded, KV cache, each
  prompt prefilled once for its K rows), cut after the first EOS of any of the EOS ids.
* :class:`GeometricMixture` -- the token-level mixture ``(1 - alpha) logits_theta + alpha
  logits_ref`` that Nash-MD samples its opponents from, as a logits processor.

Sequence log-probabilities of the samples are :mod:`windalign.lm.tokens`' (shared with the
judges).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from windalign.lm.tokens import cache_kwarg, left_pad, position_ids


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a response: the generation config's EOS ids and the tokenizer's."""
    ids: list[int] = []
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None and int(v) not in ids:
                ids.append(int(v))
    if not ids:
        raise ValueError(
            "neither the model's generation_config nor the tokenizer defines an EOS token; set "
            "tokenizer.eos_token (responses could never end)"
        )
    return ids


def sampling_config(
    eos_ids: list[int],
    pad_id: int,
    *,
    temperature: float,
    max_new_tokens: int,
    top_k: int = 0,
    top_p: float = 1.0,
) -> GenerationConfig:
    """A sampling ``GenerationConfig``: the tempered policy, unless ``top_k`` / ``top_p``.

    Every processor that would change the distribution is set to its neutral value explicitly;
    :func:`generate` also hides the model's own generation config (whose fields ``generate``
    would otherwise fill in for every field left at None).
    """
    return GenerationConfig(
        do_sample=True,
        temperature=float(temperature),
        top_k=int(top_k),
        top_p=float(top_p),
        min_p=0.0,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        repetition_penalty=1.0,
        encoder_repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_new_tokens=0,
        num_beams=1,
        max_new_tokens=int(max_new_tokens),
        eos_token_id=eos_ids,
        pad_token_id=pad_id,
        use_cache=True,
    )


def cut_at_eos(tokens: Tensor, eos_ids: Sequence[int]) -> tuple[list[int], bool]:
    """A generated row up to and including its first EOS; ``(ids, truncated)``.

    ``truncated`` is True when no EOS was generated (the response hit ``max_new_tokens``). The
    first EOS is found by id, so a pad token equal to EOS never hides where the response ended.

    >>> cut_at_eos(torch.tensor([5, 6, 2, 0, 0]), [2])
    ([5, 6, 2], False)
    >>> cut_at_eos(torch.tensor([5, 6, 7]), [2])
    ([5, 6, 7], True)
    """
    is_eos = torch.isin(tokens, torch.as_tensor(list(eos_ids), device=tokens.device))
    if bool(is_eos.any()):
        end = int(is_eos.nonzero()[0, 0]) + 1
        return tokens[:end].tolist(), False
    return tokens.tolist(), True


class GeometricMixture(LogitsProcessor):
    """Logits ``(1 - alpha) l_theta + alpha l_ref``: samples from the token-level geometric
    mixture ``softmax(((1 - alpha) l_theta + alpha l_ref) / tau)`` (Nash-MD, THEORY.md 8).

    ``reference(input_ids, attention_mask, position_ids, **{cache_name: cache})`` runs the
    reference model and returns its output; it is fed incrementally with its own KV cache.
    ``prompt_mask [n, Lp]`` is the attention mask of the (expanded) prompts.
    """

    def __init__(
        self,
        reference: Callable[..., Any],
        alpha: float,
        prompt_mask: Tensor,
        cache_name: str = "past_key_values",
    ) -> None:
        self.reference, self.alpha, self.prompt_mask = reference, float(alpha), prompt_mask
        self.cache_name, self.cache = cache_name, None
        self.seen = 0

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        n, length = input_ids.shape
        extra = length - self.prompt_mask.shape[1]
        mask = torch.cat([self.prompt_mask, self.prompt_mask.new_ones(n, extra)], dim=1)
        out = self.reference(
            input_ids=input_ids[:, self.seen :],
            attention_mask=mask,
            position_ids=position_ids(mask)[:, self.seen :],
            **{self.cache_name: self.cache},
        )
        self.cache, self.seen = out[self.cache_name], length
        ref = out.logits[:, -1].to(scores.dtype)
        return (1 - self.alpha) * scores + self.alpha * ref


def truncation_penalty(prefs: Tensor, truncated: Tensor) -> Tensor:
    """Preferences where a truncated response loses every queried comparison against a
    complete one (``truncated_responses: lose``, THEORY.md 8); other entries unchanged.

    ``prefs [B, K, K]`` (NaN = not queried), ``truncated [B, K]`` bool.

    >>> P = torch.tensor([[[float("nan"), 0.9, 0.5], [0.1, float("nan"), 0.4], [0.5, 0.6, float("nan")]]])
    >>> truncation_penalty(P, torch.tensor([[True, False, True]]))[0]
    tensor([[   nan, 0.0000, 0.5000],
            [1.0000,    nan, 1.0000],
            [0.5000, 0.0000,    nan]])
    """  # noqa: E501
    known = ~torch.isnan(prefs)
    known = known | known.transpose(1, 2)  # a pair queried in one direction only counts too
    lose = truncated[:, :, None] & ~truncated[:, None, :] & known
    return prefs.masked_fill(lose, 0.0).masked_fill(lose.transpose(1, 2), 1.0)


@contextlib.contextmanager
def neutral_generation_defaults(model: Any, config: GenerationConfig) -> Iterator[None]:
    """Run ``generate`` with the model's own generation config replaced by a neutral one.

    ``generate`` fills every field left at None from ``model.generation_config`` (suppressed
    tokens, sequence biases, forced EOS, ``top_h``, ...), each of which would make the sampler
    differ from the tempered policy; inside this block the model has no such defaults.
    """
    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    saved = target.generation_config
    ids = {"eos_token_id": config.eos_token_id, "pad_token_id": config.pad_token_id}
    target.generation_config = GenerationConfig(bos_token_id=saved.bos_token_id, **ids)
    try:
        yield
    finally:
        target.generation_config = saved


@torch.no_grad()
def generate(
    model: Any,
    prompts: Sequence[Sequence[int]],
    k: int,
    config: GenerationConfig,
    eos_ids: Sequence[int],
    processor: Callable[[Tensor], LogitsProcessor] | None = None,
    share_prompts: bool = True,
) -> tuple[list[list[list[int]]], list[list[bool]]]:
    """``k`` responses for each prompt: ``(ids [B][k][len], truncated [B][k])``.

    Prompts are left-padded into one ``generate`` call over their ``B k`` rows;
    ``processor(expanded_prompt_mask)`` builds an extra logits processor (Nash-MD's mixture).
    With ``share_prompts`` (and ``k > 1``) each prompt but its last token is run once and its KV
    cache repeated onto its ``k`` rows before ``generate`` goes on from it (the same sampler and
    random draws as ``num_return_sequences = k``: the prefill consumes no randomness).
    """
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, config.pad_token_id, device)
    rows, row_mask = ids.repeat_interleave(k, dim=0), mask.repeat_interleave(k, dim=0)
    extra = LogitsProcessorList()
    if processor is not None:
        extra.append(processor(row_mask))
    config = copy.deepcopy(config)
    config.num_return_sequences = 1
    cache = {}
    if share_prompts and k > 1 and ids.shape[1] > 1:
        name = cache_kwarg(model)
        head = mask[:, :-1]
        prefix = model(
            input_ids=ids[:, :-1],
            attention_mask=head,
            position_ids=position_ids(head),
            logits_to_keep=1,
            use_cache=True,
        )
        cache = {name: prefix[name]}
        cache[name].batch_repeat_interleave(k)
    with neutral_generation_defaults(model, config):
        out = model.generate(
            input_ids=rows,
            attention_mask=row_mask,
            generation_config=config,
            logits_processor=extra,
            synced_gpus=False,  # the callers gather sharded parameters first (issue 15)
            **cache,
        )
    responses, truncated = [], []
    for b in range(len(prompts)):
        cut = [cut_at_eos(out[b * k + j, ids.shape[1] :], eos_ids) for j in range(k)]
        responses.append([r for r, _ in cut])
        truncated.append([t for _, t in cut])
    return responses, truncated
