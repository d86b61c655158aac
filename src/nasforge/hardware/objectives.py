"""Objectives and constraints of a multi-objective search, and what each costs an architecture.

An objective is named by a short string:

=====================  ==========================================================  ====== ========
name                   value                                                       unit   goal
=====================  ==========================================================  ====== ========
``accuracy``           the estimator's score (table: 12-epoch val. accuracy in %;  score  maximise
                       scratch: a fraction 0-1)
``latency@DEVICE``     latency on a named target device (``nasforge.hardware``:     ms     minimise
                       a HELP table column such as ``pixel3``, or a local LUT
                       device such as ``local-cpu-1t``)
``params``             parameters of the network at the space's search scale       count  minimise
``flops``              real multiply-adds per image (what ``result.json`` calls     count  minimise
                       ``flops``; ``nasforge.hardware.binary``)
``bops``               binary multiply-adds per image (binary networks)             count  minimise
=====================  ==========================================================  ====== ========

A *constraint* is an objective name, ``<=`` or ``>=`` and a bound with an optional unit:
``latency@pixel3<=5ms``, ``params<=1.2M``, ``flops<=50M``, ``accuracy>=90`` (suffixes k/K, M, G for counts;
us, ms, s for latency; % for accuracy). Constraints need not be objectives. Cost constraints (everything but
accuracy) are known before an architecture is evaluated, so a search never evaluates an architecture that
violates one; an accuracy constraint is known only afterwards and enters NSGA-II's constrained domination.

`ArchCosts` computes the cost metrics of architectures (latency from the device's model, params / FLOPs /
BOPs by building the network once per architecture) and caches them per architecture.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, UserError

METRICS: tuple[str, ...] = ("accuracy", "latency", "params", "flops", "bops")
_UNITS = {"latency": {"": 1.0, "ms": 1.0, "us": 1e-3, "s": 1e3},
          "accuracy": {"": 1.0, "%": 1.0},
          "count": {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][\w@.\-]*)\s*(<=|>=)\s*([-+0-9.eE]+)\s*([A-Za-z%]*)\s*$")


@dataclass(frozen=True)
class Objective:
    """One objective: `metric` (a name of METRICS) and, for latency, the target `device`."""

    metric: str
    device: str | None = None

    @property
    def key(self) -> str:
        """The objective's name as written: ``accuracy``, ``latency@pixel3``, ..."""
        return f"{self.metric}@{self.device}" if self.device else self.metric

    @property
    def maximize(self) -> bool:
        return self.metric == "accuracy"

    @property
    def unit(self) -> str:
        return "ms" if self.metric == "latency" else ""  # accuracy: the estimator's unit (% or a fraction)

    def label(self) -> str:
        return f"{self.key} ({self.unit})" if self.unit else self.key


@dataclass(frozen=True)
class Constraint:
    """``objective op bound`` with `bound` in the objective's unit (ms, %, a count)."""

    objective: Objective
    op: str  # "<=" or ">="
    bound: float

    @property
    def text(self) -> str:
        return f"{self.objective.key}{self.op}{self.bound:g}{self.objective.unit}"

    def violation(self, value: float) -> float:
        """How far `value` is outside the bound (0 when satisfied), relative to the bound's size so that
        violations of different units add up (Deb's total constraint violation)."""
        gap = value - self.bound if self.op == "<=" else self.bound - value
        return max(0.0, gap) / max(abs(self.bound), 1e-12)


def parse_objective(text: Any) -> Objective:
    """An Objective from its name (see the module docstring). Raises ConfigError naming the choices."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"an objective is a name such as accuracy, latency@pixel3, params, flops, bops; got {text!r}")
    name, _, device = text.strip().partition("@")
    if name not in METRICS:
        raise ConfigError(f"unknown objective '{text}'; choose from: accuracy, latency@DEVICE, params, flops, bops")
    if name == "latency":
        if not device:
            raise ConfigError(f"objective '{text}' needs a device: latency@DEVICE, e.g. latency@pixel3 "
                              "(`nasforge latency devices` lists them)")
        from .devices import check_target

        try:
            check_target(device)
        except UserError as e:
            raise ConfigError(f"objective '{text}': {e}") from None
        return Objective("latency", device)
    if device:
        raise ConfigError(f"objective '{text}': only latency takes a device (@DEVICE)")
    return Objective(name)


def parse_constraint(text: Any) -> Constraint:
    """A Constraint from ``name<=bound[unit]`` / ``name>=bound[unit]``. Raises ConfigError for a bad form,
    an unknown name or unit, a non-finite bound, or a bound no architecture can meet in principle."""
    m = _CONSTRAINT_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(f"a constraint reads NAME<=BOUND or NAME>=BOUND with an optional unit, e.g. "
                          f"latency@pixel3<=5ms, params<=1.2M, accuracy>=90; got {text!r}")
    obj = parse_objective(m.group(1))
    try:
        value = float(m.group(3))
    except ValueError:
        raise ConfigError(f"constraint {text!r}: {m.group(3)!r} is not a number") from None
    units = _UNITS["latency" if obj.metric == "latency" else "accuracy" if obj.metric == "accuracy" else "count"]
    if m.group(4) not in units:
        raise ConfigError(f"constraint {text!r}: unknown unit '{m.group(4)}' for {obj.metric}; use one of "
                          f"{', '.join(u for u in units if u) or 'none'}")
    bound = value * units[m.group(4)]
    if not np.isfinite(bound) or bound < 0 or (obj.metric == "accuracy" and bound > 100):
        raise ConfigError(f"constraint {text!r}: the bound must be a finite value >= 0"
                          + (" and <= 100 %" if obj.metric == "accuracy" else ""))
    if obj.maximize and m.group(2) == "<=" or not obj.maximize and m.group(2) == ">=":
        raise ConfigError(f"constraint {text!r} bounds {obj.key} from the wrong side: write "
                          f"{obj.key}{'>=' if obj.maximize else '<='}... ({obj.key} is "
                          f"{'maximised' if obj.maximize else 'minimised'})")
    return Constraint(obj, m.group(2), bound)


def as_list(value: Any, what: str) -> list[str]:
    """A list option given as a YAML list or as one comma-separated string (``--set constraints=a<=1,b<=2``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    raise ConfigError(f"{what} must be a list of names (or one comma-separated string), got {value!r}")


def parse_objectives(value: Any) -> list[Objective]:
    """The objectives option: distinct names, exactly one of them ``accuracy``, at least two in all."""
    objs = [parse_objective(v) for v in as_list(value, "objectives")]
    keys = [o.key for o in objs]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"objectives are listed twice: {keys}")
    if len(objs) < 2:
        raise ConfigError(f"a multi-objective search needs at least two objectives, got {keys}")
    if keys.count("accuracy") != 1:
        raise ConfigError(f"objectives must include accuracy (the estimator's score) once, got {keys}")
    return objs


def check_for_space(items: Sequence[Objective], space: Any) -> None:
    """Every latency device must have data for `space` (a HELP column of its table or, for a layer-wise space,
    a local device). Raises ConfigError naming the problem."""
    from .devices import check_target

    for o in items:
        if o.metric == "latency":
            try:
                check_target(o.device, space)
            except UserError as e:
                raise ConfigError(f"objective {o.key}: {e}") from None


class ArchCosts:
    """Cost metrics (everything but accuracy) of the architectures of one space, cached per architecture.

    `metrics`: the Objectives whose values are needed. `tables`: the benchmark table folder (HELP devices);
    `lut_dir`: where local LUTs are stored for a resumed run (None: the default cache). Latency models are
    built on first use (a local device is timed then). Params / FLOPs / BOPs build the network at the
    space's search scale once per architecture, under a forked torch RNG (weights are thrown away, and no
    random stream of the search moves)."""

    def __init__(self, space: Any, metrics: Sequence[Objective], tables: str | Path | None = None,
                 lut_dir: str | Path | None = None) -> None:
        self.space = space
        self.metrics = [o for o in dict.fromkeys(metrics) if o.metric != "accuracy"]
        self.tables, self.lut_dir = tables, lut_dir
        self._latency: dict[str, Any] = {}
        self._cache: dict[str, dict[str, float]] = {}

    def latency_model(self, device: str) -> Any:
        if device not in self._latency:
            from .cost import latency_model
            from .devices import is_local
            from .lut import load_run_table, save_run_table

            stored = Path(self.lut_dir) / f"lut_{device}.json" if self.lut_dir is not None and is_local(device) else None
            model = load_run_table(stored)
            if model is None:
                model = latency_model(device, self.space, tables=self.tables)
                save_run_table(stored, model)
            self._latency[device] = model
        return self._latency[device]

    def _build_costs(self, arch: Any) -> dict[str, float]:
        import torch

        from ..ops.heads import param_counts
        from .binary import model_costs

        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model = self.space.build(arch)
            counts = param_counts(model)
            costs = model_costs(model, self.space.in_channels, self.space.resolution)
        return {"params": float(counts["params"]), "flops": float(costs["flops"]), "bops": float(costs["bops"])}

    def of(self, arch: Any, key: str) -> dict[str, float]:
        """{objective key: value} of every cost metric of `arch` (`key`: the architecture's cache key)."""
        if key not in self._cache:
            out: dict[str, float] = {}
            built: dict[str, float] | None = None
            for o in self.metrics:
                if o.metric == "latency":
                    out[o.key] = float(self.latency_model(o.device).predict(arch))
                else:
                    built = built or self._build_costs(arch)
                    out[o.key] = built[o.metric]
            self._cache[key] = out
        return self._cache[key]


def minimised(values: dict[str, float], objectives: Sequence[Objective]) -> list[float]:
    """The objective vector in minimisation form (a maximised objective negated), in `objectives` order."""
    return [-values[o.key] if o.maximize else values[o.key] for o in objectives]


def violation(values: dict[str, float], constraints: Sequence[Constraint]) -> float:
    """Total constraint violation (0 = feasible) of an architecture's `values` {objective key: value}."""
    return float(sum(c.violation(values[c.objective.key]) for c in constraints))
