"""``wind train`` / ``wind evaluate`` / ``wind prepare-model`` under bad input (issue 16): the
documented spellings work, nothing finishes silently wrong, every refusal is one line."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from windalign.cli import dashed, main
from windalign.cli.options import import_from_cwd
from windalign.cli.train import objective_view, parse_overrides, split_config
from windalign.config import load_yaml
from windalign.llm import WINDConfig, WINDTrainer
from windalign.llm.evaluate import caveats, mean_interval
from windalign.llm.launch import launch_command
from windalign.llm.state import mark_complete, resumable_checkpoint
from windalign.llm.trainer import NonFiniteLossError, SkippedQueriesError
from windalign.preferences import PreferenceOracle, as_oracle

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "demo.yaml"


def cfg_file(tmp_path: Path, tiny_dir: Path, **kw) -> Path:
    cfg = {
        "model": str(tiny_dir),
        "preference": "heuristic",
        "num_samples": 3,
        "max_new_tokens": 4,
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "save_strategy": "no",
        "use_cpu": True,
        "output_dir": str(tmp_path / "run"),
        **kw,
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def one_line_error(capsys, argv: list[str]) -> str:
    """``wind ARGV`` exits 2 with one error line on stderr (after any notes); that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith("wind train: note:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---- the front door --------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["2e-5", "2E-5", "2.0e-5", "0.00002", ".00002"])
def test_numbers_read_as_people_write_them(spelling):
    _, args = split_config({**parse_overrides(["--learning_rate", spelling])})
    assert args.learning_rate == pytest.approx(2e-5)
    assert load_yaml(f"beta: {spelling}") == {"beta": pytest.approx(2e-5)}


def test_demo_config_with_a_learning_rate_override_validates():
    """The README's `wind train --config configs/demo.yaml --learning_rate 2e-5` (was a string)."""
    file = load_yaml(DEMO.read_text())
    raw, _ = objective_view(file, parse_overrides(["--learning_rate", "2e-5"]), "demo")
    _, args = split_config(raw)
    assert isinstance(args.learning_rate, float) and args.learning_rate == 2e-5


@pytest.mark.parametrize("key", ["eval_strategy", "save_strategy"])
def test_no_is_a_strategy_not_false(key):
    _, args = split_config(parse_overrides([f"--{key}", "no"]))
    assert str(getattr(args, key).value) == "no"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (
            ["--learning_rate", "abc"],
            "learning_rate = 'abc' is invalid; it must be a finite number",
        ),
        (["--learning_rate", ".inf"], "learning_rate = inf is invalid"),
        (["--learning_rate", "-1"], "learning_rate = -1 is invalid"),
        (["--per_device_train_batch_size", "0"], "per_device_train_batch_size = 0 is invalid"),
        (["--max_steps", "-5", "--num_train_epochs", "0"], "max_steps = -5 is invalid"),
        (["--max_steps", "0", "--num_train_epochs", "0"], "max_steps = 0 is invalid"),
        (["--num_train_epochs", "0"], "num_train_epochs = 0 is invalid"),
        (["--seed", "1.5"], "seed = 1.5 is invalid; it must be an integer"),
        (["--bf16", "yes"], "bf16 = 'yes' is invalid; it must be true or false"),
        (["--max_skipped_share", "2"], "max_skipped_share = 2 is invalid"),
    ],
)
def test_inherited_keys_are_checked_before_a_model_loads(override, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(".", r"\.")):
        split_config(parse_overrides(override))


@pytest.mark.parametrize("steps", [1, 3])
def test_max_steps_decides_when_num_train_epochs_is_zero(steps):
    _, args = split_config(parse_overrides(["--max_steps", str(steps), "--num_train_epochs", "0"]))
    assert args.max_steps == steps and args.num_train_epochs == 0


def test_max_steps_3_with_no_epochs_trains_3_steps(capsys, tiny_dir, tmp_path):
    cfg = cfg_file(tmp_path, tiny_dir, max_steps=3, num_train_epochs=0)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [r["step"] for r in map(json.loads, rows) if "loss" in r] == [1, 2, 3]


def test_a_boolean_seed_is_refused_naming_seed(capsys, tiny_dir, tmp_path):
    cfg = cfg_file(tmp_path, tiny_dir, model=str(tmp_path / "missing-model"))
    err = one_line_error(capsys, ["train", "--config", str(cfg), "--seed", "true"])
    assert "seed = True is invalid; it must be an integer" in err, err


def test_eval_strategy_without_eval_prompts_is_refused_before_the_model_loads(
    capsys, tiny_dir, tmp_path
):
    cfg = cfg_file(tmp_path, tiny_dir, model=str(tmp_path / "missing-model"))
    argv = ["train", "--config", str(cfg), "--eval_strategy", "steps", "--eval_steps", "1"]
    err = one_line_error(capsys, argv)
    assert "eval_strategy = 'steps' evaluates on eval_prompts, which is not set" in err, err


@pytest.mark.parametrize("how", ["fsdp launch", "fsdp key", "deepspeed launch"])
def test_a_baseline_cache_under_fsdp_or_deepspeed_is_refused_before_the_model_loads(
    capsys, tiny_dir, tmp_path, monkeypatch, how
):
    """FSDP / ZeRO ranks hold shards of the weights the cache files samples under: refused
    whether ``accelerate launch`` (its environment) or the ``fsdp`` key asks for sharding;
    without it the same line passes validation (and then fails on the missing model)."""
    cfg = cfg_file(tmp_path, tiny_dir, model=str(tmp_path / "missing-model"))
    argv = ["train", "--config", str(cfg), "--eval_baseline_cache", str(tmp_path / "samples")]
    assert "missing-model" in one_line_error(capsys, argv)
    if how.endswith("launch"):
        monkeypatch.setenv(f"ACCELERATE_USE_{how.split()[0].upper()}", "true")
    else:
        argv += ["--fsdp", "full_shard"]
    err = one_line_error(capsys, argv)
    assert "eval_baseline_cache works with one process or DDP, not with FSDP" in err, err


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is not None, reason="it is installed")
def test_deepspeed_without_the_package_is_one_line_naming_the_fix(
    capsys, tiny_dir, tmp_path, monkeypatch
):
    """``accelerate launch`` with a DeepSpeed config where ``deepspeed`` is not installed: one
    line saying so before any model loads (TrainingArguments raised PackageNotFoundError)."""
    cfg = cfg_file(tmp_path, tiny_dir)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    err = one_line_error(capsys, ["train", "--config", str(cfg)])
    assert "the deepspeed package is not installed: pip install deepspeed" in err, err


def test_one_config_serves_several_objectives(capsys):
    demo = load_yaml(DEMO.read_text())
    raw, notes = objective_view(demo, {"objective": "dpo"}, "configs/demo.yaml")
    _, args = split_config(raw)  # eta (wind's) dropped with a note
    assert args.objective == "dpo" and args.eta is None and args.beta == 0.1
    assert len(notes) == 1 and "eta = 5.0 from configs/demo.yaml is ignored" in notes[0]
    raw, notes = objective_view(demo, {"objective": "jbond"}, "configs/demo.yaml")
    _, args = split_config(raw)
    assert args.num_samples == 3 and any("num_samples = 4" in n for n in notes)
    # typed on the command line: still an error
    raw, _ = objective_view(demo, {"objective": "dpo", "eta": 1.0}, "demo")
    with pytest.raises(ValueError, match="objective 'dpo' has no hyperparameter 'eta'"):
        split_config(raw)
    # a block for one objective applies only to it
    file = {**demo, "dpo": {"beta": 0.3}, "jbond": {"num_samples": 3, "gamma": 0.2}}
    _, args = split_config(objective_view(file, {"objective": "dpo"}, "f")[0])
    assert args.beta == 0.3 and args.gamma is None
    _, args = split_config(objective_view(file, {}, "f")[0])
    assert args.objective == "wind-squared" and args.beta == 0.1 and args.eta == 5.0
    with pytest.raises(ValueError, match="jbond: must be a mapping"):
        objective_view({"jbond": 3}, {}, "f")


def test_switching_objective_on_the_demo_config_is_not_refused(capsys, tmp_path):
    for objective in ("dpo", "jbond", "nash-md", "sppo", "wind-nce"):
        out = tmp_path / objective
        argv = ["train", "--config", str(DEMO), "--objective", objective, "--output_dir", str(out)]
        argv += ["--model", str(tmp_path / "missing-model")]  # stops at the model, after the config
        err = one_line_error(capsys, argv)
        assert "missing-model" in err, err


def test_options_take_dashes_or_underscores():
    assert dashed(["--max_new_tokens=3", "x_y"]) == ["--max-new-tokens=3", "x_y"]
    from windalign.cli import build_parser

    args, _ = build_parser().parse_known_args(
        dashed(["train", "--resume_from_checkpoint", "--accelerate_config", "ddp"])
    )
    assert args.resume_from_checkpoint is True and args.accelerate_config == "ddp"
    args, _ = build_parser().parse_known_args(
        dashed(["evaluate", "--model", "a", "--baseline", "b", "--max_new_tokens", "3"])
    )
    assert args.max_new_tokens == 3
    assert parse_overrides(["--learning-rate", "1e-3", "--beta=0.2"]) == {
        "learning_rate": 1e-3,
        "beta": 0.2,
    }


def test_train_errors_name_output_dir_not_out(capsys, tiny_dir, tmp_path):
    (tmp_path / "afile").write_text("x")
    cfg = cfg_file(tmp_path, tiny_dir, output_dir=str(tmp_path / "afile"))
    err = one_line_error(capsys, ["train", "--config", str(cfg)])
    assert "output_dir" in err and "--out" not in err


def test_a_reward_module_in_the_current_directory_is_found(tmp_path, monkeypatch):
    (tmp_path / "my_reward_16.py").write_text(
        "def score(prompts, responses):\n    return [[len(r) for r in rs] for rs in responses]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    with pytest.raises(ValueError, match="could not be imported"):
        as_oracle("my_reward_16:score")
    import_from_cwd()
    assert as_oracle("my_reward_16:score").name


def test_wind_train_finds_a_preference_module_in_the_current_directory(
    capsys, tiny_dir, tmp_path, monkeypatch
):
    """The ``wind`` console script's ``sys.path`` lacks the current directory (no PYTHONPATH)."""
    (tmp_path / "my_reward_16_cli.py").write_text(
        "def score(prompts, responses):\n"
        "    return [[r.count('a') for r in rs] for rs in responses]\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    cfg = cfg_file(tmp_path, tiny_dir, preference="my_reward_16_cli:score")
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "model").is_dir()


# ---- silently wrong --------------------------------------------------------------------------


class NaNOracle(PreferenceOracle):
    """Leaves every query (or every query of the first ``bad`` prompts) unanswered."""

    name = "nan"

    def __init__(self, bad: int | None = None) -> None:
        super().__init__()
        self.bad = bad

    def compare(self, prompts, responses, pairs):
        B, K = len(responses), len(responses[0])
        P = torch.full((B, K, K), 0.5, dtype=torch.float64)
        P[: self.bad] = float("nan")
        return P


def _trainer(tiny_dir, tmp_path, oracle, **kw) -> WINDTrainer:
    args = WINDConfig(
        output_dir=str(tmp_path / "run"), use_cpu=True, max_steps=1, num_samples=3,
        per_device_train_batch_size=2, max_new_tokens=4, save_strategy="no", report_to="none",
        disable_tqdm=True, **kw,
    )  # fmt: skip
    return WINDTrainer(str(tiny_dir), args=args, preference=oracle, train_dataset="builtin:train")


def test_an_oracle_that_answers_nothing_stops_training(tiny_dir, tmp_path):
    trainer = _trainer(tiny_dir, tmp_path, NaNOracle())
    with pytest.raises(SkippedQueriesError, match="left 6 of 6 queries unanswered"):
        trainer.train()


def test_some_unanswered_queries_are_warned_and_counted(tiny_dir, tmp_path):
    trainer = _trainer(tiny_dir, tmp_path, NaNOracle(bad=1))
    with pytest.warns(UserWarning, match="left 3 of 6 queries unanswered"):
        trainer.train()
    assert trainer.counters["skipped_queries"] == 3


def test_nash_md_counts_only_the_pairs_it_asks(tiny_dir, tmp_path):
    """Nash-MD queries sample 0 against the K-1 others; an oracle that answers all of them
    leaves nothing unanswered (no warning), however many pairs K samples have."""
    trainer = _trainer(tiny_dir, tmp_path, "heuristic", objective="nash-md")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*unanswered")
        trainer.train()
    assert trainer.counters["skipped_queries"] == 0 and trainer.counters["queries"] == 2 * 2


def test_a_non_finite_gradient_stops_before_the_update(tiny_dir, tmp_path):
    trainer = _trainer(tiny_dir, tmp_path, "heuristic", learning_rate=0.1)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    weight = trainer.model.get_input_embeddings().weight
    weight.register_hook(lambda g: g * float("nan"))
    with pytest.raises(NonFiniteLossError, match="gradient norm became nan at optimizer step 1"):
        trainer.train()
    for name, p in trainer.model.named_parameters():
        assert torch.equal(p, before[name]) and torch.isfinite(p).all(), name


def test_ref_model_with_another_tokenizer_is_refused(tiny_dir, tmp_path):
    from tiny import tiny_model, tiny_tokenizer

    other = tmp_path / "other"
    tok = tiny_tokenizer()
    tok.add_tokens(["<extra>"])
    tiny_model(tok).save_pretrained(other)
    tok.save_pretrained(other)
    args = WINDConfig(output_dir=str(tmp_path / "run"), use_cpu=True, num_samples=3, max_steps=1)
    with pytest.raises(ValueError, match="different tokenizers"):
        WINDTrainer(
            str(tiny_dir), str(other), args, preference="heuristic", train_dataset="builtin"
        )


def _checkpoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, size in {"model.safetensors": 100, "optimizer.pt": 50, "scheduler.pt": 10}.items():
        (folder / name).write_bytes(b"x" * size)
    mark_complete(folder, {"step": 3, "processes": 1})
    return folder


def test_a_checkpoint_that_lost_a_file_is_not_resumed(tmp_path):
    early, late = _checkpoint(tmp_path / "checkpoint-1"), _checkpoint(tmp_path / "checkpoint-3")
    assert resumable_checkpoint(tmp_path, True) == late
    (late / "optimizer.pt").unlink()
    with pytest.raises(ValueError, match=r"optimizer\.pt is missing; resume from .*checkpoint-1"):
        resumable_checkpoint(tmp_path, True)
    (early / "model.safetensors").write_bytes(b"x" * 40)  # truncated
    with pytest.raises(ValueError, match=r"model\.safetensors has 40 bytes, not the 100"):
        resumable_checkpoint(tmp_path, str(early))
    with pytest.raises(ValueError, match="does not exist"):
        resumable_checkpoint(tmp_path, str(tmp_path / "checkpoint-9"))


def test_a_damaged_checkpoint_points_to_an_earlier_intact_one(tmp_path, monkeypatch):
    """A fix names the latest checkpoint saved before the damaged one that is complete and
    undamaged: never the damaged folder itself (however its path is spelled), a later one or
    another damaged one; a missing or incomplete folder's fix never names a damaged one."""
    monkeypatch.chdir(tmp_path)
    out = Path("out")
    for step in (1, 2, 3, 4):
        _checkpoint(out / f"checkpoint-{step}")
    (out / "checkpoint-3" / "scheduler.pt").unlink()
    (out / "checkpoint-4" / "optimizer.pt").unlink()
    for resume in (True, str(tmp_path / out / "checkpoint-4"), "out/../out/checkpoint-4"):
        with pytest.raises(ValueError, match=r"optimizer\.pt is missing") as err:
            resumable_checkpoint(out, resume)
        assert str(err.value).endswith("; resume from out/checkpoint-2 instead"), err.value
    (out / "checkpoint-5").mkdir()  # killed while saving
    for resume in ("out/checkpoint-9", "out/checkpoint-5"):
        with pytest.raises(ValueError, match=r"; the last intact one in out is out/checkpoint-2$"):
            resumable_checkpoint(out, resume)
    _checkpoint(out / "checkpoint-6")
    (out / "checkpoint-2" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"not the 100.*; resume from out/checkpoint-1 instead$"):
        resumable_checkpoint(out, "out/checkpoint-2")  # not the later checkpoint-6
    for step in (1, 6):
        (out / f"checkpoint-{step}" / "optimizer.pt").unlink()
    with pytest.raises(ValueError, match=r"; out holds no intact checkpoint$"):
        resumable_checkpoint(out, "out/checkpoint-9")
    with pytest.raises(ValueError, match=r"optimizer\.pt is missing; start the run again$"):
        resumable_checkpoint(out, "out/checkpoint-1")


def test_resuming_from_a_missing_path_leaves_the_run_alone(capsys, tiny_dir, tmp_path):
    cfg = cfg_file(tmp_path, tiny_dir)
    run = tmp_path / "run"
    run.mkdir()
    status = {"status": "interrupted", "command": ["wind", "train"], "pid": 1}
    (run / "status.json").write_text(json.dumps(status))
    argv = ["train", "--config", str(cfg), "--resume-from-checkpoint", str(run / "nope")]
    assert "does not exist" in one_line_error(capsys, argv)
    assert json.loads((run / "status.json").read_text()) == status


def test_intervals_stay_in_range_and_the_report_says_when_to_distrust_them():
    mean, lo, hi = mean_interval([0.1, 0.9], bounds=(0.0, 1.0))
    assert mean == 0.5 and lo == 0.0 and hi == 1.0
    summary = {"prompts": 2.0, "kl": -0.04}
    text = "\n".join(caveats(summary))
    assert "Only 2 prompts" in text and "sampling noise" in text
    assert caveats({"prompts": 32.0, "kl": 0.5}) == []


def test_sigterm_marks_the_run_interrupted(tiny_dir, tmp_path):
    cfg = cfg_file(tmp_path, tiny_dir, max_steps=10_000, save_strategy="steps", save_steps=1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "windalign.cli", "train", "--config", str(cfg), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "run").glob("checkpoint-*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "wind train: interrupted"
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["status"] == "interrupted" and "SIGTERM" in status["error"]


def test_main_restores_the_previous_sigterm_handler(capsys, tmp_path):
    def mine(signum, frame):  # pragma: no cover - never called
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


_CHILD = """
import pathlib, signal, sys, time
out = pathlib.Path(sys.argv[1])
signal.signal(signal.SIGTERM, lambda *_: (out.joinpath("child-got-sigterm").touch(), sys.exit(143)))
out.joinpath("child-ready").touch()
time.sleep(120)
"""

_PARENT = """
import sys
from windalign.cli import _sigterm_interrupts
from windalign.llm import launch
launch.launch_command = lambda *_: [sys.executable, "-c", sys.argv[2], sys.argv[1]]
with _sigterm_interrupts():
    try:
        launch.relaunch(["wind", "train"], "ddp", 2, True)
    except KeyboardInterrupt:
        sys.exit(143)
"""


def test_sigterm_to_a_relaunching_wind_train_reaches_the_launcher(tmp_path):
    """`wind train --accelerate-config`: SIGTERM reaches only the parent (a scheduler's kill); it
    must pass it on to `accelerate launch` and wait, not leave the ranks running."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", _PARENT, str(tmp_path), _CHILD]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "child-ready").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert (tmp_path / "child-got-sigterm").exists()


def test_prepare_model_refuses_a_file_as_cache_dir(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    err = one_line_error(
        capsys, ["prepare-model", "smollm2", "--cache-dir", str(tmp_path / "file")]
    )
    assert "cache directory" in err and "--cache-dir" in err


# ---- tracebacks that became one line ---------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (["--peft", "{rr: 8}"], "peft"),
        (["--preference", "heuristic", "--preference_kwargs", "{foo: 1}"], "preference_kwargs"),
        (["--preference", "heuristic", "--preference_kwargs", "{temperature: -1}"],
         "preference_kwargs {'temperature': -1}: temperature = -1"),
        (["--preference", "reward-model"], "missing 1 required positional argument: 'model'"),
        (["--preference", "reward-model", "--preference_kwargs", "{model: /nope}"], "/nope"),
        (["--ref_model", "/nope/ref"], "ref_model '/nope/ref'"),
        (["--prompts", "{dir}"], "{dir}"),
        (["--prompts", "{empty}"], "{empty}"),
    ],
)  # fmt: skip
def test_misconfigured_parts_are_one_line(capsys, tiny_dir, tmp_path, override, match):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "dir").mkdir()
    fill = {"{dir}": str(tmp_path / "dir"), "{empty}": str(tmp_path / "empty.jsonl")}
    override = [fill.get(o, o) for o in override]
    cfg = cfg_file(tmp_path, tiny_dir, beta=0.1)
    err = one_line_error(capsys, ["train", "--config", str(cfg), "--no-progress", *override])
    assert fill.get(match, match) in err, err


def test_fsdp_version_1_accelerate_config_is_refused(tmp_path):
    file = tmp_path / "fsdp1.yaml"
    file.write_text(yaml.safe_dump({"distributed_type": "FSDP", "fsdp_config": {}}))
    with pytest.raises(ValueError, match="FSDP version 1"):
        launch_command(["wind", "train"], str(file), 2)


def test_trainer_rejects_a_non_finite_learning_rate_before_loading():
    with pytest.raises(ValueError, match="learning_rate = inf"):
        WINDConfig(output_dir="x", learning_rate=math.inf)


def test_model_folders_that_cannot_serve_are_named(capsys, tiny_dir, tmp_path):
    from tiny import tiny_model, tiny_tokenizer
    from transformers import BertConfig, BertForMaskedLM

    bare = tmp_path / "no-tokenizer"  # weights, no tokenizer files
    tiny_model(tiny_tokenizer()).save_pretrained(bare)
    encoder = tmp_path / "encoder"  # a masked LM with a tokenizer: not a causal LM
    config = BertConfig(vocab_size=120, hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    config.intermediate_size = 32
    BertForMaskedLM(config).save_pretrained(encoder)
    tiny_tokenizer().save_pretrained(encoder)
    cfg = cfg_file(tmp_path, tiny_dir)
    capsys.readouterr()  # the progress bars of saving them
    for folder, match in ((bare, "has no usable tokenizer"), (encoder, "not a causal language")):
        argv = ["train", "--config", str(cfg), "--model", str(folder), "--overwrite"]
        err = one_line_error(capsys, argv)
        assert match in err and str(folder) in err, err


def test_an_empty_prompts_file_says_so(tmp_path):
    from windalign.llm.data import load_prompts

    (tmp_path / "p.jsonl").write_text("\n")
    with pytest.raises(ValueError, match=r"p\.jsonl' is empty; write one prompt per row"):
        load_prompts(str(tmp_path / "p.jsonl"))


def counting_converter():
    """``(calls, convert)``: a converter for ``aliases._prepare`` that writes a 64-byte weights
    file and records each call in ``calls``."""
    calls = []

    def convert(out: Path, say) -> dict:
        calls.append(out)
        (out / "model.safetensors").write_bytes(b"w" * 64)
        return {}

    return calls, convert


def test_a_prepared_model_with_a_truncated_file_is_rebuilt(tmp_path):
    from windalign.lm import aliases

    calls, convert = counting_converter()

    folder = aliases._prepare("toy", convert, tmp_path, False, None)
    assert aliases.is_prepared(folder) and len(calls) == 1
    assert aliases._prepare("toy", convert, tmp_path, False, None) == folder and len(calls) == 1
    (folder / "model.safetensors").write_bytes(b"w" * 10)  # cut short after it was prepared
    assert not aliases.is_prepared(folder)
    aliases._prepare("toy", convert, tmp_path, False, None)
    assert len(calls) == 2 and (folder / "model.safetensors").stat().st_size == 64


def test_a_prepared_model_whose_marker_lists_no_files_is_rebuilt(tmp_path):
    """A marker from before the file list vouches for nothing: the folder is converted again."""
    from windalign.lm import aliases

    calls, convert = counting_converter()

    folder = aliases._prepare("toy", convert, tmp_path, False, None)
    marker = json.loads((folder / aliases.MARKER).read_text())
    del marker["files"]
    (folder / aliases.MARKER).write_text(json.dumps(marker))
    assert not aliases.is_prepared(folder)
    aliases._prepare("toy", convert, tmp_path, False, None)
    assert len(calls) == 2 and aliases.is_prepared(folder)
    assert "files" in json.loads((folder / aliases.MARKER).read_text())


def test_the_closing_line_lists_what_the_run_wrote(capsys, tiny_dir, tmp_path):
    cfg = cfg_file(tmp_path, tiny_dir)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out.startswith("wrote ") and "model/" in out and "no checkpoints" in out, out
