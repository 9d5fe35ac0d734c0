"""Token-level helpers for causal LMs, below the trainer and the judges (ARCHITECTURE.md).

* :func:`left_pad`, :func:`position_ids` -- prompts batched with left padding, positions that
  ignore it (absolute-position models such as GPT-2 need them).
* :func:`pack` and :func:`sequence_logprobs` -- ``log pi(y|x) = sum_t log p(y_t | x, y_<t)`` over
  the response tokens including EOS, prompt and padding excluded, logits divided by ``tau``,
  computed as gather minus logsumexp on the response positions only (``logits_to_keep``) and in
  row chunks, never a full ``[B, T, V]`` log-softmax; the log-softmax in float32 (or wider, never
  the model's bf16 / fp16) and the sum over tokens in float64 (THEORY.md 8, "Precision").
* Shared prompts (``pack(..., share_prompts=True)``): consecutive rows with the same prompt (the
  K responses of a prompt) run that prompt once; its keys and values are reordered onto the
  rows and the responses run on top of them. The same numbers as the unshared pass to float
  tolerance, gradients included: they reach the prompt's positions through the shared keys and
  values (``tests/llm/test_tokens.py``).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

#: Rows per chunk of the logsumexp over the vocabulary (bounds the float32 copy of the logits).
LOGSUMEXP_ROWS = 4


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: Any = "cpu"
) -> tuple[Tensor, Tensor]:
    """``(input_ids, attention_mask)`` of token rows padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.as_tensor(r)
            mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that ignore left padding: ``cumsum(mask) - 1``, clamped at 0."""
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def cache_kwarg(model: Any) -> str:
    """The name ``model.forward`` takes (and its output returns) the KV cache under: ``cache``
    (transformers >= 5.2x) or ``past_key_values`` (earlier). Looks through DDP / DeepSpeed
    (``.module``), ``torch.compile`` (``._orig_mod``) and peft (``get_base_model``) wrappers."""
    while not hasattr(model, "get_base_model"):
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            break
        model = inner
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(type(base).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def prompt_groups(prompts: Sequence[Sequence[int]]) -> tuple[list[Sequence[int]], list[int]]:
    """``(unique, group)``: runs of equal consecutive prompts, and each row's run.

    >>> prompt_groups([[1, 2], [1, 2], [3], [1, 2]])
    ([[1, 2], [3], [1, 2]], [0, 0, 1, 2])
    """
    unique: list[Sequence[int]] = []
    group: list[int] = []
    for p in prompts:
        if not unique or list(unique[-1]) != list(p):
            unique.append(p)
        group.append(len(unique) - 1)
    return unique, group


def pack(
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    pad_id: int,
    device: Any,
    share_prompts: bool = False,
) -> dict[str, Any]:
    """One padded batch of (prompt, response) pairs: prompts left-padded to a common width
    ``Lp``, responses right-padded from column ``Lp``.

    Returns ``input_ids``, ``attention_mask``, ``position_ids`` ``[n, T]``,
    ``response_mask [n, R]`` (True on response tokens) and ``prompt_width`` (``Lp``). With
    ``share_prompts`` (and some prompt repeated on consecutive rows) also ``prompt_ids``,
    ``prompt_mask``, ``prompt_position_ids`` ``[U, Lp]`` of the ``U`` runs of equal consecutive
    prompts and ``group [n]`` (each row's run): :func:`response_token_logprobs` then runs each
    prompt once.
    """
    p_ids, p_mask = left_pad(prompts, pad_id)
    width = max(1, max(len(r) for r in responses))
    r_ids = torch.full((len(responses), width), pad_id, dtype=torch.long)
    r_mask = torch.zeros((len(responses), width), dtype=torch.bool)
    for i, r in enumerate(responses):
        r_ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        r_mask[i, : len(r)] = True
    attention = torch.cat([p_mask, r_mask.long()], dim=1)
    batch = {
        "input_ids": torch.cat([p_ids, r_ids], dim=1).to(device),
        "attention_mask": attention.to(device),
        "position_ids": position_ids(attention).to(device),
        "response_mask": r_mask.to(device),
        "prompt_width": p_ids.shape[1],
    }
    unique, group = prompt_groups(prompts) if share_prompts else ([], [])
    if len(unique) < len(group):  # some prompt has several responses
        first = torch.as_tensor([group.index(u) for u in range(group[-1] + 1)])
        batch.update(
            prompt_ids=p_ids[first].to(device),
            prompt_mask=p_mask[first].to(device),
            prompt_position_ids=position_ids(p_mask[first]).to(device),
            group=torch.as_tensor(group).to(device),
        )
    return batch


def token_logprobs(logits: Tensor, targets: Tensor, temperature: float) -> Tensor:
    """``log softmax(logits / tau)[targets]`` as gather minus logsumexp, in row chunks.

    ``logits [n, R, V]``, ``targets [n, R]`` -> ``[n, R]`` float32 (or wider). Each chunk is cast
    to float32 on its own, so a bf16 model never needs a float32 copy of all its logits.
    """
    out = []
    for start in range(0, logits.shape[0], LOGSUMEXP_ROWS):
        chunk = logits[start : start + LOGSUMEXP_ROWS]
        chunk = chunk.float() if chunk.dtype in (torch.float16, torch.bfloat16) else chunk
        chunk = chunk / temperature
        picked = chunk.gather(-1, targets[start : start + LOGSUMEXP_ROWS, :, None]).squeeze(-1)
        out.append(picked - torch.logsumexp(chunk, dim=-1))
    return torch.cat(out)


def response_token_logprobs(model: Any, batch: dict[str, Any], temperature: float) -> Tensor:
    """``[n, R]`` log-probabilities of each response token of a :func:`pack` batch (padding
    positions hold values too: mask them with ``batch["response_mask"]``).

    Only the ``R + 1`` last positions go through the LM head (``logits_to_keep``); the last
    position's logits predict nothing and are dropped.
    """
    if "group" in batch:
        return _shared_prompt_logprobs(model, batch, temperature)
    width = batch["prompt_width"]
    R = batch["input_ids"].shape[1] - width
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=R + 1,
        use_cache=False,
    )
    logits = out.logits[:, -(R + 1) : -1]  # also if a model computed every position
    return token_logprobs(logits, batch["input_ids"][:, width:], temperature)


def _shared_prompt_logprobs(model: Any, batch: dict[str, Any], temperature: float) -> Tensor:
    """:func:`response_token_logprobs` with each prompt run once: the prompts ``[U, Lp]`` with
    a KV cache (the last position's logits predict every row's first response token), the
    cache reordered onto the rows ``[n]``, then the responses ``[n, R]`` on top of it."""
    width, group, name = batch["prompt_width"], batch["group"], cache_kwarg(model)
    targets = batch["input_ids"][:, width:]
    prompt = model(
        input_ids=batch["prompt_ids"],
        attention_mask=batch["prompt_mask"],
        position_ids=batch["prompt_position_ids"],
        logits_to_keep=1,
        use_cache=True,
    )
    cache = prompt[name]
    cache.reorder_cache(group)
    first = token_logprobs(prompt.logits[:, -1:][group], targets[:, :1], temperature)
    if targets.shape[1] == 1:
        return first
    out = model(
        input_ids=targets,
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"][:, width:],
        logits_to_keep=targets.shape[1],
        use_cache=True,
        **{name: cache},
    )
    rest = token_logprobs(out.logits[:, -targets.shape[1] : -1], targets[:, 1:], temperature)
    return torch.cat([first, rest], dim=1)


def sequence_logprobs(model: Any, batch: dict[str, Any], temperature: float) -> Tensor:
    """``[n]`` summed log-probabilities (float64) of the response tokens of a :func:`pack`
    batch: :func:`response_token_logprobs` over the response mask."""
    lp = response_token_logprobs(model, batch, temperature)
    return (lp.double() * batch["response_mask"]).sum(-1)


@torch.no_grad()
def logprobs_no_grad(
    model: Any,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    temperature: float,
    pad_id: int,
    batch_size: int,
    share_prompts: bool = True,
) -> Tensor:
    """:func:`sequence_logprobs` of every (prompt, response) pair, ``batch_size`` at a time
    (each run of equal consecutive prompts run once unless ``share_prompts`` is False)."""
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(prompts), batch_size):
        p, r = prompts[s : s + batch_size], responses[s : s + batch_size]
        batch = pack(p, r, pad_id, device, share_prompts)
        out.append(sequence_logprobs(model, batch, temperature).detach())
    return torch.cat(out)
