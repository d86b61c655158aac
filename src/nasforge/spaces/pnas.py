"""The PNAS cell space (Liu et al., "Progressive Neural Architecture Search", ECCV 2018).

A cell is a list of B blocks. Block k (1-based) combines two inputs with two ops and adds the results:
``[in1, op1, in2, op2]``. Inputs are 0 = H^{c-2} (the cell before the previous one), 1 = H^{c-1} (the
previous cell) and k' + 1 = the output of block k' < k, so block k has k + 1 possible inputs. Ops come from
PNAS_OPS (8 ops) or, with ``ops="reduced"``, the 4-op subset of the CPU reproduction (spec 1.8 tier B).

Canonical form: addition is commutative, so the two halves of a block are an unordered pair; we store them
sorted by (input, op name). This gives exactly 136 one-block cells for 8 ops and 300 / 528 / 820 / 1176
ways to append block b = 2..5 (spec 1.2). No further symmetry is removed (e.g. orderings of independent
blocks), which the paper does to reach its ~10^12 figure.

The network follows the NASNet / official PNASNet TF-slim conventions: one cell type, reused with stride 2
at cells floor(n/3) and floor(2n/3) of n = 3N cells, filters doubling there; cell inputs are brought to F
channels by ReLU-1x1 conv-BN (H^{c-2} by a factorized reduction when it has twice the resolution); ops
reading a cell input carry the cell's stride. The ImageNet configuration adds the official stem: a 3x3
stride-2 conv and two stride-2 stem cells at F/4 and F/2 filters.
"""
from __future__ import annotations

import functools
import itertools
import random
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..accel import FastPath
from ..options import Opt
from ..errors import ConfigError, UserError, choices_message
from ..ops import PNAS_OPS, Conv1x7x7x1, DilConv, FactorizedReduce, Identity, Pool, ReLUConvBN, drop_path
from ..ops.heads import clear_auxiliary, tap_auxiliary
from ..registry import SPACES
from ..surrogates.tokenizers import PNASTokenizer, TokenBatch
from .base import SearchSpace
from .growth import Candidates, Growth, Partial

PNAS_OP_NAMES: tuple[str, ...] = tuple(PNAS_OPS)
#: the 4-op space of the small-scale reproduction (spec 1.8 tier B): 36 one-block cells
REDUCED_OP_NAMES: tuple[str, ...] = ("identity", "sep_conv_3x3", "sep_conv_5x5", "max_pool_3x3")
OP_SETS: dict[str, tuple[str, ...]] = {"full": PNAS_OP_NAMES, "reduced": REDUCED_OP_NAMES}

Block = tuple[int, str, int, str]
Cell = tuple[Block, ...]

#: PNASNet-5 (official TF-slim `PNasNetNormalCell`, re-indexed to 0 = H^{c-2}, 1 = H^{c-1}: TF's hidden-state
#: list starts with H^{c-1}, as the author's PyTorch port notes). Its official network concatenates all five
#: blocks, i.e. ``concat="all"``.
PNASNET5: list[list[Any]] = [
    [0, "sep_conv_5x5", 0, "max_pool_3x3"],
    [1, "sep_conv_7x7", 1, "max_pool_3x3"],
    [1, "sep_conv_5x5", 1, "sep_conv_3x3"],
    [4, "sep_conv_3x3", 1, "max_pool_3x3"],
    [0, "sep_conv_3x3", 1, "identity"],
]

_FORM = '[[in1, "op1", in2, "op2"], ...] with 0 = H^{c-2}, 1 = H^{c-1}, k+1 = block k'


# --------------------------------------------------------------------------------------------------
# Cells as data: canonical form, enumeration, expansion
# --------------------------------------------------------------------------------------------------


def canonical_block(in1: int, op1: str, in2: int, op2: str) -> Block:
    """The block with its two (input, op) halves sorted, so that `a + b` and `b + a` are one block."""
    (i1, o1), (i2, o2) = sorted(((in1, op1), (in2, op2)))
    return (i1, o1, i2, o2)


def check_ops(ops: str | Sequence[str]) -> tuple[str, ...]:
    """An op set by name ("full", "reduced") or as a list of PNAS op names, in PNAS_OPS order."""
    if isinstance(ops, str):
        if ops not in OP_SETS:
            raise ConfigError(choices_message("PNAS op set", ops, list(OP_SETS)) + " (or a list of op names)")
        return OP_SETS[ops]
    ops = tuple(ops)
    unknown = [o for o in ops if o not in PNAS_OPS]
    if unknown or len(set(ops)) != len(ops) or not ops:
        raise ConfigError(f"PNAS op list {list(ops)} must name distinct ops from: {', '.join(PNAS_OP_NAMES)}")
    return tuple(o for o in PNAS_OP_NAMES if o in ops)


@functools.lru_cache(maxsize=64)
def _canonical_blocks(b: int, ops: tuple[str, ...]) -> tuple[Block, ...]:
    halves = [(i, o) for i in range(b + 1) for o in ops]
    return tuple(canonical_block(i1, o1, i2, o2)
                 for (i1, o1), (i2, o2) in itertools.combinations_with_replacement(sorted(halves), 2))


def canonical_blocks(b: int, ops: str | Sequence[str] = "full") -> list[Block]:
    """All canonical blocks that can be block `b` (1-based) of a cell: ((b+1)·|ops|)·((b+1)·|ops| + 1) / 2."""
    if not isinstance(b, int) or b < 1:
        raise ConfigError(f"block position must be an integer >= 1, got {b!r}")
    return list(_canonical_blocks(b, check_ops(ops)))


def one_block_cells(ops: str | Sequence[str] = "full") -> list[Cell]:
    """The canonical 1-block cells: 136 for the 8 PNAS ops, 36 for the reduced 4-op set."""
    return [(blk,) for blk in _canonical_blocks(1, check_ops(ops))]


def expand(cell: Sequence[Sequence[Any]], ops: str | Sequence[str] = "full") -> list[Cell]:
    """All canonical children of a b-block cell: the cell with one more block appended (b + 1 blocks).

    Children of distinct canonical parents are distinct (their first b blocks differ), so a beam of distinct
    cells expands without duplicates.
    """
    parent = tuple(tuple(blk) for blk in cell)
    return [parent + (blk,) for blk in _canonical_blocks(len(parent) + 1, check_ops(ops))]


def validate_cell(arch: Any, ops: str | Sequence[str] = "full", max_blocks: int | None = None) -> Cell:
    """Check a cell given as JSON and return it canonical (tuples). Raises UserError naming the problem."""
    ops = check_ops(ops)
    if not isinstance(arch, (list, tuple)) or not arch:
        raise UserError(f"a PNAS cell must be a non-empty list of blocks {_FORM}; got {arch!r:.200}")
    if max_blocks is not None and len(arch) > max_blocks:
        raise UserError(f"PNAS cell has {len(arch)} blocks but the space allows at most {max_blocks} (option 'blocks')")
    cell = []
    for k, blk in enumerate(arch, start=1):
        if not isinstance(blk, (list, tuple)) or len(blk) != 4:
            raise UserError(f"PNAS cell block {k} must be 4 items [in1, op1, in2, op2], got {blk!r}")
        in1, op1, in2, op2 = blk
        for inp in (in1, in2):
            if isinstance(inp, bool) or not isinstance(inp, int) or not 0 <= inp <= k:
                raise UserError(f"PNAS cell block {k}: input {inp!r} must be an integer in 0..{k} "
                                f"(0 = H^{{c-2}}, 1 = H^{{c-1}}, j+1 = block j < {k})")
        for op in (op1, op2):
            if op not in ops:
                raise UserError(f"PNAS cell block {k}: " + choices_message("op", str(op), list(ops)))
        cell.append(canonical_block(in1, op1, in2, op2))
    return tuple(cell)


def cell_to_json(cell: Iterable[Sequence[Any]]) -> list[list[Any]]:
    return [list(blk) for blk in cell]


def cell_output_blocks(cell: Sequence[Sequence[Any]], concat: str = "unused") -> list[int]:
    """1-based blocks whose outputs are concatenated: those no later block reads ("unused"), or all ("all")."""
    if concat == "all":
        return list(range(1, len(cell) + 1))
    used = {inp - 1 for blk in cell for inp in (blk[0], blk[2]) if inp >= 2}
    return [k for k in range(1, len(cell) + 1) if k not in used]


# --------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------


def make_op(name: str, C_in: int, C_out: int, stride: int, affine: bool = True) -> nn.Module:
    """One PNAS op. With C_in == C_out this is the shared PNAS_OPS op; otherwise (only the first cell, which
    reads the raw stem output as H^{c-2}, as in the official code) the op also changes the channel count.
    `identity` with a stride or a channel change is ReLU -> 1x1 conv (stride) -> BN, as in TF-slim's
    `_apply_conv_operation` and its PyTorch ports (a factorized reduction only prepares H^{c-2})."""
    if name == "identity" and (stride > 1 or C_in != C_out):
        return ReLUConvBN(C_in, C_out, 1, stride, 0, affine=affine)
    if C_in == C_out:
        return PNAS_OPS[name](C_out, stride, affine)
    if name.startswith("sep_conv_"):
        k = int(name[-1])
        # TF's separable_KxK_2: the first unit already maps to C_out, the second keeps it
        return nn.Sequential(DilConv(C_in, C_out, k, stride, k // 2, 1, affine),
                             DilConv(C_out, C_out, k, 1, k // 2, 1, affine))
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return nn.Sequential(Pool(name[:3], stride), nn.Conv2d(C_in, C_out, 1, bias=False),
                             nn.BatchNorm2d(C_out, affine=affine))
    if name == "conv_7x1_1x7":
        return Conv1x7x7x1(C_in, C_out, stride, affine)
    if name == "dil_conv_3x3":
        return ReLUConvBN(C_in, C_out, 3, stride, 2, dilation=2, affine=affine)
    raise ConfigError(choices_message("PNAS op", name, list(PNAS_OP_NAMES)))


def _reduce(C_in: int, C_out: int, affine: bool = True) -> nn.Module:
    # ReLU + factorized reduction of H^{c-2} at twice the resolution; an odd C_out (F/2 = 27 of PNASNet
    # mobile's second stem cell) splits floor / ceil, 13 + 14, as TF-slim's factorized_reduction
    return FactorizedReduce(C_in, C_out, affine)


class PNASCell(nn.Module):
    """One cell. `pp` says how H^{c-2} is prepared: "raw" (it is this cell's H^{c-1} before preprocessing:
    the first cell after the stem), "reduce" (twice the resolution), "conv" (other channel count), "same"."""

    def __init__(self, cell: Cell, C_pp: int, C_p: int, C: int, stride: int, pp: str, concat: str = "unused",
                 affine: bool = True) -> None:
        super().__init__()
        self.stride = stride
        if pp == "raw":
            self.pre0: nn.Module = Identity()
            c0 = C_p  # the raw H^{c-1} tensor
        elif pp == "reduce":
            self.pre0, c0 = _reduce(C_pp, C, affine), C
        elif pp == "conv":
            self.pre0, c0 = ReLUConvBN(C_pp, C, 1, 1, 0, affine=affine), C
        elif pp == "same":
            self.pre0, c0 = Identity(), C_pp
        else:
            raise ValueError(f"unknown preprocessing {pp!r}")
        self.pre1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=affine)
        self.inputs: list[tuple[int, int]] = []
        self.drop: list[bool] = []
        self.ops = nn.ModuleList()
        for in1, op1, in2, op2 in cell:
            for inp, op in ((in1, op1), (in2, op2)):
                # only ops reading a cell input stride; block outputs already have the reduced resolution
                s = stride if inp < 2 else 1
                self.ops.append(make_op(op, c0 if inp == 0 else C, C, s, affine))
                self.inputs.append(inp)
                self.drop.append(op != "identity")  # as TF: drop-path on every op but identity
        self.concat = cell_output_blocks(cell, concat)
        self.C_out = C * len(self.concat)
        self.drop_prob = 0.0

    def forward(self, s_pp: torch.Tensor, s_p: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s_pp), self.pre1(s_p)]
        for k in range(len(self.ops) // 2):
            total = 0
            for j in (2 * k, 2 * k + 1):
                y = self.ops[j](states[self.inputs[j]])
                if self.drop[j] and self.drop_prob > 0:
                    y = drop_path(y, self.drop_prob, self.training)
                total = total + y
            states.append(total)
        return torch.cat([states[k + 1] for k in self.concat], dim=1)


class AuxHead(nn.Module):
    """NASNet auxiliary head: ReLU, 5x5/3 average pool, 1x1 conv to 128, conv over the whole map to 768, linear."""

    def __init__(self, C: int, resolution: int, num_classes: int) -> None:
        super().__init__()
        pool = min(5, resolution)
        side = (resolution - pool) // 3 + 1
        self.features = nn.Sequential(
            nn.ReLU(), nn.AvgPool2d(pool, stride=3), nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.Conv2d(128, 768, side, bias=False), nn.BatchNorm2d(768), nn.ReLU())
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


#: BatchNorm of the published ImageNet PNASNet-5 (TF-slim's arg scope: epsilon 1e-3, moving-average decay
#: 0.9997, i.e. PyTorch momentum 1 - 0.9997); nasforge's default is PyTorch's (1e-5, 0.1)
PUBLISHED_IMAGENET_BN: dict[str, float] = {"bn_eps": 1e-3, "bn_momentum": 3e-4}


def set_batchnorm(module: nn.Module, eps: float, momentum: float) -> None:
    """Give every BatchNorm in `module` this epsilon and momentum (PyTorch convention: the weight of the
    new batch in the running statistics, = 1 - TF's decay)."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eps, m.momentum = float(eps), float(momentum)


def _check_bn(eps: Any, momentum: Any) -> None:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ConfigError(f"PNAS option bn_eps must be a positive number, got {eps!r}")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 < momentum <= 1:
        raise ConfigError(f"PNAS option bn_momentum must be a number in (0, 1], got {momentum!r} "
                          "(PyTorch convention: 1 - TF's decay; the published 0.9997 decay is 3e-4)")


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class PNASNetwork(nn.Module):
    """Stem, 3N cells (stride 2 at cells N and 2N), ReLU, global average pool, dropout, linear.

    With ``aux=True`` the cell before the second reduction feeds an auxiliary head, which reaches the
    training engine through the shared mechanism of :mod:`nasforge.ops.heads` (forward returns the main
    logits [B, classes] in every mode).
    ``drop_path_prob`` (set by a trainer) drops op outputs as NASNet's drop-path does.
    """

    def __init__(self, cell: Cell, C: int, N: int, in_channels: int, num_classes: int, resolution: int,
                 stem: str = "cifar", stem_multiplier: float = 1.0, concat: str = "unused", aux: bool = False,
                 dropout: float = 0.0, bn_eps: float = 1e-5, bn_momentum: float = 0.1) -> None:
        super().__init__()
        num_cells = 3 * N
        # the official calc_reduction_layers: int(k / 3 * num_cells) for k = 1, 2
        self.reductions = [int(k / 3 * num_cells) for k in (1, 2)]
        res = resolution
        # each state: (channels, resolution); H^{c-2} of the first cell is None ("raw": same tensor as H^{c-1})
        if stem == "imagenet":
            c_stem = int(32 * stem_multiplier)
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, stride=2, padding=0, bias=False),
                                      nn.BatchNorm2d(c_stem))
            res = _conv_out(res, 3, 2, 0)
        elif stem == "cifar":
            c_stem = int(C * stem_multiplier)
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        else:
            raise ConfigError(choices_message("PNAS stem", stem, ["cifar", "imagenet"]))
        prev_prev: tuple[int, int] | None = None
        prev = (c_stem, res)

        def add(cells: nn.ModuleList, filters: int, stride: int) -> None:
            nonlocal prev_prev, prev
            if filters < 1:
                raise ConfigError(f"PNAS network: C={C} is too small for the ImageNet stem cells (C/4 < 1)")
            if prev_prev is None:
                pp, c_pp = "raw", prev[0]
            elif prev_prev[1] != prev[1]:
                pp, c_pp = "reduce", prev_prev[0]
            else:
                pp, c_pp = ("conv" if prev_prev[0] != filters else "same"), prev_prev[0]
            m = PNASCell(cell, c_pp, prev[0], filters, stride, pp, concat)
            cells.append(m)
            res_out = _conv_out(prev[1], 3, stride, 1)
            prev_prev, prev = prev, (m.C_out, res_out)

        self.stem_cells = nn.ModuleList()
        if stem == "imagenet":  # two stride-2 stem cells at C/4 and C/2 filters (filter_scaling 1/4, 1/2)
            add(self.stem_cells, int(C * 0.25), 2)
            add(self.stem_cells, int(C * 0.5), 2)
        self.cells = nn.ModuleList()
        self.aux_index = self.reductions[1] - 1
        self.aux_head: nn.Module | None = None
        filters = C
        for i in range(num_cells):
            stride = 1
            if i in self.reductions:
                filters, stride = filters * 2, 2
            add(self.cells, filters, stride)
            if aux and i == self.aux_index:
                self.aux_head = AuxHead(prev[0], prev[1], num_classes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(prev[0], num_classes)
        set_batchnorm(self, bn_eps, bn_momentum)

    @property
    def drop_path_prob(self) -> float:
        return self.cells[0].drop_prob if len(self.cells) else 0.0

    @drop_path_prob.setter
    def drop_path_prob(self, p: float) -> None:
        for m in itertools.chain(self.stem_cells, self.cells):
            m.drop_prob = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clear_auxiliary(self)
        s = self.stem(x)
        s_pp, s_p = s, s
        for m in self.stem_cells:
            s_pp, s_p = s_p, m(s_pp, s_p)
        for i, m in enumerate(self.cells):
            s_pp, s_p = s_p, m(s_pp, s_p)
            if i == self.aux_index:
                tap_auxiliary(self, s_p)
        out = torch.relu(s_p).mean(dim=(2, 3))
        return self.classifier(self.dropout(out))


# --------------------------------------------------------------------------------------------------
# The space
# --------------------------------------------------------------------------------------------------


@SPACES.register("pnas", help="PNAS cell: B blocks of 2 (input, op) pairs, one cell type, stride 2 at reductions")
class PNASSpace(SearchSpace):
    """Options: C (first-stage filters, the paper's F), N (cells per stage, 3N cells), blocks (B), ops
    ("full" 8 ops or "reduced" 4 ops), stem ("cifar" or "imagenet"), stem_multiplier, concat ("unused" blocks,
    the NASNet rule, or "all", the official PNASNet-5 network), aux (auxiliary head), dropout, bn_eps and
    bn_momentum (every BatchNorm; default PyTorch's 1e-5 / 0.1, the published ImageNet values are
    PUBLISHED_IMAGENET_BN: 1e-3 / 3e-4 = 1 - decay 0.9997)."""

    name = "pnas"
    block_cells = True
    # measured on the leaderboard's final network (C=16, N=2, batch 128, 1 thread, a random cell): fp32 NCHW
    # 1.88 s per step, fp32 channels_last 1.51 s, bf16 channels_last 2.66 s; torch's NCHW 3x3 max pool is
    # 4.5-9x slower than its channels_last one here, the separable convs lose in bf16
    fast_paths = {"network": FastPath(False, True, "PNAS network, separable convs and 3x3 max pools: channels_last "
                                                   "1.25x fp32 NCHW, bf16 0.71x (docs/benchmarks.md)")}

    def growth(self) -> "BlockGrowth":
        """Progressive search grows PNAS cells block by block (the paper's algorithm)."""
        return BlockGrowth(self)
    aux_option = "aux"
    defaults = {"C": Opt(8, ">=1"), "N": Opt(1, ">=1"), "blocks": Opt(5, ">=1"),
                "ops": Opt("full", type=None, help="'full', 'reduced' or a list of op names"),
                "stem": Opt("cifar", choices=("cifar", "imagenet")), "stem_multiplier": Opt(1.0, ">0"),
                "concat": Opt("unused", choices=("unused", "all")), "aux": False, "dropout": Opt(0.0, "[0, 1)"),
                "bn_eps": Opt(1e-5, ">0"), "bn_momentum": Opt(0.1, "[0, 1]")}

    def __init__(self, in_channels: int = 1, num_classes: int = 10, resolution: int = 28, **options: Any) -> None:
        super().__init__(in_channels, num_classes, resolution, **options)
        self.op_names = check_ops(self.options["ops"])
        if isinstance(self.options["ops"], (list, tuple)):
            self.options["ops"] = list(self.op_names)  # keep the config JSON
        b = self.options["blocks"]
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ConfigError(f"PNAS option blocks must be an integer >= 1, got {b!r}")
        if self.options["concat"] not in ("unused", "all"):
            raise ConfigError(choices_message("PNAS concat rule", str(self.options["concat"]), ["unused", "all"]))
        _check_bn(self.options["bn_eps"], self.options["bn_momentum"])

    @property
    def max_blocks(self) -> int:
        return int(self.options["blocks"])

    def sample(self, rng: random.Random) -> list[list[Any]]:
        """Uniform over canonical B-block cells (each block uniform over its canonical choices)."""
        return [list(rng.choice(_canonical_blocks(k, self.op_names))) for k in range(1, self.max_blocks + 1)]

    def validate(self, arch: Any) -> list[list[Any]]:
        return cell_to_json(validate_cell(arch, self.op_names, self.max_blocks))

    def size(self) -> int:
        """How many distinct canonical cells the space holds: cells of b = 1 .. `blocks` blocks (`sample` draws
        the full `blocks`-block ones, progressive growth also scores the shorter ones). Block k chooses an
        unordered pair of (input, op) halves from m = (k + 1)·|ops|, m(m + 1)/2 ways (136 for k = 1 and 8
        ops), so b-block cells number the product over k <= b, and the size is the sum over b. Orderings of
        independent blocks are not merged (see the module docstring)."""
        total, cells = 0, 1
        for k in range(1, self.max_blocks + 1):
            m = (k + 1) * len(self.op_names)
            cells *= m * (m + 1) // 2
            total += cells
        return total

    def canonical(self, arch: Any) -> Cell:
        """The validated cell as tuples (hashable)."""
        return validate_cell(arch, self.op_names, self.max_blocks)

    def mutate(self, arch: Any, rng: random.Random) -> list[list[Any]]:
        """Change one input or one op of one block half (always a different canonical cell)."""
        cell = [list(blk) for blk in self.canonical(arch)]
        k = rng.randrange(len(cell))
        # 0/2 = an input, 1/3 = an op (an op set of one op leaves only the inputs to change)
        slot = rng.randrange(4) if len(self.op_names) > 1 else rng.choice((0, 2))
        current = cell[k][slot]
        if slot % 2 == 0:
            choices = [i for i in range(k + 2) if i != current]  # block k+1 (1-based) reads 0..k+1
        else:
            choices = [o for o in self.op_names if o != current]
        cell[k][slot] = rng.choice(choices)
        return self.validate(cell)

    def build(self, arch: Any, **overrides: Any) -> PNASNetwork:
        cell = self.canonical(arch)
        o = {key: self._option(overrides, key) for key in self.defaults}
        unknown = set(overrides) - set(self.defaults)
        if unknown:
            raise ConfigError(f"unknown build option(s) {sorted(unknown)} for space 'pnas'; valid: {', '.join(sorted(self.defaults))}")
        for key in ("C", "N"):
            if isinstance(o[key], bool) or not isinstance(o[key], int) or o[key] < 1:
                raise ConfigError(f"PNAS option {key} must be an integer >= 1, got {o[key]!r}")
        if o["concat"] not in ("unused", "all"):
            raise ConfigError(choices_message("PNAS concat rule", str(o["concat"]), ["unused", "all"]))
        _check_bn(o["bn_eps"], o["bn_momentum"])
        return PNASNetwork(cell, o["C"], o["N"], self.in_channels, self.num_classes, self.resolution,
                           stem=o["stem"], stem_multiplier=float(o["stem_multiplier"]), concat=o["concat"],
                           aux=bool(o["aux"]), dropout=float(o["dropout"]), bn_eps=float(o["bn_eps"]),
                           bn_momentum=float(o["bn_momentum"]))

    def figure(self, arch: Any) -> list:
        """The cell as a DAG: inputs H[c-2], H[c-1], one node per block (the sum of its two op edges), and the
        concatenated blocks (per the space's concat rule) joined to the cell output H[c]."""
        from .figure import CellFigure

        cell = self.canonical(arch)
        names = {0: "H[c-2]", 1: "H[c-1]"}
        node = lambda i: names.get(i, f"b{i - 1}")  # noqa: E731
        edges = [(node(i), f"b{k}", op) for k, (i1, o1, i2, o2) in enumerate(cell, start=1)
                 for i, op in ((i1, o1), (i2, o2))]
        edges += [(f"b{k}", "H[c]", "") for k in cell_output_blocks(cell, self.options["concat"])]
        return [CellFigure("cell", inputs=["H[c-2]", "H[c-1]"], edges=edges, output="H[c]")]

    def describe(self, arch: Any) -> str:
        names = {0: "H[c-2]", 1: "H[c-1]"}
        parts = []
        for k, (i1, o1, i2, o2) in enumerate(self.canonical(arch), start=1):
            a, b = names.get(i1, f"b{i1 - 1}"), names.get(i2, f"b{i2 - 1}")
            parts.append(f"b{k} = {o1}({a}) + {o2}({b})")
        return "; ".join(parts)


class BlockGrowth(Growth):
    """PNAS growth (Liu et al. 2018): blocks appended one at a time; candidate tokens built with numpy
    broadcasting (parent tokens x new-block tokens), so the ~300k children of b = 5 never become Python objects."""

    def __init__(self, space: "PNASSpace") -> None:
        self.space, self.steps = space, space.max_blocks
        self.tokenizer = PNASTokenizer(space.op_names, space.max_blocks)
        self._blocks = lambda b: canonical_blocks(b, space.op_names)
        self._roots = one_block_cells(space.op_names)

    def roots(self) -> list[Partial]:
        return list(self._roots)

    def expand(self, parents: Sequence[Partial]) -> Candidates:
        parents = list(parents)
        b = len(parents[0])
        blocks = self._blocks(b + 1)
        new = self.tokenizer.block_tokens(blocks)  # (n_blocks, 4)
        old = np.stack([self.tokenizer.block_tokens(p) for p in parents])  # (P, b, 4)
        tokens = np.concatenate([np.repeat(old, len(blocks), axis=0), np.tile(new, (len(parents), 1))[:, None, :]],
                                axis=1)
        n = len(blocks)
        return Candidates(TokenBatch(tokens, np.full(len(tokens), b + 1)),
                          lambda i: tuple(parents[i // n]) + (blocks[i % n],))

    def arch(self, partial: Partial) -> Arch:
        return [list(blk) for blk in partial]
