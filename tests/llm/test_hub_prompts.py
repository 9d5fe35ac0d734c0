"""Prompts by Hugging Face hub dataset id, from a cache written in the test (never the network).

The repo ``org/prompts`` has two subsets: ``default`` (a ``prompt`` text column) and ``chat``
(a ``messages`` column of chats, TRL's conversational form), each with a ``train`` and a
``test`` split, in the hub-cache layout ``hf download`` leaves (see ``hubcache.py``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from hubcache import (
    dataset_card,
    go_offline,
    offline_env,
    write_dataset_repo,
    write_datasets_cache,
)

from windalign.llm.data import load_prompts

REPO = "org/prompts"
ROWS = {
    "default/train.jsonl": [{"prompt": t} for t in ("Say hi.", "Name a fruit.", "Count to 3.")],
    "default/test.jsonl": [{"prompt": t} for t in ("Name a colour.", "Spell cat.")],
    "chat/train.jsonl": [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": m}]}
        for m in ("Hi", "Why is the sky blue?")
    ],
    "chat/test.jsonl": [{"messages": [{"role": "user", "content": "Tell a joke."}]}],
}
CONFIGS = {
    name: {split: f"{name}/{split}.jsonl" for split in ("train", "test")}
    for name in ("default", "chat")
}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def src(tmp_path) -> Path:
    """The repo's files on local disk (what loading them directly gives is the reference)."""
    for rel, rows in ROWS.items():
        _write_jsonl(tmp_path / "src" / rel, rows)
    return tmp_path / "src"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty HF_HOME, offline."""
    go_offline(monkeypatch, tmp_path / "hf")
    return tmp_path / "hf"


@pytest.fixture
def hub(home, src) -> str:
    """``org/prompts`` downloaded into ``home``'s hub cache; its commit sha."""
    files = {rel: src / rel for rel in ROWS}
    return write_dataset_repo(home, REPO, {**files, "README.md": dataset_card(CONFIGS)})


def test_hub_id_gives_the_rows_of_its_files(hub, src):
    assert load_prompts(REPO) == load_prompts(str(src / "default/train.jsonl"))
    assert load_prompts(REPO, split="test") == ["Name a colour.", "Spell cat."]
    chats = load_prompts(REPO, "messages", subset="chat")
    assert chats == load_prompts(str(src / "chat/train.jsonl"), "messages")
    assert chats[1] == ROWS["chat/train.jsonl"][1]["messages"]
    assert load_prompts(REPO, "messages", subset="chat", split="test") == [
        [{"role": "user", "content": "Tell a joke."}]
    ]
    assert load_prompts(REPO, split="train[:2]") == ["Say hi.", "Name a fruit."]


def test_hub_id_in_a_fresh_process_with_only_the_environment(hub, home, src):
    """The libraries read HF_HOME and HF_HUB_OFFLINE at import: nothing patched here."""
    code = (
        "import json; from windalign.llm.data import load_prompts; print(json.dumps(["
        f"load_prompts({REPO!r}, split='test'), "
        f"load_prompts({REPO!r}, 'messages', subset='chat', split='test')]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=offline_env(home), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    texts, chats = json.loads(out.stdout.splitlines()[-1])
    assert texts == load_prompts(str(src / "default/test.jsonl"))
    assert chats == [ROWS["chat/test.jsonl"][0]["messages"]]


def test_revision_picks_a_commit(home, src):
    first = write_dataset_repo(home, REPO, {"train.jsonl": src / "default/train.jsonl"})
    write_dataset_repo(home, REPO, {"train.jsonl": src / "default/test.jsonl"})
    assert load_prompts(REPO) == ["Name a colour.", "Spell cat."]
    assert load_prompts(REPO, revision=first) == ["Say hi.", "Name a fruit.", "Count to 3."]
    with pytest.raises(ValueError, match="'org/prompts' at revision 'v9' is not in the Hugging"):
        load_prompts(REPO, revision="v9")


def test_datasets_own_cache_is_read_first(home, src):
    """A dataset an earlier online ``load_dataset`` cached loads offline without a snapshot."""
    write_datasets_cache(
        home, REPO, {"train": src / "default/test.jsonl", "test": src / "default/train.jsonl"}
    )
    assert load_prompts(REPO) == ["Name a colour.", "Spell cat."]
    assert load_prompts(REPO, split="test") == load_prompts(str(src / "default/train.jsonl"))


def test_a_dataset_not_in_the_cache_says_how_to_get_it(home):
    with pytest.raises(ValueError) as err:
        load_prompts("org/missing")
    message = str(err.value)
    assert "\n" not in message
    assert f"dataset 'org/missing' is not in the Hugging Face cache (HF_HOME={home})" in message
    assert "the hub is offline (HF_HUB_OFFLINE=1)" in message
    assert "`hf download org/missing --repo-type dataset`" in message


def test_an_unreachable_hub_falls_back_to_the_snapshot_or_says_so(home, hub, monkeypatch):
    """Online with no route to the hub (a stand-in: huggingface_hub retries for ~30 s)."""
    go_offline(monkeypatch, home, offline=False)
    load_dataset = datasets.load_dataset

    def unreachable(path, *args, **kwargs):
        if path in (REPO, "org/missing"):
            raise ConnectionError(f"Couldn't reach '{path}' on the Hub (LocalEntryNotFoundError)")
        return load_dataset(path, *args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    assert load_prompts(REPO, split="test") == ["Name a colour.", "Spell cat."]
    with pytest.raises(ValueError, match="'org/missing' is not in the Hugging Face cache") as err:
        load_prompts("org/missing")
    assert "could not be reached (ConnectionError: Couldn't reach" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "validation"}, r"has no split 'validation' \(splits: train, test\)"),
        ({"subset": "nope"}, r"has no subset 'nope' \(subsets: default, chat\)"),
        ({"subset": "chat"}, r"have no 'prompt' column \(columns: messages\)"),
    ],
)
def test_bad_split_subset_or_column_is_one_line(hub, kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        load_prompts(REPO, **kwargs)
    assert "\n" not in str(err.value) and "org/prompts" in str(err.value)


def test_save_to_disk_folders(tmp_path, home):
    ds = datasets.Dataset.from_dict({"prompt": ["Say hi.", "Name a fruit."]})
    ds.save_to_disk(str(tmp_path / "one"))
    assert load_prompts(str(tmp_path / "one")) == ["Say hi.", "Name a fruit."]
    chat = [{"role": "user", "content": "Hi"}]
    datasets.DatasetDict(
        train=ds, test=datasets.Dataset.from_dict({"prompt": [chat]})
    ).save_to_disk(str(tmp_path / "dict"))
    assert load_prompts(tmp_path / "dict", split="test") == [chat]
    with pytest.raises(ValueError, match=r"has no split 'dev' \(splits: train, test\)"):
        load_prompts(str(tmp_path / "dict"), split="dev")


def test_folder_of_data_files(home, src):
    assert load_prompts(str(src / "default"), split="test") == ["Name a colour.", "Spell cat."]
    assert load_prompts(str(src / "chat"), "messages", split="test") == [
        ROWS["chat/test.jsonl"][0]["messages"]
    ]


def test_column_wise_chats_become_message_lists():
    """A datasets ``Sequence`` of messages reads back as ``{"role": [...], "content": [...]}``."""
    message = {"role": datasets.Value("string"), "content": datasets.Value("string")}
    features = datasets.Features({"prompt": datasets.Sequence(message)})
    ds = datasets.Dataset.from_dict(
        {"prompt": [{"role": ["system", "user"], "content": ["Be brief.", "Hi"]}]}, features
    )
    assert load_prompts(ds) == [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    ]


@pytest.mark.parametrize(
    ("source", "error", "match"),
    [
        ("prompts", ValueError, "'prompts' are not an existing file or folder nor a hub dataset"),
        ("a/b/c", ValueError, "nor a hub dataset id 'org/name'"),
        ("org/missing.jsonl", FileNotFoundError, "does not exist"),
    ],
)
def test_strings_that_are_no_source(home, source, error, match):
    with pytest.raises(error, match=match):
        load_prompts(source)
