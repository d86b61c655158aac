"""Rank aggregation of several proxies (Abdelfattah et al. 2021, Sec. 5 "voting"; here the mean of ranks).

A single proxy's values are not comparable across proxies (SynFlow spans tens of orders of magnitude,
NASWOT is a log-determinant), so the ensemble combines *ranks*: each architecture's rank under each member
proxy, scaled to [0, 1] (0 = worst, 1 = best; ties share the mean rank; NaN and -inf rank lowest), averaged
over the members. Within one scored set the ensemble is a ranking; against a fixed reference sample
(`percentile`) it is a score of one architecture on its own, which is what a multi-trial search needs.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

DEFAULT_MEMBERS = ("synflow", "nwot", "jacob_cov")


def _clean(values: Sequence[float | None]) -> np.ndarray:
    v = np.array([-np.inf if x is None or x != x else float(x) for x in values], dtype=np.float64)
    return v


def normalised_ranks(values: Sequence[float | None]) -> np.ndarray:
    """Ranks of `values` [n] scaled to [0, 1] (mean rank for ties; None/NaN/-inf lowest). n = 1 gives [0.5]."""
    v = _clean(values)
    n = len(v)
    if n == 0:
        return np.zeros(0)
    if n == 1:
        return np.array([0.5])
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.arange(n, dtype=np.float64)
    for u in np.unique(v):  # ties: the mean of their ranks
        tie = v == u
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks / (n - 1)


def rank_aggregate(scores: Mapping[str, Sequence[float | None]], members: Sequence[str] = DEFAULT_MEMBERS) -> np.ndarray:
    """Ensemble score [n] of n architectures: the mean over `members` of their normalised ranks.

    Raises:
        KeyError: a member has no scores in `scores`.
    """
    return np.mean([normalised_ranks(scores[m]) for m in members], axis=0)


def percentile(value: float | None, reference: Sequence[float | None]) -> float:
    """Fraction of `reference` below `value` (ties count half), in [0, 1]; None/NaN/-inf is below all."""
    ref = _clean(reference)
    v = _clean([value])[0]
    return float(((ref < v).sum() + 0.5 * (ref == v).sum()) / max(len(ref), 1))


def percentile_aggregate(values: Mapping[str, float | None], reference: Mapping[str, Sequence[float | None]],
                         members: Sequence[str] = DEFAULT_MEMBERS) -> float:
    """Ensemble score of one architecture: the mean over `members` of its percentile in the reference sample."""
    return float(np.mean([percentile(values[m], reference[m]) for m in members]))
