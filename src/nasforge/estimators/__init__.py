"""Estimators: train from scratch, inherit supernet weights, or look up a benchmark table."""
from .base import Estimator

__all__ = ["Estimator"]
