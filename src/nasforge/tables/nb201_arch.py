"""NAS-Bench-201 cells as arch strings (pure functions, no table needed).

A cell has 4 nodes; each of the 6 edges i->j (i < j) carries one of 5 ops. The arch string lists, for
node j = 1, 2, 3, its incoming edges from nodes 0..j-1: `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError, UserError, choices_message

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NB201_SIZE = len(NB201_OPS) ** len(NB201_EDGES)  # 15,625 cells

_ARCH_FORM = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
_OP_INDEX = {op: i for i, op in enumerate(NB201_OPS)}
# One regex match per row keeps table validation fast; parse_arch explains any string it rejects.
_OP_RE = "(?:" + "|".join(NB201_OPS) + ")"
_ARCH_RE = re.compile(r"\+".join(r"\|" + r"\|".join(f"{_OP_RE}~{src}" for src in range(node)) + r"\|" for node in (1, 2, 3)))


# --------------------------------------------------------------------------------------------------
# Arch strings
# --------------------------------------------------------------------------------------------------


def _bad_arch(s: str, why: str) -> UserError:
    return UserError(f"bad NB201 arch string '{s}': {why}; expected the form {_ARCH_FORM}")


def parse_arch(s: str) -> tuple[str, ...]:
    """Arch string -> the 6 op names in NB201_EDGES order. Raises UserError naming the bad part."""
    if not isinstance(s, str):
        raise UserError(f"an NB201 arch string must be a str like {_ARCH_FORM}, got {type(s).__name__} {s!r}")
    groups = s.split("+")
    if len(groups) != 3:
        raise _bad_arch(s, f"found {len(groups)} node group(s) separated by '+', expected 3")
    ops: list[str] = []
    for node, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise _bad_arch(s, f"node {node} group '{group}' must start and end with '|'")
        edges = group[1:-1].split("|")
        if len(edges) != node:
            raise _bad_arch(s, f"node {node} group '{group}' has {len(edges)} edge(s), expected {node} (one per earlier node)")
        for src, edge in enumerate(edges):
            op, sep, inp = edge.partition("~")
            if not sep:
                raise _bad_arch(s, f"edge '{edge}' into node {node} lacks the '~<input node>' suffix")
            if op not in _OP_INDEX:
                raise UserError(f"bad NB201 arch string '{s}': " + choices_message("NB201 op", op, list(NB201_OPS)))
            if inp != str(src):
                raise _bad_arch(s, f"edge '{edge}' is edge {src}->{node}, so its input must be '~{src}', not '~{inp}'")
            ops.append(op)
    return tuple(ops)


def _check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    if isinstance(ops, str):
        raise UserError(f"expected a sequence of {len(NB201_EDGES)} NB201 op names, got the string '{ops}' (use parse_arch)")
    ops = tuple(ops)
    if len(ops) != len(NB201_EDGES):
        raise UserError(f"an NB201 cell has {len(NB201_EDGES)} edges {NB201_EDGES}, got {len(ops)} ops: {list(ops)}")
    for op in ops:
        if op not in _OP_INDEX:
            raise UserError(choices_message("NB201 op", str(op), list(NB201_OPS)))
    return ops


def format_arch(ops: Sequence[str]) -> str:
    """6 op names in NB201_EDGES order -> arch string (inverse of parse_arch)."""
    ops = _check_ops(ops)
    groups, k = [], 0
    for node in (1, 2, 3):
        groups.append("|" + "|".join(f"{ops[k + src]}~{src}" for src in range(node)) + "|")
        k += node
    return "+".join(groups)


def ops_to_indices(ops: Sequence[str]) -> tuple[int, ...]:
    """Op names -> positions in NB201_OPS (e.g. for one-hot encodings)."""
    return tuple(_OP_INDEX[op] for op in _check_ops(ops))


def indices_to_ops(indices: Sequence[int]) -> tuple[str, ...]:
    """Positions in NB201_OPS -> op names (inverse of ops_to_indices)."""
    indices = tuple(indices)
    if len(indices) != len(NB201_EDGES):
        raise UserError(f"an NB201 cell has {len(NB201_EDGES)} edges, got {len(indices)} op indices: {list(indices)}")
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(NB201_OPS):
            raise UserError(f"NB201 op index {i!r} is not an integer in 0..{len(NB201_OPS) - 1} ({', '.join(NB201_OPS)})")
    return tuple(NB201_OPS[int(i)] for i in indices)


def check_arch_column(path: Path, archs: Sequence[str]) -> None:
    """Every arch string must be valid and appear once; errors name the line."""
    seen: dict[str, int] = {}
    for i, arch in enumerate(archs):
        if not _ARCH_RE.fullmatch(arch):
            try:
                parse_arch(arch)
            except UserError as e:
                raise DataError(f"{path}: line {i + 2}: {e}") from None
        if arch in seen:
            raise DataError(f"{path}: line {i + 2}: arch {arch} repeats line {seen[arch] + 2}; expected each cell once")
        seen[arch] = i
