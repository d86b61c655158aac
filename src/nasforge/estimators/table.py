"""Query mode: score architectures by looking them up in a published benchmark table (no training).

* nb201: the score is the **12-epoch validation accuracy** (%) on `dataset` (default cifar10), the cheap
  signal a real search would have. The 200-epoch test accuracy is ground truth: the search never sees it;
  `ground_truth` reports it for the final recommendation only.
* macro (NAS-Bench-Macro, CIFAR-10 only): the table holds test accuracies only; the score is their mean over
  the 3 seeds, which `ground_truth` repeats.

The trial function loads the table from the path in the spec once per process. Tables are read from the
path given as ``tables`` (a folder holding ``nb201/`` and ``nas_bench_macro/``, or the files' own folder),
else from ``$NASFORGE_TABLES``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..benchmarks import MacroTable, NB201Table, default_table_dir
from ..benchmarks.nb201 import check_dataset, check_metric
from ..errors import ConfigError
from ..registry import ESTIMATORS
from ..spaces.base import Arch, SearchSpace
from .base import Estimator

TABLE_SPACES = ("nb201", "macro")


@functools.lru_cache(maxsize=8)
def _nb201(path: str) -> NB201Table:
    return NB201Table.load(path)


@functools.lru_cache(maxsize=8)
def _macro(path: str) -> MacroTable:
    return MacroTable.load(path)


def run_trial(spec: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Trial function: one table lookup."""
    if spec["table"] == "nb201":
        score = _nb201(spec["path"]).query(spec["arch"], spec["dataset"], spec["metric"])
        return {"score": score, "metric": f"{spec['dataset']}_{spec['metric']}"}
    if spec["table"] == "macro":
        return {"score": _macro(spec["path"]).query(spec["arch"]), "metric": "cifar10_mean_test"}
    raise ConfigError(f"unknown benchmark table '{spec['table']}' in trial spec; expected one of {', '.join(TABLE_SPACES)}")


@ESTIMATORS.register("table", help="query mode: look architectures up in NB201 / NAS-Bench-Macro tables")
class TableEstimator(Estimator):
    """`tables`: folder of the benchmark tables; `dataset` / `metric`: the NB201 search signal."""

    name = "table"
    trial_fn = "nasforge.estimators.table:run_trial"
    runs_in_process = True

    def __init__(self, tables: str | Path | None = None, dataset: str = "cifar10", metric: str = "val_12") -> None:
        path = Path(tables).expanduser() if tables is not None else default_table_dir()
        if path is None:
            raise ConfigError("the table estimator needs the benchmark tables: pass their folder (--tables DIR) "
                              "or set NASFORGE_TABLES")
        if not path.exists():
            raise ConfigError(f"benchmark table folder {path} does not exist (--tables / NASFORGE_TABLES)")
        self.path = str(path.resolve())
        self.dataset, self.metric = check_dataset(dataset), check_metric(metric)
        if self.metric == "test_200":
            # allowed (an oracle search), but it is the ground truth: say so instead of failing silently
            import warnings

            warnings.warn("table estimator scores by the 200-epoch *test* accuracy: the search sees the ground truth",
                          stacklevel=2)

    def _check_space(self, space: SearchSpace) -> None:
        if space.name not in TABLE_SPACES:
            raise ConfigError(f"the table estimator has tables for spaces {', '.join(TABLE_SPACES)}, not '{space.name}'")

    def trial_spec(self, space: SearchSpace, arch: Arch, seed: int) -> dict[str, Any]:
        # no seed: a lookup does not depend on it, and leaving it out lets the journal share trials across seeds
        self._check_space(space)
        arch = space.validate(arch)
        if space.name == "nb201":
            return {"table": "nb201", "path": self.path, "dataset": self.dataset, "metric": self.metric, "arch": arch}
        return {"table": "macro", "path": self.path, "arch": arch}

    def ground_truth(self, space: SearchSpace, arch: Arch) -> dict[str, Any]:
        """What the table says about the recommendation: NB201 200-epoch test accuracy (and the rest of its
        record), or NAS-Bench-Macro's mean test accuracy, params and FLOPs."""
        self._check_space(space)
        arch = space.validate(arch)
        if space.name == "nb201":
            record = _nb201(self.path).record(arch)
            return {"test_accuracy": record[f"{self.dataset}_test_200"], "dataset": self.dataset, **record}
        record = _macro(self.path).record(arch)
        return {"test_accuracy": record["mean_acc"], "dataset": "cifar10", **record}
