"""``WINDTrainer``: WIND and its baselines on a causal LM, as a ``transformers.Trainer``.

One round (THEORY.md 6 and 8), top to bottom, on each process:

    prompts -> sample K responses (rollout) -> log pi_old, log pi_ref (no grad, once)
      -> preference oracle [B, K, K] -> SampleBatch -> compute_loss -> optimizer step (x M)

The trainer only builds SampleBatches; every loss is ``windalign.objectives.compute_loss``. The
training dataloader yields *positions in the plan* (round, minibatch, micro-batch), never data,
so resuming is exact: a round's prompts are a function of (seed, round, process), its samples are
drawn under a generator seeded by the same, and a checkpoint stores the round in progress.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedModel, TrainerCallback
from transformers.trainer_callback import ProgressCallback

from windalign.llm import distributed, rollout
from windalign.llm.callbacks import RoundProgress, WindCallback
from windalign.llm.config import WINDConfig
from windalign.llm.data import encode_prompts, load_prompts, prompt_text
from windalign.llm.resume import EVALUATIONS, METRICS, ResumableTrainer
from windalign.llm.state import (
    EMAAnchor,
    Round,
)
from windalign.lm import tokens
from windalign.lm.loading import (
    check_same_tokenizer,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
)
from windalign.objectives import SampleBatch, compute_loss
from windalign.preferences import as_oracle, count_queries

TIMERS = ("generate", "reference", "old_logprobs", "oracle", "train", "evaluate")


class NonFiniteLossError(FloatingPointError):
    """The loss or the gradient became NaN or infinite; raised before the optimizer step, so no
    weight changes."""


class SkippedQueriesError(FloatingPointError):
    """The oracle left more than ``max_skipped_share`` of a round's queries unanswered."""


class _Plan(Dataset):
    """Micro-batch positions ``0..n-1``: the dataloader yields indices, the trainer the data."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, int]:
        return {"position": i}


def _first(batch: list[dict[str, int]]) -> dict[str, int]:
    return batch[0]


def _load_model(model: Any, args: WINDConfig, what: str) -> PreTrainedModel:
    """``model`` itself, or loaded by name (alias, folder, hub id) in ``args.dtype``."""
    if isinstance(model, str | os.PathLike):
        revision = args.ref_model_revision if what == "ref_model" else args.model_revision
        return load_causal_lm(str(model), args.dtype, revision, args.trust_remote_code, what=what)
    if not isinstance(model, torch.nn.Module):
        raise ValueError(
            f"{what} must be a model, a local folder, an alias or a hub id; got {type(model)}"
        )
    return model


def derived_seed(seed: int, *keys: int) -> int:
    """A seed that is a function of ``(seed, keys)`` only.

    >>> derived_seed(0, 1) == derived_seed(0, 1) != derived_seed(0, 2)
    True
    """
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def evaluation_seeds(seed: int, step: int) -> tuple[int, int]:
    """``(policy, baseline)`` sampling seeds of the evaluation at ``step`` of a run seeded
    ``seed``, the same on every process; the baseline's (the initial policy's) does not depend
    on the step, so every evaluation of a run, and every run of that seed, meets the same
    baseline samples (benchmarks reuse it to compare other trainers on the same samples)."""
    return derived_seed(seed, step, 1), derived_seed(seed, 0, 1, 1)


class WINDTrainer(ResumableTrainer):
    """Train a causal LM with any objective of ``windalign.objectives.LOSSES`` (THEORY.md 8).

    ``preference`` is a :class:`~windalign.preferences.PreferenceOracle`, a reward function
    ``f(prompts, responses) -> list[list[float]]`` (Bradley-Terry), or a registered name.
    ``train_dataset``: anything :func:`~windalign.llm.data.load_prompts` takes. With
    ``peft_config`` the reference is the base model with the adapter disabled; otherwise
    ``ref_model`` or a frozen copy of the initial model; it is not built at all when the
    objective does not use it (``beta = 0``, and no Nash-MD mixture).
    """

    def __init__(
        self,
        model: Any,
        ref_model: Any = None,
        args: WINDConfig | None = None,
        preference: Any = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        peft_config: Any = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[Any, Any] = (None, None),
    ) -> None:
        args = args if args is not None else WINDConfig(output_dir="wind-output")
        if not isinstance(args, WINDConfig):
            raise ValueError(f"args must be a WINDConfig, got {type(args).__name__}")
        if preference is None:
            raise ValueError("preference is required: an oracle, a reward function or a name")
        if train_dataset is None:
            raise ValueError("train_dataset is required: prompts ('builtin', a file, a dataset)")
        self.oracle = as_oracle(preference)
        self.spec, self.hp = args.spec, args.loss_hyperparameters()
        tokenizer = processing_class
        if tokenizer is None:
            if not isinstance(model, str | os.PathLike):
                raise ValueError("processing_class (the tokenizer) is required for a model object")
            tokenizer = load_tokenizer(str(model), args.model_revision, args.trust_remote_code)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:  # responses end at their first EOS, found by id
            tokenizer.pad_token = tokenizer.eos_token
        # Prompts are checked and tokenized before any model loads.
        self.prompts = load_prompts(train_dataset, args.prompt_column)
        self.prompt_ids = encode_prompts(
            tokenizer, self.prompts, args.max_prompt_length, args.prompt_truncation
        )
        self.eval_prompts = (
            load_prompts(eval_dataset, args.prompt_column) if eval_dataset is not None else None
        )
        for name, value, revision in (
            ("model", model, args.model_revision),
            ("ref_model", ref_model, args.ref_model_revision),
        ):  # a name that cannot load is refused before anything loads
            if isinstance(value, str | os.PathLike):
                resolve_model(str(value), revision, what=name)
        if isinstance(ref_model, str | os.PathLike):  # its log-probs of the policy's tokens
            ref_tok = load_tokenizer(
                str(ref_model), args.ref_model_revision, args.trust_remote_code, "ref_model"
            )
            names = ("the policy's tokenizer", f"ref_model {str(ref_model)!r}'s")
            check_same_tokenizer(tokenizer, ref_tok, names)
        source, model = model, _load_model(model, args, "model")
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
        if args.disable_dropout:
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
                if isinstance(getattr(module, "attention_dropout", None), float):
                    module.attention_dropout = 0.0  # functional dropout (Llama, Qwen2, ...)
        self.use_ref = self.hp.get("beta", 0.0) > 0 or (
            self.spec.sampling == "nash-md" and self.hp["alpha"] > 0
        )
        self.ref_model = None  # also the baseline of the periodic evaluation (the initial policy)
        if (self.use_ref or self.eval_prompts is not None) and peft_config is None:
            if ref_model is None:
                ref_model = distributed.initial_copy(model, source)  # ZeRO-3: the folder
            self.ref_model = _load_model(ref_model, args, "ref_model").eval().requires_grad_(False)
        n_micro = self._plan_steps(args) * args.gradient_accumulation_steps
        super().__init__(
            model=model,
            args=args,
            data_collator=_first,
            train_dataset=_Plan(n_micro),
            eval_dataset=self.eval_prompts,
            processing_class=tokenizer,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        self.loss_is_scaled_for_ga = False  # compute_loss returns a per-prompt mean
        distributed.prepare_for_engine(self)  # the reference on the device / sharded (issue 8)
        self.anchor = EMAAnchor(self.model) if self.spec.sampling == "jbond" else None
        self._anchor_on_engine = False  # set once _begin_training moved it onto the engine
        self.eos_ids = rollout.eos_token_ids(self.model, tokenizer)
        self.pad_id = tokenizer.pad_token_id
        self.gen_config = rollout.sampling_config(
            self.eos_ids,
            self.pad_id,
            temperature=args.temperature,
            max_new_tokens=args.max_new_tokens,
            top_k=args.top_k,
            top_p=args.top_p,
        )
        self.round: Round | None = None
        self.last_evaluation: Any = None
        self._baseline_samples = self._baseline_cache()  # the evaluation baseline's, per batch
        names = ("rounds", "samples", "tokens", "queries", "skipped_queries", "oracle_calls")
        names += (*(f"seconds_{t}" for t in TIMERS), "seconds_wall")
        self.counters: dict[str, float] = defaultdict(float, dict.fromkeys(names, 0.0))
        self._window: dict[str, list[float]] = defaultdict(list)
        self.add_callback(WindCallback(self))
        if self.args.disable_tqdm is False:
            self.pop_callback(ProgressCallback)
            self.add_callback(RoundProgress(self))

    # ---- the plan: which prompts each round samples ------------------------------------------

    def _plan_steps(self, args: WINDConfig) -> int:
        """Optimizer steps of the run: ``max_steps``, or ``num_train_epochs`` over the prompts."""
        if args.max_steps > 0:
            return args.max_steps
        per_round = args.round_prompts * args.world_size
        rounds = max(1, math.ceil(args.num_train_epochs * len(self.prompts) / per_round))
        args.max_steps = rounds * args.steps_per_round
        return args.max_steps

    def round_prompts(self, r: int) -> list[int]:
        """Indices of the prompts of round ``r`` on this process (a seeded pass over the data)."""
        n, P = len(self.prompts), self.args.round_prompts
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        start = (r * self.args.world_size + self.args.process_index) * P
        out = []
        for g in range(start, start + P):
            order = np.random.default_rng([seed, g // n]).permutation(n)
            out.append(int(order[g % n]))
        return out

    def _seed(self, *keys: int, per_process: bool = True) -> int:
        """A seed that is a function of (seed, keys, process) only: rounds replay exactly.
        ``per_process=False``: the same seed on every process (the sharded evaluation)."""
        return derived_seed(self.args.seed, *keys, *([self.args.process_index] * per_process))

    # ---- one round: sample, score, record -----------------------------------------------------

    @contextmanager
    def _timer(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.counters[f"seconds_{name}"] += time.perf_counter() - start

    def _baseline_cache(self) -> dict[Any, Any]:
        """Where the evaluation baseline's samples are kept: in memory, or also on disk
        (``eval_baseline_cache``) for other runs against the same initial model."""
        folder = self.args.eval_baseline_cache
        if folder is None or self.eval_prompts is None:
            return {}
        from windalign.llm.evaluate import SampleCache

        reference, _ = self._reference()
        return SampleCache(folder, reference, precision=str(self.accelerator.mixed_precision))

    def _reference(self) -> Any:
        """The reference model and a context to run it in (adapter disabled under PEFT)."""
        policy = self.accelerator.unwrap_model(self.model)
        if self.ref_model is not None:
            return self.ref_model, torch.no_grad
        return policy, policy.disable_adapter

    def _generate(self, policy: Any, prompts: list[list[int]]) -> tuple[list, list]:
        """Responses of this objective's samplers for ``prompts``: ``(ids [B][K], truncated)``."""
        K, gc, eos = self.args.num_samples, self.gen_config, self.eos_ids
        sampling = self.spec.sampling
        if sampling == "policy":
            return self._sample(policy, prompts, K, gc, eos)
        own, own_t = self._sample(policy, prompts, 1, gc, eos)
        if sampling == "jbond":
            with self.anchor.swapped():
                other, other_t = self._sample(policy, prompts, K - 1, gc, eos)
        elif self.hp["alpha"] == 0:  # nash-md without mixing: the opponents are pi_t's samples
            other, other_t = self._sample(policy, prompts, K - 1, gc, eos)
        else:  # nash-md: opponents from the token-level geometric mixture with the reference
            ref, context = self._reference()

            def run_ref(**kw: Any) -> Any:
                with context():
                    return ref(**kw, use_cache=True)

            name = tokens.cache_kwarg(ref)

            def mixture(mask: torch.Tensor) -> rollout.GeometricMixture:
                return rollout.GeometricMixture(run_ref, self.hp["alpha"], mask, name)

            other, other_t = self._sample(policy, prompts, K - 1, gc, eos, mixture)
        ids = [a + b for a, b in zip(own, other, strict=True)]
        return ids, [a + b for a, b in zip(own_t, other_t, strict=True)]

    def _sample(self, policy: Any, *args: Any) -> tuple[list, list]:
        """``rollout.generate`` on gathered parameters under FSDP2 / ZeRO-3 (issue 8)."""
        mixture = self.spec.sampling == "nash-md" and len(args) > 4
        with distributed.gathered_for_generation(self, with_reference=mixture):
            return rollout.generate(policy, *args, share_prompts=self.args.share_prompt_cache)

    def _logprobs(self, model: Any, prompts: list[list[int]], responses: list[list[int]]) -> Any:
        return tokens.logprobs_no_grad(
            model,
            prompts,
            responses,
            self.args.temperature,
            self.pad_id,
            self.args.generation_batch_size * self.args.num_samples,
            self._share,  # as the training pass: every log-prob of a round in one regime
        ).double()

    def rollout_round(self, r: int) -> Round:
        """Sample round ``r`` on this process, record its log-probabilities and preferences."""
        args, K = self.args, self.args.num_samples
        index = self.round_prompts(r)
        prompts = [self.prompt_ids[i] for i in index]
        policy = self.accelerator.unwrap_model(self.model)
        was_training = policy.training
        policy.eval()
        responses, truncated = [], []
        devices = [self.args.device] if self.args.device.type == "cuda" else []
        with self.accelerator.autocast(), self._timer("generate"), torch.random.fork_rng(devices):
            torch.manual_seed(self._seed(r))
            for s in range(0, len(prompts), args.generation_batch_size):
                ids, cut = self._generate(policy, prompts[s : s + args.generation_batch_size])
                responses += ids
                truncated += cut
        flat_p = [p for p in prompts for _ in range(K)]
        flat_r = [y for ys in responses for y in ys]
        B = len(prompts)
        logp_old = torch.full((B, K), float("nan"), dtype=torch.float64)
        logp_ref = None
        with self.accelerator.autocast(), self._timer("reference"):
            if self.use_ref:
                ref, context = self._reference()
                with context():
                    logp_ref = self._logprobs(ref, flat_p, flat_r).view(B, K).cpu()
        with self.accelerator.autocast(), self._timer("old_logprobs"):
            if self.spec.sampling == "jbond":  # logp_old is the anchor's for all three samples
                with self.anchor.swapped():
                    logp_old = self._logprobs(policy, flat_p, flat_r).view(B, K).cpu()
            elif args.minibatches_per_round > 1:  # the first step records its own prompts
                rest = args.prompts_per_step
                logp_old[rest:] = (
                    self._logprobs(policy, flat_p[rest * K :], flat_r[rest * K :])
                    .view(B - rest, K)
                    .cpu()
                )
        policy.train(was_training)
        texts = self.processing_class.batch_decode(flat_r, skip_special_tokens=True)
        texts = [texts[b * K : (b + 1) * K] for b in range(B)]
        pairs = [(0, j) for j in range(1, K)] if self.spec.sampling == "nash-md" else None
        queries, calls = self.oracle.counters.queries, self.oracle.counters.calls
        with self._timer("oracle"):
            prefs = self.oracle([prompt_text(self.prompts[i]) for i in index], texts, pairs)
        self._check_answered(r, prefs, pairs)
        truncated = torch.as_tensor(truncated, dtype=torch.bool)
        if args.truncated_responses == "lose":
            prefs = rollout.truncation_penalty(prefs, truncated)
        lengths = [len(y) for y in flat_r]
        self.counters["rounds"] += 1
        self.counters["samples"] += len(flat_r)
        self.counters["tokens"] += sum(lengths)
        self.counters["queries"] += self.oracle.counters.queries - queries
        self.counters["oracle_calls"] += self.oracle.counters.calls - calls
        self._window["response_length"].append(float(np.mean(lengths)))
        self._window["eos_rate"].append(1.0 - truncated.double().mean().item())
        return Round(r, index, prompts, responses, truncated, logp_old, logp_ref, prefs)

    def _check_answered(self, r: int, prefs: torch.Tensor, pairs: Any) -> None:
        """Count the queries the oracle left unanswered (NaN): they carry no gradient, so warn
        per round and stop when their share of the round's queries over every process passes
        ``max_skipped_share`` (every process decides alike: none waits on one that stopped)."""
        B, K = prefs.shape[0], self.args.num_samples
        asked = B * (len(pairs) if pairs is not None else K * (K - 1) // 2)
        skipped = asked - count_queries(prefs)
        self.counters["skipped_queries"] += skipped
        skipped, asked = distributed.sum_over_processes(self.accelerator, [skipped, asked])
        if not skipped:
            return
        share = skipped / asked
        oracle = self.oracle.name
        what = f"round {r}: the oracle {oracle!r} left {skipped:.0f} of {asked:.0f} queries "
        if share > self.args.max_skipped_share:
            raise SkippedQueriesError(
                what + f"unanswered ({share:.0%} > max_skipped_share = "
                f"{self.args.max_skipped_share}); fix the oracle (a judge's failures are "
                "counted in its log) or raise max_skipped_share"
            )
        if self.accelerator.is_main_process:
            warnings.warn(what + "unanswered (NaN): those pairs carry no gradient", stacklevel=2)

    def round_examples(self, n: int) -> list[tuple[str, list[str], list[float]]]:
        """``(prompt, responses, estimated win rates)`` of the first ``n`` prompts of the last
        round (win rate: mean preference over the queried pairs)."""
        if self.round is None:
            return []
        out = []
        for b in range(min(n, len(self.round.prompt_index))):
            texts = self.processing_class.batch_decode(
                self.round.responses[b], skip_special_tokens=True
            )
            wins = torch.nanmean(self.round.prefs[b], dim=-1).tolist()
            out.append((prompt_text(self.prompts[self.round.prompt_index[b]]), texts, wins))
        return out

    # ---- one micro-batch: SampleBatch -> compute_loss ----------------------------------------

    def _prepare_inputs(self, inputs: dict[str, int]) -> dict[str, Any]:
        """Turn a plan position into this micro-batch's rows of the (sampled) round."""
        args = self.args
        step, micro = divmod(inputs["position"], args.gradient_accumulation_steps)
        r, s = divmod(step, args.steps_per_round)
        if self.round is None or self.round.index != r:
            self.round = self.rollout_round(r)
        start = (s % args.minibatches_per_round) * args.prompts_per_step
        start += micro * args.per_device_train_batch_size
        rows = list(range(start, start + args.per_device_train_batch_size))
        return {"rows": rows, "first_step": s == 0, "step": step}

    @property
    def _share(self) -> bool:
        """Whether the training forward runs each prompt once for its K responses
        (:func:`tokens.pack`): not under gradient / activation checkpointing, whose recomputed
        forward would run the shared KV cache a second time."""
        plugin = getattr(self.accelerator.state, "fsdp_plugin", None)
        checkpointing = self.args.gradient_checkpointing or bool(
            getattr(plugin, "activation_checkpointing", False)
        )
        checkpointing |= any(getattr(m, "gradient_checkpointing", False) is True
                             for m in self.model.modules())  # fmt: skip
        return self.args.share_prompt_cache and not checkpointing

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **kwargs: Any
    ) -> Any:
        """The objective's loss on this micro-batch's SampleBatch (THEORY.md 8)."""
        rnd, rows, K = self.round, inputs["rows"], self.args.num_samples
        prompts = [rnd.prompt_ids[b] for b in rows for _ in range(K)]
        responses = [y for b in rows for y in rnd.responses[b]]
        packed = tokens.pack(prompts, responses, self.pad_id, self.args.device, self._share)
        with self.accelerator.autocast():  # the regime of every other pass (THEORY.md 8)
            logp = tokens.sequence_logprobs(model, packed, self.args.temperature)
        logp = logp.view(len(rows), K).double()
        self._check_finite("the policy's log-probabilities", logp, inputs["step"])
        logp_old = rnd.logp_old[rows].to(logp.device)
        if inputs["first_step"] and self.spec.sampling != "jbond":
            logp_old = logp.detach()  # exact: the parameters have not moved since sampling
            rnd.logp_old[rows] = logp_old.cpu()
        logp_ref = rnd.logp_ref[rows].to(logp.device) if rnd.logp_ref is not None else logp_old
        batch = SampleBatch(logp, logp_old, logp_ref, rnd.prefs[rows].to(logp.device))
        loss, stats = compute_loss(self.args.objective, batch, **self.hp)
        self._check_finite(f"the {self.args.objective} loss", loss, inputs["step"])
        if not self.use_ref:
            stats.pop("kl_ref", None)
        for key, value in stats.items():
            self._window[f"objective/{key}"].append(value)
        return loss.float()

    def training_step(self, model: Any, inputs: dict[str, int], *args: Any) -> torch.Tensor:
        """Forward and backward of one micro-batch; its seconds, less any rollout inside, are
        counted as ``train`` (the optimizer step is added by the callback)."""

        def sampling_seconds() -> float:
            return sum(self.counters[f"seconds_{n}"] for n in TIMERS if n != "train")

        start, before = time.perf_counter(), sampling_seconds()
        loss = super().training_step(model, inputs, *args)
        elapsed = time.perf_counter() - start - (sampling_seconds() - before)
        self.counters["seconds_train"] += elapsed
        return loss

    # ---- evaluation against the initial policy -------------------------------------------------

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: Any = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Held-out win rate of the policy against the reference (by default the initial
        policy) under the training oracle, with ``KL(policy || reference)``
        (:func:`windalign.llm.evaluate.evaluate`); logged and returned as ``eval_*``."""
        from windalign.llm.evaluate import evaluate

        prompts = self.eval_prompts
        if eval_dataset is not None:
            prompts = load_prompts(eval_dataset, self.args.prompt_column)
        if prompts is None:
            raise ValueError("evaluation needs prompts: pass eval_dataset to WINDTrainer")
        args = self.args
        reference, context = self._reference()
        policy_seed, baseline_seed = evaluation_seeds(args.seed, self.state.global_step)
        start = time.perf_counter()
        with distributed.gathered_for_generation(self, with_reference=True):
            result = evaluate(
                self.accelerator.unwrap_model(self.model),
                reference,
                self.processing_class,
                prompts,
                self.oracle,
                samples=args.eval_samples,
                temperature=args.temperature,
                max_new_tokens=args.max_new_tokens,
                max_prompt_length=args.max_prompt_length,
                batch_size=args.generation_batch_size,
                seed=policy_seed,  # its own stream
                baseline_seed=baseline_seed,  # the same at every step
                baseline_cache=self._baseline_samples,  # the initial policy's: sampled once
                share_prompts=args.share_prompt_cache,
                baseline_context=context,
                autocast=self.accelerator.autocast,
                shard=(args.process_index, args.world_size),
                gather=distributed.gather_rows(self.accelerator),
            )
        self.counters["seconds_evaluate"] += time.perf_counter() - start
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in result.summary.items()}
        self.last_evaluation = result
        if args.should_save:  # per prompt, for paired comparisons of runs on the same prompts
            keys = ("index", "win_rate", "kl")
            rows = [{k: row[k] for k in keys} for row in result.per_prompt]
            with open(Path(args.output_dir) / EVALUATIONS, "a") as f:
                f.write(json.dumps({"step": self.state.global_step, "prompts": rows}) + "\n")
        self.log(dict(metrics))
        self.control = self.callback_handler.on_evaluate(args, self.state, self.control, metrics)
        return metrics

    # ---- logging ------------------------------------------------------------------------------

    def _check_finite(self, what: str, value: torch.Tensor, step: int) -> None:
        flat = value.detach().flatten()
        bad = flat[~torch.isfinite(flat)]
        if bad.numel():
            raise NonFiniteLossError(
                f"{what} became {bad[0].item()} at optimizer step {step + 1} "
                f"(round {self.round.index}); stopped before the update, so the weights and "
                "the last checkpoint are intact: lower the learning rate or eta, and resume "
                "from the last checkpoint"
            )

    def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
        """Trainer's gradient norm over every process, refused when not finite (before the
        optimizer step, so the weights stay finite)."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        if grad_norm is not None and not math.isfinite(float(grad_norm)):
            step = self.state.global_step
            raise NonFiniteLossError(
                f"the gradient norm became {float(grad_norm)} at optimizer step {step + 1} "
                f"(round {self.round.index}); stopped before the update, so the weights and "
                "the last checkpoint are intact: lower the learning rate or eta, and resume "
                "from the last checkpoint"
            )
        return grad_norm

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the window's objective stats and the run's counters, over every process
        (:func:`~windalign.llm.distributed.counters_over_processes`)."""
        if "loss" in logs:  # a training log: the window's means (over every process)
            logs.update(distributed.mean_over_processes(self.accelerator, self._window))
            self._window.clear()
        if "train_runtime" not in logs:  # every log but the final summary: the costs so far
            logs.update(distributed.counters_over_processes(self.accelerator, self.counters))
        super().log(logs, start_time)
        if self.args.should_save:
            row = {"step": self.state.global_step, **logs}
            with open(Path(self.args.output_dir) / METRICS, "a") as f:
                f.write(json.dumps(row, allow_nan=True) + "\n")

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        return 0

    def get_train_dataloader(self) -> DataLoader:
        """Positions of the plan in order; each process derives its own prompts (no sharding)."""
        return DataLoader(self.train_dataset, batch_size=1, shuffle=False, collate_fn=_first)

    # ---- what a checkpoint adds (windalign.llm.resume) -----------------------------------------

    def extra_state(self) -> dict[str, Any]:
        """This process's round in progress, counters and J-BOND anchor, for a checkpoint."""
        return {
            "round": self.round.state_dict() if self.round is not None else None,
            "counters": dict(self.counters),
            "oracle": self.oracle.counters.as_dict(),
            "anchor": self.anchor.state_dict() if self.anchor is not None else None,
        }

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state` (called when training begins, after the engine prepared
        the model: DeepSpeed never calls ``_load_from_checkpoint``)."""
        self.round = Round.from_state_dict(state["round"]) if state["round"] else None
        self.counters = defaultdict(float, state["counters"])
        for key, value in state["oracle"].items():
            setattr(self.oracle.counters, key, value)
        if self.anchor is not None:
            self.anchor.load_state_dict(state["anchor"])

    def _begin_training(self) -> None:
        """Called when training begins (the engine has prepared the model): J-BOND's anchor on
        the engine's parameters under FSDP2 / DeepSpeed, the resumed checkpoint's WIND state."""
        if self.anchor is not None and not self._anchor_on_engine:
            self.anchor = distributed.anchor_for_engine(self) or self.anchor
            self._anchor_on_engine = True
        self.load_resumed_state()
