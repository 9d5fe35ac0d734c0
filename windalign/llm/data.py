"""Prompts: loading, checking and tokenizing them (THEORY.md 8; ARCHITECTURE.md conventions).

A prompt is plain text or a chat (a list of ``{"role", "content"}`` messages, as TRL's
prompt-only datasets have). :func:`load_prompts` takes, tried in this order:

- ``"builtin"``, ``"builtin:train"``, ``"builtin:heldout"``: the set shipped with the package;
  ``heldout`` is ``"builtin:validation"`` (the last 2 prompts of each category, 28, for
  tuning) and ``"builtin:test"`` (the other 98, for reported numbers only), in file order;
- a JSONL / JSON / CSV / parquet file (a missing path with one of these suffixes is an error);
- a folder: a ``save_to_disk`` dataset (``split`` picks from a ``DatasetDict``) or a folder of
  data files read by ``datasets.load_dataset(folder, subset, split=split)``;
- a Hugging Face hub dataset id ``"org/name"`` (only that form: a bare ``"name"`` is refused so
  that a mistyped path is not sent to the hub), read by ``datasets.load_dataset(id, subset,
  split=split, revision=revision)``. Offline (``HF_HUB_OFFLINE=1``) that reads datasets' own
  cache (``HF_HOME/datasets``, left by an earlier online load); failing that, or when the hub
  cannot be reached, the snapshot ``hf download <id> --repo-type dataset`` left in the hub cache
  (``HF_HOME/hub/datasets--org--name/snapshots/<sha>``) is read as a folder of data files;
- a ``datasets.Dataset`` or a Python list.

The prompts are the ``column`` of the rows. Every bad input is a one-line error naming the
source, the row and the fix: an unknown split or subset lists the ones there are, a dataset
that is neither cached nor reachable says how to get it.

>>> prompts = load_prompts("builtin:heldout")
>>> len(prompts) >= 100, isinstance(prompts[0], str)
(True, True)
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

Prompt = str | list[dict[str, str]]
BUILTIN = "builtin"
SPLITS = ("train", "heldout", "validation", "test")
_PARTS = {"heldout": ("validation", "test")}  # a split made of others, in file order
_READERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_FORMS = (
    "'builtin[:split]', a .jsonl/.json/.csv/.parquet file, a dataset folder, a Hugging Face "
    "hub dataset id 'org/name', a datasets.Dataset or a list"
)
_OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}


def builtin_prompts(split: str | None = None) -> list[str]:
    """The built-in instructions written for this project (``split``: train, heldout =
    validation + test, validation, test; None: all)."""
    if split not in (None, *SPLITS):
        raise ValueError(f"unknown built-in split {split!r}; choose one of: {', '.join(SPLITS)}")
    text = (files("windalign.llm") / "builtin_prompts.jsonl").read_text()
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    keep = _PARTS.get(split, (split,)) if split is not None else None
    return [r["prompt"] for r in rows if keep is None or r["split"] in keep]


def _rows_from_file(path: Path, column: str) -> list[Any]:
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {str(path)!r} does not exist")
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(
            f"prompt file {str(path)!r} has an unknown format; use one of "
            f"{', '.join(_READERS)} (or 'builtin', 'builtin:train', 'builtin:heldout', "
            "'builtin:validation', 'builtin:test')"
        )
    if not path.read_bytes().strip():
        raise ValueError(
            f"prompt file {str(path)!r} is empty; write one prompt per row, with a "
            f'{column!r} column (e.g. {{"{column}": "..."}} per line of a .jsonl)'
        )
    import datasets

    try:
        ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    except Exception as err:  # datasets raises many types for unreadable files
        why = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise ValueError(f"prompt file {str(path)!r} could not be read as {kind} ({why})") from None
    return _rows_from_dataset(ds, column, repr(str(path)))


def _rows_from_dataset(ds: Any, column: str, source: str) -> list[Any]:
    names = list(getattr(ds, "column_names", None) or [])
    if column not in names:
        raise ValueError(
            f"prompts {source} have no {column!r} column (columns: {', '.join(names) or 'none'}); "
            f"rename the prompt column to {column!r} or set prompt_column"
        )
    return [_as_chat(v) for v in ds[column]]


def _as_chat(value: Any) -> Any:
    """A chat stored column-wise (``{"role": [...], "content": [...]}``, what a datasets
    ``Sequence`` of messages gives) as a list of messages; anything else unchanged."""
    if isinstance(value, dict) and {"role", "content"} <= set(value):
        if all(isinstance(v, list) for v in value.values()):
            return [dict(zip(value, m, strict=True)) for m in zip(*value.values(), strict=True)]
    return value


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _network_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import LocalEntryNotFoundError
    from huggingface_hub.utils import httpx  # httpx or its fork, whichever the hub client uses

    return ConnectionError, TimeoutError, LocalEntryNotFoundError, httpx.TransportError


def _pick_split(dd: Any, split: str, source: str, load: Any = None) -> Any:
    """``dd[split]``; a split expression (``"train[:100]"``, ``"train+test"``) goes to ``load``."""
    if split in dd:
        return dd[split]
    if load is not None and any(c in split for c in "[+"):
        try:
            return load(split)
        except (ValueError, KeyError):
            pass
    raise ValueError(
        f"{source} has no split {split!r} (splits: {', '.join(dd) or 'none'}); "
        "set split to one of them"
    )


def _subset_error(
    err: Exception, path: str, subset: str | None, source: str, **kwargs: Any
) -> str | None:
    """The one-line error for a subset the dataset lacks, or None if that is not the problem."""
    import datasets

    if subset is None and "config name is missing" not in str(err).lower():
        return None
    try:
        names = datasets.get_dataset_config_names(path, **kwargs)
    except Exception:  # the names are a courtesy; the caller reports the original error
        return None
    if not names or subset in names:
        return None
    what = f"no subset {subset!r}" if subset else "several subsets and no default"
    return f"{source} has {what} (subsets: {', '.join(names)}); set subset to one of them"


def _load_split(path: str, subset: str | None, split: str, source: str, **kwargs: Any) -> Any:
    """``datasets.load_dataset(path, subset)[split]``, its errors one line naming ``source``.

    Network errors pass through for the caller (see :func:`_rows_from_hub`)."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        dd = datasets.load_dataset(path, subset, **kwargs)
    except _network_errors():
        raise
    except DatasetNotFoundError as err:
        raise ValueError(
            f"{source} was not found ({_first_line(err)}); check the id and revision, or log in "
            "(`hf auth login`) for a private or gated dataset"
        ) from None
    except Exception as err:  # datasets raises many types; none should escape as a traceback
        message = _subset_error(err, path, subset, source, **kwargs)
        raise ValueError(message or f"{source} could not be loaded: {_first_line(err)}") from None
    return _pick_split(
        dd, split, source, lambda s: datasets.load_dataset(path, subset, split=s, **kwargs)
    )


def _rows_from_folder(path: Path, column: str, split: str, subset: str | None) -> list[Any]:
    import datasets

    source, name = f"dataset folder {str(path)!r}", repr(str(path))
    if not any((path / f).is_file() for f in ("dataset_dict.json", "state.json")):
        return _rows_from_dataset(_load_split(str(path), subset, split, source), column, name)
    if subset is not None:
        raise ValueError(f"{source} is a save_to_disk dataset, which has no subsets; drop subset")
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as err:  # a damaged save_to_disk folder
        raise ValueError(f"{source} could not be loaded: {_first_line(err)}") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = _pick_split(ds, split, source)
    return _rows_from_dataset(ds, column, name)


def _is_hub_id(text: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return text.count("/") == 1


def _hub_snapshot(repo_id: str, revision: str | None) -> str | None:
    """The folder ``hf download <repo_id> --repo-type dataset`` left in the hub cache, if any."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(
            repo_id, repo_type="dataset", revision=revision, local_files_only=True
        )
    except Exception:  # not in the cache (LocalEntryNotFoundError) or incomplete
        return None


def _not_cached(repo_id: str, revision: str | None, err: BaseException) -> str:
    from huggingface_hub import constants

    at = f" at revision {revision!r}" if revision else ""
    what = f"dataset {repo_id!r}{at} is not in the Hugging Face cache (HF_HOME={constants.HF_HOME})"
    fetch = f"`hf download {repo_id} --repo-type dataset{f' --revision {revision}' if at else ''}`"
    flag = next((f for f in _OFFLINE_FLAGS if os.environ.get(f, "").upper() in _TRUE), None)
    if flag is not None:
        return (
            f"{what} and the hub is offline ({flag}=1): download it where there is a network "
            f"(e.g. {fetch}) or unset {flag}"
        )
    return (
        f"{what} and the hub at {constants.ENDPOINT} could not be reached ({_first_line(err)}): "
        f"check the network or proxy, or download it where there is one (e.g. {fetch}) and copy "
        "HF_HOME here"
    )


def _rows_from_hub(
    repo_id: str, column: str, split: str, subset: str | None, revision: str | None
) -> list[Any]:
    source = f"dataset {repo_id!r}"
    kwargs = {"revision": revision} if revision else {}
    try:
        ds = _load_split(repo_id, subset, split, source, **kwargs)
    except _network_errors() as err:  # not in datasets' cache and the hub is out of reach
        folder = _hub_snapshot(repo_id, revision)
        if folder is None:
            raise ValueError(_not_cached(repo_id, revision, err)) from None
        ds = _load_split(folder, subset, split, source)
    return _rows_from_dataset(ds, column, repr(repo_id))


def _rows_from_string(
    source: str, column: str, split: str, subset: str | None, revision: str | None
) -> list[Any]:
    path = Path(source)
    if path.is_file() or path.suffix.lower() in _READERS:
        return _rows_from_file(path, column)
    if path.is_dir():
        return _rows_from_folder(path, column, split, subset)
    if _is_hub_id(source):
        return _rows_from_hub(source, column, split, subset, revision)
    raise ValueError(
        f"prompts {source!r} are not an existing file or folder nor a hub dataset id 'org/name'; "
        f"give {_FORMS}"
    )


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


def load_prompts(
    source: Any,
    column: str = "prompt",
    *,
    split: str = "train",
    subset: str | None = None,
    revision: str | None = None,
) -> list[Prompt]:
    """Prompts from ``source`` (see the module docstring), each checked.

    ``split``, ``subset`` (the dataset's config name) and ``revision`` (a branch, tag or commit)
    apply to a hub dataset id; ``split`` and ``subset`` also to a dataset folder.

    Raises ``ValueError`` (or ``FileNotFoundError``) naming the source and the row for a missing
    column, an empty source, an empty or non-string prompt, a malformed chat, an unknown split
    or subset, or a hub dataset that is neither cached nor reachable.
    """
    if isinstance(source, str) and (source == BUILTIN or source.startswith(BUILTIN + ":")):
        return list(builtin_prompts(source.partition(":")[2] or None))
    if isinstance(source, str):
        name, rows = repr(source), _rows_from_string(source, column, split, subset, revision)
    elif isinstance(source, Path):
        name = repr(str(source))
        rows = (
            _rows_from_folder(source, column, split, subset)
            if source.is_dir()
            else _rows_from_file(source, column)
        )
    elif hasattr(source, "column_names"):
        name, rows = "the dataset", _rows_from_dataset(source, column, "the dataset")
    elif isinstance(source, Sequence):
        name, rows = "the list", list(source)
        if rows and all(isinstance(r, dict) and "role" not in r for r in rows):
            rows = [r.get(column) for r in rows]
    else:
        raise ValueError(f"prompts must be {_FORMS}; got {type(source).__name__}")
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
