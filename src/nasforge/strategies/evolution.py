"""Regularised (aging) evolution (Real et al., AAAI 2019), as an engine and as the `evolution` strategy.

`RegularizedEvolution` knows nothing about how architectures are scored: the caller asks it for
architectures and tells it their *fitness*, so other searches reuse it with their own fitness (supernet
accuracy, accuracy under a latency penalty, ...) and their own `constraint` (e.g. a FLOPs or latency window:
children that violate it are never proposed). Each step takes a random sample of `sample_size` members of
the population, mutates the fittest into a child not seen before, adds the child and removes the *oldest*
member. An optional `crossover` mixes two tournament winners first (with probability `crossover_prob`).

The engine never holds a random generator (methods take one), so `state_dict()` plus the caller's generator
state resume a search exactly.
"""
from __future__ import annotations

import math
import random
from collections import deque
from typing import Any, Callable

from ..options import Opt
from ..errors import ConfigError
from ..proxies.measures import PROXIES
from ..registry import STRATEGIES
from ..spaces.base import Arch
from .base import SearchContext
from .random_search import MultiTrialStrategy, arch_key


class RegularizedEvolution:
    def __init__(self, sample: Callable[[random.Random], Arch], mutate: Callable[[Arch, random.Random], Arch],
                 population_size: int = 20, sample_size: int = 5,
                 constraint: Callable[[Arch], bool] | None = None,
                 crossover: Callable[[Arch, Arch, random.Random], Arch] | None = None, crossover_prob: float = 0.0,
                 key: Callable[[Arch], str] = arch_key, max_attempts: int = 200) -> None:
        for name, v in (("population_size", population_size), ("sample_size", sample_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"evolution {name} must be an integer >= 1, got {v!r}")
        if sample_size > population_size:
            raise ConfigError(f"evolution sample_size ({sample_size}) cannot exceed population_size ({population_size})")
        if not 0.0 <= crossover_prob <= 1.0 or (crossover_prob > 0 and crossover is None):
            raise ConfigError("evolution crossover_prob must be in [0, 1] and needs a crossover function")
        self.sample, self.mutate, self.constraint = sample, mutate, constraint
        self.crossover, self.crossover_prob = crossover, crossover_prob
        self.population_size, self.sample_size = population_size, sample_size
        self.key, self.max_attempts = key, max_attempts
        self.population: deque[tuple[Arch, float]] = deque()  # oldest first
        self.seen: set[str] = set()  # every architecture proposed so far

    # -- asking -----------------------------------------------------------------------------
    def _admissible(self, arch: Arch) -> bool:
        return self.key(arch) not in self.seen and (self.constraint is None or self.constraint(arch))

    def _propose(self, make: Callable[[], Arch]) -> Arch | None:
        for _ in range(self.max_attempts):
            arch = make()
            if self._admissible(arch):
                self.seen.add(self.key(arch))
                return arch
        return None

    def random_member(self, rng: random.Random) -> Arch | None:
        """A new random architecture (None if `max_attempts` draws found none that is unseen and admissible)."""
        return self._propose(lambda: self.sample(rng))

    def tournament(self, rng: random.Random) -> Arch:
        """The fittest of `sample_size` members drawn without replacement (ties: the younger one)."""
        contenders = rng.sample(range(len(self.population)), min(self.sample_size, len(self.population)))
        best = max(contenders, key=lambda i: (self.population[i][1], i))
        return self.population[best][0]

    def child(self, rng: random.Random) -> Arch | None:
        """A new child of the population; falls back to a random member if mutation keeps finding old ones."""
        if not self.population:
            return self.random_member(rng)

        def make() -> Arch:
            parent = self.tournament(rng)
            if self.crossover is not None and rng.random() < self.crossover_prob:
                parent = self.crossover(parent, self.tournament(rng), rng)
            return self.mutate(parent, rng)

        return self._propose(make) or self.random_member(rng)

    def ask(self, rng: random.Random, n: int = 1) -> list[Arch]:
        """n new architectures: random while the population is still filling up, children afterwards."""
        out = []
        for _ in range(n):
            filling = len(self.population) + len(out) < self.population_size
            arch = self.random_member(rng) if filling else self.child(rng)
            if arch is None:
                break
            out.append(arch)
        return out

    # -- telling ----------------------------------------------------------------------------
    def tell(self, archs: list[Arch], fitnesses: list[float | None]) -> None:
        """Add scored architectures (None = failed, never joins) and age out the oldest members."""
        for arch, fit in zip(archs, fitnesses):
            self.seen.add(self.key(arch))
            if fit is None:
                continue
            self.population.append((arch, float(fit)))
            while len(self.population) > self.population_size:
                self.population.popleft()

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"population": [list(m) for m in self.population], "seen": sorted(self.seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.population = deque((arch, float(fit)) for arch, fit in state["population"])
        self.seen = set(state["seen"])


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

    def setup(self, ctx: SearchContext) -> None:
        space = ctx.space
        self.engine = RegularizedEvolution(lambda rng: space.validate(space.sample(rng)),
                                           lambda arch, rng: space.validate(space.mutate(arch, rng)),
                                           population_size=self.hp["population"], sample_size=self.hp["sample_size"])
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
        state = self.engine.state_dict()
        if self.hp["prescreen"] > 1:
            state["prescreen_scores"] = self.prescreen_scores
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        self.engine.load_state_dict(state)
        self.prescreen_scores = dict(state.get("prescreen_scores", {}))

    def extra_metrics(self) -> dict[str, Any]:
        if self.hp["prescreen"] <= 1:
            return {}
        return {"prescreen": {"k": self.hp["prescreen"], "proxy": self.hp["prescreen_proxy"],
                              "candidates_scored": len(self.prescreen_scores)}}
