"""THEORY.md 8, property 10: a model and a dataset named by hub id load through the standard
Hugging Face cache (written by the test in a temporary HF_HOME, offline) and train and evaluate
exactly as the same files given as local paths; an id missing from the cache is one line naming
it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from hubcache import offline_env, write_dataset_repo, write_model_repo
from safetensors.torch import load_file

WIND = [sys.executable, "-m", "windalign.cli"]
PROMPTS = ["Say hi.", "Name a fruit.", "Count to three.", "Write a word."]


def train(tmp_path: Path, env: dict, name: str, **settings) -> subprocess.CompletedProcess:
    cfg = {
        "preference": "heuristic", "objective": "wind-squared", "beta": 0.1, "num_samples": 2,
        "max_new_tokens": 6, "max_steps": 2, "per_device_train_batch_size": 2,
        "save_strategy": "no", "use_cpu": True, "seed": 3, "disable_tqdm": True,
        "eval_strategy": "steps", "eval_steps": 2, "eval_samples": 1, "eval_prompt_count": 2,
        "bf16": True, "output_dir": str(tmp_path / name), **settings,
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run(
        [*WIND, "train", "--config", str(path)], capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip


def test_hub_ids_train_exactly_as_local_files_and_a_missing_id_is_one_line(tiny_dir, tmp_path):
    hf_home = tmp_path / "hf"
    write_model_repo(hf_home, "tiny-org/tiny-llama", tiny_dir)
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    write_dataset_repo(
        hf_home, "tiny-org/prompts", {"data/train.jsonl": data, "data/test.jsonl": data}
    )
    env = offline_env(hf_home)
    by_id = train(
        tmp_path, env, "by-id", model="tiny-org/tiny-llama", ref_model="tiny-org/tiny-llama",
        prompts="tiny-org/prompts", eval_prompts="tiny-org/prompts",
    )  # fmt: skip
    assert by_id.returncode == 0, by_id.stderr[-3000:]
    local = train(
        tmp_path, env, "local", model=str(tiny_dir), ref_model=str(tiny_dir), prompts=str(data),
        eval_prompts=str(data),
    )  # fmt: skip
    assert local.returncode == 0, local.stderr[-3000:]
    a = load_file(str(tmp_path / "by-id" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "local" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    rows = [
        [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        for run in ("by-id", "local")
    ]
    assert [r.get("loss") for r in rows[0]] == [r.get("loss") for r in rows[1]]
    assert any("eval_win_rate" in r for r in rows[0])

    # wind evaluate by id: the same numbers as with the local files
    evaluated = {}
    for name, model, prompts in (("eval-id", "tiny-org/tiny-llama", "tiny-org/prompts"),
                                 ("eval-local", str(tiny_dir), str(data))):  # fmt: skip
        argv = ["evaluate", "--model", model, "--baseline", model, "--prompts", prompts,
                "--preference", "heuristic", "--samples", "2", "--max-new-tokens", "5",
                "--out", str(tmp_path / name)]  # fmt: skip
        done = subprocess.run([*WIND, *argv], capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        evaluated[name] = json.loads((tmp_path / name / "results.json").read_text())["summary"]
    assert evaluated["eval-id"] == evaluated["eval-local"]
    assert evaluated["eval-id"]["prompts"] == len(PROMPTS)

    missing = train(tmp_path, env, "missing", model="tiny-org/not-downloaded", eval_strategy="no")
    assert missing.returncode == 2
    err = missing.stderr.strip().splitlines()
    assert len(err) == 1 and "'tiny-org/not-downloaded' is not in the Hugging Face cache" in err[0]
    assert "HF_HUB_OFFLINE" in err[0]
    assert not (tmp_path / "missing" / "metrics.jsonl").exists()
