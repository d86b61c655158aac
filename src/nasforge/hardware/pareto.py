"""Pareto fronts: accuracy-vs-latency fronts of evaluated architectures (written as JSON and a plot), and the
many-objective machinery of NSGA-II: non-dominated sorting, crowding distance and the hypervolume indicator."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import UserError
from ..utils import atomic_write_json


def pareto_front(points: Sequence[dict[str, Any]], acc: str = "accuracy", lat: str = "latency_ms") -> list[int]:
    """Indices of the non-dominated points (higher `acc`, lower `lat`), sorted by latency. A point is dominated
    if another is at least as good in both and strictly better in one; exact duplicates keep the first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][lat], -points[i][acc], i))
    front, best = [], float("-inf")
    for i in order:
        if points[i][acc] > best:
            front.append(i)
            best = points[i][acc]
    return front


def write_pareto(folder: str | Path, device: str, points: Sequence[dict[str, Any]], budget_ms: float | None = None,
                 acc_label: str = "accuracy") -> dict[str, str]:
    """Write ``pareto_<device>.json`` (all points, the front's indices, the budget) and ``pareto_<device>.png``."""
    folder = Path(folder)
    front = pareto_front(points)
    js = folder / f"pareto_{device}.json"
    atomic_write_json(js, {"device": device, "budget_ms": budget_ms, "accuracy_metric": acc_label,
                           "front": [points[i] for i in front], "points": list(points)})
    png = folder / f"pareto_{device}.png"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.scatter([p["latency_ms"] for p in points], [p["accuracy"] for p in points], s=10, alpha=0.4,
                   label="evaluated")
        ax.plot([points[i]["latency_ms"] for i in front], [points[i]["accuracy"] for i in front], "r.-",
                label="Pareto front")
        if budget_ms is not None:
            ax.axvline(budget_ms, color="k", ls="--", lw=1, label="latency budget")
        ax.set_xlabel(f"latency on {device} (ms)")
        ax.set_ylabel(acc_label)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(png, dpi=110)
        plt.close(fig)
    except Exception as e:  # a plot must never fail a finished search
        return {"json": str(js), "plot_error": str(e)}
    return {"json": str(js), "png": str(png)}


# --------------------------------------------------------------------------------------------------
# Many objectives: non-dominated sorting, crowding distance, hypervolume (NSGA-II; Deb et al. 2002)
# --------------------------------------------------------------------------------------------------
# Convention: an objective matrix F is [n points, m objectives], every column *minimised* (negate a
# maximised objective such as accuracy before calling).


def _as_matrix(F: Any) -> np.ndarray:
    A = np.asarray(F, dtype=float)
    if A.ndim != 2:
        raise UserError(f"objective values must be an [n points, m objectives] matrix, got shape {A.shape}")
    if A.size and not np.isfinite(A).all():
        raise UserError("objective values must be finite numbers (got NaN or inf)")
    return A


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when `a` is at least as good as `b` in every (minimised) objective and strictly better in one."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return bool(np.all(a <= b) and np.any(a < b))


def non_dominated_sort(F: Any, violation: Sequence[float] | None = None) -> list[list[int]]:
    """Fronts of the fast non-dominated sort (Deb et al. 2002, section III-A) of the rows of `F` [n, m]
    (minimised). Front 0 holds the points no other point dominates, front 1 those dominated only by front 0,
    and so on; every index appears once, each front in increasing index order.

    With `violation` [n] (total constraint violation, 0 = feasible) domination is Deb's *constrained*
    domination (section V): a feasible point dominates an infeasible one, of two infeasible points the one
    with the smaller violation dominates, and two feasible points compare by their objectives.
    Raises UserError for a malformed matrix or a violation vector of the wrong length / negative values."""
    A = _as_matrix(F)
    n = len(A)
    if n == 0:
        return []
    v = np.zeros(n) if violation is None else np.asarray(violation, dtype=float)
    if v.shape != (n,) or (v < 0).any() or not np.isfinite(v).all():
        raise UserError(f"constraint violation must be {n} finite values >= 0")
    le = (A[:, None, :] <= A[None, :, :]).all(axis=2)
    lt = (A[:, None, :] < A[None, :, :]).any(axis=2)
    dom = le & lt  # dom[i, j]: i dominates j by objectives
    feas = v == 0
    both_feasible = feas[:, None] & feas[None, :]
    dom = np.where(both_feasible, dom, (feas[:, None] & ~feas[None, :]) | (~feas[:, None] & ~feas[None, :] & (v[:, None] < v[None, :])))
    count = dom.sum(axis=0)  # how many points dominate j
    fronts: list[list[int]] = []
    current = [int(i) for i in np.flatnonzero(count == 0)]
    while current:
        fronts.append(current)
        for i in current:
            count[dom[i]] -= 1
        count[current] = -1  # placed
        current = [int(j) for j in np.flatnonzero(count == 0)]
    return fronts


def crowding_distance(F: Any) -> np.ndarray:
    """NSGA-II crowding distance [n] of the rows of one front `F` [n, m] (Deb et al. 2002, section III-B): per
    objective, points sorted by it, the two boundary points get infinity and an inner point the gap between
    its neighbours divided by the objective's range on the front; summed over objectives. An objective that
    is constant on the front adds nothing. Ties keep index order (a stable sort), so the result is
    deterministic."""
    A = _as_matrix(F)
    n, m = A.shape
    d = np.zeros(n)
    if n <= 2:
        d[:] = np.inf
        return d
    for k in range(m):
        order = np.argsort(A[:, k], kind="stable")
        lo, hi = A[order[0], k], A[order[-1], k]
        d[order[0]] = d[order[-1]] = np.inf
        if hi > lo:
            d[order[1:-1]] += (A[order[2:], k] - A[order[:-2], k]) / (hi - lo)
    return d


def pareto_mask(F: Any) -> np.ndarray:
    """[n] booleans: True for the rows of `F` [n, m] (minimised) that no other row dominates. Duplicates of a
    non-dominated point are all kept (none dominates the other)."""
    A = _as_matrix(F)
    if len(A) == 0:
        return np.zeros(0, bool)
    if A.shape[1] == 2:  # O(n log n): sort by the first objective, keep strict improvements of the second
        order = np.lexsort((A[:, 1], A[:, 0]))
        keep = np.zeros(len(A), bool)
        best = np.inf
        prev = None
        for i in order:
            x, y = A[i]
            if y < best or (prev is not None and x == prev[0] and y == prev[1]):
                keep[i] = True
                if y < best:
                    best, prev = y, (x, y)
        return keep
    # lexicographic order: a point can only be dominated by one before it, so one pass against the points
    # kept so far suffices (memory O(front), not O(n^2): exact fronts are taken over whole tables)
    keep = np.zeros(len(A), bool)
    kept: list[np.ndarray] = []
    for i in np.lexsort(A.T[::-1]):
        p = A[i]
        if kept:
            K = np.asarray(kept)
            if ((K <= p).all(axis=1) & (K < p).any(axis=1)).any():
                continue
        keep[i] = True
        kept.append(p)
    return keep


def hypervolume(F: Any, reference: Sequence[float]) -> float:
    """The hypervolume indicator (Zitzler & Thiele 1998): the Lebesgue measure of the region dominated by the
    rows of `F` [n, m] (minimised) and bounded by the `reference` point [m]. Points that do not strictly
    dominate the reference in every objective add nothing. Exact: a sweep in 2-D (O(n log n)); in m >= 3
    dimensions slicing along the last objective (HSO, While et al. 2006), O(n^(m-1) log n), meant for the small
    fronts of a search (hundreds of points in 3-D). Units: the product of the objectives' units.
    Raises UserError for a malformed matrix or a reference of the wrong length."""
    A = _as_matrix(F)
    r = np.asarray(reference, dtype=float)
    if r.ndim != 1 or (len(A) and r.shape[0] != A.shape[1]) or not np.isfinite(r).all():
        raise UserError(f"the hypervolume reference point must be {A.shape[1] if len(A) else 'm'} finite numbers, got {list(np.atleast_1d(r))}")
    if len(A) == 0:
        return 0.0
    A = A[(A < r).all(axis=1)]
    if len(A) == 0:
        return 0.0
    A = A[pareto_mask(A)]
    return float(_hv(np.unique(A, axis=0), r))


def _hv(A: np.ndarray, r: np.ndarray) -> float:
    m = A.shape[1]
    if m == 1:
        return float(r[0] - A[:, 0].min())
    if m == 2:
        A = A[np.argsort(A[:, 0], kind="stable")]
        total, y_prev = 0.0, r[1]
        for x, y in A:
            if y < y_prev:
                total += (r[0] - x) * (y_prev - y)
                y_prev = y
        return total
    # slices between consecutive values of the last objective: each slab's volume is its thickness times the
    # (m-1)-dimensional hypervolume of the points at or below it
    A = A[np.argsort(A[:, -1], kind="stable")]
    total = 0.0
    for i in range(len(A)):
        top = A[i + 1, -1] if i + 1 < len(A) else r[-1]
        if top > A[i, -1]:
            sub = A[: i + 1, :-1]
            total += (top - A[i, -1]) * _hv(sub[pareto_mask(sub)], r[:-1])
    return total


def normalized_hypervolume(F: Any, ideal: Sequence[float], nadir: Sequence[float], offset: float = 0.1) -> float:
    """Hypervolume of the rows of `F` [n, m] (minimised) after mapping each objective affinely so that `ideal`
    goes to 0 and `nadir` to 1, with the reference point at 1 + `offset` in every objective (the convention of
    multi-objective NAS benchmarks: ideal and nadir of the true front, reference 10 % beyond its nadir). The
    true front then scores at most (1 + offset)^m; dimensionless. An objective with nadir == ideal is scaled
    by 1. Raises UserError for malformed input."""
    A = _as_matrix(F)
    lo, hi = np.asarray(ideal, float), np.asarray(nadir, float)
    span = np.where(hi > lo, hi - lo, 1.0)
    m = len(lo)
    if len(A) and A.shape[1] != m:
        raise UserError(f"ideal/nadir have {m} objectives, the points {A.shape[1]}")
    return hypervolume((A - lo) / span if len(A) else np.zeros((0, m)), np.full(m, 1.0 + offset))
