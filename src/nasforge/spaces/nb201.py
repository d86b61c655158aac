"""NAS-Bench-201 cell space: 4 nodes, 6 edges, 5 ops; architectures are the official arch strings.

Skeleton (Dong & Yang 2020): stem conv -> N cells at C -> residual block (stride 2) -> N cells at 2C ->
residual block -> N cells at 4C -> BN-ReLU -> global pool -> linear. The cell output is node 3.
"""
from __future__ import annotations

import functools
import random
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..accel import FastPath
from ..options import Opt
from ..tables.nb201_arch import NB201_EDGES, NB201_OPS, format_arch, indices_to_ops, ops_to_indices, parse_arch
from ..ops import NB201_OPS as OP_FACTORIES
from ..ops import ResNetBasicBlock, is_parameter_free
from ..registry import SPACES
from ..errors import ConfigError, choices_message
from ..supernet import DERIVATION_RULES, MixedOp, Supernet
from ..supernet.grouped import grouped_batch_norm
from .base import CategoricalEncoding, SearchSpace

OPS = list(NB201_OPS)
_SKIP, _CONV1, _CONV3, _POOL = (OPS.index(n) for n in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"))
_OUT_EDGES = [[e for e, (src, _) in enumerate(NB201_EDGES) if src == i] for i in range(3)]  # edges leaving node i


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
    """A supernet cell: a MixedOp on every edge.

    Sampled mode (`path`) runs exactly the chosen op module of each edge. Weighted mode (DARTS) computes the
    same weighted sum as calling every MixedOp, but grouped by *source node*, because at search scale the
    cost is in many small memory-bound kernels rather than in FLOPs:

    - the ReLU in front of the convs is computed once per source node instead of once per conv op;
    - all 3x3 (and all 1x1) convs leaving a node run as one conv with their weights concatenated along the
      output channels, and their non-affine BNs as one batch norm (BN is per channel, so this is exact); the
      op weight is folded into that BN as its per-channel scale, which equals multiplying the output by it;
    - the 3x3 average pool (padding excluded from the count) is computed once per source node, as a
      depthwise sum-conv whose per-pixel 1/count is folded into the op weight (measured faster than
      avg_pool2d here, forward + backward: ~1-4x in channels-last, ~20x in NCHW);
    - `none` contributes exactly zero and is never computed (its weight still enters the softmax).

    The running statistics stay in each op's own BatchNorm2d, so state dicts, sampled mode and the
    stand-alone ops are unchanged. Set ``fused = False`` to run the reference per-edge MixedOp sum instead.
    """

    fused: bool = True

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
        self.register_buffer("_ones", torch.ones(C, 1, 3, 3), persistent=False)  # depthwise sum-pool kernel
        self._inv_count: dict[tuple[int, int], torch.Tensor] = {}

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None, path: torch.Tensor | None) -> torch.Tensor:
        if path is None and self.fused:
            return self._fused_forward(x, weights)
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

    # -- weighted mode, grouped by source node ---------------------------------------------------
    def _fused_forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        acc: dict[int, torch.Tensor] = {}  # node -> sum of the edge outputs computed so far
        for i in range(3):
            h = x if i == 0 else acc[i]  # complete: every edge into node i leaves an earlier node
            out = _OUT_EDGES[i]
            w = weights[out]  # [edges leaving i, ops]
            conv = self._conv_terms(h, out, w)  # [B, edges, C, H, W]: weighted 1x1 + 3x3 conv ops per edge
            pool = F.conv2d(h, self._ones, padding=1, groups=h.shape[1])  # 3x3 window sums
            inv = self._pool_scale(h)
            for n, (e, y) in enumerate(zip(out, conv.unbind(1))):  # unbind: one stack in backward
                j = NB201_EDGES[e][1]
                y = torch.addcmul(y, h, w[n, _SKIP])
                y = torch.addcmul(y, pool, w[n, _POOL] * inv)
                acc[j] = acc[j] + y if j in acc else y
        return acc[3]

    def _pool_scale(self, h: torch.Tensor) -> torch.Tensor:
        """1 / (number of in-image pixels in each 3x3 window), as avg_pool2d(count_include_pad=False)."""
        key = (h.shape[-2], h.shape[-1])
        inv = self._inv_count.get(key)
        if inv is None or inv.device != h.device or inv.dtype != h.dtype:
            ones = torch.ones(1, 1, *key, dtype=h.dtype, device=h.device)
            inv = 1.0 / (9.0 * F.avg_pool2d(ones, 3, 1, 1, count_include_pad=True))  # zero padding: count / 9
            self._inv_count[key] = inv
        return inv

    def _conv_terms(self, h: torch.Tensor, out: list[int], w: torch.Tensor) -> torch.Tensor:
        """sum over {1x1, 3x3} of w[op] * BN(conv(relu(h))) for every edge in `out`, as [B, len(out), C, H, W]."""
        r = F.relu(h)
        B, C, H, W = h.shape
        ys = []
        for k, pad in ((_CONV1, 0), (_CONV3, 1)):
            units = [self.edges[e].ops[k] for e in out]  # ReLUConvBN: [relu, conv, bn]
            weight = torch.cat([u[1].weight for u in units]) if len(units) > 1 else units[0][1].weight
            y = F.conv2d(r, weight, padding=pad)
            ys.append(grouped_batch_norm(y, [u[2] for u in units], w[:, k].repeat_interleave(C), self.training))
        return (ys[0] + ys[1]).view(B, len(out), C, H, W)


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


@functools.lru_cache(maxsize=1)
def _all_cells() -> tuple[torch.Tensor, torch.Tensor]:
    """Every NB201 cell as op indices [15625, 6] (NB201_EDGES order) and whether its input (node 0) reaches
    its output (node 3) through non-`none` edges [15625] (bool)."""
    cells = torch.cartesian_prod(*[torch.arange(len(OPS))] * len(NB201_EDGES))  # host: a lookup table
    live = cells != OPS.index("none")
    reach = {0: torch.ones(len(cells), dtype=torch.bool)}  # host: a lookup table
    for node in (1, 2, 3):  # edges are listed in topological order
        into = [e for e, (_, dst) in enumerate(NB201_EDGES) if dst == node]
        reach[node] = torch.stack([reach[NB201_EDGES[e][0]] & live[:, e] for e in into]).any(0)
    return cells, reach[3]


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
        x = self.stem(x)  # memory format: nasforge.accel.apply_memory_format (the space's fast_paths)
        for layer in self.layers:
            x = layer(x, weights, path) if isinstance(layer, SearchCell) else layer(x)
        return self.classify(x)

    def derive(self, scores: dict[str, torch.Tensor] | None = None, rule: str = "default") -> str:
        """The cell of `scores` [6, 5] (logits; default the alphas) by `rule`:

        * "default": per-edge argmax over all five ops, `none` included (NAS-Bench-201's rule; no top-2
          pruning). It can cut every input-to-output path (a constant network, see `is_degenerate`);
        * "no-none": per-edge argmax over the four other ops (the DARTS convention: `none` is never chosen);
        * "connected": the cell with the highest sum of per-edge log-softmax scores among the cells whose
          input reaches the output through non-`none` edges (= "default" whenever that cell is connected).
        """
        s = (scores or {"cell": self.alphas["cell"].detach()})["cell"].detach().cpu().double()  # derived on the host
        if rule == "default":
            return format_arch([OPS[int(k)] for k in s.argmax(-1)])
        if rule == "no-none":
            none = OPS.index("none")
            masked = s.clone()
            masked[:, none] = float("-inf")
            return format_arch([OPS[int(k)] for k in masked.argmax(-1)])
        if rule == "connected":
            cells, connected = _all_cells()
            logp = torch.log_softmax(s, dim=-1)  # [6, 5]
            total = logp[torch.arange(len(NB201_EDGES)), cells].sum(-1)  # [15625]; host: derived on the host
            total[~connected] = float("-inf")
            return format_arch([OPS[int(k)] for k in cells[int(total.argmax())]])
        raise ConfigError(choices_message("derivation rule", str(rule), list(DERIVATION_RULES)))

    def path_to_arch(self, path: dict[str, torch.Tensor], top2: bool = False) -> str:
        """The cell a path runs (``top2`` does not apply: NB201 keeps every edge)."""
        return format_arch([OPS[int(k)] for k in path["cell"]])

    def arch_to_path(self, arch: str) -> dict[str, torch.Tensor]:
        return {"cell": torch.tensor([self.op_names.index(op) for op in parse_arch(arch)], dtype=torch.long)}  # host: path indices


@SPACES.register("nb201", help="NAS-Bench-201 cell: 6 edges x 5 ops, 15,625 cells; arch = official arch string")
class NB201Space(SearchSpace):
    name = "nb201"
    supernet_kind = "cell"
    defaults = {"C": Opt(16, ">=1", help="channels of the first stage"), "N": Opt(5, ">=1", help="cells per stage")}
    search_optimizer = {"weight_decay": 5e-4, "nesterov": True}  # NAS-Bench-201's training recipe
    table = "nas-bench-201"
    latency_table = "nb201"  # HELP: every cell measured on 27 devices (nasforge.hardware)
    # dense 3x3 convs: AMX takes them (1 thread; docs/benchmarks.md, "precision and memory format per space")
    fast_paths = {"supernet": FastPath(True, True, "NB201 supernet, dense 3x3 convs: bf16 1.5-1.95x, "
                                                   "channels_last 1.21x"),
                  "network": FastPath(True, True, "NB201 network, dense 3x3 convs: bf16 ~1.7-2x, channels_last 1.17x")}

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
        self.check_build_overrides(overrides)
        return NB201Network(self.validate(arch), self._option(overrides, "C"), self._option(overrides, "N"),
                            self.in_channels, self.num_classes)

    def supernet(self, **overrides: Any) -> NB201Supernet:
        return NB201Supernet(self._option(overrides, "C"), self._option(overrides, "N"), self.in_channels,
                             self.num_classes, track_running_stats=overrides.get("track_running_stats", True))

    def categorical(self) -> CategoricalEncoding:
        """Op index (NB201_OPS) per edge (NB201_EDGES order). Progressive search assigns 0->3 first, then
        0->1 and 1->3, then the rest: each step completes a new input-to-output path, and undecided edges
        are `none`, so every prefix is a cell of the table. K = 40 and rounds of 5 were chosen on seeds
        0-39 of the query benchmark (docs/pnas.md), which reports seeds 100-199."""
        return CategoricalEncoding(
            positions=len(NB201_EDGES), choices=len(OPS), encode=lambda a: ops_to_indices(parse_arch(a)),
            decode=lambda c: format_arch(indices_to_ops(c)), growth_steps=((3,), (0, 4), (1, 2, 5)),
            undecided=OPS.index("none"), beam=40, batch_full=5)

    def parameter_free_count(self, arch: str) -> int:
        return sum(is_parameter_free(op) for op in parse_arch(arch))

    def figure(self, arch: Any) -> list:
        """The cell as a DAG: node 0 (input) to node 3 (output), one edge per op; `none` edges (zero) are
        not drawn (a degenerate cell then shows no path from input to output)."""
        from .figure import CellFigure

        edges = [(f"n{src}", f"n{dst}", op) for (src, dst), op in zip(NB201_EDGES, parse_arch(arch)) if op != "none"]
        return [CellFigure("cell", inputs=["n0"], edges=edges, output="n3",
                           labels={"n0": "in", "n1": "1", "n2": "2", "n3": "out"})]

    def is_degenerate(self, arch: str) -> bool:
        """True when no path of non-`none` edges joins the input (node 0) to the output (node 3): the
        network then predicts a constant (10 % on every NAS-Bench-201 data set)."""
        reach = {0}
        for (src, dst), op in zip(NB201_EDGES, parse_arch(arch)):  # edges are listed in topological order
            if op != "none" and src in reach:
                reach.add(dst)
        return 3 not in reach
