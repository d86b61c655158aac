"""A synthetic multi-fidelity estimator for the scheduler tests, passed by trial-function path
``"mf_trials:synthetic_trial"`` (a plain module, not a test file: Ray workers import it from ``sys.path``).

Score of an architecture at fidelity r: its hidden quality q (a hash of the arch, in [0, 100)) plus a
deterministic error that shrinks as 1/r, so low rungs rank roughly, high rungs exactly. Architectures listed
in ``fail`` raise in every attempt (a trial that fails for good).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from nasforge.estimators.base import Estimator

CALLS = {"n": 0}  # trials run in this process


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16 ** 12


def quality(arch: str) -> float:
    return 100.0 * _unit(arch)


def objective(arch: str, fidelity: int) -> float:
    return quality(arch) + 40.0 * (_unit(f"{arch}@{fidelity}") - 0.5) / fidelity


def synthetic_trial(spec: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    CALLS["n"] += 1
    if spec.get("log_dir"):  # count executions across processes (Ray workers)
        with open(Path(spec["log_dir"]) / "calls", "a") as f:
            f.write(f"{os.getpid()}\n")
    if spec["arch"] in spec.get("fail", []):
        raise RuntimeError(f"synthetic failure of {spec['arch']}")
    return {"score": objective(spec["arch"], spec["fidelity"]), "fidelity": spec["fidelity"]}


class SyntheticFidelity(Estimator):
    """Any whole-number fidelity up to `max` (default 9)."""

    name = "synthetic-fidelity"
    trial_fn = "mf_trials:synthetic_trial"

    def __init__(self, max_fidelity: int = 9, fail: tuple[str, ...] = (), log_dir: str | None = None,
                 in_process: bool = True) -> None:
        self.train = {"epochs": max_fidelity}
        self.fail = sorted(fail)
        self.log_dir = log_dir
        self.runs_in_process = in_process

    @classmethod
    def fidelity(cls, space: Any, options: dict[str, Any]) -> dict[str, Any]:
        return {"unit": "epochs", "levels": None, "max": int((options.get("train") or {}).get("epochs", 9))}

    def trial_spec(self, space: Any, arch: Any, seed: int, fidelity: int | None = None) -> dict[str, Any]:
        spec = {"arch": arch, "fidelity": int(fidelity or self.train["epochs"]), "fail": self.fail}
        if self.log_dir:
            spec["log_dir"] = self.log_dir
        return spec
