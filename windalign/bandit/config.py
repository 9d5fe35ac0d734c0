"""The bandit benchmark's configuration (``configs/bandit.yaml``): typed sections, validated.

Every field carries its valid range; loading rejects unknown keys (listing the valid ones) and
out-of-range values (naming the key and the range). ``quick:`` in the YAML holds overrides that
``--quick`` applies on top of the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from windalign.bandit.env import EnvConfig, validate_env_config


def rule(ok: Callable[[Any], bool], valid: str) -> dict[str, Any]:
    """Field metadata: values must satisfy ``ok``; ``valid`` describes the range in errors."""
    return {"ok": ok, "valid": valid}


def _positive(v: float) -> bool:
    return v > 0


def _positive_list(v: list[float]) -> bool:
    return len(v) > 0 and all(x > 0 for x in v)


def _int(default: int, what: str, ok: Callable[[Any], bool] = _positive) -> Any:
    return field(default=default, metadata=rule(ok, f"an integer >= 1 ({what})"))


_FLOATS = "a non-empty list of floats > 0"


@dataclass(frozen=True)
class TrainSettings:
    """Shared training settings: every method gets the same policy class and query budget."""

    policy: str = field(
        default="linear",
        metadata=rule(lambda v: v in ("tabular", "linear", "mlp"), "one of tabular, linear, mlp"),
    )
    hidden: int = _int(32, "mlp width")
    beta: float = field(default=0.1, metadata=rule(_positive, "a float > 0 (KL to pi_ref)"))
    batch: int = _int(32, "prompts per round")
    samples: int = field(
        default=4, metadata=rule(lambda v: v >= 2, "an integer >= 2 (samples per prompt)")
    )
    steps_per_round: int = _int(4, "gradient steps per round; 1 = online")
    query_budget: int = _int(15_000, "preference queries per run")
    evals: int = _int(40, "evaluations per run")


@dataclass(frozen=True)
class TuningSettings:
    """The grid every method is tuned on (same grid, same seeds, same budget per point).

    ``eta`` multiplies each method's step size: ``eta`` itself where the loss has one, else
    ``beta_anchor / eta`` (J-BOND) or ``beta / eta`` (DPO, IPO); ``bon-distill`` has none.
    """

    lr: list[float] = field(
        default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0],
        metadata=rule(_positive_list, f"{_FLOATS} (Adam learning rates)"),
    )
    eta: list[float] = field(
        default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0],
        metadata=rule(_positive_list, f"{_FLOATS} (step multipliers)"),
    )
    seeds: list[int] = field(
        default_factory=lambda: [1000, 1001],
        metadata=rule(lambda v: len(v) > 0, "a non-empty list of integers"),
    )


@dataclass(frozen=True)
class ReportSettings:
    """Reporting: fresh seeds for the tuned methods, exact iterated Best-of-2 rounds, KL levels."""

    seeds: int = _int(8, "fresh seeds 0..seeds-1")
    bon_rounds: int = _int(4, "exact Bo2^t targets, t = 1..bon_rounds")
    kl_levels: list[float] = field(
        default_factory=lambda: [0.25, 0.5, 1.0],
        metadata=rule(_positive_list, f"{_FLOATS} (levels of KL(pi || pi_ref))"),
    )


@dataclass(frozen=True)
class BenchConfig:
    """The whole benchmark: environment, training, methods, tuning, report, workers."""

    env: EnvConfig = field(default_factory=EnvConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    methods: list[str] = field(default_factory=list)
    hyperparameters: dict[str, dict[str, float]] = field(default_factory=dict)
    tuning: TuningSettings = field(default_factory=TuningSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    workers: int = 2


SECTIONS = {"env": EnvConfig, "train": TrainSettings, "tuning": TuningSettings}
SECTIONS |= {"report": ReportSettings}


def _typed(key: str, value: Any, hint: Any) -> Any:
    """Coerce ``value`` to the field type ``hint`` (int, float, str, list of those) or raise."""
    origin = getattr(hint, "__origin__", None)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{key} must be a list, got {value!r}")
        return [_typed(f"{key}[{i}]", v, hint.__args__[0]) for i, v in enumerate(value)]
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, hint) and not isinstance(value, bool):
        return value
    raise ValueError(f"{key} must be of type {hint.__name__}, got {value!r}")


def build_section(cls: type, name: str, values: Mapping[str, Any]) -> Any:
    """Instantiate dataclass ``cls`` from ``values``, checking keys, types and ranges.

    >>> build_section(TrainSettings, "train", {"batch": 0})
    Traceback (most recent call last):
    ...
    ValueError: train.batch = 0 is invalid; it must be an integer >= 1 (prompts per round)
    >>> build_section(TrainSettings, "train", {"bacth": 8})
    Traceback (most recent call last):
    ...
    ValueError: unknown key train.bacth; valid keys: policy, hidden, beta, batch, samples,
    steps_per_round, query_budget, evals
    """
    if not isinstance(values, Mapping):
        raise ValueError(f"section {name} must be a mapping of keys to values, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise ValueError(f"unknown key {name}.{unknown[0]}; valid keys: {', '.join(fields)}")
    hints = get_type_hints(cls)
    out = {k: _typed(f"{name}.{k}", v, hints[k]) for k, v in values.items()}
    for key, value in out.items():
        meta = fields[key].metadata
        if "ok" in meta and not meta["ok"](value):
            raise ValueError(f"{name}.{key} = {value!r} is invalid; it must be {meta['valid']}")
    return cls(**out)


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _merge(out[key], value) if both else value
    return out


def config_from_dict(raw: Mapping[str, Any], quick: bool = False) -> BenchConfig:
    """Validate a raw mapping (as read from YAML) into a :class:`BenchConfig`.

    With ``quick=True`` the mapping's ``quick:`` overrides are merged in first.

    >>> config_from_dict({"workers": 0})
    Traceback (most recent call last):
    ...
    ValueError: workers = 0 is invalid; it must be an integer >= 1
    """
    from windalign.bandit.runner import METHODS

    raw = dict(raw)
    overrides = raw.pop("quick", {}) or {}
    if quick:
        raw = _merge(raw, overrides)
    valid = [*SECTIONS, "methods", "hyperparameters", "workers", "quick"]
    unknown = [k for k in raw if k not in valid]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]}; valid top-level keys: {', '.join(valid)}")
    sections = {name: build_section(cls, name, raw.get(name, {})) for name, cls in SECTIONS.items()}
    validate_env_config(sections["env"])
    methods = raw.get("methods", METHODS.names())
    if not isinstance(methods, list) or not methods:
        raise ValueError(f"methods must be a non-empty list of: {', '.join(METHODS.names())}")
    for name in methods:
        METHODS[name]  # raises KeyError listing the valid names
    hps = raw.get("hyperparameters", {}) or {}
    for name, values in hps.items():
        known = METHODS[name].defaults
        bad = [k for k in values if k not in known]
        if bad:
            raise ValueError(
                f"hyperparameters.{name}.{bad[0]} is not a hyperparameter of {name}; "
                f"valid: {', '.join(known) or '(none)'}"
            )
    workers = raw.get("workers", 2)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers = {workers!r} is invalid; it must be an integer >= 1")
    if sections["train"].policy == "tabular" and sections["env"].n_contexts == 0:
        raise ValueError("train.policy = 'tabular' needs a finite pool: set env.n_contexts >= 1")
    return BenchConfig(
        methods=list(methods), hyperparameters=dict(hps), workers=workers, **sections
    )


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["train.samples=2", "workers=1"]`` -> a nested mapping (values parsed as YAML).

    >>> parse_overrides(["train.samples=2", "tuning.lr=[0.1, 0.3]"])
    {'train': {'samples': 2}, 'tuning': {'lr': [0.1, 0.3]}}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(
                f"--set {item!r} must look like SECTION.KEY=VALUE, e.g. train.samples=2"
            )
        *parents, leaf = key.split(".")
        node = out
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = yaml.safe_load(value)
    return out


def load_config(
    path: str | Path, quick: bool = False, overrides: Sequence[str] = ()
) -> BenchConfig:
    """Read and validate a benchmark YAML file (see ``configs/bandit.yaml``).

    ``overrides`` (``SECTION.KEY=VALUE`` strings, :func:`parse_overrides`) are applied last.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist (try configs/bandit.yaml)")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path} must hold a YAML mapping of sections, got {type(raw).__name__}")
    quick_raw = raw.get("quick") or {}
    if quick:
        raw = _merge(raw, quick_raw)
    raw = _merge(raw, parse_overrides(overrides))
    return config_from_dict({**raw, "quick": quick_raw})


def config_to_dict(cfg: BenchConfig) -> dict[str, Any]:
    """The resolved configuration as plain data (written to ``config.yaml`` of each run)."""
    return dataclasses.asdict(cfg)
