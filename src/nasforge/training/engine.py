"""Train and evaluate any nn.Module: SGD+cosine or AdamW, weight decay, clipping, label smoothing, drop-path,
auxiliary head; per-epoch logs of loss, accuracy and images/s; atomic per-epoch checkpoints and exact resume."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import options, progress
from ..options import field as option
from ..data.datasets import ImageDataset
from ..data.loader import Loader
from ..errors import ConfigError, TrainingDiverged
from ..ops.heads import forward_with_aux
from ..runs.store import RunDir
from ..utils import Cost, CostMeter, seed_everything


@dataclass
class TrainConfig:
    """Training options; each field declares its type and range (`nasforge.options.field`), checked on creation."""

    epochs: int = option(10, ">=1")
    batch_size: int = option(128, ">=1")
    optimizer: str = option("sgd", choices=("sgd", "adamw"))  # "sgd" (momentum, cosine) or "adamw" (cosine)
    lr: float = option(0.05, ">0")
    lr_min: float = option(0.0, ">=0")
    momentum: float = option(0.9, "[0, 1)")
    nesterov: bool = True
    weight_decay: float = option(3e-4, ">=0")
    grad_clip: float | None = option(5.0, ">0", nullable=True)
    label_smoothing: float = option(0.0, "[0, 1)")
    drop_path: float = option(0.0, "[0, 1)")  # final drop-path probability, ramped linearly from 0 (DARTS)
    aux_weight: float = option(0.0, ">=0")  # weight of the auxiliary-head loss (0.4 in DARTS)
    crop_padding: int = option(2, ">=0")
    hflip: bool = True
    cutout: int = option(0, ">=0")
    seed: int = option(0, ">=0")

    def __post_init__(self) -> None:
        options.check_dataclass(self, "", noun="training option")

    @classmethod
    def declaration(cls) -> dict[str, Any]:
        """name -> `Opt` of every training option (what `nasforge list` prints)."""
        return options.of_dataclass(cls)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Checked training options (unknown keys, types, ranges); raises ConfigError with one line."""
        return cls(**options.resolve(cls.declaration(), d, "", noun="training option"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def loader(self, data: ImageDataset, mean, std, train: bool = True) -> Loader:
        if train:
            return Loader(data, self.batch_size, shuffle=True, seed=self.seed, crop_padding=self.crop_padding,
                          hflip=self.hflip, cutout=self.cutout, drop_single=True, mean=mean, std=std)
        return Loader(data, 500, mean=mean, std=std)


def make_optimizer(params, cfg: TrainConfig, steps_per_epoch: int) -> tuple[torch.optim.Optimizer, Any]:
    params = list(params)
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                                     nesterov=cfg.nesterov and cfg.momentum > 0,
                                                     weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    return opt, sched


def split_logits(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Models return logits, or (logits, aux_logits) in training when they have an auxiliary head."""
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, None


@torch.no_grad()
def evaluate(model: nn.Module, loader: Loader) -> dict[str, float]:
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    for x, y in loader:
        logits, _ = split_logits(model(x))
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    return {"loss": loss_sum / total, "accuracy": correct / total}


def check_finite(loss: torch.Tensor, where: str, clipping: bool | None = None) -> None:
    """Raise TrainingDiverged (exit code 3) when `loss` is NaN or infinite. `clipping`: whether gradient
    clipping is on (then the message does not suggest it); None when unknown."""
    if not torch.isfinite(loss):
        hint = "lower the learning rate" + (" or enable gradient clipping (grad_clip)" if clipping is False else "")
        raise TrainingDiverged(f"loss became {loss.item()} at {where}; {hint}")


def train_model(model: nn.Module, train: ImageDataset, test: ImageDataset | None, cfg: TrainConfig,
                run: RunDir | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None,
                mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None) -> dict[str, Any]:
    """Train `model` in place; returns the final metrics, the per-epoch history and the cost.

    With `run`, a checkpoint is written after every epoch and an existing one is resumed from, so an
    interrupted run ends with the same weights as an uninterrupted one.
    """
    seed_everything(cfg.seed)
    if mean is None or std is None:
        mean, std = train.stats()
    train_loader = cfg.loader(train, mean, std, train=True)
    test_loader = cfg.loader(test, mean, std, train=False) if test is not None else None
    opt, sched = make_optimizer(model.parameters(), cfg, len(train_loader))
    history: list[dict[str, Any]] = []
    start_epoch, spent = 0, Cost()

    state = run.load_checkpoint() if run is not None else None
    if state is not None and state.get("kind") == "train":
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        start_epoch, history = state["epoch"], state["history"]
        spent = Cost(**state["cost"])
        run.truncate_metrics(lambda m: m.get("event") != "epoch" or m.get("epoch", 0) <= start_epoch)

    meter = CostMeter(spent)
    with progress.bar("train", cfg.epochs * len(train_loader)) as pbar:
        pbar.advance(start_epoch * len(train_loader))
        for epoch in range(start_epoch, cfg.epochs):
            if hasattr(model, "drop_path_prob"):
                model.drop_path_prob = cfg.drop_path * epoch / cfg.epochs
            train_loader.set_epoch(epoch)
            model.train()
            t0, seen, correct, loss_sum = time.perf_counter(), 0, 0, 0.0
            for step, (x, y) in enumerate(train_loader):
                logits, aux = forward_with_aux(model, x)  # the shared auxiliary-head mechanism
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                if aux is not None and cfg.aux_weight > 0:
                    loss = loss + cfg.aux_weight * F.cross_entropy(aux, y, label_smoothing=cfg.label_smoothing)
                check_finite(loss, f"epoch {epoch + 1} step {step + 1}", clipping=bool(cfg.grad_clip))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                seen += len(y)
                loss_sum += loss.item() * len(y)
                correct += (logits.detach().argmax(1) == y).sum().item()
                pbar.advance()
            train_s = time.perf_counter() - t0
            record = {"event": "epoch", "epoch": epoch + 1, "lr": opt.param_groups[0]["lr"],
                      "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                      "images_per_s": seen / train_s, "epoch_s": train_s}
            sched.step()
            if test_loader is not None:
                ev = evaluate(model, test_loader)
                record.update(test_loss=ev["loss"], test_accuracy=ev["accuracy"])
            history.append(record)
            if run is not None:
                run.log(**record)
                run.save_checkpoint({"kind": "train", "epoch": epoch + 1, "model": model.state_dict(),
                                     "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                     "rng": torch.get_rng_state(), "history": history,
                                     "cost": meter.now().as_dict()})
            if on_epoch is not None:
                on_epoch(record)
    final = history[-1] if history else {}
    return {"final": final, "history": history, "cost": meter.now().as_dict(), "mean": list(mean), "std": list(std)}
