"""benchmarks/llm_sweep.py (issue 18): the tuning grid, the choice on validation, the final runs
on test, and the run summaries that are committed as they land."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def sweep(benchmark_script):
    return benchmark_script("llm_sweep")


def test_every_method_is_tuned_on_three_learning_rates_then_its_own_knob(sweep, tmp_path):
    for method in sweep.METHODS:
        first = sweep.grid(method, tmp_path)  # nothing summarized: the learning rates only
        assert [s["learning_rate"] for s in first] == list(sweep.LEARNING_RATES)
        assert len(sweep.LEARNING_RATES) >= 3
        knob = sweep.KNOBS.get(method)
        if knob is None:
            assert all(s.keys() == {"learning_rate"} for s in first)
            continue
        name, values = knob
        assert len(values) >= 2 and all(s[name] == values[0] for s in first)
        wins = [0.5, 0.6, 0.55]  # the second learning rate wins
        for setting, win in zip(first, wins, strict=True):
            summary(tmp_path / "tune" / method / sweep.setting_name(setting) / "seed0", win)
        settings = sweep.grid(method, tmp_path)
        assert settings[:3] == first
        assert settings[3:] == [first[1] | {name: v} for v in values[1:]]
    assert sweep.KNOBS["jbond"][0] == "gamma" and max(sweep.KNOBS["jbond"][1]) >= 0.3


def test_every_method_with_a_kl_coefficient_also_tunes_it_at_its_best_setting(sweep, tmp_path):
    """After its own knob, a method whose objective has ``beta`` (a pull towards the reference)
    tries :data:`KL_KNOB`'s values at its best setting so far; SPPO and Best-of-K distillation,
    which have none, stop at their own knob."""
    assert set(sweep.KL_KNOB[1]) and all(0 < b < 0.1 for b in sweep.KL_KNOB[1])
    for method in sweep.METHODS:
        folder = tmp_path / method
        settings, grown = sweep.grid(method, folder), True
        while grown:  # the grid grows as summaries land, and is chosen from once it stops
            assert sweep.chosen(folder, method) is None
            for i, setting in enumerate(settings):
                path = folder / "tune" / method / sweep.setting_name(setting) / "seed0"
                if not path.exists():
                    summary(path, 0.5 + 0.01 * i)  # the latest setting wins
            grown = len(sweep.grid(method, folder)) > len(settings)
            settings = sweep.grid(method, folder)
        assert sweep.chosen(folder, method) == settings[-1]
        has_beta = "beta" in sweep.HYPER[method]
        own = len(sweep.KNOBS[method][1]) - 1 if method in sweep.KNOBS else 0
        assert len(settings) == 3 + own + has_beta * len(sweep.KL_KNOB[1])
        assert has_beta == (method not in ("sppo", "bok-distill"))
        tail = settings[len(settings) - len(sweep.KL_KNOB[1]) :]
        if has_beta:
            best = settings[-len(sweep.KL_KNOB[1]) - 1]
            assert tail == [best | {"beta": b} for b in sweep.KL_KNOB[1]]
        else:
            assert all("beta" not in s for s in settings)


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
    def put(setting, win):
        summary(tmp_path / "tune" / "jbond" / sweep.setting_name(setting) / "seed0", win)

    first = sweep.grid("jbond")
    for setting, win in zip(first[:2], (0.5, 0.7), strict=True):
        put(setting, win)
    assert sweep.chosen(tmp_path, "jbond") is None  # a learning rate still running
    assert sweep.jobs("tune", tmp_path, ["jbond"]) == [("jbond", s, 0) for s in first]
    put(first[2], 0.6)
    settings = sweep.grid("jbond", tmp_path)
    assert len(settings) == 5 and all(s["learning_rate"] == 2e-5 for s in settings[3:])
    assert sweep.chosen(tmp_path, "jbond") is None  # the knob's values still running
    put(settings[3], 0.9)
    assert sweep.chosen(tmp_path, "jbond") is None
    put(settings[4], 0.65)
    assert sweep.chosen(tmp_path, "jbond") is None  # its KL coefficient still to try
    settings = sweep.grid("jbond", tmp_path)  # beta's values at the best setting so far
    assert settings[5:] == [settings[3] | {"beta": b} for b in sweep.KL_KNOB[1]]
    put(settings[5], 0.95)
    put(settings[6], 0.7)
    assert sweep.chosen(tmp_path, "jbond") == settings[5]
    jobs = sweep.jobs("final", tmp_path, ["jbond", "dpo"])  # dpo not tuned yet: no final run
    assert jobs == [("jbond", settings[5], seed) for seed in sweep.SEEDS]
    for setting, win in zip(sweep.grid("dpo"), (0.5, 0.5, 0.8), strict=True):
        summary(tmp_path / "tune" / "dpo" / sweep.setting_name(setting) / "seed0", win)
    for setting in sweep.grid("dpo", tmp_path)[3:]:  # beta 0.03, 0.01 at the best rate: lower
        summary(tmp_path / "tune" / "dpo" / sweep.setting_name(setting) / "seed0", 0.6)
    dpo = sweep.grid("dpo")[2]
    # seed by seed: every tuned method has a seed before any has a second
    assert sweep.jobs("final", tmp_path, ["jbond", "dpo"]) == [
        (m, s, seed) for seed in sweep.SEEDS for m, s in (("jbond", settings[5]), ("dpo", dpo))
    ]


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
    settings = sweep.grid("bok-distill")
    for setting, win in zip(settings, (0.52, 0.6, 0.55), strict=True):
        summary(tmp_path / "tune" / "bok-distill" / sweep.setting_name(setting) / "seed0", win)
    best = tmp_path / "tune" / "bok-distill" / sweep.setting_name(settings[1]) / "seed0"
    (best / "status.json").write_text('{"status": "failed", "exit": 1}')
    assert sweep.chosen(tmp_path, "bok-distill") == settings[2]
    out = tmp_path / "runs"
    retry = out / "tune" / "bok-distill" / sweep.setting_name(settings[1]) / "seed0"
    summary(retry, 0.6)
    sweep.keep(retry, out, tmp_path, False, {"stage": "tune"})
    assert sweep.chosen(tmp_path, "bok-distill") == settings[1]
    for setting in settings:  # every setting failed: nothing is tuned, no final run is planned
        folder = tmp_path / "tune" / "bok-distill" / sweep.setting_name(setting) / "seed0"
        (folder / "status.json").write_text('{"status": "failed", "exit": 1}')
    assert sweep.chosen(tmp_path, "bok-distill") is None
    assert sweep.jobs("final", tmp_path, ["bok-distill"]) == []


def test_the_workers_take_up_the_knob_values_as_the_learning_rates_land(
    sweep, tmp_path, monkeypatch
):
    ran = []

    def fake_run(out, stage, method, setting, seed, summaries, commit):
        ran.append((method, sweep.setting_name(setting)))
        win = 0.6 if setting["learning_rate"] == 4e-5 else 0.5
        with sweep.LOCK:  # as keep writes a summary
            summary(summaries / stage / method / sweep.setting_name(setting) / f"seed{seed}", win)

    monkeypatch.setattr(sweep, "run", fake_run)
    monkeypatch.setattr(sweep.time, "sleep", lambda s: None)
    args = sweep.argparse.Namespace(
        stage="tune", out=tmp_path / "runs", summaries=tmp_path, methods=["nash-md", "dpo"],
        workers=2, commit=False,
    )  # fmt: skip
    sweep.drain(args)
    assert sorted(ran) == sorted([("dpo", "lr1e-05"), ("dpo", "lr2e-05"), ("dpo", "lr4e-05")]
                                 + [("nash-md", f"lr{lr}_alpha0.5")
                                    for lr in ("1e-05", "2e-05", "4e-05")]
                                 + [("nash-md", "lr4e-05_alpha0.125")]
                                 + [("dpo", f"lr4e-05_beta{b}") for b in ("0.03", "0.01")]
                                 + [("nash-md", f"lr4e-05_alpha0.5_beta{b}")
                                    for b in ("0.03", "0.01")])  # fmt: skip
    assert sweep.chosen(tmp_path, "nash-md") == {"learning_rate": 4e-5, "alpha": 0.5}


def test_a_final_run_keeps_a_checkpoint_per_evaluation_and_resumes_from_it(
    sweep, tmp_path, monkeypatch
):
    commands = []

    def fake_subprocess_run(cmd, stdout, stderr):
        commands.append(cmd)
        return sweep.subprocess.CompletedProcess(cmd, 1)

    monkeypatch.setattr(sweep.subprocess, "run", fake_subprocess_run)
    setting = {"learning_rate": 2e-5}
    sweep.run(tmp_path, "final", "dpo", setting, 0, tmp_path / "kept", False)
    config = (tmp_path / "final" / "dpo" / "lr2e-05" / "seed0.yaml").read_text()
    assert "save_steps: 12" in config and "save_total_limit: 1" in config
    assert "--overwrite" in commands[-1]
    monkeypatch.setattr(sweep, "last_complete_checkpoint", lambda path: path / "checkpoint-12")
    (tmp_path / "final" / "dpo" / "lr2e-05" / "seed0" / "status.json").unlink()
    sweep.run(tmp_path, "final", "dpo", setting, 0, tmp_path / "kept2", False)
    assert "--resume-from-checkpoint" in commands[-1] and "--overwrite" not in commands[-1]


def test_targets_summarized_elsewhere_are_not_computed_again(sweep, tmp_path, monkeypatch, capsys):
    """A fresh checkout has no run folders but the committed summaries: the targets they hold are
    skipped without loading a model."""
    import windalign.lm.loading

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for targets already summarized")

    monkeypatch.setattr(windalign.lm.loading, "resolve_model", refuse)
    for seed in sweep.SEEDS:
        for n in sweep.BEST_OF:
            summary(tmp_path / "kept" / "targets" / f"best-of-{n}" / f"seed{seed}", 0.56)
    sweep.targets(tmp_path / "runs", tmp_path / "kept", False)
    assert "every seed summarized" in capsys.readouterr().out
