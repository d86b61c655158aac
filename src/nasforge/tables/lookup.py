"""One interface over every published table an architecture can be looked up in.

A search space names its table in the class attribute ``SearchSpace.table`` (a key of `LOOKUPS`); the API,
the one-shot loop and the table estimator open it with `open_lookup` and never ask which space they are on.
A new table is one `Lookup` subclass added to `LOOKUPS`.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar, Union

from ..errors import ConfigError, choices_message
from .macro import MacroTable
from .nb201 import NB201Table, check_dataset, check_metric

PathLike = Union[str, Path]


class Lookup:
    """A loaded table seen through what a search needs.

    * `record(arch)`: everything the table says about `arch` (a dict of JSON numbers), stored in result.json;
    * `score(arch)`: (the search signal, its metric name), what the table estimator ranks by;
    * `ground_truth(arch)`: the recommendation's final number as ``test_accuracy`` (%) plus `record`.
    Errors: `UserError` for an architecture the table does not hold, `DataError` for a bad table file.
    """

    name: ClassVar[str] = ""
    #: training length (epochs) -> the metric measured after it, for multi-fidelity search ({} = one length)
    fidelities: ClassVar[dict[int, str]] = {}

    def __init__(self, path: PathLike, dataset: str = "cifar10", metric: str = "val_12") -> None:
        self.path, self.dataset, self.metric = str(path), dataset, metric

    def record(self, arch: Any) -> dict[str, Any]:
        raise NotImplementedError

    def score(self, arch: Any) -> tuple[float, str]:
        raise NotImplementedError

    def ground_truth(self, arch: Any) -> dict[str, Any]:
        raise NotImplementedError

    def enumerate(self) -> tuple[list[Any], Any] | None:
        """(every architecture of the table, their search signal as an array in that order), for exact Pareto
        fronts; None where the table does not cover its whole space."""
        return None


@functools.lru_cache(maxsize=8)
def _nb201(path: str) -> NB201Table:
    return NB201Table.load(path)


@functools.lru_cache(maxsize=8)
def _macro(path: str) -> MacroTable:
    return MacroTable.load(path)


class NB201Lookup(Lookup):
    """NAS-Bench-201: the search signal is the 12-epoch validation accuracy (%) on `dataset` by default (the
    cheap signal a real search would have); the 200-epoch test accuracy is the ground truth."""

    name = "nas-bench-201"
    fidelities = {12: "val_12", 200: "test_200"}  # no 200-epoch validation column is published

    def __init__(self, path: PathLike, dataset: str = "cifar10", metric: str = "val_12") -> None:
        super().__init__(path, check_dataset(dataset), check_metric(metric))
        self.table = _nb201(self.path)

    def record(self, arch: Any) -> dict[str, Any]:
        return self.table.record(arch)

    def score(self, arch: Any) -> tuple[float, str]:
        return self.table.query(arch, self.dataset, self.metric), f"{self.dataset}_{self.metric}"

    def ground_truth(self, arch: Any) -> dict[str, Any]:
        record = self.table.record(arch)
        return {"test_accuracy": record[f"{self.dataset}_test_200"], "dataset": self.dataset, **record}

    def enumerate(self) -> tuple[list[str], Any]:
        """All 15,625 cells (arch strings by official index) and the search signal of each."""
        return [self.table.arch_of(i) for i in range(len(self.table))], self.table.column(self.dataset, self.metric)


class MacroLookup(Lookup):
    """NAS-Bench-Macro (CIFAR-10 only): test accuracies of 3 seeds; score and ground truth are their mean."""

    name = "nas-bench-macro"

    def __init__(self, path: PathLike, dataset: str = "cifar10", metric: str = "val_12") -> None:
        super().__init__(path, "cifar10", "mean_test")
        self.table = _macro(self.path)

    def record(self, arch: Any) -> dict[str, Any]:
        return self.table.record(arch)

    def score(self, arch: Any) -> tuple[float, str]:
        return self.table.query(arch), "cifar10_mean_test"

    def ground_truth(self, arch: Any) -> dict[str, Any]:
        record = self.table.record(arch)
        return {"test_accuracy": record["mean_acc"], "dataset": "cifar10", **record}


LOOKUPS: dict[str, type[Lookup]] = {cls.name: cls for cls in (NB201Lookup, MacroLookup)}


def open_lookup(kind: str, path: PathLike, dataset: str = "cifar10", metric: str = "val_12") -> Lookup:
    """The table `kind` (a key of LOOKUPS, e.g. a space's ``table`` attribute) read from `path` (a folder
    holding the tables or their own folder). Loaded tables are cached per process.
    Raises ConfigError for an unknown kind, UserError/DataError from the readers."""
    if kind not in LOOKUPS:
        raise ConfigError(choices_message("benchmark table", str(kind), list(LOOKUPS)))
    return LOOKUPS[kind](path, dataset, metric)
