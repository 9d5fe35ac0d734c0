"""Train any objective by name on the preference bandit, with one budget accounting (THEORY.md 5-6).

One *round* (THEORY.md 6): draw ``B`` prompts, draw samples for each from the frozen sampler
``pi_t`` (log-probabilities recorded at sampling time), query the oracle on the pairs the method
uses, take ``M`` gradient steps on the method's loss (``M = 1`` is online), ``pi_{t+1} <-
pi_theta``. Every method runs until it has spent the same number of preference queries, and is
evaluated (at log-spaced rounds) on the held-out contexts with the exact quantities of
``windalign.games``: win rate
against the reference, exploitability, WIND duality gap, ``KL(pi* || pi)`` to the exact WIND
equilibrium and ``KL(pi || pi_ref)``.

Methods are the registered losses of ``windalign.objectives.LOSSES``, ``bon-distill`` (sampled
iterated Best-of-2 distillation, THEORY.md 2) included. How a method draws its samples follows its
``LossSpec.sampling``:

* ``policy``  -- ``k`` i.i.d. samples from ``pi_t``, all ``k(k-1)/2`` pairs queried;
* ``jbond``   -- one sample from ``pi_t`` and two from the EMA anchor, all 3 pairs queried
  (policy vs anchors for the reward, anchor vs anchor for the Best-of-2 target);
* ``nash-md`` -- one sample from ``pi_t`` and ``k - 1`` from the geometric mixture
  ``pi_t^(1-alpha) pi_ref^alpha``; the ``k - 1`` pairs (0, j) queried.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from scipy.special import log_softmax
from tqdm.auto import tqdm

from windalign.bandit.env import PreferenceBandit, all_pairs
from windalign.bandit.policies import POLICIES, make_policy
from windalign.config import option, validate
from windalign.games import (
    duality_gap_logits,
    exploitability,
    kl_logits,
    log_best_of_two,
    solve_equilibrium,
    win_rate,
    wind_mirror_step,
)
from windalign.objectives import LOSSES, LossSpec, SampleBatch
from windalign.registry import Registry

#: The bandit's methods are the registered losses (bon-distill included): one registry.
METHODS: Registry[LossSpec] = LOSSES


@dataclass(frozen=True)
class RunConfig:
    """One training run: the method, its hyperparameters, and the shared budget settings.

    ``hp`` overrides the method's default hyperparameters (``LossSpec.defaults``: ``eta``,
    ``beta``, J-BOND's anchor rate ``gamma``, Nash-MD's ``alpha``, ...). ``samples`` is ``k``
    per prompt (raised to the method's ``min_k``; J-BOND always uses 3). The run stops after
    ``query_budget`` preference queries and is evaluated about ``evals + 1`` times (round 0
    included), at log-spaced rounds so that the fast early progress is resolved.
    """

    method: str = option(help="method name, a METHODS entry (train rejects others)")
    lr: float = option(0.05, help="Adam learning rate; a float > 0", check=lambda v: v > 0)
    hp: Mapping[str, float] = option(
        default_factory=dict, help="overrides of the method's default hyperparameters"
    )
    seed: int = option(
        0,
        help="seed of the run's sampling noise and policy init; an integer >= 0",
        check=lambda v: v >= 0,
    )
    policy: str = option(
        "linear",
        help="policy class, all starting at pi_ref; one of tabular, linear, mlp",
        check=lambda v: v in POLICIES,
    )
    hidden: int = option(32, help="mlp width; an integer >= 1", check=lambda v: v >= 1)
    batch: int = option(
        32, help="prompts per sampling round (B); an integer >= 1", check=lambda v: v >= 1
    )
    samples: int = option(
        4,
        help="samples per prompt, raised to the method's minimum (k); an integer >= 2",
        check=lambda v: v >= 2,
    )
    steps_per_round: int = option(
        1,
        help="gradient steps per round on its samples, 1 = online (M); an integer >= 1",
        check=lambda v: v >= 1,
    )
    query_budget: int = option(
        20_000, help="preference queries per run; an integer >= 1", check=lambda v: v >= 1
    )
    evals: int = option(
        20,
        help="exact evaluations per run, at log-spaced rounds; an integer >= 1",
        check=lambda v: v >= 1,
    )

    def __post_init__(self) -> None:
        validate(self, "run")


class Draw(NamedTuple):
    """One round's samples: ``actions [B, k]``, sampler log-probs ``logp_old [B, k]``, pairs."""

    actions: np.ndarray
    logp_old: np.ndarray
    pairs: list[tuple[int, int]]


def _gather(logp: np.ndarray, actions: np.ndarray) -> np.ndarray:
    return np.take_along_axis(logp, actions, axis=1)


def draw_policy(
    env: PreferenceBandit,
    logp_t: np.ndarray,
    logp_anchor: np.ndarray | None,
    logp_ref: np.ndarray,
    k: int,
    hp: Mapping[str, float],
) -> Draw:
    """``k`` i.i.d. samples of ``pi_t``, all pairs queried, ``logp_old = log pi_t``."""
    actions = env.sample_actions(logp_t, k)
    return Draw(actions, _gather(logp_t, actions), all_pairs(k))


def draw_jbond(
    env: PreferenceBandit,
    logp_t: np.ndarray,
    logp_anchor: np.ndarray | None,
    logp_ref: np.ndarray,
    k: int,
    hp: Mapping[str, float],
) -> Draw:
    """Sample 0 from ``pi_t``, samples 1, 2 from the anchor; ``logp_old = log anchor``."""
    actions = np.concatenate([env.sample_actions(logp_t, 1), env.sample_actions(logp_anchor, 2)], 1)
    return Draw(actions, _gather(logp_anchor, actions), all_pairs(3))


def draw_nash_md(
    env: PreferenceBandit,
    logp_t: np.ndarray,
    logp_anchor: np.ndarray | None,
    logp_ref: np.ndarray,
    k: int,
    hp: Mapping[str, float],
) -> Draw:
    """Sample 0 from ``pi_t``, the rest from ``pi_t^(1-a) pi_ref^a``; ``logp_old = log pi_t``."""
    alpha = hp["alpha"]
    mixture = log_softmax((1 - alpha) * logp_t + alpha * logp_ref, axis=-1)
    actions = np.concatenate([env.sample_actions(logp_t, 1), env.sample_actions(mixture, k - 1)], 1)
    return Draw(actions, _gather(logp_t, actions), [(0, j) for j in range(1, k)])


DRAWS: dict[str, Callable[..., Draw]] = {
    "policy": draw_policy,
    "jbond": draw_jbond,
    "nash-md": draw_nash_md,
}


def samples_per_prompt(spec: LossSpec, k: int) -> int:
    """``k`` raised to the method's minimum (J-BOND always draws 3)."""
    return 3 if spec.sampling == "jbond" else max(k, spec.min_k)


def queries_per_prompt(spec: LossSpec, k: int) -> int:
    """Preference queries per prompt and round for a method drawing ``k`` samples."""
    k = samples_per_prompt(spec, k)
    return k - 1 if spec.sampling == "nash-md" else k * (k - 1) // 2


#: the metric key of the exact win rate against ``Bo2^t(pi_ref)``
BO2_KEY = "win_rate_vs_bo2_{}"


def dominance_score(row: Mapping[str, float]) -> float:
    """Mean exact win rate of one evaluation against the ``Bo2^t(pi_ref)`` targets it holds.

    >>> dominance_score({"win_rate_ref": 0.9, "win_rate_vs_bo2_1": 0.6, "win_rate_vs_bo2_2": 0.4})
    0.5
    """
    values = [v for key, v in row.items() if key.startswith(BO2_KEY.format(""))]
    if not values:
        raise ValueError(f"no {BO2_KEY.format('t')} metrics in the row: evaluate with bon_rounds")
    return float(np.mean(values))


class Evaluator:
    """Exact metrics of a policy on the environment's evaluation contexts (``windalign.games``).

    Precomputes ``P [n, K, K]``, ``log pi_ref [n, K]``, the exact WIND equilibrium ``pi*``
    (Newton, THEORY.md 4) for ``beta`` and exact iterated Best-of-2 ``Bo2^t(pi_ref)`` for
    ``t = 1..bon_rounds`` (THEORY.md 2). Every metric is averaged over the contexts.
    """

    def __init__(self, env: PreferenceBandit, beta: float, bon_rounds: int = 0) -> None:
        self.beta = beta
        self.x = env.eval_contexts
        self.P = env.oracle(self.x)
        self.log_ref = env.reference_logp(self.x)
        self.ref = np.exp(self.log_ref)
        self.pi_star = self.equilibrium(beta)
        with np.errstate(divide="ignore"):
            self.log_pi_star = np.log(self.pi_star)
        self.bo2 = [np.exp(log_pi) for log_pi in self.iterated_bo2_logits(bon_rounds)[1:]]

    def equilibrium(self, beta: float) -> np.ndarray:
        """The exact WIND equilibrium ``pi*`` at ``beta`` on the contexts ``[n, K]`` (Newton)."""
        return solve_equilibrium(self.P, self.ref, beta, method="newton").pi

    def iterated_bo2_logits(self, rounds: int) -> list[np.ndarray]:
        """``log Bo2^t(pi_ref)`` ``[n, K]`` for ``t = 0..rounds`` (exact, THEORY.md 2)."""
        log_pi, out = self.log_ref, []
        for _ in range(rounds + 1):
            out.append(log_pi)
            log_pi = log_best_of_two(log_pi, self.P)
        return out

    def __call__(self, log_pi: np.ndarray) -> dict[str, float]:
        """Metrics of ``log pi [n, K]``: ``win_rate_ref``, ``win_rate_eq``, ``exploitability``,
        ``gap``, ``kl_to_eq`` (``KL(pi* || pi)``), ``kl_ref`` (``KL(pi || pi_ref)``) and
        ``win_rate_vs_bo2_t`` (``P(pi > Bo2^t(pi_ref))``, ``t = 1..bon_rounds``)."""
        pi = np.exp(log_pi)
        out = {
            "win_rate_ref": float(np.mean(win_rate(self.P, pi, self.ref))),
            "win_rate_eq": float(np.mean(win_rate(self.P, pi, self.pi_star))),
            "exploitability": float(np.mean(exploitability(self.P, pi))),
            "gap": float(np.mean(duality_gap_logits(self.P, self.log_ref, log_pi, self.beta))),
            "kl_to_eq": float(np.mean(kl_logits(self.log_pi_star, log_pi))),
            "kl_ref": float(np.mean(kl_logits(log_pi, self.log_ref))),
        }
        for t, target in enumerate(self.bo2, start=1):
            out[BO2_KEY.format(t)] = float(np.mean(win_rate(self.P, pi, target)))
        return out

    def iterated_bo2(self, rounds: int) -> list[dict[str, float]]:
        """Metrics of exact iterated Best-of-2 ``Bo2^t(pi_ref)``, ``t = 0..rounds`` (THEORY 2)."""
        return [self(log_pi) for log_pi in self.iterated_bo2_logits(rounds)]

    def equilibria(self, betas: Sequence[float]) -> list[dict[str, float]]:
        """Metrics of the exact WIND equilibria at each of ``betas``, with a ``beta`` key."""
        with np.errstate(divide="ignore"):
            return [{"beta": b} | self(np.log(self.equilibrium(b))) for b in betas]

    def exact_wind(self, eta: float, steps: int) -> list[dict[str, float]]:
        """Metrics of exact WIND mirror steps from ``pi_ref``, ``t = 0..steps`` (THEORY.md 4)."""
        pi, out = self.ref, []
        for _ in range(steps + 1):
            out.append(self(np.log(pi)))
            pi = wind_mirror_step(self.P, self.ref, pi, self.beta, eta)
        return out


def _log_softmax_np(policy: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.log_softmax(policy(x), dim=-1).numpy()


def ema_update(anchor: torch.nn.Module, policy: torch.nn.Module, rate: float) -> None:
    """J-BOND's anchor step, in place: ``theta_a <- (1 - rate) theta_a + rate theta``.

    >>> a, p = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    >>> _ = a.weight.data.fill_(1.0), p.weight.data.fill_(3.0)
    >>> ema_update(a, p, 0.25)
    >>> a.weight.item()
    1.5
    """
    with torch.no_grad():
        for pa, p in zip(anchor.parameters(), policy.parameters(), strict=True):
            pa.mul_(1 - rate).add_(p, alpha=rate)


def sample_round(
    env: PreferenceBandit,
    spec: LossSpec,
    hp: Mapping[str, float],
    k: int,
    x_np: np.ndarray,
    policy: torch.nn.Module,
    anchor: torch.nn.Module | None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One round's samples of the prompts ``x_np [B, d]`` by the method's sampling convention,
    queried: ``(actions [B, k'], fixed)`` with ``fixed`` the :class:`SampleBatch` fields that stay
    fixed during the round's steps (``logp_old``, ``logp_ref``, ``prefs``)."""
    x = torch.as_tensor(x_np)
    logp_ref = env.reference_logp(x_np)
    logp_anchor = _log_softmax_np(anchor, x) if anchor is not None else None
    d = DRAWS[spec.sampling](env, _log_softmax_np(policy, x), logp_anchor, logp_ref, k, hp)
    fixed = {
        "logp_old": torch.as_tensor(d.logp_old),
        "logp_ref": torch.as_tensor(_gather(logp_ref, d.actions)),
        "prefs": torch.as_tensor(env.query(x_np, d.actions, d.pairs)),
    }
    return torch.as_tensor(d.actions), fixed


def train(
    env: PreferenceBandit, evaluator: Evaluator, cfg: RunConfig, progress: bool = False
) -> list[dict[str, float]]:
    """Train ``cfg.method`` from ``pi_ref`` until ``cfg.query_budget`` queries are spent.

    Returns one row per evaluation: ``round``, ``queries``, ``samples``, ``steps``, ``wall_s``
    (training time so far, evaluation excluded), ``loss`` and the :class:`Evaluator` metrics.
    """
    spec = METHODS[cfg.method]
    hp = spec.resolve(cfg.method, cfg.hp, kind="method")
    loss_hp = {key: v for key, v in hp.items() if key not in spec.sampling_params}
    k = samples_per_prompt(spec, cfg.samples)
    per_round = cfg.batch * queries_per_prompt(spec, cfg.samples)
    if cfg.query_budget < per_round:
        raise ValueError(
            f"query_budget = {cfg.query_budget} is less than one round of {cfg.method} "
            f"({cfg.batch} prompts x {per_round // cfg.batch} queries = {per_round}); "
            "raise the budget or lower the batch"
        )
    rounds = cfg.query_budget // per_round
    eval_at = {0, rounds, *np.geomspace(1, rounds, cfg.evals).round().astype(int).tolist()}
    env.reset(cfg.seed)
    torch.manual_seed(cfg.seed)
    policy = make_policy(cfg.policy, env.w_ref, env.pool, cfg.hidden, cfg.seed)
    anchor = copy.deepcopy(policy).requires_grad_(False) if spec.sampling == "jbond" else None
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    x_eval = torch.as_tensor(evaluator.x)
    rows, wall, loss_value = [], 0.0, float("nan")
    for t in tqdm(range(rounds + 1), desc=cfg.method, disable=not progress, leave=False):
        if t in eval_at:
            budget = {"round": t, "queries": env.queries, "samples": env.samples}
            budget |= {"steps": t * cfg.steps_per_round, "wall_s": wall, "loss": loss_value}
            rows.append(budget | evaluator(_log_softmax_np(policy, x_eval)))
        if t == rounds:
            break
        start = time.perf_counter()
        x_np = env.sample_contexts(cfg.batch)
        x = torch.as_tensor(x_np)
        actions, fixed = sample_round(env, spec, hp, k, x_np, policy, anchor)
        for _ in range(cfg.steps_per_round):
            logp = torch.log_softmax(policy(x), dim=-1).gather(1, actions)
            out = spec.fn(SampleBatch(logp=logp, **fixed), **loss_hp)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
            if anchor is not None:
                ema_update(anchor, policy, hp["gamma"])
        loss_value = float(out.loss.detach())
        wall += time.perf_counter() - start
    return rows
