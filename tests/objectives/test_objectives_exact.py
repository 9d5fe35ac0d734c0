"""THEORY.md section 7 item 4: population minimizers of the sample-based losses.

A tabular softmax policy over ``n`` responses (one context). Each loss is minimized under the
*exact* expectation over K-tuples of samples drawn i.i.d. from ``pi_t`` (all ``n^K`` tuples
enumerated, weighted by their probability through ``SampleBatch.weight``) and over the 0/1
preference labels (all label configurations enumerated, weighted by ``P``), with LBFGS in
float64. The minimizer is compared with the exact WIND step computed directly from section 5.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.special import lambertw

from windalign.games import best_of_two, bon_distribution
from windalign.objectives import LOSSES, SampleBatch
from windalign.objectives.baselines import bok_distill, bon_distill
from windalign.objectives.wind import step_coefficients

N_RESP = 4
F64 = torch.float64


def make_game(seed: int, n: int = N_RESP) -> dict[str, torch.Tensor]:
    """Random sampler ``pi_t``, reference, and a non-transitive oracle ``P + P^T = 1``."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=gen, dtype=F64) * 1.5
    prefs = torch.sigmoid(a - a.T)
    return {
        "log_pi": torch.log_softmax(torch.randn(n, generator=gen, dtype=F64), -1),
        "log_ref": torch.log_softmax(torch.randn(n, generator=gen, dtype=F64), -1),
        "P": prefs,
    }


def exact_step(game: dict[str, torch.Tensor], eta: float, beta: float) -> torch.Tensor:
    """``log pi_{t+1} = log pi_t + g_t - log Z_t`` (THEORY.md section 5), computed directly."""
    c, lam = step_coefficients(eta, beta)
    w = game["P"] @ game["log_pi"].exp()
    g = lam * (game["log_ref"] - game["log_pi"]) + c * w
    return torch.log_softmax(game["log_pi"] + g, -1)


def expectation_rows(game: dict[str, torch.Tensor], K: int, labels: str):
    """Enumerate (tuple, labels) rows: ``idx [R, K]``, ``prefs [R, K, K]``, ``weight [R]``.

    ``labels``: ``"binary"`` enumerates every 0/1 label of every unordered pair (probability
    ``P`` / ``1 - P``); ``"soft"`` puts the true ``P`` in the matrix.
    """
    n, P = game["P"].shape[0], game["P"]
    idx = torch.tensor(list(itertools.product(range(n), repeat=K)))
    weight = game["log_pi"].exp()[idx].prod(-1)
    soft = P[idx[:, :, None], idx[:, None, :]]
    if labels == "soft":
        return idx, soft, weight
    pairs = list(itertools.combinations(range(K), 2))
    rows_idx, rows_prefs, rows_w = [], [], []
    for outcome in itertools.product((0.0, 1.0), repeat=len(pairs)):
        prefs = torch.full_like(soft, 0.5)
        w = weight.clone()
        for (i, j), o in zip(pairs, outcome, strict=True):
            prefs[:, i, j], prefs[:, j, i] = o, 1 - o
            w = w * (soft[:, i, j] if o else 1 - soft[:, i, j])
        rows_idx.append(idx)
        rows_prefs.append(prefs)
        rows_w.append(w)
    return torch.cat(rows_idx), torch.cat(rows_prefs), torch.cat(rows_w)


def minimize(name, game, K, labels, exact_w=None, **hp) -> torch.Tensor:
    """``log pi_theta`` minimizing loss ``name`` under the exact expectation (LBFGS, float64)."""
    idx, prefs, weight = expectation_rows(game, K, labels)
    win_rates = None if exact_w is None else exact_w[idx]
    theta = torch.zeros(game["P"].shape[0], dtype=F64, requires_grad=True)
    fn = LOSSES[name].fn
    opt = torch.optim.LBFGS(
        [theta],
        lr=1,
        max_iter=2000,
        tolerance_grad=1e-13,
        tolerance_change=1e-15,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        logp = torch.log_softmax(theta, -1)[idx]
        batch = SampleBatch(
            logp=logp,
            logp_old=game["log_pi"][idx],
            logp_ref=game["log_ref"][idx],
            prefs=prefs,
            win_rates=win_rates,
            weight=weight,
        )
        loss = fn(batch, **hp).loss
        loss.backward()
        return loss

    opt.step(closure)
    return torch.log_softmax(theta.detach(), -1)


def tv(log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """Max absolute difference of probabilities."""
    return (log_p.exp() - log_q.exp()).abs().max().item()


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize(("eta", "beta", "seed"), [(1.0, 0.0, 0), (1.3, 0.7, 1), (5.0, 0.2, 2)])
def test_squared_minimizer_is_exact_step_with_binary_labels(K, eta, beta, seed):
    game = make_game(seed)
    got = minimize("wind-squared", game, K, "binary", eta=eta, beta=beta)
    target = exact_step(game, eta, beta)
    assert tv(got, target) < 1e-6
    assert tv(game["log_pi"], target) > 1e-2  # the step actually moves


@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize(("eta", "beta", "seed"), [(1.0, 0.1, 3), (4.0, 0.5, 4)])
def test_nce_minimizer_is_exact_step_with_exact_win_rates(K, eta, beta, seed):
    game = make_game(seed)
    w = game["P"] @ game["log_pi"].exp()
    got = minimize("wind-nce", game, K, "soft", exact_w=w, eta=eta, beta=beta)
    assert tv(got, exact_step(game, eta, beta)) < 1e-6


def bias_curve(name: str, Ks, labels: str, exact: bool, eta=2.0, beta=0.1, seed=5, n=N_RESP):
    game = make_game(seed, n)
    w = game["P"] @ game["log_pi"].exp() if exact else None
    target = exact_step(game, eta, beta)
    return [tv(minimize(name, game, K, labels, exact_w=w, eta=eta, beta=beta), target) for K in Ks]


def test_kl_with_exact_win_rates_converges_as_k_grows():
    Ks = [2, 3, 4, 5, 6]
    bias = bias_curve("wind-kl", Ks, "soft", exact=True)
    assert all(b1 < b0 for b0, b1 in itertools.pairwise(bias)), bias
    # O(1/K), the rate of self-normalized importance weights: K * bias stays within 1.5x
    scaled = [K * b for K, b in zip(Ks, bias, strict=True)]
    assert max(scaled) < 1.5 * min(scaled), scaled


@pytest.mark.parametrize("name", ["wind-kl", "wind-nce"])
def test_estimated_win_rate_bias_shrinks_with_k(name):
    bias = bias_curve(name, [2, 3, 4], "binary", exact=False, n=3)  # 3^4 * 2^6 rows at K=4
    assert bias[0] > 1e-3, bias  # leave-one-out win rates make the weights biased
    assert bias[2] < bias[1] < bias[0], bias


def sppo_closed_form(game: dict[str, torch.Tensor], w: torch.Tensor, eta: float) -> torch.Tensor:
    """The exact minimizer of SPPO's population loss ``sum_y pi_t(y) (s(y) - h(y))^2``,
    ``h = eta (w - 1/2)``, over normalized ``pi = pi_t e^s`` (beta = 0).

    Stationarity gives ``s - h = m e^s`` for one scalar ``m`` (the normalizer's multiplier), so
    ``e^s = W_0(-m e^h) / (-m)`` (Lambert W); ``m < 0`` solves ``sum_y pi_t(y) e^{s(y)} = 1``.
    """
    pi_t, h = game["log_pi"].exp().numpy(), (eta * (w - 0.5)).numpy()

    def ratio(m: float) -> np.ndarray:
        return np.real(lambertw(-m * np.exp(h))) / -m

    m = brentq(lambda m: float(pi_t @ ratio(m)) - 1.0, -1e3, -1e-12, xtol=1e-300, rtol=1e-15)
    return torch.log(torch.as_tensor(pi_t * ratio(m)))


def test_sppo_minimizer_is_its_closed_form():
    """SPPO's minimizer (exact win rates) is the Lambert-W closed form, not the WIND step: its
    bias comes from assuming ``log Z_t = eta / 2`` (THEORY.md 5)."""
    game, eta = make_game(6), 2.0
    w = game["P"] @ game["log_pi"].exp()
    got = minimize("sppo", game, 2, "soft", exact_w=w, eta=eta, beta=0.0)
    closed = sppo_closed_form(game, w, eta)
    assert tv(got, closed) < 1e-7
    log_z = torch.logsumexp(game["log_pi"] + eta * w, -1).item()
    assert log_z > eta / 2 + 1e-3  # Jensen: E_pi w = 1/2, so log Z_t > eta/2 unless w is flat
    # the bias against the exact WIND step is the closed form's, measured: 0.0033
    target = exact_step(game, eta, 0.0)
    assert tv(got, target) == pytest.approx(tv(closed, target), abs=1e-7)
    assert tv(closed, target) > 2e-3


def test_sppo_bias_vanishes_when_log_z_equals_half_step():
    """With beta > 0, tune pi_ref so that ``log Z_t = c/2`` exactly; then SPPO is exact."""
    game, eta, beta = make_game(7), 1.0, 1.0
    c, lam = step_coefficients(eta, beta)
    w = game["P"] @ game["log_pi"].exp()
    spike = torch.zeros(N_RESP, dtype=F64)
    spike[int(game["log_pi"].argmin())] = 10.0

    def ref(a: float) -> torch.Tensor:
        return torch.log_softmax((1 - a) * game["log_pi"] + a * spike, -1)

    def excess(a: float) -> float:
        g = lam * (ref(a) - game["log_pi"]) + c * w
        return torch.logsumexp(game["log_pi"] + g, -1).item() - c / 2

    assert excess(0.0) > 0 > excess(1.0)
    game["log_ref"] = ref(brentq(excess, 0.0, 1.0, xtol=1e-15))
    got = minimize("sppo", game, 2, "soft", exact_w=w, eta=eta, beta=beta)
    target = exact_step(game, eta, beta)
    assert tv(got, target) < 1e-6
    assert tv(game["log_pi"], target) > 1e-2


def test_nash_md_minimizer_is_the_nash_md_step():
    """With exact win rates against the mixture, Nash-MD's minimizer is THEORY section 4's step."""
    game, eta, beta, alpha = make_game(8), 1.5, 0.3, 0.25
    c, lam = step_coefficients(eta, beta)
    log_mix = torch.log_softmax((1 - alpha) * game["log_pi"] + alpha * game["log_ref"], -1)
    w_mix = game["P"] @ log_mix.exp()
    got = minimize("nash-md", game, 2, "soft", exact_w=w_mix, eta=eta, beta=beta)
    target = torch.log_softmax((1 - lam) * game["log_pi"] + lam * game["log_ref"] + c * w_mix, -1)
    assert tv(got, target) < 1e-6


@pytest.mark.parametrize("labels", ["binary", "soft"])
def test_ipo_minimizer_is_reference_tilted_by_win_rate(labels):
    """IPO's population minimizer on pairs from pi_t: ``pi ∝ pi_ref exp(w_t / beta)``."""
    game, beta = make_game(9), 0.8
    got = minimize("ipo", game, 2, labels, beta=beta)
    w = game["P"] @ game["log_pi"].exp()
    assert tv(got, torch.log_softmax(game["log_ref"] + w / beta, -1)) < 1e-6


def test_enumeration_is_a_probability_distribution():
    game = make_game(10)
    for K, labels in [(2, "binary"), (3, "binary"), (3, "soft")]:
        idx, prefs, weight = expectation_rows(game, K, labels)
        assert np.isclose(weight.sum().item(), 1.0, atol=1e-12)
        # the enumerated labels average to P on every pair
        mean = (weight[:, None, None] * prefs).sum(0)
        first = game["P"][idx[:, 0], idx[:, 1]]
        assert np.isclose(mean[0, 1].item(), (weight * first).sum().item(), atol=1e-12)


def test_exact_step_agrees_with_games_solver():
    """The target used here is the same step as ``windalign.games.wind_mirror_step``."""
    from windalign.games.solvers import wind_mirror_step

    for seed, (eta, beta) in enumerate([(1.0, 0.0), (1.3, 0.7), (0.05, 20.0)]):
        game = make_game(seed)
        ours = exact_step(game, eta, beta).exp().numpy()
        theirs = wind_mirror_step(
            game["P"].numpy(),
            game["log_ref"].exp().numpy(),
            game["log_pi"].exp().numpy(),
            beta=beta,
            eta=eta,
        )
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


def minimize_over_tuples(loss_fn, pi_t: np.ndarray, prefs_of, k: int) -> np.ndarray:
    """The tabular policy minimizing the exact expectation of ``loss_fn`` over every k-tuple of
    samples ~ ``pi_t`` (``prefs_of(tuples) -> [R, k, k]``), by LBFGS in float64."""
    n = len(pi_t)
    tuples = np.array(list(itertools.product(range(n), repeat=k)))
    weight = torch.as_tensor(np.prod(pi_t[tuples], axis=1))
    prefs = prefs_of(tuples)
    prefs[:, np.arange(k), np.arange(k)] = np.nan
    theta = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([theta], max_iter=300, tolerance_grad=1e-14, tolerance_change=1e-16)

    def closure():
        opt.zero_grad()
        logp = torch.log_softmax(theta, 0)[torch.as_tensor(tuples)]
        fixed = logp.detach()
        loss = loss_fn(SampleBatch(logp, fixed, fixed, torch.as_tensor(prefs), weight=weight)).loss
        loss.backward()
        return loss

    opt.step(closure)
    return torch.softmax(theta, 0).detach().numpy()


def test_bok_distill_splits_a_tie_among_the_tied_winners():
    """Samples 0 and 2 tie for the best (each beats sample 1, they draw): each carries half of
    the prompt's weight."""
    logp = torch.log(torch.tensor([[0.2, 0.3, 0.5]], dtype=F64)).requires_grad_()
    prefs = torch.tensor([[[0.5, 1, 0.5], [0, 0.5, 0], [0.5, 1, 0.5]]], dtype=F64)
    bok_distill(SampleBatch(logp, logp.detach(), logp.detach(), prefs)).loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.5, 0.0, -0.5]], dtype=F64))


@pytest.mark.parametrize("k", [2, 3])
def test_bon_distill_population_minimizer_is_best_of_two(k):
    """Minimizing the exact expectation over k-tuples ~ pi_t and soft labels gives Bo2(pi_t)."""
    rng = np.random.default_rng(k)
    n = 4
    s = rng.normal(size=(n, n))
    P = 1 / (1 + np.exp(-(s - s.T)))
    pi_t = rng.dirichlet(np.ones(n))
    pi = minimize_over_tuples(
        bon_distill, pi_t, lambda tuples: P[tuples[:, :, None], tuples[:, None, :]], k
    )
    np.testing.assert_allclose(pi, best_of_two(pi_t, P), atol=1e-8)


@pytest.mark.parametrize("labels", ["hard", "bradley-terry", "tied rewards"])
@pytest.mark.parametrize("k", [3, 4])
def test_bok_distill_population_minimizer_is_best_of_k(k, labels):
    """With a reward-ranking oracle (0/1 labels, or Bradley-Terry probabilities) the winner of
    the k samples is the one of highest reward: minimizing the exact expectation over k-tuples
    ~ pi_t gives reward Best-of-k of pi_t, which is sharper than Best-of-2 (what the pairs'
    winners would give)."""
    rng = np.random.default_rng(10 + k)
    n = 4
    r = rng.normal(size=n) * 1.5
    if labels == "tied rewards":  # two different responses share the top reward
        r[np.argsort(r)[-2]] = r.max()
    pi_t = rng.dirichlet(np.ones(n))
    diff = r[:, None] - r[None, :]
    P = (diff > 0) + 0.5 * (diff == 0) if labels != "bradley-terry" else 1 / (1 + np.exp(-diff))

    def prefs_of(tuples):
        return np.asarray(P[tuples[:, :, None], tuples[:, None, :]], dtype=np.float64)

    pi = minimize_over_tuples(bok_distill, pi_t, prefs_of, k)
    target = bon_distribution(pi_t, r, k)
    np.testing.assert_allclose(pi, target, atol=1e-7)
    assert np.abs(target - best_of_two(pi_t, P)).max() > 0.02  # Best-of-2 is another target


@pytest.mark.parametrize(("eta", "beta"), [(5.0, 0.1), (0.3, 2.0)])
def test_wind_squared_at_its_sampler_is_online_ipo_scaled_by_lam(eta, beta):
    """At ``logp = logp_old`` (the first step of a round) the squared loss's gradient is exactly
    ``lam`` times online IPO's at the same beta: residual ``lam h - c (o - 1/2) = lam (h - (o -
    1/2) / beta)`` since ``c / lam = 1 / beta``. With one Adam step per round (invariant to a
    constant gradient scale) wind-squared and online IPO take the same steps (docs/results-llm.md);
    they differ from the second step on the same samples, where ``logp != logp_old``."""
    g = torch.Generator().manual_seed(3)
    B, K = 3, 4
    logp_ref = torch.randn(B, K, generator=g, dtype=torch.float64) - 3
    o = torch.rand(B, K, K, generator=g, dtype=torch.float64)
    prefs = torch.triu(o, 1) + torch.tril(1 - o.transpose(1, 2), -1)
    prefs = prefs + torch.diag_embed(torch.full((B, K), 0.5, dtype=torch.float64))
    start = (torch.randn(B, K, generator=g, dtype=torch.float64) - 6).requires_grad_()
    grads = {}
    for name, hp in (("wind-squared", {"eta": eta, "beta": beta}), ("ipo", {"beta": beta})):
        batch = SampleBatch(start, start.detach(), logp_ref, prefs)
        (grads[name],) = torch.autograd.grad(LOSSES[name].fn(batch, **hp).loss, start)
    _, lam = step_coefficients(eta, beta)
    assert grads["ipo"].abs().max() > 1e-3
    torch.testing.assert_close(grads["wind-squared"], lam * grads["ipo"], rtol=1e-12, atol=1e-14)
    step = 0.3 * torch.randn(B, K, generator=g, dtype=torch.float64)
    moved = SampleBatch(start + step, start.detach(), logp_ref, prefs)  # a second step: differ
    a = LOSSES["wind-squared"].fn(moved, eta=eta, beta=beta).loss
    b = LOSSES["ipo"].fn(moved, beta=beta).loss
    assert not torch.isclose(a, lam**2 * b)
