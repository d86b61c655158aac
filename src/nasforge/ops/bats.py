"""Cell ops of the binary spaces: the BATS op set and the naively binarized DARTS ops.

BATS (Bulat, Martinez, Tzimiropoulos, ECCV 2020) replaces DARTS' separable and dilated convs by a single
*binary grouped* k x k conv (dilated or not) wrapped as BN -> sign -> binary conv -> PReLU -> channel shuffle,
plus a real-valued identity shortcut at stride 1 (op internals as in the first author's library
``1adrianb/binary-networks-pytorch``, ``bnn/models/layers/bats_ops.py``). Preprocessing is BN -> 1x1 conv ->
PReLU (with an identity shortcut when the shapes allow), FactorizedReduce is BN -> two shifted 1x1 stride-2
convs -> PReLU; the 1x1 convs are real unless ``binarize_1x1``. The stem (3x3 conv, BN, ReLU), pooling,
classifier and auxiliary head (PReLU) are real.

The naive binarization of DARTS keeps DARTS' ops and makes every conv binary: ReLU -> [sign -> binary
depthwise] -> [sign -> binary pointwise] -> BN, where the sign after the ReLU maps 0 to -1 (its bit is
``x > 0``; see :class:`NaiveBinaryDilConv`). It is the baseline the BATS abstract argues against.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .binary import BinaryConv2d, ChannelShuffle
from .cnn import DARTS_OPS, Identity, OpFactory, Zero

BATS_CONV_OPS: dict[str, tuple[int, int]] = {  # name -> (kernel, dilation)
    "group_conv_3x3": (3, 1),
    "group_conv_5x5": (5, 1),
    "dil_group_conv_3x3": (3, 2),
    "dil_group_conv_5x5": (5, 2),
}

#: other spellings of the BATS ops accepted in genotypes (the third-party transcription and the author's library)
BATS_ALIASES: dict[str, str] = {
    "gconv3x3": "group_conv_3x3", "gconv5x5": "group_conv_5x5",
    "dil_gconv3x3": "dil_group_conv_3x3", "dil_gconv5x5": "dil_group_conv_5x5",
    "sep_conv_3x3": "group_conv_3x3", "sep_conv_5x5": "group_conv_5x5",
    "dil_conv_3x3": "dil_group_conv_3x3", "dil_conv_5x5": "dil_group_conv_5x5",
    "max_pool": "max_pool_3x3", "avg_pool": "avg_pool_3x3", "skip": "skip_connect", "identity": "skip_connect",
}


def _conv1x1(C_in: int, C_out: int, stride: int, binary: bool, **binary_kw: Any) -> nn.Conv2d:
    if binary:
        return BinaryConv2d(C_in, C_out, 1, stride=stride, **binary_kw)
    return nn.Conv2d(C_in, C_out, 1, stride=stride, bias=False)


class BatsConv(nn.Module):
    """BATS' binary conv op: BN -> sign -> binary grouped k x k conv (stride, dilation) -> PReLU -> channel
    shuffle, plus ``x`` when stride is 1. ``[N, C, H, W]`` -> ``[N, C, H/stride, W/stride]``.

    Raises ValueError if `groups` or `shuffle_groups` does not divide C."""

    def __init__(self, C: int, kernel: int, stride: int, dilation: int, groups: int, affine: bool = True,
                 shuffle_groups: int = 4, center_weights: bool = False, learned_scale: bool = False) -> None:
        super().__init__()
        if C % groups or C % shuffle_groups:
            raise ValueError(f"groups={groups} and shuffle_groups={shuffle_groups} must divide C={C}")
        padding = dilation * (kernel - 1) // 2
        self.bn = nn.BatchNorm2d(C, affine=affine)
        self.conv = BinaryConv2d(C, C, kernel, stride, padding, dilation, groups, center_weights=center_weights,
                                 learned_scale=learned_scale)
        self.act = nn.PReLU(C)
        self.shuffle = ChannelShuffle(shuffle_groups)
        self.shortcut = stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.shuffle(self.act(self.conv(self.bn(x))))
        return x + y if self.shortcut else y


class BatsPreprocess(nn.Module):
    """BATS' "ReLUConvBN" 1x1 preprocessing: BN -> 1x1 conv -> PReLU, plus ``x`` when C_in == C_out."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True, binarize_1x1: bool = False, **binary_kw: Any) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(C_in, affine=affine)
        self.conv = _conv1x1(C_in, C_out, 1, binarize_1x1, **binary_kw)
        self.act = nn.PReLU(C_out)
        self.shortcut = C_in == C_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(self.bn(x)))
        return x + y if self.shortcut else y


class BatsFactorizedReduce(nn.Module):
    """BN -> two 1x1 stride-2 convs (the second on the input shifted by one pixel), concatenated -> PReLU."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True, binarize_1x1: bool = False, **binary_kw: Any) -> None:
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.bn = nn.BatchNorm2d(C_in, affine=affine)
        self.conv_1 = _conv1x1(C_in, C_out // 2, 2, binarize_1x1, **binary_kw)
        self.conv_2 = _conv1x1(C_in, C_out // 2, 2, binarize_1x1, **binary_kw)
        self.act = nn.PReLU(C_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.act(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def bats_stem(in_channels: int, C: int) -> nn.Module:
    """BATS' CIFAR stem (real-valued): 3x3 conv, BN, ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C), nn.ReLU(inplace=True))


def bats_ops(groups: int = 4, shuffle_groups: int = 4, binarize_1x1: bool = False, center_weights: bool = False,
             learned_scale: bool = False) -> dict[str, OpFactory]:
    """The BATS op set (ordered: none, max/avg pool, skip, group conv 3x3/5x5, dilated group conv 3x3/5x5),
    each a ``(C, stride, affine)`` factory; `groups` is G of every binary grouped conv."""
    kw = dict(center_weights=center_weights, learned_scale=learned_scale)

    def skip(C: int, stride: int, affine: bool) -> nn.Module:
        return Identity() if stride == 1 else BatsFactorizedReduce(C, C, affine, binarize_1x1, **kw)

    def conv(kernel: int, dilation: int) -> OpFactory:
        return lambda C, stride, affine: BatsConv(C, kernel, stride, dilation, groups, affine, shuffle_groups, **kw)

    ops: dict[str, OpFactory] = {
        "none": lambda C, stride, affine: Zero(stride),
        "max_pool_3x3": DARTS_OPS["max_pool_3x3"],
        "avg_pool_3x3": DARTS_OPS["avg_pool_3x3"],
        "skip_connect": skip,
    }
    for name, (k, d) in BATS_CONV_OPS.items():
        ops[name] = conv(k, d)
    return ops


def bats_preprocess(binarize_1x1: bool = False, **binary_kw: Any):
    """The preprocessing factory of BATS cells: ``(C_pp, C_p, C, reduction_prev, affine) -> (pre0, pre1)``."""

    def make(C_pp: int, C_p: int, C: int, reduction_prev: bool, affine: bool) -> tuple[nn.Module, nn.Module]:
        pre0 = (BatsFactorizedReduce(C_pp, C, affine, binarize_1x1, **binary_kw) if reduction_prev
                else BatsPreprocess(C_pp, C, affine, binarize_1x1, **binary_kw))
        return pre0, BatsPreprocess(C_p, C, affine, binarize_1x1, **binary_kw)

    return make


# --------------------------------------------------------------------------------------------------
# DARTS' ops, naively binarized
class NaiveBinaryDilConv(nn.Sequential):
    """DARTS' ReLU -> depthwise -> pointwise -> BN with both convs binary (each binarizes its own input).
    ``[N, C_in, H, W]`` -> ``[N, C_out, H/stride, W/stride]``.

    Sign convention per conv (why): the depthwise conv reads a ReLU output, which is >= 0, so it binarizes
    with sign(0) = -1, i.e. its bit is ``x > 0`` (with the default sign(0) = +1 every activation would be +1
    and the op would ignore its input; BATS' library, ``torch.sign``, gives 0 there, a {0, 1} map that is not
    a +/-1 activation). The pointwise conv reads the depthwise conv's signed output and binarizes with the
    default sign(0) = +1, like every other binary conv here. The STE gradient therefore reaches x where
    0 < x < 1 (ReLU's mask times the hardtanh mask). This keeps DARTS' op order exactly (the "naive"
    binarization the BATS abstract argues against) while the op still depends on its input.
    """

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            BinaryConv2d(C_in, C_in, kernel, stride, padding, dilation, groups=C_in, sign_zero=-1),
            BinaryConv2d(C_in, C_out, 1),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class NaiveBinarySepConv(nn.Sequential):
    """DARTS' separable conv (the dw+pw unit twice) with every conv binary."""

    def __init__(self, C_in: int, C_out: int, kernel: int, stride: int, padding: int, affine: bool = True) -> None:
        super().__init__(NaiveBinaryDilConv(C_in, C_in, kernel, stride, padding, 1, affine),
                         NaiveBinaryDilConv(C_in, C_out, kernel, 1, padding, 1, affine))


NAIVE_BINARY_DARTS_OPS: dict[str, OpFactory] = {
    **{k: DARTS_OPS[k] for k in ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect")},
    "sep_conv_3x3": lambda C, stride, affine: NaiveBinarySepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: NaiveBinarySepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: NaiveBinaryDilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: NaiveBinaryDilConv(C, C, 5, stride, 4, 2, affine),
}


__all__ = ["BATS_CONV_OPS", "BATS_ALIASES", "BatsConv", "BatsPreprocess", "BatsFactorizedReduce", "bats_stem",
           "bats_ops", "bats_preprocess", "NaiveBinaryDilConv", "NaiveBinarySepConv", "NAIVE_BINARY_DARTS_OPS"]
