"""The estimator interface: how a multi-trial strategy learns how good an architecture is.

An estimator turns an architecture into a *trial spec* (plain JSON) and names a trial function
``"module:function"`` with signature ``fn(spec: dict, threads: int) -> dict`` returning at least a numeric
``"score"`` (higher is better). Specs are JSON so trials can run in another process or on a Ray worker and be
journaled; the same spec always yields the same result on the same machine.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ..errors import ConfigError
from ..spaces.base import Arch, SearchSpace


class Estimator(ABC):
    name: ClassVar[str] = ""
    trial_fn: ClassVar[str] = ""
    #: cheap estimators (table lookups) always run in the driver, whatever executor is configured
    runs_in_process: ClassVar[bool] = False
    #: what a search records as its precision when it trains no network in another precision: the default
    #: for estimators that run untrained networks in fp32 (zero-cost proxies); "n/a" for a lookup
    trial_precision: ClassVar[str] = "fp32"

    @classmethod
    def recorded_precision(cls, network_precision: str) -> str:
        """The precision the trials of this estimator computed in, recorded as the search's precision
        (result.json "precision"): `network_precision` (the resolved ``fast_path["network"]`` precision, what
        standalone networks train in) for an estimator that trains networks, else `trial_precision`."""
        return cls.trial_precision

    @abstractmethod
    def trial_spec(self, space: SearchSpace, arch: Arch, seed: int) -> dict[str, Any]:
        """Everything the trial function needs, as JSON. An estimator with a fidelity (see `fidelity`)
        also takes the keyword ``fidelity=`` (training epochs) and scores the architecture at that fidelity."""

    @classmethod
    def fidelity(cls, space: SearchSpace, options: dict[str, Any]) -> dict[str, Any]:
        """The fidelity the multi-fidelity schedulers (sh, hyperband, asha) may vary, for this estimator built
        with `options` (its ``estimator_options``) on `space`, known before the estimator exists (preflight):
        ``{"unit": "epochs", "levels": [12, 200] | None, "max": int}``: `levels` are the only fidelities
        available (a table), None when any whole number up to anything works (training); `max` is the
        default highest fidelity.

        Raises:
            ConfigError: the estimator has no fidelity to vary.
        """
        raise ConfigError(f"estimator '{cls.name}' has no fidelity to vary; multi-fidelity search needs "
                          "--estimator scratch (epochs) or table (a table with several training lengths)")
