"""Auxiliary heads: the one way a network's auxiliary classifier reaches the training engine.

NASNet, PNASNet and DARTS attach an auxiliary classifier to an intermediate cell during training (Szegedy
et al., "Going deeper with convolutions", 2015; Zoph et al., NASNet, CVPR 2018; Liu et al., DARTS, ICLR
2019). The head is a training-time regulariser: it is not used at inference, not exported, and not counted
in the parameter numbers the papers report.

The contract, shared by every network in nasforge:

* a network with an auxiliary classifier keeps it in the attribute ``aux_head`` (``None`` when disabled)
  and calls :func:`tap_auxiliary` in its forward with the features at the head's tap point;
* ``forward`` always returns the main logits ``[B, classes]``; in training mode the auxiliary logits
  ``[B, classes]`` wait on the network until the training engine takes them with
  :func:`take_aux_logits` (which clears them, so a stale value is never used twice);
* :func:`param_counts` reports the inference-time ``params`` and the head's ``params_aux`` separately.

A batch of one image gets no auxiliary logits: the head's BatchNorm over a 1x1 map would see a single
value per channel, which training-mode BatchNorm cannot normalise. The main loss of that batch is
unaffected, so a last incomplete batch of one (e.g. 257 images in batches of 128) trains normally.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

_SLOT = "_aux_logits"


def tap_auxiliary(network: nn.Module, features: torch.Tensor) -> None:
    """Run ``network.aux_head`` on `features` [B, C, H, W] in training mode and keep its logits [B, classes]
    for :func:`take_aux_logits`; does nothing in eval mode, without a head, or for a batch of one."""
    head = getattr(network, "aux_head", None)
    if head is None or not network.training or features.shape[0] < 2:
        return
    setattr(network, _SLOT, head(features))


def clear_auxiliary(network: nn.Module) -> None:
    """Forget auxiliary logits kept by an earlier forward (networks call this at the start of forward)."""
    if getattr(network, _SLOT, None) is not None:
        setattr(network, _SLOT, None)


def take_aux_logits(model: nn.Module) -> torch.Tensor | None:
    """The auxiliary logits [B, classes] of the model's last training forward, or None; clears them.
    Looks through wrappers: the first submodule holding auxiliary logits answers."""
    for m in model.modules():
        aux = getattr(m, _SLOT, None)
        if aux is not None:
            setattr(m, _SLOT, None)
            return aux
    return None


def forward_with_aux(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(main logits [B, classes], auxiliary logits [B, classes] or None) of one forward of `model` on `x`.
    A model that returns a ``(logits, aux_logits)`` tuple (the DARTS code's convention) is accepted too."""
    out: Any = model(x)
    if isinstance(out, tuple):
        return out[0], out[1]
    return out, take_aux_logits(model)


def aux_modules(model: nn.Module) -> list[nn.Module]:
    """Every auxiliary head inside `model` (its own and those of submodules)."""
    return [m.aux_head for m in model.modules() if isinstance(getattr(m, "aux_head", None), nn.Module)]


def param_counts(model: nn.Module) -> dict[str, int]:
    """``params``: parameter elements of the inference network (what the papers report and what is
    exported); ``params_aux``: those of the auxiliary head(s), used in training only. A parameter shared
    between modules is counted once."""
    aux_ids = {id(p) for head in aux_modules(model) for p in head.parameters()}
    seen: set[int] = set()
    params = aux = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if id(p) in aux_ids:
            aux += p.numel()
        else:
            params += p.numel()
    return {"params": params, "params_aux": aux}
