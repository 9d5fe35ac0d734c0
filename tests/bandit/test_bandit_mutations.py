"""Tests that tell a right baseline from a wrong one (issue 11): each asserts numbers computed
independently of the code under test, so a plausible slip in a baseline fails the suite.

Mutations applied by hand to the code, one at a time, each failing the tests named (all run,
then the change reverted; ``git diff`` clean after each):

1. J-BOND's Jeffreys weights swapped, ``jeffreys * forward + (1 - jeffreys) * backward``
   (``objectives/baselines.py``) -- ``test_jbond_expected_gradient_is_the_jeffreys_objective``.
2. EMA direction reversed, ``theta_a <- rate theta_a + (1 - rate) theta``
   (``bandit/runner.py``, ``ema_update``) -- ``test_ema_update_one_step``,
   ``test_train_updates_the_anchor_by_ema_of_the_policy``.
3. Anchor never updated (the ``ema_update`` call removed from ``train``) --
   ``test_train_updates_the_anchor_by_ema_of_the_policy``.
4. J-BOND's two anchor samples drawn from the policy (``draw_jbond``) --
   ``test_jbond_samples_policy_then_anchor``.
5. J-BOND's ``logp_old`` taken from the policy instead of the anchor --
   ``test_jbond_samples_policy_then_anchor``.
6. Nash-MD mixture flipped, ``alpha logp_t + (1 - alpha) logp_ref`` --
   ``test_nash_md_opponents_come_from_the_geometric_mixture``.
7. Nash-MD opponents drawn from ``pi_t`` instead of the mixture --
   ``test_nash_md_opponents_come_from_the_geometric_mixture``.
8. The evaluator's ``KL(pi || pi_ref)`` computed as ``KL(pi_ref || pi)`` --
   ``test_evaluator_kls_and_duels_on_asymmetric_pairs``.
9. The evaluator's ``KL(pi* || pi)`` computed as ``KL(pi || pi*)`` -- the same test.
10. The evaluator's duel against ``Bo2^t`` with its arguments swapped (``win_rate(P, Bo2^t,
    pi)``) -- the same test.
11. sppo-hard losing its reference term when ``beta > 0`` (``resid = s``) --
    ``test_sppo_hard_with_beta_keeps_its_reference_term``.
12. The ratio to J-BOND inverted (``base / ours``) -- ``test_ratio_table_numbers``.
13. Every method's samples getting the policy's log-probabilities as ``logp_ref`` (``sample_round``)
    -- ``test_policy_sampling_convention``, ``test_jbond_samples_policy_then_anchor``.
14. Nash-MD's mixture weight not tied to its step (the tie removed from ``apply_knob``) --
    ``tests/bandit/test_bandit_benchmark.py::test_each_method_is_tuned_on_its_own_knob``
    (expected values written by hand, no longer read from the function under test).
15. SPPO's target ``c (w - 1/2)`` changed to ``c w`` (``_sppo_target``) --
    ``tests/objectives/test_objectives_exact.py::test_sppo_minimizer_is_its_closed_form``
    (the old test accepted any bias above 1e-3).
16. One seed's interval printed as ``± 0.000`` (``mean_ci`` returning 0) --
    ``tests/bandit/test_bandit_benchmark.py::test_mean_ci_is_the_student_t_interval``.
17. J-BOND's anchor rate not set by the grid (``apply_knob``) -- ``test_bandit_benchmark.py::
    test_each_method_is_tuned_on_its_own_knob``.
18. The beta-tuned DPO / IPO rows multiplying beta by eta instead of dividing -- the same test.
19. The tuning score back to the win rate against the reference -- ``test_bandit_benchmark.py::
    test_tuning_score_is_the_mean_win_rate_against_the_bo2_targets``.
20. The bootstrap ratio inverted as well as the point ratio -- ``test_ratio_table_numbers``.

The script that applied them is not kept; each entry names the exact change, so it can be redone
by hand.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch

import windalign.bandit.runner as runner
from windalign.bandit.env import EnvConfig, PreferenceBandit
from windalign.bandit.policies import make_policy
from windalign.bandit.report import MethodRuns, Yardsticks, bootstrap_ratio, dominance_tables
from windalign.bandit.runner import Evaluator, RunConfig, ema_update, sample_round, train
from windalign.objectives import LOSSES, SampleBatch
from windalign.objectives.baselines import jbond, sppo_hard

F64 = torch.float64
K, D = 8, 3
ENV = EnvConfig(n_actions=K, context_dim=D, feature_dim=2, n_eval=32, seed=5)
N_ROWS = 6000  # prompts per sampling check: 4 standard errors of a frequency are <= 0.026


# -- J-BOND's loss against its Jeffreys objective, by enumeration ------------------------------


def _jbond_enumerated(theta, log_anchor, log_ref, P, hp):
    """J-BOND's loss under the exact expectation: y0 ~ pi, y1, y2 ~ anchor, 0/1 labels."""
    n = len(theta)
    idx = torch.tensor(list(itertools.product(range(n), repeat=3)))
    pi = torch.softmax(theta, 0).detach()
    base = pi[idx[:, 0]] * log_anchor.exp()[idx[:, 1]] * log_anchor.exp()[idx[:, 2]]
    pairs = [(0, 1), (0, 2), (1, 2)]
    rows, prefs, weights = [], [], []
    for labels in itertools.product((0.0, 1.0), repeat=3):
        o = torch.full((len(idx), 3, 3), 0.5, dtype=F64)
        w = base.clone()
        for (i, j), label in zip(pairs, labels, strict=True):
            p = P[idx[:, i], idx[:, j]]
            o[:, i, j], o[:, j, i] = label, 1 - label
            w = w * (p if label else 1 - p)
        rows.append(idx)
        prefs.append(o)
        weights.append(w)
    idx, o, w = torch.cat(rows), torch.cat(prefs), torch.cat(weights)
    logp = torch.log_softmax(theta, 0)[idx]
    batch = SampleBatch(logp, log_anchor[idx], log_ref[idx], o, weight=w)
    return jbond(batch, **hp).loss


def _jeffreys_objective(theta, log_anchor, log_ref, P, hp):
    """THEORY.md 5, written from scratch: (1 - j) KL(Bo2(anchor) || pi) + j (-E_pi r +
    beta_anchor KL(pi || anchor)) + beta KL(pi || ref), up to constants, with
    ``r(y) = fail_reward (1 - w_anchor(y))^2`` (y loses to both anchor samples)."""
    log_pi = torch.log_softmax(theta, 0)
    pi, anchor = log_pi.exp(), log_anchor.exp()
    w_anchor = P @ anchor
    bo2 = 2 * anchor * w_anchor
    reward = hp["fail_reward"] * (1 - w_anchor) ** 2
    forward = -(bo2 * log_pi).sum()
    backward = -(pi * reward).sum() + hp["beta_anchor"] * (pi * (log_pi - log_anchor)).sum()
    pull = hp["beta"] * (pi * (log_pi - log_ref)).sum()
    return (1 - hp["jeffreys"]) * forward + hp["jeffreys"] * backward + pull


@pytest.mark.parametrize("jeffreys", [0.2, 0.8, 1.0])
def test_jbond_expected_gradient_is_the_jeffreys_objective(jeffreys):
    gen = torch.Generator().manual_seed(3)
    n = 4
    a = torch.randn(n, n, generator=gen, dtype=F64)
    P = torch.sigmoid(a - a.T)
    theta = torch.randn(n, generator=gen, dtype=F64).requires_grad_(True)
    log_anchor = torch.log_softmax(torch.randn(n, generator=gen, dtype=F64), 0)
    log_ref = torch.log_softmax(torch.randn(n, generator=gen, dtype=F64), 0)
    hp = {"beta_anchor": 0.7, "fail_reward": -np.log(16), "jeffreys": jeffreys, "beta": 0.3}
    (got,) = torch.autograd.grad(_jbond_enumerated(theta, log_anchor, log_ref, P, hp), theta)
    (want,) = torch.autograd.grad(_jeffreys_objective(theta, log_anchor, log_ref, P, hp), theta)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    # the weights matter: the mirrored mix has a different gradient
    mirrored = {**hp, "jeffreys": 1 - jeffreys}
    (other,) = torch.autograd.grad(
        _jeffreys_objective(theta, log_anchor, log_ref, P, mirrored), theta
    )
    assert (other - want).abs().max() > 1e-2


# -- the EMA anchor ---------------------------------------------------------------------------


def test_ema_update_one_step():
    anchor, policy = torch.nn.Linear(2, 1, dtype=F64), torch.nn.Linear(2, 1, dtype=F64)
    with torch.no_grad():
        anchor.weight.copy_(torch.tensor([[1.0, -2.0]]))
        anchor.bias.fill_(4.0)
        policy.weight.copy_(torch.tensor([[3.0, 2.0]]))
        policy.bias.fill_(0.0)
    ema_update(anchor, policy, 0.25)
    assert anchor.weight.tolist() == [[1.5, -1.0]] and anchor.bias.tolist() == [3.0]
    assert policy.weight.tolist() == [[3.0, 2.0]]  # the policy is untouched


def test_train_updates_the_anchor_by_ema_of_the_policy(monkeypatch):
    """With one step per round, the anchor at round t+1 is ``(1 - gamma) anchor_t + gamma
    theta_{t+1}``: checked on the parameters that ``train`` hands to ``sample_round``."""
    seen = []
    real = runner.sample_round

    def spy(env, spec, hp, k, x_np, policy, anchor):
        seen.append((copy.deepcopy(policy.state_dict()), copy.deepcopy(anchor.state_dict())))
        return real(env, spec, hp, k, x_np, policy, anchor)

    monkeypatch.setattr(runner, "sample_round", spy)
    env = PreferenceBandit(ENV)
    gamma = 0.3
    cfg = RunConfig(method="jbond", lr=0.1, hp={"gamma": gamma}, batch=8, query_budget=8 * 3 * 5,
                    evals=1, steps_per_round=1)  # fmt: skip
    train(env, Evaluator(env, 0.1), cfg)
    assert len(seen) == 5
    for key in seen[0][0]:
        torch.testing.assert_close(seen[0][1][key], seen[0][0][key])  # both start at pi_ref
    moved = 0.0
    for (_, anchor_t), (policy_next, anchor_next) in itertools.pairwise(seen):
        for key in anchor_t:
            want = (1 - gamma) * anchor_t[key] + gamma * policy_next[key]
            torch.testing.assert_close(anchor_next[key], want, rtol=0, atol=1e-12)
            moved = max(moved, float((anchor_next[key] - anchor_t[key]).abs().max()))
    assert moved > 1e-3


# -- sampling conventions, by frequencies ------------------------------------------------------


def _affine(log_probs: np.ndarray) -> np.ndarray:
    """``w [D + 1, K]`` of a context-free policy with these log-probabilities (bias row only)."""
    w = np.zeros((D + 1, K))
    w[-1] = log_probs
    return w


def _support(probs: dict[int, float]) -> np.ndarray:
    """Log-probabilities putting ``probs`` on their actions and ~e^-1000 elsewhere."""
    out = np.full(K, -1e3)
    for a, p in probs.items():
        out[a] = np.log(p)
    return out - np.logaddexp.reduce(out)


POLICY, ANCHOR, REF = (
    _support({0: 0.7, 1: 0.3}),
    _support({2: 0.6, 3: 0.4}),
    _support({4: 0.5, 5: 0.5}),
)


def _round(method: str, log_policy, log_anchor, log_ref, k: int, hp=None):
    """One ``sample_round`` of ``method`` on ``N_ROWS`` prompts with context-free policies."""
    env = PreferenceBandit(ENV).reset(seed=1)
    env.w_ref = _affine(log_ref)
    policy = make_policy("linear", _affine(log_policy), None)
    anchor = None if log_anchor is None else make_policy("linear", _affine(log_anchor), None)
    spec = LOSSES[method]
    hp = spec.resolve(method, hp or {})
    actions, fixed = sample_round(env, spec, hp, k, env.sample_contexts(N_ROWS), policy, anchor)
    return actions.numpy(), {key: v.numpy() for key, v in fixed.items()}


def _assert_frequencies(actions: np.ndarray, log_probs: np.ndarray) -> None:
    probs = np.exp(log_probs)
    freq = np.bincount(actions.ravel(), minlength=K) / actions.size
    se = np.sqrt(probs * (1 - probs) / actions.size)
    np.testing.assert_array_less(np.abs(freq - probs), 5 * se + 1e-12)


def test_policy_sampling_convention():
    actions, fixed = _round("wind-squared", POLICY, None, REF, 4)
    _assert_frequencies(actions, POLICY)
    np.testing.assert_allclose(fixed["logp_old"], POLICY[actions], atol=1e-9)
    np.testing.assert_allclose(fixed["logp_ref"], REF[actions], atol=1e-9)
    assert not np.isnan(fixed["prefs"][:, 0, 3]).any()  # every pair queried


def test_jbond_samples_policy_then_anchor():
    actions, fixed = _round("jbond", POLICY, ANCHOR, REF, 3)
    _assert_frequencies(actions[:, 0], POLICY)
    _assert_frequencies(actions[:, 1:], ANCHOR)
    np.testing.assert_allclose(fixed["logp_old"], ANCHOR[actions], atol=1e-9)  # all three
    np.testing.assert_allclose(fixed["logp_ref"], REF[actions], atol=1e-9)
    assert not np.isnan(fixed["prefs"][:, [0, 0, 1], [1, 2, 2]]).any()


def test_nash_md_opponents_come_from_the_geometric_mixture():
    """A geometric mixture of disjoint supports is empty, so overlapping ones: ``pi_t`` leans on
    the low actions, ``pi_ref`` on the high ones; the test first checks it can tell the right
    mixture from the flipped one and from ``pi_t``."""
    log_t = np.log(np.array([8, 6, 4, 2, 1, 1, 1, 1]) / 24)
    log_ref = np.log(np.array([1, 1, 1, 1, 2, 4, 6, 8]) / 24)
    alpha = 0.3
    geo = (1 - alpha) * log_t + alpha * log_ref
    geo -= np.logaddexp.reduce(geo)
    flipped = alpha * log_t + (1 - alpha) * log_ref
    flipped -= np.logaddexp.reduce(flipped)
    for wrong in (flipped, log_t):
        assert np.abs(np.exp(wrong) - np.exp(geo)).max() > 0.05
    actions, fixed = _round("nash-md", log_t, None, log_ref, 4, {"alpha": alpha})
    _assert_frequencies(actions[:, 0], log_t)
    _assert_frequencies(actions[:, 1:], geo)
    np.testing.assert_allclose(fixed["logp_old"], log_t[actions], atol=1e-9)  # pi_t for all
    np.testing.assert_allclose(fixed["logp_ref"], log_ref[actions], atol=1e-9)
    assert np.isnan(fixed["prefs"][:, 1, 2]).all() and not np.isnan(fixed["prefs"][:, 0, 3]).any()


# -- the evaluator, on asymmetric pairs -------------------------------------------------------


def _kl(log_p: np.ndarray, log_q: np.ndarray) -> float:
    """Mean over rows of ``sum p (log p - log q)``, written out."""
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))


def test_evaluator_kls_and_duels_on_asymmetric_pairs():
    env = PreferenceBandit(ENV)
    ev = Evaluator(env, 0.1, bon_rounds=2)
    rng = np.random.default_rng(0)
    log_pi = np.log(rng.dirichlet(np.ones(K), size=len(ev.x)))
    got = ev(log_pi)
    log_ref = env.reference_logp(ev.x)
    log_star = np.log(ev.pi_star)
    forward, backward = _kl(log_pi, log_ref), _kl(log_ref, log_pi)
    assert abs(forward - backward) > 0.01  # an asymmetric pair: a swapped KL would show
    assert got["kl_ref"] == pytest.approx(forward, rel=1e-12)
    to_eq, from_eq = _kl(log_star, log_pi), _kl(log_pi, log_star)
    assert abs(to_eq - from_eq) > 0.01
    assert got["kl_to_eq"] == pytest.approx(to_eq, rel=1e-12)
    P, pi, bo2 = env.oracle(ev.x), np.exp(log_pi), np.exp(log_ref)
    for t in (1, 2):
        bo2 = 2 * bo2 * np.einsum("nij,nj->ni", P, bo2)  # Bo2 = 2 pi (P pi), THEORY.md 2
        duel = float(np.mean(np.einsum("ni,nij,nj->n", pi, P, bo2)))
        assert abs(duel - 0.5) > 0.02
        assert got[f"win_rate_vs_bo2_{t}"] == pytest.approx(duel, rel=1e-12)


# -- sppo-hard with beta > 0 -------------------------------------------------------------------


def test_sppo_hard_with_beta_keeps_its_reference_term():
    gen = torch.Generator().manual_seed(4)
    B, k, eta, beta = 6, 4, 1.5, 0.5
    c, lam = eta / (1 + eta * beta), eta * beta / (1 + eta * beta)
    draw = lambda: -3 * torch.rand(B, k, generator=gen, dtype=F64)  # noqa: E731
    logp, old, ref = draw(), draw(), draw()
    upper = (torch.rand(B, k, k, generator=gen) < 0.5).to(F64)
    triu = torch.triu(torch.ones(k, k, dtype=torch.bool), 1)
    prefs = torch.where(triu, upper, 1 - upper.transpose(-1, -2))
    prefs = prefs.masked_fill(torch.eye(k, dtype=torch.bool), 0.5)
    got = sppo_hard(SampleBatch(logp, old, ref, prefs), eta=eta, beta=beta).loss.item()
    terms = []
    for b in range(B):
        o = prefs[b].tolist()
        w = [(0.5 + sum(o[i][j] for j in range(k) if j != i)) / k for i in range(k)]
        best, worst = w.index(max(w)), w.index(min(w))
        f = [(logp[b, i] - old[b, i] - lam * (ref[b, i] - old[b, i])).item() for i in range(k)]
        if w[best] > w[worst]:
            terms.append((f[best] - c / 2) ** 2 + (f[worst] + c / 2) ** 2)
    assert len(terms) >= 4
    assert got == pytest.approx(sum(terms) / len(terms), rel=1e-12)
    without_ref = sppo_hard(SampleBatch(logp, old, old, prefs), eta=eta, beta=beta).loss.item()
    assert abs(without_ref - got) > 1e-2


# -- the ratio table ---------------------------------------------------------------------------


def _runs(crossings: list[float]) -> MethodRuns:
    """Runs whose win rate against Bo2^1 crosses 1/2 at the given query counts (one per seed)."""
    queries = np.array([0.0, 1000.0, 2000.0])
    duels = np.array(
        [
            [0.4, 0.4 + 0.1 * 1000 / q, 0.6] if q <= 1000 else [0.4, 0.45, 0.45 + 50 / (q - 1000)]
            for q in crossings
        ]
    )
    zeros = np.zeros_like(duels)
    values = {"win_rate_vs_bo2_1": duels, "kl_ref": zeros + 0.1, "win_rate_ref": zeros + 0.5}
    return MethodRuns(queries, queries, values, np.zeros(len(crossings)))


def test_ratio_table_numbers():
    runs = {"wind-kl": _runs([250.0, 500.0]), "jbond": _runs([1000.0, 1500.0])}
    np.testing.assert_allclose(runs["jbond"].cross("win_rate_vs_bo2_1", 0.5), [1000.0, 1500.0])
    ratio, lo, hi = bootstrap_ratio(np.array([250.0, 500.0]), np.array([1000.0, 1500.0]))
    assert ratio == pytest.approx(375 / 1250)
    # the extreme resamples: ours (250, 250) over base (1500, 1500) and (500, 500) / (1000, 1000)
    assert 250 / 1500 <= lo < ratio < hi <= 500 / 1000
    ys = Yardsticks(bo2=[{}, {}], eqs=[], family=[])
    text = "\n".join(dominance_tables(runs, ys))
    rows = [line for line in text.splitlines() if line.startswith("| `wind-kl`") and "[" in line]
    row = rows[0]
    assert row == f"| `wind-kl` | 0.30 [{lo:.2f}, {hi:.2f}] (2/2, 2/2) |"
