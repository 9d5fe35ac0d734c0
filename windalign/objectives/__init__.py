"""Sample-based objectives: every loss on one :class:`SampleBatch` (THEORY.md sections 5-6).

Torch only (never transformers). A loss is a pure function
``fn(batch, **hyperparameters) -> LossOutput(loss, stats)``; ``LOSSES`` maps names to
:class:`LossSpec` (function, sampling convention, ``min_k``, defaults) and :func:`compute_loss`
runs one by name with checked hyperparameters. See docs/objectives.md.

>>> import torch
>>> lp = torch.log(torch.full((1, 2), 0.5, dtype=torch.float64))
>>> prefs = torch.tensor([[[0.5, 1.0], [0.0, 0.5]]], dtype=torch.float64)
>>> loss, stats = compute_loss("wind-squared", SampleBatch(lp, lp, lp, prefs), eta=1.0, beta=0.0)
>>> loss
tensor(0.2500, dtype=torch.float64)
"""

from windalign.objectives.batch import LossOutput, SampleBatch
from windalign.objectives.registry import (
    LOSSES,
    SAMPLING,
    LossSpec,
    compute_loss,
    loss_hyperparameters,
)

__all__ = [
    "LOSSES",
    "SAMPLING",
    "LossOutput",
    "LossSpec",
    "SampleBatch",
    "compute_loss",
    "loss_hyperparameters",
]
