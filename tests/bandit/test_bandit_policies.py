"""Tabular, linear and MLP policies: shapes, start at the reference, gradients, pool checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from windalign.bandit.env import EnvConfig, PreferenceBandit
from windalign.bandit.policies import POLICIES, make_policy

ENV = PreferenceBandit(EnvConfig(n_actions=5, context_dim=3, n_contexts=7, seed=2))


@pytest.mark.parametrize("kind", POLICIES.names())
def test_policy_logits_shape_start_at_reference_and_train(kind):
    policy = make_policy(kind, ENV.w_ref, ENV.pool, hidden=8, seed=0)
    x_np = ENV.pool[[0, 3, 3, 6]]
    x = torch.as_tensor(x_np)
    logits = policy(x)
    assert logits.shape == (4, 5) and logits.dtype == torch.float64
    logp = torch.log_softmax(logits, -1).detach().numpy()
    np.testing.assert_allclose(logp, ENV.reference_logp(x_np), atol=1e-12)
    # one gradient step on action 0 raises its probability (the head is trainable)
    loss = -torch.log_softmax(policy(x), -1)[:, 0].mean()
    loss.backward()
    with torch.no_grad():
        for p in policy.parameters():
            if p.grad is not None:
                p -= 0.5 * p.grad
    after = torch.softmax(policy(x), -1)[:, 0].detach().numpy()
    assert np.all(after > np.exp(logp[:, 0]))
    # the reference part is frozen
    assert all(not b.requires_grad for b in policy.ref.buffers())


def test_tabular_rejects_contexts_outside_its_pool_and_needs_a_pool():
    policy = make_policy("tabular", ENV.w_ref, ENV.pool)
    with pytest.raises(ValueError, match="not in its finite pool"):
        policy(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_contexts > 0"):
        make_policy("tabular", ENV.w_ref, None)


def test_tabular_rows_are_independent():
    policy = make_policy("tabular", ENV.w_ref, ENV.pool)
    x = torch.as_tensor(ENV.pool[[1]])
    (-torch.log_softmax(policy(x), -1)[0, 2]).backward()
    grad = policy.head.table.grad
    assert grad[1].abs().sum() > 0 and grad[[0, 2, 3, 4, 5, 6]].abs().sum() == 0


def test_unknown_policy_kind_lists_the_choices():
    with pytest.raises(KeyError, match="tabular, linear, mlp"):
        make_policy("transformer", ENV.w_ref, None)
