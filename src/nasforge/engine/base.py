"""The strategy interface and the context a search runs in.

Two families share it:
- one-shot strategies (darts, single-darts, manas, random-ws, ...) train a supernet from `ctx.data` for
  `budget.epochs` and derive an architecture;
- multi-trial strategies (random, evolution, pnas) propose architectures and have them scored by
  `ctx.estimator` through `ctx.evaluate(archs)`, which runs them on `ctx.executor` and records every trial
  in the run's journal, so a resumed search re-runs nothing that finished.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from .. import options
import torch

from ..errors import ConfigError
from ..spaces.base import Arch, SearchSpace

if TYPE_CHECKING:
    from ..data.datasets import SearchData
    from ..estimators.base import Estimator
    from ..runs.store import RunDir


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class Budget:
    """How much a search may spend: supernet epochs, trials (evaluated architectures), and/or seconds.

    `clock` says what `seconds` counts: ``wall`` (wall-clock seconds) or ``cpu`` (this process's CPU seconds,
    ``time.process_time``: with one thread, CPU-seconds on one thread, the same on a busy shared machine as on
    an idle one, which makes equal budgets fair when runs share cores).

    Raises:
        ConfigError: a non-positive amount or an unknown clock.
    """

    epochs: int | None = None
    trials: int | None = None
    seconds: float | None = None
    clock: str = "wall"

    def __post_init__(self) -> None:
        for name in ("epochs", "trials", "seconds"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"budget {name} must be positive, got {v}")
        if self.clock not in CLOCKS:
            raise ConfigError(f"unknown budget clock '{self.clock}'; choose from: {', '.join(CLOCKS)}")

    def as_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "trials": self.trials, "seconds": self.seconds, "clock": self.clock}


@dataclass
class SearchResult:
    """What a search found: `arch`, its per-epoch/per-trial `history`, `metrics` (everything the method
    reports) and `optimised`: the few facts that say what the method optimised and how that came out (a
    latency budget and the winner's latency, a MACs window and the fitness, ...), which the API copies to
    result.json's ``optimised`` and the command line prints in its summary. A strategy may fill it, or
    declare ``Strategy.optimised_keys`` to have it taken from `metrics`."""

    arch: Arch
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    optimised: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchContext:
    space: SearchSpace
    budget: Budget
    seed: int = 0
    data: "SearchData | None" = None
    estimator: "Estimator | None" = None
    executor: Any = None
    run: "RunDir | None" = None
    table: Any = None  # nasforge.tables.lookup.Lookup of the space's table when --tables is given
    progress: Callable[..., Any] | None = None  # progress(description, total) -> object with .advance()
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # host: default; the API sets it
    precision: str = "fp32"  # fp32 | bf16 | fp16: autocast of forward passes (nasforge.accel.Precision)
    #: channels_last | contiguous | None (the supernet as its builder made it): nasforge.accel.apply_memory_format
    memory_format: str | None = None
    sync_bn: bool = False  # data parallel: BatchNorm statistics over the global batch
    start_time: float | None = None  # the budget clock's reading at the start (set at construction)
    elapsed_before: float = 0.0  # seconds (budget clock) spent before a resume
    teacher: Any = None  # a frozen trained model for knowledge distillation (config key `teacher`), or None
    _journal: Any = None
    trial_bar: Any = None  # the "trial k of N, best so far" bar of a multi-trial search (nasforge.progress)
    trials_seen: int = 0
    best_score: float | None = None

    def __post_init__(self) -> None:
        if self.start_time is None:
            self.start_time = self._clock()

    def tables_folder(self) -> str | None:
        """The benchmark tables folder of this search (--tables; latency tables of HELP devices): the
        estimator's (a table lookup), else the run's config, else None."""
        path = getattr(self.estimator, "path", None)
        if path is None and self.run is not None:
            path = self.run.config().get("tables")
        return path

    # -- logging and checkpoints ------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """True in the process that writes the run directory (rank 0, or the only process)."""
        from .. import distributed

        return distributed.is_main()

    def log(self, **record: Any) -> None:
        if self.run is not None and self.is_main:
            self.run.log(**record)

    def checkpoint(self, state: dict[str, Any]) -> None:
        if self.run is not None and self.is_main:
            self.run.save_checkpoint({**state, "elapsed_s": self.elapsed()})
        from .. import distributed

        distributed.barrier()  # no rank runs ahead of a checkpoint that may be resumed from

    def restore(self) -> dict[str, Any] | None:
        if self.run is None:
            return None
        state = self.run.load_checkpoint()
        if state is not None:
            self.elapsed_before = float(state.get("elapsed_s", 0.0))
            self.start_time = self._clock()
        return state

    # -- budget -----------------------------------------------------------------------------
    def _clock(self) -> float:
        return CLOCKS[self.budget.clock if self.budget is not None else "wall"]()

    def elapsed(self) -> float:
        """Seconds spent on the search so far (before a resume included), counted by the budget's clock."""
        return self.elapsed_before + self._clock() - self.start_time

    def out_of_time(self) -> bool:
        budget = self.budget
        return budget is not None and budget.seconds is not None and self.elapsed() >= budget.seconds

    # -- multi-trial evaluation ---------------------------------------------------------------
    @property
    def journal(self) -> Any:
        if self._journal is None:
            from ..runs.journal import TrialJournal

            path = (self.run.path / "trials.sqlite") if self.run is not None else ":memory:"
            self._journal = TrialJournal(path)
        return self._journal

    def close(self) -> None:
        """Close the trial journal, if the search opened one (a finished run then holds one sqlite file)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def evaluate(self, archs: list[Arch], *, round: int | None = None) -> list[dict[str, Any] | None]:
        """Score architectures with the estimator; returns one result dict (with "score") per arch.

        With a time budget (``budget.seconds``) no trial starts after the deadline: trials already running
        finish, and an architecture whose trial never started gets None (its trial stays pending)."""
        if self.estimator is None:
            raise ConfigError("this strategy needs an estimator (--estimator scratch|table)")
        specs = [self.estimator.trial_spec(self.space, a, seed=self.seed) for a in archs]
        if self.estimator.runs_in_process or self.executor is None:
            from ..runs.executors import LocalExecutor

            executor = LocalExecutor()
        else:
            executor = self.executor
        stop = self.out_of_time if self.budget is not None and self.budget.seconds is not None else None
        results = executor.run(specs, self.estimator.trial_fn, self.journal, progress=self._on_trial, stop=stop)
        for arch, res in zip(archs, results):
            if res is not None:
                self.log(event="trial", round=round, arch=arch, **{k: v for k, v in res.items() if k != "arch"})
        return results

    def _on_trial(self, trial: Any, finished: int, total: int) -> None:
        """Advance the trial bar (a terminal only) as each trial finishes."""
        self.trials_seen += 1
        score = (trial.result or {}).get("score") if trial.status == "done" else None
        if isinstance(score, (int, float)) and score == score and (self.best_score is None or score > self.best_score):
            self.best_score = float(score)
        if self.trial_bar is not None:
            n = self.budget.trials or "?"
            best = f"{self.best_score:.4g}" if self.best_score is not None else "-"
            self.trial_bar.update(f"trial {self.trials_seen} of {n}, best {best}")
            self.trial_bar.advance()


class Strategy(ABC):
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "one-shot"  # or "multi-trial"
    #: hyperparameter -> default or `nasforge.options.Opt` (type, range, choices); the CLI accepts
    #: overrides as --set key=value, checked by `nasforge.options.resolve` before a run directory exists
    defaults: ClassVar[dict[str, Any]] = {}
    #: the strategy distils from a teacher (config key `teacher`, handed over as ``ctx.teacher``)
    uses_teacher: ClassVar[bool] = False
    #: keys of SearchResult.metrics (a dotted path reaches into a dict: "selection.best_fitness" -> best_fitness)
    #: that say what the method optimised; see SearchResult.optimised
    optimised_keys: ClassVar[tuple[str, ...]] = ()

    def optimised(self, result: SearchResult) -> dict[str, Any]:
        """`result.optimised`, completed from `result.metrics` by :attr:`optimised_keys`."""
        out: dict[str, Any] = {}
        for key in self.optimised_keys:
            value: Any = result.metrics
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                out[key.split(".")[-1]] = value
        return {**out, **result.optimised}

    def __init__(self, **hparams: Any) -> None:
        self.hp = options.resolve(self.defaults, hparams, f"strategy '{self.name}'", noun="hyperparameter")

    def mode(self, estimator: str | None) -> str:
        """How the API runs this strategy with the given --estimator: "one-shot" or "multi-trial"."""
        return self.kind

    def preflight(self, space: SearchSpace, cfg: dict[str, Any]) -> None:
        """Checks that need the space and the config, run by the API before a new run directory is created
        (not on resume); raise UserError."""

    def prepare(self, space: SearchSpace) -> Any:
        """Checks and set-up that need the space, run by the API every time (new run or resume) before the run
        directory is touched (e.g. vitas' MACs window); raise UserError. Default: nothing."""

    @abstractmethod
    def search(self, ctx: SearchContext) -> SearchResult:
        """Run under ctx.budget, checkpointing through ctx.checkpoint so ctx.restore() resumes exactly."""
