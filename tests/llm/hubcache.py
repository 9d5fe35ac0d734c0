"""A Hugging Face cache written by hand, so tests load models and datasets by hub id offline.

The hub cache is what ``hf download`` (``snapshot_download``) leaves and what
``from_pretrained("org/name")`` / ``snapshot_download(..., local_files_only=True)`` read offline::

    HF_HOME/hub/models--org--name/          (datasets--org--name for a dataset)
        blobs/<sha256 of the file>          the bytes
        snapshots/<commit sha>/<path>       a relative symlink to the blob (a copy where
                                            symlinks are not allowed)
        refs/main                           the commit sha, no newline

``datasets.load_dataset("org/name")`` does NOT read that layout: offline it reads only
datasets' own Arrow cache (``HF_HOME/datasets/org___name/<config>/<version>/<hash>/``, written
by an earlier online load; :func:`write_datasets_cache` writes one), and online it lists the
repo through ``hf://`` (``HfFileSystem``), which needs the network. ``windalign.llm.data`` reads
the hub-cache snapshot as a folder of data files when the dataset is in neither.

The libraries read ``HF_HOME`` and the offline switches once, at import
(``huggingface_hub.constants``, ``datasets.config``). The faithful way to use a written cache
is a subprocess with :func:`offline_env`; in process, :func:`go_offline` sets the environment
and patches those module constants (transformers reads huggingface_hub's).

>>> import tempfile
>>> tmp = tempfile.TemporaryDirectory()
>>> home = Path(tmp.name)
>>> sha = write_dataset_repo(home, "org/name", {"data/train.jsonl": b'{"prompt": "Hi"}\\n'})
>>> (home / "hub/datasets--org--name/refs/main").read_text() == sha
True
>>> (home / f"hub/datasets--org--name/snapshots/{sha}/data/train.jsonl").read_bytes()
b'{"prompt": "Hi"}\\n'
>>> tmp.cleanup()
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Content = str | os.PathLike | bytes  # a local file's path, or the bytes themselves


def repo_dir(hf_home: str | os.PathLike, repo_id: str, repo_type: str = "model") -> Path:
    """``HF_HOME/hub/<repo_type>s--org--name``: where the hub cache keeps one repo."""
    return Path(hf_home) / "hub" / "--".join([f"{repo_type}s", *repo_id.split("/")])


def write_repo(
    hf_home: str | os.PathLike,
    repo_id: str,
    files: Mapping[str, Content],
    repo_type: str = "model",
    revision: str = "main",
) -> str:
    """Write ``files`` (path in the repo -> local file or bytes) as one commit of ``repo_id`` in
    the hub cache under ``hf_home`` and point ``refs/<revision>`` at it; return the commit sha.

    The sha is derived from the contents, so the same files give the same commit; writing other
    files again adds a second snapshot and moves the ref.
    """
    blobs = {rel: _bytes(content) for rel, content in files.items()}
    sha = hashlib.sha1(
        b"".join(
            rel.encode() + b"\0" + hashlib.sha256(b).digest() for rel, b in sorted(blobs.items())
        )
    ).hexdigest()
    root = repo_dir(hf_home, repo_id, repo_type)
    for rel, data in blobs.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = root / "snapshots" / sha / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        try:
            link.symlink_to(os.path.relpath(blob, link.parent))
        except OSError:  # no symlinks (Windows without developer mode): huggingface_hub copies
            shutil.copyfile(blob, link)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / revision).write_text(sha)
    return sha


def write_model_repo(hf_home: str | os.PathLike, repo_id: str, folder: str | os.PathLike) -> str:
    """Every file under ``folder`` (a ``save_pretrained`` folder) as model ``repo_id``; the sha."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
    return write_repo(hf_home, repo_id, files, "model")


def write_dataset_repo(
    hf_home: str | os.PathLike, repo_id: str, files: Mapping[str, Content]
) -> str:
    """``files`` (path in the repo -> local file or bytes) as dataset ``repo_id``; the sha.

    Splits and subsets follow the hub's rules: file names (``data/train.jsonl``,
    ``test.jsonl``...) or a ``README.md`` with ``configs`` (see :func:`dataset_card`).
    """
    return write_repo(hf_home, repo_id, files, "dataset")


def dataset_card(configs: Mapping[str, Mapping[str, str]], default: str | None = None) -> bytes:
    """A ``README.md`` declaring subsets: ``{subset: {split: path in the repo}}``.

    ``default`` (else a subset named ``"default"``, if any) is loaded when no subset is given.
    One repo holds one file format: datasets picks the reader from the first subset's files.
    """
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines.append(f"- config_name: {name}")
        if name == default:
            lines.append("  default: true")
        lines.append("  data_files:")
        for split, path in splits.items():
            lines += [f"  - split: {split}", f"    path: {path}"]
    return ("\n".join([*lines, "---", ""])).encode()


def write_datasets_cache(
    hf_home: str | os.PathLike,
    repo_id: str,
    data_files: Mapping[str, str | os.PathLike],
    config: str = "default",
) -> Path:
    """datasets' own Arrow cache of ``repo_id`` as an earlier online ``load_dataset`` leaves it
    (``HF_HOME/datasets/org___name/<config>/0.0.0/<hash>/name-<split>.arrow``), built from local
    JSON Lines files ``{split: path}``. Offline, ``load_dataset(repo_id)`` reads it. Its folder.

    This layout is datasets' (5.x) private one; the hub cache (:func:`write_dataset_repo`) is the
    stable format.
    """
    from datasets.packaged_modules.json.json import Json

    org, name = repo_id.split("/")
    build = Path(hf_home) / "datasets" / f".build-{org}___{name}"
    builder = Json(
        cache_dir=str(build),
        dataset_name=name,
        config_name=config,
        config_id=config,
        hash=hashlib.sha1(repo_id.encode()).hexdigest()[:16],
        data_files={split: str(path) for split, path in data_files.items()},
    )
    builder.download_and_prepare()
    version_and_hash = Path(builder.cache_dir).relative_to(build / name / config)
    target = Path(hf_home) / "datasets" / f"{org}___{name}" / config
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(build / name / config, target)
    shutil.rmtree(build)
    return target / version_and_hash


def offline_env(hf_home: str | os.PathLike, **extra: str) -> dict[str, str]:
    """``os.environ`` for a subprocess that uses the cache under ``hf_home`` and never the hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.update(HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return env


def go_offline(monkeypatch: Any, hf_home: str | os.PathLike, offline: bool = True) -> None:
    """In this process: the cache under ``hf_home``, and no hub when ``offline``.

    Sets the environment and patches the constants huggingface_hub and datasets computed from it
    at import (``monkeypatch`` undoes both after the test).
    """
    import datasets.config
    from huggingface_hub import constants

    home = Path(hf_home)
    for name in ("HF_HUB_CACHE", "HF_DATASETS_CACHE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if offline:
            monkeypatch.setenv(name, "1")
        else:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for module, values in {
        constants: {
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(home / "hub"),
            "HUGGINGFACE_HUB_CACHE": str(home / "hub"),
            "HF_ASSETS_CACHE": str(home / "assets"),
            "HF_HUB_OFFLINE": offline,
        },
        datasets.config: {
            "HF_CACHE_HOME": str(home),
            "HF_DATASETS_CACHE": home / "datasets",
            "HF_MODULES_CACHE": home / "modules",
            "DOWNLOADED_DATASETS_PATH": home / "datasets" / "downloads",
            "EXTRACTED_DATASETS_PATH": home / "datasets" / "downloads" / "extracted",
            "HF_HUB_OFFLINE": offline,
            "HF_DATASETS_OFFLINE": offline,
        },
    }.items():
        for name, value in values.items():
            if hasattr(module, name):
                monkeypatch.setattr(module, name, value)


def _bytes(content: Content) -> bytes:
    return content if isinstance(content, bytes) else Path(content).read_bytes()
