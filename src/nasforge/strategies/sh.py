"""sh: successive halving on a fidelity ladder (Jamieson & Talwalkar 2016; as used in Li et al., JMLR 2018), on
`nasforge.engine.multifidelity` (docs/multifidelity.md)."""
from __future__ import annotations

from typing import Callable

from ..engine.multifidelity import COMMON, MultiFidelityStrategy, Scheduler, SyncHalving
from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import Arch

__all__ = ["SuccessiveHalving"]


@STRATEGIES.register("sh", help="successive halving: brackets on a fidelity ladder (epochs), best 1/eta promoted")
class SuccessiveHalving(MultiFidelityStrategy):
    """Synchronous successive halving; `configs` per bracket (default eta^K: one survivor reaches the top)."""

    name = "sh"
    scheduler_name = "successive-halving"
    defaults = {**COMMON, "configs": Opt(None, ">=1", type=int, help="configurations per bracket (default eta^(rungs-1))"),
                "slots": Opt(None, ">=1", type=int, help="trials in flight (default: the executor's workers)")}

    def make_scheduler(self, levels: list[int], new_config: Callable[[], Arch | None]) -> Scheduler:
        n = self.hp["configs"] or self.hp["eta"] ** (len(levels) - 1)
        return SyncHalving(levels, self.hp["eta"], new_config, lambda b: (0, n))
