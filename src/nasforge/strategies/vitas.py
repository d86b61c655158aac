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

import math
import random
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .. import progress
from ..data.augment import cutmix, random_erasing, soft_cross_entropy
from ..data.loader import random_crop, random_hflip
from ..errors import ConfigError
from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import SearchSpace
from ..training import check_finite, no_decay_groups
from ..utils import atomic_write_json, seed_everything
from ..engine.base import SearchContext, SearchResult, Strategy
from ..engine.evolution import RegularizedEvolution

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


def warmup_cosine(total: int, warmup: int, floor: float):
    """LR multiplier per iteration: linear warm-up over `warmup` steps, then cosine from 1 to `floor`."""

    def f(i: int) -> float:
        if i < warmup:
            return (i + 1) / warmup
        t = min(1.0, (i - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))

    return f


@STRATEGIES.register("vitas", help="ViTAS: super-transformer with calibrated identity probability, bilateral/"
                                   "cyclic sharing, evolution inside a FLOPs window (vit space)")
class ViTAS(Strategy):
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
        if not all(hasattr(space, m) for m in ("macs", "extreme_archs", "supernet", "crossover")):
            raise ConfigError(f"strategy 'vitas' needs a super-transformer space (e.g. vit); '{space.name}' is not one")
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

    # -- phase 1: supernet training -----------------------------------------------------------------
    def train_step(self, supernet: nn.Module, space: Any, x: torch.Tensor, y: torch.Tensor, step: int,
                   seed: int) -> dict[str, float]:
        """One supernet step on a freshly sampled subnet (augment, CutMix, summed views, AdamW)."""
        hp = self.hp
        rng = random.Random(f"{seed}-{_STEP_STREAM}-{step}")
        arch = space.sample(rng, p_identity=self._prepared["p_identity"])
        g = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 8191 + _STEP_STREAM) % (2**63))  # host: CPU generator, same draws on every device
        nrng = np.random.default_rng([seed, _STEP_STREAM, step])
        if hp["crop_padding"]:
            x = random_crop(x, hp["crop_padding"], g)
        if hp["hflip"]:
            x = random_hflip(x, g)
        x = random_erasing(x, hp["erasing"], g)
        x, targets, _ = cutmix(x, y, space.num_classes, nrng, hp["cutmix_alpha"], hp["cutmix_prob"],
                               hp["label_smoothing"])
        dev = self.device
        x, y, targets = x.to(dev), y.to(dev), targets.to(dev)
        logits = None
        for v in self.views(space, supernet, arch, g, training=True):
            out = supernet(x, arch, v)
            logits = out if logits is None else logits + out
        loss = soft_cross_entropy(logits, targets)
        check_finite(loss, f"vitas step {step + 1}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if hp["grad_clip"]:
            nn.utils.clip_grad_norm_([p for p in supernet.parameters() if p.grad is not None], hp["grad_clip"])
        self.opt.step()
        self.sched.step()
        return {"train_loss": float(loss.item()), "train_accuracy": float((logits.argmax(1) == y).float().mean()),
                "sampled_macs": float(space.macs(arch))}

    @torch.no_grad()
    def score(self, supernet: nn.Module, space: Any, arch: Any, batches: list) -> float:
        """Inherited-weight top-1 on `batches` (held-out), averaged over the evaluation views."""
        supernet.eval()
        accs = []
        for v in self.views(space, supernet, arch, None, training=False):
            correct = total = 0
            for x, y in batches:
                x, y = x.to(self.device), y.to(self.device)
                correct += int((supernet(x, arch, v).argmax(1) == y).sum())
                total += len(y)
            accs.append(correct / total)
        supernet.train()
        return float(np.mean(accs))

    def eval_batches(self, ctx: SearchContext) -> list:
        """The first `eval_images` of the search-val split, unaugmented, in a fixed order, as batches on the
        search's device (`ctx.device`)."""
        from ..data.loader import Loader

        data = ctx.data
        n = min(self.hp["eval_images"], len(data.val))
        sub = data.val.subset(torch.arange(n)) if n < len(data.val) else data.val  # host: index of a host dataset
        return list(Loader(sub, self.hp["eval_batch"], mean=data.mean, std=data.std, device=ctx.device))

    # -- the whole search -------------------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> SearchResult:
        if ctx.data is None:
            raise ConfigError("strategy 'vitas' trains a supernet and needs a dataset")
        if not ctx.budget.epochs:
            raise ConfigError("strategy 'vitas' needs an epoch budget (--epochs N)")
        space = ctx.space
        if self._prepared is None:
            self.prepare(space)
        hp = self.hp
        self.device = ctx.device
        seed_everything(ctx.seed)
        supernet = space.supernet().to(self.device)
        train_loader, _ = ctx.data.loaders(ctx.seed)
        train_loader.crop_padding, train_loader.hflip, train_loader.cutout = 0, False, 0  # augmented in-step
        steps = len(train_loader)
        epochs = ctx.budget.epochs
        self.opt = torch.optim.AdamW(no_decay_groups(supernet, hp["weight_decay"]), lr=hp["lr"])
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, warmup_cosine(epochs * steps, min(hp["warmup_epochs"] * steps, epochs * steps - 1),
                                    hp["lr_min"] / hp["lr"]))
        batches = self.eval_batches(ctx)
        history: list[dict[str, Any]] = []
        start_epoch, evo_state, stopped = 0, None, False
        state = ctx.restore()
        if state is not None and state.get("kind") == "vitas":
            supernet.load_state_dict(state["supernet"])
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            start_epoch, history, evo_state = state["epoch"], state["history"], state.get("evolution")
            stopped = bool(state.get("stopped"))  # --seconds ended the training: a resume goes on to the selection
            if ctx.run is not None:
                ctx.run.truncate_metrics(lambda m: m.get("event") != "epoch" or m.get("epoch", 0) <= start_epoch)

        def save(epoch: int, evolution: dict[str, Any] | None = None) -> None:
            ctx.checkpoint({"kind": "vitas", "epoch": epoch, "supernet": supernet.state_dict(),
                            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                            "rng": torch.get_rng_state(), "history": history, "evolution": evolution,
                            "stopped": stopped})

        _, large = space.extreme_archs()
        with progress.bar("vitas", (epochs - start_epoch) * steps) as pbar:
            for epoch in range(start_epoch, start_epoch if stopped else epochs):
                train_loader.set_epoch(epoch)
                supernet.train()
                t0, sums, seen = time.perf_counter(), {}, 0
                for i, (x, y) in enumerate(train_loader):
                    stats = self.train_step(supernet, space, x, y, epoch * steps + i, ctx.seed)
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0.0) + v * len(y)
                    seen += len(y)
                    pbar.advance()
                    if ctx.out_of_time():  # --seconds is checked every step: the epoch ends here, checkpointed
                        stopped = True
                        break
                record = {"event": "epoch", "epoch": epoch + 1, "lr": self.opt.param_groups[0]["lr"],
                          "images_per_s": seen / (time.perf_counter() - t0),
                          **{k: v / seen for k, v in sums.items()},
                          "largest_subnet_val_accuracy": self.score(supernet, space, large, batches)}
                if stopped:
                    record["partial"] = i + 1 < steps
                history.append(record)
                ctx.log(**record)
                stopped = stopped or ctx.out_of_time()
                save(epoch + 1)
                if stopped:
                    break
        best, evolution = self.select(supernet, space, batches, ctx, evo_state,
                                      lambda ev: save(len(history), ev))
        prep = {k: v for k, v in self._prepared.items() if k != "calibration_trace"}
        metrics = {"epochs_run": len(history), **prep, "selection": evolution["summary"],
                   "macs": space.macs(best), "params": space.params(best)}
        if stopped or ctx.out_of_time():
            metrics["stopped"] = "seconds"
        if ctx.run is not None:
            atomic_write_json(ctx.run.file("evolution.json"), {**evolution, "window": prep,
                                                               "calibration_trace": self._prepared["calibration_trace"]})
        return SearchResult(arch=best, history=history, metrics=metrics)

    # -- phase 2: evolution (or random selection) inside the window -------------------------------------
    def select(self, supernet: nn.Module, space: Any, batches: list, ctx: SearchContext,
               state: dict[str, Any] | None, save) -> tuple[Any, dict[str, Any]]:
        hp = self.hp
        p_init = self._prepared["p_identity"] if hp["evolution_init"] == "calibrated" else None
        engine = RegularizedEvolution(
            lambda rng: space.sample(rng, p_identity=p_init), lambda a, rng: space.mutate(a, rng),
            population_size=hp["population"], sample_size=hp["sample_size"],
            constraint=lambda a: self.in_window(space, a), crossover=lambda a, b, rng: space.crossover(a, b, rng),
            crossover_prob=hp["crossover_prob"], max_attempts=2000)
        rng = random.Random(f"{ctx.seed}-{_EVO_STREAM}")
        records: list[dict[str, Any]] = []
        if state is not None:
            engine.load_state_dict(state["engine"])
            rng.setstate(state["rng"])
            records = state["records"]
        with progress.bar("vitas evolution", hp["candidates"]) as pbar:
            pbar.advance(len(records))
            while len(records) < hp["candidates"]:
                if records and ctx.out_of_time():  # --seconds, checked before every candidate (one is always scored)
                    save({"engine": engine.state_dict(), "rng": rng.getstate(), "records": records})
                    break
                if hp["selection"] == "random":
                    archs = [a for a in [engine.random_member(rng)] if a is not None]
                else:
                    archs = engine.ask(rng, 1)
                if not archs:
                    break  # the window holds no unseen architecture reachable within max_attempts
                arch = archs[0]
                assert self.in_window(space, arch), "evolution proposed an out-of-window architecture"
                fit = self.score(supernet, space, arch, batches)
                engine.tell([arch], [fit])
                records.append({"arch": arch, "macs": space.macs(arch), "fitness": fit})
                ctx.log(event="candidate", index=len(records), **records[-1])
                pbar.advance()
                if len(records) % hp["checkpoint_every"] == 0:
                    save({"engine": engine.state_dict(), "rng": rng.getstate(), "records": records})
        if not records:
            raise ConfigError("vitas found no architecture inside the MACs window; widen it")
        order = sorted(range(len(records)), key=lambda i: (-records[i]["fitness"], i))
        best = records[order[0]]
        summary = {"evaluated": len(records), "best_fitness": best["fitness"], "best_macs": best["macs"],
                   "mode": hp["selection"], "init": hp["evolution_init"]}
        return best["arch"], {"summary": summary, "top10": [records[i] for i in order[:10]], "candidates": records}


__all__ = ["ViTAS", "calibrate_identity", "warmup_cosine"]
