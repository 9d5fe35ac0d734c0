"""``wind train --accelerate-config PRESET|FILE [--num-processes N]``: run again on N processes.

The command line is checked (the whole config, before any model loads), then ``accelerate
launch`` starts N processes that each run the same ``wind train`` command without these two
flags (``python -m windalign.cli train ...``, same interpreter). A preset is one of
:data:`PRESETS`, shipped as package data in ``windalign/configs/accelerate/`` (also reachable as
``configs/accelerate/`` in a source checkout); any other value is read as your own accelerate
config file and passed through as is. A preset that cannot run on this machine is refused with
the reason before anything starts.
"""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from windalign.rundir import Terminated

#: the shipped accelerate configs: name -> what it needs
PRESETS = {
    "ddp": "DistributedDataParallel: GPUs, or CPU processes with use_cpu: true (gloo)",
    "fsdp2": "FSDP2 (torch fully_shard): GPUs",
    "zero2": "DeepSpeed ZeRO-2: GPUs and the deepspeed package",
    "zero3": "DeepSpeed ZeRO-3: GPUs and the deepspeed package",
}
#: the flags this module consumes; the launched processes never see them
FLAGS = ("--accelerate-config", "--num-processes")


def preset_path(name: str) -> Path:
    """The shipped accelerate config of preset ``name``."""
    return Path(__file__).resolve().parent.parent / "configs" / "accelerate" / f"{name}.yaml"


def strip_flags(argv: list[str], flags: tuple[str, ...] = FLAGS) -> list[str]:
    """``argv`` without ``flags`` and their values (``--flag value`` or ``--flag=value``; a
    flag's dashes may be written as underscores).

    >>> strip_flags(["train", "--accelerate-config", "ddp", "--lr", "1", "--num-processes=2"])
    ['train', '--lr', '1']
    """
    out, skip = [], False
    for arg in argv:
        name, eq, _ = arg.partition("=")
        name = name.replace("_", "-") if name.startswith("--") else name
        if skip:
            skip = False
        elif name in flags:
            skip = not eq
        else:
            out.append(arg)
    return out


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def has_deepspeed() -> bool:
    """Whether the ``deepspeed`` package is installed."""
    return importlib.util.find_spec("deepspeed") is not None


def _check_preset(name: str, processes: int | None, use_cpu: bool) -> int:
    """Refuse preset ``name`` where it cannot run; the number of processes to start."""
    gpus = _gpus()
    if name == "ddp" and use_cpu:
        if processes is None:
            raise ValueError(
                "--accelerate-config ddp with use_cpu: give --num-processes N (CPU processes)"
            )
        return processes
    if name in ("zero2", "zero3") and not has_deepspeed():
        raise ValueError(
            f"--accelerate-config {name} needs DeepSpeed, which is not installed here: "
            "pip install deepspeed (on a machine with CUDA GPUs), or use ddp / fsdp2"
        )
    if gpus == 0:
        fix = (
            "add --use-cpu true to train CPU processes over gloo"
            if name == "ddp"
            else "use --accelerate-config ddp with --use-cpu true to train CPU processes"
        )
        raise ValueError(
            f"--accelerate-config {name} runs one process per CUDA GPU and this machine has "
            f"none; {fix}"
        )
    if use_cpu:
        raise ValueError(f"--accelerate-config {name} trains on GPUs: drop use_cpu")
    processes = gpus if processes is None else processes
    if processes > gpus:
        raise ValueError(
            f"--num-processes {processes} > the {gpus} GPU(s) of this machine ({name} runs one "
            "process per GPU); for several machines see docs/distributed.md"
        )
    return processes


def launch_command(
    argv: list[str], config: str, processes: int | None, use_cpu: bool = False
) -> list[str]:
    """The ``accelerate launch`` command for ``wind`` ``argv`` (``["wind", "train", ...]``)."""
    if config in PRESETS:
        processes = _check_preset(config, processes, use_cpu)
        file, settings = preset_path(config), {}
    else:
        file = Path(config)
        if not file.is_file():
            raise FileNotFoundError(
                f"--accelerate-config {config!r} is neither a preset ({', '.join(PRESETS)}) "
                "nor an existing accelerate config file"
            )
        try:
            settings = yaml.safe_load(file.read_text()) or {}
        except (UnicodeDecodeError, yaml.YAMLError):
            raise ValueError(f"accelerate config {config!r} is not a YAML file") from None
        if not isinstance(settings, dict):
            raise ValueError(f"accelerate config {config!r} must be a mapping of keys to values")
        fsdp_version = (settings.get("fsdp_config") or {}).get("fsdp_version", 1)
        if settings.get("distributed_type") == "FSDP" and str(fsdp_version) != "2":
            raise ValueError(
                f"accelerate config {config!r} uses FSDP version {fsdp_version}, which windalign "
                "does not support: set fsdp_config: {fsdp_version: 2} or use the fsdp2 preset"
            )
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(file)]
    if processes is not None:
        if processes < 1:
            raise ValueError(f"--num-processes must be >= 1, got {processes}")
        cmd += ["--num_processes", str(processes)]
    if int(settings.get("num_machines", 1)) == 1 and "main_process_port" not in settings:
        cmd += ["--main_process_port", "0"]  # a free port: runs side by side never collide
    return [*cmd, "-m", "windalign.cli", *strip_flags(argv[1:])]


def relaunch(argv: list[str], config: str | None, processes: int | None, use_cpu: bool) -> int:
    """Run ``wind`` ``argv`` again under ``accelerate launch``; its exit status."""
    from windalign.llm.distributed import launched_processes

    if config is None:
        raise ValueError("--num-processes needs --accelerate-config (ddp, fsdp2, zero2, zero3)")
    if launched_processes() > 1:
        raise ValueError(
            "--accelerate-config given to a process that was itself launched as one of "
            f"{launched_processes()}: give it to wind train directly, or launch without it"
        )
    cmd = launch_command(argv, config, processes, use_cpu)
    print("wind train: " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd)
    try:
        return proc.wait()
    except Terminated:  # only this process got it: accelerate launch passes it on to the ranks
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        raise
    except KeyboardInterrupt:  # the processes got the Ctrl-C too; their run directory says so
        proc.wait()
        raise
