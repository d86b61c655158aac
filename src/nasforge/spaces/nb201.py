"""NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 ops; architectures are the official arch strings.

Skeleton (Dong & Yang 2020): stem conv -> N cells at C -> residual block (stride 2) -> N cells at 2C ->
residual block -> N cells at 4C -> BN-ReLU -> global pool -> linear. The cell output is node 3.
"""
from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn as nn

from ..benchmarks.nb201 import NB201_EDGES, NB201_OPS, format_arch, parse_arch
from ..ops import NB201_OPS as OP_FACTORIES
from ..ops import ResNetBasicBlock, is_parameter_free
from ..registry import SPACES
from ..supernet import MixedOp, Supernet
from .base import SearchSpace

OPS = list(NB201_OPS)


class NB201Cell(nn.Module):
    """A fixed cell: every edge runs its one op; `none` edges are left out entirely."""

    def __init__(self, ops: tuple[str, ...], C: int, affine: bool = True) -> None:
        super().__init__()
        self.edges = nn.ModuleDict()
        for (i, j), op in zip(NB201_EDGES, ops):
            if op != "none":
                self.edges[f"{i}{j}"] = OP_FACTORIES[op](C, 1, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            terms = [self.edges[f"{i}{j}"](nodes[i]) for i in range(j) if f"{i}{j}" in self.edges]
            nodes.append(sum(terms) if terms else torch.zeros_like(x))
        return nodes[3]


class SearchCell(nn.Module):
    """A supernet cell: a MixedOp on every edge."""

    def __init__(self, C: int, affine: bool = False, track_running_stats: bool = True) -> None:
        super().__init__()
        self.edges = nn.ModuleList()
        for _ in NB201_EDGES:
            ops = [OP_FACTORIES[name](C, 1, affine) for name in OPS]
            if not track_running_stats:
                for m in ops:
                    for bn in m.modules():
                        if isinstance(bn, nn.BatchNorm2d):
                            bn.track_running_stats = False
                            bn.running_mean = bn.running_var = bn.num_batches_tracked = None
            self.edges.append(MixedOp(ops, OPS))

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None, path: torch.Tensor | None) -> torch.Tensor:
        nodes = [x]
        e = 0
        for j in (1, 2, 3):
            total = None
            for i in range(j):
                if path is not None:
                    y = self.edges[e](nodes[i], index=int(path[e]))
                else:
                    y = self.edges[e](nodes[i], weights=weights[e])
                total = y if total is None else total + y
                e += 1
            nodes.append(total)
        return nodes[3]


class _Skeleton(nn.Module):
    """Stem, three stages of cells separated by residual blocks, classifier."""

    def __init__(self, make_cell, C: int, N: int, in_channels: int, num_classes: int, affine: bool) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: list[nn.Module] = []
        c = C
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBasicBlock(c, 2 * c, 2, affine=True))
                c *= 2
            layers.extend(make_cell(c) for _ in range(N))
        self.layers = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.head(x)).flatten(1))


class NB201Network(_Skeleton):
    def __init__(self, arch: str, C: int, N: int, in_channels: int, num_classes: int) -> None:
        ops = parse_arch(arch)
        super().__init__(lambda c: NB201Cell(ops, c), C, N, in_channels, num_classes, affine=True)
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.classify(x)


class NB201Supernet(Supernet, _Skeleton):
    """All cells share one alpha matrix [6 edges x 5 ops] (one group, ``cell``)."""

    def __init__(self, C: int, N: int, in_channels: int, num_classes: int, track_running_stats: bool = True) -> None:
        _Skeleton.__init__(self, lambda c: SearchCell(c, affine=False, track_running_stats=track_running_stats),
                           C, N, in_channels, num_classes, affine=False)
        self.init_supernet()
        self.op_names = OPS
        self.alphas["cell"] = nn.Parameter(1e-3 * torch.randn(len(NB201_EDGES), len(OPS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = self._path["cell"] if self._path is not None else None
        weights = None if path is not None else self.op_weights()["cell"]
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, weights, path) if isinstance(layer, SearchCell) else layer(x)
        return self.classify(x)

    def derive(self, scores: dict[str, torch.Tensor] | None = None) -> str:
        """Per-edge argmax over all five ops, `none` included (NB201's rule; no top-2 pruning)."""
        s = (scores or {"cell": self.alphas["cell"].detach()})["cell"]
        return format_arch([OPS[int(k)] for k in s.argmax(-1)])

    def path_to_arch(self, path: dict[str, torch.Tensor]) -> str:
        return format_arch([OPS[int(k)] for k in path["cell"]])


@SPACES.register("nb201", help="NAS-Bench-201 cell: 6 edges x 5 ops, 15,625 cells; arch = official arch string")
class NB201Space(SearchSpace):
    name = "nb201"
    supports_weight_sharing = True
    defaults = {"C": 16, "N": 5}

    def sample(self, rng: random.Random) -> str:
        return format_arch([rng.choice(OPS) for _ in NB201_EDGES])

    def validate(self, arch: Any) -> str:
        return format_arch(parse_arch(arch))

    def mutate(self, arch: str, rng: random.Random) -> str:
        ops = list(parse_arch(arch))
        e = rng.randrange(len(ops))
        ops[e] = rng.choice([o for o in OPS if o != ops[e]])
        return format_arch(ops)

    def build(self, arch: Any, **overrides: Any) -> nn.Module:
        return NB201Network(self.validate(arch), self._option(overrides, "C"), self._option(overrides, "N"),
                            self.in_channels, self.num_classes)

    def supernet(self, **overrides: Any) -> NB201Supernet:
        return NB201Supernet(self._option(overrides, "C"), self._option(overrides, "N"), self.in_channels,
                             self.num_classes, track_running_stats=overrides.get("track_running_stats", True))

    def parameter_free_count(self, arch: str) -> int:
        return sum(is_parameter_free(op) for op in parse_arch(arch))
