"""The bandit benchmark's configuration (``configs/bandit.yaml``): typed sections, validated.

Every field carries one help string with its valid range (``windalign.config.option``) and is
checked when its dataclass is built; loading rejects unknown keys (listing the valid ones), wrong
types and out-of-range values (naming the key and the range). ``quick:`` in the YAML holds
overrides that ``--quick`` applies on top of the rest.

The config also defines the tuning grid: its points (:func:`grid`), each method's
hyperparameters at a point (:func:`method_hyperparameters`) and the check of every run before
any runs (:func:`check_runs`); :mod:`windalign.bandit.benchmark` runs them. Imports point one
way: the benchmark imports this module, never the reverse.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from windalign.bandit.env import EnvConfig
from windalign.config import help_table, option, validate
from windalign.games.solvers import BETA_MAX, BETA_MIN


def _positive(v: float) -> bool:
    return v > 0


def _positive_list(v: list[float]) -> bool:
    return len(v) > 0 and all(x > 0 for x in v)


def _int(default: int, what: str) -> Any:
    return option(default, help=f"{what}; an integer >= 1", check=_positive)


POLICY_KINDS = ("tabular", "linear", "mlp")
_FLOATS = "a non-empty list of floats > 0"


@dataclass(frozen=True)
class TrainSettings:
    """Shared training settings: every method gets the same policy class and query budget."""

    policy: str = option(
        "linear",
        help="policy class, all starting at pi_ref; one of tabular, linear, mlp",
        check=lambda v: v in POLICY_KINDS,
    )
    hidden: int = _int(32, "mlp width")
    beta: float = option(
        0.1,
        help=f"KL strength to pi_ref of the WIND game (beta); a float in [{BETA_MIN:g}, "
        f"{BETA_MAX:g}] (the exact solver's range)",
        check=lambda v: BETA_MIN <= v <= BETA_MAX,
    )
    batch: int = _int(32, "prompts per sampling round (B)")
    samples: int = option(
        4,
        help="samples per prompt, raised to a method's minimum (k); an integer >= 2",
        check=lambda v: v >= 2,
    )
    steps_per_round: int = _int(4, "gradient steps per round on its samples, 1 = online (M)")
    query_budget: int = _int(15_000, "preference queries per run: every method stops here")
    evals: int = _int(40, "exact evaluations per run, at log-spaced rounds")

    def __post_init__(self) -> None:
        validate(self, "train")


@dataclass(frozen=True)
class TuningSettings:
    """The grid every method is tuned on: the learning rate times one knob of its own
    (:mod:`windalign.bandit.methods`), the same seeds and budget at every point.

    ``eta`` multiplies the step size of the methods that have one (WIND, SPPO, Nash-MD) and
    divides ``beta`` for the beta-tuned DPO / IPO rows; ``gamma`` is J-BOND's anchor rate. DPO /
    IPO at the shared beta and ``bon-distill`` are tuned on ``lr`` alone.
    """

    lr: list[float] = option(
        default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0],
        help=f"Adam learning rates of the grid; {_FLOATS}",
        check=_positive_list,
    )
    eta: list[float] = option(
        default_factory=lambda: [0.5, 1.0, 2.0, 4.0, 8.0],
        help=f"step multipliers of the grid (eta); {_FLOATS}",
        check=_positive_list,
    )
    gamma: list[float] = option(
        default_factory=lambda: [0.02, 0.05, 0.1, 0.2, 0.5],
        help="J-BOND anchor rates of the grid (gamma); a non-empty list of floats in (0, 1]",
        check=lambda v: len(v) > 0 and all(0 < x <= 1 for x in v),
    )
    seeds: list[int] = option(
        default_factory=lambda: [1000, 1001],
        help="tuning seeds, run at every grid point; a non-empty list of integers",
        check=lambda v: len(v) > 0,
    )

    def __post_init__(self) -> None:
        validate(self, "tuning")


@dataclass(frozen=True)
class ReportSettings:
    """Reporting: fresh seeds for the tuned methods, exact iterated Best-of-2 rounds, KL levels."""

    seeds: int = _int(8, "fresh seeds 0..seeds-1 for the tuned methods")
    bon_rounds: int = _int(4, "exact iterated Best-of-2 targets Bo2^t(pi_ref), t = 1..bon_rounds")
    kl_levels: list[float] = option(
        default_factory=lambda: [0.25, 0.5, 1.0],
        help=f"levels of KL(pi || pi_ref) the methods are compared at; {_FLOATS}",
        check=_positive_list,
    )
    eq_betas: list[float] = option(
        default_factory=lambda: [0.05, 0.1, 0.2, 0.5, 1.0],
        help=f"betas of the exact WIND equilibria drawn on the frontier; floats in [{BETA_MIN:g}, "
        f"{BETA_MAX:g}], a non-empty list",
        check=lambda v: len(v) > 0 and all(BETA_MIN <= x <= BETA_MAX for x in v),
    )

    def __post_init__(self) -> None:
        validate(self, "report")


@dataclass(frozen=True)
class BenchConfig:
    """The whole benchmark: environment, training, methods, tuning, report, workers."""

    env: EnvConfig = option(default_factory=EnvConfig, help="the problem instance (env section)")
    train: TrainSettings = option(
        default_factory=TrainSettings, help="shared training settings (train section)"
    )
    methods: list[str] = option(
        default_factory=list, help="methods to tune and report; a non-empty list of method names"
    )
    hyperparameters: dict[str, dict[str, float]] = option(
        default_factory=dict,
        help="per-method overrides of loss defaults, e.g. {jbond: {beta_anchor: 0.5}}",
    )
    tuning: TuningSettings = option(
        default_factory=TuningSettings, help="the tuning grid (tuning section)"
    )
    report: ReportSettings = option(
        default_factory=ReportSettings, help="reporting settings (report section)"
    )
    workers: int = option(
        2,
        help="worker processes, 1 = in-process; an integer >= 1",
        check=lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    )

    def __post_init__(self) -> None:
        validate(self, "")


SECTIONS = {"env": EnvConfig, "train": TrainSettings, "tuning": TuningSettings}
SECTIONS |= {"report": ReportSettings}


def config_reference() -> str:
    """Markdown reference of every config key (docs/bandit-config.md is this text).

    >>> "| `train.batch` | `32` |" in config_reference()
    True
    """
    parts = [
        "# `wind bandit` configuration keys",
        "",
        "Generated by `windalign.bandit.config.config_reference()` from the config dataclasses",
        "(a test checks this page is current). Defaults are the dataclass defaults; the",
        "built-in `configs/bandit.yaml` sets the values the benchmark runs with.",
        "",
        "## Top level",
        "",
        help_table(BenchConfig, "", exclude=SECTIONS),
    ]
    for name, cls in SECTIONS.items():
        parts += ["", f"## `{name}`", "", help_table(cls, name)]
    return "\n".join(parts) + "\n"


def _typed(key: str, value: Any, hint: Any) -> Any:
    """Coerce ``value`` to the field type ``hint`` (int, float, str, list of those) or raise."""
    origin = getattr(hint, "__origin__", None)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{key} must be a list, got {value!r}")
        return [_typed(f"{key}[{i}]", v, hint.__args__[0]) for i, v in enumerate(value)]
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, hint) and not isinstance(value, bool):
        return value
    raise ValueError(f"{key} must be of type {hint.__name__}, got {value!r}")


def build_section(cls: type, name: str, values: Mapping[str, Any]) -> Any:
    """Instantiate dataclass ``cls`` from ``values``, checking keys and types here and ranges in
    ``cls.__post_init__`` (:func:`windalign.config.validate`).

    >>> build_section(TrainSettings, "train", {"batch": 0})
    Traceback (most recent call last):
    ...
    ValueError: train.batch = 0 is invalid; it must be an integer >= 1
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
    return cls(**{k: _typed(f"{name}.{k}", v, hints[k]) for k, v in values.items()})


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = _merge(out[key], value) if both else value
    return out


#: float64 arrays of ``n x K x K`` alive at the peak of an exact evaluation (the oracle and its
#: construction, the equilibrium solve)
PEAK_ARRAYS = 8


def memory_estimate(cfg: BenchConfig) -> int:
    """Bytes the benchmark needs at its peak, about: per process the evaluation contexts' oracles
    and exact solve (``n_eval x K x K``), one round's oracles (``batch x K x K``), the context pool,
    the policy with its gradient and Adam state; times the worker processes.

    >>> memory_estimate(BenchConfig()) < 10**9
    True
    """
    from windalign.resources import FLOAT64

    e, t = cfg.env, cfg.train
    K, d, m = e.n_actions, e.context_dim, e.feature_dim
    n_eval = e.n_contexts or e.n_eval
    k = max(t.samples, 3)
    params = {
        "tabular": max(e.n_contexts, 1) * K,
        "linear": (d + 1) * K,
        "mlp": (d + 1) * t.hidden + (t.hidden + 1) * K,
    }[t.policy]
    per_process = (
        PEAK_ARRAYS * n_eval * K * K
        + 4 * t.batch * K * K
        + (n_eval + t.batch) * K * (m + 2)
        + t.batch * k * K
        + e.n_contexts * d
        + (d + 1) * K * (m + 2)
        + 5 * params
    ) * FLOAT64
    return per_process * max(1, cfg.workers)


def check_memory(cfg: BenchConfig) -> None:
    """Refuse a config whose arrays would not fit in memory (:func:`memory_estimate`), naming
    the keys that set the size, before anything is allocated."""
    from windalign.resources import check_memory as check

    e = cfg.env
    n_eval = f"env.n_contexts = {e.n_contexts}" if e.n_contexts else f"env.n_eval = {e.n_eval}"
    what = (
        f"env.n_actions = {e.n_actions}, {n_eval}, train.batch = {cfg.train.batch} "
        f"(x workers = {cfg.workers})"
    )
    fix = "lower env.n_actions, env.n_eval / env.n_contexts, train.batch or workers"
    check(memory_estimate(cfg), what, fix)


def check_methods(methods: Any, key: str = "methods") -> list[str]:
    """``methods`` as a list of known, distinct method names (``ValueError`` naming ``key``)."""
    from windalign.bandit.methods import BENCH_METHODS

    names = BENCH_METHODS.names()
    if isinstance(methods, str):
        methods = [methods]
    if not isinstance(methods, list) or not methods:
        raise ValueError(f"{key} must be a non-empty list of: {', '.join(names)}; got {methods!r}")
    for i, name in enumerate(methods):
        if name not in names:
            raise ValueError(f"{key}: unknown method {name!r}; choose one of: {', '.join(names)}")
        if name in methods[:i]:
            raise ValueError(f"{key} lists {name!r} twice; give each method once")
    return list(methods)


def _check_hyperparameters(raw: Any) -> dict[str, dict[str, float]]:
    """The ``hyperparameters`` section checked key by key against each loss's ranges
    (:meth:`windalign.objectives.LossSpec.resolve`); errors name ``hyperparameters.METHOD.KEY``.
    A key the method's tuning grid sets (its knob, Nash-MD's tied alpha) is refused.
    """
    from windalign.bandit.methods import BENCH_METHODS, KNOB_AXIS
    from windalign.objectives import LOSSES
    from windalign.objectives.registry import HYPERPARAMETERS

    example = "e.g. hyperparameters: {jbond: {beta_anchor: 0.5}}"
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(
            "hyperparameters must be a mapping of method names to {name: value} mappings, "
            f"{example}; got {raw!r}"
        )
    out: dict[str, dict[str, float]] = {}
    for name, values in raw.items():
        if name not in BENCH_METHODS.names():
            raise ValueError(
                f"hyperparameters.{name}: unknown method {name!r}; choose one of: "
                f"{', '.join(BENCH_METHODS.names())}"
            )
        variant = BENCH_METHODS[name]
        spec = LOSSES[variant.loss]
        if values is None:
            values = {}
        if not isinstance(values, Mapping):
            raise ValueError(
                f"hyperparameters.{name} must be a mapping of hyperparameter names to numbers "
                f"({', '.join(spec.defaults) or 'it has none'}), {example}; got {values!r}"
            )
        for key, value in values.items():
            if key not in spec.defaults:
                raise ValueError(
                    f"hyperparameters.{name}.{key} is not a hyperparameter of {name}; "
                    f"valid: {', '.join(spec.defaults) or '(none)'}"
                )
            if key in variant.tuned():
                how = (
                    f"set tuning.{KNOB_AXIS[key]} to one value to fix it"
                    if key == variant.knob
                    else "it is tied to eta x beta (use nash-md-fixed-alpha for a fixed alpha)"
                )
                raise ValueError(f"hyperparameters.{name}.{key} is set by the tuning grid; {how}")
            try:
                spec.resolve(name, {key: value}, kind="method")
            except ValueError:
                valid = {**HYPERPARAMETERS, **spec.ranges}[key][1]
                raise ValueError(
                    f"hyperparameters.{name}.{key} = {value!r} is invalid; it must be {valid}"
                ) from None
        out[name] = {key: float(value) for key, value in values.items()}
    return out


def method_hyperparameters(cfg: BenchConfig, method: str, value: float | None) -> dict[str, float]:
    """The method's hyperparameters at the grid point whose knob value is ``value``.

    Loss defaults, then the shared ``train.beta`` (KL strength to the reference) wherever the
    default is positive (SPPO's published ``beta = 0`` is kept), then the config's per-method
    ``hyperparameters``, then the knob (:func:`windalign.bandit.methods.apply_knob`).

    >>> cfg = BenchConfig()
    >>> method_hyperparameters(cfg, "ipo-beta-tuned", 2.0), method_hyperparameters(cfg, "ipo", None)
    ({'beta': 0.05}, {'beta': 0.1})
    """
    from windalign.bandit.methods import BENCH_METHODS, apply_knob
    from windalign.objectives import LOSSES

    variant = BENCH_METHODS[method]
    hp = dict(LOSSES[variant.loss].defaults)
    if hp.get("beta", 0.0) > 0:
        hp["beta"] = cfg.train.beta
    hp |= cfg.hyperparameters.get(method, {})
    return apply_knob(variant, hp, value)


def check_runs(cfg: BenchConfig) -> None:
    """Check what every run of the benchmark will check, before any runs: each method's
    hyperparameters at each grid point (the loss's ranges, :meth:`LossSpec.resolve`) and one
    round fitting in ``train.query_budget``. Errors name the method, the grid point and the keys.
    """
    from windalign.bandit.methods import BENCH_METHODS, KNOB_AXIS
    from windalign.bandit.runner import queries_per_prompt
    from windalign.objectives import LOSSES

    t = cfg.train
    for method in cfg.methods:
        variant = BENCH_METHODS[method]
        spec = LOSSES[variant.loss]
        per_round = t.batch * queries_per_prompt(spec, t.samples)
        if t.query_budget < per_round:
            raise ValueError(
                f"train.query_budget = {t.query_budget} is less than one round of {method} "
                f"(train.batch = {t.batch} prompts x {per_round // t.batch} queries = "
                f"{per_round}); raise train.query_budget or lower train.batch"
            )
        for _, value in grid(cfg, method):
            hp = method_hyperparameters(cfg, method, value)
            try:
                spec.resolve(method, hp, kind="method")
            except ValueError as err:
                raise ValueError(
                    f"at the tuning grid point {variant.knob} = {value} (train.beta = {t.beta:g}, "
                    f"hyperparameters.{method} = {cfg.hyperparameters.get(method, {})}): {err}; "
                    f"adjust tuning.{KNOB_AXIS.get(variant.knob or '', 'lr')} or the "
                    "hyperparameters"
                ) from None


def grid(cfg: BenchConfig, method: str) -> list[tuple[float, float | None]]:
    """Grid points ``(lr, knob value)``; the value is ``None`` for a method tuned on lr only.

    >>> cfg = BenchConfig()
    >>> len(grid(cfg, "wind-kl")), len(grid(cfg, "jbond")), grid(cfg, "dpo")[:2]
    (25, 25, [(0.01, None), (0.03, None)])
    """
    from windalign.bandit.methods import BENCH_METHODS, KNOB_AXIS

    knob = BENCH_METHODS[method].knob
    values = getattr(cfg.tuning, KNOB_AXIS[knob]) if knob else [None]
    return list(itertools.product(cfg.tuning.lr, values))


def config_from_dict(raw: Mapping[str, Any]) -> BenchConfig:
    """Validate a raw mapping (as read from YAML) into a :class:`BenchConfig`.

    A ``quick:`` key is accepted and ignored here: :func:`load_config` merges it when asked.

    >>> config_from_dict({"workers": 0})
    Traceback (most recent call last):
    ...
    ValueError: workers = 0 is invalid; it must be an integer >= 1
    """
    from windalign.bandit.methods import BENCH_METHODS

    raw = dict(raw)
    raw.pop("quick", None)
    valid = [*SECTIONS, "methods", "hyperparameters", "workers", "quick"]
    unknown = [k for k in raw if k not in valid]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]}; valid top-level keys: {', '.join(valid)}")
    sections = {
        name: build_section(cls, name, {} if raw.get(name) is None else raw[name])
        for name, cls in SECTIONS.items()
    }
    methods = check_methods(raw.get("methods", BENCH_METHODS.names()))
    hps = _check_hyperparameters(raw.get("hyperparameters"))
    workers = raw.get("workers", 2)
    cfg = BenchConfig(methods=methods, hyperparameters=hps, workers=workers, **sections)
    if cfg.train.policy == "tabular" and cfg.env.n_contexts == 0:
        raise ValueError("train.policy = 'tabular' needs a finite pool: set env.n_contexts >= 1")
    check_runs(cfg)
    check_memory(cfg)
    return cfg


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
            if not isinstance(node, dict):
                raise ValueError(f"--set {item!r}: {name} is set to a value, not a section")
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or "invalid YAML"
            raise ValueError(
                f"--set {item!r}: the value is not valid YAML ({problem}); quote strings and "
                "write lists as [a, b]"
            ) from None
    return out


def _read_yaml(path: Path) -> Any:
    """Parse the YAML file ``path``; errors name the file (and the line and column) and the fix:
    not a file, binary data, not UTF-8, a syntax error."""
    if path.is_dir():
        raise ValueError(f"config {path} is a directory; give a YAML file (--config FILE)")
    if not path.is_file():
        raise FileNotFoundError(
            f"config file {path} does not exist (omit --config for the built-in bandit.yaml)"
        )
    data = path.read_bytes()
    if b"\x00" in data:
        raise ValueError(
            f"config {path} is a binary file, not a YAML text file; give a YAML config such as "
            "configs/bandit.yaml"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"config {path} is not UTF-8 text (byte {err.start}: {data[err.start]:#04x}); give "
            "a YAML text file such as configs/bandit.yaml"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or "invalid YAML"
        context, start = getattr(err, "context", None), getattr(err, "context_mark", None)
        if context and start is not None and start is not mark:
            context += f" started at line {start.line + 1}"
        detail = f"{problem} ({context})" if context else problem
        raise ValueError(
            f"{where}: invalid YAML: {detail}; fix the syntax there (indent with spaces, "
            "'key: value', lists as [a, b])"
        ) from None


def load_config(
    path: str | Path, quick: bool = False, overrides: Sequence[str] = ()
) -> BenchConfig:
    """Read and validate a benchmark YAML file (see ``configs/bandit.yaml``).

    ``overrides`` (``SECTION.KEY=VALUE`` strings, :func:`parse_overrides`) are applied last.
    """
    path = Path(path)
    raw = _read_yaml(path)
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path} must hold a YAML mapping of sections, got {type(raw).__name__}")
    quick_raw = raw.get("quick") or {}
    if not isinstance(quick_raw, Mapping):
        raise ValueError(f"quick must be a mapping of overrides, got {quick_raw!r}")
    if quick:
        raw = _merge(raw, quick_raw)
    raw = _merge(raw, parse_overrides(overrides))
    return config_from_dict({**raw, "quick": quick_raw})


def config_to_dict(cfg: BenchConfig) -> dict[str, Any]:
    """The resolved configuration as plain data (written to ``config.yaml`` of each run)."""
    return dataclasses.asdict(cfg)
