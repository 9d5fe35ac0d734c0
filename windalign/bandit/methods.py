"""The benchmark's methods: which loss each trains and which of its own knobs is tuned.

Every method is tuned on the learning rate times at most one knob of its own (``docs/
results-bandit.md``, "Tuning protocol"), so each gets the same kind of tuning effort:

* ``eta``   -- the step size ``eta`` of the loss is ``default x`` each value of ``tuning.eta``
  (the WIND losses, SPPO, Nash-MD);
* ``gamma`` -- J-BOND's anchor rate takes each value of ``tuning.gamma`` (its step: the anchor
  is what the policy distills Best-of-2 of);
* ``beta``  -- ``beta / eta`` for each value of ``tuning.eta`` (DPO / IPO with beta tuned, which
  then play a different game than the shared ``train.beta``: extra rows, named as such);
* none      -- the learning rate only (DPO / IPO at the shared beta, sampled Best-of-2).

``tie_alpha`` ties Nash-MD's geometric mixture to its step as in the published method: the
loss's minimizer is ``pi_t^(1-lam) pi_ref^lam exp(c P pi_t^mix)`` with ``c = eta / (1 + eta
beta)`` and ``lam = c beta`` (THEORY.md 4), Nash-MD's update with step ``c`` and regularization
``beta``, whose mixture weight is ``step x regularization = lam``.

>>> [BENCH_METHODS[m].knob for m in ("wind-kl", "jbond", "dpo", "dpo-beta-tuned")]
['eta', 'gamma', None, 'beta']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from windalign.objectives.wind import step_coefficients
from windalign.registry import Registry

#: knob -> the ``tuning`` list its values come from
KNOB_AXIS = {"eta": "eta", "gamma": "gamma", "beta": "eta"}


@dataclass(frozen=True)
class Variant:
    """A benchmark method: the ``loss`` it trains, its tuned ``knob`` and Nash-MD's alpha tie."""

    loss: str
    knob: str | None
    tie_alpha: bool = False

    def tuned(self) -> tuple[str, ...]:
        """Hyperparameters the grid sets (a config may not fix them).

        >>> BENCH_METHODS["nash-md"].tuned(), BENCH_METHODS["bon-distill"].tuned()
        (('eta', 'alpha'), ())
        """
        return (*((self.knob,) if self.knob else ()), *(("alpha",) if self.tie_alpha else ()))


BENCH_METHODS: Registry[Variant] = Registry("method")


def _add(name: str, loss: str, knob: str | None, help: str, tie_alpha: bool = False) -> None:
    BENCH_METHODS.register(name, help=help)(Variant(loss, knob, tie_alpha))


_add("wind-squared", "wind-squared", "eta", "WIND squared loss, eta tuned")
_add("wind-kl", "wind-kl", "eta", "WIND kl loss, eta tuned")
_add("wind-nce", "wind-nce", "eta", "WIND nce loss, eta tuned")
_add("sppo", "sppo", "eta", "SPPO (published beta = 0), eta tuned")
_add("sppo-hard", "sppo-hard", "eta", "SPPO hard targets (beta = 0), eta tuned")
_add("jbond", "jbond", "gamma", "J-BOND, anchor rate gamma tuned")
_add("nash-md", "nash-md", "eta", "Nash-MD, eta tuned, alpha tied to the step", tie_alpha=True)
_add("nash-md-fixed-alpha", "nash-md", "eta", "Nash-MD, eta tuned, alpha fixed (0.125)")
_add("dpo", "dpo", None, "online DPO at the shared beta, lr tuned")
_add("ipo", "ipo", None, "online IPO at the shared beta, lr tuned")
_add("dpo-beta-tuned", "dpo", "beta", "online DPO, beta = train.beta / eta tuned")
_add("ipo-beta-tuned", "ipo", "beta", "online IPO, beta = train.beta / eta tuned")
_add("bon-distill", "bon-distill", None, "sampled iterated Best-of-2 distillation, lr tuned")


def apply_knob(variant: Variant, hp: Mapping[str, float], value: float | None) -> dict[str, float]:
    """``hp`` with the grid's knob ``value`` applied and Nash-MD's alpha tied (pure).

    >>> apply_knob(BENCH_METHODS["jbond"], {"gamma": 0.02, "beta": 0.1}, 0.3)["gamma"]
    0.3
    >>> apply_knob(BENCH_METHODS["ipo-beta-tuned"], {"beta": 0.1}, 4.0)
    {'beta': 0.025}
    >>> apply_knob(BENCH_METHODS["nash-md"], {"eta": 1.0, "beta": 0.25, "alpha": 0.1}, 4.0)
    {'eta': 4.0, 'beta': 0.25, 'alpha': 0.5}
    """
    out = dict(hp)
    if variant.knob == "eta" and value is not None:
        out["eta"] = out["eta"] * value
    elif variant.knob == "gamma" and value is not None:
        out["gamma"] = value
    elif variant.knob == "beta" and value is not None:
        out["beta"] = out["beta"] / value
    if variant.tie_alpha:
        out["alpha"] = step_coefficients(out["eta"], out["beta"])[1]
    return out
