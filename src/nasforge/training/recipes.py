"""Training recipes on top of :func:`train_model`: the two-stage recipe for binary networks.

Real-to-Binary / BATS (Martinez et al. ICLR 2020; Bulat et al. ECCV 2020): stage 1 trains with binary
activations and real weights (KD from a real teacher when given); stage 2 starts from stage 1's weights and
binarizes the weights as well (KD kept), with no weight decay on the latent binary weights. Each stage is
its own resumable run folder (``stage1/``, ``stage2/`` under the run), so an interrupted recipe continues in
the stage it was in and ends with the same weights. Optimiser defaults for binary networks: Adam, lr 1e-3,
cosine to 0, weight decay 1e-5 (on the real parameters; the latent binary weights get none in stage 2).
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from ..data.datasets import ImageDataset
from ..ops.binary import is_binary, set_binarization
from ..runs.store import RunDir
from .engine import TrainConfig, train_model

#: training defaults applied to binary networks under the user's own settings
BINARY_TRAIN_DEFAULTS: dict[str, Any] = {"optimizer": "adam", "lr": 1e-3, "lr_min": 0.0, "weight_decay": 1e-5,
                                         "batch_size": 256}


def train_config_for(model: nn.Module, user: dict[str, Any]) -> TrainConfig:
    """The TrainConfig for `model`: the user's options over the binary defaults for a binary network, over
    TrainConfig's own defaults otherwise. Raises ConfigError for unknown or invalid options."""
    return TrainConfig.from_dict({**BINARY_TRAIN_DEFAULTS, **user} if is_binary(model) else dict(user))


def stage_count(model: nn.Module, cfg: TrainConfig) -> int:
    """How many stages `model` trains in: 1 for a real network; `cfg.stages` (auto = 2) for a binary one."""
    if not is_binary(model):
        return 1
    return cfg.stages or 2


def fit(model: nn.Module, train: ImageDataset, test: ImageDataset | None, cfg: TrainConfig, run: RunDir | None = None,
        teacher: nn.Module | None = None, costs=None, **train_kw: Any) -> dict[str, Any]:
    """Train `model` by its recipe; returns train_model's output plus ``stages`` (one record per stage:
    ``stage``, ``binarization``, ``test_accuracy``, ``train_accuracy``, ``epochs``, ``wall_s`` and, with
    ``costs(model) -> dict``, the stage's cost fields).

    A real network trains once in `run`. A binary one with 2 stages trains stage 1 (binary activations, real
    weights) in ``run/stage1`` and stage 2 (fully binary) in ``run/stage2``; with 1 stage, fully binary in
    ``run/stage1``. `cfg.epochs` is per stage. `train_kw` (device, precision, memory_format, compile, sync_bn)
    go to train_model.
    """
    n = stage_count(model, cfg)
    if not is_binary(model):
        out = train_model(model, train, test, cfg, run=run, teacher=teacher, **train_kw)
        out["stages"] = [_record(1, model, out, cfg, costs)]
        return out
    modes = [(True, False), (True, True)] if n == 2 else [(True, True)]
    mean, std = train.stats()
    records, out = [], {}
    for k, (act, weight) in enumerate(modes, start=1):
        set_binarization(model, act=act, weight=weight)
        sub = None
        if run is not None:
            sub = RunDir(run.path / f"stage{k}")
            sub.path.mkdir(parents=True, exist_ok=True)
        out = train_model(model, train, test, cfg, run=sub, teacher=teacher, mean=mean, std=std, **train_kw)
        records.append(_record(k, model, out, cfg, costs))
        if run is not None:
            run.log(event="stage", **records[-1])
    out["stages"] = records
    return out


def _record(k: int, model: nn.Module, out: dict[str, Any], cfg: TrainConfig, costs) -> dict[str, Any]:
    from ..ops.binary import binarization_state

    final = out["final"]
    rec = {"stage": k, "binarization": binarization_state(model), "test_accuracy": final.get("test_accuracy"),
           "train_accuracy": final.get("train_accuracy"), "epochs": cfg.epochs, "wall_s": out["cost"]["wall_s"]}
    if costs is not None:
        rec.update(costs(model))
    return rec
