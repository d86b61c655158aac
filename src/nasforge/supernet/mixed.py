"""Mixed op: one edge of a supernet holding every candidate op."""
from __future__ import annotations

import torch
import torch.nn as nn


class MixedOp(nn.Module):
    """Either the weighted sum of all candidate ops (DARTS) or exactly one sampled op (MANAS, SPOS).

    `weights` is a 1-D tensor of op weights (already softmax'ed, with temperature, by the supernet);
    ops whose weight is exactly zero *and* that are `none` are skipped, since their output is zero.
    In sampled mode only the chosen op runs, so only it holds activations and receives gradients.
    """

    def __init__(self, ops: list[nn.Module], names: list[str]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.names = list(names)
        # `none` contributes nothing to a weighted sum but its weight still enters the softmax normaliser,
        # so skipping it keeps the value and all gradients identical while saving a kernel launch.
        self._skip_in_sum = [n == "none" for n in names]

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None, index: int | None = None) -> torch.Tensor:
        if index is not None:
            return self.ops[index](x)
        assert weights is not None, "MixedOp needs weights or an index"
        out = None
        for w, op, skip in zip(weights, self.ops, self._skip_in_sum):
            if skip:
                continue
            y = w * op(x)
            out = y if out is None else out + y
        if out is None:  # every op is `none`
            out = self.ops[0](x)
        return out
