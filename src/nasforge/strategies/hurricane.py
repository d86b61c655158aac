"""HURRICANE: hardware-aware two-stage single-path search for a named target device.

Zhang, Yang, Jiang, Zhu, Liu, "Fast Hardware-Aware Neural Architecture Search", CVPR-W 2020 (arXiv
1910.11609); spec section 2. Steps, for the device named by ``target`` (not ``--device``, which is where the
search computes):

0. a latency model of the space on the target: a LUT timed here for a local device, the per-(layer, op) table
   fitted from HELP measurements for a table device (``nasforge.hardware.cost``). The latency budget is
   ``latency_ms``, or ``latency_frac`` of the way from the fastest to the slowest network of the selected space (step 1);
1. hardware-specific candidates: per layer at most ``top_k`` non-dominated ops (FLOPs vs within-layer
   latency on the target; ``nasforge.hardware.selection``), written to ``candidates_<target>.json``;
2. a single-path supernet over those candidates (SPOS: each step trains one uniformly sampled path). Two
   stages (``order``): ``late_first`` trains the supernet with the later ``split`` share of the layers
   searchable and the early layers fixed to their fastest candidate, searches them, fixes them to the
   winner, then continues the *same* weights with the early layers searchable (stage 2 starts from stage 1);
   ``early_first`` swaps the groups; ``joint`` is one-stage SPOS. Epochs: ``stage_epochs`` (default: the
   budget's epochs split 70/30);
3. in each stage, the engine's selection phase (``nasforge.engine.selection``: regularised evolution with
   mutation and uniform crossover) under a **hard latency constraint**: a candidate over the budget is never evaluated,
   only counted (``violations_rejected``). Before scoring, each candidate's BN statistics are recalibrated
   on ``bn_batches`` search-train batches; the score is its accuracy on ``eval_batches`` held-out search-val
   batches. The supernet's own BN buffers are restored afterwards;
4. the winner is retrained from scratch by the common ``retrain`` step (``--retrain-epochs``);
5. every evaluated architecture is written with its latency to ``pareto_<target>.json`` / ``.png``.

The stages are the supernet engine's phases (``nasforge.engine.oneshot``), which brings mixed precision, data
parallelism, the device RNG in checkpoints, ``--seconds`` and exact resume. With ``--estimator table`` on nb201
the search is exact and training-free: the table gives the accuracy
(the estimator's signal) and the HELP table the latency on ``target``; the evolution is the `evolution`
strategy with the latency constraint added.
"""
from __future__ import annotations

import math
import random
import time
from typing import Any

import torch.nn as nn
import torch.nn.functional as F

from .. import distributed
from ..engine.base import SearchContext, SearchResult
from ..engine.oneshot import OneShotStrategy, OptimizerRecipe, Phase, check_loss
from ..engine.scoring import fixed_batches, inherited_accuracy
from ..engine.selection import Selection
from ..errors import ConfigError, UserError
from ..hardware.devices import PER_ARCH_TABLES, TARGET_DEVICES, check_target, is_local
from ..hardware.lut import load_run_table, save_run_table
from ..options import Opt
from ..registry import STRATEGIES
from ..utils import atomic_write_json
from .evolution import Evolution

ORDERS = ("late_first", "early_first", "joint")
LATENCY_METRICS = ("raw", "calibrated")
_BN_EPOCH = 50_000  # loader epoch whose batches recalibrate BN (distinct from training epochs)
_EVAL_EPOCH = 60_000


@STRATEGIES.register("hurricane", help="HURRICANE: per-device candidates, two-stage SPOS supernet, evolution under "
                                       "a hard latency constraint (target=<device>)")
class Hurricane(OneShotStrategy):
    """Options (``--set key=value``): ``target`` (latency device), ``top_k`` (candidates kept per layer),
    ``latency_ms`` / ``latency_frac`` (budget: absolute, or fastest + frac x (slowest - fastest) of the space searched),
    ``latency_metric`` (raw | calibrated LUT), ``order`` (late_first | early_first | joint), ``split`` (share
    of layers in the late group), ``stage_epochs`` ([stage 1, stage 2]), evolution ``population``,
    ``sample_size``, ``evaluations`` (per stage), ``crossover_prob``; ``bn_batches`` / ``eval_batches``
    (BN recalibration / held-out scoring); weight SGD ``w_lr``, ``w_momentum``, ``w_weight_decay``,
    ``grad_clip``; local LUTs: ``calibrate`` (networks measured end to end), ``lut_cache``, ``lut_warmup``,
    ``lut_repeats``, ``lut_number``; HELP fits: ``n_fit``. See the module docstring for the algorithm."""

    name = "hurricane"
    kind = "one-shot"
    supernet_kinds = ("single-path",)
    optimised_keys = ("target", "latency_metric", "budget_ms", "latency_ms", "on_target")
    defaults = {
        "target": Opt("local-cpu-1t", choices=TARGET_DEVICES, help="the device latency is optimised for"),
        "top_k": Opt(4, ">=1", help="candidates kept per layer"),
        "latency_ms": Opt(None, ">0", type=float, help="latency budget in ms; null: latency_frac"),
        "latency_frac": Opt(0.6, "(0, 1]", help="budget: fastest + frac x (slowest - fastest) network of the space searched"),
        "latency_metric": Opt("calibrated", choices=LATENCY_METRICS,
                              help="calibrated: LUT fitted to whole networks (hardware.cost); raw: summed op timings"),
        "order": Opt("late_first", choices=ORDERS),
        "split": Opt(0.5, "(0, 1)", help="share of the layers in the late group"),
        "stage_epochs": Opt(None, ">=1", type=list, items=int,
                            help="epochs of stage 1 and stage 2 (one entry for joint); null: the budget's epochs 70/30"),
        "population": Opt(20, ">=2"), "sample_size": Opt(5, ">=1"),
        "evaluations": Opt(60, ">=1", help="evaluated candidates per stage"), "crossover_prob": Opt(0.5, "[0, 1]"),
        "bn_batches": Opt(10, ">=0", help="BN recalibration batches per candidate"),
        "eval_batches": Opt(5, ">=1", help="held-out search-val batches per candidate"),
        "w_lr": Opt(0.05, ">0"), "w_momentum": Opt(0.9, "[0, 1)"), "w_weight_decay": Opt(4e-5, ">=0"),
        "grad_clip": Opt(5.0, ">0", nullable=True),
        "calibrate": Opt(0, ">=0", help="networks measured end to end to calibrate a local LUT"),
        "lut_cache": Opt(None, type=str, help="latency cache file; null: the default per device"),
        "lut_warmup": Opt(10, ">=0"), "lut_repeats": Opt(7, ">=1"), "lut_number": Opt(10, ">=1"),
        "n_fit": Opt(1000, ">=1", help="HELP networks a per-(layer, op) table is fitted on"),
    }

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)  # types, ranges and choices: the declaration above
        hp = self.hp
        if hp["sample_size"] > hp["population"]:
            raise ConfigError(f"hurricane sample_size ({hp['sample_size']}) cannot exceed population ({hp['population']})")
        se = hp["stage_epochs"]
        n = 1 if hp["order"] == "joint" else 2
        if se is not None and len(se) != n:
            raise ConfigError(f"strategy 'hurricane' hyperparameter stage_epochs must be a list of {n} integers >= 1 "
                              f"for order {hp['order']}; got {se}")

    # -- how the API runs it ----------------------------------------------------------------------------
    def mode(self, estimator: str | None) -> str:
        """one-shot (supernet) normally; multi-trial when an estimator (table) is given."""
        return "multi-trial" if estimator else "one-shot"

    def preflight(self, space, cfg: dict[str, Any]) -> None:
        """Checks that need the space and tables, before a run directory exists: the target has data for the
        space and the latency budget is reachable (else one line naming the minimum)."""
        check_target(self.hp["target"], space)
        if cfg.get("estimator") and space.latency_table not in PER_ARCH_TABLES:
            raise ConfigError(f"hurricane with --estimator needs a space whose every architecture has a measured "
                              f"latency (nb201); '{space.name}' is searched with a supernet (drop --estimator)")
        if not cfg.get("estimator") and space.supernet_kind not in self.supernet_kinds:
            raise ConfigError(f"hurricane trains a single-path supernet over a layer-wise space (mobile, fbnet); "
                              f"'{space.name}' is not one (for nb201 use --estimator table)")
        if not cfg.get("estimator"):  # the stages' epochs (two stages need two epochs), before any work
            self._stage_epochs((cfg.get("budget") or {}).get("epochs") or 0, len(self._stages(space.num_layers)))
        model = self._latency_model(space, cfg.get("tables"))
        from ..hardware.selection import select_candidates

        cands = None if cfg.get("estimator") else select_candidates(space, model, self.hp["top_k"])["candidates"]
        self._budget(model, space, cands)

    # -- latency ----------------------------------------------------------------------------------------
    def _latency_model(self, space, tables, run=None):
        from ..hardware.cost import latency_model

        hp = self.hp
        stored = load_run_table(run.file(f"lut_{hp['target']}.json") if run is not None else None)
        if stored is not None:
            return stored
        return latency_model(hp["target"], space, tables=tables, cache_path=hp["lut_cache"], n_fit=hp["n_fit"],
                             metric=hp["latency_metric"],
                             measure_kw={"warmup": hp["lut_warmup"], "repeats": hp["lut_repeats"],
                                         "number": hp["lut_number"]} if is_local(hp["target"]) else None)

    def _lat(self, model, arch) -> float:
        return model.calibrated(arch) if self.hp["latency_metric"] == "calibrated" else model.predict(arch)

    def _budget(self, model, space, candidates=None) -> float:
        from ..hardware.selection import budget_bounds, default_budget

        # default budget: latency_frac of the way from the fastest to the slowest network of the space searched
        lo, _ = budget_bounds(model, candidates, self.hp["latency_metric"])
        T = (float(self.hp["latency_ms"]) if self.hp["latency_ms"] is not None
             else default_budget(model, candidates, self.hp["latency_frac"], self.hp["latency_metric"]))
        if T < lo:
            raise UserError(f"latency budget {T:.4g} ms on {self.hp['target']} is below the fastest possible "
                            f"'{space.name}' network ({lo:.4g} ms); raise latency_ms/latency_frac")
        return T

    # -- search -----------------------------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> SearchResult:
        if ctx.estimator is not None:
            return self._table_search(ctx)
        if not ctx.budget.epochs and self.hp["stage_epochs"] is None:
            raise ConfigError("hurricane needs an epoch budget (--epochs N) or stage_epochs")
        return super().search(ctx)

    # ---------------------------------------------------------------------------------------------------
    # training-free mode: nb201 + table estimator
    # ---------------------------------------------------------------------------------------------------
    def _table_search(self, ctx: SearchContext) -> SearchResult:
        from ..hardware.tablefit import NB201TableLatency

        if ctx.space.latency_table not in PER_ARCH_TABLES or not hasattr(ctx.estimator, "path"):
            raise ConfigError("hurricane with an estimator needs --estimator table and a space with per-architecture "
                              "latency tables (nb201)")
        model = NB201TableLatency(ctx.estimator.path, self.hp["target"])
        T = self._budget(model, ctx.space)
        evo = _ConstrainedEvolution(lambda a: model.predict(a) <= T, population=self.hp["population"],
                                    sample_size=self.hp["sample_size"], batch=1)
        res = evo.search(ctx)
        points = [{"arch": h["arch"], "accuracy": h["score"], "latency_ms": model.predict(h["arch"])}
                  for h in res.history if h["score"] is not None]
        files = {}
        if ctx.run is not None:
            from ..hardware.pareto import write_pareto

            files = write_pareto(ctx.run.path, self.hp["target"], points, T, acc_label="table accuracy (search signal)")
        over = [p for p in points if p["latency_ms"] > T]
        res.metrics.update({"target": self.hp["target"], "budget_ms": T, "latency_ms": model.predict(res.arch),
                            "violations_rejected": evo.engine.rejected, "evaluated_over_budget": len(over),
                            "pareto": files})
        from ..hardware.verify import verify_latency

        res.metrics["on_target"] = verify_latency(ctx.space, res.arch, self.hp["target"], T, model=model,
                                                  tables=ctx.estimator.path)
        return res

    # ---------------------------------------------------------------------------------------------------
    # supernet mode: the engine's loop with two phases (stages), each ended by a constrained selection
    # ---------------------------------------------------------------------------------------------------
    def _stages(self, L: int) -> list[list[int]]:
        n_late = max(1, min(L - 1, round(self.hp["split"] * L))) if L > 1 else L
        late, early = list(range(L - n_late, L)), list(range(L - n_late))
        order = self.hp["order"]
        if order == "joint" or not early:
            return [list(range(L))]
        return [late, early] if order == "late_first" else [early, late]

    def _stage_epochs(self, total: int, n: int) -> list[int]:
        if self.hp["stage_epochs"] is not None:
            return list(self.hp["stage_epochs"])
        if n == 1:
            return [total]
        if total < 2:
            raise ConfigError("two-stage hurricane needs at least 2 epochs (or set stage_epochs)")
        first = max(1, min(total - 1, round(0.7 * total)))
        return [first, total - first]

    def build_supernet(self, ctx: SearchContext, restored: dict[str, Any] | None) -> nn.Module:
        """Steps 0 and 1: the target's latency model, the budget and the per-layer candidates (fixed for the
        run and stored in the run directory; a resumed run reads them back), then the single-path supernet."""
        hp, space, target = self.hp, ctx.space, self.hp["target"]
        model = self._latency_model(space, ctx.tables_folder(), ctx.run)
        self.calibration = None
        if hp["calibrate"] and is_local(target) and restored is None:
            from ..hardware.lut import LatencyCache, calibrate, default_cache_path

            cache = LatencyCache(hp["lut_cache"] or default_cache_path(target), target)
            self.calibration = calibrate(space, model, cache, n=hp["calibrate"], seed=ctx.seed,
                                         warmup=hp["lut_warmup"], repeats=hp["lut_repeats"], number=hp["lut_number"])
        if ctx.run is not None:
            save_run_table(ctx.run.file(f"lut_{target}.json"), model)
        if restored is not None:
            self.selection = restored["selection"]
        else:
            from ..hardware.selection import select_candidates

            self.selection = select_candidates(space, model, hp["top_k"])
            if ctx.run is not None:
                atomic_write_json(ctx.run.file(f"candidates_{target}.json"), self.selection)
        cands = self.selection["candidates"]
        # the budget from the space searched (the selected candidates); every layer keeps its fastest op
        self.model, self.T = model, self._budget(model, space, cands)
        if restored is None:
            self.log(ctx, event="candidates", target=target, budget_ms=self.T, candidates=cands)
        self.stages = self._stages(len(cands))
        # every layer starts on its fastest candidate; a stage's selection fixes its layers to the winner
        self.fixed = [min(c, key=lambda o: (model.layer_latency(i, o), o)) for i, c in enumerate(cands)]
        self.evaluated: list[dict[str, Any]] = []
        self.stage_results: list[dict[str, Any]] = []
        self.train_s = [0.0] * len(self.stages)
        return space.supernet(candidates=cands)

    def phases(self, ctx: SearchContext) -> list[Phase]:
        epochs = self._stage_epochs(ctx.budget.epochs or 0, len(self.stages))
        return [Phase(f"stage{i + 1}", e) for i, e in enumerate(epochs)]

    def optimizer_recipe(self, ctx: SearchContext) -> OptimizerRecipe:
        """SPOS: SGD with momentum, linear decay to 0 over each stage's epochs (a fresh optimiser per stage)."""
        return OptimizerRecipe("sgd", lr=self.hp["w_lr"], momentum=self.hp["w_momentum"],
                               weight_decay=self.hp["w_weight_decay"], schedule="linear")

    def on_phase_start(self, supernet, phase, ctx) -> None:
        self.active, self._t0 = self.stages[phase], time.perf_counter()

    def on_epoch_start(self, supernet, epoch, epochs, ctx) -> None:
        self.path_rng = random.Random(f"hurricane-path-{ctx.seed}-{self._phase}-{epoch}")

    def step(self, supernet, batch, second, ctx):
        """SPOS: one uniformly sampled path over the active layers (the others fixed) trains on the batch."""
        x, y = batch
        arch = list(self.fixed)
        for i in self.active:
            arch[i] = self.path_rng.choice(supernet.candidates[i])
        supernet.set_path(supernet.arch_to_path(arch))
        self.w_opt.zero_grad(set_to_none=True)
        logits = supernet(x)
        loss = F.cross_entropy(logits, y)
        check_loss(loss, "hurricane supernet training")
        self.prec.scale(loss).backward()
        self.weight_step(supernet)
        return {"train_loss": loss.item(), "train_accuracy": (logits.argmax(1) == y).float().mean().item()}

    def _diagnostics(self, supernet, ctx, val_loader, epoch) -> dict[str, Any]:
        return {"stage": self._phase + 1, "searchable_layers": self.active}

    def end_phase(self, supernet, phase, ctx, selection) -> None:
        """Step 3: regularised evolution over the stage's layers under the hard latency constraint (an
        over-budget proposal is never scored, only counted); the winner's choices are fixed."""
        hp, model, T, active = self.hp, self.model, self.T, self.active
        # rank 0's clock: strategy state is identical on every data-parallel rank
        self.train_s[phase] = distributed.broadcast_object(self.train_s[phase] + time.perf_counter() - self._t0)
        cands, fixed = supernet.candidates, list(self.fixed)

        def sample(rng: random.Random) -> list[str]:
            return [rng.choice(cands[i]) if i in active else fixed[i] for i in range(len(fixed))]

        def mutate(arch, rng: random.Random) -> list[str]:
            a = list(arch)
            movable = [i for i in active if len(cands[i]) > 1]
            if movable:
                i = rng.choice(movable)
                a[i] = rng.choice([o for o in cands[i] if o != a[i]])
            return a

        def crossover(a, b, rng: random.Random) -> list[str]:
            return [a[i] if (i not in active or rng.random() < 0.5) else b[i] for i in range(len(a))]

        train_loader, val_loader = self.loaders_
        bn = fixed_batches(train_loader, hp["bn_batches"], "bn_recal")
        held_out = fixed_batches(val_loader, hp["eval_batches"], "score")

        def fitness(arch) -> float:
            return inherited_accuracy(supernet, held_out, bn, setup=lambda: supernet.set_path(supernet.arch_to_path(arch)))

        batch = max(1, hp["population"] // 2)
        sel = Selection(f"stage{phase + 1}", ctx.seed, sample=sample, mutate=mutate, crossover=crossover,
                        crossover_prob=hp["crossover_prob"], constraint=lambda a: self._lat(model, a) <= T,
                        fitness=fitness, describe=lambda a: {"latency_ms": self._lat(model, a)},
                        budget=min(hp["evaluations"], math.prod(len(cands[i]) for i in active)),
                        population=hp["population"], sample_size=hp["sample_size"], batch=batch,
                        initial=[fixed], checkpoint_every=batch, max_attempts=5000)
        records = sel.run(self, ctx, selection)
        if not records:
            raise UserError(f"hurricane stage {phase + 1}: no candidate within the budget {T:.4g} ms could be "
                            "proposed; raise latency_ms/latency_frac")
        best = Selection.best(records)
        for i in active:
            self.fixed[i] = best["arch"][i]
        self.evaluated += [{"stage": phase + 1, **r} for r in records]
        self.stage_results.append({"stage": phase + 1, "searched_layers": active, "epochs": self.phases(ctx)[phase].epochs,
                                   "epochs_run": sum(1 for h in self._history if h.get("stage") == phase + 1),
                                   "evaluated": len(records), "violations_rejected": sel.rejected,
                                   "best_arch": best["arch"], "best_accuracy": best["fitness"],
                                   "latency_ms": best["latency_ms"], "supernet_train_s": self.train_s[phase]})
        self.log(ctx, event="stage", **self.stage_results[-1])

    def derive(self, supernet, ctx) -> list[str]:
        return list(self.fixed)

    def final_metrics(self, supernet, arch, ctx) -> dict[str, Any]:
        """Latencies of the winner, the stages, and the Pareto file of every scored architecture (step 5)."""
        model, T, target = self.model, self.T, self.hp["target"]
        points = [{"arch": e["arch"], "accuracy": e["fitness"], "latency_ms": e["latency_ms"], "stage": e["stage"]}
                  for e in self.evaluated]
        files = {}
        if ctx.run is not None and ctx.is_main:
            from ..hardware.pareto import write_pareto

            files = write_pareto(ctx.run.path, target, points, T, acc_label="supernet held-out accuracy")
        metrics = {
            "target": target, "budget_ms": T, "latency_metric": self.hp["latency_metric"],
            "latency_ms": model.predict(arch), "latency_calibrated_ms": model.calibrated(arch),
            "candidates": self.selection["candidates"], "order": self.hp["order"], "stages": self.stage_results,
            "supernet_train_s": sum(self.train_s), "evaluated": len(self.evaluated),
            "violations_rejected": sum(r["violations_rejected"] for r in self.stage_results),
            "evaluated_over_budget": sum(1 for e in self.evaluated if e["latency_ms"] > T + 1e-9),
            "pareto": files, "latency_source": getattr(model, "meta", {}).get("source"),
        }
        if self.calibration is not None:
            metrics["calibration"] = {k: v for k, v in self.calibration.items() if k not in ("archs",)}
        from ..hardware.verify import verify_latency  # the hard constraint, checked on the device itself

        metrics["on_target"] = verify_latency(ctx.space, arch, target, T, model=model, tables=ctx.tables_folder())
        return metrics

    def strategy_state(self) -> dict[str, Any]:
        return {"selection": self.selection, "fixed": list(self.fixed), "evaluated": self.evaluated,
                "stage_results": self.stage_results, "train_s": list(self.train_s)}

    def load_strategy_state(self, state: dict[str, Any]) -> None:
        self.fixed, self.evaluated = list(state["fixed"]), list(state["evaluated"])
        self.stage_results, self.train_s = list(state["stage_results"]), list(state["train_s"])


class _ConstrainedEvolution(Evolution):
    """The `evolution` strategy under the latency budget (table mode)."""

    name = "hurricane"

    def __init__(self, within, **hparams: Any) -> None:
        super().__init__(**hparams)
        self._within = within

    def constraint(self, ctx: SearchContext):
        return self._within
