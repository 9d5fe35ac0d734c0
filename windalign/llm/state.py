"""What a WIND run keeps between optimizer steps, and how checkpoints are made trustworthy.

* :class:`Round` -- one sampling round on this process: prompts, K responses each, their
  log-probabilities under the sampler and the reference, the preference matrix.
* :class:`EMAAnchor` -- J-BOND's anchor: an exponential moving average of the *trainable*
  parameters (the whole model, or only a LoRA adapter; or this process's shards), in float32,
  swapped into the model to sample from it.
* Checkpoint completeness: ``transformers.Trainer`` writes a checkpoint file by file, so a kill
  mid-save leaves a folder that looks valid. A checkpoint counts as complete only once
  :func:`mark_complete` has written its marker, after every other file is on disk;
  :func:`last_complete_checkpoint` never returns an incomplete one. The marker lists every
  file and its size, so :func:`resumable_checkpoint` also refuses a complete checkpoint that
  lost or truncated a file since (naming it) rather than resume from half of it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from windalign.rundir import atomic_write

#: Written last into a checkpoint folder: its presence means every file of the checkpoint exists.
COMPLETE = "windalign_complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class Round:
    """One round's samples on this process (B prompts x K responses), THEORY.md 6 and 8.

    ``logp_old`` is NaN where not yet recorded (the first optimizer step of a round records its
    own prompts' values as ``logp.detach()``); ``logp_ref`` is None when the objective does not
    use the reference. ``prefs [B, K, K]`` float64, NaN where not queried.
    """

    index: int
    prompt_index: list[int]
    prompt_ids: list[list[int]]
    responses: list[list[list[int]]]
    truncated: Tensor  # [B, K] bool
    logp_old: Tensor  # [B, K] float64
    logp_ref: Tensor | None  # [B, K] float64
    prefs: Tensor  # [B, K, K] float64

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and lists (loadable with ``torch.load(weights_only=True)``)."""
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Round:
        return cls(**{f.name: state[f.name] for f in fields(cls)})


class EMAAnchor:
    """J-BOND's anchor: ``a <- (1 - gamma) a + gamma theta`` over the *trainable* parameters,
    kept in float32 whatever the parameters' dtype (THEORY.md 8, "Precision": in bf16 an EMA
    step of ``gamma = 0.02`` on a small update would round away).

    ``source`` is the model (its trainable parameters: the whole model, or a LoRA adapter) or a
    function returning the tensors this process holds (FSDP2: the local shards; ZeRO-3: each
    partition, plus the full tensor of parameters ZeRO-3 keeps gathered; ZeRO 0-2: the full
    parameters; :func:`windalign.llm.distributed.anchor_for_engine`). The EMA is elementwise, so
    the EMA of the pieces is the piece of the EMA. ``sync()`` drops gathered copies that would
    hide a change of the pieces (FSDP2 units kept unsharded after a forward pass).
    :meth:`swapped` copies the anchor into the pieces (rounded to their dtype) and back exactly
    (the pieces are saved, not recomputed), so forward passes, ``generate`` or a gather inside
    it run the anchor model.
    """

    def __init__(
        self,
        source: torch.nn.Module | Callable[[], list[Tensor]],
        sync: Callable[[], None] = lambda: None,
    ) -> None:
        if isinstance(source, torch.nn.Module):
            params = [p for p in source.parameters() if p.requires_grad]
            source = lambda: [p.data for p in params]  # noqa: E731
        self.pieces, self.sync = source, sync
        with torch.no_grad():
            self.shadow = [t.detach().float().clone() for t in self.pieces()]

    @torch.no_grad()
    def update(self, gamma: float) -> None:
        """One EMA step towards the current parameters at rate ``gamma`` (in float32)."""
        torch._foreach_lerp_(self.shadow, [t.detach().float() for t in self.pieces()], gamma)

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """Run the model with the anchor's parameters inside the block."""
        with torch.no_grad():
            self.sync()
            pieces = self.pieces()
            saved = [t.detach().clone() for t in pieces]
            for t, a in zip(pieces, self.shadow, strict=True):
                t.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                self.sync()
                for t, s in zip(self.pieces(), saved, strict=True):
                    t.copy_(s)

    def state_dict(self) -> list[Tensor]:
        return [a.detach().cpu() for a in self.shadow]

    def load_state_dict(self, state: list[Tensor]) -> None:
        if len(state) != len(self.shadow):
            raise ValueError(
                f"the checkpoint's J-BOND anchor has {len(state)} tensors, this process "
                f"{len(self.shadow)}: resume with the same model, peft_config, engine and "
                "number of processes"
            )
        for a, s in zip(self.shadow, state, strict=True):
            a.copy_(s)


def is_complete(folder: str | os.PathLike) -> bool:
    """Whether a checkpoint folder holds the completion marker."""
    return (Path(folder) / COMPLETE).is_file()


def mark_complete(folder: str | os.PathLike, info: dict[str, Any]) -> None:
    """fsync every file of ``folder``, then write its completion marker atomically: ``info``
    and ``files`` (each file's path in the folder and size in bytes)."""
    files = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name != COMPLETE:
            with open(path, "rb") as f:
                os.fsync(f.fileno())
            files[path.relative_to(folder).as_posix()] = path.stat().st_size
    atomic_write(Path(folder) / COMPLETE, json.dumps({**info, "files": files}, indent=1))


def damage(folder: str | os.PathLike) -> str | None:
    """What a complete checkpoint lost since it was marked (a file missing or of another size
    than the marker lists), or None when it is intact."""
    try:
        marker = json.loads((Path(folder) / COMPLETE).read_text())
    except (OSError, ValueError):
        return f"its completion marker {COMPLETE} is unreadable"
    for name, size in marker.get("files", {}).items():  # markers before the list: trusted
        path = Path(folder) / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, not the {size} it was saved with"
    return None


def resumable_checkpoint(output_dir: str | os.PathLike, resume: str | os.PathLike | bool) -> Path:
    """The checkpoint to resume from: ``True`` = the last complete one in ``output_dir``, or
    the folder ``resume``; ``ValueError`` naming the folder, what is wrong and the fix when it
    does not exist, is incomplete (killed while saving) or lost a file since it was saved. A fix
    names only an intact checkpoint (complete and undamaged), one saved before a damaged one."""
    if resume is True:
        folder = last_complete_checkpoint(output_dir)
        if folder is None:
            raise ValueError(
                f"no complete checkpoint in {str(output_dir)!r} to resume from; start the run "
                "again without --resume-from-checkpoint (add --overwrite)"
            )
    else:
        folder = Path(resume)
        last = last_intact_checkpoint(output_dir)
        fallback = (
            f"the last intact one in {output_dir} is {last}"
            if last
            else f"{output_dir} holds no intact checkpoint"
        )
        if not folder.exists():
            raise ValueError(f"checkpoint {str(folder)!r} does not exist; {fallback}")
        if not is_complete(folder):
            raise ValueError(
                f"checkpoint {str(folder)!r} is incomplete (killed while saving) or not a "
                f"checkpoint folder; {fallback}"
            )
    problem = damage(folder)
    if problem is not None:
        step = _CHECKPOINT.match(folder.name)
        earlier = last_intact_checkpoint(
            output_dir, before=int(step.group(1)) if step else None, other_than=folder
        )
        fix = f"resume from {earlier} instead" if earlier else "start the run again"
        raise ValueError(f"checkpoint {str(folder)!r} is damaged: {problem}; {fix}")
    return folder


def checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoint-N`` folder, complete or not, by step."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CHECKPOINT.match(p.name))]
    return sorted((s, p) for s, p in found if p.is_dir())


def last_complete_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    done = [p for _, p in checkpoints(output_dir) if is_complete(p)]
    return done[-1] if done else None


def last_intact_checkpoint(
    output_dir: str | os.PathLike, before: int | None = None, other_than: Path | None = None
) -> Path | None:
    """The complete, undamaged checkpoint with the highest step (below ``before``; not the
    folder ``other_than``, however spelled), or None."""
    skip = other_than.resolve() if other_than is not None else None
    for step, p in reversed(checkpoints(output_dir)):
        if before is not None and step >= before:
            continue
        if is_complete(p) and p.resolve() != skip and damage(p) is None:
            return p
    return None
