"""Operation counts of (partly) binary networks: BOPs, FLOPs and the field's combined OPs.

The convention of the binary-network literature (XNOR-Net, Bi-Real Net, Real-to-Binary, BATS):

* **BOPs**: multiply-accumulates whose two operands are both 1-bit (a binary conv with binarized input *and*
  binarized weights), computed as XNOR + popcount;
* **FLOPs**: real-valued multiply-accumulates (stem, classifier, 1x1 convs left real, and any conv of which one
  operand is still real, e.g. stage 1 of two-stage training, binary activations x real weights);
* **OPs = BOPs / 64 + FLOPs** (64 binary operations per 64-bit instruction).

Counts are per image (one sample), at inference: the model runs in eval mode, so training-only branches
(an auxiliary head) are not counted. Pooling, BN, PReLU and element-wise ops are not counted, as in
:mod:`nasforge.hardware.flops`.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..ops.binary import BinaryConv2d, binarization_state, conv_macs_per_sample
from .flops import count_params, model_cost


def binary_cost(model: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """BOPs, real FLOPs (multiply-adds), OPs and parameters of `model` per sample of `example` ``[N, C, H, W]``.

    Returns ``{"params", "flops", "bops", "ops", "binarization"}`` where ``flops`` are real MACs per image
    (the literature's "FLOPs"), ``bops`` binary MACs per image, ``ops = bops / 64 + flops`` and
    ``binarization`` the model's ``{"act", "weight"}`` switches (None for a real network). Works for any
    model: a model without binary convs has ``bops = 0`` and ``ops = flops``.
    """
    binary_macs = 0
    handles = []

    def hook(module: BinaryConv2d, _inp, out: torch.Tensor) -> None:
        nonlocal binary_macs
        if module.fully_binary:
            binary_macs += conv_macs_per_sample(module, out)

    for m in model.modules():
        if isinstance(m, BinaryConv2d):
            handles.append(m.register_forward_hook(hook))
    try:
        cost = model_cost(model, example[:1])
    finally:
        for h in handles:
            h.remove()
    real_macs = cost.macs - binary_macs
    try:
        state = binarization_state(model)
    except ValueError:
        state = {"act": "mixed", "weight": "mixed"}
    return {"params": count_params(model), "flops": int(real_macs), "bops": int(binary_macs),
            "ops": real_macs + binary_macs / 64.0, "binarization": state}


def example_input(model: nn.Module, in_channels: int, resolution: int) -> torch.Tensor:
    """A one-image zero batch ``[1, C, R, R]`` on the model's device (for :func:`binary_cost`)."""
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")  # host: a model without parameters
    return torch.zeros(1, in_channels, resolution, resolution, device=device)


def model_costs(model: nn.Module, in_channels: int, resolution: int) -> dict[str, Any]:
    """The cost fields every result.json carries: ``flops`` (real MACs per image), ``bops``, ``ops`` (see the
    module docstring), for a model taking ``[N, in_channels, resolution, resolution]`` images."""
    c = binary_cost(model, example_input(model, in_channels, resolution))
    return {"flops": c["flops"], "bops": c["bops"], "ops": c["ops"]}


__all__ = ["binary_cost", "example_input", "model_costs"]
