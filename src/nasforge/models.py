"""Fixed, hand-designed networks (not searched): the anchors every searched network is compared with.

Each model takes ``in_channels``, ``num_classes`` (from the data) and one integer ``width`` (its scale; the
leaderboard's size rule picks the largest width of a fixed ladder whose network stays under the parameter
bound, see docs/leaderboard.md). ``nasforge train --arch NAME --space-opt width=W`` trains one at width W.
Every model maps ``[B, in_channels, H, W]`` images (any H, W >= 8) to ``[B, num_classes]`` logits.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn as nn

from .accel import FastPath
from .errors import ConfigError
from .ops.attention import VisionTransformer
from .ops.binary import BinaryConv2d
from .ops.mobile import MBConv
from .registry import Registry

MODELS: Registry = Registry("model")


def build_named(name: str, in_channels: int, num_classes: int, options: dict[str, Any] | None = None,
                resolution: int = 28) -> nn.Module:
    """The registered model `name` sized for the data, with `options` (e.g. ``{"width": 64}``).

    `resolution` is passed to models that need the input size (the ViT). Raises ConfigError for an unknown
    name or option, or a width out of range."""
    cls = MODELS.get(name)
    opts = dict(options or {})
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "in_channels",
                                                                                    "num_classes", "resolution")]
    unknown = sorted(set(opts) - set(accepted))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for model '{name}'; valid: {', '.join(accepted)}")
    for k, v in opts.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"model '{name}' option {k} must be an integer >= 1, got {v!r}")
    kw: dict[str, Any] = {"in_channels": in_channels, "num_classes": num_classes, **opts}
    if "resolution" in inspect.signature(cls.__init__).parameters:
        kw["resolution"] = resolution
    try:
        return cls(**kw)
    except ValueError as e:  # e.g. a ViT width its head count does not divide
        raise ConfigError(f"model '{name}' with {opts}: {e}") from None


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@MODELS.register("baseline", help="hand-designed 4-conv CNN (32-32-64-64, ~66K params), the sanity anchor; "
                                  "width=W scales it (W-W-2W-2W)")
class BaselineCNN(nn.Module):
    """Two conv-conv-pool stages and a linear head on global-average-pooled features; ``width`` is the first
    stage's channels (the second has 2 * width). About 63 * width^2 parameters."""

    #: dense 3x3 convs at 32-64 channels: bf16 and channels_last both pay (benchmarks/fixed_net_speed.py)
    fast_path = FastPath(True, True, "baseline CNN, dense 3x3 convs: bf16 + channels_last (fixed_net_speed.json)")

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_block(in_channels, w), *_block(w, w), nn.MaxPool2d(2),
            *_block(w, 2 * w), *_block(2 * w, 2 * w), nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(2 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN plus the shortcut (1x1 conv + BN when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                                  nn.ReLU(inplace=True), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(c_out))
        self.short = (nn.Identity() if stride == 1 and c_in == c_out else
                      nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.short(x))


@MODELS.register("resnet20", help="ResNet-20 (He et al. 2016, CIFAR variant: 3 stages x 3 basic blocks, "
                                  "16-32-64, ~0.27M params); width=W: W-2W-4W")
class ResNet20(nn.Module):
    """ResNet-20 of He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition" (CVPR 2016, sec. 4.2):
    a 3x3 stem, three stages of 3 basic blocks at ``width``, 2*width, 4*width channels (stride 2 between
    stages), global average pooling and a linear head. Shortcuts that change shape use a 1x1 conv (option B).
    """

    fast_path = FastPath(True, True, "dense 3x3 convs: bf16 + channels_last 3.2x fp32 at 1 thread (leaderboard_rates.json)")

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        c = w
        for stage, c_out in enumerate((w, 2 * w, 4 * w)):
            for i in range(3):
                layers.append(_BasicBlock(c, c_out, 2 if stage > 0 and i == 0 else 1))
                c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _round8(v: float) -> int:
    return max(8, int(v + 4) // 8 * 8)


@MODELS.register("mobilenetv2", help="MobileNetV2 (Sandler et al. 2018), CIFAR-style strides; width=W: stem "
                                     "channels (32 = width multiplier 1.0, ~2.2M params)")
class MobileNetV2(nn.Module):
    """MobileNetV2 of Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear
    Bottlenecks" (CVPR 2018, table 2), for small images: the stem and the first two stages keep stride 1
    (the common CIFAR adaptation), so a 28x28 input ends at 4x4. ``width`` is the stem's channels; the width
    multiplier is width / 32 and every stage's channels scale with it (rounded to multiples of 8), the
    1280-channel head conv too (kept at >= 1280 * multiplier, as the paper does below 1.0 only for ImageNet).
    """

    fast_path = FastPath(True, True, "bf16 + channels_last 1.8x fp32 at 1 thread despite the depthwise convs (leaderboard_rates.json)")

    #: (expansion t, output channels c at multiplier 1, repeats n, stride s of the first block)
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        mult = width / 32
        c = _round8(32 * mult)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        for t, c_base, n, s in self.SETTINGS:
            c_out = _round8(c_base * mult)
            for i in range(n):
                layers.append(MBConv(c, c_out, s if i == 0 else 1, 3, t))  # ReLU (the ops' own; ReLU6 only matters for fixed-point)
                c = c_out
        last = _round8(1280 * mult)
        layers += [nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@MODELS.register("vit-uniform", help="uniform ViT (Dosovitskiy et al. 2021; DeiT-style): 6 blocks, 4 heads, "
                                     "MLP 2x; width=W: embedding width (64 default)")
class UniformViT(VisionTransformer):
    """A plain ViT (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021; the DeiT training-friendly
    form of Touvron et al. 2021): every block the same, ``depth`` = 6 blocks of 4 heads, attention width =
    ``width`` (the embedding), MLP hidden 2 * width; patches of 4 pixels (7x7 tokens on 28x28), else the
    largest patch giving at least 4 tokens per side. Built from the `vit` space's ops, so a searched ViTAS
    network and this one differ only in their widths."""

    fast_path = FastPath(True, False, "GEMMs: bf16 1.7x fp32 at 1 thread (leaderboard_rates.json); only the patch conv sees a memory format")

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 64, resolution: int = 28) -> None:
        if width % 4:
            raise ValueError(f"width {width} must be divisible by the 4 heads")
        patch = next((p for p in (4, 2, 1) if resolution % p == 0 and resolution // p >= 4), 1)
        super().__init__(resolution, in_channels, num_classes, patch, width, [(4, width, 2 * width)] * 6)


class _BiRealBlock(nn.Module):
    """One Bi-Real unit: sign -> binary 3x3 conv -> BN, plus a real-valued shortcut around it (average pool
    2x2 + real 1x1 conv + BN when the shape changes), as in Liu et al. 2018 (fig. 1)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv = BinaryConv2d(c_in, c_out, 3, stride, 1)
        self.bn = nn.BatchNorm2d(c_out)
        if stride == 1 and c_in == c_out:
            self.short: nn.Module = nn.Identity()
        else:
            self.short = nn.Sequential(nn.AvgPool2d(stride, ceil_mode=True, count_include_pad=False) if stride > 1
                                       else nn.Identity(),
                                       nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)) + self.short(x)


@MODELS.register("birealnet", help="Bi-Real Net (Liu et al. 2018), ResNet-18 layout with every 3x3 conv binary "
                                   "and a real shortcut per conv; width=W: W-2W-4W-8W (16 default)")
class BiRealNet(nn.Module):
    """Bi-Real Net-18 of Liu, Wu, Luo, Yang, Liu, Cheng, "Bi-Real Net: Enhancing the Performance of 1-bit CNNs"
    (ECCV 2018): the ResNet-18 layout (4 stages x 2 basic blocks = 16 binary 3x3 convs, stride 2 at the start
    of stages 2-4) with a real-valued identity shortcut around *each* binary conv, so real activations flow
    through the whole network. Binary convs are the project's :class:`BinaryConv2d` (sign with the
    straight-through estimator; XNOR-scaled weights), so the two-stage binary recipe and BOP counting apply.
    The stem (3x3 conv, stride 1 for small images), the downsampling 1x1 convs and the head stay real, as in
    the paper. ``width`` is the first stage's channels (64 in the paper's ImageNet model)."""

    fast_path = FastPath(True, True, "dense binary 3x3 convs (real arithmetic on +/-1): bf16 + channels_last 1.7x fp32 at 1 thread (leaderboard_rates.json)")

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = [nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w)]
        c = w
        for stage, c_out in enumerate((w, 2 * w, 4 * w, 8 * w)):
            for i in range(4):  # 2 basic blocks x 2 convs, each conv its own Bi-Real unit
                layers.append(_BiRealBlock(c, c_out, 2 if stage > 0 and i == 0 else 1))
                c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
