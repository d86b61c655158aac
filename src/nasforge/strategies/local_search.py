"""Local search (White, Nolen & Savani, "Exploring the loss landscape in neural architecture search", UAI 2021;
first circulated as "Local search is state of the art for NAS benchmarks").

    current = the best of `num_init` random architectures
    repeat:
        score the neighbours of current (every architecture one decision away)
        if one scores higher than current: move there (move=best: the best neighbour once all are scored,
                                                         move=first: the first better one, in random order)
        else (a local optimum): restart from a new random architecture

Neighbours come from the space's categorical encoding when it declares one (nb201: 6 edges x 4 other ops =
24; macro: 8 layers x 2 = 16), else from up to `max_neighbours` distinct mutations (`space.mutate`). A
neighbour scored before costs no query (the search's score cache answers it). The state (current
architecture, the neighbours left, the best one seen) is checkpointed with the search's generator, so a
resumed search makes the same moves.
"""
from __future__ import annotations

import random
from typing import Any

from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import Arch
from ..engine.base import SearchContext
from ..engine.multitrial import MultiTrialStrategy, arch_key, sample_distinct


def neighbours(space: Any, arch: Arch, rng: random.Random, max_mutations: int = 32) -> list[Arch]:
    """Every architecture one decision away from `arch`, in a random order: single-position changes of the
    space's categorical encoding, or up to `max_mutations` distinct mutations where it has none."""
    enc = space.categorical()
    if enc is not None:
        base = list(enc.encode(arch))
        out = [enc.decode(base[:p] + [c] + base[p + 1:]) for p in range(enc.positions) for c in range(enc.choices)
               if c != base[p]]
    else:
        found: dict[str, Arch] = {}
        for _ in range(max_mutations * 10):
            if len(found) >= max_mutations:
                break
            child = space.validate(space.mutate(arch, rng))
            if arch_key(child) != arch_key(arch):
                found.setdefault(arch_key(child), child)
        out = list(found.values())
    out = [space.validate(a) for a in out]
    rng.shuffle(out)
    return out


@STRATEGIES.register("local-search", help="local search: climb to the best neighbour, restart at a local optimum")
class LocalSearch(MultiTrialStrategy):
    name = "local-search"
    defaults = {
        "num_init": Opt(10, ">=1", help="random architectures; the best starts the first climb"),
        "move": Opt("best", choices=("best", "first"), help="best: after all neighbours; first: the first better"),
        "max_neighbours": Opt(32, ">=1", help="neighbourhood size on spaces without a categorical encoding"),
    }

    def setup(self, ctx: SearchContext) -> None:
        # phase: init | climb | restart; current = [arch, score]; queue: neighbours not yet proposed
        self.ls: dict[str, Any] = {"phase": "init", "current": None, "queue": [], "best_nb": None,
                                   "restarts": 0, "moves": 0, "optima": []}

    def propose(self, ctx: SearchContext, rng: random.Random, remaining: int | None) -> list[Arch]:
        st = self.ls
        if st["phase"] == "init":
            n = self.hp["num_init"] if remaining is None else min(self.hp["num_init"], remaining)
            return sample_distinct(ctx, rng, set(self.scores), n)
        if st["phase"] == "restart":
            return sample_distinct(ctx, rng, set(self.scores), 1)
        # climb: take neighbours from the queue; known ones are free, new ones count against `remaining`
        out, new = [], 0
        limit = 1 if self.hp["move"] == "first" else len(st["queue"])
        limit = limit if remaining is None else min(limit, remaining)
        while st["queue"] and new < limit:
            arch = st["queue"].pop(0)
            out.append(arch)
            new += arch_key(arch) not in self.scores
        return out

    def _start(self, ctx: SearchContext, rng: random.Random, arch: Arch, score: float) -> None:
        self.ls.update(phase="climb", current=[arch, score], best_nb=None,
                       queue=neighbours(ctx.space, arch, rng, self.hp["max_neighbours"]))

    def observe(self, ctx: SearchContext, archs: list[Arch], scores: list[float | None]) -> None:
        st = self.ls
        # the generator of the observe step: derived from the archs, so it does not depend on process state
        rng = random.Random(f"{ctx.seed}:{len(self.history)}:{arch_key(archs[0]) if archs else ''}")
        scored = [(a, s) for a, s in zip(archs, scores) if s is not None]
        if st["phase"] in ("init", "restart"):
            if st["phase"] == "restart":
                st["restarts"] += 1
            if not scored:  # every start failed: try another random one
                st["phase"] = "restart"
                return
            best = max(scored, key=lambda t: t[1])
            self._start(ctx, rng, *best)
            return
        cur_score = st["current"][1]
        for a, s in scored:
            if st["best_nb"] is None or s > st["best_nb"][1]:
                st["best_nb"] = [a, s]
            if self.hp["move"] == "first" and s > cur_score:
                st["moves"] += 1
                self._start(ctx, rng, a, s)
                return
        if st["queue"]:
            return
        if st["best_nb"] is not None and st["best_nb"][1] > cur_score:
            st["moves"] += 1
            self._start(ctx, rng, *st["best_nb"])
        else:  # a local optimum: remember it, restart
            st["optima"].append(list(st["current"]))
            st.update(phase="restart", current=None, best_nb=None)

    def state(self) -> dict[str, Any]:
        return self.ls

    def load_state(self, state: dict[str, Any]) -> None:
        self.ls = state

    def extra_metrics(self) -> dict[str, Any]:
        return {"restarts": self.ls["restarts"], "moves": self.ls["moves"], "local_optima": len(self.ls["optima"])}
