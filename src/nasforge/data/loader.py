"""In-memory batch loader with vectorised augmentation (no per-sample Python loop on the hot path).

Every epoch's order and every batch's augmentation draw from a generator seeded by (seed, epoch), so a run
resumed at an epoch boundary sees exactly the batches the uninterrupted run would have seen.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .images import ImageDataset


def random_crop(x: torch.Tensor, padding: int, g: torch.Generator) -> torch.Tensor:
    """Pad with zeros and crop back to the original size at a random offset per image."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (n, 1), generator=g)
    ox = torch.randint(0, 2 * padding + 1, (n, 1), generator=g)
    rows = (oy + torch.arange(h)).unsqueeze(2)  # [n, h, 1]
    cols = (ox + torch.arange(w)).unsqueeze(1)  # [n, 1, w]
    batch = torch.arange(n).view(n, 1, 1)
    return xp.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def random_hflip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    flip = torch.rand(x.shape[0], generator=g) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def cutout(x: torch.Tensor, length: int, g: torch.Generator) -> torch.Tensor:
    """Zero a length x length square at a random centre per image (the square may cross the border)."""
    if length <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), generator=g)
    cx = torch.randint(0, w, (n, 1, 1), generator=g)
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    top, left = cy - length // 2, cx - length // 2
    inside = (ys >= top) & (ys < top + length) & (xs >= left) & (xs < left + length)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class Loader:
    """Iterate (images float32 normalised [B, C, H, W], labels int64 [B]) over an ImageDataset.

    `drop_last` drops an incomplete last batch (the ImageNet convention); `drop_single` drops it only when
    it holds a single image, which training-mode BatchNorm cannot normalise once a network's maps are 1x1
    (training streams use it, so any dataset size trains in every network)."""

    def __init__(self, data: ImageDataset, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 crop_padding: int = 0, hflip: bool = False, cutout: int = 0, drop_last: bool = False,
                 drop_single: bool = False, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        if len(data) == 0:
            raise ConfigError(f"dataset '{data.name}' is empty")
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.cutout = cutout
        self.drop_last = drop_last and len(data) >= batch_size
        self.drop_single = drop_single
        if mean is None or std is None:
            mean, std = data.stats()
        c = data.in_channels
        self.mean = torch.tensor(list(mean) * (c // len(mean)), dtype=torch.float32).view(1, c, 1, 1) * 255.0
        self.inv_std = 1.0 / (torch.tensor(list(std) * (c // len(std)), dtype=torch.float32).view(1, c, 1, 1) * 255.0)
        self.epoch = 0

    @property
    def augments(self) -> bool:
        return bool(self.crop_padding or self.hflip or self.cutout)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.data), self.batch_size)
        if rest and (self.drop_last or (self.drop_single and rest == 1 and full > 0)):
            return full
        return full + (rest > 0)

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) % (2**63))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self._generator()
        n = len(self.data)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        self.epoch += 1  # a plain `for` over the loader walks through epochs
        for i in range(len(self)):
            idx = order[i * self.batch_size: (i + 1) * self.batch_size]
            yield self.transform(self.data.images[idx], g), self.data.labels[idx]

    def transform(self, images: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        x = images
        if g is not None and self.augments:
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, g)
            if self.hflip:
                x = random_hflip(x, g)
        x = (x.float() - self.mean) * self.inv_std
        if g is not None and self.cutout:
            x = cutout(x, self.cutout, g)
        return x

    def forever(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless stream across epochs (for the validation stream of bi-level searches)."""
        while True:
            yield from self
