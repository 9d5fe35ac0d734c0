"""Checkpoints that never lie and resume exactly: a ``transformers.Trainer`` base class.

``transformers.Trainer`` writes a checkpoint file by file and rotates old ones as soon as the new
folder exists, so a kill mid-save can leave only an incomplete checkpoint. :class:`ResumableTrainer`
saves every process's :meth:`~ResumableTrainer.extra_state` beside Trainer's files, marks the
folder complete (``windalign.llm.state.mark_complete``) only after every file is written, rotates
only after the marker, resumes only from complete, intact checkpoints (``True`` = the last one) with
the same number of processes, removes incomplete ones and cuts ``metrics.jsonl`` back to the resumed
step. Subclasses define ``extra_state`` / ``load_extra_state`` and call
:meth:`~ResumableTrainer.load_resumed_state` when training begins.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_utils import rotate_checkpoints

from windalign.llm import distributed
from windalign.llm.state import checkpoints, is_complete, mark_complete, resumable_checkpoint

METRICS = "metrics.jsonl"
#: one line per evaluation: its step and each held-out prompt's win rate and KL (paired analyses)
EVALUATIONS = "evaluations.jsonl"
STATE = "windalign_state_{rank}.pt"


class ResumableTrainer(Trainer):
    """``Trainer`` with complete-marked checkpoints and exact resume (see the module docs)."""

    _resume_from: str | None = None

    def extra_state(self) -> dict[str, Any]:
        """Per-process state a checkpoint must hold besides Trainer's (plain tensors, lists)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""

    def load_resumed_state(self) -> None:
        """Load this process's extra state from the checkpoint being resumed, if any."""
        if self._resume_from:
            path = Path(self._resume_from) / STATE.format(rank=self.args.process_index)
            self.load_extra_state(torch.load(path, weights_only=True))

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """Save, add WIND's state, mark complete, then rotate (never before the marker)."""
        folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
        if self.args.should_save and folder.exists():
            shutil.rmtree(folder)  # an incomplete leftover of a killed run
        self.accelerator.wait_for_everyone()  # issue 8: nobody writes into it before that
        limit, self.args.save_total_limit = self.args.save_total_limit, None
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        state = self.extra_state()
        folder.mkdir(parents=True, exist_ok=True)  # issue 8: a process that saved nothing yet
        torch.save(state, folder / STATE.format(rank=self.args.process_index))
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            mark_complete(
                folder, {"step": self.state.global_step, "processes": self.args.world_size}
            )
            rotate_checkpoints(str(folder.parent), limit, self.state.best_model_checkpoint)

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:
        """``Trainer.train`` that resumes only from complete checkpoints (``True`` = the last)."""
        out = Path(self.args.output_dir)
        if resume_from_checkpoint:  # exists, complete, every file as saved
            resume_from_checkpoint = str(resumable_checkpoint(out, resume_from_checkpoint))
        # issue 8: one run per output_dir (a lock on the main process), as many processes as
        # the checkpoint's, and the WIND state loaded once the engine has prepared the model
        distributed.check_resume(resume_from_checkpoint, self.args.world_size)
        self._resume_from = resume_from_checkpoint or None
        with distributed.output_dir_lock(self.args):
            if self.args.should_save:
                self._clean_run_dir(out, resume_from_checkpoint)
            self.accelerator.wait_for_everyone()
            return super().train(resume_from_checkpoint=resume_from_checkpoint or None, **kwargs)

    def _clean_run_dir(self, out: Path, resume: str | None) -> None:
        """Drop incomplete checkpoints and the metrics and evaluations logged after the resumed
        step."""
        out.mkdir(parents=True, exist_ok=True)
        for _, folder in checkpoints(out):
            if not is_complete(folder):
                shutil.rmtree(folder)
        step = int(Path(resume).name.split("-")[1]) if resume else 0
        out.joinpath(METRICS).touch()
        for log in (out / METRICS, out / EVALUATIONS):
            if not log.exists():
                continue
            kept = []
            for line in log.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if row.get("step", 0) <= step:
                    kept.append(line)
            log.write_text("".join(line + "\n" for line in kept))
