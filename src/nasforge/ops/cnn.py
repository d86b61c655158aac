"""Convolutional ops of the DARTS, NAS-Bench-201 and PNAS cell spaces (NASNet conventions)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .depthwise import DepthwiseConv2d

OpFactory = Callable[[int, int, bool], nn.Module]


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv -> BN (NB201's ``nor_conv``, DARTS' preprocessing)."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int,
                 dilation: int = 1, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel, stride, padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> depthwise k x k (dilated) -> pointwise 1x1 -> BN. The depthwise conv is a
    :class:`~nasforge.ops.depthwise.DepthwiseConv2d` (an ``nn.Conv2d`` with the fast CPU path; ``fast =
    False`` is the plain conv)."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            DepthwiseConv2d(C_in, kernel, stride, padding, dilation),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )
        self[1].fp32_under_autocast = False  # follows autocast like the rest of the op, as before


class SepConv(nn.Sequential):
    """The DARTS/NASNet separable conv: the dw+pw unit applied twice, only the first carries the stride."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(
            DilConv(C_in, C_in, kernel, stride, padding, 1, affine),
            DilConv(C_in, C_out, kernel, 1, padding, 1, affine),
        )


class Conv1x7x7x1(nn.Sequential):
    """PNAS' 1x7 then 7x1 convolution."""

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, (1, 7), (1, stride), (0, 3), bias=False),
            nn.Conv2d(C_in, C_out, (7, 1), (stride, 1), (3, 0), bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` op: zeros, spatially strided when stride > 1."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing half the pixels: two 1x1 stride-2 convs, the second shifted by one.

    An odd `C_out` is split floor / ceil between the two convs (27 -> 13 + 14), as TF-slim's
    `factorized_reduction` does (PNASNet mobile's F/2 = 27 stem cell); even counts split in halves (DARTS)."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True) -> None:
        super().__init__()
        if C_out < 2:
            raise ValueError(f"FactorizedReduce needs at least 2 output channels, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out - C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # odd sizes stay aligned with the unshifted branch
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Pool(nn.Module):
    """3x3 max or average pool (padding excluded from the average), optionally followed by BN (DARTS search)."""

    def __init__(self, kind: str, stride: int, C: int | None = None, affine: bool = False, bn: bool = False) -> None:
        super().__init__()
        if kind == "max":
            self.pool: nn.Module = nn.MaxPool2d(3, stride=stride, padding=1)
        elif kind == "avg":
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        else:
            raise ValueError(f"unknown pool kind {kind!r}")
        self.bn = nn.BatchNorm2d(C, affine=affine) if bn and C else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return self.bn(x) if self.bn is not None else x


class ResNetBasicBlock(nn.Module):
    """NB201's residual reduction block between stages."""

    def __init__(self, C_in: int, C_out: int, stride: int, affine: bool = True) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, stride, 1, affine=affine)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, affine=affine)
        if stride == 2:
            self.shortcut: nn.Module = nn.Sequential(
                nn.AvgPool2d(2, stride=2, padding=0), nn.Conv2d(C_in, C_out, 1, bias=False))
        elif C_in != C_out:
            self.shortcut = ReLUConvBN(C_in, C_out, 1, 1, 0, affine=affine)
        else:
            self.shortcut = Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Drop the whole path for a random subset of samples (scheduled drop-path of NASNet/DARTS)."""
    if not training or prob <= 0.0:
        return x
    keep = 1.0 - prob
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


def _skip(C: int, stride: int, affine: bool) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(C, C, affine)


DARTS_OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: Pool("max", stride, C, affine=False, bn=not affine),
    "avg_pool_3x3": lambda C, stride, affine: Pool("avg", stride, C, affine=False, bn=not affine),
    "skip_connect": _skip,
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
}
"""In search (affine=False) pools get a non-affine BN, as in the DARTS search network; the final net drops it."""

NB201_OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "skip_connect": _skip,
    "nor_conv_1x1": lambda C, stride, affine: ReLUConvBN(C, C, 1, stride, 0, affine=affine),
    "nor_conv_3x3": lambda C, stride, affine: ReLUConvBN(C, C, 3, stride, 1, affine=affine),
    "avg_pool_3x3": lambda C, stride, affine: Pool("avg", stride),
}

PNAS_OPS: dict[str, OpFactory] = {
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "sep_conv_7x7": lambda C, stride, affine: SepConv(C, C, 7, stride, 3, affine),
    "conv_7x1_1x7": lambda C, stride, affine: Conv1x7x7x1(C, C, stride, affine),
    "identity": _skip,
    "avg_pool_3x3": lambda C, stride, affine: Pool("avg", stride),
    "max_pool_3x3": lambda C, stride, affine: Pool("max", stride),
    "dil_conv_3x3": lambda C, stride, affine: ReLUConvBN(C, C, 3, stride, 2, dilation=2, affine=affine),
}

PARAMETER_FREE = {"none", "skip_connect", "identity", "max_pool_3x3", "avg_pool_3x3"}


def is_parameter_free(op: str) -> bool:
    """Ops that collapse-prone searches drift towards (DARTS: skip, none, pooling)."""
    return op in PARAMETER_FREE
