"""Shared loop of every weight-sharing (one-shot) strategy.

A one-shot strategy only says what happens on one step (`step`) and how the final architecture is chosen
(`derive`); this base class owns the supernet, the weight optimiser (SGD + cosine, as DARTS), the batch
streams, per-epoch diagnostics, atomic checkpoints and exact resume.

Devices, precision and data parallelism are handled here too, so every method inherits them: the supernet
lives on ``ctx.device``; ``step`` runs under autocast (``ctx.precision``; architecture parameters stay fp32);
a step computes gradients through ``self.prec.scale(loss)`` and steps optimisers through
:meth:`OneShotStrategy.weight_step` / :meth:`OneShotStrategy.arch_step`, which average gradients over the
processes of a torchrun job (nasforge.distributed) before the (unscaled, clipped) update, so every rank holds
identical weights and architecture parameters.
"""
from __future__ import annotations

import time
from typing import Any, ClassVar, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import distributed, progress
from ..accel import Precision, rng_state, set_rng_state
from ..errors import ConfigError, choices_message
from ..options import Opt
from ..ops import is_parameter_free
from ..supernet import DERIVATION_RULES, Supernet, entropy
from ..supernet.hessian import dominant_eigenvalue
from ..training import check_finite
from ..utils import seed_everything
from .base import SearchContext, SearchResult, Strategy

WEIGHT_DEFAULTS: dict[str, Any] = {
    "w_lr": Opt(0.025, ">0"), "w_lr_min": Opt(0.001, ">=0"), "w_momentum": Opt(0.9, "[0, 1)"),
    "w_weight_decay": Opt(None, ">=0", type=float, help="null: the space's search default"),
    "w_nesterov": Opt(None, type=bool, help="null: the space's search default"),
    "grad_clip": Opt(5.0, ">0", nullable=True), "hessian_every": Opt(1, ">=0", help="epochs; 0 = never"),
    "hessian_iters": Opt(10, ">=1"), "eval_batches": Opt(10, ">=1"),
    "w_optimizer": Opt("sgd", choices=("sgd", "adam"), help="supernet weight optimiser (adam: binary networks)"),
}


class OneShotStrategy(Strategy):
    kind = "one-shot"
    defaults: ClassVar[dict[str, Any]] = dict(WEIGHT_DEFAULTS)
    #: which extra batch stream `step` needs: None, "val" (search-val half) or "train" (a second train stream)
    second_stream: ClassVar[str | None] = None

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)
        # replaced in search() by the context's device and precision; fp32 on the CPU for direct step() calls
        self.prec = Precision(torch.device("cpu"), "fp32")  # host: default until search() sets ctx.device
        rule = self.hp.get("derive", "default")
        if rule not in DERIVATION_RULES:  # before a run directory exists
            raise ConfigError(choices_message(f"{self.name} derive rule", str(rule), list(DERIVATION_RULES)))

    # -- hooks for subclasses ---------------------------------------------------------------
    def setup(self, supernet: Supernet, ctx: SearchContext) -> None:
        """Create arch optimisers / agents."""

    def step(self, supernet: Supernet, batch: tuple[torch.Tensor, torch.Tensor],
             second: tuple[torch.Tensor, torch.Tensor] | None, ctx: SearchContext) -> dict[str, float]:
        raise NotImplementedError

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

    def strategy_state(self) -> dict[str, Any]:
        return {}

    def load_strategy_state(self, state: dict[str, Any]) -> None:
        pass

    def epoch_diagnostics(self, supernet: Supernet, ctx: SearchContext, val_batch) -> dict[str, Any]:
        return {}

    def on_epoch_start(self, supernet: Supernet, epoch: int, epochs: int, ctx: SearchContext) -> None:
        """Called before every epoch (0-based `epoch`), also after a resume: per-epoch schedules go here."""

    # -- shared machinery -----------------------------------------------------------------
    def weight_step(self, supernet: Supernet, loss: torch.Tensor | None = None) -> None:
        """Step the weight optimiser on the gradients in ``p.grad`` (from ``self.prec.scale(loss).backward()``):
        average over processes, unscale (fp16), clip to ``grad_clip``, step (skipped on fp16 overflow)."""
        distributed.average_grads(self.w_params)
        self.prec.unscale_(self.w_opt)
        if self.hp["grad_clip"]:
            nn.utils.clip_grad_norm_(self.w_params, self.hp["grad_clip"])
        self.prec.step(self.w_opt)

    def arch_step(self, optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
        """Step an architecture optimiser on the (scaled) gradients of `params`: average them over processes,
        then unscale and step (skipped on fp16 overflow). Use it for every optimiser but the weights'."""
        distributed.average_grads(params)
        self.prec.step(optimizer)

    def _make_weight_optimizer(self, supernet: Supernet, ctx: SearchContext, epochs: int) -> None:
        space_opt = ctx.space.search_optimizer  # the space's own recipe unless the strategy's hparams say otherwise
        wd = self.hp["w_weight_decay"] if self.hp["w_weight_decay"] is not None else space_opt["weight_decay"]
        nesterov = self.hp["w_nesterov"] if self.hp["w_nesterov"] is not None else space_opt["nesterov"]
        self.w_params = supernet.weight_parameters()
        if self.hp["w_optimizer"] == "adam":  # the common choice for binary networks (BATS spec 2.5)
            self.w_opt: torch.optim.Optimizer = torch.optim.Adam(self.w_params, lr=self.hp["w_lr"], weight_decay=wd)
        elif self.hp["w_optimizer"] == "sgd":
            self.w_opt = torch.optim.SGD(self.w_params, lr=self.hp["w_lr"], momentum=self.hp["w_momentum"],
                                         weight_decay=wd, nesterov=nesterov)
        else:
            raise ConfigError(f"unknown w_optimizer '{self.hp['w_optimizer']}'; choose from: adam, sgd")
        self.w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_opt, T_max=epochs, eta_min=self.hp["w_lr_min"])

    def _check_space(self, space) -> None:
        if not space.supports_weight_sharing:
            hint = getattr(space, "weight_sharing_hint", "use random, evolution or pnas")
            raise ConfigError(f"strategy '{self.name}' needs a cell weight-sharing space; '{space.name}' has none "
                              f"({hint})")

    def preflight(self, space, cfg: dict[str, Any]) -> None:
        """Refuse a space without a cell supernet before a run directory exists."""
        super().preflight(space, cfg)
        self._check_space(space)

    def search(self, ctx: SearchContext) -> SearchResult:
        if ctx.data is None:
            raise ConfigError(f"strategy '{self.name}' trains a supernet and needs a dataset")
        if not ctx.budget.epochs:
            raise ConfigError(f"strategy '{self.name}' needs an epoch budget (--epochs N)")
        self._check_space(ctx.space)
        epochs = ctx.budget.epochs
        seed_everything(ctx.seed)
        self.prec = Precision(ctx.device, ctx.precision)
        supernet = ctx.space.supernet().to(ctx.device)
        if ctx.sync_bn and distributed.active():
            distributed.convert_sync_batchnorm(supernet)
        distributed.broadcast_module(supernet)  # identical start on every rank (the seed makes it so already)
        self._make_weight_optimizer(supernet, ctx, epochs)
        self.setup(supernet, ctx)
        train_loader, val_loader = ctx.data.loaders(ctx.seed)
        second_loader = None
        if self.second_stream == "val":
            second_loader = val_loader
        elif self.second_stream == "train":
            second_loader = ctx.data.loader(ctx.data.train, ctx.seed + 104729)
        history: list[dict[str, Any]] = []
        start_epoch, stopped = 0, False
        state = ctx.restore()
        if state is not None and state.get("kind") == "one-shot":
            supernet.load_state_dict(state["supernet"])
            self.w_opt.load_state_dict(state["w_opt"])
            self.w_sched.load_state_dict(state["w_sched"])
            self.load_strategy_state(state["strategy"])
            self.prec.load_state_dict(state.get("scaler"))
            set_rng_state(state["rng"], ctx.device)
            start_epoch, history = state["epoch"], state["history"]
            stopped = bool(state.get("stopped"))  # --seconds ended the training: a resume only derives
            if ctx.run is not None:
                ctx.run.truncate_metrics(lambda m: m.get("event") != "epoch" or m.get("epoch", 0) <= start_epoch)
        steps = len(train_loader)
        with progress.bar(f"{self.name}", epochs * steps) as pbar:
            pbar.advance(start_epoch * steps)
            for epoch in range(start_epoch, start_epoch if stopped else epochs):
                t0 = time.perf_counter()
                self.on_epoch_start(supernet, epoch, epochs, ctx)
                train_loader.set_epoch(epoch)
                second_iter = self._stream(second_loader, epoch)
                supernet.train()
                sums: dict[str, float] = {}
                seen = 0
                out_of_time, done_steps = False, 0
                for x, y in train_loader:
                    second = next(second_iter) if second_iter is not None else None
                    with self.prec.autocast():
                        stats = self.step(supernet, (x, y), second, ctx)
                    self.prec.update()
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
                self.w_sched.step()
                keys = sorted(sums)
                *totals, seen = distributed.sum_floats(*(sums[k] for k in keys), seen)
                sums = dict(zip(keys, totals))
                record: dict[str, Any] = {"event": "epoch", "epoch": epoch + 1,
                                          "images_per_s": seen / (time.perf_counter() - t0),
                                          **{k: v / seen for k, v in sums.items()}}
                if out_of_time:
                    record["partial"] = done_steps < steps  # the time budget ended the epoch early
                record.update(self._diagnostics(supernet, ctx, val_loader, epoch))
                history.append(record)
                ctx.log(**record)
                stopped = out_of_time or distributed.broadcast_bool(ctx.out_of_time())  # rank 0's clock decides
                ctx.checkpoint({"kind": "one-shot", "epoch": epoch + 1, "supernet": supernet.state_dict(),
                                "w_opt": self.w_opt.state_dict(), "w_sched": self.w_sched.state_dict(),
                                "strategy": self.strategy_state(), "rng": rng_state(ctx.device),
                                "scaler": self.prec.state_dict(), "device": str(ctx.device), "history": history,
                                "stopped": stopped})
                if stopped:
                    break
        arch = ctx.space.validate(self.derive(supernet, ctx))
        metrics: dict[str, Any] = {"epochs_run": len(history)}
        if stopped:
            metrics["stopped"] = "seconds"
        if "derive" in self.hp:
            metrics["derived_by_rule"] = self.derivations(supernet, ctx)
        if distributed.active():  # every rank must end with the same weights, alphas, strategy state and arch
            metrics["data_parallel"] = distributed.consistency(supernet, arch, self.strategy_state())
            if not metrics["data_parallel"]["ranks_identical"]:
                warnings.warn("data-parallel ranks ended with different supernet/strategy states: "
                              f"{metrics['data_parallel']['digests']}", stacklevel=2)
        if hasattr(ctx.space, "is_degenerate") and ctx.space.is_degenerate(arch):
            metrics["degenerate"] = True
            progress.warn(f"the derived architecture {arch} has no input-to-output path without `none`: "
                          "the network predicts a constant (see the run's alpha_softmax history)")
        return SearchResult(arch=arch, history=history, metrics=metrics)

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
            "parameter_free_ops": ctx.space.parameter_free_count(arch) if hasattr(ctx.space, "parameter_free_count") else None,
        }
        if hasattr(ctx.space, "is_degenerate"):  # `none` cut every input-to-output path: collapse to a constant
            out["degenerate"] = ctx.space.is_degenerate(arch)
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
            x, y = batches[0]
            g = torch.Generator(device="cpu").manual_seed(ctx.seed + epoch)  # host: the same probe on every device
            out["hessian_eigenvalue"] = dominant_eigenvalue(lambda: F.cross_entropy(supernet(x), y),
                                                            supernet.arch_parameters(), iters=self.hp["hessian_iters"],
                                                            generator=g)
        if ctx.table is not None:  # set only for a space with a published table (SearchSpace.table)
            out["table"] = ctx.table.record(arch)
        out.update(self.epoch_diagnostics(supernet, ctx, batches[0] if batches else None))
        return out


def check_loss(loss: torch.Tensor, where: str) -> None:
    check_finite(loss, where)


def is_free(op: str) -> bool:
    return is_parameter_free(op)
