"""The in-memory image dataset every reader returns and every loader iterates."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import DataError


@dataclass
class ImageDataset:
    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]
    num_classes: int
    name: str = ""
    classes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"{self.name}: images must be uint8 [N, C, H, W], got {tuple(self.images.shape)} "
                            f"{self.images.dtype}")
        if len(self.images) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def on(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) on `device`, copied there once and cached (the loader keeps uint8 data there)."""
        device = torch.device(device)
        if self.images.device == device:
            return self.images, self.labels
        cache = self.__dict__.setdefault("_on_device", {})
        key = str(device)
        if key not in cache:
            cache[key] = (self.images.to(device), self.labels.to(device))
        return cache[key]

    def subset(self, index: torch.Tensor) -> "ImageDataset":
        return ImageDataset(self.images[index], self.labels[index], self.num_classes, self.name, self.classes)

    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std in [0, 1] units (from at most 10k images: enough for normalisation)."""
        x = self.images[:10000].float().div_(255)
        return tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3)).tolist())
