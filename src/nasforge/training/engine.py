"""Train and evaluate any nn.Module: SGD+cosine or AdamW, weight decay, clipping, label smoothing, drop-path,
auxiliary head; per-epoch logs of loss, accuracy and images/s; atomic per-epoch checkpoints and exact resume.

Runs on any device (``device=``), in fp32, bf16 or fp16 (``precision=``, see nasforge.accel), and data
parallel when started by torchrun (see nasforge.distributed): each process trains on its shard of every
global batch, gradients are averaged, and only rank 0 logs and writes checkpoints."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import distributed, options, progress
from ..accel import Precision, apply_memory_format, rng_state, set_rng_state
from ..options import field as option
from ..data.datasets import ImageDataset
from ..data.loader import Loader
from ..errors import ConfigError, TrainingDiverged
from ..ops.binary import latent_binary_weights
from ..ops.heads import forward_with_aux
from ..ops.params import groups_by_kind
from ..runs.store import RunDir
from ..utils import Cost, CostMeter, seed_everything


@dataclass
class TrainConfig:
    """Training options; each field declares its type and range (`nasforge.options.field`), checked on creation."""

    epochs: int = option(10, ">=1")
    batch_size: int = option(128, ">=1")
    # "sgd" (momentum, cosine), "adam" (L2 weight decay, cosine; binary networks) or "adamw" (cosine)
    optimizer: str = option("sgd", choices=("sgd", "adam", "adamw"))
    lr: float = option(0.05, ">0")
    lr_min: float = option(0.0, ">=0")
    momentum: float = option(0.9, "[0, 1)")
    nesterov: bool = True
    weight_decay: float = option(3e-4, ">=0")
    grad_clip: float | None = option(5.0, ">0", nullable=True)
    label_smoothing: float = option(0.0, "[0, 1)")
    drop_path: float = option(0.0, "[0, 1)")  # final drop-path probability, ramped linearly from 0 (DARTS)
    aux_weight: float = option(0.0, ">=0")  # weight of the auxiliary-head loss (0.4 in DARTS)
    warmup_epochs: int = option(0, ">=0")  # linear warm-up epochs before the cosine decay (DeiT: 5)
    decay_norms: bool = True  # False: no weight decay on biases, norms and class/position tokens (DeiT, ViTAS)
    crop_padding: int = option(2, ">=0")
    hflip: bool = True
    cutout: int = option(0, ">=0")
    seed: int = option(0, ">=0")
    kd_lambda: float = option(1.0, ">=0")  # knowledge distillation (with a teacher): CE + kd_lambda * kd_tau^2 * KL
    kd_tau: float = option(1.0, ">0")
    stages: int = option(0, choices=(0, 1, 2))  # binary networks: 2 = two-stage, 1 = fully binary at once, 0 = auto

    def __post_init__(self) -> None:
        options.check_dataclass(self, "", noun="training option")
        if self.warmup_epochs and self.warmup_epochs >= self.epochs:
            raise ConfigError(f"training option warmup_epochs must be in [0, epochs), got {self.warmup_epochs}")

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

    def loader(self, data: ImageDataset, mean, std, train: bool = True, device: torch.device | None = None,
               rank: int = 0, world_size: int = 1) -> Loader:
        """Training loader (shuffled, augmented) or evaluation loader (batches of 500), on `device`, yielding
        this rank's shard of every batch."""
        if train:
            return Loader(data, self.batch_size, shuffle=True, seed=self.seed, crop_padding=self.crop_padding,
                          hflip=self.hflip, cutout=self.cutout, drop_single=True, mean=mean, std=std,
                          device=device, rank=rank, world_size=world_size)
        return Loader(data, max(500, world_size), mean=mean, std=std, device=device, rank=rank,
                      world_size=world_size)


def make_optimizer(params, cfg: TrainConfig, steps_per_epoch: int) -> tuple[torch.optim.Optimizer, Any]:
    """The optimiser and cosine schedule of `cfg`; `params` are parameters or param-group dicts."""
    params = list(params)
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                                     nesterov=cfg.nesterov and cfg.momentum > 0,
                                                     weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.warmup_epochs > 0:  # per epoch: linear warm-up, then cosine from lr to lr_min over the rest
        w, floor = cfg.warmup_epochs, cfg.lr_min / cfg.lr

        def factor(e: int) -> float:
            if e < w:
                return (e + 1) / (w + 1)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (e - w) / max(1, cfg.epochs - w)))

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    return opt, sched


def no_decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups: decay for matrices/kernels, none for norms, biases, tokens, position tables and
    stacked Q/K biases (by parameter kind: `nasforge.ops.params.groups_by_kind`), as DeiT and ViTAS do."""
    return groups_by_kind(model, weight_decay)


def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """Parameter groups: latent weights of convs whose weights are currently binarized get no weight decay
    (decay would only drag them towards a sign flip); everything else takes the configured decay."""
    binary = {id(p) for p in latent_binary_weights(model)}
    rest = [p for p in model.parameters() if id(p) not in binary]
    if not binary:
        return [{"params": rest}]
    return [{"params": rest}, {"params": [p for p in model.parameters() if id(p) in binary], "weight_decay": 0.0}]


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Knowledge distillation (Hinton et al. 2015): tau^2 * KL(softmax(teacher/tau) || softmax(student/tau)),
    averaged over the batch; logits ``[N, classes]``."""
    return tau * tau * F.kl_div(F.log_softmax(student / tau, dim=1), F.log_softmax(teacher / tau, dim=1),
                                reduction="batchmean", log_target=True)


def split_logits(out: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Models return logits, or (logits, aux_logits) in training when they have an auxiliary head."""
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, None


@torch.no_grad()
def evaluate(model: nn.Module, loader: Loader, precision: str = "fp32") -> dict[str, float]:
    """Mean cross-entropy and accuracy of `model` over `loader` (summed over processes when the loader is a
    shard under data parallelism). The model must be on the loader's device."""
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    prec = Precision(loader.device, precision)
    for x, y in loader:
        with prec.autocast():
            logits, _ = split_logits(model(x))
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    loss_sum, correct, total = distributed.sum_floats(loss_sum, correct, total)
    return {"loss": loss_sum / total, "accuracy": correct / total}


def check_finite(loss: torch.Tensor, where: str, clipping: bool | None = None) -> None:
    """Raise TrainingDiverged (exit code 3) when `loss` is NaN or infinite. `clipping`: whether gradient
    clipping is on (then the message does not suggest it); None when unknown."""
    if not torch.isfinite(loss):
        hint = "lower the learning rate" + (" or enable gradient clipping (grad_clip)" if clipping is False else "")
        raise TrainingDiverged(f"loss became {loss.item()} at {where}; {hint}")


def train_model(model: nn.Module, train: ImageDataset, test: ImageDataset | None, cfg: TrainConfig,
                run: RunDir | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None,
                mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                device: torch.device | str | None = None, precision: str = "fp32",
                sync_bn: bool = False, teacher: nn.Module | None = None, memory_format: str | None = None,
                compile: bool = False) -> dict[str, Any]:
    """Train `model` in place on `device`; returns the final metrics, the per-epoch history and the cost.

    `device`: where the model and the batches live (default: where the model's parameters are); the model
    is moved there. `precision`: fp32 | bf16 | fp16 autocast (fp16 with a gradient scaler); parameters stay
    fp32. `memory_format`: channels_last | contiguous (nasforge.accel.apply_memory_format) or None (as built).
    `compile`: run the training forward through ``torch.compile`` (the module's weights are shared, so the
    checkpoint and the returned model are the eager module; see nasforge.training.compiled). Under
    torchrun every process trains on its shard of each batch of `cfg.batch_size` images and gradients are
    averaged; `sync_bn` computes BatchNorm statistics over the global batch, otherwise rank 0's running
    statistics are broadcast after each step. With `run`, a checkpoint is written after every epoch (by rank
    0) and an existing one is resumed from (on any device), so an interrupted run ends with the same
    weights as an uninterrupted one. With a `teacher` (a trained model, frozen, on the same inputs; moved to
    `device`), the loss adds ``kd_lambda * kd_loss(student, teacher, kd_tau)``.

    Raises:
        ConfigError: bad precision for the device; TrainingDiverged: a non-finite loss.
    """
    seed_everything(cfg.seed)
    if device is None:
        device = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")  # host: a model without parameters
    device = torch.device(device)
    prec = Precision(device, precision)
    model.to(device)
    apply_memory_format(model, memory_format)
    step_model = torch.compile(model) if compile else model  # the same parameters, traced once
    rank, world = distributed.rank(), distributed.world_size()
    if sync_bn and world > 1:
        distributed.convert_sync_batchnorm(model)
    distributed.broadcast_module(model)
    if mean is None or std is None:
        mean, std = train.stats()
    train_loader = cfg.loader(train, mean, std, train=True, device=device, rank=rank, world_size=world)
    test_loader = (cfg.loader(test, mean, std, train=False, device=device, rank=rank, world_size=world)
                   if test is not None else None)
    # no decay on latent binary weights (always) and, with decay_norms=False, on biases/norms/tokens (DeiT)
    params = param_groups(model) if cfg.decay_norms else no_decay_groups(model, cfg.weight_decay)
    opt, sched = make_optimizer(params, cfg, len(train_loader))
    if teacher is not None:
        teacher.to(device).eval()
    history: list[dict[str, Any]] = []
    start_epoch, spent = 0, Cost()

    state = run.load_checkpoint() if run is not None else None
    if state is not None and state.get("kind") == "train":
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        prec.load_state_dict(state.get("scaler"))
        set_rng_state(state["rng"], device)
        start_epoch, history = state["epoch"], state["history"]
        spent = Cost(**state["cost"])
        if distributed.is_main():
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
                with prec.autocast():
                    logits, aux = forward_with_aux(step_model, x)  # the shared auxiliary-head mechanism
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                    if teacher is not None and cfg.kd_lambda > 0:
                        with torch.no_grad():
                            t_logits, _ = split_logits(teacher(x))
                        loss = loss + cfg.kd_lambda * kd_loss(logits, t_logits, cfg.kd_tau)
                    if aux is not None and cfg.aux_weight > 0:
                        loss = loss + cfg.aux_weight * F.cross_entropy(aux, y, label_smoothing=cfg.label_smoothing)
                check_finite(loss, f"epoch {epoch + 1} step {step + 1}", clipping=bool(cfg.grad_clip))
                opt.zero_grad(set_to_none=True)
                prec.scale(loss).backward()
                distributed.average_grads(model.parameters())
                prec.unscale_(opt)
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                prec.step(opt)
                prec.update()
                if not sync_bn:
                    distributed.broadcast_module(model, buffers_only=True)
                seen += len(y)
                loss_sum += loss.item() * len(y)
                correct += (logits.detach().argmax(1) == y).sum().item()
                pbar.advance()
            train_s = time.perf_counter() - t0
            loss_sum, correct, seen = distributed.sum_floats(loss_sum, correct, seen)
            record = {"event": "epoch", "epoch": epoch + 1, "lr": opt.param_groups[0]["lr"],
                      "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                      "images_per_s": seen / train_s, "epoch_s": train_s}
            sched.step()
            if test_loader is not None:
                ev = evaluate(model, test_loader, precision)
                record.update(test_loss=ev["loss"], test_accuracy=ev["accuracy"])
            history.append(record)
            if run is not None and distributed.is_main():
                run.log(**record)
                run.save_checkpoint({"kind": "train", "epoch": epoch + 1, "model": model.state_dict(),
                                     "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                     "scaler": prec.state_dict(), "rng": rng_state(device), "history": history,
                                     "cost": meter.now().as_dict(), "device": str(device)})
            distributed.barrier()
            if on_epoch is not None:
                on_epoch(record)
    final = history[-1] if history else {}
    return {"final": final, "history": history, "cost": meter.now().as_dict(), "mean": list(mean), "std": list(std)}
