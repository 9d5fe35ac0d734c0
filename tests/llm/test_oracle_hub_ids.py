"""Model oracles named by hub id load through the Hugging Face cache (written by the test in a
temporary HF_HOME, offline) exactly as from the same files in a folder; an id missing from the
cache, or cached without its weights, is one ``ValueError`` line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hubcache import go_offline, write_model_repo, write_repo
from tiny import tiny_reward_model, tiny_tokenizer

from windalign.preferences import ModelJudge, RewardModelOracle

PROMPTS = ["Name a fruit.", "Say hi."]
RESPONSES = [["An apple.", "Apple", "no"], ["Hi!", "Hello there.", ""]]


def save_reward_model(path: Path) -> Path:
    """A tiny random one-label Llama classifier and its tokenizer, saved to ``path``."""
    tok = tiny_tokenizer()
    tiny_reward_model(tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text.strip(), text
    return text


def test_a_missing_hub_id_is_one_line_naming_it(monkeypatch, tmp_path):
    go_offline(monkeypatch, tmp_path / "hf")  # an empty cache, no hub
    with pytest.raises(ValueError) as err:
        RewardModelOracle("tiny-org/no-such-reward", device="cpu")
    text = one_line(err)
    assert "the reward model" in text and "'tiny-org/no-such-reward'" in text
    assert "not in the Hugging Face cache" in text and "HF_HUB_OFFLINE" in text
    with pytest.raises(ValueError) as err:
        ModelJudge("tiny-org/no-such-judge", device="cpu")
    assert "'tiny-org/no-such-judge' is not in the Hugging Face cache" in one_line(err)


def test_a_hub_id_cached_without_its_weights_is_one_line_naming_it(monkeypatch, tmp_path):
    folder = save_reward_model(tmp_path / "rm")
    files = {p.name: p for p in folder.iterdir() if not p.name.endswith(".safetensors")}
    write_repo(tmp_path / "hf", "tiny-org/half-reward", files)
    go_offline(monkeypatch, tmp_path / "hf")
    with pytest.raises(ValueError) as err:
        RewardModelOracle("tiny-org/half-reward", device="cpu")
    assert "the reward model (preference_kwargs.model) 'tiny-org/half-reward'" in one_line(err)


def test_cached_hub_ids_load_and_score_as_their_folders(monkeypatch, tmp_path, tiny_dir):
    folder = save_reward_model(tmp_path / "rm")
    write_model_repo(tmp_path / "hf", "tiny-org/tiny-reward", folder)
    write_model_repo(tmp_path / "hf", "tiny-org/tiny-judge", tiny_dir)
    go_offline(monkeypatch, tmp_path / "hf")

    by_id = RewardModelOracle("tiny-org/tiny-reward", device="cpu")
    local = RewardModelOracle(str(folder), device="cpu")
    assert by_id.name == "reward-model(tiny-org/tiny-reward)"
    P = by_id(PROMPTS, RESPONSES)
    torch.testing.assert_close(P, local(PROMPTS, RESPONSES), rtol=0, atol=0, equal_nan=True)
    assert not torch.isnan(P[0, 0, 1]) and by_id.counters.calls == 6

    judge = ModelJudge("tiny-org/tiny-judge", device="cpu", pairs="cycle")
    same = ModelJudge(str(tiny_dir), device="cpu", pairs="cycle")
    P = judge(PROMPTS, RESPONSES)
    torch.testing.assert_close(P, same(PROMPTS, RESPONSES), rtol=0, atol=0, equal_nan=True)
    assert judge.name == "judge(tiny-org/tiny-judge)" and judge.counters.queries == 6
