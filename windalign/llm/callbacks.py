"""The trainer's callbacks: optimizer-step timing and the J-BOND anchor; the progress bar."""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback


class WindCallback(TrainerCallback):
    """Times the optimizer step (``train`` seconds) and the whole of every step less evaluation
    (``wall`` seconds: the cost axis of docs/results-llm.md); J-BOND's anchor follows the policy
    after every optimizer step."""

    def __init__(self, trainer: Any) -> None:
        self.trainer, self.start = trainer, 0.0
        self.mark, self.eval_mark = 0.0, 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer._begin_training()
        self.mark = time.perf_counter()
        self.eval_mark = self.trainer.counters["seconds_evaluate"]

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.start = time.perf_counter()

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer.counters["seconds_train"] += time.perf_counter() - self.start

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.trainer.anchor is not None:
            self.trainer.anchor.update(self.trainer.hp["gamma"])
        now, c = time.perf_counter(), self.trainer.counters
        c["seconds_wall"] += now - self.mark - (c["seconds_evaluate"] - self.eval_mark)
        self.mark, self.eval_mark = now, c["seconds_evaluate"]


class RoundProgress(TrainerCallback):
    """A progress bar over optimizer steps showing rounds, samples and queries so far."""

    def __init__(self, trainer: Any) -> None:
        self.trainer, self.bar = trainer, None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc="wind train",
                unit="step",
                dynamic_ncols=True,
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            c = self.trainer.counters
            self.bar.set_postfix(
                round=int(c["rounds"]),
                samples=int(c["samples"]),
                queries=int(c["queries"]),
                refresh=False,
            )
            self.bar.update(state.global_step - self.bar.n)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
