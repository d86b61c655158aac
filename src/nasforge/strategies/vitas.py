"""ViTAS: vision-transformer search with a weight-sharing super-transformer (Su et al., "Vision Transformer
Architecture Search", arXiv 2106.13700; ECCV 2022), on the `vit` space.

Three phases, as in the official code (spec section 3.3):

0. **Identity-probability calibration.** Starting from p = 0.5, the mean MACs of `calib_samples` fresh
   samples of `sample(p)` is compared with the window [Fmin, Fmax]; p moves by `calib_step` towards the
   window until the mean lands inside. A window the mean cannot reach (p would leave (0, 1), or oscillate)
   is a configuration error, raised before the run directory exists (`prepare`).
1. **Supernet training.** Every step trains one freshly sampled subnet: CutMix (soft, label-smoothed
   targets) and weak augmentation (random crop with padding, horizontal flip, random erasing; no
   RandAugment, no colour jitter) on the batch; with bilateral sharing the subnet runs on the left and the
   right channels and the two logit tensors are *summed before one loss* (as the repo does); cyclic
   sharing runs one window at a random offset. AdamW without weight decay on norms, biases and tokens;
   linear warm-up then per-iteration cosine.
2. **Evolution in the window.** `RegularizedEvolution` (strategies/evolution.py) with the window as its
   constraint, so an out-of-window candidate is never proposed, hence never evaluated; the initial
   population is drawn from sample(p) (or uniformly), children by mutation and two-point crossover.
   Fitness: top-1 with inherited weights on the first `eval_images` of the held-out search-val split
   (never the test set), averaged over the left and right views for bilateral/cyclic sharing.

The winner is retrained from scratch by the usual `retrain` step or `nasforge train` (docs/vitas.md gives
the DeiT-style recipe). Ablations are one flag each: ``sampling=uniform`` (random-ws-style paths: every
slot uniform over identity and the head counts, no calibration), ``evolution_init=uniform`` (uniform
evolution: the population drawn uniformly inside the window), ``selection=random`` (best of the same
number of random in-window candidates instead of evolution); the space options ``share``,
``private_qk``, ``private_tokens``, ``identity_shift`` and ``style=autoformer`` ablate the supernet.

Deviations, documented in docs/vitas.md: regularised (aging) evolution instead of the NSGA-Net engine;
random crop with padding instead of RandomResizedCrop at 28x28.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..data.augment import cutmix, random_erasing, soft_cross_entropy
from ..data.loader import random_crop, random_hflip
from ..engine.base import SearchContext
from ..engine.oneshot import OneShotStrategy, OptimizerRecipe, check_loss
from ..engine.scoring import accuracy
from ..engine.selection import Selection
from ..errors import ConfigError
from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import SearchSpace
from ..utils import atomic_write_json

_STEP_STREAM = 0x766974  # "vit"
_EVO_STREAM = 0x65766F  # "evo"


def calibrate_identity(space: Any, fmin: float, fmax: float, samples: int = 1000, start: float = 0.5,
                       step: float = 0.01, seed: int = 0) -> tuple[float, float, list[tuple[float, float]]]:
    """ViTAS step 0: the identity probability p whose sample(p) mean MACs lies in [fmin, fmax].

    Starting at `start`, p moves by `step` (up while the mean is above fmax, down while below fmin); each
    check draws `samples` fresh architectures (seeded by (seed, check)). Returns (p, mean MACs, trace of
    (p, mean)). Raises ConfigError if p would leave (0, 1) or revisits a value (the window is narrower than
    one step's change of the mean).
    """
    if not fmin <= fmax:
        raise ConfigError(f"vitas window is empty: flops_min {fmin:.0f} > flops_max {fmax:.0f}")
    n_steps = round(1.0 / step)
    k = round(start / step)
    trace: list[tuple[float, float]] = []
    seen: set[int] = set()
    while True:
        p = round(k * step, 10)
        if not 0 < k < n_steps:
            lo, hi = (trace[-1][1], None) if k >= n_steps else (None, trace[-1][1])
            raise ConfigError(
                f"vitas calibration cannot reach the MACs window [{fmin:.4g}, {fmax:.4g}]: the identity "
                f"probability left (0, 1) (mean MACs at p={trace[-1][0]:.2f}: {trace[-1][1]:.4g}); "
                # p reached 1 with the mean still above the window: only a higher flops_max helps; p reached 0
                # with the mean still below it: only a lower flops_min (a lower budget) helps
                f"{'raise flops_max (or budget)' if lo is not None else 'lower flops_min (or budget)'}, or widen "
                "the window")
        if k in seen:
            raise ConfigError(f"vitas calibration oscillates around p={p:.2f}: the MACs window [{fmin:.4g}, "
                              f"{fmax:.4g}] is narrower than one calibration step; widen it or lower calib_step")
        seen.add(k)
        rng = random.Random(f"calib-{seed}-{k}")
        mean = float(np.mean([space.macs(space.sample(rng, p_identity=p)) for _ in range(samples)]))
        trace.append((p, mean))
        if mean > fmax:
            k += 1
        elif mean < fmin:
            k -= 1
        else:
            return p, mean, trace


@STRATEGIES.register("vitas", help="ViTAS: super-transformer with calibrated identity probability, bilateral/"
                                   "cyclic sharing, evolution inside a FLOPs window (vit space)")
class ViTAS(OneShotStrategy):
    """Hyperparameters (`--set key=value`): the MACs window ``flops_min``/``flops_max`` (absolute, per image)
    or ``budget`` (fraction B of the largest subnet's MACs; window [``window_low`` B, B]); calibration
    (``p_identity`` fixed instead, ``calib_samples``, ``calib_step``); training (``lr``, ``lr_min``,
    ``weight_decay``, ``warmup_epochs``, ``label_smoothing``, ``cutmix_alpha``, ``cutmix_prob``,
    ``crop_padding``, ``hflip``, ``erasing``, ``grad_clip``); evolution (``population``, ``sample_size``,
    ``candidates`` = evaluated architectures, ``crossover_prob``, ``eval_images``, ``eval_batch``,
    ``checkpoint_every``); ablations ``sampling``, ``evolution_init``, ``selection``.
    """

    name = "vitas"
    kind = "one-shot"
    supernet_kinds = ("super-transformer",)
    optimised_keys = ("macs", "flops_min", "flops_max", "selection.best_fitness")
    defaults = {
        "flops_min": Opt(None, ">=0", type=float, help="MACs per image; null: window_low x flops_max"),
        "flops_max": Opt(None, ">=0", type=float, help="MACs per image; null: budget x the largest subnet's MACs"),
        "budget": Opt(0.2, "(0, 1]", help="share of the largest subnet's MACs (when flops_max is null)"),
        "window_low": Opt(0.9, "[0, 1]", help="flops_min as a share of flops_max (when flops_min is null)"),
        "sampling": Opt("calibrated", choices=("calibrated", "uniform")),
        "p_identity": Opt(None, "[0, 1)", type=float, help="fixed identity probability; null: calibrated"),
        "calib_samples": Opt(1000, ">=1"), "calib_step": Opt(0.01, "(0, 1)"),
        "lr": Opt(1e-3, ">0"), "lr_min": Opt(1e-5, ">=0"), "weight_decay": Opt(0.05, ">=0"),
        "warmup_epochs": Opt(1, ">=0"), "label_smoothing": Opt(0.1, "[0, 1)"),
        "cutmix_alpha": Opt(1.0, ">=0", help="Beta(alpha, alpha); 0: no CutMix"), "cutmix_prob": Opt(1.0, "[0, 1]"), "crop_padding": Opt(2, ">=0"),
        "hflip": True, "erasing": Opt(0.25, "[0, 1]", help="random-erasing probability"),
        "grad_clip": Opt(5.0, ">0", nullable=True),
        "selection": Opt("evolution", choices=("evolution", "random")),
        "evolution_init": Opt("calibrated", choices=("calibrated", "uniform")),
        "population": Opt(16, ">=1"), "sample_size": Opt(4, ">=1"),
        "candidates": Opt(48, ">=1", help="evaluated architectures"), "crossover_prob": Opt(0.5, "[0, 1]"),
        "eval_images": Opt(1000, ">=1", help="search-val images scoring each candidate"),
        "eval_batch": Opt(500, ">=1"), "checkpoint_every": Opt(8, ">=1", help="candidates between checkpoints"),
    }

    def __init__(self, **hparams: Any) -> None:
        super().__init__(**hparams)  # types, ranges and choices: the declaration above
        hp = self.hp
        if hp["sample_size"] > hp["population"]:
            raise ConfigError(f"vitas sample_size ({hp['sample_size']}) cannot exceed population ({hp['population']})")
        self._prepared: dict[str, Any] | None = None

    # -- phase 0: window and identity probability (before any run directory exists) ------------------
    def prepare(self, space: SearchSpace) -> dict[str, Any]:
        """Resolve the MACs window and calibrate p_identity; raise ConfigError (one line) if impossible."""
        self._check_space(space)
        small, large = space.extreme_archs()
        lo_macs, hi_macs = space.macs(small), space.macs(large)
        hp = self.hp
        fmax = hp["flops_max"] if hp["flops_max"] is not None else hp["budget"] * hi_macs
        fmin = hp["flops_min"] if hp["flops_min"] is not None else hp["window_low"] * fmax
        if fmin > fmax:
            raise ConfigError(f"vitas window is empty: flops_min {fmin:.4g} > flops_max {fmax:.4g}")
        if fmin > hi_macs:
            raise ConfigError(f"vitas flops_min {fmin:.4g} is above the largest subnet ({hi_macs} MACs per image)")
        if fmax < lo_macs:
            raise ConfigError(f"vitas flops_max {fmax:.4g} is below the smallest subnet ({lo_macs} MACs per image)")
        trace: list[tuple[float, float]] = []
        if hp["sampling"] == "uniform":
            p, mean = None, None
        elif hp["p_identity"] is not None:
            p, mean = float(hp["p_identity"]), None
        else:
            p, mean, trace = calibrate_identity(space, fmin, fmax, hp["calib_samples"], step=hp["calib_step"])
            p = round(p, 10)
        self._prepared = {"flops_min": float(fmin), "flops_max": float(fmax), "p_identity": p,
                          "calibrated_mean_macs": mean, "calibration_trace": trace,
                          "smallest_macs": lo_macs, "largest_macs": hi_macs}
        return self._prepared

    def in_window(self, space: Any, arch: Any) -> bool:
        f = space.macs(arch)
        return self._prepared["flops_min"] <= f <= self._prepared["flops_max"]

    def views(self, space: Any, supernet: nn.Module, arch: Any, g: torch.Generator | None, training: bool) -> list:
        if space.share == "leading":
            return ["left"]
        if space.share == "bilateral" or not training:
            return ["left", "right"]
        return [supernet.sample_offsets(arch, g)]

    # -- phase 1: supernet training on the engine --------------------------------------------------------
    def build_supernet(self, ctx: SearchContext, restored: dict[str, Any] | None) -> nn.Module:
        if self._prepared is None:
            self.prepare(ctx.space)
        return ctx.space.supernet()

    def loaders(self, ctx: SearchContext):
        train_loader, val_loader = ctx.data.loaders(ctx.seed)
        train_loader.crop_padding, train_loader.hflip, train_loader.cutout = 0, False, 0  # augmented in `step`
        return train_loader, val_loader

    def optimizer_recipe(self, ctx: SearchContext) -> OptimizerRecipe:
        """AdamW, no weight decay on norms, biases, tokens, position tables and stacked Q/K biases (by kind);
        linear warm-up over ``warmup_epochs``, then cosine to ``lr_min``, stepped every iteration."""
        hp = self.hp
        return OptimizerRecipe("adamw", lr=hp["lr"], lr_min=hp["lr_min"], weight_decay=hp["weight_decay"],
                               schedule="cosine", per="step", warmup=hp["warmup_epochs"], by_kind=True)

    def setup(self, supernet, ctx) -> None:
        self.space, self.seed = ctx.space, ctx.seed
        self.device = ctx.device
        self.largest = ctx.space.extreme_archs()[1]
        self.held_out = self.eval_batches(ctx)
        self.records: list[dict[str, Any]] = []

    def step(self, supernet, batch, second, ctx) -> dict[str, float]:
        """One supernet step on a freshly sampled subnet: weak augmentation and CutMix on the batch, the
        subnet's views' logits summed before one soft cross-entropy."""
        hp, space, step = self.hp, ctx.space, self.step_index
        rng = random.Random(f"{ctx.seed}-{_STEP_STREAM}-{step}")
        arch = space.sample(rng, p_identity=self._prepared["p_identity"])
        g = torch.Generator().manual_seed(((ctx.seed * 1_000_003 + step) * 8191 + _STEP_STREAM) % (2**63))  # host: CPU generator, same draws on every device
        nrng = np.random.default_rng([ctx.seed, _STEP_STREAM, step])
        x, y = batch
        if hp["crop_padding"]:
            x = random_crop(x, hp["crop_padding"], g)
        if hp["hflip"]:
            x = random_hflip(x, g)
        x = random_erasing(x, hp["erasing"], g)
        x, targets, _ = cutmix(x, y, space.num_classes, nrng, hp["cutmix_alpha"], hp["cutmix_prob"],
                               hp["label_smoothing"])
        targets = targets.to(x.device)
        logits = None
        for v in self.views(space, supernet, arch, g, training=True):
            out = supernet(x, arch, v)
            logits = out if logits is None else logits + out
        loss = soft_cross_entropy(logits.float(), targets)
        check_loss(loss, f"vitas step {step + 1}")
        self.w_opt.zero_grad(set_to_none=True)
        self.prec.scale(loss).backward()
        self.weight_step(supernet)
        return {"train_loss": float(loss.item()), "train_accuracy": float((logits.argmax(1) == y).float().mean()),
                "sampled_macs": float(space.macs(arch))}

    def score(self, supernet: nn.Module, space: Any, arch: Any, batches: list) -> float:
        """Inherited-weight top-1 on `batches` (held-out), averaged over the evaluation views."""
        return float(np.mean([accuracy(supernet, batches, lambda x, v=v: supernet(x, arch, v))
                              for v in self.views(space, supernet, arch, None, training=False)]))

    def eval_batches(self, ctx: SearchContext) -> list:
        """The first `eval_images` of the search-val split, unaugmented, in a fixed order, as batches on the
        search's device (`ctx.device`); this process's rows under data parallelism (scores are summed)."""
        from ..data.loader import Loader

        data = ctx.data
        n = min(self.hp["eval_images"], len(data.val))
        sub = data.val.subset(torch.arange(n)) if n < len(data.val) else data.val  # host: index of a host dataset
        return list(Loader(sub, self.hp["eval_batch"], mean=data.mean, std=data.std, device=ctx.device,
                           rank=data.rank, world_size=data.world_size))

    def _diagnostics(self, supernet, ctx, val_loader, epoch) -> dict[str, Any]:
        return {"lr": self.w_opt.param_groups[0]["lr"],
                "largest_subnet_val_accuracy": self.score(supernet, ctx.space, self.largest, self.held_out)}

    # -- phase 2: evolution (or random selection) inside the window -------------------------------------
    def end_phase(self, supernet, phase, ctx, selection) -> None:
        hp, space = self.hp, ctx.space
        p_init = self._prepared["p_identity"] if hp["evolution_init"] == "calibrated" else None
        sel = Selection("evolution", ctx.seed, sample=lambda rng: space.sample(rng, p_identity=p_init),
                        mutate=lambda a, rng: space.mutate(a, rng), crossover=lambda a, b, rng: space.crossover(a, b, rng),
                        crossover_prob=hp["crossover_prob"], constraint=lambda a: self.in_window(space, a),
                        fitness=lambda a: self.score(supernet, space, a, self.held_out),
                        describe=lambda a: {"macs": space.macs(a)}, budget=hp["candidates"],
                        population=hp["population"], sample_size=hp["sample_size"],
                        mode="random" if hp["selection"] == "random" else "evolution",
                        checkpoint_every=hp["checkpoint_every"])
        self.records = sel.run(self, ctx, selection)
        self.rejected = sel.rejected
        if not self.records:
            raise ConfigError("vitas found no architecture inside the MACs window; widen it")

    def derive(self, supernet, ctx) -> Any:
        return Selection.best(self.records)["arch"]

    def final_metrics(self, supernet, arch, ctx) -> dict[str, Any]:
        hp, space, records = self.hp, ctx.space, self.records
        order = sorted(range(len(records)), key=lambda i: (-records[i]["fitness"], i))
        best = records[order[0]]
        summary = {"evaluated": len(records), "best_fitness": best["fitness"], "best_macs": best["macs"],
                   "mode": hp["selection"], "init": hp["evolution_init"], "rejected": self.rejected}
        prep = {k: v for k, v in self._prepared.items() if k != "calibration_trace"}
        if ctx.run is not None and ctx.is_main:
            atomic_write_json(ctx.run.file("evolution.json"),
                              {"summary": summary, "top10": [records[i] for i in order[:10]], "candidates": records,
                               "window": prep, "calibration_trace": self._prepared["calibration_trace"]})
        return {**prep, "selection": summary, "macs": space.macs(arch), "params": space.params(arch)}


__all__ = ["ViTAS", "calibrate_identity"]
