"""Mobile building blocks for layer-wise (macro) search spaces: MBConv, ShuffleNetV2, Shuffle-Xception, FBNet.

Every block has the signature ``(C_in, C_out, stride) -> nn.Module`` and maps a tensor ``[B, C_in, H, W]`` to
``[B, C_out, ceil(H / stride), ceil(W / stride)]``. Blocks:

* :class:`MBConv` — MobileNetV2 inverted bottleneck (Sandler et al., CVPR 2018): 1x1 expand, kxk depthwise
  (carries the stride), optional squeeze-and-excitation, 1x1 linear projection; residual when shapes match;
  activation ReLU or h-swish (MobileNetV3, Howard et al., ICCV 2019).
* :class:`ShuffleV2Block` — ShuffleNetV2 unit (Ma et al., ECCV 2018): at stride 1 with equal widths the
  channels are split in halves, one half passes, the other goes 1x1 -> kxk depthwise -> 1x1; otherwise both
  branches see the whole input (a depthwise+1x1 projection branch beside the main one). Concatenation, then a
  channel shuffle. ``xception=True`` gives the SPOS "Shuffle-Xception" main branch (3 x [3x3 depthwise, 1x1]).
* :class:`FBNetBlock` — the FBNet block (Wu et al., CVPR 2019): 1x1 group conv expand, channel shuffle,
  kxk depthwise, 1x1 group conv project; residual when shapes match.
* :class:`SkipOp` — identity where shapes match, else 1x1 conv + BN with the stride (FBNet's "skip").

SE (Hu et al., CVPR 2018) uses reduction 4 and a hard-sigmoid gate, as in MobileNetV3.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .depthwise import DepthwiseConv2d  # noqa: F401  (re-exported: built by every block below)


class HSwish(nn.Module):
    """h-swish(x) = x * ReLU6(x + 3) / 6 (MobileNetV3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) / 6.0


def activation(name: str) -> nn.Module:
    """'relu' -> ReLU, 'hswish' -> h-swish."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "hswish":
        return HSwish()
    raise ValueError(f"unknown activation {name!r}; expected relu or hswish")


class SqueezeExcite(nn.Module):
    """Channel attention: global pool, 1x1 reduce (C/4), ReLU, 1x1 expand, hard sigmoid, rescale. [B,C,H,W] -> same."""

    def __init__(self, C: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(8, C // reduction)
        self.reduce = nn.Conv2d(C, mid, 1)
        self.expand = nn.Conv2d(mid, C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = self.expand(F.relu(self.reduce(s), inplace=True))
        return x * F.hardsigmoid(s)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of `groups` groups: [B, C, H, W] -> [B, C, H, W]."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MBConv(nn.Module):
    """Inverted bottleneck; see the module docstring. `expand` is the expansion ratio e (hidden = e * C_in)."""

    def __init__(self, C_in: int, C_out: int, stride: int, kernel: int, expand: int, se: bool = False,
                 act: str = "relu") -> None:
        super().__init__()
        hidden = C_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(C_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), activation(act)]
        layers += [DepthwiseConv2d(hidden, kernel, stride),
                   nn.BatchNorm2d(hidden), activation(act)]
        if se:
            layers.append(SqueezeExcite(hidden))
        layers += [nn.Conv2d(hidden, C_out, 1, bias=False), nn.BatchNorm2d(C_out)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and C_in == C_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class ShuffleV2Block(nn.Module):
    """ShuffleNetV2 / Shuffle-Xception unit; see the module docstring. Needs even C_out (and even C_in at stride 1)."""

    def __init__(self, C_in: int, C_out: int, stride: int, kernel: int = 3, se: bool = False,
                 xception: bool = False) -> None:
        super().__init__()
        if C_out % 2:
            raise ValueError(f"ShuffleNetV2 blocks need an even channel count, got {C_out}")
        self.split = stride == 1 and C_in == C_out
        main_in = C_in // 2 if self.split else C_in
        main_out = C_out // 2
        mid = main_out
        if xception:
            layers: list[nn.Module] = []
            c = main_in
            for i in range(3):
                layers += [DepthwiseConv2d(c, 3, stride if i == 0 else 1), nn.BatchNorm2d(c),
                           nn.Conv2d(c, mid if i < 2 else main_out, 1, bias=False),
                           nn.BatchNorm2d(mid if i < 2 else main_out), nn.ReLU(inplace=True)]
                c = mid
        else:
            layers = [nn.Conv2d(main_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                      DepthwiseConv2d(mid, kernel, stride), nn.BatchNorm2d(mid),
                      nn.Conv2d(mid, main_out, 1, bias=False), nn.BatchNorm2d(main_out), nn.ReLU(inplace=True)]
        if se:
            layers.append(SqueezeExcite(main_out))
        self.main = nn.Sequential(*layers)
        if self.split:
            self.proj = None
        else:
            proj_out = C_out - main_out
            self.proj = nn.Sequential(
                DepthwiseConv2d(C_in, kernel, stride), nn.BatchNorm2d(C_in),
                nn.Conv2d(C_in, proj_out, 1, bias=False), nn.BatchNorm2d(proj_out), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            a, b = x.chunk(2, dim=1)
            y = torch.cat([a, self.main(b)], dim=1)
        else:
            y = torch.cat([self.proj(x), self.main(x)], dim=1)
        return channel_shuffle(y, 2)


class FBNetBlock(nn.Module):
    """FBNet block k{kernel}_e{expand}[_g{groups}]; see the module docstring."""

    def __init__(self, C_in: int, C_out: int, stride: int, kernel: int, expand: int, groups: int = 1) -> None:
        super().__init__()
        hidden = C_in * expand
        g_in = groups if C_in % groups == 0 and hidden % groups == 0 else 1
        g_out = groups if hidden % groups == 0 and C_out % groups == 0 else 1
        self.groups = g_in
        self.expand = nn.Sequential(nn.Conv2d(C_in, hidden, 1, groups=g_in, bias=False), nn.BatchNorm2d(hidden),
                                    nn.ReLU(inplace=True))
        self.dw = nn.Sequential(DepthwiseConv2d(hidden, kernel, stride),
                                nn.BatchNorm2d(hidden), nn.ReLU(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(hidden, C_out, 1, groups=g_out, bias=False), nn.BatchNorm2d(C_out))
        self.residual = stride == 1 and C_in == C_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x)
        if self.groups > 1:
            y = channel_shuffle(y, self.groups)
        y = self.project(self.dw(y))
        return x + y if self.residual else y


class SkipOp(nn.Module):
    """Identity when shapes match, else a strided 1x1 conv + BN (the FBNet convention for `skip`)."""

    def __init__(self, C_in: int, C_out: int, stride: int) -> None:
        super().__init__()
        self.proj = None
        if stride != 1 or C_in != C_out:
            self.proj = nn.Sequential(nn.Conv2d(C_in, C_out, 1, stride, bias=False), nn.BatchNorm2d(C_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.proj is None else self.proj(x)


# ---------------------------------------------------------------------------------------------------------
# named candidate pools
# ---------------------------------------------------------------------------------------------------------
def _mobile_pool() -> dict[str, dict]:
    pool: dict[str, dict] = {}
    for k in (3, 5, 7):
        for e in (3, 6):
            for se in (False, True):
                for act in ("relu", "hswish"):
                    name = f"mb_k{k}_e{e}" + ("_se" if se else "") + ("_hs" if act == "hswish" else "")
                    pool[name] = {"family": "mbconv", "kernel": k, "expand": e, "se": se, "act": act}
    for k in (3, 5, 7):
        for se in (False, True):
            pool[f"shuffle_k{k}" + ("_se" if se else "")] = {"family": "shuffle", "kernel": k, "se": se}
    for se in (False, True):
        pool["xception" + ("_se" if se else "")] = {"family": "xception", "kernel": 3, "se": se}
    return pool


#: The 32 HURRICANE candidates (spec 2.2): 24 MBConv, 6 ShuffleNetV2, 2 Shuffle-Xception; name -> parameters.
MOBILE_OPS: dict[str, dict] = _mobile_pool()
#: The fixed FBNet-like 4-op baseline set of spec 2.6 (MBConv, no SE, ReLU).
BASELINE_OPS: tuple[str, ...] = ("mb_k3_e3", "mb_k3_e6", "mb_k5_e3", "mb_k5_e6")
#: FBNet ops in the order of the HELP table's op_idx_list.
FBNET_OP_NAMES: tuple[str, ...] = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6",
                                   "skip")


def make_mobile_op(name: str, C_in: int, C_out: int, stride: int) -> nn.Module:
    """Build a named candidate of MOBILE_OPS (or 'skip') for one layer. Raises KeyError for an unknown name."""
    if name == "skip":
        return SkipOp(C_in, C_out, stride)
    p = MOBILE_OPS[name]
    if p["family"] == "mbconv":
        return MBConv(C_in, C_out, stride, p["kernel"], p["expand"], p["se"], p["act"])
    return ShuffleV2Block(C_in, C_out, stride, p["kernel"], p["se"], xception=p["family"] == "xception")


def make_fbnet_op(name: str, C_in: int, C_out: int, stride: int) -> nn.Module:
    """Build a named FBNet op (k{3,5}_e{1,3,6}[_g2] or skip). Raises KeyError for an unknown name."""
    if name == "skip":
        return SkipOp(C_in, C_out, stride)
    if name not in FBNET_OP_NAMES:
        raise KeyError(name)
    parts = name.split("_")
    kernel, expand = int(parts[0][1:]), int(parts[1][1:])
    groups = int(parts[2][1:]) if len(parts) > 2 else 1
    return FBNetBlock(C_in, C_out, stride, kernel, expand, groups)


def mobile_op_available(name: str, C_in: int, C_out: int, stride: int) -> bool:
    """Whether a candidate fits a layer's shapes: skip only where it is a true identity; shuffle blocks need
    even widths (and, when the widths differ, more output than half)."""
    if name == "skip":
        return stride == 1 and C_in == C_out
    if MOBILE_OPS[name]["family"] in ("shuffle", "xception"):
        return C_out % 2 == 0 and (C_in % 2 == 0 if (stride == 1 and C_in == C_out) else True)
    return True
