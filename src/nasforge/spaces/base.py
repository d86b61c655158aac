"""The search-space interface.

A space knows how to sample, validate (encode/decode) and build architectures. Architectures are plain JSON
values (a string, a list or a dict of lists): they are stored in result.json, passed between processes and
read back by `nasforge train`, never pickled. Spaces that support weight sharing also build a supernet.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

import torch.nn as nn

from .. import options as _options
from ..accel import FastPath
from ..errors import ConfigError

Arch = Any  # a JSON value; each space documents its form


@dataclass(frozen=True)
class CategoricalEncoding:
    """A space whose architectures are one choice (0 .. choices-1) per position (NB201: 6 edges x 5 ops).

    Surrogate predictors tokenize such a space and progressive search grows it without knowing which
    space it is. `encode(arch)` -> `positions` ints; `decode(ints)` -> canonical arch. Progressive growth
    decides the positions in the groups of `growth_steps` (default: one at a time, in order); a position
    not decided yet holds `undecided`. `beam` / `batch_full`: PNAS's K and full-size round size tuned on
    the space (None: the strategy's defaults).
    """

    positions: int
    choices: int
    encode: Callable[[Arch], Sequence[int]]
    decode: Callable[[Sequence[int]], Arch]
    growth_steps: tuple[tuple[int, ...], ...] | None = None
    undecided: int = 0
    beam: int | None = None
    batch_full: int | None = None


class SearchSpace(ABC):
    name: ClassVar[str] = ""
    #: the weight-sharing supernet `supernet()` builds, which decides the one-shot methods that search the space
    #: (each declares ``supernet_kinds``): "cell" (alphas over the ops of every edge: darts, single-darts,
    #: manas, manas-ls, random-ws, bats), "single-path" (one op per layer among per-layer candidates, SPOS:
    #: hurricane), "super-transformer" (sliced widths, any subnet: vitas), or None (multi-trial methods only)
    supernet_kind: ClassVar[str | None] = None
    #: what to use instead, in the one line that refuses a one-shot method the space's supernet does not fit
    supernet_hint: ClassVar[str] = "use a multi-trial strategy (random, evolution, pnas)"
    #: the space's networks are one op per layer with per-layer specs (`layer_specs()`, `layer_choices()`,
    #: `make_op`): local latency LUTs and hardware candidate selection work on it
    layerwise: ClassVar[bool] = False
    #: architectures are PNAS block cells (`op_names`, `max_blocks`): block-wise growth and tokens
    block_cells: ClassVar[bool] = False
    #: HELP latency tables the space has ("nb201": every architecture measured; "fbnet": per-(layer, op) fit)
    latency_table: ClassVar[str | None] = None
    #: the space's networks hold binary convolutions (`nasforge.ops.binary`)
    is_binary: bool = False
    #: option name -> default or `nasforge.options.Opt` (type, range); the options are the *search* scale,
    #: `build(**overrides)` can change them (overrides are checked against the same declaration)
    defaults: ClassVar[dict[str, Any]] = {}
    #: the keys `build(**overrides)` accepts; None means the keys of `defaults`
    build_options: ClassVar[tuple[str, ...] | None] = None
    #: what varies with the space, declared here so that no strategy or API function names a space:
    #: the weight optimiser a one-shot search uses by default (SGD momentum 0.9 + cosine; the values of the
    #: space's paper: DARTS 3e-4 without Nesterov) - a strategy's w_weight_decay / w_nesterov override them
    search_optimizer: ClassVar[dict[str, Any]] = {"weight_decay": 3e-4, "nesterov": False}
    #: the published table architectures of this space can be looked up in (a key of
    #: nasforge.tables.lookup.LOOKUPS), or None; used by the table estimator and a search's `table` record
    table: ClassVar[str | None] = None
    #: the build option (`build(arch, **{aux_option: True})`) that adds an auxiliary head, or None; the head
    #: reaches the training engine through nasforge.ops.heads and is left out of `params`
    aux_option: ClassVar[str | None] = None
    #: what pays on this space's networks, per kind ("supernet": what one-shot methods train; "network": what
    #: `build` makes, for retraining, `train` and scratch trials): bf16 autocast where the device runs it natively,
    #: channels_last (nasforge.accel.FastPath). `--precision auto` / `--memory-format auto` resolve from it. A
    #: kind not declared keeps the previous path (fp32, contiguous). Measured ratios: docs/benchmarks.md.
    fast_paths: ClassVar[dict[str, FastPath]] = {}

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

    def fast_path(self, kind: str) -> FastPath:
        """The declared FastPath of network `kind` ("supernet" | "network"); the previous path when undeclared."""
        return self.fast_paths.get(kind, FastPath())

    # -- optional capabilities: the defaults say "not applicable" (None), so callers never probe with hasattr --
    def is_degenerate(self, arch: Arch) -> bool | None:
        """True if `arch` computes a constant (`none` cut every input-to-output path); None: the space
        cannot tell (collapse diagnostics of the one-shot engine)."""
        return None

    def parameter_free_count(self, arch: Arch) -> int | None:
        """How many of `arch`'s ops have no parameters (skip, pooling, none); None: not applicable."""
        return None

    def unused_alpha_groups(self) -> str | None:
        """Why some alpha groups of the supernet take part in no forward pass (so a gradient method cannot
        learn them), or None when every group is used."""
        return None

    def growth(self) -> Any:
        """How the space's architectures grow step by step for progressive search (a
        `nasforge.spaces.growth.Growth`): by the categorical encoding if the space has one; None otherwise.
        Block-cell spaces (pnas) return their own block-by-block growth."""
        encoding = self.categorical()
        if encoding is None:
            return None
        from .growth import CategoricalGrowth

        return CategoricalGrowth(self, encoding)

    def categorical(self) -> CategoricalEncoding | None:
        """The space as one choice per position, if it is one (see CategoricalEncoding); else None."""
        return None

    def size(self) -> int | None:
        """How many distinct architectures the space holds, exactly (a Python int, however large): a categorical
        space is choices ** positions (NB201's 15,625 cells); the other spaces override this and say what they
        count (darts/bats genotypes, pnas cells, mobile/fbnet layer choices, vit subnets). None: a space that
        does not count its architectures. Multi-trial search uses it to refuse a trial budget that can never be
        spent; `nasforge list SPACE` prints it."""
        encoding = self.categorical()
        return None if encoding is None else encoding.choices ** encoding.positions

    def describe(self, arch: Arch) -> str:
        return str(arch)

    def figure(self, arch: Arch) -> list | None:
        """`arch` as drawable parts (:mod:`nasforge.spaces.figure`: cells, strips of blocks, tables) for
        ``nasforge report``; None (the default) shows the architecture as JSON text."""
        return None

    def check_build_overrides(self, overrides: dict[str, Any]) -> None:
        """Reject keys `build` would not use (a typo such as ``c=16`` must not be silently ignored).

        Raises:
            ConfigError: one line naming the unknown keys and the valid ones.
        """
        valid = tuple(self.defaults) if self.build_options is None else self.build_options
        unknown = sorted(set(overrides) - set(valid))
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown} for space '{self.name}'; valid: {', '.join(valid)}")

    def _option(self, overrides: dict[str, Any], key: str) -> Any:
        """`overrides[key]` (checked against the declaration in `defaults`) or the space's own option."""
        if key in overrides and key in self.defaults:
            return _options.as_opt(self.defaults[key]).check(overrides[key], f"space '{self.name}' option {key}")
        return overrides.get(key, self.options[key])
