"""HURRICANE: hardware-aware two-stage single-path search for a named target device.

Zhang, Yang, Jiang, Zhu, Liu, "Fast Hardware-Aware Neural Architecture Search", CVPR-W 2020 (arXiv
1910.11609); spec section 2. Steps, for the device named by ``target`` (not ``--device``, which is where the
search computes):

0. a latency model of the space on the target: a LUT timed here for a local device, the per-(layer, op) table
   fitted from HELP measurements for a table device (``nasforge.hardware.cost``). The latency budget is
   ``latency_ms``, or ``latency_frac`` x the latency of the slowest network in the space;
1. hardware-specific candidates: per layer the ``top_k`` ops by FLOPs / latency on the target
   (``nasforge.hardware.selection``), written to ``candidates_<target>.json``;
2. a single-path supernet over those candidates (SPOS: each step trains one uniformly sampled path). Two
   stages (``order``): ``late_first`` trains the supernet with the later ``split`` share of the layers
   searchable and the early layers fixed to their fastest candidate, searches them, fixes them to the
   winner, then continues the *same* weights with the early layers searchable (stage 2 starts from stage 1);
   ``early_first`` swaps the groups; ``joint`` is one-stage SPOS. Epochs: ``stage_epochs`` (default: the
   budget's epochs split 70/30);
3. in each stage, regularised evolution (the shared ``RegularizedEvolution`` engine, with mutation and
   uniform crossover) under a **hard latency constraint**: a candidate over the budget is never evaluated,
   only counted (``violations_rejected``). Before scoring, each candidate's BN statistics are recalibrated
   on ``bn_batches`` search-train batches; the score is its accuracy on ``eval_batches`` held-out search-val
   batches. The supernet's own BN buffers are restored afterwards;
4. the winner is retrained from scratch by the common ``retrain`` step (``--retrain-epochs``);
5. every evaluated architecture is written with its latency to ``pareto_<target>.json`` / ``.png``.

With ``--estimator table`` on nb201 the search is exact and training-free: the table gives the accuracy
(the estimator's signal) and the HELP table the latency on ``target``; the evolution is the `evolution`
strategy with the latency constraint added.
"""
from __future__ import annotations

import math
import random
import time
from itertools import islice
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import progress
from ..errors import ConfigError, UserError
from ..hardware.devices import PER_ARCH_TABLES, TARGET_DEVICES, check_target, is_local
from ..options import Opt
from ..registry import STRATEGIES
from ..utils import atomic_write_json, seed_everything
from ..engine.base import SearchContext, SearchResult, Strategy
from ..engine.evolution import RegularizedEvolution
from .evolution import Evolution
from ..engine.multitrial import arch_key

ORDERS = ("late_first", "early_first", "joint")
LATENCY_METRICS = ("raw", "calibrated")
_BN_EPOCH = 50_000  # loader epoch whose batches recalibrate BN (distinct from training epochs)
_EVAL_EPOCH = 60_000


@STRATEGIES.register("hurricane", help="HURRICANE: per-device candidates, two-stage SPOS supernet, evolution under "
                                       "a hard latency constraint (target=<device>)")
class Hurricane(Strategy):
    """Options (``--set key=value``): ``target`` (latency device), ``top_k`` (candidates kept per layer),
    ``latency_ms`` / ``latency_frac`` (budget: absolute, or a fraction of the slowest network's latency),
    ``latency_metric`` (raw | calibrated LUT), ``order`` (late_first | early_first | joint), ``split`` (share
    of layers in the late group), ``stage_epochs`` ([stage 1, stage 2]), evolution ``population``,
    ``sample_size``, ``evaluations`` (per stage), ``crossover_prob``; ``bn_batches`` / ``eval_batches``
    (BN recalibration / held-out scoring); weight SGD ``w_lr``, ``w_momentum``, ``w_weight_decay``,
    ``grad_clip``; local LUTs: ``calibrate`` (networks measured end to end), ``lut_cache``, ``lut_warmup``,
    ``lut_repeats``, ``lut_number``; HELP fits: ``n_fit``. See the module docstring for the algorithm."""

    name = "hurricane"
    kind = "one-shot"
    optimised_keys = ("target", "latency_metric", "budget_ms", "latency_ms", "on_target")
    defaults = {
        "target": Opt("local-cpu-1t", choices=TARGET_DEVICES, help="the device latency is optimised for"),
        "top_k": Opt(4, ">=1", help="candidates kept per layer"),
        "latency_ms": Opt(None, ">0", type=float, help="latency budget in ms; null: latency_frac"),
        "latency_frac": Opt(0.6, "(0, 1]", help="budget as a share of the slowest network's latency"),
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
        if cfg.get("estimator") and getattr(space, "latency_table", None) not in PER_ARCH_TABLES:
            raise ConfigError(f"hurricane with --estimator needs a space whose every architecture has a measured "
                              f"latency (nb201); '{space.name}' is searched with a supernet (drop --estimator)")
        if not cfg.get("estimator") and not hasattr(space, "layer_specs"):
            raise ConfigError(f"hurricane trains a single-path supernet over a layer-wise space (mobile, fbnet); "
                              f"'{space.name}' is not one (for nb201 use --estimator table)")
        if not cfg.get("estimator"):  # the stages' epochs (two stages need two epochs), before any work
            self._stage_epochs((cfg.get("budget") or {}).get("epochs") or 0, len(self._stages(space.num_layers)))
        model = self._latency_model(space, cfg.get("tables"))
        self._budget(model, space)

    # -- latency ----------------------------------------------------------------------------------------
    def _latency_model(self, space, tables, run=None):
        from ..hardware.cost import latency_model

        hp = self.hp
        stored = run.file(f"lut_{hp['target']}.json") if run is not None else None
        if stored is not None and stored.exists():  # a resumed run uses the table it started with
            from ..hardware.lut import LayerLatencyTable
            import json

            return LayerLatencyTable.from_dict(json.loads(stored.read_text()))
        return latency_model(hp["target"], space, tables=tables, cache_path=hp["lut_cache"], n_fit=hp["n_fit"],
                             metric=hp["latency_metric"],
                             measure_kw={"warmup": hp["lut_warmup"], "repeats": hp["lut_repeats"],
                                         "number": hp["lut_number"]} if is_local(hp["target"]) else None)

    def _lat(self, model, arch) -> float:
        return model.calibrated(arch) if self.hp["latency_metric"] == "calibrated" else model.predict(arch)

    def _budget(self, model, space) -> float:
        lo, hi = model.bounds()
        if self.hp["latency_metric"] == "calibrated" and getattr(model, "calibration", None):
            a, b = model.calibration["a"], model.calibration["b"]
            lo, hi = a * lo + b, a * hi + b
        T = float(self.hp["latency_ms"]) if self.hp["latency_ms"] is not None else self.hp["latency_frac"] * hi
        if T < lo:
            raise UserError(f"latency budget {T:.4g} ms on {self.hp['target']} is below the fastest possible "
                            f"'{space.name}' network ({lo:.4g} ms); raise latency_ms/latency_frac")
        return T

    # -- search -----------------------------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> SearchResult:
        if ctx.estimator is not None:
            return self._table_search(ctx)
        return self._supernet_search(ctx)

    # ---------------------------------------------------------------------------------------------------
    # training-free mode: nb201 + table estimator
    # ---------------------------------------------------------------------------------------------------
    def _table_search(self, ctx: SearchContext) -> SearchResult:
        from ..hardware.tablefit import NB201TableLatency

        if getattr(ctx.space, "latency_table", None) not in PER_ARCH_TABLES or not hasattr(ctx.estimator, "path"):
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
                            "violations_rejected": evo.rejected, "evaluated_over_budget": len(over),
                            "pareto": files})
        from ..hardware.verify import verify_latency

        res.metrics["on_target"] = verify_latency(ctx.space, res.arch, self.hp["target"], T, model=model,
                                                  tables=ctx.estimator.path)
        return res

    # ---------------------------------------------------------------------------------------------------
    # supernet mode
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

    def _supernet_search(self, ctx: SearchContext) -> SearchResult:
        hp, space = self.hp, ctx.space
        if ctx.data is None:
            raise ConfigError("hurricane trains a supernet and needs a dataset")
        if not ctx.budget.epochs and hp["stage_epochs"] is None:
            raise ConfigError("hurricane needs an epoch budget (--epochs N) or stage_epochs")
        if not hasattr(space, "layer_specs"):
            raise ConfigError(f"hurricane needs a layer-wise space (mobile, fbnet); '{space.name}' is not one")
        device = ctx.device
        seed_everything(ctx.seed)
        state = ctx.restore()
        if state is not None and state.get("kind") != "hurricane":
            state = None
        target = hp["target"]

        # -- step 0/1: latency model, budget, candidates (fixed for the run; stored in the run dir) --
        model = self._latency_model(space, getattr(ctx, "tables", None) or _tables_of(ctx), ctx.run)
        calibration = None
        if hp["calibrate"] and is_local(target) and state is None:
            from ..hardware.lut import LatencyCache, calibrate, default_cache_path

            cache = LatencyCache(hp["lut_cache"] or default_cache_path(target), target)
            calibration = calibrate(space, model, cache, n=hp["calibrate"], seed=ctx.seed,
                                    warmup=hp["lut_warmup"], repeats=hp["lut_repeats"], number=hp["lut_number"])
        if ctx.run is not None and hasattr(model, "as_dict") and not ctx.run.file(f"lut_{target}.json").exists():
            atomic_write_json(ctx.run.file(f"lut_{target}.json"), model.as_dict())
        T = self._budget(model, space)
        from ..hardware.selection import select_candidates

        if state is not None:
            selection = state["selection"]
        else:
            selection = select_candidates(space, model, hp["top_k"], T)
            if ctx.run is not None:
                atomic_write_json(ctx.run.file(f"candidates_{target}.json"), selection)
            ctx.log(event="candidates", target=target, budget_ms=T, candidates=selection["candidates"],
                    swapped=selection["swapped"])
        cands = selection["candidates"]
        lo, _ = model.bounds(cands)
        if (model.calibration["a"] * lo + model.calibration["b"] if hp["latency_metric"] == "calibrated"
                and model.calibration else lo) > T:
            raise UserError(f"the selected candidates cannot meet the budget {T:.4g} ms on {target} (fastest "
                            f"{lo:.4g} ms); raise latency_ms/latency_frac or top_k")
        fastest = [min(c, key=lambda o: (model.layer_latency(i, o), o)) for i, c in enumerate(cands)]

        supernet = space.supernet(candidates=cands).to(device)
        stages = self._stages(len(cands))
        epochs = self._stage_epochs(ctx.budget.epochs or 0, len(stages))
        train_loader, val_loader = ctx.data.loaders(ctx.seed)

        # -- resumable state --
        s = {"stage": 0, "epoch": 0, "fixed": list(fastest), "evo": None, "evo_rng": None, "evaluated": [],
             "stage_results": [], "rejected": 0, "train_s": [0.0] * len(stages), "history": [], "seq": 0}
        opt_state = sched_state = None
        if state is not None:
            s = state["s"]
            if ctx.run is not None:  # drop records logged after the checkpoint; that work runs again
                last = s.get("seq", 0)
                ctx.run.truncate_metrics(lambda m: m.get("seq") is None or m["seq"] <= last)
            supernet.load_state_dict(state["supernet"])
            opt_state, sched_state = state.get("w_opt"), state.get("w_sched")
            torch.set_rng_state(state["torch_rng"])
        while s["stage"] < len(stages):
            active = stages[s["stage"]]
            n_ep = epochs[s["stage"]]
            opt, sched = self._optimizer(supernet, n_ep)
            if opt_state is not None:
                opt.load_state_dict(opt_state)
                sched.load_state_dict(sched_state)
                opt_state = sched_state = None
            # ---- supernet training (SPOS uniform single path over the active layers) ----
            with progress.bar(f"hurricane stage {s['stage'] + 1}", n_ep * len(train_loader)) as pbar:
                pbar.advance(s["epoch"] * len(train_loader))
                while s["epoch"] < n_ep and s["evo"] is None and not s.get("stopped"):
                    t0 = time.perf_counter()
                    stats = self._train_epoch(supernet, opt, train_loader, active, s, device, ctx, pbar)
                    sched.step()
                    s["train_s"][s["stage"]] += time.perf_counter() - t0
                    s["epoch"] += 1
                    rec = {"event": "epoch", "stage": s["stage"] + 1, "epoch": s["epoch"], **stats,
                           "searchable_layers": active}
                    s["history"].append(rec)
                    self._log(ctx, s, **rec)
                    self._save(ctx, supernet, opt, sched, s, selection)
            # ---- evolution under the latency constraint ----
            self._evolve(ctx, supernet, model, T, active, s, train_loader, val_loader, device, opt, sched, selection)
            scored = [e for e in s["evaluated"] if e["stage"] == s["stage"] + 1]
            if not scored:
                raise UserError(f"hurricane stage {s['stage'] + 1}: no candidate within the budget {T:.4g} ms could be "
                                "proposed; raise latency_ms/latency_frac")
            best = max(scored, key=lambda e: e["accuracy"])
            for i in active:
                s["fixed"][i] = best["arch"][i]
            s["stage_results"].append({"stage": s["stage"] + 1, "searched_layers": active, "epochs": n_ep,
                                       "epochs_run": sum(1 for h in s["history"] if h.get("event") == "epoch"
                                                         and h.get("stage") == s["stage"] + 1),
                                       "evaluated": len(scored),
                                       "best_arch": best["arch"], "best_accuracy": best["accuracy"],
                                       "latency_ms": best["latency_ms"], "supernet_train_s": s["train_s"][s["stage"]]})
            self._log(ctx, s, event="stage", **s["stage_results"][-1])
            # --seconds ran out: the later stages are skipped (their layers keep their starting ops)
            s.update(stage=len(stages) if s.get("stopped") else s["stage"] + 1, epoch=0, evo=None, evo_rng=None)
            self._save(ctx, supernet, None, None, s, selection)
        arch = list(s["fixed"])
        points = [{k: e[k] for k in ("arch", "accuracy", "latency_ms", "stage")} for e in s["evaluated"]]
        files = {}
        if ctx.run is not None:
            from ..hardware.pareto import write_pareto

            files = write_pareto(ctx.run.path, target, points, T, acc_label="supernet held-out accuracy")
        metrics = {
            "target": target, "budget_ms": T, "latency_metric": hp["latency_metric"],
            "latency_ms": model.predict(arch), "latency_calibrated_ms": model.calibrated(arch),
            "candidates": cands, "order": hp["order"], "stages": s["stage_results"],
            "supernet_train_s": sum(s["train_s"]), "evaluated": len(s["evaluated"]),
            "violations_rejected": s["rejected"],
            "evaluated_over_budget": sum(1 for e in s["evaluated"] if e["latency_ms"] > T + 1e-9),
            "pareto": files, "latency_source": getattr(model, "meta", {}).get("source"),
        }
        if s.get("stopped"):
            metrics["stopped"] = "seconds"
        if calibration is not None:
            metrics["calibration"] = {k: v for k, v in calibration.items() if k not in ("archs",)}
        from ..hardware.verify import verify_latency  # the hard constraint, checked on the device itself

        metrics["on_target"] = verify_latency(space, arch, target, T, model=model, tables=_tables_of(ctx))
        return SearchResult(arch=space.validate(arch), history=s["history"], metrics=metrics)

    def _optimizer(self, supernet: nn.Module, epochs: int):
        params = [p for p in supernet.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=self.hp["w_lr"], momentum=self.hp["w_momentum"],
                              weight_decay=self.hp["w_weight_decay"])
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: max(0.0, 1.0 - e / epochs))  # SPOS: linear decay
        return opt, sched

    def _train_epoch(self, supernet, opt, loader, active, s, device, ctx, pbar) -> dict[str, Any]:
        """One SPOS epoch; --seconds is checked after every step: at the deadline the epoch ends early
        (``partial``) and ``s["stopped"]`` is set (the caller checkpoints and goes on to the evolution)."""
        rng = random.Random(f"hurricane-path-{ctx.seed}-{s['stage']}-{s['epoch']}")
        loader.set_epoch(s["stage"] * 10_000 + s["epoch"])
        supernet.train()
        loss_sum = correct = seen = 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            arch = list(s["fixed"])
            for i in active:
                arch[i] = rng.choice(supernet.candidates[i])
            supernet.set_path(supernet.arch_to_path(arch))
            opt.zero_grad(set_to_none=True)
            logits = supernet(x)
            loss = F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                from ..training import check_finite

                check_finite(loss, "hurricane supernet training")
            loss.backward()
            if self.hp["grad_clip"]:
                nn.utils.clip_grad_norm_([p for p in supernet.parameters() if p.grad is not None], self.hp["grad_clip"])
            opt.step()
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            pbar.advance()
            if ctx.out_of_time():
                s["stopped"] = True
                return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen, "partial": True}
        return {"train_loss": loss_sum / seen, "train_accuracy": correct / seen}

    def _evolve(self, ctx, supernet, model, T, active, s, train_loader, val_loader, device, opt, sched, selection):
        hp = self.hp
        fixed = list(s["fixed"])
        cands = supernet.candidates
        stage_no = s["stage"] + 1

        def sample(rng: random.Random) -> list[str]:
            a = list(fixed)
            for i in active:
                a[i] = rng.choice(cands[i])
            return a

        def mutate(arch, rng: random.Random) -> list[str]:
            a = list(arch)
            movable = [i for i in active if len(cands[i]) > 1]
            if movable:
                i = rng.choice(movable)
                a[i] = rng.choice([o for o in cands[i] if o != a[i]])
            return a

        def crossover(a, b, rng: random.Random) -> list[str]:
            return [a[i] if (i not in active or rng.random() < 0.5) else b[i] for i in range(len(a))]

        def within(arch) -> bool:
            ok = self._lat(model, arch) <= T
            if not ok:
                s["rejected"] += 1
            return ok

        engine = RegularizedEvolution(sample, mutate, population_size=hp["population"], sample_size=hp["sample_size"],
                                      constraint=within, crossover=crossover, crossover_prob=hp["crossover_prob"],
                                      key=arch_key, max_attempts=5000)
        rng = random.Random(f"hurricane-evo-{ctx.seed}-{s['stage']}")
        if s["evo"] is not None:
            engine.load_state_dict(s["evo"])
            rng.setstate(_tuple_state(s["evo_rng"]))
        n_space = math.prod(len(cands[i]) for i in active)
        target_n = min(hp["evaluations"], n_space)
        done = sum(1 for e in s["evaluated"] if e["stage"] == stage_no)
        bn_batches = list(islice(_epoch(train_loader, _BN_EPOCH), hp["bn_batches"]))
        eval_batches = list(islice(_epoch(val_loader, _EVAL_EPOCH), hp["eval_batches"]))
        if done == 0 and self._lat(model, fixed) <= T:
            # the stage's starting point (the previous stage's winner, the rest on their defaults) is feasible by
            # construction: score it first, so a stage whose feasible region is tiny still has a result
            acc = score_candidate(supernet, supernet.arch_to_path(fixed), bn_batches, eval_batches, device)
            lat = self._lat(model, fixed)
            s["evaluated"].append({"stage": stage_no, "arch": list(fixed), "accuracy": acc, "latency_ms": lat})
            self._log(ctx, s, event="candidate", stage=stage_no, arch=list(fixed), accuracy=acc, latency_ms=lat)
            engine.tell([list(fixed)], [acc])
            done = 1
            s["evo"], s["evo_rng"] = engine.state_dict(), rng.getstate()
            self._save(ctx, supernet, opt, sched, s, selection)
        while done < target_n:
            if ctx.out_of_time():  # --seconds: checked before every candidate; the stage keeps what it scored
                s["stopped"] = True
                break
            archs = engine.ask(rng, min(hp["population"] // 2 or 1, target_n - done))
            if not archs:
                break
            fits = []
            for a in archs:
                if fits and ctx.out_of_time():
                    break
                acc = score_candidate(supernet, supernet.arch_to_path(a), bn_batches, eval_batches, device)
                lat = self._lat(model, a)
                s["evaluated"].append({"stage": stage_no, "arch": a, "accuracy": acc, "latency_ms": lat})
                self._log(ctx, s, event="candidate", stage=stage_no, arch=a, accuracy=acc, latency_ms=lat)
                fits.append(acc)
            engine.tell(archs[:len(fits)], fits)
            done += len(fits)
            s["evo"], s["evo_rng"] = engine.state_dict(), rng.getstate()
            self._save(ctx, supernet, opt, sched, s, selection)

    @staticmethod
    def _log(ctx, s, **record) -> None:
        s["seq"] = s.get("seq", 0) + 1
        ctx.log(seq=s["seq"], **record)

    def _save(self, ctx, supernet, opt, sched, s, selection) -> None:
        ctx.checkpoint({"kind": "hurricane", "s": s, "supernet": supernet.state_dict(), "selection": selection,
                        "w_opt": opt.state_dict() if opt is not None else None,
                        "w_sched": sched.state_dict() if sched is not None else None,
                        "torch_rng": torch.get_rng_state()})


def _tables_of(ctx: SearchContext):
    run = ctx.run
    if run is None:
        return None
    try:
        return run.config().get("tables")
    except Exception:
        return None


def _tuple_state(st):
    """random.Random state back from its JSON-ish (list) form."""
    if isinstance(st, list):
        return (st[0], tuple(st[1]), st[2])
    return st


def _epoch(loader, epoch: int):
    loader.set_epoch(epoch)
    return iter(loader)


def _bn_modules(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def score_candidate(supernet, path, bn_batches, eval_batches, device) -> float:
    """Held-out accuracy of one path after BN recalibration (SPOS): reset the running statistics, accumulate
    them (cumulative average) over `bn_batches` in train mode, score `eval_batches` in eval mode, then put the
    supernet's own BN buffers and momenta back. Returns a fraction in [0, 1]."""
    bns = _bn_modules(supernet)
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum) for m in bns]
    was_training = supernet.training
    supernet.set_path(path)
    try:
        if bn_batches:
            for m in bns:
                m.reset_running_stats()
                m.momentum = None
            supernet.train()
            for x, _ in bn_batches:
                supernet(x.to(device))
        supernet.eval()
        correct = total = 0
        for x, y in eval_batches:
            correct += int((supernet(x.to(device)).argmax(1) == y.to(device)).sum())
            total += len(y)
    finally:
        for m, (mean, var, n, mom) in zip(bns, saved):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(n)
            m.momentum = mom
        supernet.train(was_training)
    return correct / total


class _ConstrainedEvolution(Evolution):
    """The `evolution` strategy with a hard constraint: proposals that fail `constraint` are never evaluated,
    only counted (``rejected``)."""

    name = "hurricane"

    def __init__(self, constraint, **hparams: Any) -> None:
        super().__init__(**hparams)
        self._constraint = constraint
        self.rejected = 0

    def setup(self, ctx: SearchContext) -> None:
        super().setup(ctx)

        def within(arch) -> bool:
            ok = self._constraint(arch)
            if not ok:
                self.rejected += 1
            return ok

        self.engine.constraint = within

    def state(self) -> dict[str, Any]:
        return {**super().state(), "rejected": self.rejected}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rejected = int(state.pop("rejected", 0))
        super().load_state(state)

    def extra_metrics(self) -> dict[str, Any]:
        return {"violations_rejected": self.rejected}
