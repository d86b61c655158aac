"""One entry point from a target device name to a latency model for a space (what search uses as a cost model).

* local device + layer-wise space -> a LUT measured here (:func:`~nasforge.hardware.lut.build_local_lut`);
* HELP device + ``fbnet`` -> the per-(layer, op) table fitted from HELP's 5,000 measured networks;
* HELP device + ``nb201`` -> the exact per-cell lookup.

Every model has ``predict(arch) -> ms`` (raw), ``calibrated(arch) -> ms`` and ``bounds(candidates)``.
"""
from __future__ import annotations

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


def table_dir(tables: str | Path | None) -> str:
    from ..tables import default_table_dir

    path = Path(tables).expanduser() if tables else default_table_dir()
    if path is None:
        raise ConfigError("latency on a HELP device needs the benchmark tables: pass --tables DIR or set NASFORGE_TABLES")
    if not path.exists():
        raise ConfigError(f"benchmark table folder {path} does not exist")
    return str(path.resolve())


def latency_model(target: str, space, *, tables: str | Path | None = None, cache_path: str | Path | None = None,
                  n_fit: int = 1000, fit_seed: int = 0, measure_kw: dict[str, Any] | None = None,
                  strict_cache: bool = False, progress=None):
    """The latency model of `space` on `target`; see the module docstring. Raises UserError for an unknown
    device or a device without data for this space."""
    check_target(target, space)
    if is_local(target):
        from .lut import LatencyCache, build_local_lut, default_cache_path

        cache = LatencyCache(cache_path or default_cache_path(target), target, strict=strict_cache)
        lut = build_local_lut(space, target, cache, progress=progress, **(measure_kw or {}))
        lut.meta["cache_rebuilt_from_corrupt"] = cache.rebuilt_from_corrupt
        return lut
    path = table_dir(tables)
    table = space.latency_table
    if table in PER_ARCH_TABLES:
        from .tablefit import NB201TableLatency

        return NB201TableLatency(path, target)
    if table in PER_LAYER_TABLES:
        fitted, _ = _fitted(path, target, n_fit, fit_seed)
        return fitted
    raise UserError(f"device '{target}' has no latency table for space '{space.name}'")
