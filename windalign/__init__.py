"""windalign: WIND (win-rate dominance) alignment.

Layers (each imports only the ones above it):

* :mod:`windalign.games` -- numpy: oracles, Best-of-N, exact solvers, metrics.
* :mod:`windalign.objectives` -- torch: every sample-based loss on one ``SampleBatch``.
* :mod:`windalign.bandit` -- torch: contextual preference bandits and the benchmark runner.
* :mod:`windalign.cli` -- the ``wind`` command.
"""

__version__ = "0.1.0"
