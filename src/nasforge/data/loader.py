"""In-memory batch loader with vectorised augmentation (no per-sample Python loop on the hot path).

Every epoch's order and every batch's augmentation draw from a generator seeded by (seed, epoch), so a run
resumed at an epoch boundary sees exactly the batches the uninterrupted run would have seen.

Device: with ``device=`` the uint8 images and labels are copied to that device once (cached per dataset and
device) and cropping, flipping, normalisation and cutout run there; only the per-batch random draws (a few
integers per image, from a CPU generator so every device sees the same batches) cross to the device.

Data parallel: with ``world_size > 1`` every rank draws the same global batch (same order, same augmentation
draws) and keeps its contiguous shard ``rank``; a last batch that does not split evenly is cut to a multiple
of ``world_size`` so that averaging gradients over ranks equals the gradient of the global batch.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .images import ImageDataset


def random_crop(x: torch.Tensor, padding: int, g: torch.Generator, n_total: int | None = None,
                keep: slice = slice(None)) -> torch.Tensor:
    """Pad with zeros and crop back to the original size at a random offset per image.

    `x`: [n, C, H, W] on any device; the offsets are drawn on `g` (CPU) for `n_total` images (default n)
    and the rows `keep` are used, so a shard of a batch is cropped exactly as in the whole batch.
    """
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    n_total = n_total or n
    dev = x.device
    xp = F.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (n_total, 1), generator=g)[keep].to(dev)  # host: drawn on g
    ox = torch.randint(0, 2 * padding + 1, (n_total, 1), generator=g)[keep].to(dev)  # host: drawn on g
    rows = (oy + torch.arange(h, device=dev)).unsqueeze(2)  # [n, h, 1]
    cols = (ox + torch.arange(w, device=dev)).unsqueeze(1)  # [n, 1, w]
    batch = torch.arange(n, device=dev).view(n, 1, 1)
    return xp.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def random_hflip(x: torch.Tensor, g: torch.Generator, n_total: int | None = None,
                 keep: slice = slice(None)) -> torch.Tensor:
    """Flip each image left-right with probability 1/2 (draws as in :func:`random_crop`)."""
    flip = (torch.rand(n_total or x.shape[0], generator=g)[keep] < 0.5).to(x.device)  # host: drawn on g
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def cutout(x: torch.Tensor, length: int, g: torch.Generator, n_total: int | None = None,
           keep: slice = slice(None)) -> torch.Tensor:
    """Zero a length x length square at a random centre per image (the square may cross the border)."""
    if length <= 0:
        return x
    n, _, h, w = x.shape
    n_total = n_total or n
    dev = x.device
    cy = torch.randint(0, h, (n_total, 1, 1), generator=g)[keep].to(dev)  # host: drawn on g
    cx = torch.randint(0, w, (n_total, 1, 1), generator=g)[keep].to(dev)  # host: drawn on g
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    top, left = cy - length // 2, cx - length // 2
    inside = (ys >= top) & (ys < top + length) & (xs >= left) & (xs < left + length)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class Loader:
    """Iterate (images float32 normalised [B, C, H, W], labels int64 [B]) over an ImageDataset.

    `device`: where batches are produced (the dataset is copied there once); default CPU.
    `rank`, `world_size`: data parallelism; each rank yields its shard of every global batch of
    `batch_size` images (see the module docstring).
    `drop_last` drops an incomplete last batch (the ImageNet convention); `drop_single` drops it only when
    it holds a single image, which training-mode BatchNorm cannot normalise once a network's maps are 1x1
    (training streams use it, so any dataset size trains in every network)."""

    def __init__(self, data: ImageDataset, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 crop_padding: int = 0, hflip: bool = False, cutout: int = 0, drop_last: bool = False,
                 drop_single: bool = False, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 device: torch.device | str | None = None, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside a world of {world_size} process(es)")
        if batch_size < world_size:
            raise ConfigError(f"batch size {batch_size} is smaller than the number of processes ({world_size}); "
                              "every process needs at least one image per batch")
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
        self.device = torch.device(device) if device is not None else data.images.device
        self.rank, self.world_size = rank, world_size
        self.drop_single = drop_single
        if mean is None or std is None:
            mean, std = data.stats()
        c = data.in_channels
        dev = self.device
        self.mean = torch.tensor(list(mean) * (c // len(mean)), dtype=torch.float32, device=dev).view(1, c, 1, 1) * 255.0
        self.inv_std = 1.0 / (torch.tensor(list(std) * (c // len(std)), dtype=torch.float32,
                                           device=dev).view(1, c, 1, 1) * 255.0)
        self._images, self._labels = data.on(dev)
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
        g = torch.Generator(device="cpu")  # host: the same seed gives the same batches on every device
        return g.manual_seed((self.seed * 1_000_003 + self.epoch) % (2**63))

    def shard(self, n: int) -> slice:
        """Rows of a global batch of `n` images that this rank keeps (all of them without parallelism)."""
        if self.world_size == 1:
            return slice(0, n)
        per = n // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self._generator()
        n = len(self.data)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)  # host: drawn on g
        order = order.to(self.device)
        self.epoch += 1  # a plain `for` over the loader walks through epochs
        for i in range(len(self)):
            idx = order[i * self.batch_size: (i + 1) * self.batch_size]
            keep = self.shard(len(idx))
            if keep.stop == keep.start:  # a last batch smaller than the number of ranks
                break
            yield self.transform(self._images[idx[keep]], g, len(idx), keep), self._labels[idx[keep]]

    def transform(self, images: torch.Tensor, g: torch.Generator | None = None, n_total: int | None = None,
                  keep: slice = slice(None)) -> torch.Tensor:
        """uint8 [n, C, H, W] -> augmented, normalised float32 on the loader's device.

        With `n_total`/`keep`, `images` are the rows `keep` of a global batch of `n_total` images and the
        random draws are those of the whole batch (data parallelism)."""
        x = images.to(self.device)
        if g is not None and self.augments:
            if self.crop_padding:
                x = random_crop(x, self.crop_padding, g, n_total, keep)
            if self.hflip:
                x = random_hflip(x, g, n_total, keep)
        x = (x.float() - self.mean) * self.inv_std
        if g is not None and self.cutout:
            x = cutout(x, self.cutout, g, n_total, keep)
        return x

    def forever(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless stream across epochs (for the validation stream of bi-level searches)."""
        while True:
            yield from self
