"""FLOPs and parameter counts of any nn.Module, for hardware-aware search and for throughput reports.

FLOPs are counted by torch's own `FlopCounterMode`, which intercepts the aten calls a forward makes, so
functional code (F.conv2d inside a custom forward, fused supernet paths) is counted as well as modules.
The convention is the one torch and most papers use for compute: a multiply-add is 2 FLOPs, and only
convolutions, linear layers and matrix products are counted. Batch norm, pooling and element-wise ops are
memory-bound and add ~1% at NAS sizes; they are not counted. ``macs`` (multiply-adds) is the figure
"FLOPs" means in tables produced with thop-style counters (e.g. NAS-Bench-Macro's ``flops`` field).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ..errors import UserError
from ..ops.heads import param_counts


@dataclass(frozen=True)
class ModelCost:
    """Forward cost of a model on one example batch."""

    flops: int  # forward FLOPs for the whole batch (multiply-add = 2)
    params: int  # inference-time parameters (an auxiliary head is left out: it is counted in params_aux)
    batch_size: int
    by_child: dict[str, int] = field(default_factory=dict)  # forward FLOPs inside each direct child module
    params_aux: int = 0  # parameters of auxiliary heads (training only)

    @property
    def macs(self) -> int:
        return self.flops // 2

    @property
    def flops_per_sample(self) -> float:
        return self.flops / self.batch_size

    def as_dict(self) -> dict[str, Any]:
        return {"flops": self.flops, "macs": self.macs, "params": self.params, "params_aux": self.params_aux,
                "batch_size": self.batch_size,
                "flops_per_sample": self.flops_per_sample, "by_child": dict(self.by_child)}


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (a parameter shared between modules is counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def model_cost(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...]) -> ModelCost:
    """Count the forward FLOPs of `model` on `example` (a batch, or a tuple of positional inputs).

    `by_child` splits the total over the model's direct children (what remains was computed by the
    model's own forward, outside any child).

    The forward runs in eval mode under no_grad, so running statistics and the model's train/eval mode
    are left as they were; FLOPs of a forward do not depend on the mode for the layers counted.
    """
    inputs = example if isinstance(example, tuple) else (example,)
    if not inputs or not isinstance(inputs[0], torch.Tensor) or inputs[0].dim() == 0:
        raise UserError("model_cost needs an example batch: a tensor with a leading batch dimension "
                        "(or a tuple of such tensors), e.g. torch.zeros(1, 3, 32, 32)")
    counter = FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(*inputs)
    finally:
        model.train(was_training)
    root = type(model).__name__
    recorded: dict[str, int] = {}
    for name, ops in counter.get_flop_counts().items():
        # FlopCounterMode names submodules "<RootClass>.<path>" and only knows modules whose forward ran
        if name.startswith(root + "."):
            recorded[name[len(root) + 1:]] = int(sum(ops.values()))
    by_child: dict[str, int] = {}
    for child, _ in model.named_children():
        inside = [p for p in recorded if p == child or p.startswith(child + ".")]
        # a container never called itself (nn.ModuleList) holds the sum of its outermost called members
        outermost = [p for p in inside if not any(p.startswith(q + ".") for q in inside)]
        by_child[child] = sum(recorded[p] for p in outermost)
    counts = param_counts(model)
    return ModelCost(flops=int(counter.get_total_flops()), params=counts["params"],
                     batch_size=int(inputs[0].shape[0]), by_child=by_child, params_aux=counts["params_aux"])


def count_flops(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...]) -> int:
    """Forward FLOPs of `model` on the batch `example` (multiply-add = 2; conv, linear and matmul only)."""
    return model_cost(model, example).flops


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **_: Any) -> int:
    """FLOPs of aten.convolution_backward: one forward's worth per requested input/weight gradient.

    torch's own formula (torch.utils.flop_counter.conv_backward_flop) ignores `groups` for the weight
    gradient and so overcounts a depthwise conv's backward by a factor of C; a forward conv costs
    2 * B * C_out * (C_in / groups) * prod(kernel) * prod(output spatial), and `w_shape` already holds
    C_in / groups."""
    import math

    spatial = x_shape[2:] if transposed else grad_out_shape[2:]
    fwd = 2 * grad_out_shape[0] * math.prod(spatial) * math.prod(w_shape)
    return fwd * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def step_flop_counter() -> FlopCounterMode:
    """A FlopCounterMode for whole training steps (forward and backward), with the convolution-backward
    formula corrected for grouped and depthwise convolutions (see `_conv_backward_flops`) and the CPU's
    fused attention counted. Use as ``with counter: step()``, then ``counter.get_total_flops()``."""
    return FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten.convolution_backward: _conv_backward_flops, **_CPU_ATTENTION})


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *_: Any, out_shape=None, **__: Any) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *_: Any, out_shape=None,
                             **__: Any) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


#: torch 2.13's FlopCounterMode has formulas for the CUDA attention kernels only; the CPU's fused kernel
#: (what F.scaled_dot_product_attention runs in nasforge.ops.attention) does the same two products
_CPU_ATTENTION = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
                  torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flops}
