"""Prompts: the built-in set, files and datasets, and every bad input named."""

from __future__ import annotations

import json

import datasets
import pytest

from windalign.llm.data import builtin_prompts, load_prompts


def test_builtin_set_is_large_varied_and_split():
    train, held = builtin_prompts("train"), builtin_prompts("heldout")
    assert len(train) + len(held) >= 300 and len(held) >= 100
    assert not set(train) & set(held) and len(set(train)) == len(train)
    assert load_prompts("builtin") == builtin_prompts()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_files_with_a_prompt_column(tmp_path, suffix):
    ds = datasets.Dataset.from_dict({"prompt": ["Say hi.", "Name a fruit."], "id": [1, 2]})
    path = tmp_path / f"p{suffix}"
    {".jsonl": ds.to_json, ".csv": ds.to_csv, ".parquet": ds.to_parquet}[suffix](str(path))
    assert load_prompts(str(path)) == ["Say hi.", "Name a fruit."]


def test_chat_prompts_from_a_dataset():
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    ds = datasets.Dataset.from_dict({"prompt": [chat]})
    assert load_prompts(ds) == [chat]


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ({"text": ["a"]}, "have no 'prompt' column \\(columns: text\\)"),
        ({"prompt": ["ok", "  "]}, "prompt 1 of .* is empty"),
        ({"prompt": [[{"role": "user"}]]}, "is not a {'role': str, 'content': str} message"),
    ],
)
def test_bad_files_are_named(tmp_path, rows, match):
    path = tmp_path / "p.jsonl"
    path.write_text(
        "".join(
            json.dumps(dict(zip(rows, v, strict=True))) + "\n"
            for v in zip(*rows.values(), strict=True)
        )
    )
    with pytest.raises(ValueError, match=match):
        load_prompts(str(path))


def test_unknown_file_type_and_split(tmp_path):
    (tmp_path / "p.txt").write_text("hi")
    with pytest.raises(ValueError, match="unknown format"):
        load_prompts(str(tmp_path / "p.txt"))
    with pytest.raises(ValueError, match="unknown built-in split 'test'"):
        load_prompts("builtin:test")
