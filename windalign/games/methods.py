"""``METHODS``: every exact solver and baseline dynamics under one name and one signature.

Each entry is called as ``fn(P, ref, beta, *, max_iter, progress, **kw) -> SolveResult``;
``wind solve --methods``, its error messages, the docs table and the tests all read this registry.

>>> sorted(METHODS.names()) == sorted(
...     ["newton", "mirror", "iterated-bo2", "regularized-bon", "sppo", "nash-md"])
True
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from windalign.games import dynamics, solvers
from windalign.games.solvers import SolveResult
from windalign.registry import Registry


class Method(Protocol):
    """The common signature of a registered method."""

    def __call__(
        self,
        P: np.ndarray,
        ref: np.ndarray,
        beta: float,
        *,
        max_iter: int,
        progress: bool,
        **kw: object,
    ) -> SolveResult: ...


METHODS: Registry[Method] = Registry("method")

#: The methods that solve the WIND game exactly: they run until the max duality gap is ``<= tol``
#: and ``wind solve`` reports it (a warning and exit 3) when they stop short of it.
EXACT = ("newton", "mirror")
#: Default iteration caps: the exact solvers run to ``tol`` (Newton needs <= 200 steps across
#: the supported beta range; the mirror step ~ ``log(1 / tol) / beta^2``); the baseline dynamics,
#: which do not converge to the WIND equilibrium, get a fixed budget.
DEFAULT_MAX_ITER = {"newton": 500, "mirror": 10_000}
BASELINE_MAX_ITER = 1000


@METHODS.register("newton", help="WIND equilibrium by damped Newton with beta continuation")
def _newton(P, ref, beta, *, max_iter, progress, **kw) -> SolveResult:
    return solvers.newton_solve(P, ref, beta, max_iter=max_iter, progress=progress, **kw)


@METHODS.register("mirror", help="exact WIND proximal mirror steps, eta = beta (safe) by default")
def _mirror(P, ref, beta, *, max_iter, progress, **kw) -> SolveResult:
    return solvers.mirror_solve(P, ref, beta, max_iter=max_iter, progress=progress, **kw)


@METHODS.register("iterated-bo2", help="iterated Best-of-2 under the oracle (unregularized)")
def _iterated_bo2(P, ref, beta, *, max_iter, progress, **kw) -> SolveResult:
    return dynamics.iterated_bon(P, ref, beta, max_iter=max_iter, progress=progress, **kw)


@METHODS.register(
    "regularized-bon",
    help="Bo2 iterates pulled to ref, pi ∝ Bo2(pi)^(1-lam) ref^lam, lam = 2 beta / (1 + 2 beta)",
)
def _regularized_bon(P, ref, beta, *, max_iter, progress, **kw) -> SolveResult:
    return dynamics.regularized_iterated_bon(
        P, ref, beta, max_iter=max_iter, progress=progress, **kw
    )


@METHODS.register("sppo", help="SPPO multiplicative weights pi ∝ pi exp(eta P pi), eta = 1")
def _sppo(P, ref, beta, *, max_iter, progress, eta: float = 1.0, **kw) -> SolveResult:
    return dynamics.sppo_mw(P, ref, eta, beta=beta, max_iter=max_iter, progress=progress, **kw)


@METHODS.register(
    "nash-md", help="Nash-MD with geometric mixture alpha = 0.1, eta = min(beta, 1/beta)"
)
def _nash_md(P, ref, beta, *, max_iter, progress, **kw) -> SolveResult:
    return dynamics.nash_md(P, ref, beta, max_iter=max_iter, progress=progress, **kw)
