"""Layer-wise (macro) search spaces: a fixed stem, a chain of searchable layers with one op each, a fixed head.

This is the FBNet / SPOS / ProxylessNAS family. An architecture is a JSON list of op names, one per
searchable layer. Each layer has a fixed input width, output width, stride and input resolution
(:class:`LayerSpec`), so a latency lookup table can be keyed per (layer, op). A space subclass supplies the
layer specs, the candidate pool, and a factory ``make_op(name, C_in, C_out, stride)``.

Both standalone networks (:class:`LayerwiseNetwork`) and a single-path supernet
(:class:`LayerwiseSupernet`) are built from the same factory. The supernet runs only the op its current path
selects in each layer (the SPOS rule, Guo et al., ECCV 2020), so only those ops hold activations and get
gradients. Each layer may have its own candidate list (hardware-specific candidate selection, HURRICANE).
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from ..accel import FastPath
from ..errors import ConfigError, UserError, choices_message
from ..ops.depthwise import set_fast_depthwise
from ..supernet import MixedOp, Supernet
from .base import SearchSpace


@dataclass(frozen=True)
class LayerSpec:
    """One searchable layer: input/output channels, stride, input resolution (square, pixels)."""

    C_in: int
    C_out: int
    stride: int
    resolution: int

    @property
    def out_resolution(self) -> int:
        return -(-self.resolution // self.stride)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Stem(nn.Module):
    """3x3 conv (stride s) + BN + ReLU: [B, C_in, H, W] -> [B, C, H/s, W/s]."""

    def __init__(self, C_in: int, C: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(C_in, C, 3, stride, 1, bias=False), nn.BatchNorm2d(C), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Head(nn.Module):
    """1x1 conv to `head` channels + BN + ReLU, global average pool, linear: [B, C, H, W] -> [B, classes]."""

    def __init__(self, C: int, head: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(C, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.conv(x).mean(dim=(2, 3)))


class LayerwiseNetwork(nn.Module):
    """Stem -> one module per layer -> head. `layers` is the list of built ops."""

    def __init__(self, stem: nn.Module, layers: Sequence[nn.Module], head: nn.Module, arch: list[str]) -> None:
        super().__init__()
        self.stem, self.layers, self.head = stem, nn.Sequential(*layers), head
        self.arch = list(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


class LayerwiseSupernet(Supernet):
    """Single-path supernet: layer i holds the ops `candidates[i]`; only the op the path selects runs.

    The path is the dict ``{"layers": LongTensor[L]}`` of indices into each layer's candidate list
    (:meth:`arch_to_path` / :meth:`path_to_arch` convert from/to an architecture). The alphas
    (``{"layers": [L, K]}``, K = the longest candidate list) only carry the shape; they are not trained.
    Forward without a path is an error: there is no weighted (DARTS) mode here.
    """

    def __init__(self, stem: nn.Module, ops: list[list[nn.Module]], candidates: list[list[str]], head: nn.Module) -> None:
        super().__init__()
        self.stem, self.head = stem, head
        self.candidates = [list(c) for c in candidates]
        self.mixed = nn.ModuleList(MixedOp(o, c) for o, c in zip(ops, candidates))
        k = max(len(c) for c in candidates)
        self.op_names = sorted({n for c in candidates for n in c})
        self.alphas["layers"] = nn.Parameter(torch.zeros(len(candidates), k), requires_grad=False)

    def arch_to_path(self, arch: Sequence[str]) -> dict[str, torch.Tensor]:
        """Path of an architecture whose op in every layer is among that layer's candidates (ValueError if not)."""
        idx = []
        for i, (name, cands) in enumerate(zip(arch, self.candidates)):
            if name not in cands:
                raise ValueError(f"layer {i}: op {name!r} is not among this supernet's candidates {cands}")
            idx.append(cands.index(name))
        return {"layers": torch.tensor(idx, dtype=torch.long)}  # host: path indices

    def path_to_arch(self, path: dict[str, torch.Tensor]) -> list[str]:
        return [c[int(i)] for c, i in zip(self.candidates, path["layers"].tolist())]

    def random_path(self, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        idx = [int(torch.randint(0, len(c), (1,), generator=generator)) for c in self.candidates]  # host: path indices
        return {"layers": torch.tensor(idx, dtype=torch.long)}  # host: path indices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._path is None:
            raise RuntimeError("a single-path supernet needs a path: call set_path(...) first")
        x = self.stem(x)
        for op, i in zip(self.mixed, self._path["layers"].tolist()):
            x = op(x, index=i)
        return self.head(x)

    def derive(self, scores: dict[str, torch.Tensor] | None = None) -> list[str]:
        if self._path is None:
            raise RuntimeError("derive() of a single-path supernet returns the current path; none is set")
        return self.path_to_arch(self._path)


class LayerwiseSpace(SearchSpace):
    """Base of the layer-wise spaces. Subclasses implement `layer_specs`, `pool`, `make_op`, `stem_spec`,
    `head_channels` and may restrict ops per layer through `available`."""

    supernet_kind = "single-path"
    layerwise = True
    supernet_hint = "its single-path supernet (one op per layer) is searched with --method hurricane"
    # inverted residual blocks with depthwise convs: bf16 loses, channels_last pays
    fast_paths = {"supernet": FastPath(False, True, "mobile supernet, depthwise MBConv: bf16 0.79x, channels_last 1.43x"),
                  "network": FastPath(False, True, "mobile/fbnet network, depthwise MBConv: bf16 not taken, "
                                                   "channels_last as on the supernet")}

    # -- what a subclass provides --------------------------------------------------------------------
    def layer_specs(self) -> list[LayerSpec]:
        raise NotImplementedError

    def pool(self) -> list[str]:
        """All op names of the space, in a fixed order."""
        raise NotImplementedError

    def make_op(self, name: str, C_in: int, C_out: int, stride: int) -> nn.Module:
        raise NotImplementedError

    def available(self, name: str, spec: LayerSpec) -> bool:
        return True

    def stem_spec(self) -> tuple[int, int]:
        """(stem channels, stem stride)."""
        raise NotImplementedError

    def head_channels(self) -> int:
        raise NotImplementedError

    # -- derived -------------------------------------------------------------------------------------
    @property
    def _fast_depthwise(self) -> bool:
        """The space option ``fused`` where a subclass declares it (false: plain nn.Conv2d depthwise convs,
        bit-identical to before issue 20), else True."""
        return bool(self.options.get("fused", True))

    @property
    def num_layers(self) -> int:
        return len(self.layer_specs())

    def layer_choices(self) -> list[list[str]]:
        """Ops allowed in each layer (the pool filtered by shape)."""
        return [[o for o in self.pool() if self.available(o, s)] for s in self.layer_specs()]

    def sample(self, rng: random.Random) -> list[str]:
        return [rng.choice(c) for c in self.layer_choices()]

    def size(self) -> int:
        """How many distinct architectures the space holds: the product over layers of the ops that fit each
        layer (`layer_choices`: the pool filtered by shape, e.g. `skip` only where it is an identity)."""
        return math.prod(len(c) for c in self.layer_choices())

    def validate(self, arch: Any) -> list[str]:
        choices = self.layer_choices()
        if isinstance(arch, str):
            arch = arch.split()
        if not isinstance(arch, (list, tuple)) or len(arch) != len(choices):
            raise UserError(f"a '{self.name}' architecture is a list of {len(choices)} op names (one per layer), "
                            f"got {arch!r}")
        out = []
        pool = self.pool()
        for i, (op, allowed) in enumerate(zip(arch, choices)):
            if op not in pool:
                raise UserError(f"layer {i}: " + choices_message(f"'{self.name}' op", str(op), pool))
            if op not in allowed:
                raise UserError(f"layer {i}: op {op!r} does not fit this layer's shapes "
                                f"({self.layer_specs()[i].as_dict()}); allowed: {', '.join(allowed)}")
            out.append(str(op))
        return out

    def mutate(self, arch: Any, rng: random.Random) -> list[str]:
        """Change the op of one layer (a layer with a single choice is never picked)."""
        arch = self.validate(arch)
        choices = self.layer_choices()
        layers = [i for i, c in enumerate(choices) if len(c) > 1]
        i = rng.choice(layers)
        arch[i] = rng.choice([o for o in choices[i] if o != arch[i]])
        return arch

    def crossover(self, a: Any, b: Any, rng: random.Random) -> list[str]:
        """Uniform crossover: each layer's op from either parent with probability 1/2."""
        a, b = self.validate(a), self.validate(b)
        return [x if rng.random() < 0.5 else y for x, y in zip(a, b)]

    def _stem_head(self) -> tuple[nn.Module, nn.Module]:
        C, s = self.stem_spec()
        specs = self.layer_specs()
        last = specs[-1].C_out if specs else C
        return Stem(self.in_channels, C, s), Head(last, self.head_channels(), self.num_classes)

    def build(self, arch: Any, **overrides: Any) -> LayerwiseNetwork:
        if overrides:
            space = type(self)(in_channels=self.in_channels, num_classes=self.num_classes, resolution=self.resolution,
                               **{**self.options, **overrides})
            return space.build(arch)
        arch = self.validate(arch)
        stem, head = self._stem_head()
        layers = [self.make_op(o, s.C_in, s.C_out, s.stride) for o, s in zip(arch, self.layer_specs())]
        return set_fast_depthwise(LayerwiseNetwork(stem, layers, head, arch), self._fast_depthwise)

    def supernet(self, candidates: list[list[str]] | None = None, **overrides: Any) -> LayerwiseSupernet:
        """Single-path supernet over `candidates` (per layer; default: every op allowed in the layer)."""
        if overrides:
            raise ConfigError(f"space '{self.name}' builds its supernet at the search scale; no overrides "
                              f"({sorted(overrides)})")
        choices = self.layer_choices()
        if candidates is None:
            candidates = choices
        if len(candidates) != len(choices):
            raise ConfigError(f"candidates must list ops for each of the {len(choices)} layers, got {len(candidates)}")
        for i, (c, allowed) in enumerate(zip(candidates, choices)):
            bad = [o for o in c if o not in allowed]
            if not c or bad:
                raise ConfigError(f"layer {i}: candidates {c} must be a non-empty subset of {allowed}")
        stem, head = self._stem_head()
        ops = [[self.make_op(o, s.C_in, s.C_out, s.stride) for o in c] for c, s in zip(candidates, self.layer_specs())]
        return set_fast_depthwise(LayerwiseSupernet(stem, ops, candidates, head), self._fast_depthwise)

    def describe(self, arch: Any) -> str:
        return " ".join(self.validate(arch))

    def figure(self, arch: Any) -> list:
        """The searchable layers as a strip of blocks (drawn by ``nasforge report``): each layer's op with its
        stride, channels and input resolution."""
        from .figure import StripFigure

        blocks = [(op, f"s{spec.stride}, {spec.C_in}->{spec.C_out} ch, {spec.resolution}px")
                  for op, spec in zip(self.validate(arch), self.layer_specs())]
        return [StripFigure(f"{len(blocks)} searchable layers", blocks)]

    def op_factory(self) -> Callable[[str, int, int, int], nn.Module]:
        return self.make_op

