"""nsga2: NSGA-II (Deb, Pratap, Agarwal & Meyarivan, IEEE TEC 2002), multi-objective search under constraints,
on the ask/tell engine `nasforge.engine.nsga2.NSGA2` (the regularised-evolution engine with NSGA-II's parent
and survivor selection).

With ``batch`` = ``population`` (the default) a round is one NSGA-II generation. Objectives and constraints
are declared by name (`nasforge.hardware.objectives`): accuracy (the estimator's score), latency on a named
device, params, FLOPs, BOPs. A constraint on a cost (latency, params, ...) is checked before evaluation —
violating architectures are never evaluated; an accuracy constraint enters Deb's constrained domination.

The result reports the found Pareto front (feasible, evaluated architectures that no other one dominates),
and its hypervolume: when the estimator's table enumerates the space and every cost objective is a latency
(NB201 with a HELP device column) the exact front is computed from all 15,625 cells and the hypervolume is
normalised by its ideal and nadir points (reference 10 % beyond the nadir), so ``hypervolume_ratio`` = found
/ exact; otherwise by the ``reference`` point when given, else by the found front's own ideal and nadir.
Everything is written to ``multiobjective.json`` in the run directory (drawn by ``nasforge report``).
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np

from ..engine.base import SearchContext, SearchResult
from ..engine.multitrial import MultiTrialStrategy, arch_key
from ..engine.nsga2 import NSGA2, uniform_crossover
from ..errors import ConfigError
from ..hardware import objectives as objmod
from ..hardware.pareto import hypervolume, normalized_hypervolume, pareto_mask
from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import Arch

__all__ = ["NSGA2", "NSGA2Search", "exact_front", "front_summary"]


@STRATEGIES.register("nsga2", help="NSGA-II multi-objective search: accuracy, latency@DEVICE, params, FLOPs, "
                                   "BOPs under constraints; Pareto front and hypervolume")
class NSGA2Search(MultiTrialStrategy):
    """NSGA-II over the space's mutation (and uniform crossover where the space declares a categorical
    encoding). Options: objectives, constraints, population, batch, crossover_prob, reference."""

    name = "nsga2"
    defaults = {
        "objectives": Opt(["accuracy", "params"], type=list, items=str,
                          help="of accuracy, latency@DEVICE, params, flops, bops (accuracy once, >= 2 in all)"),
        "constraints": Opt([], type=list, items=str,
                           help="e.g. [latency@pixel3<=5ms, params<=1M, accuracy>=90] (units: us ms s, k M G, %)"),
        "population": Opt(20, ">=2"),
        "batch": Opt(None, ">=1", type=int, help="children per round; null: the population (one generation)"),
        "crossover_prob": Opt(None, "[0, 1]", type=float,
                              help="uniform crossover probability; null: 0.5 on spaces with a categorical "
                                   "encoding (nb201, macro), 0 elsewhere"),
        "reference": Opt(None, type=list, items=float,
                         help="hypervolume reference point, one value per objective in its unit; null: see docs"),
    }

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        self.objectives = objmod.parse_objectives(self.hp["objectives"])
        self.constraints = [objmod.parse_constraint(c) for c in objmod.as_list(self.hp["constraints"], "constraints")]
        ref = self.hp["reference"]
        if ref is not None and len(ref) != len(self.objectives):
            raise ConfigError(f"nsga2 reference has {len(ref)} values; it needs one per objective "
                              f"({', '.join(o.key for o in self.objectives)})")
        self.pre = [c for c in self.constraints if c.objective.metric != "accuracy"]  # known before evaluation

    # -- checks before a run exists --------------------------------------------------------------------
    def preflight(self, space, cfg: dict[str, Any]) -> None:
        """Devices with data for the space, crossover only where the space can do it, reachable latency
        bounds (table devices: the fastest architecture of the table)."""
        super().preflight(space, cfg)  # a trial budget the space can hold
        objmod.check_for_space(self.objectives + [c.objective for c in self.constraints], space)
        if self.hp["crossover_prob"] and space.categorical() is None:
            raise ConfigError(f"nsga2 crossover needs a space with a categorical encoding; '{space.name}' has "
                              "none: leave crossover_prob unset (mutation only)")
        from ..hardware.devices import is_local

        costs = objmod.ArchCosts(space, [c.objective for c in self.pre], tables=cfg.get("tables"))
        for c in self.pre:
            if c.objective.metric == "latency" and not is_local(c.objective.device):
                lo = costs.latency_model(c.objective.device).bounds()[0]
                if c.bound < lo:
                    raise ConfigError(f"constraint {c.text} cannot be met: the fastest '{space.name}' network takes "
                                      f"{lo:.4g} ms on {c.objective.device}")

    # -- search -------------------------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> SearchResult:
        tables = ctx.tables_folder()
        wanted = self.objectives + [c.objective for c in self.constraints]
        self.costs = objmod.ArchCosts(ctx.space, wanted, tables=tables,
                                      lut_dir=ctx.run.path if ctx.run is not None else None)
        return super().search(ctx)

    def setup(self, ctx: SearchContext) -> None:
        space = ctx.space
        enc = space.categorical()
        p = self.hp["crossover_prob"]
        p = (0.5 if enc is not None else 0.0) if p is None else p
        self.rejected = 0
        self.engine = NSGA2(lambda rng: space.validate(space.sample(rng)),
                            lambda arch, rng: space.validate(space.mutate(arch, rng)),
                            population_size=self.hp["population"], constraint=self._feasible_cost,
                            crossover=uniform_crossover(enc) if enc is not None and p > 0 else None,
                            crossover_prob=p if enc is not None else 0.0)

    def _values(self, arch: Arch, score: float | None = None) -> dict[str, Any]:
        return {"accuracy": score, **self.costs.of(arch, arch_key(arch))}

    def _feasible_cost(self, arch: Arch) -> bool:
        ok = objmod.violation(self._values(arch), self.pre) == 0.0
        self.rejected += not ok
        return ok

    def propose(self, ctx: SearchContext, rng: random.Random, remaining: int | None) -> list[Arch]:
        n = self.hp["batch"] or self.hp["population"]
        if not self.engine.population and len(self.history) == 0:
            n = self.hp["population"]
        n = n if remaining is None else min(n, remaining)
        archs = self.engine.ask(rng, n)
        if not archs and not self.history and self.pre:
            raise ConfigError(f"nsga2 found no architecture meeting {', '.join(c.text for c in self.pre)} in "
                              f"{self.engine.max_attempts} random draws; loosen the constraints")
        return archs

    def observe(self, ctx: SearchContext, archs: list[Arch], scores: list[float | None]) -> None:
        values, viols = [], []
        for arch, s in zip(archs, scores):
            v = self._values(arch, s)
            values.append(None if s is None else objmod.minimised(v, self.objectives))
            viols.append(0.0 if s is None else objmod.violation(v, self.constraints))
        self.engine.tell(archs, values, viols)

    def _record(self, key: str, arch: Arch, score: float | None) -> None:
        super()._record(key, arch, score)
        v = self._values(arch, score)
        self.history[-1]["objectives"] = {o.key: v[o.key] for o in dict.fromkeys(
            self.objectives + [c.objective for c in self.constraints])}
        self.history[-1]["feasible"] = score is not None and objmod.violation(v, self.constraints) == 0.0

    def state(self) -> dict[str, Any]:
        return {"engine": self.engine.state_dict(), "rejected": self.rejected}

    def load_state(self, state: dict[str, Any]) -> None:
        self.engine.load_state_dict(state["engine"])
        self.rejected = int(state["rejected"])

    def extra_metrics(self) -> dict[str, Any]:
        return {"rejected_by_constraints": self.rejected}

    # -- the front and its hypervolume ---------------------------------------------------------------
    def _result(self, ctx: SearchContext) -> SearchResult:
        res = super()._result(ctx)
        summary = front_summary(self.history, self.objectives, self.constraints, ctx, self.costs,
                                self.hp["reference"])
        res.metrics.update({k: v for k, v in summary.items() if k not in ("points", "exact_front")})
        if summary["front"]:  # the recommendation: the most accurate feasible architecture on the front
            res = SearchResult(arch=max(summary["front"], key=lambda p: p["accuracy"])["arch"], history=res.history,
                               metrics=res.metrics)
        if ctx.run is not None and ctx.is_main:
            ctx.run.write_json("multiobjective.json", summary)
        return res


def exact_front(ctx: SearchContext, objectives: list[objmod.Objective], constraints: list[objmod.Constraint],
                costs: objmod.ArchCosts) -> np.ndarray | None:
    """The true Pareto front of the feasible architectures (minimised objective rows, [k, m]) when the
    estimator's table enumerates the space and every other objective and constraint is a latency (looked up
    or summed per architecture); else None."""
    lookup = getattr(ctx.estimator, "lookup", None)
    wanted = list(dict.fromkeys(objectives + [c.objective for c in constraints]))
    if not callable(lookup) or any(o.metric not in ("accuracy", "latency") for o in wanted):
        return None
    got = lookup(ctx.space).enumerate()
    if got is None:
        return None
    archs, signal = got
    values = {o.key: np.asarray(signal, float) if o.metric == "accuracy" else
              np.array([costs.latency_model(o.device).predict(a) for a in archs], float) for o in wanted}
    ok = np.ones(len(archs), bool)
    for c in constraints:
        col = values[c.objective.key]
        ok &= col <= c.bound if c.op == "<=" else col >= c.bound
    if not ok.any():
        return None
    F = np.stack([-values[o.key] if o.maximize else values[o.key] for o in objectives], axis=1)[ok]
    return F[pareto_mask(F)]


def front_summary(history: list[dict[str, Any]], objectives: list[objmod.Objective],
                  constraints: list[objmod.Constraint], ctx: SearchContext | None, costs: objmod.ArchCosts | None,
                  reference: list[float] | None = None, exact: np.ndarray | None = None) -> dict[str, Any]:
    """The found front of `history` (records with ``objectives`` and ``feasible``), its hypervolume and, where
    known, the exact front's; see the module docstring for the reference point. JSON-ready."""
    keys = [o.key for o in objectives]
    points = [{"trial": h["trial"], "arch": h["arch"], **h["objectives"], "feasible": h["feasible"]}
              for h in history if h.get("score") is not None]
    feasible = [p for p in points if p["feasible"]]
    F = np.array([objmod.minimised(p, objectives) for p in feasible]).reshape(len(feasible), len(objectives))
    mask = pareto_mask(F) if len(F) else np.zeros(0, bool)
    front = sorted((feasible[i] for i in np.flatnonzero(mask)), key=lambda p: [p[k] for k in keys[1:]] + [-p["accuracy"]])
    if exact is None and ctx is not None and costs is not None:
        exact = exact_front(ctx, objectives, constraints, costs)
    out: dict[str, Any] = {"objectives": keys, "maximize": [o.maximize for o in objectives],
                           "constraints": [c.text for c in constraints], "front_size": len(front),
                           "evaluated": len(points), "feasible": len(feasible)}
    if exact is not None:
        ideal, nadir = exact.min(axis=0), exact.max(axis=0)
        hv = normalized_hypervolume(F, ideal, nadir) if len(F) else 0.0
        hv_exact = normalized_hypervolume(exact, ideal, nadir)
        out.update(hypervolume=hv, hypervolume_exact=hv_exact, hypervolume_ratio=hv / hv_exact,
                   hypervolume_basis="exact (feasible) front's ideal/nadir normalised, reference 1.1",
                   exact_front=[dict(zip(keys, [-x if o.maximize else x for o, x in zip(objectives, row)]))
                                for row in exact])
    elif reference is not None:
        r = [-x if o.maximize else x for o, x in zip(objectives, reference)]
        out.update(hypervolume=hypervolume(F, r) if len(F) else 0.0, hypervolume_basis=f"reference point {reference}")
    elif len(F):
        out.update(hypervolume=normalized_hypervolume(F, F[mask].min(axis=0), F[mask].max(axis=0)),
                   hypervolume_basis="found front: its own ideal/nadir normalised, reference 1.1 "
                                     "(comparable within this run only)")
    out["front"] = front
    out["points"] = points
    return out
