"""Exact games on finite response sets: numpy, float64, batched over leading context dims.

Oracles and generators (:mod:`.preference`), Best-of-N distributions (:mod:`.bon`), metrics
(:mod:`.metrics`), the WIND solvers (:mod:`.solvers`), baseline dynamics (:mod:`.dynamics`) and
the ``METHODS`` registry (:mod:`.methods`). Never imports torch. Derivations: docs/theory.md.
"""

from windalign.games.bon import (
    best_of_two,
    bon_distribution,
    log_best_of_two,
    log_bon_distribution,
)
from windalign.games.dynamics import (
    iterated_bon,
    log_iterated_bon_step,
    log_nash_md_step,
    log_regularized_bon_step,
    log_sppo_step,
    matched_lam,
    nash_md,
    regularized_iterated_bon,
    sppo_mw,
)
from windalign.games.methods import METHODS
from windalign.games.metrics import (
    duality_gap,
    duality_gap_logits,
    exploitability,
    gap_from_win_rates,
    kl,
    kl_logits,
    log_probs,
    response_win_rates,
    win_rate,
)
from windalign.games.preference import (
    Game,
    bradley_terry,
    cyclic_oracle,
    hard_order,
    mixed_oracle,
    oracle_from_logits,
    random_game,
    random_skew,
    validate_policy,
    validate_preference,
)
from windalign.games.solvers import (
    SolveResult,
    Trace,
    iterate,
    log_wind_mirror_step,
    mirror_solve,
    newton_solve,
    solve_equilibrium,
    wind_equilibrium_residual,
    wind_mirror_step,
)

__all__ = [
    "METHODS",
    "Game",
    "SolveResult",
    "Trace",
    "best_of_two",
    "bon_distribution",
    "bradley_terry",
    "cyclic_oracle",
    "duality_gap",
    "duality_gap_logits",
    "exploitability",
    "gap_from_win_rates",
    "hard_order",
    "iterate",
    "iterated_bon",
    "kl",
    "kl_logits",
    "log_best_of_two",
    "log_bon_distribution",
    "log_iterated_bon_step",
    "log_nash_md_step",
    "log_probs",
    "log_regularized_bon_step",
    "log_sppo_step",
    "log_wind_mirror_step",
    "matched_lam",
    "mirror_solve",
    "mixed_oracle",
    "nash_md",
    "newton_solve",
    "oracle_from_logits",
    "random_game",
    "random_skew",
    "regularized_iterated_bon",
    "response_win_rates",
    "solve_equilibrium",
    "sppo_mw",
    "validate_policy",
    "validate_preference",
    "win_rate",
    "wind_equilibrium_residual",
    "wind_mirror_step",
]
