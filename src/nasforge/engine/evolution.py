"""Regularised (aging) evolution (Real et al., AAAI 2019): the ask/tell engine (the `evolution` strategy,
hurricane, vitas and the selection phase of single-path searches use it).

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

import random
from collections import deque
from typing import Any, Callable

from ..errors import ConfigError
from ..spaces.base import Arch
from .multitrial import arch_key


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
