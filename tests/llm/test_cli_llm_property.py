"""Property: whatever the config, ``wind train`` and ``wind evaluate`` either finish with a
complete run directory or stop with a one-line error (exit 2) and a run directory that is
absent or says ``failed``; ``wind prepare-model`` with a bad alias or cache directory is one
line too. Never a traceback (issue 16; the pattern of tests/test_cli_property.py).

Hypothesis starts from a valid one-step config on the tiny model and replaces a few keys with
values drawn from valid and invalid ones of several types (strings for numbers, NaN, infinity,
negatives, YAML 1.1 booleans, unknown keys and names, files that are not prompts). Derandomized,
so CI sees the same examples every run.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from windalign.cli import main  # noqa: E402

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: each example trains a model
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NUMBERS = [0, 1, 2, -1, -5, 0.5, 1e-3, "2e-5", "abc", ".inf", ".nan", "no", "yes", None, [1]]
VALUES = {
    "learning_rate": [*NUMBERS, 1e9],
    "beta": NUMBERS,
    "eta": NUMBERS,
    "gamma": NUMBERS,
    "num_samples": [2, 3, 4, 1, 0, "3", 2.5],
    "per_device_train_batch_size": [1, 2, 0, -1, "two"],
    "gradient_accumulation_steps": [1, 2, 0],
    "max_steps": [1, 2, 0, -1, -5, "1"],
    "num_train_epochs": [0, 1, -1, "x"],
    "max_new_tokens": [1, 3, 0, -2],
    "temperature": [0.7, 1, 0, -1, "hot", ".inf"],
    "top_p": [1, 0.9, 0, 2],
    "prompts_per_round": [None, 2, 3, 4, 0],
    "steps_per_round": [1, 2, 3, 0],
    "objective": ["wind-squared", "dpo", "jbond", "nash-md", "sppo", "wind-nce", "nope", 3],
    "eval_strategy": ["no", "steps", "epoch", "sometimes", False],
    "eval_steps": [1, 0, -1, None],
    "save_strategy": ["no", "steps", "maybe"],
    "save_steps": [1, 0, 0.5],
    "peft": [None, {"r": 2, "lora_alpha": 4}, {"rr": 2}, "lora", {"r": -1}],
    "preference": ["heuristic", "nope", "os:path", "reward-model", 7],
    "preference_kwargs": [{}, {"temperature": 0.5}, {"temperature": -1}, {"x": 1}, "t"],
    "dtype": ["float32", "bfloat16", "float16", "auto", "float8"],
    "bf16": [False, True, "no"],
    "seed": [0, 1, -1, 1.5],
    "prompts": ["builtin:train", "builtin:nope", "{missing}", "{dir}", "{empty}", "{notjson}"],
    "eval_prompts": [None, "builtin:heldout", "{missing}"],
    "max_skipped_share": [0.5, 0, 1, 2],
    "lr_scheduler_type": ["constant", "linear", "sideways"],
    "warmup_steps": [0, 1, -1, 0.5],
    "max_grad_norm": [1, 0, -1, ".nan"],
    "learnin_rate": [0.1],
    "max_prompt_length": [1, 64, 0],
    "truncated_responses": ["judge", "lose", "win"],
}
KEYS = sorted(VALUES)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("inputs")
    (root / "empty.jsonl").write_text("")
    (root / "notjson.jsonl").write_text("{not json\n")
    (root / "dir").mkdir()
    return {
        "{missing}": str(root / "missing.jsonl"),
        "{dir}": str(root / "dir"),
        "{empty}": str(root / "empty.jsonl"),
        "{notjson}": str(root / "notjson.jsonl"),
    }


def _run(argv: list[str]) -> tuple[int, str]:
    """``wind ARGV`` in-process: (exit status, stderr); argparse's usage errors exit 2."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse: a value of the wrong type (usage + one line)
            code = exit.code
    return code, err.getvalue()


def _check(code: int, err: str, out: Path, complete: str) -> None:
    assert code in (0, 2), (code, err)
    status = (
        json.loads((out / "status.json").read_text()) if (out / "status.json").exists() else None
    )
    if code == 0:
        assert status is not None and status["status"] == "complete", err
        assert (out / complete).exists(), err
    else:
        lines = [line for line in err.strip().splitlines() if ": error: " in line]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert status is None or status["status"] == "failed", (status, err)


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(KEYS), st.integers(0, 99), max_size=3))
def test_wind_train_finishes_or_refuses_in_one_line(changes, tiny_dir, files, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    config = {
        "model": str(tiny_dir),
        "num_samples": 2,
        "max_new_tokens": 3,
        "max_steps": 1,
        "per_device_train_batch_size": 1,
        "preference": "heuristic",
        "save_strategy": "no",
        "use_cpu": True,
        "report_to": "none",
        "output_dir": str(tmp / "run"),
    }
    for key, i in changes.items():
        value = VALUES[key][i % len(VALUES[key])]
        config[key] = files.get(value, value) if isinstance(value, str) else value
    (tmp / "c.yaml").write_text(yaml.safe_dump(config))
    code, err = _run(["train", "--config", str(tmp / "c.yaml"), "--no-progress"])
    _check(code, err, tmp / "run", "model")


EVAL_OPTIONS = {
    "--samples": ["1", "0", "-1", "x"],
    "--temperature": ["0.7", "0", "-1", "nan"],
    "--max-new-tokens": ["2", "0"],
    "--batch-size": ["4", "0"],
    "--max-prompts": ["2", "0"],
    "--prompts": ["builtin:heldout", "{missing}", "{empty}", "{dir}"],
    "--preference": ["heuristic", "nope", "os:path"],
    "--dtype": ["float32", "bfloat16", "float8"],
    "--baseline": ["{tiny}", "{missing}", "{dir}", "org/not-cached"],
}


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from(sorted(EVAL_OPTIONS)), st.integers(0, 99)))
def test_wind_evaluate_finishes_or_refuses_in_one_line(changes, tiny_dir, files, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate")
    fill = {**files, "{tiny}": str(tiny_dir)}
    options = {"--baseline": "{tiny}", "--max-prompts": "2", "--max-new-tokens": "2"}
    options.update({"--preference": "heuristic", "--samples": "1", "--device": "cpu"})
    for key, i in changes.items():
        options[key] = EVAL_OPTIONS[key][i % len(EVAL_OPTIONS[key])]
    argv = ["evaluate", "--model", str(tiny_dir), "--out", str(tmp / "run")]
    argv += [x for key, value in options.items() for x in (key, fill.get(value, value))]
    code, err = _run(argv)
    _check(code, err, tmp / "run", "results.json")


@pytest.mark.parametrize("alias", ["smollm2", "nope", ""])
@pytest.mark.parametrize("cache", ["file", "/proc/windalign-cache"])
def test_wind_prepare_model_refuses_in_one_line(alias, cache, tmp_path):
    (tmp_path / "file").write_text("x")
    cache = str(tmp_path / "file") if cache == "file" else cache
    code, err = _run(["prepare-model", alias, "--cache-dir", cache])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("wind prepare-model: error:"), err
