"""The NAS-Bench-Macro space (Su et al., "Prioritized Architecture Sampling with Monte-Carlo Tree Search",
CVPR 2021): 8 searchable layers, each one of identity, MB3_K3 or MB6_K5; 3^8 = 6,561 networks.

An architecture is an 8-character string over {0, 1, 2} (0 = identity, 1 = MobileNetV2 block with
expansion 3 and kernel 3, 2 = expansion 6 and kernel 5), the key of the published table.

The network follows the benchmark's training code (github xiusu/NAS-Bench-Macro, train/model.py): a 3x3
conv-BN-ReLU stem to C = 32 channels; three stages of 2, 3 and 3 layers whose first layer has stride 2 and
doubles the channels (an identity there becomes a strided 1x1 conv + BN); MobileNetV2 inverted residuals
(1x1 expand, kxk depthwise, 1x1 project, BN after each, ReLU after the first two, a residual when shapes
allow); a 1x1 conv-BN-ReLU to 1280 channels, global average pool and a linear classifier. With C = 32 and
10 classes the parameter counts equal the table's ``params`` field.
"""
from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn as nn

from ..ops.mobile import MBConv
from ..options import Opt
from ..tables.macro import MACRO_CHOICES, MACRO_LAYERS, parse_macro_arch
from ..errors import ConfigError
from ..registry import SPACES
from .base import CategoricalEncoding, SearchSpace

STAGES: tuple[int, ...] = (2, 3, 3)  # layers per stage; the first layer of each stage has stride 2
_EXPAND_KERNEL = {"mb3_k3": (3, 3), "mb6_k5": (6, 5)}


def macro_layer(choice: str, C_in: int, C_out: int, stride: int) -> nn.Module:
    if choice == "identity":
        if stride == 1 and C_in == C_out:
            return nn.Identity()
        return nn.Sequential(nn.Conv2d(C_in, C_out, 1, stride, bias=False), nn.BatchNorm2d(C_out))
    expand, kernel = _EXPAND_KERNEL[choice]
    # MobileNetV2's inverted residual: 1x1 expand, kxk depthwise (carries the stride), 1x1 linear projection
    return MBConv(C_in, C_out, stride, kernel, expand)


class MacroNetwork(nn.Module):
    def __init__(self, arch: str, C: int, head: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.arch = arch
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C),
                                  nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        choices = iter(int(ch) for ch in arch)
        c = C
        for n in STAGES:
            for i in range(n):
                stride, c_out = (2, 2 * c) if i == 0 else (1, c)
                layers.append(macro_layer(MACRO_CHOICES[next(choices)], c, c_out, stride))
                c = c_out
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Conv2d(c, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.layers(self.stem(x)))
        return self.classifier(x.mean(dim=(2, 3)))


@SPACES.register("macro", help="NAS-Bench-Macro: 8 layers x {identity, mb3_k3, mb6_k5}; arch = 8-digit string")
class MacroSpace(SearchSpace):
    """Options: C (stem channels; doubled at each of the 3 stages), head (channels of the last 1x1 conv)."""

    name = "macro"
    defaults = {"C": Opt(32, ">=1"), "head": Opt(1280, ">=1")}
    table = "nas-bench-macro"

    def sample(self, rng: random.Random) -> str:
        return "".join(str(rng.randrange(len(MACRO_CHOICES))) for _ in range(MACRO_LAYERS))

    def validate(self, arch: Any) -> str:
        return parse_macro_arch(arch)

    def mutate(self, arch: Any, rng: random.Random) -> str:
        """Change the choice of one layer."""
        digits = list(self.validate(arch))
        i = rng.randrange(MACRO_LAYERS)
        digits[i] = rng.choice([d for d in "012" if d != digits[i]])
        return "".join(digits)

    def build(self, arch: Any, **overrides: Any) -> MacroNetwork:
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise ConfigError(f"unknown build option(s) {sorted(unknown)} for space 'macro'; valid: C, head")
        C, head = self._option(overrides, "C"), self._option(overrides, "head")
        for key, v in (("C", C), ("head", head)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"macro option {key} must be an integer >= 1, got {v!r}")
        return MacroNetwork(self.validate(arch), C, head, self.in_channels, self.num_classes)

    def categorical(self) -> CategoricalEncoding:
        """Choice (MACRO_CHOICES index) per layer; progressive search decides layers first to last, undecided
        layers are identity (0); K = 8 (3 + 7 x 8 = 59 queries reach full size)."""
        return CategoricalEncoding(
            positions=MACRO_LAYERS, choices=len(MACRO_CHOICES), encode=lambda a: [int(ch) for ch in a],
            decode=lambda c: "".join(str(int(i)) for i in c), growth_steps=tuple((i,) for i in range(MACRO_LAYERS)),
            undecided=0, beam=8)

    def describe(self, arch: Any) -> str:
        return " ".join(MACRO_CHOICES[int(ch)] for ch in self.validate(arch))

    def figure(self, arch: Any) -> list:
        """The 8 searchable layers as a strip: the chosen block, stride and output channels of each."""
        from .figure import StripFigure

        blocks, C, layer = [], self.options["C"], 0
        for stage, n in enumerate(STAGES):
            C *= 2
            for k in range(n):
                choice = MACRO_CHOICES[int(self.validate(arch)[layer])]
                blocks.append((choice, f"stride {2 if k == 0 else 1}, {C} ch"))
                layer += 1
        return [StripFigure("searchable layers", blocks)]
