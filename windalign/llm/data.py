"""Prompts: loading, checking and tokenizing them (THEORY.md 8; ARCHITECTURE.md conventions).

A prompt is plain text or a chat (a list of ``{"role", "content"}`` messages). Sources: the
built-in set shipped with the package (``"builtin"``, ``"builtin:train"``, ``"builtin:heldout"``),
a JSONL / JSON / CSV / parquet file or a ``datasets.Dataset`` with a ``prompt`` column, or a
Python list. Every bad input is an error naming the source, the row and the fix.

>>> prompts = load_prompts("builtin:heldout")
>>> len(prompts) >= 100, isinstance(prompts[0], str)
(True, True)
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

Prompt = str | list[dict[str, str]]
BUILTIN = "builtin"
SPLITS = ("train", "heldout")
_READERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def builtin_prompts(split: str | None = None) -> list[str]:
    """The built-in instructions written for this project (``split``: train, heldout or all)."""
    if split not in (None, *SPLITS):
        raise ValueError(f"unknown built-in split {split!r}; choose one of: {', '.join(SPLITS)}")
    text = (files("windalign.llm") / "builtin_prompts.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r["prompt"] for r in rows if split is None or r["split"] == split]


def _rows_from_file(path: Path, column: str) -> list[Any]:
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {str(path)!r} does not exist")
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"prompt file {str(path)!r} has an unknown format; use one of "
            f"{', '.join(_READERS)} (or 'builtin', 'builtin:train', 'builtin:heldout')"
        )
    import datasets

    try:
        ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    except Exception as err:  # datasets raises many types for unreadable files
        raise ValueError(f"prompt file {str(path)!r} could not be read as {kind}: {err}") from None
    return _rows_from_dataset(ds, column, repr(str(path)))


def _rows_from_dataset(ds: Any, column: str, source: str) -> list[Any]:
    names = list(getattr(ds, "column_names", None) or [])
    if column not in names:
        raise ValueError(
            f"prompts {source} have no {column!r} column (columns: {', '.join(names) or 'none'}); "
            f"rename the prompt column to {column!r} or set prompt_column"
        )
    return list(ds[column])


def _check_prompt(value: Any, index: int, source: str) -> Prompt:
    where = f"prompt {index} of {source}"
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{where} is empty; remove it or write the instruction")
        return value
    if isinstance(value, list) and value:
        for message in value:
            if not (
                isinstance(message, dict)
                and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)
            ):
                raise ValueError(
                    f"{where} is a chat but {message!r} is not a {{'role': str, 'content': str}} "
                    "message"
                )
        if not any(m["content"].strip() for m in value):
            raise ValueError(f"{where} is a chat whose messages are all empty")
        return [{"role": m["role"], "content": m["content"]} for m in value]
    raise ValueError(
        f"{where} is {type(value).__name__} {value!r:.60}; a prompt is a non-empty string or a "
        "list of chat messages"
    )


def load_prompts(source: Any, column: str = "prompt") -> list[Prompt]:
    """Prompts from ``source`` (see the module docstring), each checked.

    Raises ``ValueError`` (or ``FileNotFoundError``) naming the source and the row for a missing
    column, an empty source, an empty or non-string prompt, or a malformed chat.
    """
    if isinstance(source, str) and (source == BUILTIN or source.startswith(BUILTIN + ":")):
        split = source.partition(":")[2] or None
        return list(builtin_prompts(split))
    if isinstance(source, str | Path):
        name, rows = repr(str(source)), _rows_from_file(Path(source), column)
    elif hasattr(source, "column_names"):
        name, rows = "the dataset", _rows_from_dataset(source, column, "the dataset")
    elif isinstance(source, Sequence):
        name, rows = "the list", list(source)
        if rows and all(isinstance(r, dict) and "role" not in r for r in rows):
            rows = [r.get(column) for r in rows]
    else:
        raise ValueError(
            f"prompts must be 'builtin[:split]', a file path, a datasets.Dataset or a list; "
            f"got {type(source).__name__}"
        )
    if not rows:
        raise ValueError(f"prompts {name} are empty; give at least one prompt")
    return [_check_prompt(v, i, name) for i, v in enumerate(rows)]


def prompt_text(prompt: Prompt) -> str:
    """The text a preference oracle sees: the prompt, or a chat as ``role: content`` lines.

    >>> prompt_text([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    'system: Be brief.\\nuser: Hi'
    """
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def encode_prompts(
    tokenizer: Any, prompts: Sequence[Prompt], max_length: int, truncation: str = "error"
) -> list[list[int]]:
    """Token ids of each prompt, ready for generation.

    With a chat template, text becomes one user message and the template (with the generation
    prompt) is applied once and tokenized with ``add_special_tokens=False`` (no double BOS);
    without one, text is tokenized with the tokenizer's special tokens and chats are refused.
    A prompt over ``max_length`` tokens raises (``truncation="error"``) or keeps its last
    ``max_length`` tokens with one warning (``"left"``).
    """
    template = getattr(tokenizer, "chat_template", None)
    out, cut = [], []
    for i, prompt in enumerate(prompts):
        if template:
            chat = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        elif isinstance(prompt, str):
            ids = tokenizer(prompt)["input_ids"]
        else:
            raise ValueError(
                f"prompt {i} is a chat but the tokenizer has no chat template; give plain-text "
                "prompts or a tokenizer with a chat_template"
            )
        if len(ids) > max_length:
            if truncation == "error":
                raise ValueError(
                    f"prompt {i} ({prompt_text(prompt)[:50]!r}...) has {len(ids)} tokens, over "
                    f"max_prompt_length = {max_length}; raise max_prompt_length, shorten it, or "
                    "set prompt_truncation: left"
                )
            cut.append(i)
            ids = ids[-max_length:]
        out.append(list(ids))
    if cut:
        warnings.warn(
            f"{len(cut)} prompt(s) over max_prompt_length = {max_length} tokens kept only their "
            f"last {max_length} tokens (first: prompt {cut[0]})",
            stacklevel=2,
        )
    return out
