"""benchmarks/llm_sweep.py (issue 18): the tuning grid, the choice on validation, the final runs
on test, and the run summaries that are committed as they land."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sweep():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports llm_results beside it
    try:
        spec = importlib.util.spec_from_file_location(
            "llm_sweep", ROOT / "benchmarks" / "llm_sweep.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_every_method_is_tuned_on_three_learning_rates_and_its_own_knob(sweep):
    for method in sweep.METHODS:
        settings = sweep.grid(method)
        rates = {s["learning_rate"] for s in settings}
        assert len(rates) >= 3
        knob = sweep.KNOBS.get(method)
        if knob is not None:
            assert {s[knob[0]] for s in settings} == set(knob[1]) and len(knob[1]) >= 2
            assert len(settings) == len(rates) * len(knob[1])
        else:
            assert all(s.keys() == {"learning_rate"} for s in settings)
    assert sweep.KNOBS["jbond"][0] == "gamma" and max(sweep.KNOBS["jbond"][1]) >= 0.3


def test_tuning_sees_validation_only_and_the_final_runs_test_every_quarter(sweep):
    tune, final = sweep.stage_config("tune"), sweep.stage_config("final")
    assert tune["eval_prompts"] == "builtin:validation" and final["eval_prompts"] == "builtin:test"
    assert final["max_steps"] * 16 >= 4 * 192  # at least 4x the first sweep's 192 samples
    assert final["max_steps"] == 4 * final["eval_steps"]
    assert tune["eval_prompt_count"] is None is final["eval_prompt_count"]  # every prompt
    assert len(sweep.SEEDS) >= 3


def summary(folder: Path, win: float | None) -> None:
    folder.mkdir(parents=True)
    rows = [{"step": 1, "loss": 0.1}] + ([{"step": 24, "eval_win_rate": win}] if win else [])
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "status.json").write_text('{"status": "complete"}\n')


def test_the_choice_is_the_best_validation_win_rate_once_the_whole_grid_is_in(sweep, tmp_path):
    settings = sweep.grid("jbond")
    wins = [0.50 + 0.01 * i for i in range(len(settings))]
    wins[4] = 0.9
    for setting, win in list(zip(settings, wins, strict=True))[:-1]:
        summary(tmp_path / "tune" / "jbond" / sweep.setting_name(setting) / "seed0", win)
    assert sweep.chosen(tmp_path, "jbond") is None  # one setting still running
    summary(tmp_path / "tune" / "jbond" / sweep.setting_name(settings[-1]) / "seed0", wins[-1])
    assert sweep.chosen(tmp_path, "jbond") == settings[4]
    jobs = sweep.jobs("final", tmp_path, ["jbond", "dpo"])  # dpo not tuned yet: no final run
    assert jobs == [("jbond", settings[4], seed) for seed in sweep.SEEDS]


def test_a_finished_run_keeps_its_small_files_only(sweep, tmp_path):
    out, kept = tmp_path / "runs", tmp_path / "kept"
    run = out / "final" / "dpo" / "lr2e-05" / "seed1"
    summary(run, 0.55)
    (run / "evaluations.jsonl").write_text('{"step": 12, "prompts": []}\n')
    (run / "model").mkdir()
    (run / "model" / "model.safetensors").write_bytes(b"0" * 100)
    (run.parent / "seed1.yaml").write_text("objective: dpo\n")
    sweep.keep(run, out, kept, False, {"stage": "final", "method": "dpo", "seed": 1})
    dest = kept / "final" / "dpo" / "lr2e-05" / "seed1"
    names = sorted(p.name for p in dest.iterdir())
    assert names == ["config.yaml", "evaluations.jsonl", "metrics.jsonl", "run.json",
                     "status.json"]  # fmt: skip
    assert (dest / "config.yaml").read_text() == "objective: dpo\n"


def test_a_failed_setting_is_never_chosen_and_a_retry_replaces_its_summary(sweep, tmp_path):
    settings = sweep.grid("dpo")
    for setting, win in zip(settings, (0.52, 0.6, 0.55), strict=True):
        summary(tmp_path / "tune" / "dpo" / sweep.setting_name(setting) / "seed0", win)
    best = tmp_path / "tune" / "dpo" / sweep.setting_name(settings[1]) / "seed0"
    (best / "status.json").write_text('{"status": "failed", "exit": 1}')
    assert sweep.chosen(tmp_path, "dpo") == settings[2]
    out = tmp_path / "runs"
    retry = out / "tune" / "dpo" / sweep.setting_name(settings[1]) / "seed0"
    summary(retry, 0.6)
    sweep.keep(retry, out, tmp_path, False, {"stage": "tune"})
    assert sweep.chosen(tmp_path, "dpo") == settings[1]
