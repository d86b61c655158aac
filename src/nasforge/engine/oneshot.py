"""The supernet engine: the one loop every weight-sharing (one-shot) method runs on.

A method declares what is specific to its paper and the engine does the rest:

- ``build_supernet(ctx, restored)``: the supernet (default: the space's); ``phases(ctx)``: named training
  phases with their epochs (default one, ``search``; HURRICANE's two stages); ``optimizer_recipe(ctx)``:
  the weight optimiser as data (:class:`OptimizerRecipe`: SGD / Adam / AdamW, per-epoch or per-step
  schedule, warm-up, parameter groups by kind); ``step``: what happens on one batch (DARTS' alpha and
  weight steps, a sampled path, ViTAS' two views with CutMix); ``end_phase``: what ends a phase (a selection
  phase: :mod:`nasforge.engine.selection`); ``derive``: the final architecture.
- The engine owns the epoch loop, batch streams, per-epoch diagnostics, mixed precision (``step`` runs under
  autocast; gradients go through ``self.prec.scale(loss)`` and :meth:`OneShotStrategy.weight_step` /
  :meth:`OneShotStrategy.arch_step`, which average them over the processes of a torchrun job before the
  unscaled, clipped update), BatchNorm buffers kept identical across processes, ``--seconds`` (rank 0's
  clock, checked after every step and before every selection candidate), atomic checkpoints holding the
  device RNG state, and exact resume: records logged through :meth:`OneShotStrategy.log` carry a sequence
  number and a resumed run drops every record logged after its checkpoint, so each record is written
  exactly once however the run was interrupted.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import distributed, progress
from ..accel import Precision, apply_memory_format, rng_state, set_rng_state
from ..errors import ConfigError, choices_message
from ..options import Opt
from ..ops import is_parameter_free
from ..ops.params import groups_by_kind
from ..supernet import DERIVATION_RULES, Supernet, entropy
from ..supernet.hessian import dominant_eigenvalue
from ..training import check_finite
from ..utils import seed_everything
from .base import SearchContext, SearchResult, Strategy
from .scoring import preserved

WEIGHT_DEFAULTS: dict[str, Any] = {
    "w_lr": Opt(0.025, ">0"), "w_lr_min": Opt(0.001, ">=0"), "w_momentum": Opt(0.9, "[0, 1)"),
    "w_weight_decay": Opt(None, ">=0", type=float, help="null: the space's search default"),
    "w_nesterov": Opt(None, type=bool, help="null: the space's search default"),
    "grad_clip": Opt(5.0, ">0", nullable=True), "hessian_every": Opt(1, ">=0", help="epochs; 0 = never"),
    "hessian_iters": Opt(10, ">=1"), "eval_batches": Opt(10, ">=1"),
    "w_optimizer": Opt("sgd", choices=("sgd", "adam"), help="supernet weight optimiser (adam: binary networks)"),
}

#: the kinds of supernet a space can declare (``SearchSpace.supernet_kind``)
SUPERNET_KINDS = ("cell", "single-path", "super-transformer")


@dataclass(frozen=True)
class OptimizerRecipe:
    """A weight optimiser and its learning-rate schedule, declared as data.

    ``kind``: sgd | adam | adamw. ``schedule``: cosine (to ``lr_min``) | linear (to 0, SPOS) | constant,
    stepped once per ``per`` (epoch | step) after a linear ``warmup`` of that many epochs (converted to
    steps for a per-step schedule). ``by_kind``: parameter groups by parameter kind (no weight decay for
    norms, biases, tokens, position tables, stacked Q/K biases: `nasforge.ops.params`); otherwise one group,
    every parameter decayed (DARTS).
    """

    kind: str = "sgd"
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    per: str = "epoch"
    warmup: int = 0
    by_kind: bool = False

    def build(self, model: nn.Module, params: list[nn.Parameter], epochs: int, steps_per_epoch: int
              ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """(optimizer, scheduler) over `params` (of `model`) for a phase of `epochs` x `steps_per_epoch`."""
        groups: Any = groups_by_kind(model, self.weight_decay, params) if self.by_kind else params
        # foreach: the multi-tensor update on every device (torch picks the per-tensor loop on the CPU); the same
        # values bit for bit, 1.2-1.3x faster for Adam/AdamW over a supernet's ~100 tensors (issue 20)
        if self.kind == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum, foreach=True,
                                                         weight_decay=self.weight_decay, nesterov=self.nesterov)
        elif self.kind == "adam":
            opt = torch.optim.Adam(groups, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay, foreach=True)
        elif self.kind == "adamw":
            opt = torch.optim.AdamW(groups, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay,
                                    foreach=True)
        else:
            raise ConfigError(choices_message("optimizer", self.kind, ["adam", "adamw", "sgd"]))
        per_step = self.per == "step"
        total = epochs * steps_per_epoch if per_step else epochs
        warm = min(self.warmup * steps_per_epoch if per_step else self.warmup, max(0, total - 1))
        if self.schedule == "cosine" and not warm:  # DARTS: torch's recursive cosine, as before the engine
            return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=self.lr_min)
        floor = self.lr_min / self.lr

        def factor(i: int) -> float:
            if i < warm:
                return (i + 1) / warm
            t = min(1.0, (i - warm) / max(1, total - warm))
            if self.schedule == "cosine":
                return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
            if self.schedule == "linear":
                return max(0.0, 1.0 - t)
            return 1.0

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


class Phase(NamedTuple):
    """A named stretch of supernet training (`epochs` epochs), ended by the method's `end_phase`."""

    name: str
    epochs: int


class OneShotStrategy(Strategy):
    kind = "one-shot"
    defaults: ClassVar[dict[str, Any]] = dict(WEIGHT_DEFAULTS)
    #: which extra batch stream `step` needs: None, "val" (search-val half) or "train" (a second train stream)
    second_stream: ClassVar[str | None] = None
    #: the supernet kinds (``SearchSpace.supernet_kind``) this method searches; preflight refuses others
    supernet_kinds: ClassVar[tuple[str, ...]] = ("cell",)

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        # replaced in search() by the context's device and precision; fp32 on the CPU for direct step() calls
        self.prec = Precision(torch.device("cpu"), "fp32")  # host: default until search() sets ctx.device
        self.step_index = 0  # steps trained so far in the whole search (all phases), set before every step()
        rule = self.hp.get("derive", "default")
        if rule not in DERIVATION_RULES:  # before a run directory exists
            raise ConfigError(choices_message(f"{self.name} derive rule", str(rule), list(DERIVATION_RULES)))

    # -- hooks for subclasses ---------------------------------------------------------------
    def build_supernet(self, ctx: SearchContext, restored: dict[str, Any] | None) -> nn.Module:
        """The supernet to train (on the CPU; the engine moves it). `restored`: the strategy state of the
        checkpoint being resumed, or None (a method that picks its supernet's candidates reads them there)."""
        return ctx.space.supernet()

    def phases(self, ctx: SearchContext) -> list[Phase]:
        """The training phases; default one phase, ``search``, of the budget's epochs."""
        return [Phase("search", ctx.budget.epochs)]

    def optimizer_recipe(self, ctx: SearchContext) -> OptimizerRecipe:
        """The weight optimiser: by default SGD (or Adam with ``w_optimizer=adam``) with cosine per epoch,
        weight decay and Nesterov from the space's `search_optimizer` unless the hyperparameters set them."""
        space_opt = ctx.space.search_optimizer
        wd = self.hp["w_weight_decay"] if self.hp["w_weight_decay"] is not None else space_opt["weight_decay"]
        nesterov = self.hp["w_nesterov"] if self.hp["w_nesterov"] is not None else space_opt["nesterov"]
        kind = self.hp["w_optimizer"]
        if kind == "adam":  # the common choice for binary networks (BATS spec 2.5); torch's default betas
            return OptimizerRecipe("adam", lr=self.hp["w_lr"], lr_min=self.hp["w_lr_min"], weight_decay=wd)
        return OptimizerRecipe(kind, lr=self.hp["w_lr"], lr_min=self.hp["w_lr_min"],
                               momentum=self.hp["w_momentum"], nesterov=nesterov, weight_decay=wd)

    def weight_parameters(self, supernet: nn.Module) -> list[nn.Parameter]:
        """The parameters the weight optimiser trains (a `Supernet`: every parameter but the alphas)."""
        if isinstance(supernet, Supernet):
            return supernet.weight_parameters()
        return [p for p in supernet.parameters() if p.requires_grad]

    def loaders(self, ctx: SearchContext):
        """(search-train loader, search-val loader); a method that augments inside `step` turns the loader's
        augmentation off here."""
        return ctx.data.loaders(ctx.seed)

    def setup(self, supernet: Supernet, ctx: SearchContext) -> None:
        """Create arch optimisers / agents."""

    def on_phase_start(self, supernet: nn.Module, phase: int, ctx: SearchContext) -> None:
        """Called before the first epoch of phase `phase` (0-based), also when a resume lands in it."""

    def step(self, supernet: Supernet, batch: tuple[torch.Tensor, torch.Tensor],
             second: tuple[torch.Tensor, torch.Tensor] | None, ctx: SearchContext) -> dict[str, float]:
        raise NotImplementedError

    def end_phase(self, supernet: nn.Module, phase: int, ctx: SearchContext,
                  selection: dict[str, Any] | None) -> None:
        """Called when phase `phase` has trained its epochs (or --seconds ended it): e.g. a selection phase
        (:mod:`nasforge.engine.selection`) that fixes some choices. `selection` is the state it saved
        through :meth:`save_selection` before an interruption, or None. Default: nothing."""

    def derive(self, supernet: Supernet, ctx: SearchContext) -> Any:
        """The architecture of the current alphas by the supernet's rule (hyperparameter ``derive``, where the
        strategy has it: "default", "no-none" or "connected"; see Supernet.derive)."""
        rule = self.hp.get("derive", "default")
        return supernet.derive() if rule == "default" else supernet.derive(rule=rule)

    def derivations(self, supernet: Supernet, ctx: SearchContext) -> dict[str, Any]:
        """The final architecture under every derivation rule (same supernet, same alphas), for reporting
        the rules side by side; the search's result follows the ``derive`` hyperparameter."""
        chosen = self.hp["derive"]
        out: dict[str, Any] = {}
        try:
            for rule in DERIVATION_RULES:
                self.hp["derive"] = rule
                out[rule] = ctx.space.validate(self.derive(supernet, ctx))
        finally:
            self.hp["derive"] = chosen
        return out

    def final_metrics(self, supernet: nn.Module, arch: Any, ctx: SearchContext) -> dict[str, Any]:
        """Method-specific entries of the search result's metrics."""
        return {}

    def strategy_state(self) -> dict[str, Any]:
        return {}

    def load_strategy_state(self, state: dict[str, Any]) -> None:
        pass

    def epoch_diagnostics(self, supernet: Supernet, ctx: SearchContext, val_batch) -> dict[str, Any]:
        return {}

    def on_epoch_start(self, supernet: Supernet, epoch: int, epochs: int, ctx: SearchContext) -> None:
        """Called before every epoch (0-based `epoch` of the phase's `epochs`), also after a resume:
        per-epoch schedules go here."""

    # -- shared machinery -----------------------------------------------------------------
    def weight_step(self, supernet: nn.Module, loss: torch.Tensor | None = None) -> None:
        """Step the weight optimiser on the gradients in ``p.grad`` (from ``self.prec.scale(loss).backward()``):
        average over processes, unscale (fp16), clip to ``grad_clip``, step (skipped on fp16 overflow)."""
        distributed.average_grads(self.w_params)
        self.prec.unscale_(self.w_opt)
        if self.hp["grad_clip"]:
            nn.utils.clip_grad_norm_(self.w_params, self.hp["grad_clip"], foreach=True)  # same values as the loop
        self.prec.step(self.w_opt)

    def arch_step(self, optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
        """Step an architecture optimiser on the (scaled) gradients of `params`: average them over processes,
        then unscale and step (skipped on fp16 overflow). Use it for every optimiser but the weights'."""
        distributed.average_grads(params)
        self.prec.step(optimizer)

    def log(self, ctx: SearchContext, **record: Any) -> None:
        """Log a record to metrics.jsonl with the next sequence number; a resume drops the records numbered
        after its checkpoint (they are logged again), so each record appears exactly once."""
        self._seq += 1
        ctx.log(seq=self._seq, **record)

    def save_selection(self, ctx: SearchContext, selection: dict[str, Any]) -> None:
        """Checkpoint the current phase's end mid-way (a selection phase's state); a resume hands
        `selection` back to `end_phase`."""
        self._selection = selection
        self._checkpoint(ctx)

    def _make_weight_optimizer(self, supernet: nn.Module, ctx: SearchContext, epochs: int, steps: int = 1) -> None:
        self.recipe = self.optimizer_recipe(ctx)
        self.w_params = self.weight_parameters(supernet)
        self.w_opt, self.w_sched = self.recipe.build(supernet, self.w_params, epochs, steps)

    def _check_space(self, space) -> None:
        kind = space.supernet_kind
        if kind not in self.supernet_kinds:
            what = f"a {kind} supernet" if kind else "no supernet"
            raise ConfigError(f"strategy '{self.name}' trains a {' or '.join(self.supernet_kinds)} supernet; space "
                              f"'{space.name}' declares {what} ({space.supernet_hint})")

    def preflight(self, space, cfg: dict[str, Any]) -> None:
        """Refuse a space whose declared supernet kind this method cannot train, before a run directory exists."""
        super().preflight(space, cfg)
        self._check_space(space)

    def _checkpoint(self, ctx: SearchContext) -> None:
        ctx.checkpoint({"kind": "one-shot", "phase": self._phase, "epoch": self._phase_epoch,
                        "supernet": self._supernet.state_dict(),
                        "w_opt": self.w_opt.state_dict(), "w_sched": self.w_sched.state_dict(),
                        "strategy": self.strategy_state(), "rng": rng_state(ctx.device),
                        "scaler": self.prec.state_dict(), "device": str(ctx.device), "history": self._history,
                        "stopped": self._stopped, "selection": self._selection, "phase_done": self._phase_done,
                        "seq": self._seq, "step_index": self.step_index})

    def search(self, ctx: SearchContext) -> SearchResult:
        if ctx.data is None:
            raise ConfigError(f"strategy '{self.name}' trains a supernet and needs a dataset")
        self._check_space(ctx.space)
        seed_everything(ctx.seed)
        self.prec = Precision(ctx.device, ctx.precision)
        state = ctx.restore()
        if state is not None and state.get("kind") != "one-shot":
            state = None
        self._history: list[dict[str, Any]] = []
        self._phase, self._phase_epoch, self._stopped, self._phase_done, self._seq = 0, 0, False, False, 0
        self._selection: dict[str, Any] | None = None
        self.step_index = 0
        if state is not None and ctx.run is not None:  # each record exactly once: drop those after the checkpoint
            self._seq = last = state.get("seq", 0)
            legacy_epoch = state["epoch"] if not state.get("phase") else -1
            ctx.run.truncate_metrics(lambda m: m["seq"] <= last if "seq" in m
                                     else (m.get("event") != "epoch" or m.get("epoch", 0) <= legacy_epoch))
        supernet = self.build_supernet(ctx, state["strategy"] if state is not None else None).to(ctx.device)
        # the space's declared format (weights and activations); never torch.compile here: every path switch of
        # a weight-sharing supernet would recompile
        apply_memory_format(supernet, ctx.memory_format)
        phases = self.phases(ctx)
        if not phases or any(not ph.epochs or ph.epochs < 1 for ph in phases):
            raise ConfigError(f"strategy '{self.name}' needs an epoch budget (--epochs N)")
        if ctx.sync_bn and distributed.active():
            distributed.convert_sync_batchnorm(supernet)
        distributed.broadcast_module(supernet)  # identical start on every rank (the seed makes it so already)
        self._supernet = supernet
        train_loader, val_loader = self.loaders_ = self.loaders(ctx)
        steps = len(train_loader)
        self._make_weight_optimizer(supernet, ctx, phases[0].epochs, steps)
        self.setup(supernet, ctx)
        if self.second_stream == "val":
            second_loader = val_loader
        elif self.second_stream == "train":
            second_loader = ctx.data.loader(ctx.data.train, ctx.seed + 104729)
        else:
            second_loader = None
        if state is not None:
            self._phase, self._phase_epoch = state.get("phase", 0), state["epoch"]
            if self._phase > 0:  # the optimiser of the phase the checkpoint is in
                self._make_weight_optimizer(supernet, ctx, phases[self._phase].epochs, steps)
            supernet.load_state_dict(state["supernet"])
            self.w_opt.load_state_dict(state["w_opt"])
            self.w_sched.load_state_dict(state["w_sched"])
            self.load_strategy_state(state["strategy"])
            self.prec.load_state_dict(state.get("scaler"))
            set_rng_state(state["rng"], ctx.device)
            self._history = state["history"]
            self._stopped = bool(state.get("stopped"))  # --seconds ended the training: a resume only selects
            self._phase_done, self._selection = bool(state.get("phase_done")), state.get("selection")
            self.step_index = state.get("step_index", self._phase_epoch * steps)
        total = sum(p.epochs for p in phases) * steps
        with progress.bar(f"{self.name}", total) as pbar:
            pbar.advance(min(total, self.step_index))
            while self._phase < len(phases):
                pi, name, epochs = self._phase, *phases[self._phase]
                self.on_phase_start(supernet, pi, ctx)
                while self._phase_epoch < epochs and not self._stopped and not self._phase_done:
                    self._train_epoch(supernet, ctx, phases, train_loader, val_loader, second_loader, pbar)
                self._phase_done = True
                self.end_phase(supernet, pi, ctx, self._selection)
                if self._stopped or pi + 1 >= len(phases):  # --seconds: later phases are skipped
                    if type(self).end_phase is not OneShotStrategy.end_phase:
                        self._checkpoint(ctx)  # the phase's end is part of the resumable state
                    break
                self._phase, self._phase_epoch, self._phase_done, self._selection = pi + 1, 0, False, None
                self._make_weight_optimizer(supernet, ctx, phases[pi + 1].epochs, steps)
                self._checkpoint(ctx)
        return self._result(supernet, ctx)

    def search_step(self, supernet: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
                    second: tuple[torch.Tensor, torch.Tensor] | None, ctx: SearchContext) -> dict[str, float]:
        """One training step exactly as the search loop runs it: the method's `step` under autocast, then the
        gradient scaler's update, the per-step learning-rate schedule and the step counter. Returns the
        step's statistics. benchmarks/step_speed.py times this call."""
        with self.prec.autocast():
            stats = self.step(supernet, batch, second, ctx)
        self.prec.update()
        if self.recipe.per == "step":
            self.w_sched.step()
        self.step_index += 1
        return stats

    def _train_epoch(self, supernet, ctx, phases, train_loader, val_loader, second_loader, pbar) -> None:
        pi, epoch = self._phase, self._phase_epoch
        name, epochs = phases[pi]
        steps = len(train_loader)
        t0 = time.perf_counter()
        self.on_epoch_start(supernet, epoch, epochs, ctx)
        key = pi * 10_000 + epoch  # loader epoch: distinct for every (phase, epoch)
        train_loader.set_epoch(key)
        second_iter = self._stream(second_loader, key)
        supernet.train()
        sums: dict[str, float] = {}
        seen = 0
        out_of_time, done_steps = False, 0
        for x, y in train_loader:
            second = next(second_iter) if second_iter is not None else None
            stats = self.search_step(supernet, (x, y), second, ctx)
            if not ctx.sync_bn:  # as DDP's broadcast_buffers: every rank keeps rank 0's BN statistics
                distributed.broadcast_module(supernet, buffers_only=True)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v * len(y)
            seen += len(y)
            done_steps += 1
            pbar.advance()
            # --seconds is checked every step (rank 0's clock decides): stop mid-epoch, with a checkpoint
            if ctx.budget.seconds is not None and distributed.broadcast_bool(ctx.out_of_time()):
                out_of_time = True
                break
        if self.recipe.per != "step":
            self.w_sched.step()
        keys = sorted(sums)
        *totals, seen = distributed.sum_floats(*(sums[k] for k in keys), seen)
        sums = dict(zip(keys, totals))
        record: dict[str, Any] = {"event": "epoch", "epoch": epoch + 1,
                                  "images_per_s": seen / (time.perf_counter() - t0),
                                  **{k: v / seen for k, v in sums.items()}}
        if len(phases) > 1:
            record["phase"] = name
        if out_of_time:
            record["partial"] = done_steps < steps  # the time budget ended the epoch early
        record.update(self._diagnostics(supernet, ctx, val_loader, epoch))
        self._history.append(record)
        self.log(ctx, **record)
        self._phase_epoch = epoch + 1
        self._stopped = out_of_time or distributed.broadcast_bool(ctx.out_of_time())  # rank 0's clock decides
        self._checkpoint(ctx)

    def _result(self, supernet: nn.Module, ctx: SearchContext) -> SearchResult:
        arch = ctx.space.validate(self.derive(supernet, ctx))
        metrics: dict[str, Any] = {"epochs_run": len(self._history)}
        if self._stopped:
            metrics["stopped"] = "seconds"
        if "derive" in self.hp:
            metrics["derived_by_rule"] = self.derivations(supernet, ctx)
        metrics.update(self.final_metrics(supernet, arch, ctx))
        if distributed.active():  # every rank must end with the same weights, alphas, strategy state and arch
            metrics["data_parallel"] = distributed.consistency(supernet, arch, self.strategy_state())
            if not metrics["data_parallel"]["ranks_identical"]:
                warnings.warn("data-parallel ranks ended with different supernet/strategy states: "
                              f"{metrics['data_parallel']['digests']}", stacklevel=2)
        if ctx.space.is_degenerate(arch):
            metrics["degenerate"] = True
            progress.warn(f"the derived architecture {arch} has no input-to-output path without `none`: "
                          "the network predicts a constant (see the run's alpha_softmax history)")
        return SearchResult(arch=arch, history=self._history, metrics=metrics)

    @staticmethod
    def _stream(loader, epoch: int) -> Iterator | None:
        if loader is None:
            return None

        def gen():
            e = epoch * 1000  # distinct epochs of the second stream, independent of its length
            while True:
                loader.set_epoch(e)
                yield from loader
                e += 1

        return gen()

    def _diagnostics(self, supernet: Supernet, ctx: SearchContext, val_loader, epoch: int) -> dict[str, Any]:
        """Collapse diagnostics: op distributions, entropies, parameter-free count, Hessian eigenvalue, accuracy."""
        probs = supernet.probabilities()
        arch = ctx.space.validate(self.derive(supernet, ctx))
        out: dict[str, Any] = {
            "arch": arch,
            "alpha_softmax": {g: p.tolist() for g, p in probs.items()},
            "op_names": list(supernet.op_names),  # the columns of alpha_softmax (for reports)
            "edge_entropy": {g: entropy(p).tolist() for g, p in probs.items()},
            "mean_entropy": float(torch.cat([entropy(p) for p in probs.values()]).mean()),
            "parameter_free_ops": ctx.space.parameter_free_count(arch),
        }
        degenerate = ctx.space.is_degenerate(arch)  # `none` cut every input-to-output path: a constant
        if degenerate is not None:
            out["degenerate"] = degenerate
        if "skip_connect" in supernet.op_names:
            k = supernet.op_names.index("skip_connect")
            out["mean_skip_weight"] = float(torch.cat([p[:, k] for p in probs.values()]).mean())
        val_loader.set_epoch(10_000 + epoch)
        batches = []
        for i, b in enumerate(val_loader):
            if i >= self.hp["eval_batches"]:
                break
            batches.append(b)
        supernet.eval()
        with torch.no_grad():
            correct = sum((supernet(x).argmax(1) == y).sum().item() for x, y in batches)
        correct, total = distributed.sum_floats(correct, sum(len(y) for _, y in batches))
        out["supernet_val_accuracy"] = correct / total
        supernet.train()
        he = self.hp["hessian_every"]
        if he and (epoch + 1) % he == 0 and supernet.path is None and batches:
            # A diagnostic must not change the model: BN buffers are restored afterwards (the forward pass runs
            # in train mode, as the search's loss does), and every rank computes it on the same global batch
            # with local BN statistics, so no rank diverges and no all_reduce enters the double backward.
            x, y = distributed.gather_batch(*batches[0])
            g = torch.Generator(device="cpu").manual_seed(ctx.seed + epoch)  # host: the same probe on every device
            with preserved(supernet), distributed.local_batchnorm():
                supernet.train()
                out["hessian_eigenvalue"] = dominant_eigenvalue(lambda: F.cross_entropy(supernet(x), y),
                                                                supernet.arch_parameters(),
                                                                iters=self.hp["hessian_iters"], generator=g)
        if ctx.table is not None:  # set only for a space with a published table (SearchSpace.table)
            out["table"] = ctx.table.record(arch)
        out.update(self.epoch_diagnostics(supernet, ctx, batches[0] if batches else None))
        return out


def check_loss(loss: torch.Tensor, where: str) -> None:
    check_finite(loss, where)


def is_free(op: str) -> bool:
    return is_parameter_free(op)
