"""Token-level helpers for causal LMs, below the trainer and the judges (ARCHITECTURE.md).

* :func:`left_pad`, :func:`position_ids` -- prompts batched with left padding, positions that
  ignore it (absolute-position models such as GPT-2 need them).
* :func:`pack` and :func:`sequence_logprobs` -- ``log pi(y|x) = sum_t log p(y_t | x, y_<t)`` over
  the response tokens including EOS, prompt and padding excluded, logits divided by ``tau``,
  computed as gather minus logsumexp on the response positions only (``logits_to_keep``) and in
  row chunks, never a full ``[B, T, V]`` log-softmax; the log-softmax in float32 (or wider, never
  the model's bf16 / fp16) and the sum over tokens in float64 (THEORY.md 8, "Precision").
"""

from __future__ import annotations

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


def pack(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int, device: Any
) -> dict[str, Any]:
    """One padded batch of (prompt, response) pairs: prompts left-padded to a common width
    ``Lp``, responses right-padded from column ``Lp``.

    Returns ``input_ids``, ``attention_mask``, ``position_ids`` ``[n, T]``,
    ``response_mask [n, R]`` (True on response tokens) and ``prompt_width`` (``Lp``).
    """
    p_ids, p_mask = left_pad(prompts, pad_id)
    width = max(1, max(len(r) for r in responses))
    r_ids = torch.full((len(responses), width), pad_id, dtype=torch.long)
    r_mask = torch.zeros((len(responses), width), dtype=torch.bool)
    for i, r in enumerate(responses):
        r_ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        r_mask[i, : len(r)] = True
    attention = torch.cat([p_mask, r_mask.long()], dim=1)
    return {
        "input_ids": torch.cat([p_ids, r_ids], dim=1).to(device),
        "attention_mask": attention.to(device),
        "position_ids": position_ids(attention).to(device),
        "response_mask": r_mask.to(device),
        "prompt_width": p_ids.shape[1],
    }


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
    width = batch["prompt_width"]
    R = batch["input_ids"].shape[1] - width
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=R + 1,
        use_cache=False,
    )
    return token_logprobs(out.logits[:, :-1], batch["input_ids"][:, width:], temperature)


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
) -> Tensor:
    """:func:`sequence_logprobs` of every (prompt, response) pair, ``batch_size`` at a time."""
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(prompts), batch_size):
        batch = pack(prompts[s : s + batch_size], responses[s : s + batch_size], pad_id, device)
        out.append(sequence_logprobs(model, batch, temperature).detach())
    return torch.cat(out)
