"""evolution: regularised (aging) evolution as a multi-trial strategy (Real et al., AAAI 2019), on the ask/tell
engine `nasforge.engine.evolution.RegularizedEvolution`."""
from __future__ import annotations

import math
import random
from typing import Any, Callable

from ..engine.base import SearchContext
from ..engine.evolution import RegularizedEvolution
from ..engine.multitrial import MultiTrialStrategy, arch_key
from ..errors import ConfigError
from ..options import Opt
from ..proxies.measures import PROXIES
from ..registry import STRATEGIES
from ..spaces.base import Arch

__all__ = ["Evolution", "RegularizedEvolution"]


@STRATEGIES.register("evolution", help="regularised (aging) evolution: tournament selection, mutation, oldest dies")
class Evolution(MultiTrialStrategy):
    """Fitness = the estimator's score. `batch` children per round (1 = the sequential algorithm).

    Proxy pre-screen (``prescreen`` k > 1): every slot of a round draws k new candidates of its kind (random
    members while the population fills, children afterwards), scores them with the zero-cost proxy
    ``prescreen_proxy`` and sends only the best to the estimator (ties: the first drawn). The proxy runs in
    this process on ``ctx.device`` with data-free inputs (``prescreen_batch`` N(0, 1) images and uniform
    labels, proxy seed 0, the space's default scale), because the search's data live in the trials. The
    candidates not chosen count as seen and are never proposed again. Their proxy scores are part of the
    checkpoint, so a resumed search picks exactly the same candidates.
    """

    name = "evolution"
    defaults = {"population": Opt(20, ">=1"), "sample_size": Opt(5, ">=1"), "batch": Opt(1, ">=1"),
                "prescreen": Opt(1, ">=1", help="candidates drawn per evaluated architecture (1 = no pre-screen)"),
                "prescreen_proxy": Opt("synflow", choices=tuple(sorted(PROXIES)), help="zero-cost proxy of the pre-screen"),
                "prescreen_batch": Opt(16, ">=2", help="N(0, 1) images per pre-screen batch")}

    def constraint(self, ctx: SearchContext) -> Callable[[Arch], bool] | None:
        """A hard constraint: proposals it refuses are never evaluated, only counted (``violations_rejected``).
        None (the default): every architecture is admissible."""
        return None

    def setup(self, ctx: SearchContext) -> None:
        space = ctx.space
        self.engine = RegularizedEvolution(lambda rng: space.validate(space.sample(rng)),
                                           lambda arch, rng: space.validate(space.mutate(arch, rng)),
                                           population_size=self.hp["population"], sample_size=self.hp["sample_size"],
                                           constraint=self.constraint(ctx))
        self.prescreen_scores: dict[str, float | None] = {}  # arch key -> pre-screen proxy score (None: -inf)
        self._prescreen = None  # (protocol, batch), made on first use
        if isinstance(self.hp["batch"], bool) or not isinstance(self.hp["batch"], int) or self.hp["batch"] < 1:
            raise ConfigError(f"evolution batch must be an integer >= 1, got {self.hp['batch']!r}")

    def propose(self, ctx: SearchContext, rng: random.Random, remaining: int | None) -> list[Arch]:
        n = self.hp["batch"] if remaining is None else min(self.hp["batch"], remaining)
        if not self.engine.population and len(self.history) == 0:
            n = self.hp["population"] if remaining is None else min(self.hp["population"], remaining)
        if self.hp["prescreen"] <= 1:
            return self.engine.ask(rng, n)
        out: list[Arch] = []
        for _ in range(n):
            filling = len(self.engine.population) + len(out) < self.engine.population_size
            draw = self.engine.random_member if filling else self.engine.child
            cands = [a for a in (draw(rng) for _ in range(self.hp["prescreen"])) if a is not None]
            if not cands:
                break
            scores = [self._proxy_score(ctx, a) for a in cands]
            out.append(cands[max(range(len(cands)), key=lambda i: (scores[i], -i))])
        return out

    def _proxy_score(self, ctx: SearchContext, arch: Arch) -> float:
        """The pre-screen proxy's score of `arch` (cached; -inf for a degenerate network)."""
        key = arch_key(arch)
        if key not in self.prescreen_scores:
            from ..proxies import Protocol, make_batch, score_arch

            if self._prescreen is None:
                protocol = Protocol(proxies=[self.hp["prescreen_proxy"]], batch_size=self.hp["prescreen_batch"],
                                    seed=0, data="gaussian").check()
                self._prescreen = (protocol, make_batch(ctx.space, protocol, None, ctx.device))
            protocol, batch = self._prescreen
            value = score_arch(ctx.space, arch, protocol, batch, ctx.device)["scores"][protocol.proxies[0]]
            self.prescreen_scores[key] = value if math.isfinite(value) else None
        value = self.prescreen_scores[key]
        return float("-inf") if value is None else value

    def observe(self, ctx: SearchContext, archs: list[Arch], scores: list[float | None]) -> None:
        self.engine.tell(archs, scores)

    def state(self) -> dict[str, Any]:
        # the engine's `seen` set grows with every trial: it is rebuilt on resume from the scored history
        # (every proposal is scored, so `seen` holds exactly the history's architectures); only proposals
        # that were never scored (a round cut by --seconds, candidates the pre-screen turned down) are stored
        seen = self.engine.seen
        extra = [] if len(seen) == len(self.scores) else sorted(seen - set(self.scores))
        state = {"population": [list(m) for m in self.engine.population], "seen_extra": extra,
                 "rejected": self.engine.rejected}
        if self.hp["prescreen"] > 1:
            state["prescreen_scores"] = self.prescreen_scores
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "seen" not in state:  # written by state() above
            state["seen"] = set(self.scores) | set(state.pop("seen_extra", []))
        self.engine.load_state_dict(state)
        self.prescreen_scores = dict(state.get("prescreen_scores", {}))

    def extra_metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.engine.constraint is not None:
            out["violations_rejected"] = self.engine.rejected
        if self.hp["prescreen"] > 1:
            out["prescreen"] = {"k": self.hp["prescreen"], "proxy": self.hp["prescreen_proxy"],
                                "candidates_scored": len(self.prescreen_scores)}
        return out
