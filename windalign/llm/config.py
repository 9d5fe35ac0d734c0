"""``WINDConfig``: ``transformers.TrainingArguments`` plus WIND's own fields, validated on creation.

Every added field carries one help string (meaning, paper symbol, valid range) through
:func:`windalign.config.option`; the checks run in ``__post_init__``, before any model loads. Loss
hyperparameters left at ``None`` take the objective's default (``windalign.objectives.LOSSES``);
setting one the objective does not have is an error. THEORY.md section 8 says how the fields map
onto the SampleBatch.
"""

from __future__ import annotations

import math
import types
import typing
import warnings
from dataclasses import dataclass, fields
from typing import Any

from accelerate.utils import parse_flag_from_env
from transformers import TrainingArguments

from windalign.config import help_table, option, validate
from windalign.llm.launch import has_deepspeed
from windalign.lm.loading import DTYPES
from windalign.objectives import LOSSES, LossSpec
from windalign.objectives.registry import HYPERPARAMETERS

TRUNCATION_POLICIES = ("judge", "lose")
PROMPT_TRUNCATION = ("error", "left")


def _int_at_least(n: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= n


def _optional(check):
    return lambda v: v is None or check(v)


def _text(v: Any) -> bool:
    """A non-empty string."""
    return isinstance(v, str) and bool(v)


def _finite_positive(v: float) -> bool:
    return isinstance(v, int | float) and 0 < v < math.inf


#: ranges of inherited ``TrainingArguments`` fields that would otherwise fail late (after the
#: model loads) or silently; their types are checked from the annotations (:func:`_check_types`)
INHERITED_RANGES: dict[str, tuple[Any, str]] = {
    "per_device_train_batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "gradient_accumulation_steps": (lambda v: v >= 1, "an integer >= 1"),
    "max_steps": (lambda v: v == -1 or v >= 1, "an integer >= 1, or -1 (num_train_epochs decides)"),
    "num_train_epochs": (lambda v: v > 0, "a number > 0 (or set max_steps >= 1)"),
    "learning_rate": (lambda v: v >= 0, "a finite number >= 0"),
    "warmup_steps": (lambda v: v >= 0, "a number >= 0 (a count, or a fraction of the run if < 1)"),
    "weight_decay": (lambda v: v >= 0, "a finite number >= 0"),
    "max_grad_norm": (lambda v: v >= 0, "a finite number >= 0 (0: no clipping)"),
    "adam_beta1": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "adam_beta2": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "adam_epsilon": (lambda v: v > 0, "a finite number > 0"),
    "eval_steps": (lambda v: v is None or v > 0, "a number > 0 or null"),
    "save_steps": (lambda v: v > 0, "a number > 0"),
    "save_total_limit": (lambda v: v is None or v >= 1, "an integer >= 1 or null"),
}
_SIMPLE = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def _type_ok(value: Any, kinds: tuple[Any, ...]) -> bool:
    """Whether ``value`` is one of the simple ``kinds`` (an int is a float; floats finite)."""
    if value is None or isinstance(value, bool | str):
        return type(value) in kinds
    if isinstance(value, int):
        return int in kinds or float in kinds
    return isinstance(value, float) and float in kinds and math.isfinite(value)


def _check_types(config: Any) -> None:
    """Refuse an inherited field whose value has the wrong type (``learning_rate: "2e-5"``, a
    string), is not finite or is out of :data:`INHERITED_RANGES`, naming the key, before
    ``TrainingArguments`` (or a model) sees it."""
    for f in sorted(fields(TrainingArguments), key=lambda f: f.name != "max_steps"):
        value = getattr(config, f.name)
        kinds = typing.get_args(f.type) if isinstance(f.type, types.UnionType) else (f.type,)
        if not all(k in _SIMPLE or k is type(None) for k in kinds):
            continue  # an enum, a dict, ...: TrainingArguments checks those itself
        valid = " or ".join(_SIMPLE.get(k, "null") for k in kinds)
        ok = _type_ok(value, kinds)
        steps_decide = f.name == "num_train_epochs" and config.max_steps >= 1  # checked first
        if ok and f.name in INHERITED_RANGES and not steps_decide:
            check, valid = INHERITED_RANGES[f.name]
            ok = value is None or bool(check(value))
        if not ok:
            raise ValueError(f"{f.name} = {value!r} is invalid; it must be {valid}")


def _hp(name: str, meaning: str) -> Any:
    """Loss hyperparameter ``name``: ``None`` = the objective's default; range checked by the
    objective's ``LossSpec.resolve`` (``HYPERPARAMETERS``)."""
    valid = HYPERPARAMETERS[name][1]
    return option(None, help=f"{meaning}; null (the objective's default) or {valid}")


@dataclass
class WINDConfig(TrainingArguments):
    """Training arguments of :class:`~windalign.llm.WINDTrainer` (all of TrainingArguments too).

    One *round* (THEORY.md 6): ``prompts_per_round`` prompts per process, ``num_samples``
    responses each, one oracle call, then ``steps_per_round`` optimizer steps, each on
    ``per_device_train_batch_size * gradient_accumulation_steps`` whole prompts.
    """

    objective: str = option(
        "wind-squared",
        help="loss to optimize; one of " + ", ".join(LOSSES.names()),
        check=lambda v: v in LOSSES,
    )
    num_samples: int = option(
        4,
        help="responses sampled per prompt and round (K); an integer >= 2 (jbond: exactly 3)",
        check=_int_at_least(2),
    )
    eta: float | None = _hp("eta", "step size of the WIND / SPPO / Nash-MD step (eta)")
    beta: float | None = _hp("beta", "KL strength towards the reference (beta; dpo/ipo: > 0)")
    gamma: float | None = _hp("gamma", "J-BOND anchor EMA rate per optimizer step (gamma)")
    alpha: float | None = _hp("alpha", "Nash-MD mixture weight of the reference (alpha)")
    beta_anchor: float | None = _hp("beta_anchor", "J-BOND KL strength to the anchor (beta_a)")
    fail_reward: float | None = _hp(
        "fail_reward", "J-BOND reward when the policy sample loses to both anchor samples"
    )
    jeffreys: float | None = _hp("jeffreys", "J-BOND Jeffreys weight of the backward part")
    temperature: float = option(
        1.0,
        help="sampling temperature; the tempered model is the policy (tau, THEORY 8); a float > 0",
        check=_finite_positive,
    )
    top_p: float = option(
        1.0,
        help="nucleus truncation; below 1 the samples are off-policy (warned); a float in (0, 1]",
        check=lambda v: isinstance(v, int | float) and 0 < v <= 1,
    )
    top_k: int = option(
        0,
        help="top-k truncation, 0 = off; above 0 the samples are off-policy; an integer >= 0",
        check=_int_at_least(0),
    )
    max_new_tokens: int = option(
        64, help="tokens generated per response at most; an integer >= 1", check=_int_at_least(1)
    )
    max_prompt_length: int = option(
        256, help="prompt tokens at most; an integer >= 1", check=_int_at_least(1)
    )
    prompt_truncation: str = option(
        "error",
        help="a prompt over max_prompt_length: error, or left (keep its end, with a warning); "
        "one of error, left",
        check=lambda v: v in PROMPT_TRUNCATION,
    )
    truncated_responses: str = option(
        "judge",
        help="preferences of a response that hit max_new_tokens without EOS: judge (as the "
        "oracle says) or lose (loses to every complete response); one of judge, lose",
        check=lambda v: v in TRUNCATION_POLICIES,
    )
    max_skipped_share: float = option(
        0.5,
        help="share of a round's preference queries the oracle may leave unanswered (NaN, "
        "warned per round) before training stops with an error; a float in [0, 1]",
        check=lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1,
    )
    prompts_per_round: int | None = option(
        None,
        help="prompts sampled per round and process; null = one optimizer step's worth "
        "(per_device_train_batch_size x gradient_accumulation_steps); an integer >= 1",
        check=_optional(_int_at_least(1)),
    )
    steps_per_round: int = option(
        1,
        help="optimizer steps per round on its samples, 1 = online (M); an integer >= 1 and a "
        "multiple of the round's minibatches",
        check=_int_at_least(1),
    )
    generation_batch_size: int = option(
        8,
        help="prompts per generate call and per no-grad log-prob pass, independent of the "
        "training micro-batch; an integer >= 1",
        check=_int_at_least(1),
    )
    share_prompt_cache: bool = option(
        True,
        help="run each prompt once for its K responses and reuse its keys and values, in "
        "generate's prefill and in every log-prob pass (the same numbers to float tolerance; the "
        "training pass recomputes the prompt per response under gradient / activation "
        "checkpointing); false for a model whose KV cache cannot be reordered; true or false",
        check=lambda v: isinstance(v, bool),
    )
    prompt_column: str = option(
        "prompt",
        help="dataset column holding the prompts (text or chat messages); a string",
        check=_text,
    )
    eval_samples: int = option(
        2,
        help="responses per held-out prompt and model in the periodic evaluation against the "
        "initial policy (eval_strategy / eval_steps; eval_dataset = the prompts); an integer >= 1",
        check=_int_at_least(1),
    )
    eval_baseline_cache: str | None = option(
        None,
        help="a folder keeping the evaluation baseline's samples for other runs against the same "
        "initial model, prompts, seed and sampling settings (a sweep's runs draw them once; "
        "one process or DDP); a path, or null: kept in memory for this run only",
        check=_optional(_text),
    )
    disable_dropout: bool = option(
        True,
        help="turn dropout off in the policy so log-probs are deterministic; true or false",
        check=lambda v: isinstance(v, bool),
    )
    dtype: str = option(
        "float32",
        help="precision the model (and reference) weights are loaded in when given by name "
        "(bf16: true adds autocast on top, docs/your-model.md); auto (the checkpoint's), "
        "bfloat16, float16 (inference only) or float32",
        check=lambda v: v in DTYPES,
    )
    model_revision: str | None = option(
        None,
        help="hub revision (branch, tag or commit) of a model given by hub id; a string or null "
        "(the default branch)",
        check=_optional(_text),
    )
    ref_model_revision: str | None = option(
        None,
        help="hub revision of a ref_model given by hub id; a string or null",
        check=_optional(_text),
    )
    trust_remote_code: bool = option(
        False,
        help="let a hub model run its own modeling code (trust_remote_code of transformers); "
        "true or false",
        check=lambda v: isinstance(v, bool),
    )
    logging_steps: float = option(
        1, help="log every this many optimizer steps; a number > 0", check=_finite_positive
    )

    def __post_init__(self) -> None:
        _check_types(self)  # before TrainingArguments turns a wrong value into a late error
        if self.eval_baseline_cache is not None and self.shards_parameters:
            raise ValueError(
                "eval_baseline_cache works with one process or DDP, not with FSDP or DeepSpeed "
                "(their ranks hold shards of the weights the cache is filed under): set "
                "eval_baseline_cache: null"
            )
        if self.uses_deepspeed and not has_deepspeed():
            raise ValueError(
                "DeepSpeed is asked for (the deepspeed key, or accelerate launch with a DeepSpeed "
                "config) but the deepspeed package is not installed: pip install deepspeed, or "
                "launch without DeepSpeed"
            )
        super().__post_init__()
        validate(self, "")
        spec = self.spec
        self.loss_hyperparameters()  # unknown names and ranges, named by the loss
        if spec.max_k is not None and self.num_samples != spec.max_k:
            raise ValueError(
                f"objective {self.objective!r} samples exactly {spec.max_k} responses per prompt "
                f"(sampling {spec.sampling!r}); set num_samples: {spec.max_k}"
            )
        if self.num_samples < spec.min_k:
            raise ValueError(
                f"objective {self.objective!r} needs num_samples >= {spec.min_k}, "
                f"got {self.num_samples}"
            )
        step = self.prompts_per_step
        if self.round_prompts % step:
            raise ValueError(
                f"prompts_per_round = {self.round_prompts} must be a multiple of the prompts per "
                f"optimizer step, per_device_train_batch_size x gradient_accumulation_steps = "
                f"{step}"
            )
        if self.steps_per_round % self.minibatches_per_round:
            raise ValueError(
                f"steps_per_round = {self.steps_per_round} must be a multiple of the round's "
                f"{self.minibatches_per_round} minibatches (prompts_per_round / {step}) so every "
                "prompt is used equally often"
            )
        if self.dtype == "float16":
            raise ValueError(
                "dtype: float16 weights cannot be trained stably (no float32 master copy, and "
                "transformers refuses to unscale float16 gradients); use dtype: bfloat16, or "
                "float32 weights with fp16: true (autocast)"
            )
        if self.top_p < 1 or self.top_k > 0:
            warnings.warn(
                f"top_p = {self.top_p}, top_k = {self.top_k}: the sampler is a truncated policy, "
                "so the samples are off-policy for every objective (THEORY.md 8)",
                stacklevel=2,
            )

    @property
    def shards_parameters(self) -> bool:
        """Whether FSDP or DeepSpeed will hold the parameters: set by these arguments
        (``fsdp``, ``deepspeed``) or by ``accelerate launch`` (its environment)."""
        return bool(self.fsdp) or parse_flag_from_env("ACCELERATE_USE_FSDP") or self.uses_deepspeed

    @property
    def uses_deepspeed(self) -> bool:
        """Whether DeepSpeed will run the model: the ``deepspeed`` argument or ``accelerate
        launch`` with a DeepSpeed config (its environment)."""
        return bool(self.deepspeed) or parse_flag_from_env("ACCELERATE_USE_DEEPSPEED")

    @property
    def spec(self) -> LossSpec:
        """The objective's registry entry."""
        return LOSSES[self.objective]

    @property
    def prompts_per_step(self) -> int:
        """Whole prompts per optimizer step and process."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    @property
    def round_prompts(self) -> int:
        """Prompts per round and process (``prompts_per_round`` or one step's worth)."""
        return self.prompts_per_round or self.prompts_per_step

    @property
    def minibatches_per_round(self) -> int:
        """Optimizer-step minibatches a round's prompts split into."""
        return self.round_prompts // self.prompts_per_step

    def loss_hyperparameters(self) -> dict[str, float]:
        """The objective's hyperparameters: its defaults updated by the fields set here."""
        names = {n for spec in LOSSES.entries() for n in spec.obj.defaults}
        given = {n: getattr(self, n) for n in sorted(names) if getattr(self, n) is not None}
        return self.spec.resolve(self.objective, given, kind="objective")

    @classmethod
    def wind_fields(cls) -> list[str]:
        """Names of the fields WINDConfig adds to (or redefines in) TrainingArguments."""
        own = {f.name for f in fields(TrainingArguments)}
        return [f.name for f in fields(cls) if f.name not in own or "check" in f.metadata]


@dataclass(frozen=True)
class RunSettings:
    """What ``wind train`` builds the trainer from, besides :class:`WINDConfig` (same YAML)."""

    model: str = option(
        "smollm2",
        help="policy to train: a local model folder, an offline alias (smollm2) or a Hugging "
        "Face hub id (org/name, through the standard cache); a string",
        check=_text,
    )
    ref_model: str | None = option(
        None,
        help="reference pi_ref; null = a frozen copy of the initial model (or the base model "
        "with the adapter disabled under peft); a model folder, alias, hub id or null",
        check=_optional(_text),
    )
    prompts: str = option(
        "builtin:train",
        help="training prompts: builtin[:train|:heldout|:validation|:test], a "
        ".jsonl/.json/.csv/.parquet file, a dataset folder or a hub dataset id (org/name, with "
        "prompts_split / prompts_subset), with a prompt_column; a string",
        check=_text,
    )
    prompts_split: str = option(
        "train",
        help="split of a hub dataset id (or dataset folder) given as prompts; a string",
        check=_text,
    )
    prompts_subset: str | None = option(
        None,
        help="subset (config name) of a hub dataset id given as prompts or eval_prompts; a "
        "string or null",
        check=_optional(_text),
    )
    eval_prompts_split: str = option(
        "test",
        help="split of a hub dataset id (or dataset folder) given as eval_prompts; a string",
        check=_text,
    )
    eval_prompts: str | None = option(
        None,
        help="held-out prompts of the periodic evaluation against the initial policy (set "
        "eval_strategy: steps and eval_steps): builtin:heldout (:validation, :test) or a file; "
        "a string or null",
        check=_optional(_text),
    )
    eval_prompt_count: int | None = option(
        None,
        help="evaluate on the first N of eval_prompts only; an integer >= 1 or null (all)",
        check=_optional(_int_at_least(1)),
    )
    preference: str = option(
        "offline",
        help="preference oracle: a registered name or package.module:function (a reward "
        "function, wrapped in Bradley-Terry); a string",
        check=_text,
    )
    preference_kwargs: dict[str, Any] = option(
        default_factory=dict,
        help="keyword arguments of the oracle (e.g. temperature); a mapping",
        check=lambda v: isinstance(v, dict),
    )
    peft: dict[str, Any] | None = option(
        None,
        help="LoRA: keyword arguments of peft.LoraConfig (e.g. {r: 8, lora_alpha: 16}), only the "
        "adapter is trained and saved; a mapping or null",
        check=lambda v: v is None or isinstance(v, dict),
    )

    def __post_init__(self) -> None:
        validate(self, "")


def config_docs() -> str:
    """docs/llm-config.md: every ``wind train`` key, generated from the help strings."""
    inherited = [f.name for f in fields(WINDConfig) if f.name not in WINDConfig.wind_fields()]
    return "\n".join(
        [
            "# `wind train` configuration",
            "",
            "Generated from the help strings of `windalign.llm.config` (a test keeps this page",
            "current). One YAML file holds all of it; `--KEY VALUE` on the command line overrides",
            "one key (`--learning-rate` and `--learning_rate` are the same key). Everything is",
            "validated before any model loads, inherited `TrainingArguments` keys included (their",
            "type, and the range of the ones a wrong value would break late or silently).",
            "",
            "Values are read as YAML 1.2: `2e-5`, `1E-3` and `.5` are numbers (YAML 1.1, which",
            "PyYAML speaks, reads `2e-5` as a string), and only `true` / `false` are booleans, so",
            "`eval_strategy: no` is the string `no`.",
            "",
            "## One config, several objectives",
            "",
            "`wind train --config my.yaml --objective dpo` runs another objective on the same",
            "file. A block named after an objective holds the keys for that objective only; it",
            "applies (over the file's other keys) when that objective runs and is ignored",
            "otherwise:",
            "",
            "```yaml",
            "objective: wind-squared",
            "eta: 5.0          # wind-squared's; dropped with a note when another objective runs",
            "num_samples: 4",
            "jbond: {num_samples: 3, beta: 0.05}",
            "dpo: {beta: 0.1}",
            "```",
            "",
            "A loss hyperparameter the file sets at its top level that the running objective",
            "does not have is dropped with a note on stderr; a `num_samples` from the top level",
            "is replaced by the objective's own when it samples an exact number (jbond: 3), also",
            "with a note. A key typed on the command line, or in the objective's own block, is",
            "kept as given, so a hyperparameter the objective lacks is still an error there.",
            "`config.yaml` in the run directory holds the flat config that ran.",
            "",
            "## Run settings (`RunSettings`)",
            "",
            help_table(RunSettings, ""),
            "",
            "## WIND fields (`WINDConfig`)",
            "",
            "Loss hyperparameters left at `null` take the objective's default (the table in",
            "[objectives.md](objectives.md)); setting one the objective does not have is an error.",
            "",
            help_table(WINDConfig, "", exclude=inherited),
            "",
            "## Everything else",
            "",
            "`WINDConfig` extends `transformers.TrainingArguments`: `output_dir`, `learning_rate`,",
            "`per_device_train_batch_size`, `gradient_accumulation_steps`, `max_steps`,",
            "`num_train_epochs`, `lr_scheduler_type`, `warmup_steps`, `save_steps`,",
            "`save_total_limit`, `seed`, `data_seed`, `use_cpu`, `bf16`, `report_to`, ... all work",
            "as documented by transformers. `logging_steps` defaults to 1 here.",
            "",
        ]
    )
