"""The estimator interface: how a multi-trial strategy learns how good an architecture is.

An estimator turns an architecture into a *trial spec* (plain JSON) and names a trial function
``"module:function"`` with signature ``fn(spec: dict, threads: int) -> dict`` returning at least a numeric
``"score"`` (higher is better). Specs are JSON so trials can run in another process or on a Ray worker and be
journaled; the same spec always yields the same result on the same machine.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ..spaces.base import Arch, SearchSpace


class Estimator(ABC):
    name: ClassVar[str] = ""
    trial_fn: ClassVar[str] = ""
    #: cheap estimators (table lookups) always run in the driver, whatever executor is configured
    runs_in_process: ClassVar[bool] = False

    @abstractmethod
    def trial_spec(self, space: SearchSpace, arch: Arch, seed: int) -> dict[str, Any]:
        """Everything the trial function needs, as JSON."""
