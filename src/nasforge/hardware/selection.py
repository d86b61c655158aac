"""Hardware-specific candidate selection (HURRICANE step 1; Zhang et al., CVPR-W 2020).

Per device and per layer, every op gets ``score = capacity / latency`` — capacity is FLOPs by default
("representation capacity delivered per ms on this device") — and the ``k`` best-scoring ops are kept.
So that the latency budget stays reachable, each layer keeps at least one op whose latency is within the
layer's *share* of the budget: ``share = (T - fixed) * mean_lat[layer] / sum of mean_lat`` (the layer's
fraction of the budget left after stem and head). If no kept op fits, the best-scoring op that does (or
the layer's fastest op) replaces the lowest-scoring kept one; if the fastest network of the selection is
still over the budget, every layer keeps its fastest op. The formula is ours; the paper gives the
principle only (spec 2.3).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import ConfigError
from .flops import count_flops

_MIN_MS = 1e-3  # latencies fitted from sums can be ~0 or negative for cheap ops; floor them for the ratio


def layer_flops(space) -> list[dict[str, int]]:
    """FLOPs (multiply-add = 2) of each allowed op of each layer at batch 1."""
    out = []
    for spec, names in zip(space.layer_specs(), space.layer_choices()):
        x = torch.zeros(1, spec.C_in, spec.resolution, spec.resolution)  # host: FLOPs counted on a host probe
        out.append({op: count_flops(space.make_op(op, spec.C_in, spec.C_out, spec.stride), x) for op in names})
    return out


def select_candidates(space, lut, k: int = 4, budget_ms: float | None = None,
                      flops: Sequence[dict[str, int]] | None = None) -> dict[str, Any]:
    """Top-k ops per layer by FLOPs / latency on `lut`'s device (see the module docstring).

    Returns {"candidates": [[op, ...] per layer], "scores": [{op: score}], "share_ms": [...], "swapped": [layer
    indices where the latency-share rule replaced an op]}. Raises ConfigError for k < 1.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"candidate selection top_k must be an integer >= 1, got {k!r}")
    flops = flops if flops is not None else layer_flops(space)
    choices = space.layer_choices()
    lat = [{op: max(lut.layer_latency(i, op), _MIN_MS) for op in names} for i, names in enumerate(choices)]
    means = [sum(l.values()) / len(l) for l in lat]
    if budget_ms is None:
        shares = [float("inf")] * len(lat)
    else:
        spare = budget_ms - lut.fixed
        shares = [spare * m / sum(means) for m in means]
    out, scores, swapped = [], [], []
    for i, names in enumerate(choices):
        score = {op: flops[i][op] / lat[i][op] for op in names}
        ranked = sorted(names, key=lambda o: (-score[o], lat[i][o], o))
        kept = ranked[:k]
        if not any(lat[i][o] <= shares[i] for o in kept) and len(names) > len(kept):
            fitting = [o for o in ranked if lat[i][o] <= shares[i]]
            extra = fitting[0] if fitting else min(names, key=lambda o: (lat[i][o], o))
            kept = kept[:-1] + [extra]
            swapped.append(i)
        out.append(kept)
        scores.append(score)
    if budget_ms is not None and lut.bounds(out)[0] > budget_ms:
        # the shares were too coarse: keep every layer's fastest op, so the fastest network is in the space
        for i, names in enumerate(choices):
            fastest = min(names, key=lambda o: (lat[i][o], o))
            if fastest not in out[i]:
                out[i] = out[i][:-1] + [fastest] if len(out[i]) >= k else out[i] + [fastest]
                if i not in swapped:
                    swapped.append(i)
    return {"device": lut.device, "k": k, "candidates": out, "scores": scores,
            "share_ms": [None if s == float("inf") else s for s in shares], "swapped": swapped,
            "latency_ms": [{o: lat[i][o] for o in out[i]} for i in range(len(out))]}


def jaccard(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> list[float]:
    """Per-layer Jaccard index |A & B| / |A | B| of two candidate selections."""
    return [len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(a, b)]
