"""Does a found architecture meet its latency budget on the target device? Checked on the device, not on
the model the search used.

A hardware-aware search constrains a *prediction* (a LUT sum, calibrated or not); a constraint called hard
must hold on the device. :func:`verify_latency` therefore measures the winner end to end where that is
possible, and says by how much it met or missed the budget:

* a local target (``local-cpu-1t``, ...): the whole network, timed here under the target's regime
  (threads, batch, backend) with :func:`~nasforge.hardware.lut.measure` (median of ``repeats`` replicates);
* a HELP target with per-architecture tables (nb201): HELP's own measurement of that network (exact);
* a HELP target with a per-(layer, op) fit (fbnet): nothing can run there, so only the prediction is
  reported (``met`` is None and ``how`` says why).
"""
from __future__ import annotations

from typing import Any, Sequence

from .devices import PER_ARCH_TABLES, is_local

#: timing settings of the final check (one network: more replicates than a LUT entry gets)
VERIFY_MEASURE = {"warmup": 20, "repeats": 11, "number": 10}


def verify_latency(space, arch: Any, target: str, budget_ms: float, *, model=None, tables: str | None = None,
                   measure_kw: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check `arch` of `space` against `budget_ms` (ms) on `target`.

    `model` is the latency model the search used (its prediction is reported beside the measurement).
    Returns ``{"target", "budget_ms", "predicted_ms", "measured_ms", "met", "margin_ms", "margin_pct", "how"}``:
    ``margin_ms = budget_ms - measured_ms`` (negative: missed by that much), ``margin_pct`` the same as a
    percentage of the budget, ``met`` True/False (None when the target cannot be measured),
    ``prediction_error_pct`` = (predicted - measured) / measured x 100. Raises UserError for an arch the
    space rejects.
    """
    out: dict[str, Any] = {"target": target, "budget_ms": float(budget_ms)}
    if model is not None:
        out["predicted_ms"] = float(model.predict(arch))
        raw = getattr(model, "raw_predict", None)
        if callable(raw) and getattr(model, "applied", None):
            out["predicted_raw_ms"] = float(raw(arch))
    measured: float | None = None
    if is_local(target):
        from .lut import _local_device, measure

        kw = {**VERIFY_MEASURE, **(measure_kw or {})}
        res = measure(space.build(arch), (space.in_channels, space.resolution, space.resolution),
                      _local_device(target), **kw)
        measured = res["ms"]
        out["measured_iqr_ms"] = res["iqr_ms"]
        out["how"] = (f"the whole network measured end to end here on {target} (median of {kw['repeats']} x "
                      f"{kw['number']} calls)")
    elif getattr(space, "latency_table", None) in PER_ARCH_TABLES:
        from .cost import table_dir
        from .tablefit import NB201TableLatency

        measured = float(NB201TableLatency(table_dir(tables), target).predict(arch))
        out["how"] = f"HELP's measurement of this network on {target} (table lookup)"
    else:
        out["how"] = (f"{target} is a table device: nasforge cannot run networks on it, so only the prediction "
                      "(a per-(layer, op) fit to HELP's measured networks) is known")
    out["measured_ms"] = measured
    if measured is None:
        out.update(met=None, margin_ms=None, margin_pct=None)
    else:
        margin = float(budget_ms) - measured
        out.update(met=measured <= float(budget_ms), margin_ms=margin, margin_pct=100.0 * margin / float(budget_ms))
        if "predicted_ms" in out:
            out["prediction_error_pct"] = 100.0 * (out["predicted_ms"] - measured) / measured
    out["verdict"] = verdict(out)
    return out


def verdict(check: dict[str, Any]) -> str:
    """One line for a summary: 'met: 1.81 ms measured <= 1.99 ms budget (9.0 % to spare)' or 'MISSED: ...'."""
    if check.get("measured_ms") is None:
        pred = check.get("predicted_ms")
        return (f"not measurable on {check['target']}" + (f"; predicted {pred:.4g} ms" if pred is not None else "")
                + f" against {check['budget_ms']:.4g} ms")
    m, b, pct = check["measured_ms"], check["budget_ms"], check["margin_pct"]
    if check["met"]:
        return f"met on {check['target']}: {m:.4g} ms measured <= {b:.4g} ms budget ({pct:.1f} % to spare)"
    return f"MISSED on {check['target']}: {m:.4g} ms measured > {b:.4g} ms budget ({-pct:.1f} % over)"


__all__ = ["verify_latency", "verdict", "VERIFY_MEASURE"]
