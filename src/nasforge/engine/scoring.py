"""Scoring architectures with a trained supernet's inherited weights, without changing the supernet.

One scorer serves every method that picks an architecture from a trained supernet (hurricane, vitas,
random-ws, BATS's discretization gap): fixed named batch streams (a loader epoch reserved for each use, so
every candidate sees the same images), optional BN recalibration per candidate (SPOS: the running
statistics of a supernet mix every path, so each candidate's are recomputed on a few training batches), and
accuracy summed over data-parallel processes, so every rank gets the same fitness. Every buffer, the
training mode and the path are restored afterwards (:func:`preserved`).
"""
from __future__ import annotations

from contextlib import contextmanager
from itertools import islice
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import distributed

#: loader epochs reserved for the named batch streams (distinct from any training epoch)
STREAMS = {"diagnostics": 10_000, "select": 20_000, "gap_recal": 30_000, "bn_recal": 50_000, "score": 60_000}

Batch = tuple[torch.Tensor, torch.Tensor]


def fixed_batches(loader: Any, n: int, stream: str, offset: int = 0) -> list[Batch]:
    """The first `n` batches of `loader` at the epoch reserved for `stream` (+ `offset`): the same images, in
    the same order, every time they are asked for. Raises KeyError for an unknown stream name."""
    loader.set_epoch(STREAMS[stream] + offset)
    return list(islice(iter(loader), n))


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block the model may be run in any mode (BN statistics updated, a path set); afterwards every
    buffer, every BN momentum, the training mode and the supernet path (where it has one) are what they
    were. Diagnostics and scorers run inside it: they must never change the model they measure."""
    was_training = model.training
    previous = getattr(model, "path", None)
    saved = [b.detach().clone() for b in model.buffers()]
    momenta = [m.momentum for m in batchnorms(model)]
    try:
        yield model
    finally:
        with torch.no_grad():
            for b, s in zip(model.buffers(), saved):
                b.copy_(s)
        for m, mom in zip(batchnorms(model), momenta):
            m.momentum = mom
        model.train(was_training)
        if hasattr(model, "set_path"):
            model.set_path(previous)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: list[Batch], forward: Callable[[torch.Tensor], Any] | None = None) -> None:
    """Recompute every BatchNorm's running statistics as the plain (cumulative) average over `batches`
    (train-mode forwards, no gradient). The model ends in train mode; call inside :func:`preserved` to keep
    the supernet's own statistics."""
    fwd = forward or model
    bns = batchnorms(model)
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    for x, _ in batches:
        fwd(x)


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, batches: list[Batch], forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
                      *, reduce: bool = True) -> tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy (fraction in [0, 1]) over `batches`, without gradients, in the
    model's current mode (the caller chooses: eval for running BN statistics, train inside :func:`preserved`
    for batch statistics). With `reduce` (default) the sums are taken over data-parallel processes, so every
    rank gets the global values. (0.0, 0.0) for no images."""
    fwd = forward or model
    loss = correct = n = 0.0
    for x, y in batches:
        logits = fwd(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    if reduce:
        loss, correct, n = distributed.sum_floats(loss, correct, n)
    return (loss / n, correct / n) if n else (0.0, 0.0)


def accuracy(model: nn.Module, batches: list[Batch], forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
             *, reduce: bool = True) -> float:
    """Top-1 accuracy (fraction in [0, 1]) over `batches` in eval mode (see :func:`loss_and_accuracy`)."""
    model.eval()
    return loss_and_accuracy(model, batches, forward, reduce=reduce)[1]


def inherited_accuracy(model: nn.Module, eval_batches: list[Batch], bn_batches: list[Batch] | None = None,
                       forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       setup: Callable[[], None] | None = None) -> float:
    """Accuracy of one candidate with inherited weights: `setup()` selects it (e.g. sets a supernet path),
    BN statistics are recomputed on `bn_batches` when given and the model has BatchNorm, then it is scored on
    `eval_batches`; the model is restored afterwards. `forward` (default: the model) maps images [B, C, H, W]
    to logits [B, classes]. Returns the global accuracy (summed over processes)."""
    with preserved(model):
        if setup is not None:
            setup()
        if bn_batches and batchnorms(model):
            recalibrate_bn(model, bn_batches, forward)
        return accuracy(model, eval_batches, forward)
