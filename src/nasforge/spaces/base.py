"""The search-space interface.

A space knows how to sample, validate (encode/decode) and build architectures. Architectures are plain JSON
values (a string, a list or a dict of lists): they are stored in result.json, passed between processes and
read back by `nasforge train`, never pickled. Spaces that support weight sharing also build a supernet.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch.nn as nn

from .. import options as _options
from ..errors import ConfigError

Arch = Any  # a JSON value; each space documents its form


class SearchSpace(ABC):
    name: ClassVar[str] = ""
    supports_weight_sharing: ClassVar[bool] = False
    #: option name -> default or `nasforge.options.Opt` (type, range); the options are the *search* scale,
    #: `build(**overrides)` can change them (overrides are checked against the same declaration)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, in_channels: int = 1, num_classes: int = 10, resolution: int = 28, **options: Any) -> None:
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.resolution = resolution
        self.options = _options.resolve(self.defaults, options, f"space '{self.name}'")

    @property
    def config(self) -> dict[str, Any]:
        return {"space": self.name, "in_channels": self.in_channels, "num_classes": self.num_classes,
                "resolution": self.resolution, **self.options}

    @abstractmethod
    def sample(self, rng: random.Random) -> Arch:
        """A uniformly random architecture."""

    @abstractmethod
    def validate(self, arch: Arch) -> Arch:
        """Check a (decoded JSON) architecture and return it in canonical form; raise UserError if invalid."""

    @abstractmethod
    def build(self, arch: Arch, **overrides: Any) -> nn.Module:
        """A standalone network for `arch`; `overrides` change the scale (e.g. C, N) for final training."""

    def mutate(self, arch: Arch, rng: random.Random) -> Arch:
        """A neighbour of `arch` (one decision changed); used by evolution."""
        raise ConfigError(f"space '{self.name}' does not support mutation")

    def supernet(self, **overrides: Any) -> "nn.Module":
        raise ConfigError(f"space '{self.name}' has no weight-sharing supernet; "
                          "use a multi-trial strategy (random, evolution, pnas)")

    def describe(self, arch: Arch) -> str:
        return str(arch)

    def _option(self, overrides: dict[str, Any], key: str) -> Any:
        """`overrides[key]` (checked against the declaration in `defaults`) or the space's own option."""
        if key in overrides and key in self.defaults:
            return _options.as_opt(self.defaults[key]).check(overrides[key], f"space '{self.name}' option {key}")
        return overrides.get(key, self.options[key])
