"""Language models: ``WINDConfig``, ``WINDTrainer`` and their helpers (THEORY.md section 8).

Needs the ``llm`` extra (transformers, accelerate, datasets, peft); imported lazily so that
``import windalign.llm`` stays cheap until a name is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "WINDConfig": "windalign.llm.config",
    "WINDTrainer": "windalign.llm.trainer",
    "load_prompts": "windalign.llm.data",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'windalign.llm' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
