"""evolution: regularised (aging) evolution as a multi-trial strategy (Real et al., AAAI 2019), on the ask/tell
engine `nasforge.engine.evolution.RegularizedEvolution`."""
from __future__ import annotations

import random
from typing import Any

from ..engine.base import SearchContext
from ..engine.evolution import RegularizedEvolution
from ..engine.multitrial import MultiTrialStrategy
from ..errors import ConfigError
from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import Arch

__all__ = ["Evolution", "RegularizedEvolution"]


@STRATEGIES.register("evolution", help="regularised (aging) evolution: tournament selection, mutation, oldest dies")
class Evolution(MultiTrialStrategy):
    """Fitness = the estimator's score. `batch` children per round (1 = the sequential algorithm)."""

    name = "evolution"
    defaults = {"population": Opt(20, ">=1"), "sample_size": Opt(5, ">=1"), "batch": Opt(1, ">=1")}

    def setup(self, ctx: SearchContext) -> None:
        space = ctx.space
        self.engine = RegularizedEvolution(lambda rng: space.validate(space.sample(rng)),
                                           lambda arch, rng: space.validate(space.mutate(arch, rng)),
                                           population_size=self.hp["population"], sample_size=self.hp["sample_size"])
        if isinstance(self.hp["batch"], bool) or not isinstance(self.hp["batch"], int) or self.hp["batch"] < 1:
            raise ConfigError(f"evolution batch must be an integer >= 1, got {self.hp['batch']!r}")

    def propose(self, ctx: SearchContext, rng: random.Random, remaining: int | None) -> list[Arch]:
        n = self.hp["batch"] if remaining is None else min(self.hp["batch"], remaining)
        if not self.engine.population and len(self.history) == 0:
            n = self.hp["population"] if remaining is None else min(self.hp["population"], remaining)
        return self.engine.ask(rng, n)

    def observe(self, ctx: SearchContext, archs: list[Arch], scores: list[float | None]) -> None:
        self.engine.tell(archs, scores)

    def state(self) -> dict[str, Any]:
        # the engine's `seen` set grows with every trial: it is rebuilt on resume from the scored history
        # (every proposal is scored, so `seen` holds exactly the history's architectures); only proposals
        # that were never scored (a round cut by --seconds) are stored
        seen = self.engine.seen
        extra = [] if len(seen) == len(self.scores) else sorted(seen - set(self.scores))
        return {"population": [list(m) for m in self.engine.population], "seen_extra": extra}

    def load_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "seen" not in state:  # written by state() above
            state["seen"] = set(self.scores) | set(state.pop("seen_extra", []))
        self.engine.load_state_dict(state)
