"""random: random search over distinct uniformly sampled architectures (a multi-trial method on
`nasforge.engine.multitrial.MultiTrialStrategy`)."""
from __future__ import annotations

import random

from ..engine.base import SearchContext
from ..engine.multitrial import MultiTrialStrategy, sample_distinct, sample_new  # noqa: F401 - re-exported
from ..errors import ConfigError
from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import Arch

__all__ = ["RandomSearch", "sample_distinct", "sample_new"]


@STRATEGIES.register("random", help="random search: distinct uniformly sampled architectures, best by score")
class RandomSearch(MultiTrialStrategy):
    """Samples distinct architectures uniformly; `batch` per round (the executor may run a round in parallel)."""

    name = "random"
    defaults = {"batch": Opt(8, ">=1", help="architectures per round")}

    def propose(self, ctx: SearchContext, rng: random.Random, remaining: int | None) -> list[Arch]:
        n = self.hp["batch"] if remaining is None else min(self.hp["batch"], remaining)
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"random search batch must be an integer >= 1, got {self.hp['batch']!r}")
        return sample_distinct(ctx, rng, set(self.scores), n)
