"""Contextual preference bandits: environment, small policies, runner and benchmark (torch).

THEORY.md sections 5-6. :class:`PreferenceBandit` draws contexts, samples actions and answers
noisy pairwise queries (counting both); :func:`make_policy` builds tabular / linear / MLP
policies that start at the reference; :func:`train` runs any method of ``METHODS`` (the losses of
:mod:`windalign.objectives` plus sampled iterated Best-of-2) under one query budget and
evaluates it exactly with :mod:`windalign.games`; ``wind bandit`` runs the tuned comparison.

>>> from windalign.bandit import EnvConfig, Evaluator, PreferenceBandit, RunConfig, train
>>> env = PreferenceBandit(EnvConfig(n_actions=4, context_dim=3, n_eval=8))
>>> rows = train(env, Evaluator(env, beta=0.1), RunConfig("wind-squared", query_budget=96, batch=4))
>>> rows[-1]["queries"], rows[-1]["samples"]
(96, 64)
"""

from windalign.bandit.env import EnvConfig, PreferenceBandit
from windalign.bandit.policies import POLICIES, make_policy
from windalign.bandit.runner import METHODS, Evaluator, RunConfig, train

__all__ = [
    "METHODS",
    "POLICIES",
    "EnvConfig",
    "Evaluator",
    "PreferenceBandit",
    "RunConfig",
    "make_policy",
    "train",
]
