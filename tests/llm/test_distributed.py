"""THEORY.md 8, property 9 on two processes: ``wind train`` on 2 gloo processes (CPU, tiny model).

One run of ``wind train --accelerate_config ddp --num_processes 2`` is checked for what a
multi-process run must do: it completes, the main process alone writes the run directory, the
processes sample disjoint prompts, the logged costs are sums over the processes, and its first
gradient step equals one process's step on the union of both processes' prompts and samples
(read back from ``checkpoint-1``). Then a second 2-process run (``torchrun``) is killed with
SIGKILL and resumed, and must end with the first run's weights. Processes that were launched as
two but would each train alone, and a second run into a locked ``output_dir``, are refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from windalign.cli import main
from windalign.llm import launch
from windalign.llm.distributed import check_resume
from windalign.llm.state import COMPLETE
from windalign.lm import tokens
from windalign.objectives import SampleBatch, compute_loss
from windalign.rundir import RunDirError

WIND = [sys.executable, "-m", "windalign.cli"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
K, PROMPTS, STEPS, LR, BETA = 3, 2, 5, 0.1, 0.1  # per process: PROMPTS prompts, K samples each


def write_config(tmp_path: Path, tiny_dir: Path, **kw) -> Path:
    cfg = {
        "model": str(tiny_dir),
        "prompts": "builtin:train",
        "preference": "heuristic",
        "objective": "wind-squared",
        "beta": BETA,  # the reference is used
        "num_samples": K,
        "max_new_tokens": 8,
        "max_steps": STEPS,
        "per_device_train_batch_size": PROMPTS,
        "save_steps": 1,
        "optim": "sgd",  # the update is proportional to the gradient (Adam's first is its sign)
        "learning_rate": LR,
        "use_cpu": True,  # gloo
        "seed": 5,
        "disable_tqdm": True,
        **kw,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(cmd: list, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=timeout)


def metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss" in r]


def one_process_step(tiny_dir: Path, checkpoint: Path) -> tuple[dict, float, float]:
    """Weights, loss and gradient norm after one process's first step (SGD, gradient clipped
    at 1, like the trainer) on both processes' round 0, as saved in ``checkpoint``."""
    rounds = [
        torch.load(checkpoint / f"windalign_state_{rank}.pt", weights_only=True)["round"]
        for rank in (0, 1)
    ]
    assert [r["index"] for r in rounds] == [0, 0]
    assert not set(rounds[0]["prompt_index"]) & set(rounds[1]["prompt_index"])  # sharded
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).train()
    prompts = [p for r in rounds for p in r["prompt_ids"] for _ in range(K)]
    responses = [y for r in rounds for ys in r["responses"] for y in ys]
    packed = tokens.pack(prompts, responses, tokenizer.pad_token_id, "cpu")
    logp = tokens.sequence_logprobs(model, packed, 1.0).view(2 * PROMPTS, K).double()
    # the samples are the ones the processes scored: their log-probs at the initial weights
    recorded = torch.cat([r["logp_old"] for r in rounds])
    torch.testing.assert_close(logp.detach(), recorded, rtol=0, atol=1e-5)
    cat = lambda key: torch.cat([r[key] for r in rounds])  # noqa: E731
    batch = SampleBatch(logp, logp.detach(), cat("logp_ref"), cat("prefs"))
    loss = compute_loss("wind-squared", batch, beta=BETA).loss.float()
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    with torch.no_grad():
        for p in model.parameters():
            p -= LR * p.grad
    return model.state_dict(), loss.item(), norm.item()


def test_two_processes_sum_costs_match_one_process_and_resume_after_sigkill(tiny_dir, tmp_path):
    config = write_config(tmp_path, tiny_dir)
    straight = tmp_path / "straight"
    launch_ddp = ["--accelerate_config", "ddp", "--num_processes", "2"]
    done = run([*WIND, "train", "--config", config, "--output_dir", straight, *launch_ddp])
    assert done.returncode == 0, done.stderr[-3000:]

    # one run directory, written by the main process only
    status = json.loads((straight / "status.json").read_text())
    assert status["status"] == "complete" and "--accelerate_config" not in status["command"]
    assert (straight / "model" / "model.safetensors").is_file()
    assert (straight / "report.md").is_file() and (straight / "plots" / "loss.png").is_file()
    assert sorted(p.name for p in straight.glob("checkpoint-*")) == [
        f"checkpoint-{s}" for s in range(1, STEPS + 1)
    ]
    for step in range(1, STEPS + 1):  # every process's RNG and WIND state, marked complete
        ck = straight / f"checkpoint-{step}"
        names = {p.name for p in ck.iterdir()}
        assert {"rng_state_0.pth", "rng_state_1.pth"} <= names
        assert {"windalign_state_0.pt", "windalign_state_1.pt"} <= names
        assert json.loads((ck / COMPLETE).read_text())["processes"] == 2

    # the costs are sums over the 2 processes, logged once per step; rounds are shared
    rows = metrics(straight)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for r in rows:
        s = r["step"]
        assert r["rounds"] == s
        assert r["samples"] == 2 * PROMPTS * K * s
        assert r["queries"] == r["oracle_calls"] == 2 * PROMPTS * K * (K - 1) // 2 * s

    # the first gradient step is one process's step on the union of the two rounds
    weights, loss, grad_norm = one_process_step(tiny_dir, straight / "checkpoint-1")
    assert rows[0]["loss"] == pytest.approx(loss, rel=1e-5)
    assert rows[0]["grad_norm"] == pytest.approx(grad_norm, rel=1e-4)
    after = load_file(str(straight / "checkpoint-1" / "model.safetensors"))
    initial = load_file(str(tiny_dir / "model.safetensors"))
    moved = 0.0
    for name, value in after.items():
        torch.testing.assert_close(value, weights[name], rtol=1e-5, atol=1e-6, msg=name)
        moved = max(moved, (value - initial[name]).abs().max().item())
    assert moved > 1e-3  # the step is large enough for the comparison to mean something

    # a second 2-process run (torchrun), killed with SIGKILL after checkpoint-2, then resumed
    killed = tmp_path / "killed"
    cmd = [*TORCHRUN, "-m", "windalign.cli", "train", "--config", config, "--output_dir", killed]
    proc = subprocess.Popen(
        list(map(str, cmd)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the launcher and both workers
    )
    deadline = time.time() + 180
    while not (killed / "checkpoint-2" / COMPLETE).exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before checkpoint-2"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((killed / "status.json").read_text())["status"] == "running"
    assert not (killed / "model").exists()
    resumed = run([*cmd, "--resume_from_checkpoint"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((killed / "status.json").read_text())["status"] == "complete"
    a = load_file(str(straight / "model" / "model.safetensors"))
    b = load_file(str(killed / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    keys = ("step", "loss", "grad_norm", "samples", "queries")
    assert [[r[k] for k in keys] for r in metrics(killed)] == [[r[k] for k in keys] for r in rows]


@pytest.mark.skipif(torch.cuda.is_available(), reason="without use_cpu these would use the GPUs")
def test_processes_launched_as_two_that_would_train_alone_are_refused(tiny_dir, tmp_path):
    """Without use_cpu on a machine without GPUs, each launched process would train as a
    process 0 of 1 and both would write into one output_dir: both stop before writing."""
    config = write_config(tmp_path, tiny_dir, use_cpu=False)
    out = tmp_path / "run"
    done = run([*TORCHRUN, "-m", "windalign.cli", "train", "--config", config, "--output_dir", out])
    assert done.returncode != 0
    assert "was launched as one of 2 (WORLD_SIZE=2)" in done.stderr, done.stderr[-3000:]
    assert "set use_cpu: true" in done.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_second_run_into_a_locked_output_dir_is_refused(tiny_dir, tmp_path):
    """Two single-process runs into one output_dir (Python API): the second is refused while
    the first holds the lock, and a dead holder's lock does not block."""
    from windalign.llm import WINDConfig, WINDTrainer

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from windalign.llm.distributed import _take_lock; "
            f"_take_lock(Path({str(out)!r})); print('locked', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        args = WINDConfig(
            output_dir=str(out),
            num_samples=2,
            max_new_tokens=4,
            max_steps=1,
            per_device_train_batch_size=1,
            save_strategy="no",
            use_cpu=True,
            disable_tqdm=True,
            report_to=[],
        )
        tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
        model = AutoModelForCausalLM.from_pretrained(tiny_dir)
        trainer = WINDTrainer(
            model, args=args, preference="heuristic", train_dataset=["a b"] * 4,
            processing_class=tokenizer,
        )  # fmt: skip
        refused = f"in use by another training process \\(pid {holder.pid}\\)"
        with pytest.raises(RunDirError, match=refused):
            trainer.train()
        assert not (out / "metrics.jsonl").exists()  # refused before writing anything
    finally:
        holder.kill()  # SIGKILL: its lock is stale now
        holder.wait()
    trainer.train()
    assert (out / "metrics.jsonl").is_file()


def torchrun_worker(source: str, tmp_path: Path) -> list[str]:
    """Run ``source`` on 2 gloo processes (``argv``: this folder, ``tmp_path``) and return what
    each rank wrote to ``ok-<rank>``. A failure is retried once (a worker failed once in ~5
    full-suite runs under load), and a second failure shows both outputs."""
    script = tmp_path / "worker.py"
    script.write_text(source)
    done = run([*TORCHRUN, script, Path(__file__).parent, tmp_path], timeout=180)
    if done.returncode != 0:
        first = done.stderr[-3000:]
        done = run([*TORCHRUN, script, Path(__file__).parent, tmp_path], timeout=180)
        assert done.returncode == 0, first + "\n--- retry ---\n" + done.stderr[-3000:]
    return [(tmp_path / f"ok-{rank}").read_text() for rank in (0, 1)]


FSDP2_WORKER = """
import sys, copy, torch, torch.distributed as dist
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tiny import tiny_model, tiny_tokenizer
from torch.distributed.fsdp import fully_shard
from windalign.llm.distributed import _fsdp2_gathered, _fsdp2_reshard
from windalign.llm.state import EMAAnchor

dist.init_process_group("gloo")
rank = dist.get_rank()
tok = tiny_tokenizer()
model = tiny_model(tok, seed=0)  # the same initial weights on both processes
plain = copy.deepcopy(model)
for layer in model.model.layers:
    fully_shard(layer)
fully_shard(model)
params = [p for p in model.parameters() if p.requires_grad]
anchor = EMAAnchor(lambda: [p.to_local() for p in params], lambda: _fsdp2_reshard([model]))
with torch.no_grad():  # an optimizer step on the shards, then one EMA step
    for p in params:
        p.to_local().add_(0.01 * (rank + 1))
now = [p.full_tensor().clone() for p in params]
anchor.update(0.25)
ids = torch.tensor([[tok.bos_token_id, 10, 11]])
n = 3 + 5 * rank  # the processes generate different numbers of tokens
with _fsdp2_gathered([model]):
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True,
                         max_new_tokens=n, min_new_tokens=n, synced_gpus=False,
                         pad_token_id=tok.pad_token_id)
assert out.shape[1] - 3 == n
expected = [0.75 * a.detach() + 0.25 * b for a, b in zip(plain.parameters(), now)]
x = torch.tensor([[tok.bos_token_id, 12, 13, 14]])
with anchor.swapped():
    got = [p.full_tensor() for p in params]
    logits = model(x).logits
with torch.no_grad():
    for p, e in zip(plain.parameters(), expected):
        p.copy_(e)
assert max((a - b).abs().max().item() for a, b in zip(got, expected)) < 1e-6
assert (logits - plain(x).logits).abs().max().item() < 1e-5
assert all(torch.equal(p.full_tensor(), b) for p, b in zip(params, now))  # restored exactly
(Path(sys.argv[2]) / f"ok-{rank}").write_text(str(n))
dist.destroy_process_group()
"""


def test_fsdp2_generation_and_sharded_anchor_on_two_gloo_processes(tmp_path):
    """The FSDP2 helpers on a tiny model sharded by hand (``fully_shard`` per layer, 2 gloo
    processes; not accelerate's FSDP2 engine, which needs GPUs): the processes generate
    different numbers of tokens on gathered parameters without waiting on each other, and the
    anchor kept on the shards is the EMA of the full parameters, runs as the model inside
    ``swapped()`` and is swapped out exactly."""
    assert torchrun_worker(FSDP2_WORKER, tmp_path) == ["3", "8"]


FSDP2_SHARED_WORKER = """
import sys, copy, torch, torch.distributed as dist
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tiny import tiny_model, tiny_tokenizer
from torch.distributed.fsdp import fully_shard
from windalign.lm import tokens

dist.init_process_group("gloo")
rank = dist.get_rank()
tok = tiny_tokenizer()
model = tiny_model(tok, seed=2)  # the same initial weights on both processes
plain = copy.deepcopy(model)
for layer in model.model.layers:
    fully_shard(layer)
fully_shard(model)
K = 3
PROMPTS = [[[1, 40, 41, 42, 43, 44], [1, 47]], [[1, 48, 49, 50], [1, 45, 46, 47, 48, 49, 50]]]
RESPONSES = [
    [[10, 11, 12], [13], [14, 15, 16, 17, 2], [18, 19], [20, 21, 22, 23], [24]],
    [[25, 26, 27, 28, 29, 2], [30, 31], [32], [33, 34, 35], [36], [37, 38, 39, 2]],
]
weights = torch.linspace(-1.0, 2.0, 2 * K, dtype=torch.float64)

def batch(r, share):
    rows = [p for p in PROMPTS[r] for _ in range(K)]
    return tokens.pack(rows, RESPONSES[r], tok.pad_token_id, "cpu", share)

shared = batch(rank, True)
assert "group" in shared  # the prompt runs once: two forwards (prompts, responses), one backward
model.train()
(weights * tokens.sequence_logprobs(model, shared, 1.0)).sum().backward()
got = {n: p.grad.full_tensor() for n, p in model.named_parameters()}
plain.train()
expected = {n: torch.zeros_like(p) for n, p in plain.named_parameters()}
for r in (0, 1):  # data parallel: the mean of both processes' unshared gradients
    plain.zero_grad()
    (weights * tokens.sequence_logprobs(plain, batch(r, False), 1.0)).sum().backward()
    for n, p in plain.named_parameters():
        expected[n] += p.grad / 2
assert got.keys() == expected.keys()
for n, g in expected.items():
    torch.testing.assert_close(got[n], g, atol=1e-5, rtol=1e-4, msg=n)
(Path(sys.argv[2]) / f"ok-{rank}").write_text("ok")
dist.destroy_process_group()
"""


def test_fsdp2_training_pass_with_each_prompt_run_once_on_two_gloo_processes(tmp_path):
    """Issue 17 under FSDP2 (``fully_shard`` by hand, 2 gloo processes): the shared-prompt
    training pass runs the model twice (the prompts with a KV cache, then the responses on it)
    before one backward; the reduced gradient of each parameter equals the mean over the two
    processes' batches of the unsharded model's unshared gradients (prompts of different
    lengths, responses ending apart)."""
    assert torchrun_worker(FSDP2_SHARED_WORKER, tmp_path) == ["ok", "ok"]


FSDP2_EVAL_WORKER = """
import sys, copy, faulthandler, json, torch, torch.distributed as dist
from pathlib import Path
sys.path.insert(0, sys.argv[1])
faulthandler.dump_traceback_later(100, exit=True)  # a hang ends with both stacks, not a timeout
from tiny import tiny_model, tiny_tokenizer
from torch.distributed.fsdp import fully_shard
from windalign.llm.data import load_prompts
from windalign.llm.distributed import _fsdp2_gathered
from windalign.llm.evaluate import evaluate
from windalign.preferences import as_oracle

dist.init_process_group("gloo")
rank = dist.get_rank()
tok = tiny_tokenizer()
policy, baseline = tiny_model(tok, seed=0), tiny_model(tok, seed=1)
plain = [copy.deepcopy(policy), copy.deepcopy(baseline)]
for model in (policy, baseline):
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
prompts = load_prompts("builtin:heldout")[:5]
kw = dict(samples=2, temperature=1.0, max_new_tokens=8, batch_size=2, seed=3, baseline_seed=4)

def gather(rows):
    parts = [None, None]
    dist.all_gather_object(parts, rows)
    return [row for part in parts for row in part]

with _fsdp2_gathered([policy, baseline]):  # process 0: batches 0 and 2, process 1: batch 1
    sharded = evaluate(policy, baseline, tok, prompts, as_oracle("heuristic"), shard=(rank, 2),
                       gather=gather, **kw)
alone = evaluate(*plain, tok, prompts, as_oracle("heuristic"), **kw)
for key, value in alone.summary.items():
    assert abs(sharded.summary[key] - value) <= 1e-6 * max(1.0, abs(value)), key
steps = [sum(max(v for r in rows for v in r[f"{m}_lengths"]) for m in ("policy", "baseline"))
         for rows in (alone.per_prompt[0:2], alone.per_prompt[2:4], alone.per_prompt[4:5])]
(Path(sys.argv[2]) / f"ok-{rank}").write_text(json.dumps(steps))
dist.destroy_process_group()
"""


def test_the_evaluation_under_fsdp2_is_sharded_and_equals_one_process(tmp_path):
    """Issue 15 item 4 under FSDP2 (``fully_shard`` by hand on the policy and the baseline, 2
    gloo processes): 5 prompts in batches of 2, so the processes make different numbers of
    generate calls with responses of different lengths, on gathered parameters; the gathered
    result equals one process's evaluation of the same prompts. It hung before generate was
    told not to sync the processes (transformers turns ``synced_gpus`` on for FSDP modules)."""
    steps = [json.loads(x) for x in torchrun_worker(FSDP2_EVAL_WORKER, tmp_path)]
    assert steps[0] == steps[1] and steps[0][0] + steps[0][2] != steps[0][1], steps


def test_a_checkpoint_resumes_only_on_as_many_processes(tmp_path):
    ck = tmp_path / "checkpoint-3"
    ck.mkdir()
    (ck / COMPLETE).write_text(json.dumps({"step": 3, "processes": 2}))
    check_resume(ck, 2)
    with pytest.raises(ValueError, match="written by 2 process\\(es\\) and cannot resume on 1"):
        check_resume(ck, 1)


def test_presets_are_accelerate_configs_and_the_launch_command(monkeypatch):
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {"ddp": "MULTI_GPU", "fsdp2": "FSDP", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}
    for name, kind in kinds.items():
        config = load_config_from_file(str(launch.preset_path(name)))
        assert config.distributed_type.value == kind and config.mixed_precision == "no"
    argv = ["wind", "train", "--config", "c.yaml", "--accelerate_config", "ddp", "--lr", "1"]
    cmd = launch.launch_command([*argv, "--num_processes=2"], "ddp", 2, use_cpu=True)
    assert cmd[1:5] == ["-m", "accelerate.commands.launch", "--config_file", cmd[4]]
    assert cmd[4] == str(launch.preset_path("ddp"))
    assert cmd[5:] == [
        "--num_processes", "2", "--main_process_port", "0",
        "-m", "windalign.cli", "train", "--config", "c.yaml", "--lr", "1",
    ]  # fmt: skip


def test_the_launch_flags_are_stripped_in_every_spelling():
    argv = [
        "train", "--accelerate-config=ddp", "--lr", "1", "--num_processes", "2",
        "--output_dir", "a_b", "--accelerate_config=own.yaml", "--seed", "3",
        "--num-processes=4", "--beta", "0.1", "--accelerate-config", "ddp",
    ]  # fmt: skip
    assert launch.strip_flags(argv) == [
        "train", "--lr", "1", "--output_dir", "a_b", "--seed", "3", "--beta", "0.1",
    ]  # fmt: skip


def test_a_preset_that_cannot_run_here_is_refused_with_the_reason(
    tiny_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(launch, "_gpus", lambda: 0)
    monkeypatch.setattr(launch, "has_deepspeed", lambda: False)
    config = write_config(tmp_path, tiny_dir, use_cpu=False)
    base = ["train", "--config", str(config), "--output_dir", str(tmp_path / "run")]
    cases = {
        ("fsdp2", "2"): "runs one process per CUDA GPU and this machine has none; use "
        "--accelerate-config ddp with --use-cpu true",
        ("zero3", "2"): "needs DeepSpeed, which is not installed here",
        ("ddp", "2"): "add --use-cpu true to train CPU processes over gloo",
        ("nope.yaml", "2"): "neither a preset (ddp, fsdp2, zero2, zero3) nor an existing",
    }
    for (preset, n), message in cases.items():
        assert main([*base, "--accelerate_config", preset, "--num_processes", n]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main([*base, "--num_processes", "2"]) == 2
    assert "--num-processes needs --accelerate-config" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    own = tmp_path / "two-nodes.yaml"  # a file of your own passes through as is
    own.write_text("distributed_type: MULTI_GPU\nnum_machines: 2\nmain_process_ip: 10.0.0.1\n")
    cmd = launch.launch_command(["wind", *base], str(own), None)
    assert cmd[4] == str(own) and "--main_process_port" not in cmd and "--num_processes" not in cmd


def one_process_evaluation(policy_dir: Path, baseline_dir: Path, prompts: list, seed: int, **kw):
    """:func:`windalign.llm.evaluate.evaluate` in this process, unsharded."""
    from windalign.llm.evaluate import evaluate
    from windalign.preferences import as_oracle

    tokenizer = AutoTokenizer.from_pretrained(baseline_dir)
    tokenizer.padding_side = "left"
    policy = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
    baseline = AutoModelForCausalLM.from_pretrained(baseline_dir, dtype=torch.float32)
    return evaluate(policy, baseline, tokenizer, prompts, as_oracle("heuristic"), seed=seed, **kw)


def test_the_evaluation_is_sharded_over_two_ddp_processes_and_equals_one_process(
    tiny_dir, tmp_path
):
    """``wind train`` on 2 gloo processes (DDP) evaluates 5 held-out prompts in batches of 2:
    process 0 takes batches 0 and 2, process 1 batch 1 (different numbers of generate calls and
    responses of different lengths), and the gathered result equals one process's evaluation of
    the same prompts with the step-1 weights."""
    from windalign.llm.data import load_prompts

    n, batch, samples = 5, 2, 2
    config = write_config(
        tmp_path, tiny_dir, max_steps=1, eval_strategy="steps", eval_steps=1,
        eval_samples=samples, generation_batch_size=batch, eval_prompts="builtin:heldout",
        eval_prompt_count=n,
    )  # fmt: skip
    out = tmp_path / "run"
    launch_ddp = ["--accelerate_config", "ddp", "--num_processes", "2"]
    done = run([*WIND, "train", "--config", config, "--output_dir", out, *launch_ddp])
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    (logged,) = [r for r in rows if "eval_win_rate" in r]
    assert logged["eval_prompts"] == n  # each prompt once: sharded, not evaluated twice
    seed = int(np.random.SeedSequence([5, 1, 1]).generate_state(1)[0])  # (seed, step, 1)
    baseline_seed = int(np.random.SeedSequence([5, 0, 1, 1]).generate_state(1)[0])  # any step
    prompts = load_prompts("builtin:heldout")[:n]
    alone = one_process_evaluation(
        out / "checkpoint-1", tiny_dir, prompts, seed, samples=samples, temperature=1.0,
        max_new_tokens=8, batch_size=batch, baseline_seed=baseline_seed,
    )  # fmt: skip
    for key, value in alone.summary.items():
        assert logged[f"eval_{key}"] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    # the processes run different numbers of decoding steps (forward passes): the sum over
    # their batches of the longest response of each model
    steps = [
        sum(max(v for r in rows for v in r[f"{m}_lengths"]) for m in ("policy", "baseline"))
        for rows in (alone.per_prompt[0:2], alone.per_prompt[2:4], alone.per_prompt[4:5])
    ]
    assert steps[0] + steps[2] != steps[1], steps


RANK_ONE_SKIPS = '''
import os
import torch
from windalign.preferences import PreferenceOracle


class RankOneSkips(PreferenceOracle):
    """Answers every query on process 0 and none on process 1."""

    name = "rank-one-skips"

    def compare(self, prompts, responses, pairs):
        B, K = len(responses), len(responses[0])
        skip = os.environ.get("RANK") == "1"
        return torch.full((B, K, K), float("nan") if skip else 0.5, dtype=torch.float64)
'''


def test_unanswered_queries_stop_every_process_together(tiny_dir, tmp_path):
    """Process 1's oracle answers nothing, process 0's everything: 50% of the round's queries
    over both processes. Past max_skipped_share both must stop (a process deciding alone would
    leave the other waiting in the next collective); below it both train on, warned."""
    (tmp_path / "rank_skips.py").write_text(RANK_ONE_SKIPS)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    config = write_config(tmp_path, tiny_dir, preference="rank_skips:RankOneSkips", max_steps=2)
    for share, code in ((0.4, 1), (0.6, 0)):
        out = tmp_path / f"run-{share}"
        cmd = [*TORCHRUN, "-m", "windalign.cli", "train", "--config", config, "--output_dir", out,
               "--max_skipped_share", share, "--save_strategy", "no"]  # fmt: skip
        cmd = list(map(str, cmd))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
        assert (done.returncode != 0) == bool(code), done.stderr[-3000:]
        assert "left 3 of 6 queries" in done.stderr or "left 6 of 12 queries" in done.stderr
        status = json.loads((out / "status.json").read_text())["status"]
        assert status == ("failed" if code else "complete")
