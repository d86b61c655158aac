"""One entry point from a target device name to a latency model for a space (what search uses as a cost model).

* local device + layer-wise space -> a LUT measured here (:func:`~nasforge.hardware.lut.build_local_lut`);
* HELP device + ``fbnet`` -> the per-(layer, op) table fitted from HELP's 5,000 measured networks;
* HELP device + ``nb201`` -> the exact per-cell lookup.

Every model has ``predict(arch) -> ms`` (raw), ``calibrated(arch) -> ms`` and ``bounds(candidates)``.
"""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UserError
from .devices import PER_ARCH_TABLES, PER_LAYER_TABLES, check_target, is_local


@functools.lru_cache(maxsize=64)
def _fitted(path: str, device: str, n_fit: int, seed: int):
    from ..tables.latency import LatencyTable
    from .tablefit import fit_fbnet_device

    return fit_fbnet_device(LatencyTable.load(path, space="fbnet"), device, n_fit=n_fit, seed=seed)


@contextlib.contextmanager
def _progress_bar(description: str, given):
    """`given` (a ``(done, total)`` callback) or a terminal bar for `description` that learns its total from the
    first call; on a non-terminal a single line when the work starts (if there is any)."""
    if given is not None:
        yield given
        return
    from .. import progress as prog

    with prog.stage_bar(description) as tick:
        yield tick


def table_dir(tables: str | Path | None) -> str:
    from ..tables import default_table_dir

    path = Path(tables).expanduser() if tables else default_table_dir()
    if path is None:
        raise ConfigError("latency on a HELP device needs the benchmark tables: pass --tables DIR or set NASFORGE_TABLES")
    if not path.exists():
        raise ConfigError(f"benchmark table folder {path} does not exist")
    return str(path.resolve())


#: networks measured end to end to calibrate a local LUT when its cache holds no calibration for the space
CALIBRATION_NETWORKS = 10
METRICS = ("calibrated", "raw")


def latency_model(target: str, space, *, tables: str | Path | None = None, cache_path: str | Path | None = None,
                  n_fit: int = 1000, fit_seed: int = 0, measure_kw: dict[str, Any] | None = None,
                  strict_cache: bool = False, progress=None, metric: str = "calibrated",
                  calibration_networks: int = CALIBRATION_NETWORKS):
    """The latency model of `space` on `target`; see the module docstring. Raises UserError for an unknown
    device or a device without data for this space.

    `metric="calibrated"` (the default): a local LUT is returned in calibrated ms
    (:meth:`~nasforge.hardware.lut.LayerLatencyTable.calibrated_table`), so whatever is constrained or
    reported with it is what a whole network takes; when the cache holds no calibration for this space (or
    one from fewer than `calibration_networks` networks), that many random networks are measured end to end
    first and the fit is cached (``meta["calibration_report"]`` then holds it). Summed isolated op timings
    underestimate whole networks (calibration slopes of ~1.5 on this machine), so `metric="raw"` (the plain
    sum) is for studying the LUT itself. HELP tables are fits to (or lookups of) whole measured networks
    already and are returned as they are. Progress of timing and calibration goes to `progress`
    (``(done, total)``), by default a bar on a terminal / nothing elsewhere (nasforge.progress)."""
    if metric not in METRICS:
        raise ConfigError(f"latency metric must be one of {', '.join(METRICS)}; got {metric!r}")
    check_target(target, space)
    if is_local(target):
        from .lut import LatencyCache, build_local_lut, calibrate, calibration_keeps_positive, default_cache_path

        cache = LatencyCache(cache_path or default_cache_path(target), target, strict=strict_cache)
        with _progress_bar(f"latency table ({target})", progress) as tick:
            lut = build_local_lut(space, target, cache, progress=tick, **(measure_kw or {}))
        lut.meta["cache_rebuilt_from_corrupt"] = cache.rebuilt_from_corrupt
        if metric == "raw":
            return lut
        n_have = (lut.calibration or {}).get("n")
        if (lut.calibration is None or (n_have is not None and n_have < calibration_networks)
                or not calibration_keeps_positive(lut, lut.calibration)):  # refit a cached one that went <= 0 ms
            with _progress_bar(f"calibrating on {calibration_networks} whole networks ({target})", None) as tick:
                report = calibrate(space, lut, cache, n=calibration_networks, **(measure_kw or {}))
                tick(calibration_networks, calibration_networks)
            lut.meta["calibration_report"] = {k: v for k, v in report.items() if k != "archs"}
        return lut.calibrated_table()
    path = table_dir(tables)
    table = space.latency_table
    if table in PER_ARCH_TABLES:
        from .tablefit import NB201TableLatency

        return NB201TableLatency(path, target)
    if table in PER_LAYER_TABLES:
        fitted, _ = _fitted(path, target, n_fit, fit_seed)
        return fitted
    raise UserError(f"device '{target}' has no latency table for space '{space.name}'")
