"""Every test runs offline against a Hugging Face cache of its own: no test ever reaches a hub
(there is no network here, and a test must not depend on one). Set before huggingface_hub,
transformers or datasets are imported, since they read these at import time.

Also the ``benchmark_script`` fixture: the tests of ``benchmarks/`` load its scripts by name."""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="windalign-tests-hf-"))


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session")
def benchmark_script():
    """``benchmark_script("llm_sweep")``: a script of ``benchmarks/`` imported as a module by its
    name (the scripts import each other, so their folder is on ``sys.path`` while one loads)."""

    def load(name: str) -> ModuleType:
        sys.path.insert(0, str(BENCHMARKS))
        try:
            return importlib.import_module(name)
        finally:
            sys.path.remove(str(BENCHMARKS))

    return load
