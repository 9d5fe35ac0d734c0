"""Every test runs offline against a Hugging Face cache of its own: no test ever reaches a hub
(there is no network here, and a test must not depend on one). Set before huggingface_hub,
transformers or datasets are imported, since they read these at import time."""

from __future__ import annotations

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="windalign-tests-hf-"))
