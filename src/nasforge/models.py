"""Fixed, hand-designed networks (not searched): sanity anchors for everything searched."""
from __future__ import annotations

import torch
import torch.nn as nn

from .accel import FastPath
from .registry import Registry

MODELS: Registry = Registry("model")


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@MODELS.register("baseline", help="hand-designed 4-conv CNN (32-32-64-64, ~66K params), the sanity anchor")
class BaselineCNN(nn.Module):
    """Two conv-conv-pool stages and a linear head on global-average-pooled features."""

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
