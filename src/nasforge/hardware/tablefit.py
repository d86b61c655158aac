"""Per-device (layer, op) latency tables fitted from published end-to-end measurements, and table lookups.

HELP (Lee et al., NeurIPS 2021) measured 5,000 FBNet-space networks (22 layers x 9 ops) end to end on 27
device settings. For one device, :func:`fit_layer_table` solves the least-squares problem
``latency(arch) ~ sum over layers of lat[layer][arch[layer]]`` on at most ``n_fit`` networks (one-hot design,
22 x 9 columns, minimum-norm solution: the per-layer offsets are not identifiable from sums, only the
predictions are) and reports its accuracy on the held-out rest. A device whose latency is exactly additive
is reproduced exactly.

:class:`NB201TableLatency` is the exact per-architecture lookup for NB201 (all 15,625 cells measured).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import UserError
from .lut import LayerLatencyTable, error_summary


def one_hot(archs: Sequence[Sequence[int]], n_ops: int) -> np.ndarray:
    """[N, L * n_ops] indicator matrix of architectures given as op indices."""
    a = np.asarray(archs, dtype=np.int64)
    n, L = a.shape
    X = np.zeros((n, L * n_ops))
    X[np.arange(n)[:, None], np.arange(L)[None, :] * n_ops + a] = 1.0
    return X


def fit_layer_table(archs: Sequence[Sequence[int]], latency_ms: Sequence[float], op_names: Sequence[str],
                    device: str, n_fit: int = 1000, seed: int = 0) -> tuple[LayerLatencyTable, dict[str, Any]]:
    """Fit lat[layer][op] (ms) on `n_fit` randomly chosen rows; evaluate on the others.

    `archs`: [N, L] op indices into `op_names`; `latency_ms`: [N] end-to-end latencies. Returns the table
    (fixed part 0: the constant is spread over the layers) and a report with the held-out median absolute
    % error, share within +/-10 % and Spearman rho (and the same on the fitting rows). Raises UserError when
    there are fewer than 2 rows or n_fit leaves nothing to hold out.
    """
    a = np.asarray(archs, dtype=np.int64)
    y = np.asarray(latency_ms, dtype=float)
    if a.ndim != 2 or len(a) != len(y) or len(a) < 2:
        raise UserError("fit_layer_table needs [N, L] architectures and N latencies, N >= 2")
    if not 1 <= n_fit < len(a):
        raise UserError(f"n_fit must be in 1..{len(a) - 1} so that some architectures are held out, got {n_fit}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(a))
    fit, held = order[:n_fit], order[n_fit:]
    k = len(op_names)
    X = one_hot(a, k)
    coef, *_ = np.linalg.lstsq(X[fit], y[fit], rcond=None)
    L = a.shape[1]
    entries = [{op_names[o]: float(coef[l * k + o]) for o in range(k)} for l in range(L)]
    pred = X @ coef
    report = {"device": device, "n_fit": int(n_fit), "n_heldout": int(len(held)), "seed": seed,
              **error_summary(pred[held], y[held], "heldout_"), **error_summary(pred[fit], y[fit], "fit_")}
    table = LayerLatencyTable(device, entries, 0.0, None, meta={"source": "fitted", "fit": report})
    return table, report


def fit_fbnet_device(table, device: str, n_fit: int = 1000, seed: int = 0) -> tuple[LayerLatencyTable, dict[str, Any]]:
    """Fit the FBNet per-(layer, op) table of one HELP device from a loaded fbnet LatencyTable."""
    from ..ops.mobile import FBNET_OP_NAMES

    archs = [[FBNET_OP_NAMES.index(o) for o in table.arch_of(i)] for i in range(len(table))]
    return fit_layer_table(archs, table.column(device), FBNET_OP_NAMES, device, n_fit=n_fit, seed=seed)


class NB201TableLatency:
    """Exact latency (ms) of NB201 cells on one HELP device: a lookup, no model."""

    def __init__(self, tables: str | Path, device: str) -> None:
        from ..tables.latency import LatencyTable

        self.table = LatencyTable.load(tables, space="nb201")
        self.device = device
        self.column = np.asarray(self.table.column(device))  # raises UserError for an unknown device

    def predict(self, arch: str) -> float:
        return self.table.latency(arch, self.device)

    calibrated = predict

    def bounds(self, candidates=None) -> tuple[float, float]:
        return float(self.column.min()), float(self.column.max())
