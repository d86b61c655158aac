"""Estimators: train from scratch or look up a benchmark table. The imports below are the registration list."""
from . import proxy, scratch, table  # noqa: F401  (registration list)
from .base import Estimator

__all__ = ["Estimator"]
