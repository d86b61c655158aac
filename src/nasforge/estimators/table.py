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

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry import ESTIMATORS
from ..spaces.base import Arch, SearchSpace
from ..tables import default_table_dir
from ..tables.lookup import LOOKUPS, open_lookup
from ..tables.nb201 import check_dataset, check_metric
from .base import Estimator


def run_trial(spec: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Trial function: one table lookup (the table is loaded once per process)."""
    if spec["table"] not in LOOKUPS:
        raise ConfigError(f"unknown benchmark table '{spec['table']}' in trial spec; expected one of {', '.join(LOOKUPS)}")
    score, metric = open_lookup(spec["table"], spec["path"], spec.get("dataset", "cifar10"),
                                spec.get("metric", "val_12")).score(spec["arch"])
    return {"score": score, "metric": metric}


@ESTIMATORS.register("table", help="query mode: look architectures up in the published table of the space (NB201, NAS-Bench-Macro)")
class TableEstimator(Estimator):
    """`tables`: folder of the benchmark tables; `dataset` / `metric`: the NB201 search signal.

    Works on every space that names a table (``SearchSpace.table``); the others get a ConfigError.
    """

    name = "table"
    trial_fn = "nasforge.estimators.table:run_trial"
    runs_in_process = True
    trial_precision = "n/a"  # a lookup: nothing is computed in any precision

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

    @staticmethod
    def _table_of(space: SearchSpace) -> str:
        if space.table is None:
            raise ConfigError(f"space '{space.name}' has no published table to look architectures up in; the table "
                              f"estimator covers the tables {', '.join(LOOKUPS)}")
        return space.table

    @classmethod
    def fidelity(cls, space: SearchSpace, options: dict[str, Any]) -> dict[str, Any]:
        """The training lengths the space's table holds (NB201: 12 and 200 epochs).

        Raises:
            ConfigError: the space has no table, or its table holds one training length only.
        """
        levels = sorted(LOOKUPS[cls._table_of(space)].fidelities)
        if len(levels) < 2:
            raise ConfigError(f"table '{space.table}' of space '{space.name}' holds one training length only; "
                              "multi-fidelity search needs a table with several (nb201: 12 and 200 epochs)")
        return {"unit": "epochs", "levels": levels, "max": levels[-1]}

    def metric_at(self, space: SearchSpace, fidelity: int) -> str:
        """The table column read at `fidelity` epochs: the configured metric when it was measured at that
        length (e.g. val_12 or test_12 at 12), else the table's column for that length (test_200 at 200: NB201
        publishes no 200-epoch validation accuracy, so the top rung sees the ground-truth column)."""
        columns = LOOKUPS[self._table_of(space)].fidelities
        if fidelity not in columns:
            raise ConfigError(f"table '{space.table}' holds fidelities {', '.join(map(str, sorted(columns)))} "
                              f"epochs, not {fidelity}")
        return self.metric if self.metric.endswith(f"_{fidelity}") else columns[fidelity]

    def trial_spec(self, space: SearchSpace, arch: Arch, seed: int, fidelity: int | None = None) -> dict[str, Any]:
        """`fidelity`: look up the column measured after that many training epochs (see `metric_at`)."""
        # no seed: a lookup does not depend on it, and leaving it out lets the journal share trials across seeds
        table = self._table_of(space)
        metric = self.metric if fidelity is None else self.metric_at(space, int(fidelity))
        return {"table": table, "path": self.path, "dataset": self.dataset, "metric": metric,
                "arch": space.validate(arch)}

    def lookup(self, space: SearchSpace):
        """The `nasforge.tables.lookup.Lookup` this estimator scores with (its table, dataset and metric)."""
        return open_lookup(self._table_of(space), self.path, self.dataset, self.metric)

    def ground_truth(self, space: SearchSpace, arch: Arch) -> dict[str, Any]:
        """What the table says about the recommendation: NB201 200-epoch test accuracy (and the rest of its
        record), or NAS-Bench-Macro's mean test accuracy, params and FLOPs."""
        lookup = open_lookup(self._table_of(space), self.path, self.dataset, self.metric)
        return lookup.ground_truth(space.validate(arch))
