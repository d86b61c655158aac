"""BATS: Binary ArchitecTure Search (Bulat, Martinez, Tzimiropoulos, ECCV 2020, arXiv 2003.01711).

First-order bi-level DARTS (the `darts` strategy's machinery) on a binary space, with BATS' three changes
on the search side:

- **temperature**: mixing weights softmax(alpha / T) with a constant T (default 0.2) that makes every edge
  commit; ``anneal=true`` decays T exponentially from ``temperature`` to ``temperature_min`` over the search
  (an extension, *not* in the paper);
- **32W/1A search**: binary activations with real weights by default (``search_weight_bits=32``);
  ``search_weight_bits=1`` searches the fully binary supernet;
- **knowledge distillation** from a real-valued teacher (config key ``teacher``: a finished train run on the
  same dataset): the weight loss is CE + kd_lambda * kd_tau^2 * KL(teacher || student); the alpha loss is plain
  CE unless ``kd_alpha=true``.

The genotype is DARTS' top-2-excluding-none rule (independent of T). Every epoch logs, besides the
diagnostics of every one-shot strategy, the temperature, the entropy of the actual mixing weights
softmax(alpha/T) (normalised by log K), the entropy at T=1, and the discretization gap: supernet val accuracy
minus that of the derived sub-network with inherited weights after BN recalibration.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch

from ..errors import ConfigError
from ..ops.binary import set_binarization
from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import SearchSpace
from ..supernet import Supernet, entropy
from ..training import kd_loss
from ..engine.base import SearchContext
from ..engine.scoring import accuracy, fixed_batches, preserved, recalibrate_bn
from .darts import DARTS

BATS_DEFAULTS: dict[str, Any] = {
    "temperature": Opt(0.2, ">0", help="T of the mixing weights softmax(alpha / T)"),
    "anneal": Opt(False, help="decay T exponentially to temperature_min (an extension, not in the paper)"),
    "temperature_min": Opt(0.05, ">0", help="final T with anneal=true"),
    "search_weight_bits": Opt(32, choices=(32, 1), help="32: real weights, binary activations; 1: fully binary"),
    "kd_lambda": Opt(1.0, ">=0", help="weight of the distillation loss (needs a teacher)"),
    "kd_tau": Opt(1.0, ">0", help="distillation temperature"),
    "kd_alpha": Opt(False, help="add the distillation loss to the alpha loss too"),
    # weights: Adam, as usual for binary networks [spec 2.5, S]; alphas: DARTS' Adam (3e-4, (0.5, 0.999), 1e-3)
    "w_optimizer": Opt("adam", choices=("sgd", "adam")), "w_lr": Opt(1e-3, ">0"), "w_lr_min": Opt(0.0, ">=0"),
    "w_weight_decay": Opt(1e-5, ">=0", nullable=True, help="null: the space's search default"),
    "gap_every": Opt(1, ">=0", help="discretization gap every N epochs (0: only after the last)"),
    "gap_batches": Opt(10, ">=1", help="BN recalibration batches of the discretization gap"),
    "hessian_every": Opt(0, ">=0", help="epochs; 0 = never"),
}


@STRATEGIES.register("bats", help="BATS: binary search, softmax(alpha/T) T=0.2, 32W/1A, optional KD from a teacher")
class BATS(DARTS):
    """The BATS search (see the module docstring); needs a binary space (``bats`` or ``darts`` with
    ``binary=naive``)."""

    name = "bats"
    uses_teacher = True
    defaults = {**DARTS.defaults, **BATS_DEFAULTS}

    def prepare(self, space: SearchSpace) -> None:
        """Reject a real-valued space (ConfigError, one line) before a run directory exists."""
        if not space.is_binary:
            raise ConfigError(f"strategy 'bats' searches binary networks, but space '{space.name}' is real-valued; "
                              "use --space bats (or --space darts --space-opt binary=naive)")
        # the hyperparameters' types, ranges and choices are checked by their declaration (BATS_DEFAULTS)

    # -- set-up and schedules -------------------------------------------------------------
    def setup(self, supernet: Supernet, ctx: SearchContext) -> None:
        self.prepare(ctx.space)
        super().setup(supernet, ctx)
        set_binarization(supernet, act=True, weight=self.hp["search_weight_bits"] == 1)
        self.teacher = ctx.teacher
        if self.teacher is not None:
            p = next(supernet.parameters())
            self.teacher = self.teacher.to(p.device).eval()
        self._epoch, self._epochs = 0, ctx.budget.epochs or 1

    def temperature_at(self, epoch: int, epochs: int) -> float:
        """T of `epoch` (0-based): constant, or T0 * (Tmin/T0)^(epoch/(epochs-1)) with ``anneal``."""
        t0 = float(self.hp["temperature"])
        if not self.hp["anneal"] or epochs <= 1:
            return t0
        t1 = float(self.hp["temperature_min"])
        return t0 * (t1 / t0) ** (epoch / (epochs - 1))

    def on_epoch_start(self, supernet: Supernet, epoch: int, epochs: int, ctx: SearchContext) -> None:
        self._epoch, self._epochs = epoch, epochs
        super().on_epoch_start(supernet, epoch, epochs, ctx)  # arch_warmup
        supernet.temperature = self.temperature_at(epoch, epochs)

    # -- one step -------------------------------------------------------------------------
    def extra_loss(self, logits: torch.Tensor, x: torch.Tensor, arch: bool) -> torch.Tensor | None:
        """kd_lambda x the distillation loss from the teacher (Hinton et al. 2015, temperature kd_tau): always
        in the weight step, in the architecture step only with kd_alpha; None without a teacher."""
        if self.teacher is None or self.hp["kd_lambda"] <= 0 or (arch and not self.hp["kd_alpha"]):
            return None
        with torch.no_grad():
            t = self.teacher(x)
            t = t[0] if isinstance(t, tuple) else t
        return self.hp["kd_lambda"] * kd_loss(logits, t, self.hp["kd_tau"])

    # -- diagnostics ----------------------------------------------------------------------
    def epoch_diagnostics(self, supernet: Supernet, ctx: SearchContext, val_batch) -> dict[str, Any]:
        mixing = supernet.op_weights()
        k = next(iter(mixing.values())).shape[1]
        with torch.no_grad():
            ent_t = torch.cat([entropy(p.detach()) for p in mixing.values()])
            ent_1 = torch.cat([entropy(torch.softmax(a.detach(), -1)) for a in supernet.alphas.values()])
        out: dict[str, Any] = {"temperature": supernet.temperature,
                               "mixing_entropy": float(ent_t.mean()),
                               "mixing_entropy_normalised": float(ent_t.mean()) / math.log(k),
                               "alpha_entropy_t1_normalised": float(ent_1.mean()) / math.log(k)}
        every = int(self.hp["gap_every"])
        last = self._epoch + 1 >= self._epochs
        if ((every and (self._epoch + 1) % every == 0) or last):
            out.update(discretization_gap(supernet, ctx, self.derive(supernet, ctx), self.hp["eval_batches"],
                                          self.hp["gap_batches"], seed=ctx.seed + self._epoch))
        return out


def discretization_gap(supernet: Supernet, ctx: SearchContext, arch: Any, eval_batches: int = 10,
                       recal_batches: int = 10, seed: int = 0) -> dict[str, float]:
    """Supernet val accuracy minus the val accuracy of the derived sub-network `arch` run with the supernet's
    weights (sampled path: only the kept edges, each with its chosen op) after recomputing BN statistics on
    `recal_batches` search-train batches. Both on the same `eval_batches` search-val batches; the supernet
    itself is left untouched (the sub-network is a copy). Returns ``{"supernet_val_accuracy_gap_eval",
    "subnet_val_accuracy", "discretization_gap"}``."""
    train_loader, val_loader = ctx.data.loaders(ctx.seed)
    val = fixed_batches(val_loader, eval_batches, "select")
    recal = fixed_batches(train_loader, recal_batches, "gap_recal", offset=seed)
    with preserved(supernet):
        sup_acc = accuracy(supernet, val)
    sub = copy.deepcopy(supernet)
    sub.set_path(sub.arch_to_path(arch))
    recalibrate_bn(sub, recal)
    sub_acc = accuracy(sub, val)
    return {"supernet_val_accuracy_gap_eval": sup_acc, "subnet_val_accuracy": sub_acc,
            "discretization_gap": sup_acc - sub_acc}
