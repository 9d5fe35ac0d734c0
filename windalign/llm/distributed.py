"""Several processes: what ``WINDTrainer`` and ``wind train`` do under ``accelerate launch``.

The trainer's data are already per process (THEORY.md 8, property 9): each process derives its own
prompts from (seed, round, process), samples under its own seed, keeps every prompt's K responses
and K x K matrix to itself (no cross-process gather in the loss) and saves its own
``windalign_state_{rank}.pt``; DDP averages the gradients. This module holds the rest:

* **One writer per run directory.** :func:`check_launch` refuses processes that were launched as
  N but train as one each (``torchrun`` / ``accelerate launch`` without ``use_cpu`` on a machine
  without GPUs): they would write into one ``output_dir`` side by side. :func:`main_decides`
  lets the main process open the run directory (or fail) while the others wait for its verdict;
  :func:`output_dir_lock` takes ``<output_dir>/.lock`` (the same ``flock`` as
  :class:`windalign.rundir.RunDir`) for the duration of ``WINDTrainer.train``, so two independent
  runs into one directory are refused; a dead holder never blocks (the kernel drops its lock).
* **Logs over processes.** :func:`counters_over_processes` (costs summed, rounds and seconds
  averaged) and :func:`mean_over_processes` (the objective's statistics), over the union of the
  processes' keys.
* **Engines.** :func:`engine` names the one accelerate set up. Under FSDP2 and DeepSpeed the
  reference is prepared for the engine (:func:`prepare_for_engine`; sharded under ZeRO-3 and
  FSDP2), generation runs on gathered parameters (:func:`gathered_for_generation`), and J-BOND's
  anchor (:class:`windalign.llm.state.EMAAnchor`) is an fp32 EMA of each process's own piece of
  the parameters. The EMA is elementwise, so the EMA of the pieces is the piece of the EMA of the
  gathered parameters: no gather is needed to update it, and swapping it in before a gather
  makes the gathered model the anchor. ``deepspeed`` is imported only under DeepSpeed.
* **Evaluation.** :func:`gather_rows` joins the per-prompt rows of the sharded held-out
  evaluation (each process evaluates its share of the prompts).

The FSDP2 and DeepSpeed paths could not be run where they were written (no GPU); see
docs/distributed.md for what was run where.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from windalign.llm.state import EMAAnchor
from windalign.rundir import LOCK, RunDirError, try_lock

#: engines :func:`engine` tells apart
ENGINES = ("single", "ddp", "fsdp2", "fsdp1", "deepspeed", "zero3")


# ---- launch and run-directory ownership ---------------------------------------------------------


def launched_processes() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 without a launcher)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def check_launch(args: Any) -> None:
    """Refuse N launched processes that each train alone (they would share one ``output_dir``).

    ``accelerate launch --multi_gpu`` and ``torchrun`` on a machine without GPUs start N processes,
    but without ``use_cpu`` every one of them trains as a single process 0 of 1.
    """
    launched = launched_processes()
    if launched > 1 and args.world_size != launched:
        raise ValueError(
            f"this process was launched as one of {launched} (WORLD_SIZE={launched}) but trains "
            f"as {args.world_size} process(es) of its own: the {launched} processes would run "
            f"independently and write into one output_dir ({args.output_dir}). On a machine "
            "without GPUs set use_cpu: true (the processes then train together over gloo); "
            "otherwise launch one process per GPU"
        )


def _broadcast(obj: Any) -> Any:
    """``obj`` of the main process, on every process."""
    from accelerate.utils import broadcast_object_list

    box = [obj]
    broadcast_object_list(box, from_process=0)
    return box[0]


@contextlib.contextmanager
def main_decides(args: Any) -> Iterator[None]:
    """The main process runs the block; the others wait for it and fail if it failed.

    For what only the main process may do before the others go on (open the run directory, take
    its lock): the others run the block too (it must do nothing for them), then receive the main
    process's verdict (``None`` or its error, one line) and raise ``ValueError`` with it.
    """
    if args.world_size <= 1:
        yield
        return
    main = args.process_index == 0
    try:
        yield
    except BaseException as err:
        _broadcast(f"{type(err).__name__}: {err}" if main else "")
        raise
    verdict = _broadcast(None if main else "")
    if verdict is not None and not main:
        raise ValueError(f"the main process of this run stopped before training: {verdict}")


def _take_lock(out: Path) -> int | None:
    """``flock`` ``<out>/.lock`` for this process; ``None`` when this process already holds it
    (``wind train``: its RunDir); :class:`RunDirError` naming the holder otherwise."""
    out.mkdir(parents=True, exist_ok=True)
    fd, holder = try_lock(out / LOCK)
    if fd is None and holder != str(os.getpid()):
        raise RunDirError(
            f"output_dir {out} is in use by another training process (pid {holder}); two runs "
            "would write into one directory: wait for it to finish or give another output_dir"
        )
    return fd  # None: this process's own RunDir holds it


@contextlib.contextmanager
def output_dir_lock(args: Any) -> Iterator[None]:
    """Hold ``<output_dir>/.lock`` on the main process while the block runs (see module doc)."""
    check_launch(args)
    fd = None
    try:
        with main_decides(args):
            if args.process_index == 0:
                fd = _take_lock(Path(args.output_dir))
        yield
    finally:
        if fd is not None:
            os.close(fd)


def check_resume(checkpoint: str | os.PathLike | None, processes: int) -> None:
    """A checkpoint resumes only on as many processes as wrote it (each has its own prompts,
    samples, RNG state and, under FSDP2 / ZeRO-3, anchor shards)."""
    if not checkpoint:
        return
    from windalign.llm.state import COMPLETE

    try:
        info = json.loads((Path(checkpoint) / COMPLETE).read_text())
    except (OSError, ValueError):
        return
    wrote = info.get("processes") if isinstance(info, dict) else None
    if isinstance(wrote, int) and wrote != processes:
        raise ValueError(
            f"checkpoint {checkpoint} was written by {wrote} process(es) and cannot resume on "
            f"{processes}: every process resumes its own prompts, samples and RNG state; resume "
            f"with {wrote} (e.g. --num_processes {wrote}) or start a new run"
        )


# ---- logs ---------------------------------------------------------------------------------------


def _keys(accelerator: Any, keys: Sequence[str]) -> list[str]:
    if accelerator.num_processes <= 1:
        return sorted(keys)
    from accelerate.utils import gather_object

    return sorted(set().union(*gather_object([sorted(keys)])))


def sum_over_processes(accelerator: Any, values: list[float]) -> list[float]:
    """``values`` summed elementwise over every process (float64; every process must call it)."""
    if accelerator.num_processes <= 1 or not values:
        return values
    total = torch.tensor(values, dtype=torch.float64, device=accelerator.device)
    return accelerator.reduce(total, "sum").cpu().tolist()


def counters_over_processes(accelerator: Any, counters: Mapping[str, float]) -> dict[str, float]:
    """The run's counters over every process: the costs (samples, tokens, queries, oracle
    calls) summed; ``rounds`` (the processes sample their rounds together) and the
    ``seconds_*`` of each phase (wall-clock, the processes run side by side) averaged. A
    counter one process lacks counts 0."""
    names = _keys(accelerator, list(counters))
    totals = sum_over_processes(accelerator, [float(counters.get(n, 0.0)) for n in names])
    n = max(accelerator.num_processes, 1)
    return {
        name: total / n if name == "rounds" or name.startswith("seconds_") else total
        for name, total in zip(names, totals, strict=True)
    }


def gather_rows(accelerator: Any) -> Callable[[list[Any]], list[Any]] | None:
    """Every process's list joined in process order on every process (``None``: one process)."""
    if accelerator.num_processes <= 1:
        return None
    from accelerate.utils import gather_object

    return gather_object


def mean_over_processes(
    accelerator: Any, window: Mapping[str, Sequence[float]]
) -> dict[str, float]:
    """The mean of each statistic's finite values over every process (NaN if none)."""
    if accelerator.num_processes <= 1:
        finite = {k: [v for v in vs if math.isfinite(v)] for k, vs in window.items()}
        return {k: float(np.mean(v)) if v else float("nan") for k, v in finite.items()}
    names = _keys(accelerator, list(window))
    sums, counts = [], []
    for name in names:
        finite = [v for v in window.get(name, ()) if math.isfinite(v)]
        sums.append(math.fsum(finite))
        counts.append(float(len(finite)))
    reduced = sum_over_processes(accelerator, sums + counts)
    n = len(names)
    return {
        name: reduced[i] / reduced[n + i] if reduced[n + i] else float("nan")
        for i, name in enumerate(names)
    }


# ---- engines ------------------------------------------------------------------------------------


def engine(trainer: Any) -> str:
    """The engine accelerate set up: one of :data:`ENGINES` (``deepspeed``: ZeRO 0-2)."""
    state = trainer.accelerator.state
    if getattr(trainer, "is_deepspeed_enabled", False):
        plugin = state.deepspeed_plugin
        return "zero3" if getattr(plugin, "zero_stage", 0) == 3 else "deepspeed"
    if getattr(trainer, "is_fsdp_enabled", False):
        version = getattr(getattr(state, "fsdp_plugin", None), "fsdp_version", 1)
        return "fsdp2" if version == 2 else "fsdp1"
    return "ddp" if trainer.accelerator.num_processes > 1 else "single"


def initial_copy(model: Any, source: Any) -> Any:
    """What the reference is loaded from when none is given: a copy of the initial policy, or
    under ZeRO-3 (whose parameters are partitioned as they load) the policy's folder again."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if is_deepspeed_zero3_enabled():
        if isinstance(source, str | os.PathLike):
            return source
        raise ValueError(
            "under DeepSpeed ZeRO-3 the reference cannot be copied from a partitioned model "
            "object: pass ref_model (a model folder) or give the model as a folder"
        )
    return copy.deepcopy(model)


def _deepspeed_inference(model: Any, accelerator: Any) -> Any:
    """A frozen model as a DeepSpeed engine of the run's config: partitioned under ZeRO-3,
    whole (stage 0, same dtype as the policy) under ZeRO 0-2; no optimizer or scheduler."""
    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    zero = config.setdefault("zero_optimization", {})
    zero.pop("offload_optimizer", None)
    if zero.get("stage", 0) != 3:
        zero["stage"] = 0  # ZeRO 1-2 partition optimizer state and gradients: none here
    else:
        hidden = getattr(model.config, "hidden_size", None)
        sizes = {
            "reduce_bucket_size": lambda h: h * h,
            "stage3_prefetch_bucket_size": lambda h: int(0.9 * h * h),
            "stage3_param_persistence_threshold": lambda h: 10 * h,
        }
        for key, size in sizes.items():
            if zero.get(key) == "auto":
                if hidden is None:
                    zero.pop(key)
                else:
                    zero[key] = size(hidden)
    ds_engine, *_ = deepspeed.initialize(model=model, config=config)
    ds_engine.eval()
    return ds_engine


def prepare_for_engine(trainer: Any) -> None:
    """Refuse an engine the trainer cannot run under, and place ``trainer.ref_model``: on the
    device (single process, DDP), as a ZeRO engine's module (DeepSpeed; ``_wind_ref_engine``
    keeps the engine) or sharded like the policy (FSDP2)."""
    kind = engine(trainer)
    trainer._wind_ref_engine = None
    if kind == "fsdp1":
        raise ValueError(
            "FSDP version 1 is not supported by WINDTrainer (its generation would need "
            "summon_full_params); use fsdp_version: 2 (wind train --accelerate-config fsdp2)"
        )
    ref = trainer.ref_model
    if ref is None:
        return
    if kind in ("deepspeed", "zero3"):
        ds_engine = _deepspeed_inference(ref, trainer.accelerator)
        trainer._wind_ref_engine = ds_engine
        trainer.ref_model = ds_engine.module
    elif kind == "fsdp2":
        from accelerate.utils.fsdp_utils import fsdp2_prepare_model

        trainer.ref_model = fsdp2_prepare_model(trainer.accelerator, ref).eval()
    else:
        ref.to(trainer.accelerator.device)


# ---- generation on gathered parameters ----------------------------------------------------------


def _zero3_offload(ds_engine: Any) -> Any:
    """The object holding a ZeRO-3 engine's parameter hooks (``None`` if not found)."""
    optimizer = getattr(ds_engine, "optimizer", None)
    offload = getattr(optimizer, "parameter_offload", None) or optimizer
    if offload is None or not hasattr(offload, "forward_hooks"):
        return None
    return offload


def _zero3_params(module: torch.nn.Module) -> list[Tensor]:
    params = list(module.parameters())
    for sub in module.modules():
        external = getattr(sub, "ds_external_parameters", None)
        if callable(external):
            params += [p for _, p in external()]
    return params


@contextlib.contextmanager
def _zero3_gathered(engines: Sequence[Any]) -> Iterator[None]:
    """Every parameter of the ZeRO-3 ``engines`` gathered, their fetch / release hooks off (so
    a process's forward passes need no collective and may differ in number between processes)."""
    import deepspeed

    offloads = [_zero3_offload(e) for e in engines]
    if any(o is None for o in offloads):
        raise RuntimeError(
            "cannot find the ZeRO-3 parameter hooks of this DeepSpeed version to gather the "
            "parameters for generation; report the DeepSpeed version"
        )
    params = [p for e in engines for p in _zero3_params(e.module)]
    with deepspeed.zero.GatheredParameters(params):
        for offload in offloads:
            for p in _zero3_params(offload.module):
                p.ds_active_sub_modules.clear()
            for hook in [*offload.forward_hooks, *offload.backward_hooks]:
                hook.remove()
            offload.forward_hooks, offload.backward_hooks = [], []
        try:
            yield
        finally:
            for offload in offloads:
                coordinator = getattr(offload, "param_coordinator", None)
                if coordinator is not None and not coordinator.is_invalid_trace():
                    coordinator._invalidate_trace()
                register = getattr(offload, "_register_deepspeed_module", None)
                if register is None:  # older DeepSpeed
                    register = offload._register_hooks_recursively
                register(offload.module)


def _fsdp2_units(model: torch.nn.Module) -> list[Any]:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def _fsdp2_reshard(models: Sequence[torch.nn.Module]) -> None:
    for model in models:
        for unit in _fsdp2_units(model):
            unit.reshard()


@contextlib.contextmanager
def _fsdp2_gathered(models: Sequence[torch.nn.Module]) -> Iterator[None]:
    """Every FSDP2 unit of ``models`` unsharded and kept so through every forward pass."""
    saved = []
    for model in models:
        for unit in _fsdp2_units(model):
            state = unit._get_fsdp_state()
            groups = list(getattr(state, "_fsdp_param_groups", None) or [])
            saved.append(
                (
                    state,
                    getattr(state, "_auto_reshard_after_forward", None),
                    [(g, g.post_forward_mesh_info) for g in groups],
                )
            )
            unit.set_reshard_after_forward(False, recurse=False)
            unit.unshard()
    try:
        yield
    finally:
        for state, auto, groups in saved:
            if auto is not None:
                state._auto_reshard_after_forward = auto
            for group, info in groups:
                group.post_forward_mesh_info = info
        _fsdp2_reshard(models)


@contextlib.contextmanager
def gathered_for_generation(trainer: Any, with_reference: bool = False) -> Iterator[None]:
    """The policy's (and with ``with_reference`` the reference's) parameters gathered while
    sampling under ZeRO-3 and FSDP2, so that the processes, whose responses end at different
    lengths, never wait on each other inside a forward pass; nothing elsewhere. J-BOND swaps its
    anchor in *before* this (a gather reads the pieces)."""
    kind = engine(trainer)
    if kind == "zero3":
        engines = [trainer.model_wrapped]
        if with_reference and trainer._wind_ref_engine is not None:
            engines.append(trainer._wind_ref_engine)
        with _zero3_gathered(engines):
            yield
    elif kind == "fsdp2":
        models = [trainer.model]
        if with_reference and trainer.ref_model is not None:
            models.append(trainer.ref_model)
        with _fsdp2_gathered(models):
            yield
    else:
        yield


# ---- J-BOND's anchor on sharded parameters ------------------------------------------------------


def anchor_for_engine(trainer: Any) -> EMAAnchor | None:
    """An :class:`~windalign.llm.state.EMAAnchor` on this process's pieces of the prepared
    policy under FSDP2 / DeepSpeed; ``None`` under a single process or DDP (the anchor built on
    the model holds the parameters themselves)."""
    kind = engine(trainer)
    model = trainer.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    if kind == "fsdp2":

        def local() -> list[Tensor]:
            return [p.to_local() if hasattr(p, "to_local") else p.data for p in trainable]

        return EMAAnchor(local, lambda: _fsdp2_reshard([model]))
    if kind == "zero3":

        def partitions() -> list[Tensor]:
            out = []
            for p in trainable:
                out.append(p.ds_tensor)
                if getattr(p, "ds_persist", False):  # kept gathered: used as is
                    out.append(p.data)
            return out

        return EMAAnchor(partitions)
    if kind == "deepspeed":
        return EMAAnchor(lambda: [p.data for p in trainable])
    return None
