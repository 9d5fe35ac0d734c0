"""``wind train`` end to end on a tiny model: the run directory, overrides, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from windalign.cli import main


def write(tmp_path: Path, tiny_dir: Path, **kw) -> Path:
    cfg = {
        "model": str(tiny_dir),
        "prompts": "builtin:train",
        "objective": "wind-squared",
        "num_samples": 3,
        "max_new_tokens": 6,
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "save_steps": 1,
        "use_cpu": True,
        "output_dir": str(tmp_path / "run"),
        **kw,
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_wind_train_writes_a_complete_run_directory(tiny_dir, tmp_path, capsys):
    evaluation = {"eval_prompts": "builtin:heldout", "eval_prompt_count": 3}
    cfg = write(tmp_path, tiny_dir, eval_strategy="steps", eval_steps=2, **evaluation)
    assert main(["train", "--config", str(cfg), "--learning_rate", "0.01", "--no-progress"]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["learning_rate"] == 0.01 and config["objective"] == "wind-squared"
    assert config["eta"] is None and config["preference"] == "offline"  # defaults resolved
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    assert (run / "model" / "model.safetensors").is_file()
    plots = {p.name for p in (run / "plots").iterdir()}
    assert plots >= {"loss.png", "time.png", "kl_ref.png", "eval_win_rate.png"}
    report = (run / "report.md").read_text()
    assert "## Held-out win rate against the initial policy" in report
    assert "## Before and after" in report and report.count("| trained | initial |") == 3
    assert "| queries | 12 |" in report and "## Samples of the last training round" in report
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    # a second run into the same directory is refused without --overwrite
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (
            ["--learnin_rate", "0.1"],
            "unknown config key 'learnin_rate'; did you mean 'learning_rate'",
        ),
        (["--num_samples", "1"], "num_samples = 1 is invalid; it must be an integer >= 2"),
        (["--objective", "jbond", "--num_samples", "4"], "set num_samples: 3"),
        (["--gamma", "0.1"], "objective 'wind-squared' has no hyperparameter 'gamma'"),
        (["--prompts", "nope.jsonl"], "prompt file 'nope.jsonl' does not exist"),
        (["--preference", "nope"], "unknown preference oracle 'nope'"),
        (["--max_steps"], "override --max_steps has no value"),
    ],
)
def test_bad_input_is_one_line_naming_it(tiny_dir, tmp_path, capsys, argv, match):
    cfg = write(tmp_path, tiny_dir)
    assert main(["train", "--config", str(cfg), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1, err


def test_malformed_yaml_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("objective: wind-squared\nnum_samples: [3\nbeta: 0.1\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert "is not valid YAML at line 3" in capsys.readouterr().err


def test_resume_refuses_a_different_config(tiny_dir, tmp_path, capsys):
    cfg = write(tmp_path, tiny_dir, max_steps=1)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    argv = ["train", "--config", str(cfg), "--resume_from_checkpoint", "--beta", "0.3"]
    assert main(argv) == 2
    assert "resuming with a different config: beta was None, now 0.3" in capsys.readouterr().err


def test_resume_accepts_another_baseline_cache_folder(tiny_dir, tmp_path, capsys):
    """Where the evaluation baseline's samples are kept changes no number: not a config change."""
    cfg = write(tmp_path, tiny_dir, max_steps=1)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    argv = ["train", "--config", str(cfg), "--resume_from_checkpoint", "--no-progress",
            "--eval_baseline_cache", str(tmp_path / "samples")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
