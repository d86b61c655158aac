"""asha: asynchronous successive halving (Li et al., "A System for Massively Parallel Hyperparameter Tuning",
MLSys 2020), on `nasforge.engine.multifidelity` (docs/multifidelity.md)."""
from __future__ import annotations

from typing import Callable

from ..engine.multifidelity import COMMON, ASHAScheduler, MultiFidelityStrategy, Scheduler
from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import Arch

__all__ = ["ASHA"]


@STRATEGIES.register("asha", help="ASHA: asynchronous successive halving (promote when a worker is free)")
class ASHA(MultiFidelityStrategy):
    """Promotes as soon as a configuration is in the top 1/eta of its rung; see the engine module for the
    decision order on the local and Ray executors."""

    name = "asha"
    scheduler_name = "asha"
    defaults = {**COMMON,
                "slots": Opt(None, ">=1", type=int, help="trials in flight: simulated workers on the local executor "
                             "(default 1), Ray: default the executor's workers"),
                "order": Opt("simulated", choices=("simulated", "completion"),
                             help="which finished trial the scheduler takes next: the simulated order (reproducible "
                                  "on every executor) or, on Ray, the real one")}

    def make_scheduler(self, levels: list[int], new_config: Callable[[], Arch | None]) -> Scheduler:
        return ASHAScheduler(levels, self.hp["eta"], new_config)
