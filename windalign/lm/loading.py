"""Loading causal LMs and their tokenizers one way: the trainer, the judges and ``wind evaluate``.

A model is named by (checked in this order, :func:`resolve_model`):

* an offline alias of :data:`windalign.lm.aliases.MODEL_ALIASES` (``smollm2``), prepared once;
* an existing local folder (``save_pretrained`` layout, or a LoRA adapter folder);
* a Hugging Face hub id (``org/name``, optional ``revision``), resolved by transformers and
  huggingface_hub the standard way: the local cache (``HF_HOME``) first, a download where the
  machine has a network. With ``HF_HUB_OFFLINE=1`` an id that is not in the cache is one clear
  error before anything loads.

``dtype`` is one of :data:`DTYPES`: the precision the weights are loaded in (``auto``: the
checkpoint's own). Remote code runs only with ``trust_remote_code=True``.

>>> resolve_model("./no/such/folder")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: model './no/such/folder' is not a local folder, an alias (smollm2) or a ...
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from windalign.lm.aliases import MODEL_ALIASES, Progress

#: Load precisions: ``auto`` keeps the checkpoint's dtype.
DTYPES = ("auto", "bfloat16", "float16", "float32")
#: A hub repo id as huggingface_hub accepts it (``name`` or ``org/name``).
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")
#: Saved architectures of models that are not causal LMs (an encoder, a classifier).
_NOT_CAUSAL = re.compile(r"(Model|ForMaskedLM|For\w*Classification|ForQuestionAnswering)$")
_FORMS = "a local folder, an alias ({aliases}) or a Hugging Face hub id (org/name)"


def is_hub_id(name: str) -> bool:
    """Whether ``name`` reads as a hub repo id (``org/name`` or ``name``, no ``--`` or ``..``).

    >>> is_hub_id("Qwen/Qwen2.5-1.5B-Instruct"), is_hub_id("./runs/model"), is_hub_id("a/b/c")
    (True, False, False)
    """
    return bool(_REPO_ID.match(name)) and ".." not in name and "--" not in name


def torch_dtype(dtype: str) -> Any:
    """The torch dtype of a :data:`DTYPES` name (``"auto"`` stays ``"auto"``)."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    return dtype if dtype == "auto" else getattr(torch, dtype)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _not_cached(what: str, name: str, revision: str | None) -> ValueError:
    from huggingface_hub import constants

    at = f" at revision {revision!r}" if revision else ""
    return ValueError(
        f"{what} {name!r}{at} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the "
        f"hub is offline (HF_HUB_OFFLINE=1): download it where there is a network (`hf download "
        f"{name}`{' --revision ' + revision if revision else ''}) into this HF_HOME, or unset "
        "HF_HUB_OFFLINE"
    )


def check_hub_model(name: str, revision: str | None = None, what: str = "model") -> None:
    """Offline, refuse a hub id whose config (or adapter config) is not in the cache; online,
    nothing to check here (``from_pretrained`` resolves or downloads it)."""
    if not _hub_offline():
        return
    from huggingface_hub import try_to_load_from_cache

    for filename in ("config.json", "adapter_config.json"):
        if isinstance(try_to_load_from_cache(name, filename, revision=revision), str):
            return
    raise _not_cached(what, name, revision)


def resolve_model(
    name: str, revision: str | None = None, what: str = "model", progress: Progress | None = print
) -> str:
    """What ``from_pretrained`` is given for ``name``: an alias's prepared folder, an existing
    folder as is, or a hub id (checked against the cache when offline); ``ValueError`` naming
    ``what`` otherwise. An alias wins over a folder of the same name (write ``./smollm2``)."""
    if name in MODEL_ALIASES:
        return str(MODEL_ALIASES[name](progress=progress))
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    forms = _FORMS.format(aliases=", ".join(sorted(MODEL_ALIASES)))
    if not is_hub_id(name):
        raise ValueError(f"{what} {name!r} is not {forms} (it does not exist)")
    check_hub_model(name, revision, what)
    return name


def _load_error(what: str, name: str, revision: str | None, err: Exception) -> ValueError:
    """One line for an exception of ``from_pretrained`` (the first line of its message)."""
    if is_hub_id(name) and not Path(name).exists() and _hub_offline():
        return _not_cached(what, name, revision)
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ValueError(f"{what} {name!r} could not be loaded: {first}")


def load_tokenizer(
    name: str,
    revision: str | None = None,
    trust_remote_code: bool = False,
    what: str = "model",
) -> Any:
    """The tokenizer of model ``name`` (any form :func:`resolve_model` takes), left padding."""
    from transformers import AutoTokenizer

    path = resolve_model(name, revision, what)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, revision=revision, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError, TypeError, AttributeError, ImportError) as err:
        if Path(path).is_dir():
            raise ValueError(
                f"{what} {name!r} has no usable tokenizer ({type(err).__name__}); save it into "
                "the folder with tokenizer.save_pretrained(folder) (tokenizer.json / "
                "tokenizer_config.json), or pass processing_class"
            ) from None
        raise _load_error(f"the tokenizer of {what}", name, revision, err) from None
    tokenizer.padding_side = "left"
    return tokenizer


def check_same_tokenizer(a: Any, b: Any, names: tuple[str, str]) -> None:
    """Refuse two tokenizers that differ, ``names`` saying whose (e.g. ``("--model 'x'",
    "--baseline 'y'")``): one model's token ids would be scored in the other's vocabulary (a
    meaningless KL, or an index error)."""
    if a.get_vocab() != b.get_vocab():
        raise ValueError(
            f"{names[0]} and {names[1]} have different tokenizers ({len(a)} and {len(b)} "
            "tokens): one's token ids mean other words to the other, so a KL or a reference "
            "log-probability between them is not defined; use models that share a tokenizer"
        )


def load_causal_lm(
    name: str,
    dtype: str = "float32",
    revision: str | None = None,
    trust_remote_code: bool = False,
    what: str = "model",
) -> Any:
    """A causal LM from ``name`` (any form :func:`resolve_model` takes) in ``dtype``; a LoRA
    adapter folder is loaded on its base model and merged. Errors are one ``ValueError`` line
    naming ``what``; a model that is not a causal LM (an encoder) is said to be one."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_model(name, revision, what)
    kwargs = {"revision": revision, "trust_remote_code": trust_remote_code}
    if (Path(path) / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(path, dtype=torch_dtype(dtype), **kwargs)
        return model.merge_and_unload()
    try:
        config = AutoConfig.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:
        raise _load_error(what, name, revision, err) from None
    heads = getattr(config, "architectures", None) or []
    encoder = heads and all(_NOT_CAUSAL.search(h) for h in heads)
    if (encoder or type(config) not in AutoModelForCausalLM._model_mapping) and not (
        trust_remote_code and getattr(config, "auto_map", None)
    ):
        kind = getattr(config, "model_type", "?")
        raise ValueError(
            f"{what} {name!r} is not a causal language model (model_type {kind!r} or saved as "
            f"{', '.join(heads) or '?'}); give a decoder with a language-modeling head (e.g. "
            "Llama, Qwen2, GPT-2 ...ForCausalLM)"
        )
    try:
        return AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=torch_dtype(dtype), **kwargs
        )
    except (OSError, ValueError) as err:
        raise _load_error(what, name, revision, err) from None


def default_device() -> Any:
    """This process's accelerator (``cuda:LOCAL_RANK``) where there is one, else the CPU: where
    a judge or reward model runs unless told otherwise."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")
