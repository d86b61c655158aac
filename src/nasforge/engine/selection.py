"""The selection phase: evolution over a trained supernet under a constraint.

After (a phase of) supernet training, a single-path method picks its architecture by searching the space
with inherited-weight fitness (:mod:`nasforge.engine.scoring`): HURRICANE per stage under a latency budget,
ViTAS inside a MACs window, and any future single-path method. The search is the ask/tell
`RegularizedEvolution` (mutation, optional crossover), or ``mode="random"`` (the best of as many random
admissible candidates, an ablation). The engine owns what every such phase needs:

- a constraint that is checked before a candidate is scored, rejections counted (``rejected``);
- --seconds checked before every candidate (rank 0's clock; one candidate is always scored);
- one ``candidate`` record per scored architecture, logged once (sequence numbers, see
  `OneShotStrategy.log`), and its state (engine, random generator, records, rejections) checkpointed
  through `OneShotStrategy.save_selection` every ``checkpoint_every`` candidates, so an interrupted
  selection resumes exactly where its checkpoint was;
- under data parallelism every rank runs the same selection (fitness is summed over processes).
"""
from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Callable

from .. import distributed, progress
from ..spaces.base import Arch
from .evolution import RegularizedEvolution
from .multitrial import arch_key

if TYPE_CHECKING:
    from .base import SearchContext
    from .oneshot import OneShotStrategy


def _rng_state(st: Any) -> tuple:
    """random.Random state back from its JSON/list form."""
    return (st[0], tuple(st[1]), st[2]) if isinstance(st, list) else st


class Selection:
    """One selection phase; call :meth:`run`. Arguments:

    - ``name``: the phase name in records (e.g. ``stage1``); ``seed``: with the name, seeds the generator;
    - ``sample(rng)`` / ``mutate(arch, rng)`` / ``crossover(a, b, rng)`` (or None): the space's moves;
    - ``constraint(arch) -> bool``: admissible architectures (None: all);
    - ``fitness(arch) -> float``: inherited-weight fitness (higher is better);
    - ``describe(arch) -> dict``: extra fields of the candidate's record (e.g. latency, MACs);
    - ``budget``: candidates to score; ``population``, ``sample_size``, ``crossover_prob``: the evolution;
      ``batch``: candidates asked per round (told together); ``initial``: architectures scored first
      (e.g. the previous stage's winner), ``mode``: "evolution" or "random".
    """

    def __init__(self, name: str, seed: int, *, sample: Callable[[random.Random], Arch],
                 mutate: Callable[[Arch, random.Random], Arch], fitness: Callable[[Arch], float],
                 budget: int, population: int, sample_size: int,
                 crossover: Callable[[Arch, Arch, random.Random], Arch] | None = None, crossover_prob: float = 0.0,
                 constraint: Callable[[Arch], bool] | None = None,
                 describe: Callable[[Arch], dict[str, Any]] | None = None, batch: int = 1,
                 initial: list[Arch] = (), mode: str = "evolution", checkpoint_every: int = 1,
                 max_attempts: int = 2000) -> None:
        self.name, self.fitness, self.budget, self.batch, self.mode = name, fitness, budget, max(1, batch), mode
        self.describe = describe or (lambda a: {})
        self.initial, self.checkpoint_every = list(initial), max(1, checkpoint_every)
        self.constraint = constraint
        self.engine = RegularizedEvolution(sample, mutate, population_size=population, sample_size=sample_size,
                                           constraint=constraint,
                                           crossover=crossover, crossover_prob=crossover_prob if crossover else 0.0,
                                           key=arch_key, max_attempts=max_attempts)
        self.rng = random.Random(f"selection-{seed}-{name}")
        self.records: list[dict[str, Any]] = []

    @property
    def rejected(self) -> int:
        """Proposals the constraint refused (never scored), counted by the evolution engine."""
        return self.engine.rejected

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "engine": self.engine.state_dict(), "rng": self.rng.getstate(),
                "records": list(self.records)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.engine.load_state_dict(state["engine"])
        self.rng.setstate(_rng_state(state["rng"]))
        self.records = list(state["records"])

    # -- the phase ----------------------------------------------------------------------------
    def _ask(self, n: int) -> list[Arch]:
        if self.initial and not self.records:
            first = [a for a in self.initial if self.constraint is None or self.constraint(a)]
            for a in first:
                self.engine.seen.add(arch_key(a))
            if first:
                return first[:n]
        if self.mode == "random":
            return [a for a in (self.engine.random_member(self.rng) for _ in range(n)) if a is not None]
        return self.engine.ask(self.rng, n)

    def run(self, owner: "OneShotStrategy", ctx: "SearchContext", state: dict[str, Any] | None = None
            ) -> list[dict[str, Any]]:
        """Score up to `budget` admissible candidates; returns every record ``{"arch", "fitness", **describe}``
        in scoring order (resumed from `state`, a :meth:`state_dict` saved by an interrupted run)."""
        if state is not None and state.get("name") == self.name:
            self.load_state_dict(state)
        since_save = 0
        with progress.bar(f"{owner.name} {self.name}", self.budget) as pbar:
            pbar.advance(len(self.records))
            while len(self.records) < self.budget:
                if self.records and distributed.broadcast_bool(ctx.out_of_time()):
                    owner._stopped = True  # --seconds: the phase keeps what it scored
                    break
                archs = self._ask(min(self.batch, self.budget - len(self.records)))
                if not archs:
                    break  # no unseen admissible architecture within max_attempts draws
                fits = []
                for a in archs:
                    if fits and distributed.broadcast_bool(ctx.out_of_time()):
                        break
                    fit = float(self.fitness(a))
                    fits.append(fit)
                    self.records.append({"arch": a, "fitness": fit, **self.describe(a)})
                    owner.log(ctx, event="candidate", phase=self.name, index=len(self.records), **self.records[-1])
                    pbar.advance()
                self.engine.tell(archs[: len(fits)], fits)
                since_save += len(fits)
                if since_save >= self.checkpoint_every:
                    owner.save_selection(ctx, self.state_dict())
                    since_save = 0
        owner.save_selection(ctx, self.state_dict())
        return self.records

    @staticmethod
    def best(records: list[dict[str, Any]]) -> dict[str, Any]:
        """The fittest record (ties: the one scored first)."""
        return max(enumerate(records), key=lambda t: (t[1]["fitness"], -t[0]))[1]
