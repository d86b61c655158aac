"""Is the data loader ever the bottleneck? Loader images/s against the training images/s of the model it feeds.

The in-memory `nasforge.data.loader.Loader` over Fashion-MNIST's 60k training images, batch 128, shuffled,
normalised, with the augmentation under test: random crop (pad 2), horizontal flip and cutout (default 8
pixels), all vectorised over the batch. Against it: training `nasforge.models.BaselineCNN` at batch 128 the
way `train_model` trains (forward, cross-entropy, backward, gradient clipping at 5, SGD with momentum and
weight decay from `TrainConfig`'s defaults, plus the loss/accuracy read-back it does every step), on batches
prepared beforehand so the step time holds no loading.

The loader runs synchronously in the training process, so every loaded batch adds to its training step:
`loader_share_of_step` = train images/s / loader images/s is the fraction of a training step spent loading.
Target: loader images/s >= 10x training images/s.

Both are measured in the same process with the same thread count, interleaved in rounds (a slice of
loader batches, then a slice of training steps, ...), and each figure is the median over rounds; the
ratio is taken per round (adjacent in time), then the median over rounds and seeds.

    .venv/bin/python benchmarks/data_pipeline.py                # ~1 minute
    .venv/bin/python benchmarks/data_pipeline.py --seeds 0 1 2 --rounds 10 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasforge.data.datasets import ImageDataset, fashion_mnist
from nasforge.data.loader import Loader
from nasforge.models import BaselineCNN
from nasforge.training.engine import TrainConfig, make_optimizer
from nasforge.utils import seed_everything


def time_loader(loader: Loader, batches: int, epoch: int) -> float:
    """Images/s of drawing `batches` augmented batches (one pass starts at a fresh epoch)."""
    loader.set_epoch(epoch)
    it = iter(loader)
    seen = 0
    t = time.perf_counter()
    for _ in range(batches):
        x, y = next(it)
        seen += len(y)
    return seen / (time.perf_counter() - t)


def time_training(model: nn.Module, opt: torch.optim.Optimizer, batches: list[tuple[torch.Tensor, torch.Tensor]],
                  grad_clip: float | None) -> float:
    """Images/s of training steps on ready batches, the step `train_model` runs."""
    model.train()
    seen, correct, loss_sum = 0, 0, 0.0
    t = time.perf_counter()
    for x, y in batches:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        loss_sum += loss.item() * len(y)
        correct += (logits.detach().argmax(1) == y).sum().item()
        seen += len(y)
    return seen / (time.perf_counter() - t)


def run_seed(train: ImageDataset, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    seed_everything(seed)
    cfg = TrainConfig(batch_size=args.batch, crop_padding=args.crop_padding, hflip=True, cutout=args.cutout,
                      seed=seed)
    mean, std = train.stats()
    augmented = Loader(train, args.batch, shuffle=True, seed=seed, crop_padding=cfg.crop_padding, hflip=cfg.hflip,
                       cutout=cfg.cutout, mean=mean, std=std)
    plain = Loader(train, args.batch, shuffle=True, seed=seed, mean=mean, std=std)
    model = BaselineCNN(in_channels=train.in_channels, num_classes=train.num_classes)
    opt, _ = make_optimizer(model.parameters(), cfg, len(augmented))
    batches = []  # training input prepared beforehand: the training figure holds no loading
    for x, y in augmented:
        batches.append((x, y))
        if len(batches) == args.train_steps:
            break
    time_training(model, opt, batches[:3], cfg.grad_clip)  # warm-up (allocator, kernels)
    time_loader(augmented, 3, epoch=10_000)

    rows = []
    for r in range(args.rounds):
        aug = time_loader(augmented, args.loader_batches, epoch=r)
        trn = time_training(model, opt, batches, cfg.grad_clip)
        raw = time_loader(plain, args.loader_batches, epoch=r)
        rows.append({"loader_augmented": aug, "training": trn, "loader_plain": raw, "ratio": aug / trn})
    med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
    return {"seed": seed, "loader_augmented_images_per_s": med["loader_augmented"],
            "loader_plain_images_per_s": med["loader_plain"], "training_images_per_s": med["training"],
            "ratio_per_round": [row["ratio"] for row in rows], "ratio": med["ratio"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="shuffle/augmentation/initialisation seeds")
    p.add_argument("--rounds", type=int, default=5, help="interleaved loader/training rounds per seed")
    p.add_argument("--loader-batches", type=int, default=100, help="batches drawn per loader round")
    p.add_argument("--train-steps", type=int, default=10, help="training steps per round")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--crop-padding", type=int, default=2)
    p.add_argument("--cutout", type=int, default=8, help="cutout square side in pixels (0: off)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-root", default=None,
                   help="folder with Fashion-MNIST's IDX files (default: the usual places)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    train, _ = fashion_mnist(args.data_root)
    per_seed = [run_seed(train, s, args) for s in args.seeds]
    ratios = [r for s in per_seed for r in s["ratio_per_round"]]
    loader_ips = statistics.median(s["loader_augmented_images_per_s"] for s in per_seed)
    train_ips = statistics.median(s["training_images_per_s"] for s in per_seed)
    print(json.dumps({
        "config": {"data": "fashion-mnist train (60k, 1x28x28)", "batch": args.batch,
                   "augmentation": f"crop (pad {args.crop_padding}) + hflip + cutout {args.cutout}",
                   "model": "BaselineCNN", "threads": args.threads, "rounds": args.rounds,
                   "loader_batches_per_round": args.loader_batches, "train_steps_per_round": args.train_steps},
        "loader_augmented_images_per_s": loader_ips,
        "loader_plain_images_per_s": statistics.median(s["loader_plain_images_per_s"] for s in per_seed),
        "training_images_per_s": train_ips,
        "loader_over_training": statistics.median(ratios),
        "loader_share_of_step": train_ips / loader_ips,
        "target_met": statistics.median(ratios) >= 10,
        "per_seed": per_seed,
        "load_avg": [load_start, os.getloadavg()[0]],
    }, indent=2))


if __name__ == "__main__":
    main()
