"""DARTS CNN cell space (Liu et al., ICLR 2019): two cell types, 4 intermediate nodes, 14 edges, 8 ops.

A cell reads the outputs of the two previous cells (input nodes 0 and 1, after a 1x1 preprocessing
conv) and computes intermediate nodes 2..5; each node sums ops applied to earlier nodes, and the cell
outputs the concatenation of its `concat` nodes. Reduction cells (at depth L//3 and 2L//3) double the
channels and run every op that reads an input node with stride 2.

Architectures are JSON genotypes, in one of two shapes:

* shared cells (DARTS): ``{"normal": [[op, input], ...], "normal_concat": [2, 3, 4, 5],
  "reduce": [...], "reduce_concat": [2, 3, 4, 5]}``, every normal cell one copy of ``normal``;
* unique cells (MANAS): ``{"cells": [{"ops": [[op, input], ...], "concat": [...]}, ...]}``, one
  entry per cell, the reduction cells being the ones at index L//3 and 2L//3 of the list.

An ``ops`` list is either the standard form, 2 pairs per node in node order (pairs 2k and 2k+1 feed
node k+2), or the full form, one entry per edge in the order of :func:`cell_edges` (14 entries,
`none` meaning "no edge"); a node of the full form sums all its inputs. `none` edges are never built.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..accel import FastPath, apply_memory_format
from ..options import Opt
from ..errors import ConfigError, UserError, choices_message
from ..ops import DARTS_OPS, FactorizedReduce, Identity, ReLUConvBN, drop_path, is_parameter_free
from ..ops.cnn import OpFactory
from ..ops.depthwise import set_fast_depthwise
from ..ops.heads import clear_auxiliary, tap_auxiliary
from ..registry import SPACES
from ..supernet import DERIVATION_RULES, MixedOp, Supernet
from ..supernet.grouped import grouped_mixed_ops
from .base import SearchSpace

OPS: list[str] = list(DARTS_OPS)  # none, max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3/5x5, dil_conv_3x3/5x5
NONE = "none"

# The published cells found by first-order (V1) and second-order (V2) DARTS on CIFAR-10.
DARTS_V1: dict[str, list] = {
    "normal": [["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["skip_connect", 0], ["sep_conv_3x3", 1],
               ["skip_connect", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["skip_connect", 2]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 0],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["avg_pool_3x3", 0]],
    "reduce_concat": [2, 3, 4, 5],
}
DARTS_V2: dict[str, list] = {
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
    "reduce_concat": [2, 3, 4, 5],
}

_BUILD_OPTIONS = ("C", "layers", "stem_multiplier", "auxiliary")
_SUPERNET_OPTIONS = ("C", "layers", "nodes", "stem_multiplier", "unique_cells", "track_running_stats", "fused")


# --------------------------------------------------------------------------------------------------
# Cell topology
def cell_edges(nodes: int = 4) -> list[tuple[int, int]]:
    """The edges ``(input, node)`` of a cell in the standard order: node 2 from 0, 1; node 3 from 0, 1, 2; ..."""
    return [(i, j) for j in range(2, nodes + 2) for i in range(j)]


def num_edges(nodes: int = 4) -> int:
    return nodes * (nodes + 3) // 2


def reduction_layers(layers: int) -> set[int]:
    """Depth indices of the reduction cells (one index when L < 3 makes the two coincide)."""
    return {layers // 3, 2 * layers // 3}


def _nodes_from_edges(n_edges: int) -> int:
    nodes = (math.isqrt(9 + 8 * n_edges) - 3) // 2
    if nodes < 1 or num_edges(nodes) != n_edges:
        raise ValueError(f"{n_edges} edges is not a DARTS cell (2+3+...+(n+1) edges for n nodes)")
    return nodes


@dataclass(frozen=True)
class CellSpec:
    """One parsed cell: for every intermediate node the ``(op, input)`` pairs it sums, and the output nodes."""

    nodes: tuple[tuple[tuple[str, int], ...], ...]
    concat: tuple[int, ...]

    def ops_json(self) -> list[list]:
        return [[op, i] for inputs in self.nodes for op, i in inputs]


def _parse_ops(entries: Any, nodes: int, where: str,
               op_names: Sequence[str] = OPS) -> tuple[tuple[tuple[str, int], ...], ...]:
    n_pairs, n_full = 2 * nodes, num_edges(nodes)
    if not isinstance(entries, (list, tuple)) or len(entries) not in (n_pairs, n_full):
        got = f"{len(entries)} entries" if isinstance(entries, (list, tuple)) else type(entries).__name__
        raise UserError(f"{where}: expected a list of [op, input] pairs, either {n_pairs} (two inputs per node) "
                        f"or {n_full} (one per edge, in edge order), got {got}")
    pairs: list[tuple[str, int]] = []
    for k, entry in enumerate(entries):
        if (not isinstance(entry, (list, tuple)) or len(entry) != 2 or not isinstance(entry[0], str)
                or not isinstance(entry[1], int) or isinstance(entry[1], bool)):
            raise UserError(f"{where}[{k}]: expected [op_name, input_node], got {entry!r}")
        if entry[0] not in op_names:
            raise UserError(f"{where}[{k}]: " + choices_message("DARTS op" if list(op_names) == OPS else "op",
                                                              entry[0], list(op_names)))
        pairs.append((entry[0], entry[1]))
    if len(pairs) == n_pairs:  # standard form (for nodes == 1 it coincides with the full form)
        grouped = [pairs[2 * k: 2 * k + 2] for k in range(nodes)]
    else:
        grouped, expected = [], cell_edges(nodes)
        for k, ((op, i), (want, j)) in enumerate(zip(pairs, expected)):
            if i != want:
                raise UserError(f"{where}[{k}]: the {n_full}-entry form lists every edge in order "
                                f"(node {j} reads nodes 0..{j - 1}); entry {k} must read node {want}, not {i}")
        for j in range(2, nodes + 2):
            grouped.append([p for p, (_, node) in zip(pairs, expected) if node == j])
    for k, inputs in enumerate(grouped):
        j = k + 2
        for op, i in inputs:
            if not 0 <= i < j:
                raise UserError(f"{where}: node {j} reads node {i}, but it may only read nodes 0..{j - 1} "
                                "(0, 1 = the two previous cells, 2.. = earlier intermediate nodes)")
    return tuple(tuple(inputs) for inputs in grouped)


def _parse_concat(concat: Any, nodes: int, where: str) -> tuple[int, ...]:
    valid = range(2, nodes + 2)
    if concat is None:
        return tuple(valid)
    if (not isinstance(concat, (list, tuple, range)) or not concat
            or any(not isinstance(c, int) or isinstance(c, bool) or c not in valid for c in concat)
            or len(set(concat)) != len(concat)):
        raise UserError(f"{where}: expected a non-empty list of distinct intermediate nodes in "
                        f"{valid.start}..{valid.stop - 1}, got {concat!r}")
    return tuple(concat)


def parse_cell(ops: Any, concat: Any, nodes: int = 4, where: str = "cell", op_names: Sequence[str] = OPS) -> CellSpec:
    """Validate one cell's ops (names from `op_names`) and concat lists (UserError naming `where` if invalid)."""
    return CellSpec(_parse_ops(ops, nodes, where, op_names), _parse_concat(concat, nodes, f"{where} concat"))


def parse_arch(arch: Any, nodes: int = 4, op_names: Sequence[str] = OPS) -> list[CellSpec] | tuple[CellSpec, CellSpec]:
    """A genotype -> ``(normal, reduce)`` for shared cells, or a list with one CellSpec per unique cell.
    Op names are checked against `op_names` (the DARTS ops by default)."""
    if isinstance(arch, dict) and "cells" in arch:
        if set(arch) != {"cells"}:
            raise UserError(f"a unique-cells arch holds only 'cells', got keys {sorted(arch)}")
        cells = arch["cells"]
        if not isinstance(cells, list) or not cells:
            raise UserError("'cells' must be a non-empty list of {'ops': [...], 'concat': [...]} (one per cell)")
        specs = []
        for n, cell in enumerate(cells):
            if not isinstance(cell, dict) or "ops" not in cell or not set(cell) <= {"ops", "concat"}:
                raise UserError(f"cells[{n}]: expected {{'ops': [[op, input], ...], 'concat': [...]}}, got {cell!r}")
            specs.append(parse_cell(cell["ops"], cell.get("concat"), nodes, f"cells[{n}] ops", op_names))
        return specs
    keys = {"normal", "normal_concat", "reduce", "reduce_concat"}
    if not isinstance(arch, dict) or not {"normal", "reduce"} <= set(arch) or not set(arch) <= keys:
        shown = sorted(arch) if isinstance(arch, dict) else type(arch).__name__
        raise UserError("a DARTS arch is {'normal': [[op, input], ...], 'normal_concat': [2, 3, 4, 5], "
                        "'reduce': [...], 'reduce_concat': [...]} or {'cells': [...]}; got " + str(shown))
    return (parse_cell(arch["normal"], arch.get("normal_concat"), nodes, "normal", op_names),
            parse_cell(arch["reduce"], arch.get("reduce_concat"), nodes, "reduce", op_names))


def format_arch(cells: list[CellSpec] | tuple[CellSpec, CellSpec]) -> dict[str, Any]:
    """The canonical JSON form of parsed cells (inverse of :func:`parse_arch`)."""
    if isinstance(cells, tuple):
        normal, reduce = cells
        return {"normal": normal.ops_json(), "normal_concat": list(normal.concat),
                "reduce": reduce.ops_json(), "reduce_concat": list(reduce.concat)}
    return {"cells": [{"ops": c.ops_json(), "concat": list(c.concat)} for c in cells]}


def cells_for_depth(parsed: list[CellSpec] | tuple[CellSpec, CellSpec], layers: int) -> list[CellSpec]:
    """One CellSpec per depth index: copies of normal/reduce for shared cells, the list itself for unique cells."""
    if isinstance(parsed, tuple):
        return [parsed[1] if i in reduction_layers(layers) else parsed[0] for i in range(layers)]
    if len(parsed) != layers:
        raise ConfigError(f"this unique-cells arch has {len(parsed)} cells, but layers={layers} was requested; "
                          "drop the layers override (a unique-cells arch fixes its depth)")
    return list(parsed)


# --------------------------------------------------------------------------------------------------
# Deriving genotypes
def darts_top2_excluding_none(alpha: torch.Tensor, op_names: Sequence[str] = OPS) -> list[list]:
    """The DARTS rule on one cell's ``alpha [E, K]`` (logits): per node keep the 2 incoming edges whose best
    non-`none` softmax probability is highest, each with that op. Pairs are listed node by node, the
    stronger edge first; ties go to the lower input index and the earlier op (as in the DARTS code)."""
    nodes = _nodes_from_edges(alpha.shape[0])
    probs = torch.softmax(alpha.detach().double(), dim=-1).tolist()
    candidates = [k for k, name in enumerate(op_names) if name != NONE]
    genotype: list[list] = []
    start = 0
    for j in range(2, nodes + 2):
        scored = []  # (best non-none probability, that op, input) for the edges i -> j, i = 0..j-1
        for i, row in enumerate(probs[start: start + j]):
            best = max(candidates, key=lambda k: row[k])  # max() keeps the first of equal values
            scored.append((row[best], op_names[best], i))
        start += j
        ranked = sorted(scored, key=lambda t: -t[0])  # stable: equal scores keep input order
        genotype.extend([op, i] for _, op, i in ranked[:2])
    return genotype


def _path_cell(indices: Sequence[int], nodes: int, top2: bool, op_names: Sequence[str]) -> list[list]:
    """One cell of a sampled path as ops; with top2, each node keeps its first two non-`none` edges."""
    entries = [[op_names[k], i] for k, (i, _) in zip(indices, cell_edges(nodes))]
    if not top2:
        return entries
    out: list[list] = []
    start = 0
    for j in range(2, nodes + 2):
        incoming = entries[start: start + j]
        start += j
        # A path says nothing about which edges matter more, so take the non-`none` ones, earliest inputs
        # first; a node with fewer than two keeps `none` edges (it really had no second input).
        out.extend(sorted(incoming, key=lambda e: (e[0] == NONE, e[1]))[:2])
    return out


# --------------------------------------------------------------------------------------------------
# Networks
def _preprocess(C_pp: int, C_p: int, C: int, reduction_prev: bool, affine: bool) -> tuple[nn.Module, nn.Module]:
    """1x1 convs bringing both cell inputs to C channels; after a reduction cell, c_{k-2} is also halved."""
    pre0 = FactorizedReduce(C_pp, C, affine) if reduction_prev else ReLUConvBN(C_pp, C, 1, 1, 0, affine=affine)
    return pre0, ReLUConvBN(C_p, C, 1, 1, 0, affine=affine)


def _darts_stem(in_channels: int, C: int) -> nn.Module:
    """DARTS' CIFAR stem: 3x3 conv, BN."""
    return nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))


@dataclass(frozen=True)
class CellOps:
    """What fills the DARTS macro skeleton: the candidate ops (ordered ``name -> (C, stride, affine) factory``),
    the two input preprocessing modules ``(C_pp, C_p, C, reduction_prev, affine) -> (pre0, pre1)``, the stem
    ``(in_channels, C_stem) -> module`` and the auxiliary head's activation. The DARTS space uses
    :data:`DARTS_CELL_OPS`; the binary spaces (``bats``, naive binary DARTS) pass their own."""

    ops: Mapping[str, OpFactory]
    preprocess: Callable[[int, int, int, bool, bool], tuple[nn.Module, nn.Module]] = _preprocess
    stem: Callable[[int, int], nn.Module] = _darts_stem
    aux_activation: Callable[[], nn.Module] = field(default=lambda: nn.ReLU(inplace=True))

    @property
    def names(self) -> list[str]:
        return list(self.ops)


DARTS_CELL_OPS = CellOps(DARTS_OPS)


def _empty_node(ref: torch.Tensor, reduction: bool) -> torch.Tensor:
    """The output of a node whose every input is `none`: zeros of the node's shape (and memory format)."""
    return torch.zeros_like(ref[:, :, ::2, ::2] if reduction else ref)


def _channels_last(net: nn.Module) -> None:
    """Store conv weights channels-last (NHWC) and make the input and the stem's output NHWC (the builders'
    own format; runs choose theirs with nasforge.accel.apply_memory_format from the space's fast_paths).

    On CPU, oneDNN's depthwise convolutions (the bulk of every DARTS op) are much faster in NHWC: on this
    space's supernet (C=16, 8 cells, 28x28, batch 32, one thread) a weighted-mode training step takes
    ~4.8 s instead of ~7.4 s, a sampled one ~0.8 s instead of ~1.0 s. Values are identical either way."""
    apply_memory_format(net, "channels_last")


class DartsCell(nn.Module):
    """A fixed cell: one op per kept edge (`none` edges are not built), nodes sum their inputs."""

    def __init__(self, spec: CellSpec, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool,
                 cell_ops: CellOps = DARTS_CELL_OPS) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = cell_ops.preprocess(C_pp, C_p, C, reduction_prev, True)
        self.ops = nn.ModuleList()
        self.wiring: list[list[tuple[int, int]]] = []  # per node: (input node, index into self.ops)
        for inputs in spec.nodes:
            wires = []
            for op, i in inputs:
                if op != NONE:
                    wires.append((i, len(self.ops)))
                    self.ops.append(cell_ops.ops[op](C, 2 if reduction and i < 2 else 1, True))
            self.wiring.append(wires)
        self.concat = spec.concat
        self.multiplier = len(spec.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for wires in self.wiring:
            total = None
            for i, k in wires:
                h = self.ops[k](states[i])
                if not isinstance(self.ops[k], Identity):  # DARTS never drops an identity skip
                    h = drop_path(h, drop_prob, self.training)
                total = h if total is None else total + h
            states.append(total if total is not None else _empty_node(states[1], self.reduction))
        return torch.cat([states[j] for j in self.concat], dim=1)


def aux_pool_geometry(size: int) -> tuple[int, int]:
    """Kernel and stride of the auxiliary head's average pool, so that a `size`-wide map pools to 2 wide.

    DARTS hard-codes kernel 5 / stride 3 for the 8x8 maps of CIFAR; we keep its overlapping windows of
    ~5/8 of the side for any size (8 -> 5/3 exactly, 7 from 28x28 inputs -> 5/2, 4 -> 3/1)."""
    if size < 2:
        raise ConfigError(f"the auxiliary head needs feature maps of at least 2x2 after cell 2L/3, got {size}; "
                          "use a larger input resolution or auxiliary=False")
    kernel = min(math.ceil(5 * size / 8), size - 1)
    return kernel, size - kernel


class AuxiliaryHead(nn.Module):
    """DARTS' CIFAR auxiliary classifier: ReLU, avg-pool to 2x2, 1x1 conv (128), BN, ReLU, 2x2 conv (768), BN,
    ReLU, linear. The pooling is computed from the incoming feature size (see :func:`aux_pool_geometry`)."""

    def __init__(self, C: int, num_classes: int, activation: Callable[[], nn.Module] | None = None) -> None:
        super().__init__()
        act = activation or (lambda: nn.ReLU(inplace=True))  # BATS' head uses PReLU
        self.act = act()
        self.features = nn.Sequential(
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), act(),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), act(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, sh), (kw, sw) = aux_pool_geometry(x.shape[2]), aux_pool_geometry(x.shape[3])
        x = F.avg_pool2d(self.act(x), (kh, kw), stride=(sh, sw))
        return self.classifier(self.features(x).flatten(1))


class _Backbone(nn.Module):
    """Stem conv, L cells (channels doubled at the reduction cells), global pool and classifier."""

    def __init__(self, make_cell: Callable[..., nn.Module], layers: int, C: int, stem_multiplier: int,
                 in_channels: int, num_classes: int, stem: Callable[[int, int], nn.Module] = _darts_stem) -> None:
        super().__init__()
        c_stem = stem_multiplier * C
        self.stem = stem(in_channels, c_stem)
        C_pp, C_p, C_cur = c_stem, c_stem, C
        reduction_prev = False
        reductions = reduction_layers(layers)
        self.cells = nn.ModuleList()
        self.cell_channels: list[int] = []  # output channels of every cell
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                C_cur *= 2
            cell = make_cell(i, C_pp, C_p, C_cur, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, cell.multiplier * C_cur
            self.cell_channels.append(C_p)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(x).flatten(1))


class DartsNetwork(_Backbone):
    """The evaluation network of a genotype. Set ``drop_path_prob`` (the training engine ramps it per epoch).
    With ``auxiliary``, the head after cell 2L/3 reaches the training engine through the shared mechanism of
    :mod:`nasforge.ops.heads` (forward returns the main logits [B, classes] in every mode)."""

    def __init__(self, arch: dict[str, Any], cells: list[CellSpec], C: int, stem_multiplier: int,
                 in_channels: int, num_classes: int, auxiliary: bool = False,
                 cell_ops: CellOps = DARTS_CELL_OPS) -> None:
        super().__init__(lambda i, *shape: DartsCell(cells[i], *shape, cell_ops=cell_ops), len(cells), C,
                         stem_multiplier, in_channels, num_classes, stem=cell_ops.stem)
        self.arch = arch
        self.drop_path_prob = 0.0
        self.aux_index = 2 * len(cells) // 3
        self.aux_head = (AuxiliaryHead(self.cell_channels[self.aux_index], num_classes, cell_ops.aux_activation)
                         if auxiliary else None)
        _channels_last(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clear_auxiliary(self)
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index:
                tap_auxiliary(self, s1)
        return self.classify(s1)


class SearchCell(nn.Module):
    """A supernet cell: a MixedOp of all 8 ops on each of the 14 edges, non-affine BN everywhere.

    Weighted mode with ``fused`` (the default) runs the edges grouped by source node
    (:func:`nasforge.supernet.grouped.grouped_mixed_ops`: one grouped conv per op for all edges leaving a
    node); ``fused = False`` runs the reference per-edge MixedOp sum, bit-identical to the code before the
    grouping. Both compute the same values and gradients up to float rounding."""

    def __init__(self, nodes: int, C_pp: int, C_p: int, C: int, reduction: bool, reduction_prev: bool,
                 cell_ops: CellOps = DARTS_CELL_OPS, fused: bool = True) -> None:
        super().__init__()
        self.fused = fused
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = cell_ops.preprocess(C_pp, C_p, C, reduction_prev, False)
        self.edge_list = cell_edges(nodes)
        names = cell_ops.names
        self.edges = nn.ModuleList(
            MixedOp([cell_ops.ops[name](C, 2 if reduction and i < 2 else 1, False) for name in names], names)
            for i, _ in self.edge_list)
        self.multiplier = nodes
        self._none = names.index(NONE)
        # edges leaving each source node (nodes 0 .. nodes; the last node feeds only the output)
        self._out_edges = [[e for e, (i, _) in enumerate(self.edge_list) if i == src] for src in range(nodes + 1)]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor | None,
                path: list[int] | None) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        if path is None and self.fused:
            return self._grouped_forward(states, weights)
        total = None
        for e, (i, j) in enumerate(self.edge_list):
            if path is None:
                y = self.edges[e](states[i], weights=weights[e])
                total = y if total is None else total + y
            elif path[e] != self._none:  # a sampled `none` adds zeros: skip it instead of computing them
                y = self.edges[e](states[i], index=path[e])
                total = y if total is None else total + y
            if i == j - 1:  # last edge into node j
                states.append(total if total is not None else _empty_node(states[1], self.reduction))
                total = None
        return torch.cat(states[2:], dim=1)

    def _grouped_forward(self, states: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        """Weighted mode by source node: node i is complete once every node before it has been expanded."""
        acc: dict[int, torch.Tensor] = {}  # node -> sum of its incoming edge outputs so far
        for i, out in enumerate(self._out_edges):
            h = states[i] if i < 2 else acc[i]
            ys = grouped_mixed_ops(h, [self.edges[e] for e in out], weights[out], self.training)
            for e, y in zip(out, ys):
                j = self.edge_list[e][1]
                acc[j] = acc[j] + y if j in acc else y
        return torch.cat([acc[j] for j in range(2, len(self._out_edges) + 1)], dim=1)


def _disable_running_stats(module: nn.Module) -> None:
    """Always normalise with batch statistics (NB201's `track_running_stats=False` search setting)."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.track_running_stats = False
            bn.running_mean = bn.running_var = bn.num_batches_tracked = None


class DartsSupernet(Supernet, _Backbone):
    """The DARTS search network. Alpha groups ``normal`` and ``reduce`` ([14, 8] each, shared by all cells of
    that type), or with ``unique_cells`` one group ``cell{i}`` per cell. Weighted mode runs every op (DARTS);
    after ``set_path`` each edge runs only its sampled op and `none` edges run nothing (MANAS)."""

    prunes_inputs = True  # a genotype keeps 2 inputs per node

    def __init__(self, C: int = 16, layers: int = 8, nodes: int = 4, stem_multiplier: int = 3, in_channels: int = 3,
                 num_classes: int = 10, unique_cells: bool = False, track_running_stats: bool = True,
                 cell_ops: CellOps = DARTS_CELL_OPS, fused: bool = True) -> None:
        _Backbone.__init__(self, lambda i, *shape: SearchCell(nodes, *shape, cell_ops=cell_ops, fused=fused), layers, C,
                           stem_multiplier, in_channels, num_classes, stem=cell_ops.stem)
        if not track_running_stats:
            _disable_running_stats(self.cells)
        set_fast_depthwise(self, fused)  # fused=False: plain nn.Conv2d depthwise convs, as before issue 20
        self.init_supernet()
        self.op_names = cell_ops.names
        self.nodes = nodes
        self.unique_cells = unique_cells
        reductions = reduction_layers(layers)
        if unique_cells:
            self.cell_groups = [f"cell{i}" for i in range(layers)]
        else:
            self.cell_groups = ["reduce" if i in reductions else "normal" for i in range(layers)]
        # Shared cells always get both groups, so a genotype always has both cells, even when L < 3 makes every
        # cell a reduction cell (the `normal` alphas then receive no gradient).
        for g in self.cell_groups if unique_cells else ["normal", "reduce"]:
            self.alphas[g] = nn.Parameter(1e-3 * torch.randn(num_edges(nodes), len(self.op_names)))
        _channels_last(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._path is not None:
            paths = {g: p.tolist() for g, p in self._path.items()}  # python ints: no tensor indexing per edge
            weights = None
        else:
            paths, weights = None, self.op_weights()
        s0 = s1 = self.stem(x)
        for cell, g in zip(self.cells, self.cell_groups):
            s0, s1 = s1, cell(s0, s1, None if weights is None else weights[g], None if paths is None else paths[g])
        return self.classify(s1)

    def derive(self, scores: dict[str, torch.Tensor] | None = None, rule: str = "default") -> dict[str, Any]:
        """The DARTS genotype of `scores` (logits per group, default the alphas; pass log-probabilities for a
        policy): top-2 incoming edges per node by best non-`none` probability, op = argmax excluding `none`.
        That rule never picks `none` and gives every node two inputs, so every `rule` (DERIVATION_RULES)
        gives this genotype."""
        if rule not in DERIVATION_RULES:
            raise ConfigError(choices_message("derivation rule", str(rule), list(DERIVATION_RULES)))
        s = scores if scores is not None else {g: a.detach() for g, a in self.alphas.items()}
        concat = list(range(2, self.nodes + 2))
        if self.unique_cells:
            return {"cells": [{"ops": darts_top2_excluding_none(s[g], self.op_names), "concat": concat}
                              for g in self.cell_groups]}
        return {"normal": darts_top2_excluding_none(s["normal"], self.op_names), "normal_concat": concat,
                "reduce": darts_top2_excluding_none(s["reduce"], self.op_names), "reduce_concat": list(concat)}

    def path_to_arch(self, path: dict[str, torch.Tensor], top2: bool = True) -> dict[str, Any]:
        """The arch of a sampled path. ``top2=False`` keeps all 14 edges (full form, `none` = no edge);
        ``top2=True`` gives the standard 2-inputs-per-node form, each node keeping its first two non-`none`
        edges (a path carries no edge ranking; use :meth:`derive` with policy scores to rank edges)."""
        cells = {g: _path_cell([int(k) for k in path[g]], self.nodes, top2, self.op_names) for g in self.alphas}
        concat = list(range(2, self.nodes + 2))
        if self.unique_cells:
            return {"cells": [{"ops": cells[g], "concat": concat} for g in self.cell_groups]}
        return {"normal": cells["normal"], "normal_concat": concat, "reduce": cells["reduce"],
                "reduce_concat": list(concat)}

    def arch_to_path(self, arch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The path that runs exactly `arch` (standard or full form); edges the genotype leaves out get `none`."""
        names = self.op_names
        edges = cell_edges(self.nodes)
        if "cells" in arch:
            cells = dict(zip(self.cell_groups, (c["ops"] for c in arch["cells"])))
        else:
            cells = {"normal": arch["normal"], "reduce": arch["reduce"]}
        path = {}
        for g, ops in cells.items():
            idx = [names.index(NONE)] * len(edges)
            standard = len(ops) == 2 * self.nodes and len(ops) != len(edges)
            for k, (op, i) in enumerate(ops):
                j = k // 2 + 2 if standard else edges[k][1]  # standard form: pairs 2m, 2m+1 feed node m + 2
                idx[edges.index((i, j))] = names.index(op)
            path[g] = torch.tensor(idx, dtype=torch.long)  # host: path indices
        return path

    def sample_pruned_actions(self, rng: Any) -> list[list[int]]:
        """A uniform DARTS genotype per alpha group: each node reads two distinct earlier nodes, each edge a
        uniform non-`none` op; the other edges are `none`."""
        none = self.op_names.index(NONE)
        real_ops = [k for k in range(len(self.op_names)) if k != none]
        edges = cell_edges(self.nodes)
        cells = []
        for _ in self.alphas:
            ops = [none] * len(edges)
            for j in range(2, self.nodes + 2):  # node j may read nodes 0..j-1
                for i in rng.choice(j, size=2, replace=False):
                    ops[edges.index((int(i), j))] = int(rng.choice(real_ops))
            cells.append(ops)
        return cells


# --------------------------------------------------------------------------------------------------
# The space
@SPACES.register("darts", help="DARTS CNN cells: 14 edges x 8 ops, normal + reduce (or unique) cells; arch = genotype "
                               "(binary=naive: the same ops naively binarized)")
class DartsSpace(SearchSpace):
    """The DARTS cell space. Option ``binary``: ``false`` (default, the real-valued DARTS ops) or ``"naive"``:
    the same ops binarized as-is, ReLU -> sign -> binary depthwise -> sign -> binary pointwise -> BN (XNOR
    weights; preprocessing, stem, pools, skip and classifier stay real), the comparison the BATS paper's
    abstract makes ("DARTS applied directly to binary networks gives very poor results"). Note that with
    sign(0) = +1, sign(ReLU(x)) is +1 everywhere: the naive binary convs see a constant input, which is
    exactly the information loss BATS' op design (BN -> sign -> conv -> PReLU) avoids."""

    name = "darts"
    supernet_kind = "cell"
    aux_option = "auxiliary"
    defaults = {"C": Opt(16, ">=1"), "layers": Opt(8, ">=1", help="cells (reductions at 1/3 and 2/3)"),
                "nodes": Opt(4, ">=1"), "stem_multiplier": Opt(3, ">=1"), "unique_cells": False,
                "binary": Opt(False, type=None, help="false, or 'naive': DARTS ops binarized naively (1-bit)"),
                "fused": Opt(True, help="supernet weighted mode grouped by source node and the fast depthwise convs "
                                        "(false: the per-edge reference and plain convs, as before issue 20)")}
    #: build() overrides accepted on top of the space options (the scale of the final network)
    build_options: tuple[str, ...] = _BUILD_OPTIONS
    # depthwise/separable convs dominate: oneDNN's bf16 backward of those is slower than fp32 on AMX CPUs
    fast_paths = {"supernet": FastPath(False, True, "darts-space supernet, depthwise convs: bf16 0.64x (manas 0.75x, "
                                                    "bats 0.90x), NCHW instead of channels_last 0.64x"),
                  "network": FastPath(False, True, "DARTS network, the supernet's depthwise ops: bf16 not "
                                                   "taken (slower on the supernet), channels_last as built")}

    def __init__(self, in_channels: int = 1, num_classes: int = 10, resolution: int = 28, **options: Any) -> None:
        super().__init__(in_channels, num_classes, resolution, **options)
        if self.options.get("binary", False) not in (False, None, "none", "naive"):
            raise ConfigError(f"space option binary={self.options['binary']!r}: choose false or 'naive' "
                              "(the BATS op set is the separate space 'bats')")

    @property
    def is_binary(self) -> bool:
        """True when the space's conv ops are 1-bit (strategies for binary networks require this)."""
        return self.options.get("binary") == "naive"

    def cell_ops(self, **overrides: Any) -> CellOps:
        """The op set filling the cells (overrides: build options that change it)."""
        if self.is_binary:
            from ..ops.bats import NAIVE_BINARY_DARTS_OPS

            return CellOps(NAIVE_BINARY_DARTS_OPS)
        return DARTS_CELL_OPS

    @property
    def op_names(self) -> list[str]:
        return self.cell_ops().names

    def unused_alpha_groups(self) -> str | None:
        """Why some alphas of this space's supernet would never be used in a forward pass (None: all are used).
        With shared cells and layers < 3 every cell is a reduction cell (reductions at L//3 and 2L//3), so the
        `normal` alphas get no gradient and the searched genotype's normal cell would be arbitrary."""
        layers = self.options["layers"]
        if self.options["unique_cells"] or any(i not in reduction_layers(layers) for i in range(layers)):
            return None
        return (f"space '{self.name}' with layers={layers} has no normal cell (reduction cells at L//3 and 2L//3), so "
                "the normal cell's alphas are never used; use layers >= 3 or unique_cells=true")

    def _random_cell(self, rng: random.Random) -> list[list]:
        ops = [o for o in self.op_names if o != NONE]  # never `none`: a sampled genotype has two real inputs per node
        return [[rng.choice(ops), i] for j in range(2, self.options["nodes"] + 2) for i in rng.sample(range(j), 2)]

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A uniformly random genotype in the standard form (2 distinct inputs per node, no `none`)."""
        concat = list(range(2, self.options["nodes"] + 2))
        if self.options["unique_cells"]:
            return {"cells": [{"ops": self._random_cell(rng), "concat": list(concat)}
                              for _ in range(self.options["layers"])]}
        return {"normal": self._random_cell(rng), "normal_concat": concat,
                "reduce": self._random_cell(rng), "reduce_concat": list(concat)}

    def validate(self, arch: Any) -> dict[str, Any]:
        return format_arch(parse_arch(arch, self.options["nodes"], self.op_names))

    def size(self) -> int:
        """How many distinct genotypes `sample` draws (as the DARTS paper counts them, ~10^18 at the defaults):
        per cell, node j (j = 2 .. nodes + 1) sums two distinct inputs of 0..j-1 - an unordered pair, C(j, 2),
        as listing the two [op, input] pairs the other way round is the same node - each through one of the
        K non-`none` ops, K^2; a cell is the product over its nodes, and the genotype is a normal and a reduce
        cell (cell^2, also where layers < 3 leaves no normal cell in the network) or, with unique_cells, one
        cell per layer (cell^layers). The full 14-entry form with `none` edges, which `validate` also accepts,
        is not counted (no sampler produces it)."""
        k = sum(1 for o in self.op_names if o != NONE)
        cell = math.prod(math.comb(j, 2) * k * k for j in range(2, self.options["nodes"] + 2))
        return cell ** (self.options["layers"] if self.options["unique_cells"] else 2)

    def mutate(self, arch: Any, rng: random.Random) -> dict[str, Any]:
        """Change one op or one input of one cell (inputs of a node stay distinct; the full form only changes ops)."""
        out = self.validate(arch)
        cells = [c["ops"] for c in out["cells"]] if "cells" in out else [out["normal"], out["reduce"]]
        ops = rng.choice(cells)
        full = len(ops) != 2 * self.options["nodes"]
        k = rng.randrange(len(ops))
        op, i = ops[k]
        new_inputs: list[int] = []
        if not full:  # standard form: pairs 2m, 2m+1 feed node m + 2; keep the node's two inputs distinct
            node, other = k // 2 + 2, ops[k ^ 1][1]
            new_inputs = [s for s in range(node) if s not in (i, other)]
        if new_inputs and rng.random() < 0.5:
            ops[k] = [op, rng.choice(new_inputs)]
        else:
            # the full form uses `none` to drop an edge, so it may mutate to `none`; the standard form may not
            ops[k] = [rng.choice([o for o in self.op_names if o != op and (full or o != NONE)]), i]
        return self.validate(out)

    def build(self, arch: Any, **overrides: Any) -> DartsNetwork:
        """The evaluation network; overrides ``C``, ``layers``, ``stem_multiplier``, ``auxiliary`` (default False)."""
        unknown = set(overrides) - set(self.build_options)
        if unknown:
            raise ConfigError(f"unknown build option(s) {sorted(unknown)} for space '{self.name}'; "
                              f"valid: {', '.join(self.build_options)}")
        parsed = parse_arch(self.validate(arch), self.options["nodes"], self.op_names)
        if isinstance(parsed, list):  # unique cells fix the depth
            layers = overrides.get("layers", len(parsed))
        else:
            layers = self._option(overrides, "layers")
        cells = cells_for_depth(parsed, layers)
        auxiliary = bool(overrides.get("auxiliary", False))
        if auxiliary:
            size = self.resolution
            for i in sorted(reduction_layers(layers)):
                if i <= 2 * layers // 3:
                    size = (size + 1) // 2
            aux_pool_geometry(size)  # fail now, with a clear message, rather than in the first forward
        cell_ops = self.cell_ops(**{k: v for k, v in overrides.items() if k not in _BUILD_OPTIONS},
                                 C=self._option(overrides, "C"))
        net = DartsNetwork(format_arch(parsed), cells, self._option(overrides, "C"),
                           self._option(overrides, "stem_multiplier"), self.in_channels, self.num_classes,
                           auxiliary=auxiliary, cell_ops=cell_ops)
        return set_fast_depthwise(net, bool(self.options.get("fused", True)))

    def supernet(self, **overrides: Any) -> DartsSupernet:
        unknown = set(overrides) - set(_SUPERNET_OPTIONS)
        if unknown:
            raise ConfigError(f"unknown supernet option(s) {sorted(unknown)} for space '{self.name}'; "
                              f"valid: {', '.join(_SUPERNET_OPTIONS)}")
        return DartsSupernet(self._option(overrides, "C"), self._option(overrides, "layers"),
                             self._option(overrides, "nodes"), self._option(overrides, "stem_multiplier"),
                             self.in_channels, self.num_classes, unique_cells=self._option(overrides, "unique_cells"),
                             track_running_stats=overrides.get("track_running_stats", True),
                             cell_ops=self.cell_ops(C=self._option(overrides, "C")),
                             fused=bool(self._option(overrides, "fused")))

    def parameter_free_count(self, arch: Any) -> int:
        """Parameter-free ops (skip, none, pools) over the genotype's cells (normal + reduce, or every unique cell)."""
        parsed = parse_arch(self.validate(arch), self.options["nodes"], self.op_names)
        return sum(is_parameter_free(op) for cell in parsed for inputs in cell.nodes for op, _ in inputs)

    def figure(self, arch: Any) -> list:
        """Each cell (normal and reduce, or every unique cell) as a DAG: inputs c_{k-2}, c_{k-1}, intermediate
        nodes 0.., each with its chosen (op, input) edges, and the concatenated nodes joined to c_{k}. Read from
        the canonical genotype only, so subclasses with other op sets (e.g. bats) are drawn the same way."""
        from .figure import CellFigure

        a = self.validate(arch)
        nodes = self.options["nodes"]
        named = [(f"cell {n}", c["ops"], c["concat"]) for n, c in enumerate(a["cells"])] if "cells" in a else \
            [("normal", a["normal"], a["normal_concat"]), ("reduce", a["reduce"], a["reduce_concat"])]
        names = {0: "c_{k-2}", 1: "c_{k-1}"}
        node = lambda i: names.get(i, str(i - 2))  # noqa: E731
        out = []
        for title, ops, concat in named:
            sizes = [2] * nodes if len(ops) == 2 * nodes else list(range(2, nodes + 2))  # two inputs, or every edge
            starts = [sum(sizes[:j]) for j in range(nodes)]
            edges = [(node(i), node(j + 2), op) for j in range(nodes)
                     for op, i in ops[starts[j]: starts[j] + sizes[j]]]
            edges += [(node(c), "c_{k}", "") for c in concat]
            out.append(CellFigure(title, inputs=["c_{k-2}", "c_{k-1}"], edges=edges, output="c_{k}"))
        return out

    def describe(self, arch: Any) -> str:
        def cell(ops: list[list], concat: list[int]) -> str:
            return " ".join(f"{op}<-{i}" for op, i in ops) + f" | concat {concat}"
        a = self.validate(arch)
        if "cells" in a:
            return "; ".join(f"cell{n}: {cell(c['ops'], c['concat'])}" for n, c in enumerate(a["cells"]))
        return f"normal: {cell(a['normal'], a['normal_concat'])}; reduce: {cell(a['reduce'], a['reduce_concat'])}"
