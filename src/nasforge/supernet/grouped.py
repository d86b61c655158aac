"""Weighted-mode supernet edges run grouped by source node (DARTS-style cells).

Every edge that leaves one node reads the same tensor, so the DARTS weighted sum can be computed per
*source node* instead of per edge, in fewer and larger kernels, with the same value and gradients (up to
float rounding) as calling each :class:`MixedOp`:

- ``relu(h)`` in front of every sep/dil conv is computed once per source node, not once per op and edge;
- the depthwise convs of one op (same kernel, dilation, stride) on all E edges run as one depthwise conv over
  the input repeated E times, the pointwise 1x1 convs as one grouped conv (groups = E), their non-affine
  BatchNorms as one batch norm over the E*C channels (BN is per channel, so this is exact; the running
  statistics stay in each edge's own BN); the second half of ``sep_conv`` runs on those stacked tensors;
- the op weight is folded into the last BN as its per-channel scale (equal to multiplying the output);
- pools are computed once per source node; their non-affine BNs see identical inputs on every edge, so in
  training mode they normalise identically and one normalisation serves all edges;
- FactorizedReduce (``skip_connect`` at stride 2) of all edges is one 1x1 stride-2 conv over ``[relu(h),
  relu(h) shifted]`` with block-structured weights;
- ``none`` contributes exactly zero and is never computed (its weight still enters the softmax);
- BATS' binary convs (BN -> sign -> grouped conv -> PReLU -> shuffle) share one BN and one sign per source node
  in training mode (non-affine BNs of the same input); the convs themselves run per edge;
- any other op runs per edge as ``w * op(h)``: the grouping stays correct for every op set and only speeds
  up the ops it knows.

Parameters are the per-edge modules' own (concatenated on the fly; they are tiny), so state dicts,
checkpoints, sampled mode and derived networks are unaffected. Profile (issue 20, 1 thread): the darts-space
step is memory-bound, thousands of 8-32-channel kernels, so what pays is fewer passes over activations.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.bats import BatsConv
from ..ops.binary import sign_ste
from ..ops.cnn import DilConv, FactorizedReduce, Identity, Pool, SepConv, Zero
from ..ops.depthwise import depthwise_conv2d
from .mixed import MixedOp


def _plain_bns(bns: Sequence[nn.Module]) -> bool:
    """True when `bns` are plain BatchNorm2d with one update rule (so one batch_norm call can stand for all)."""
    first = bns[0]
    return all(type(bn) is nn.BatchNorm2d and bn.momentum is not None and bn.momentum == first.momentum
               and bn.eps == first.eps and (bn.running_mean is None) == (first.running_mean is None) for bn in bns)


def grouped_batch_norm(y: torch.Tensor, bns: Sequence[nn.Module], scale: torch.Tensor | None,
                       training: bool) -> torch.Tensor:
    """The non-affine BNs `bns` applied to consecutive channel blocks of `y` ``[B, len(bns)*C, H, W]`` in one
    call, times `scale` ``[len(bns)*C]`` per channel (None: 1).

    Equals concatenating ``bn_k(block_k) * scale_k``; each BN's running statistics are updated in place
    exactly as its own forward would."""
    if not _plain_bns(bns):
        # no common update rule (cumulative averages), or a BN subclass with its own forward (e.g.
        # nasforge.distributed.SyncBatchNorm under data parallelism): run each BN on its own block
        out = torch.cat([bn(block) for bn, block in zip(bns, y.chunk(len(bns), dim=1))], dim=1)
        return out if scale is None else out * scale.view(1, -1, 1, 1)
    first = bns[0]
    tracked = first.running_mean is not None
    mean = torch.cat([bn.running_mean for bn in bns]) if tracked else None
    var = torch.cat([bn.running_var for bn in bns]) if tracked else None
    out = F.batch_norm(y, mean, var, scale, None, training or not tracked, first.momentum, first.eps)
    if training and tracked:
        with torch.no_grad():
            for bn, m, v in zip(bns, mean.chunk(len(bns)), var.chunk(len(bns))):
                bn.running_mean.copy_(m)
                bn.running_var.copy_(v)
                bn.num_batches_tracked.add_(1)
    return out


def shared_batch_norm(p: torch.Tensor, bns: Sequence[nn.Module], training: bool) -> list[torch.Tensor]:
    """``[bn(p) for bn in bns]`` for BNs that all read the same tensor `p`: in training mode (or without running
    statistics) they normalise with the same batch statistics, so one normalisation serves all; each BN's
    running statistics are still updated as its own forward would (in eval mode each uses its own)."""
    if not _plain_bns(bns) or (not training and bns[0].running_mean is not None) or any(bn.affine for bn in bns):
        return [bn(p) for bn in bns]
    first = bns[0]
    out = F.batch_norm(p, None, None, None, None, True, 0.0, first.eps)
    if first.running_mean is not None:
        with torch.no_grad():
            var, mean = torch.var_mean(p.detach().to(first.running_mean.dtype), dim=(0, 2, 3), correction=1)
            for bn in bns:
                bn.running_mean.mul_(1 - bn.momentum).add_(mean, alpha=bn.momentum)
                bn.running_var.mul_(1 - bn.momentum).add_(var, alpha=bn.momentum)
                bn.num_batches_tracked.add_(1)
    return [out] * len(bns)


def _is_channels_last(x: torch.Tensor) -> bool:
    """x is stored NHWC (and is not also plain-contiguous, as 1-channel or 1x1 tensors are)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def repeat_channels(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, n*C, H, W]``, n copies of x along channels, in x's memory format (a repeat
    would return NCHW for a channels-last x and send every later conv down oneDNN's slow mixed-format path)."""
    if n == 1:
        return x
    B, C, H, W = x.shape
    if _is_channels_last(x):
        nhwc = x.permute(0, 2, 3, 1).unsqueeze(3).expand(B, H, W, n, C).reshape(B, H, W, n * C)
        return nhwc.permute(0, 3, 1, 2)
    return x.repeat(1, n, 1, 1)


def _like(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Weight `w` in the memory format of activation `x` (oneDNN is fast only when both agree)."""
    if _is_channels_last(x):
        return w.contiguous(memory_format=torch.channels_last)
    return w.contiguous()


class _Source:
    """The tensors of one source node computed once and shared by every op of every edge leaving it."""

    def __init__(self, h: torch.Tensor, n_edges: int) -> None:
        self.h, self.n = h, n_edges
        self._relu: torch.Tensor | None = None
        self._stacked: torch.Tensor | None = None

    @property
    def relu(self) -> torch.Tensor:
        if self._relu is None:
            self._relu = F.relu(self.h)
        return self._relu

    @property
    def relu_stacked(self) -> torch.Tensor:
        """relu(h) repeated once per edge: ``[B, E*C, H, W]``."""
        if self._stacked is None:
            self._stacked = repeat_channels(self.relu, self.n)
        return self._stacked


def depthwise_conv(x: torch.Tensor, w: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
                   dilation: tuple[int, int], groups: int | None = None) -> torch.Tensor:
    """``F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)`` for a depthwise
    (groups None = C) or grouped `w` through :func:`nasforge.ops.depthwise.depthwise_conv2d`: dilated convs
    in polyphase form and the tiled CPU weight gradient of kernels wider than 3 (the grouped path runs only
    with the space's ``fused``, so always in the fast form)."""
    return depthwise_conv2d(x, w, stride, padding, dilation, groups, fast=True)


def _dil_conv(x: torch.Tensor, units: Sequence[nn.Module], scale: torch.Tensor | None, training: bool) -> torch.Tensor:
    """E DilConv units (ReLU -> depthwise -> pointwise -> BN) on ``x = [B, E*C, H, W]`` (block e feeds unit e,
    already ReLU'd), as one depthwise conv, one grouped 1x1 conv and one batch norm -> ``[B, E*C_out, H', W']``."""
    dw, pw = units[0][1], units[0][2]
    y = depthwise_conv(x, _like(torch.cat([u[1].weight for u in units]), x), dw.stride, dw.padding, dw.dilation)
    y = F.conv2d(y, _like(torch.cat([u[2].weight for u in units]), y), None, pw.stride, pw.padding,
                 pw.dilation, groups=len(units))
    return grouped_batch_norm(y, [u[3] for u in units], scale, training)


def _factorized_reduce(src: _Source, ops: Sequence[FactorizedReduce], scale: torch.Tensor,
                       training: bool) -> torch.Tensor:
    """E FactorizedReduce ops on the same input as one 1x1 stride-2 conv over ``[relu(h), relu(h) shifted]``:
    edge e's output channels read conv_1 weights on the first half and conv_2 weights on the second."""
    r = src.relu
    x = torch.cat([r, F.pad(r[:, :, 1:, 1:], (0, 1, 0, 1))], dim=1)
    blocks = []
    for op in ops:
        w1, w2 = op.conv_1.weight, op.conv_2.weight
        blocks.append(torch.cat([torch.cat([w1, torch.zeros_like(w1)], 1), torch.cat([torch.zeros_like(w2), w2], 1)]))
    y = F.conv2d(x, _like(torch.cat(blocks), x), None, ops[0].conv_1.stride)
    return grouped_batch_norm(y, [op.bn for op in ops], scale, training)


def _bats_conv(op: BatsConv, normed: torch.Tensor, signs: dict[tuple[int, int], torch.Tensor],
               h: torch.Tensor) -> torch.Tensor:
    """One BatsConv on its BN output `normed` (shared by every BatsConv of the node in training mode), its sign
    taken once per distinct tensor and sign convention (`signs`), dilated convs through :func:`depthwise_conv`."""
    conv = op.conv
    x = normed
    if conv.binary_act:
        key = (id(normed), conv.sign_zero)
        if key not in signs:
            signs[key] = sign_ste(normed, conv.sign_zero)
        x = signs[key]
    y = depthwise_conv(x, _like(conv.effective_weight(), x), conv.stride, conv.padding, conv.dilation, conv.groups)
    if conv.scale is not None:
        y = y * conv.scale
    y = op.shuffle(op.act(y))
    return h + y if op.shortcut else y


def _groupable(op: nn.Module) -> bool:
    if type(op) is DilConv:
        return isinstance(op[0], nn.ReLU) and op[1].groups == op[1].in_channels and op[2].groups == 1
    if type(op) is SepConv:
        return all(_groupable(unit) for unit in op)
    if type(op) is BatsConv:
        return op.conv.bias is None and not op.bn.affine
    return type(op) is FactorizedReduce or type(op) in (Zero, Identity, Pool)


def grouped_mixed_ops(h: torch.Tensor, edges: Sequence[MixedOp], weights: torch.Tensor,
                      training: bool) -> list[torch.Tensor]:
    """``[edge(h, weights=weights[n]) for n, edge in enumerate(edges)]``, computed grouped (module docstring).

    `h` ``[B, C, H, W]`` is the source node, `edges` the MixedOps leaving it (same op list on every edge, same
    stride), `weights` ``[E, K]`` their op weights. Returns one ``[B, C, H', W']`` tensor per edge. Values
    and gradients (inputs, weights, alphas) equal the per-edge sum up to float rounding; BN running
    statistics are updated as the per-edge forward updates them."""
    E = len(edges)
    src = _Source(h, E)
    stacked: torch.Tensor | None = None  # sum of the grouped conv terms, [B, E*C, H', W'], op weights folded in
    terms: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in range(E)]  # per edge: (weight, tensor)
    per_edge: list[torch.Tensor | None] = [None] * E  # ops that run per edge, already weighted

    # BATS' binary convs all start with a non-affine BN of h: in training mode one normalisation (and one sign)
    # serves every op of every edge leaving the node
    bats = [k for k, o in enumerate(edges[0].ops) if type(o) is BatsConv and _groupable(o)]
    bats_bn = shared_batch_norm(h, [edge.ops[k].bn for k in bats for edge in edges], training) if bats else []
    signs: dict[tuple[int, int], torch.Tensor] = {}

    for k, name in enumerate(edges[0].names):
        if name == "none":
            continue
        ops = [edge.ops[k] for edge in edges]
        w = weights[:, k]
        op = ops[0]
        if k in bats:
            for n, o in enumerate(ops):
                y = w[n] * _bats_conv(o, bats_bn[bats.index(k) * E + n], signs, h)
                per_edge[n] = y if per_edge[n] is None else per_edge[n] + y
            continue
        if not _groupable(op):
            for n, o in enumerate(ops):
                y = w[n] * o(h)
                per_edge[n] = y if per_edge[n] is None else per_edge[n] + y
            continue
        if type(op) is Zero:
            continue
        if type(op) is Identity:
            for n in range(E):
                terms[n].append((w[n], h))
            continue
        if type(op) is Pool:
            p = op.pool(h)
            normed = shared_batch_norm(p, [o.bn for o in ops], training) if op.bn is not None else [p] * E
            for n in range(E):
                terms[n].append((w[n], normed[n]))
            continue
        C_out = (op.bn.num_features if type(op) is FactorizedReduce
                 else (op[-1][3] if type(op) is SepConv else op[3]).num_features)
        scale = w.repeat_interleave(C_out)
        if type(op) is FactorizedReduce:
            y = _factorized_reduce(src, ops, scale, training)
        elif type(op) is DilConv:
            y = _dil_conv(src.relu_stacked, ops, scale, training)
        else:  # SepConv: the first unit on the shared input, the second on the stacked per-edge tensors
            y = _dil_conv(src.relu_stacked, [o[0] for o in ops], None, training)
            y = _dil_conv(F.relu(y), [o[1] for o in ops], scale, training)
        stacked = y if stacked is None else stacked + y

    outs = list(stacked.unflatten(1, (E, -1)).unbind(1)) if stacked is not None else [None] * E
    for n in range(E):
        y = outs[n]
        for wk, t in terms[n]:
            y = t * wk if y is None else torch.addcmul(y, t, wk)
        if per_edge[n] is not None:
            y = per_edge[n] if y is None else y + per_edge[n]
        if y is None:  # every op is `none`
            y = edges[n].ops[0](h)
        outs[n] = y
    return outs


__all__ = ["grouped_mixed_ops", "grouped_batch_norm", "shared_batch_norm", "repeat_channels", "depthwise_conv"]
