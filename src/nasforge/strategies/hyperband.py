"""hyperband: Hyperband (Li et al., "Hyperband: A Novel Bandit-Based Approach to Hyperparameter Optimization",
JMLR 2018), on `nasforge.engine.multifidelity` (docs/multifidelity.md)."""
from __future__ import annotations

import math
from typing import Callable

from ..engine.multifidelity import COMMON, MultiFidelityStrategy, Scheduler, SyncHalving
from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import Arch

__all__ = ["Hyperband"]


@STRATEGIES.register("hyperband", help="Hyperband: successive-halving brackets from aggressive to none, in turn")
class Hyperband(MultiFidelityStrategy):
    """Brackets s = K, K-1, ..., 0, then again: bracket s starts ceil((K+1) eta^s / (s+1)) configurations on
    rung K-s (Li et al. 2018, Algorithm 1, with the rungs given by the ladder)."""

    name = "hyperband"
    scheduler_name = "hyperband"
    defaults = {**COMMON, "slots": Opt(None, ">=1", type=int, help="trials in flight (default: the executor's workers)")}

    def make_scheduler(self, levels: list[int], new_config: Callable[[], Arch | None]) -> Scheduler:
        K, eta = len(levels) - 1, self.hp["eta"]

        def plan(b: int) -> tuple[int, int]:
            s = K - b % (K + 1)
            return K - s, int(math.ceil((K + 1) * eta ** s / (s + 1)))

        return SyncHalving(levels, eta, new_config, plan)
