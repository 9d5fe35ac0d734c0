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
    with pytest.raises(ValueError, match="unknown built-in split 'dev'"):
        load_prompts("builtin:dev")


def test_the_builtin_heldout_prompts_split_into_validation_and_test_by_category():
    """Tuning sees only ``validation`` (2 prompts per category); reported numbers come from
    ``test`` (the other 98); ``heldout`` is both, in file order; none is a training prompt."""
    from collections import Counter
    from importlib.resources import files

    rows = [json.loads(x) for x in (files("windalign.llm") / "builtin_prompts.jsonl").read_text()
            .splitlines()]  # fmt: skip
    validation, test = builtin_prompts("validation"), builtin_prompts("test")
    assert len(validation) == 28 and len(test) == 98 and not set(validation) & set(test)
    held = set(builtin_prompts("heldout"))
    assert builtin_prompts("heldout") == [r["prompt"] for r in rows if r["prompt"] in held]
    assert held == set(validation) | set(test) and not held & set(builtin_prompts("train"))
    per_category = Counter(r["category"] for r in rows if r["split"] == "validation")
    assert set(per_category.values()) == {2} and len(per_category) == 14
