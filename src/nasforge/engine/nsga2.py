"""The NSGA-II engine (Deb, Pratap, Agarwal & Meyarivan, IEEE TEC 2002) on the ask/tell interface of
`RegularizedEvolution`: the same proposal machinery (architectures never proposed twice, a `constraint` that
keeps violating children from ever being evaluated, mutation, optional crossover), with NSGA-II's two changes:

* **parent selection**: a binary tournament by the crowded comparison (lower non-domination rank wins, then
  the larger crowding distance);
* **survivor selection** (elitist, mu + lambda): parents and children together are sorted into
  non-dominated fronts and the population is filled front by front, the last front cut by crowding
  distance — instead of aging out the oldest member.
"""
from __future__ import annotations

import random
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError
from ..hardware.pareto import crowding_distance, non_dominated_sort
from ..spaces.base import Arch, CategoricalEncoding
from .evolution import RegularizedEvolution
from .multitrial import arch_key

__all__ = ["NSGA2", "uniform_crossover"]


class NSGA2(RegularizedEvolution):
    """The NSGA-II engine on the ask/tell interface of `RegularizedEvolution`.

    `tell(archs, values, violations)` takes each architecture's objective vector in *minimisation* form
    (negate maximised objectives) or None (a failed evaluation, never joins), and its total constraint
    violation (0 = feasible). The population then holds at most `population_size` members chosen by
    non-dominated sorting and crowding distance (ties keep the older member). No random generator is held:
    `ask(rng, n)` takes the caller's, so `state_dict()` plus the caller's generator resume exactly.
    """

    def __init__(self, sample: Callable[[random.Random], Arch], mutate: Callable[[Arch, random.Random], Arch],
                 population_size: int = 20, constraint: Callable[[Arch], bool] | None = None,
                 crossover: Callable[[Arch, Arch, random.Random], Arch] | None = None, crossover_prob: float = 0.0,
                 key: Callable[[Arch], str] = arch_key, max_attempts: int = 200) -> None:
        if isinstance(population_size, int) and population_size < 2:
            raise ConfigError(f"NSGA-II population must be an integer >= 2, got {population_size!r}")
        super().__init__(sample, mutate, population_size=population_size, sample_size=2, constraint=constraint,
                         crossover=crossover, crossover_prob=crossover_prob, key=key, max_attempts=max_attempts)
        self.population: list[tuple[Arch, list[float], float]] = []  # (arch, minimised objectives, violation)
        self._rank: list[int] = []
        self._crowding: list[float] = []

    def tournament(self, rng: random.Random) -> Arch:
        """Binary tournament by the crowded comparison operator (rank, then crowding distance; then the first
        drawn)."""
        n = len(self.population)
        if n == 1:
            return self.population[0][0]
        i, j = rng.sample(range(n), 2)
        better = (self._rank[i], -self._crowding[i]) <= (self._rank[j], -self._crowding[j])
        return self.population[i if better else j][0]

    def tell(self, archs: list[Arch], values: list[list[float] | None],  # type: ignore[override]
             violations: list[float] | None = None) -> None:
        """Add evaluated architectures, then keep the best `population_size` of parents + children."""
        violations = violations if violations is not None else [0.0] * len(archs)
        for arch, v, viol in zip(archs, values, violations):
            self.seen.add(self.key(arch))
            if v is not None:
                self.population.append((arch, [float(x) for x in v], float(viol)))
        self._select()

    def _select(self) -> None:
        if not self.population:
            self._rank, self._crowding = [], []
            return
        F = np.array([m[1] for m in self.population])
        V = np.array([m[2] for m in self.population])
        keep: list[int] = []
        for front in non_dominated_sort(F, V):
            if len(keep) + len(front) <= self.population_size:
                keep += front
                continue
            d = crowding_distance(F[front])
            order = sorted(range(len(front)), key=lambda k: (-d[k], front[k]))  # most isolated first, then older
            keep += [front[k] for k in order[: self.population_size - len(keep)]]
            break
        self.population = [self.population[i] for i in sorted(keep)]
        F, V = F[sorted(keep)], V[sorted(keep)]
        self._rank = [0] * len(self.population)
        self._crowding = [0.0] * len(self.population)
        for r, front in enumerate(non_dominated_sort(F, V)):
            d = crowding_distance(F[front])
            for k, i in enumerate(front):
                self._rank[i], self._crowding[i] = r, float(d[k])

    def state_dict(self) -> dict[str, Any]:
        return {"population": [[a, list(v), c] for a, v, c in self.population], "seen": sorted(self.seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.population = [(a, [float(x) for x in v], float(c)) for a, v, c in state["population"]]
        self.seen = set(state["seen"])
        self._select()


def uniform_crossover(encoding: CategoricalEncoding) -> Callable[[Arch, Arch, random.Random], Arch]:
    """Uniform crossover on a space's categorical encoding: each position's choice from either parent."""

    def cross(a: Arch, b: Arch, rng: random.Random) -> Arch:
        ca, cb = list(encoding.encode(a)), list(encoding.encode(b))
        return encoding.decode([x if rng.random() < 0.5 else y for x, y in zip(ca, cb)])

    return cross
