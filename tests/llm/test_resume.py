"""THEORY.md 8, property 9: a run killed with SIGKILL and resumed ends with the same weights.

Each case runs ``wind train`` three times in subprocesses: uninterrupted; killed (SIGKILL) at a
moment after its third checkpoint is complete (so the kill lands mid-step, mid-round or during a
later checkpoint's save); resumed with ``--resume_from_checkpoint``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from windalign.llm.state import COMPLETE

WIND = [sys.executable, "-c", "import sys; from windalign.cli import main; sys.exit(main())"]
CASES = {
    # two minibatches per round, two steps per round: checkpoints land mid-round
    "wind-squared": {"prompts_per_round": 4, "steps_per_round": 2, "beta": 0.1},
    # gradient accumulation, the EMA anchor in the checkpoint
    "jbond": {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 2, "gamma": 0.3},
}


def write_config(tmp_path: Path, tiny_dir: Path, objective: str) -> Path:
    cfg = {
        "model": str(tiny_dir),
        "prompts": "builtin:train",
        "preference": "heuristic",
        "objective": objective,
        "num_samples": 3,
        "max_new_tokens": 8,
        "max_steps": 7,
        "per_device_train_batch_size": 2,
        "save_steps": 1,
        "learning_rate": 0.003,
        "use_cpu": True,
        "seed": 11,
        "disable_tqdm": True,
        **CASES[objective],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def wind_train(config: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [*WIND, "train", "--config", str(config), "--output_dir", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


@pytest.mark.parametrize("objective", sorted(CASES))
def test_sigkill_then_resume_ends_with_the_same_weights(tiny_dir, tmp_path, objective):
    config = write_config(tmp_path, tiny_dir, objective)
    done = wind_train(config, tmp_path / "straight")
    assert done.returncode == 0, done.stderr[-2000:]

    killed = tmp_path / "killed"
    cmd = [*WIND, "train", "--config", str(config), "--output_dir", str(killed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (killed / "checkpoint-3" / COMPLETE).exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before checkpoint-3"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((killed / "status.json").read_text())["status"] == "running"
    assert not (killed / "model").exists()
    # a checkpoint folder without its completion marker is never resumed from
    fake = killed / "checkpoint-99"
    fake.mkdir()
    (fake / "trainer_state.json").write_text("{}")
    # and metrics logged after the last complete checkpoint are dropped on resume
    with open(killed / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 99, "loss": 0.0, "queries": 0}) + "\n")

    resumed = wind_train(config, killed, "--resume_from_checkpoint")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not fake.exists()
    a, b = weights(tmp_path / "straight"), weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # the metrics log of the resumed run is the uninterrupted run's, step for step
    rows = lambda run: [  # noqa: E731
        (r["step"], r["loss"], r["queries"])
        for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
        if "loss" in r
    ]
    assert rows(killed) == rows(tmp_path / "straight")
    assert json.loads((killed / "status.json").read_text())["status"] == "complete"


def test_resuming_cuts_the_metrics_and_the_evaluations_back_to_the_checkpoint(tmp_path):
    """Rows logged after the resumed step (a killed run's) go; a run without evaluations gets
    no evaluations.jsonl."""
    from windalign.llm.resume import EVALUATIONS, METRICS, ResumableTrainer

    for name in (METRICS, EVALUATIONS):
        rows = [json.dumps({"step": s}) for s in (1, 2, 3, 4)] + ['{"step": 5, "cut by a ki']
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    ResumableTrainer._clean_run_dir(None, tmp_path, str(tmp_path / "checkpoint-2"))
    for name in (METRICS, EVALUATIONS):
        steps = [json.loads(x)["step"] for x in (tmp_path / name).read_text().splitlines()]
        assert steps == [1, 2], name
    fresh = tmp_path / "fresh"
    ResumableTrainer._clean_run_dir(None, fresh, None)
    assert (fresh / METRICS).read_text() == "" and not (fresh / EVALUATIONS).exists()
