"""Batch-level augmentations for transformer training: CutMix with soft (label-smoothed) targets and random
erasing. Vectorised over the batch; every random draw comes from the generators passed in, so a step is
reproducible from its seed (exact resume).

PyPI's torchvision does not import beside the torch build nasforge pins, so these are small own
implementations following the published algorithms (CutMix: Yun et al., ICCV 2019; random erasing: Zhong et
al., AAAI 2020), checked by tests/test_vit.py.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def soft_targets(y: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """Labels [B] -> label-smoothed one-hot rows [B, K]: 1 - s + s/K on the label, s/K elsewhere."""
    off = smoothing / num_classes
    t = torch.full((y.shape[0], num_classes), off, device=y.device, dtype=torch.float32)
    return t.scatter_(1, y.view(-1, 1), 1.0 - smoothing + off)


def cutmix_box(h: int, w: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box (y0, y1, x0, x1) of area ~(1 - lam) h w, centre uniform, clipped to the image."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    return y0, y1, x0, x1


def cutmix(x: torch.Tensor, y: torch.Tensor, num_classes: int, rng: np.random.Generator, alpha: float = 1.0,
           prob: float = 1.0, smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, float]:
    """CutMix a batch with its reverse: a box of x.flip(0) pasted into x, lam ~ Beta(alpha, alpha) corrected to
    the clipped box area. Returns (images [B, C, H, W], soft targets [B, K], lam actually used).

    With probability 1 - prob (or alpha <= 0) the batch is returned unmixed (lam = 1) with smoothed targets.
    """
    t = soft_targets(y, num_classes, smoothing)
    if alpha <= 0 or rng.random() >= prob:
        return x, t, 1.0
    lam = float(rng.beta(alpha, alpha))
    h, w = x.shape[-2:]
    y0, y1, x0, x1 = cutmix_box(h, w, lam, rng)
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
    return out, lam * t + (1.0 - lam) * t.flip(0), lam


def random_erasing(x: torch.Tensor, prob: float, g: torch.Generator, area: tuple[float, float] = (0.02, 1 / 3),
                   log_ratio: tuple[float, float] = (math.log(0.3), math.log(3.3))) -> torch.Tensor:
    """Per image, with probability `prob`, replace a random rectangle (area fraction in `area`, aspect ratio
    log-uniform) by standard-normal noise ("pixel" mode, as DeiT); rectangles are clipped to the image."""
    if prob <= 0:
        return x
    n, c, h, w = x.shape
    dev = x.device
    erase = torch.rand(n, generator=g) < prob  # host: drawn on g (CPU)
    frac = torch.empty(n).uniform_(area[0], area[1], generator=g)  # host: drawn on g (CPU)
    ratio = torch.exp(torch.empty(n).uniform_(log_ratio[0], log_ratio[1], generator=g))  # host: drawn on g (CPU)
    eh = (torch.sqrt(frac * h * w * ratio)).round().clamp(1, h).long()
    ew = (torch.sqrt(frac * h * w / ratio)).round().clamp(1, w).long()
    top = (torch.rand(n, generator=g) * (h - eh + 1)).long()  # host: drawn on g (CPU)
    left = (torch.rand(n, generator=g) * (w - ew + 1)).long()  # host: drawn on g (CPU)
    noise = torch.randn(x.shape, generator=g).to(device=dev, dtype=x.dtype)  # host: drawn on g (CPU)
    top, left, eh, ew, erase = top.to(dev), left.to(dev), eh.to(dev), ew.to(dev), erase.to(dev)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = ((ys >= top.view(-1, 1, 1)) & (ys < (top + eh).view(-1, 1, 1)) & (xs >= left.view(-1, 1, 1))
              & (xs < (left + ew).view(-1, 1, 1)) & erase.view(-1, 1, 1))
    return torch.where(inside.unsqueeze(1).to(dev), noise, x)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_k targets_k log softmax(logits)_k (targets [B, K] rows sum to 1)."""
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()
