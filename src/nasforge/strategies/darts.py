"""Differentiable search: bi-level DARTS (first and second order) and Single-DARTS (single-level).

The two methods differ only in which batch the architecture gradient comes from and whether the weights
are unrolled, so both are small `OneShotStrategy` subclasses:

- `darts`: alpha steps on a search-val batch (Adam), then w steps on a search-train batch (SGD); with
  ``order=2`` the alpha gradient is taken at the virtual weights w' = w - xi * dL_train/dw and corrected by
  a finite-difference Hessian-vector product (Liu et al. 2019, eq. 7-8).
- `single-darts`: one loss on one batch, both optimisers step on its gradients (Hou et al. 2021).
  ``alpha_batch="other"`` is the two-batch ablation: alpha sees a *different* training batch.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F

from ..options import Opt
from .. import distributed
from ..errors import ConfigError
from ..registry import STRATEGIES
from ..supernet import Supernet
from ..engine.base import SearchContext
from ..engine.oneshot import WEIGHT_DEFAULTS, OneShotStrategy, check_loss

ARCH_DEFAULTS: dict[str, Any] = {"arch_lr": Opt(3e-4, ">0"), "arch_betas": Opt((0.5, 0.999), "[0, 1)"),
                                 "arch_weight_decay": Opt(1e-3, ">=0"), "temperature": Opt(1.0, ">0"),
                                 "activation": Opt("softmax", choices=("softmax", "sigmoid")),
                                 "arch_warmup": Opt(0, ">=0", help="epochs of weight-only training before the alphas "
                                                    "start to step (PC-DARTS' warm-up); 0: from the first step"),
                                 "derive": "default"}


#: DARTS' reference alpha travel: Adam lr 3e-4 x 50 epochs x 391 steps (CIFAR-10, 25k images, batch 64; spec 1.2)
REFERENCE_ALPHA_TRAVEL = 3e-4 * 50 * 391


def arch_lr_for(steps: int) -> float:
    """The alpha-travel rule: Adam's arch learning rate for a search of `steps` alpha steps. Adam moves each
    alpha by at most about lr per step whatever the gradient's scale, so DARTS' recipe (lr 3e-4 over 19,550
    steps) allows a total travel of ~5.87 per alpha; a shorter search keeps that travel: lr = 5.865 / steps,
    never below the reference 3e-4 (docs/leaderboard.md, "The default job")."""
    return max(3e-4, REFERENCE_ALPHA_TRAVEL / max(1, steps))


def alpha_grads(loss: torch.Tensor, alphas: list[torch.Tensor], **kwargs: Any) -> tuple[torch.Tensor | None, ...]:
    """d loss / d alpha for each alpha group; None for a group no cell uses (a DARTS supernet with layers < 3
    has reduction cells only, so its `normal` alphas take no part in the loss)."""
    return torch.autograd.grad(loss, alphas, allow_unused=True, **kwargs)


def set_alpha_grads(alphas: list[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> None:
    """alpha.grad = grad for each group; a None gradient (unused group) stays None, so the optimiser skips it."""
    for a, g in zip(alphas, grads):
        a.grad = g


class _Differentiable(OneShotStrategy):
    defaults: ClassVar[dict[str, Any]] = {**WEIGHT_DEFAULTS, **ARCH_DEFAULTS}

    def preflight(self, space, cfg: dict[str, Any]) -> None:
        """Also refuse a supernet some of whose alphas no forward pass uses (they would get no gradient), e.g.
        DARTS cells with layers < 3: the space says why (``unused_alpha_groups``)."""
        super().preflight(space, cfg)
        why = space.unused_alpha_groups()
        if why:
            raise ConfigError(f"strategy '{self.name}' learns every alpha by gradient, but {why}")
        epochs = (cfg.get("budget") or {}).get("epochs")
        if epochs is not None and self.hp["arch_warmup"] >= epochs:
            raise ConfigError(f"{self.name} arch_warmup={self.hp['arch_warmup']} warms the weights up for the whole "
                              f"{epochs}-epoch search: the alphas would never step (use fewer warm-up epochs)")

    def setup(self, supernet: Supernet, ctx: SearchContext) -> None:
        supernet.temperature = float(self.hp["temperature"])
        supernet.activation = self.hp["activation"]
        self.alphas = supernet.arch_parameters()
        self.a_opt = torch.optim.Adam(self.alphas, lr=self.hp["arch_lr"], betas=tuple(self.hp["arch_betas"]),
                                      weight_decay=self.hp["arch_weight_decay"])
        self.alphas_step = self.hp["arch_warmup"] == 0

    def on_epoch_start(self, supernet: Supernet, epoch: int, epochs: int, ctx: SearchContext) -> None:
        """The alphas step from epoch ``arch_warmup`` (0-based) on: before it only the weights train (the
        warm-up of PC-DARTS, Xu et al. 2020, and P-DARTS: untrained ops give the alphas a gradient that is
        mostly noise). Called again after a resume, so the flag follows the epoch."""
        self.alphas_step = epoch >= self.hp["arch_warmup"]

    def strategy_state(self) -> dict[str, Any]:
        return {"a_opt": self.a_opt.state_dict()}

    def load_strategy_state(self, state: dict[str, Any]) -> None:
        self.a_opt.load_state_dict(state["a_opt"])

    def extra_loss(self, logits: torch.Tensor, x: torch.Tensor, arch: bool) -> torch.Tensor | None:
        """A term added to the cross-entropy of the architecture step (`arch` True) or of the weight step, from
        the step's logits [B, classes] and images x; None (the default) adds nothing. BATS adds distillation."""
        return None

    def _loss(self, logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor, arch: bool) -> torch.Tensor:
        loss = F.cross_entropy(logits, y)
        extra = self.extra_loss(logits, x, arch)
        return loss if extra is None else loss + extra

    def _alpha_grad(self, supernet: Supernet, x: torch.Tensor, y: torch.Tensor) -> float:
        """First-order alpha gradient of the loss on (x, y) (scaled under fp16); weight gradients are not
        computed."""
        loss = self._loss(supernet(x), x, y, arch=True)
        check_loss(loss, "architecture step")
        set_alpha_grads(self.alphas, alpha_grads(self.prec.scale(loss), self.alphas))
        return loss.item()

    def _weight_step(self, supernet: Supernet, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        logits = supernet(x)
        loss = self._loss(logits, x, y, arch=False)
        check_loss(loss, "weight step")
        self.w_opt.zero_grad(set_to_none=True)
        self.prec.scale(loss).backward(inputs=self.w_params)
        self.weight_step(supernet)
        return loss.item(), (logits.argmax(1) == y).float().mean().item()


@STRATEGIES.register("darts", help="bi-level DARTS (order=1 first order, order=2 unrolled with finite-difference HVP)")
class DARTS(_Differentiable):
    name = "darts"
    second_stream = "val"
    defaults = {**_Differentiable.defaults, "order": Opt(1, choices=(1, 2))}

    def setup(self, supernet, ctx):
        super().setup(supernet, ctx)
        if self.hp["order"] == 2 and ctx.precision == "fp16":
            raise ConfigError("darts order=2 (finite-difference Hessian-vector products) runs in fp32 or bf16, "
                              "not fp16; use --precision bf16 or order=1")

    def step(self, supernet, batch, second, ctx):
        (x, y), (xv, yv) = batch, second
        if not self.alphas_step:  # arch_warmup: the weights alone
            loss, acc = self._weight_step(supernet, x, y)
            return {"train_loss": loss, "train_accuracy": acc}
        self.a_opt.zero_grad(set_to_none=True)
        if self.hp["order"] == 2:
            val_loss = self.unrolled_alpha_grad(supernet, x, y, xv, yv)
        else:
            val_loss = self._alpha_grad(supernet, xv, yv)
        self.arch_step(self.a_opt, self.alphas)
        loss, acc = self._weight_step(supernet, x, y)
        return {"train_loss": loss, "train_accuracy": acc, "val_loss": val_loss}

    def unrolled_alpha_grad(self, supernet: Supernet, x, y, xv, yv) -> float:
        """Set alpha.grad to the second-order DARTS gradient; returns the validation loss at w'."""
        w = self.w_params
        xi = self.w_opt.param_groups[0]["lr"]
        mom = self.w_opt.param_groups[0]["momentum"]
        wd = self.w_opt.param_groups[0]["weight_decay"]
        loss = F.cross_entropy(supernet(x), y)
        g_train = torch.autograd.grad(loss, w)
        distributed.average_(g_train)  # the virtual step uses the global batch's gradient
        original = [p.detach().clone() for p in w]
        with torch.no_grad():  # virtual step w' = w - xi * (momentum + grad + wd * w), as DARTS' architect
            for p, g in zip(w, g_train):
                buf = self.w_opt.state.get(p, {}).get("momentum_buffer")
                step = g + wd * p
                if buf is not None:
                    step = step + mom * buf
                p.sub_(xi * step)
        val_loss = F.cross_entropy(supernet(xv), yv)
        check_loss(val_loss, "unrolled architecture step")
        grads = alpha_grads(val_loss, self.alphas + w)
        d_alpha, d_w = grads[: len(self.alphas)], grads[len(self.alphas):]
        distributed.average_(d_w)  # eps and the perturbation are global; the rest is linear in the
        # per-process gradients, so arch_step's average of alpha.grad completes the global gradient
        eps = 0.01 / torch.sqrt(sum((g * g).sum() for g in d_w)).clamp_min(1e-12)
        hvp = []
        for sign in (1.0, -1.0):  # grad_alpha L_train at w +/- eps * dL_val/dw'
            with torch.no_grad():
                for p, p0, g in zip(w, original, d_w):
                    p.copy_(p0 + sign * eps * g)
            hvp.append(alpha_grads(F.cross_entropy(supernet(x), y), self.alphas))
        with torch.no_grad():
            for p, p0 in zip(w, original):
                p.copy_(p0)
        set_alpha_grads(self.alphas, [None if da is None else da - xi * (gp - gm) / (2 * eps)
                                      for da, gp, gm in zip(d_alpha, hvp[0], hvp[1])])
        return val_loss.item()


@STRATEGIES.register("single-darts", help="Single-DARTS: w and alpha updated from one loss on the same batch")
class SingleDARTS(_Differentiable):
    name = "single-darts"
    defaults = {**_Differentiable.defaults, "alpha_batch": Opt("same", choices=("same", "other"))}

    @property
    def second_stream(self):  # type: ignore[override]
        return "train" if self.hp["alpha_batch"] == "other" else None

    def step(self, supernet, batch, second, ctx):
        x, y = batch
        if not self.alphas_step:  # arch_warmup: the weights alone
            loss, acc = self._weight_step(supernet, x, y)
            return {"train_loss": loss, "train_accuracy": acc}
        if second is not None:  # two-batch ablation: alpha from another training batch, at the same w
            self.a_opt.zero_grad(set_to_none=True)
            self._alpha_grad(supernet, *second)
            self.arch_step(self.a_opt, self.alphas)
            loss, acc = self._weight_step(supernet, x, y)
            return {"train_loss": loss, "train_accuracy": acc}
        logits = supernet(x)
        loss = F.cross_entropy(logits, y)
        check_loss(loss, "single-level step")
        self.w_opt.zero_grad(set_to_none=True)
        self.a_opt.zero_grad(set_to_none=True)
        self.prec.scale(loss).backward()
        self.weight_step(supernet)  # clips w only
        self.arch_step(self.a_opt, self.alphas)
        return {"train_loss": loss.item(), "train_accuracy": (logits.argmax(1) == y).float().mean().item()}
