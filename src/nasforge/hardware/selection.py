"""Hardware-specific candidate selection (HURRICANE step 1; Zhang et al., CVPR-W 2020).

The paper's principle: per layer, keep the ops with high representation capacity *and* low latency on the
target device. Our rule (the paper gives no formula; spec 2.3):

1. **Only within-layer latency differences are used.** Per layer l and op o, ``d[l][o] = lat[l][o] - min_o
   lat[l][o]`` (ms slower than the layer's fastest op). A table fitted from whole-network latencies (HELP,
   :mod:`.tablefit`) determines exactly these differences and nothing else: adding a constant to every op
   of a layer changes no prediction, and it changes no selection here (tested). Absolute per-layer
   latencies, per-layer "budget shares" and FLOPs / latency ratios all depend on that arbitrary constant,
   so none is used.
2. **Capacity is FLOPs** (multiply-add = 2, FlopCounterMode: convs, linears, matmuls), the spec's proxy for
   representation capacity. A FLOPs difference below ``flops_tol`` (default 3 %) counts as equal capacity:
   SE adds 1-2 % FLOPs and h-swish none, so an SE or h-swish twin counts as *more* capacity only where it
   really adds FLOPs beyond the tolerance.
3. **No dominated op is kept.** Op a is dominated by op b when b is not slower (``d_b <= d_a``), has at
   least ``(1 - flops_tol)`` x a's FLOPs, and is strictly better in one of the two (faster, or more
   FLOPs). So a kept op that is slower than another kept op always has more than ``1/(1 - flops_tol)``
   times its FLOPs. Exact ties (same latency and FLOPs) keep the first op by name.
4. **Which non-dominated ops**: the layer's fastest op first (so the fastest network of the whole space is
   always in the selected space, and any reachable budget stays reachable), then the others in the order
   of capacity bought per extra ms, ``(FLOPs_o - FLOPs_fastest) / d_o`` (within-layer quantities only),
   up to ``k``. A layer whose Pareto front has fewer than ``k`` ops keeps fewer than ``k``: filling the
   set with dominated ops would only add slower ops without more capacity.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from ..errors import ConfigError
from .flops import count_flops


def layer_flops(space) -> list[dict[str, int]]:
    """FLOPs (multiply-add = 2) of each allowed op of each layer at batch 1."""
    out = []
    for spec, names in zip(space.layer_specs(), space.layer_choices()):
        x = torch.zeros(1, spec.C_in, spec.resolution, spec.resolution)  # host: FLOPs counted on a host probe
        out.append({op: count_flops(space.make_op(op, spec.C_in, spec.C_out, spec.stride), x) for op in names})
    return out


def relative_latency(lut, choices: Sequence[Sequence[str]]) -> list[dict[str, float]]:
    """``d[l][o] = lat[l][o] - min over the layer's ops`` (ms, >= 0): the part of a per-(layer, op) table that
    whole-network measurements determine."""
    out = []
    for i, names in enumerate(choices):
        lat = {op: float(lut.layer_latency(i, op)) for op in names}
        base = min(lat.values())
        out.append({op: v - base for op, v in lat.items()})
    return out


def dominates(b: str, a: str, d: dict[str, float], flops: dict[str, float], flops_tol: float) -> bool:
    """True when op `b` dominates op `a` in one layer (module docstring, rule 3)."""
    if b == a or d[b] > d[a] or flops[b] < (1.0 - flops_tol) * flops[a]:
        return False
    if d[b] < d[a] or flops[b] > flops[a]:
        return True
    return b < a  # exact tie: keep the first by name


def dominated_pairs(candidates: Sequence[Sequence[str]], lut, flops: Sequence[dict[str, float]],
                    flops_tol: float = 0.03) -> list[tuple[int, str, str]]:
    """(layer, dominated op, dominating op) for every kept op dominated by another kept op of its layer."""
    d = relative_latency(lut, candidates)
    return [(i, a, b) for i, c in enumerate(candidates) for a in c for b in c
            if dominates(b, a, d[i], flops[i], flops_tol)]


def select_candidates(space, lut, k: int = 4, flops: Sequence[dict[str, int]] | None = None,
                      flops_tol: float = 0.03) -> dict[str, Any]:
    """At most `k` non-dominated ops per layer on `lut`'s device (rules in the module docstring).

    `lut` needs ``layer_latency(layer, op)`` in ms (a measured LUT or a fitted table; raw units: a linear
    calibration a*x+b with a > 0 keeps every within-layer order). Returns {"device", "k", "rule",
    "candidates": [[op, ...] per layer], "relative_latency_ms": [{op: d}] of the kept ops, "flops": [{op:
    FLOPs}] of the kept ops, "front_size": [non-dominated ops per layer]}. Raises ConfigError for k < 1 or
    flops_tol outside [0, 1).
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"candidate selection top_k must be an integer >= 1, got {k!r}")
    if not 0.0 <= flops_tol < 1.0:
        raise ConfigError(f"candidate selection flops_tol must be in [0, 1), got {flops_tol!r}")
    flops = flops if flops is not None else layer_flops(space)
    choices = space.layer_choices()
    d = relative_latency(lut, choices)
    out, fronts = [], []
    for i, names in enumerate(choices):
        f = {o: float(flops[i][o]) for o in names}
        front = [a for a in names if not any(dominates(b, a, d[i], f, flops_tol) for b in names)]
        fastest = min(front, key=lambda o: (d[i][o], -f[o], o))
        gain = {o: (f[o] - f[fastest]) / d[i][o] if d[i][o] > 0 else math.inf for o in front if o != fastest}
        rest = sorted(gain, key=lambda o: (-gain[o], -f[o], o))
        out.append([fastest] + rest[:k - 1])
        fronts.append(len(front))
    return {"device": lut.device, "k": k, "flops_tol": flops_tol,
            "rule": "non-dominated (relative latency, FLOPs) per layer; fastest op first, then FLOPs gained per "
                    "extra ms over the layer's fastest op",
            "candidates": out, "front_size": fronts,
            "relative_latency_ms": [{o: d[i][o] for o in c} for i, c in enumerate(out)],
            "flops": [{o: int(flops[i][o]) for o in c} for i, c in enumerate(out)]}


def budget_bounds(lut, candidates: Sequence[Sequence[str]] | None, metric: str = "raw") -> tuple[float, float]:
    """(fastest, slowest) latency in ms of the networks whose layer ops come from `candidates` (None: the
    whole space), in the units the constraint uses: ``raw`` LUT sums, or ``calibrated`` (a * raw + b when the
    table carries a calibration; raw otherwise). One function, so a budget and the latencies it is compared
    with are never in different units. Raises ConfigError for an unknown metric."""
    if metric not in ("raw", "calibrated"):
        raise ConfigError(f"latency_metric must be raw or calibrated, got {metric!r}")
    lo, hi = lut.bounds(candidates) if candidates is not None else lut.bounds()
    cal = getattr(lut, "calibration", None)
    if metric == "calibrated" and cal:
        a, b = cal["a"], cal["b"]
        lo, hi = sorted((a * lo + b, a * hi + b))
    return lo, hi


def default_budget(lut, candidates: Sequence[Sequence[str]] | None, frac: float, metric: str = "raw") -> float:
    """The default latency budget: `frac` of the way from the fastest to the slowest network of the space
    actually searched (the selected candidates; None: the whole space), in `metric` units, so it is always
    feasible (>= the fastest network) and binds for frac < 1 (< the slowest). Two earlier rules failed: frac x
    the whole space's slowest network is above every network of a selected space (never binds), and frac x the
    selected space's slowest can fall below its fastest (2.04 ms < 2.25 ms on one measured LUT: no feasible
    network)."""
    lo, hi = budget_bounds(lut, candidates, metric)
    return lo + frac * (hi - lo)


def jaccard(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> list[float]:
    """Per-layer Jaccard index |A & B| / |A | B| of two candidate selections."""
    return [len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(a, b)]
