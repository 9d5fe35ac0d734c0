"""Every sample-based loss by name: ``LOSSES`` and :func:`compute_loss`.

The CLI choices, the docs table (docs/objectives.md) and the test parametrization all read
``LOSSES``. Each entry is a :class:`LossSpec` saying how a runner must fill the
:class:`~windalign.objectives.batch.SampleBatch` (``sampling``), how many samples per prompt it
needs (``min_k``) and its default hyperparameters.

Sampling conventions:

* ``"policy"`` -- all K samples i.i.d. from the frozen sampler ``pi_t``; ``logp_old = log pi_t``.
* ``"jbond"`` -- K = 3: sample 0 from the current policy ``pi_theta``, samples 1 and 2 from the
  anchor ``pi_a`` (EMA of the policy parameters at rate ``gamma``, kept by the runner);
  ``logp_old = log pi_a`` for all three.
* ``"nash-md"`` -- sample 0 from ``pi_t``; samples 1..K-1 from the geometric mixture
  ``pi_t^mix ∝ pi_t^(1-alpha) pi_ref^alpha``; ``logp_old = log pi_t`` for all.

``sampling_params`` are hyperparameters the runner consumes when sampling (``alpha``,
``gamma``); :func:`compute_loss` accepts them (with defaults) but does not pass them to the loss.

>>> LOSSES.names()
['wind-squared', 'wind-kl', 'wind-nce', 'sppo', 'sppo-hard', 'jbond', 'nash-md', 'dpo', 'ipo',
 'bon-distill', 'bok-distill']
>>> LOSSES["wind-kl"].defaults
{'eta': 1.0, 'beta': 0.1}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from windalign.objectives import baselines, wind
from windalign.objectives.batch import LossOutput, SampleBatch
from windalign.registry import Registry

SAMPLING = ("policy", "jbond", "nash-md")

#: Valid range of every hyperparameter name any loss uses: ``name -> (check, "valid range")``.
HYPERPARAMETERS: dict[str, tuple[Callable[[float], bool], str]] = {
    "eta": (lambda v: 0 < v < math.inf, "a finite float > 0"),
    "beta": (lambda v: 0 <= v < math.inf, "a finite float >= 0"),
    "beta_anchor": (lambda v: 0 <= v < math.inf, "a finite float >= 0"),
    "fail_reward": (lambda v: -math.inf < v <= 0, "a finite float <= 0"),
    "jeffreys": (lambda v: 0 <= v <= 1, "a float in [0, 1]"),
    "gamma": (lambda v: 0 < v <= 1, "a float in (0, 1]"),
    "alpha": (lambda v: 0 <= v <= 1, "a float in [0, 1]"),
}
#: Per-loss narrower ranges: DPO / IPO divide by beta.
_POSITIVE_BETA = {"beta": (lambda v: 0 < v < math.inf, "a finite float > 0")}


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: the function, its sampling convention, ``min_k`` and defaults.

    ``max_k`` is set when the loss needs an exact number of samples (jbond: 3);
    ``sampling_params`` name the defaults the runner uses when sampling, not the loss.
    """

    fn: Callable[..., LossOutput]
    sampling: str
    min_k: int
    defaults: dict[str, float]
    help: str
    sampling_params: tuple[str, ...] = field(default=())
    max_k: int | None = None
    ranges: Mapping[str, tuple[Callable[[float], bool], str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING:
            raise ValueError(f"sampling {self.sampling!r} is not one of {SAMPLING}")

    def resolve(
        self, name: str, hyperparameters: Mapping[str, float], kind: str = "loss"
    ) -> dict[str, float]:
        """The defaults updated with ``hyperparameters``, each checked against its range.

        An unknown name, a non-number or a value outside its range (``HYPERPARAMETERS``, narrowed
        by ``ranges``) is rejected, naming the ``kind`` (``"loss"``, or ``"method"`` for a
        runner), ``name``, the hyperparameter and the fix.
        """
        unknown = sorted(set(hyperparameters) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"{kind} {name!r} has no hyperparameter {unknown[0]!r}; "
                f"its hyperparameters are: {', '.join(self.defaults) or '(none)'}"
            )
        out = dict(self.defaults)
        for key, value in hyperparameters.items():
            check, valid = {**HYPERPARAMETERS, **self.ranges}[key]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and check(float(value))):
                raise ValueError(
                    f"{kind} {name!r} hyperparameter {key} = {value!r} is invalid; "
                    f"it must be {valid}"
                )
            out[key] = float(value)
        return out


LOSSES: Registry[LossSpec] = Registry("loss")


def _register(
    name: str,
    fn: Callable[..., LossOutput],
    sampling: str,
    defaults: dict[str, float],
    min_k: int = 2,
    sampling_params: tuple[str, ...] = (),
    max_k: int | None = None,
    ranges: Mapping[str, tuple[Callable[[float], bool], str]] | None = None,
) -> None:
    """Register ``fn`` under ``name``; the help string is its docstring's first line."""
    help = (fn.__doc__ or "").strip().split("\n")[0]
    spec = LossSpec(fn, sampling, min_k, defaults, help, sampling_params, max_k, ranges or {})
    LOSSES.register(name, help=help)(spec)


_register("wind-squared", wind.wind_squared, "policy", {"eta": 1.0, "beta": 0.1})
_register("wind-kl", wind.wind_kl, "policy", {"eta": 1.0, "beta": 0.1})
_register("wind-nce", wind.wind_nce, "policy", {"eta": 1.0, "beta": 0.1})
_register("sppo", baselines.sppo, "policy", {"eta": 1.0, "beta": 0.0})
_register("sppo-hard", baselines.sppo_hard, "policy", {"eta": 1.0, "beta": 0.0})
_register(
    "jbond",
    baselines.jbond,
    "jbond",
    {
        "beta_anchor": 1.0,
        "fail_reward": -math.log(16),
        "jeffreys": 0.5,
        "beta": 0.1,
        "gamma": 0.02,
    },
    min_k=3,
    max_k=3,
    sampling_params=("gamma",),
)
_register(
    "nash-md",
    baselines.nash_md,
    "nash-md",
    {"eta": 1.0, "beta": 0.1, "alpha": 0.125},
    sampling_params=("alpha",),
)
_register("dpo", baselines.dpo, "policy", {"beta": 0.1}, ranges=_POSITIVE_BETA)
_register("ipo", baselines.ipo, "policy", {"beta": 0.1}, ranges=_POSITIVE_BETA)
_register("bon-distill", baselines.bon_distill, "policy", {})
_register("bok-distill", baselines.bok_distill, "policy", {})


def loss_table() -> str:
    """Markdown table of every loss: name, sampling, samples per prompt, defaults, help.

    >>> print(loss_table().splitlines()[2])
    | `wind-squared` | `policy` | >= 2 | eta=1, beta=0.1 | WIND squared loss: pairwise regression of log-ratio differences on preferences. |
    """  # noqa: E501
    rows = ["| loss | sampling | K | defaults | what it is |", "|---|---|---|---|---|"]
    for entry in LOSSES.entries():
        spec = entry.obj
        k = f"= {spec.max_k}" if spec.max_k == spec.min_k else f">= {spec.min_k}"
        defaults = ", ".join(f"{key}={value:.4g}" for key, value in spec.defaults.items())
        defaults = defaults or "(none)"
        rows.append(f"| `{entry.name}` | `{spec.sampling}` | {k} | {defaults} | {spec.help} |")
    return "\n".join(rows)


def loss_hyperparameters(name: str, **hyperparameters: float) -> dict[str, float]:
    """Defaults of loss ``name`` updated with ``hyperparameters`` (unknown names rejected).

    >>> loss_hyperparameters("dpo", beta=0.5)
    {'beta': 0.5}
    >>> loss_hyperparameters("dpo", eta=1.0)
    Traceback (most recent call last):
    ...
    ValueError: loss 'dpo' has no hyperparameter 'eta'; its hyperparameters are: beta
    >>> loss_hyperparameters("jbond", gamma=2)
    Traceback (most recent call last):
    ...
    ValueError: loss 'jbond' hyperparameter gamma = 2 is invalid; it must be a float in (0, 1]
    """
    return LOSSES[name].resolve(name, hyperparameters)


def compute_loss(name: str, batch: SampleBatch, **hyperparameters: float) -> LossOutput:
    """Loss ``name`` on ``batch`` with its defaults updated by ``hyperparameters``.

    Checks that ``batch.K >= min_k`` and that at least one prompt has ``min_k`` unmasked
    samples, naming the fix; unknown hyperparameters are rejected by name.

    >>> import torch
    >>> lp = torch.zeros(2, 1)
    >>> try:
    ...     compute_loss("wind-kl", SampleBatch(lp, lp, lp, torch.full((2, 1, 1), 0.5)))
    ... except ValueError as err:
    ...     print(err)
    loss 'wind-kl' needs K >= 2 samples per prompt, got K=1; sample at least 2 responses per
    prompt (the runner's samples-per-prompt setting: train.samples in a bandit config,
    num_samples for wind train)
    """
    spec = LOSSES[name]
    hp = loss_hyperparameters(name, **hyperparameters)
    if batch.K < spec.min_k:
        raise ValueError(
            f"loss {name!r} needs K >= {spec.min_k} samples per prompt, got K={batch.K}; "
            f"sample at least {spec.min_k} responses per prompt (the runner's samples-per-prompt "
            "setting: train.samples in a bandit config, num_samples for wind train)"
        )
    if spec.max_k is not None and batch.K > spec.max_k:
        raise ValueError(
            f"loss {name!r} needs exactly K={spec.max_k} samples per prompt, got K={batch.K}; "
            f"see its sampling convention {spec.sampling!r}"
        )
    per_prompt = batch.mask.sum(-1)
    if not bool((per_prompt >= spec.min_k).any()):
        raise ValueError(
            f"loss {name!r} needs >= {spec.min_k} unmasked samples in some prompt, but every "
            f"prompt has at most {int(per_prompt.max())}; check SampleBatch.mask"
        )
    for param in spec.sampling_params:
        hp.pop(param)
    return spec.fn(batch, **hp)
