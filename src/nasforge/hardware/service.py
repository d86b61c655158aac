"""What `nasforge latency` does, as Python functions (the CLI is a thin shell over these).

* :func:`list_devices` — local execution regimes and HELP table devices;
* :func:`build_table` — measure (local) or fit (HELP, fbnet) the per-(layer, op) table of a space on a
  device; optionally calibrate a local table on whole networks;
* :func:`show_table` — the table as stored, without measuring anything (a corrupt cache is an error here);
* :func:`predict_arch` — latency of an architecture file on a device: raw and calibrated LUT predictions,
  optionally a fresh end-to-end measurement (local devices), or the table value (nb201).

Everything returns plain JSON-able dicts. No network access, no pickles.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UserError
from .devices import (HELP_FBNET_DEVICES, HELP_NB201_DEVICES, LOCAL_DEVICES, PER_ARCH_TABLES, SUMMED_FBNET_DEVICES,
                      check_target, is_local)


def _make_space(space: str, options: dict[str, Any] | None = None, in_channels: int = 1, resolution: int = 28,
                num_classes: int = 10):
    from ..building import import_components
    from ..registry import SPACES

    import_components()
    return SPACES.get(space)(in_channels=in_channels, num_classes=num_classes, resolution=resolution,
                             **(options or {}))


#: the input a table is built for when neither a dataset nor a shape is named: the default dataset's
#: (Fashion-MNIST: 1 x 28 x 28, 10 classes), as `nasforge search` reads it by default
DEFAULT_INPUT = {"dataset": "fashion-mnist", "in_channels": 1, "resolution": 28, "num_classes": 10}


def input_shape(dataset: str | None = None, data_root: str | None = None,
                dataset_options: dict[str, Any] | None = None, in_channels: int | None = None,
                resolution: int | None = None, num_classes: int | None = None) -> dict[str, Any]:
    """The input a latency table is for: {"dataset", "in_channels", "resolution", "num_classes"}.
    With `dataset`, read from the data set itself (so the table's entries are the ones a search on that data
    set looks up); otherwise the explicit shape, each unnamed part from DEFAULT_INPUT.
    Raises ConfigError when a dataset and a shape are both given, or a shape value is not an integer >= 1
    (2 for num_classes); DataError when the dataset cannot be read."""
    from ..errors import ConfigError

    given = {k: v for k, v in (("in_channels", in_channels), ("resolution", resolution),
                               ("num_classes", num_classes)) if v is not None}
    if dataset is not None:
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            raise ConfigError(f"--dataset {dataset} sets the input shape; drop {flags} (or --dataset)")
        from ..data import load_dataset

        train, _ = load_dataset(dataset, data_root, options=dataset_options)
        return {"dataset": dataset, "in_channels": train.in_channels, "resolution": train.resolution,
                "num_classes": train.num_classes}
    if data_root is not None or dataset_options:
        raise ConfigError("--data-root / --data-opt apply only with --dataset")
    for key, v in given.items():
        low = 2 if key == "num_classes" else 1
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"--{key.replace('_', '-')} must be an integer >= {low}, got {v!r}")
    out = {**DEFAULT_INPUT, **given}
    if given:
        out["dataset"] = None
    return out


def list_devices() -> dict[str, Any]:
    """Every target device name with what it is and which spaces it has latencies for."""
    out = {name: {"kind": "local", "description": d.description, "spaces": "any layer-wise (mobile, fbnet)"}
           for name, d in LOCAL_DEVICES.items()}
    for name in sorted(set(HELP_FBNET_DEVICES) | set(HELP_NB201_DEVICES)):
        spaces = [s for s, devs in (("fbnet", HELP_FBNET_DEVICES), ("nb201", HELP_NB201_DEVICES)) if name in devs]
        note = " (FBNet column is a sum of per-block measurements)" if name in SUMMED_FBNET_DEVICES else ""
        out[name] = {"kind": "table (HELP)", "description": f"measured by HELP{note}", "spaces": ", ".join(spaces)}
    return out


def build_table(device: str, space: str = "mobile", space_options: dict[str, Any] | None = None, *,
                in_channels: int | None = None, resolution: int | None = None, num_classes: int | None = None,
                dataset: str | None = None, data_root: str | None = None,
                dataset_options: dict[str, Any] | None = None, tables: str | None = None,
                cache: str | None = None, calibrate: int = 0, seed: int = 0, warmup: int | None = None,
                repeats: int | None = None, number: int | None = None, n_fit: int = 1000,
                progress=None) -> dict[str, Any]:
    """Build or update the table of `space` for the input of `dataset` (read from it) or of the explicit
    shape (:func:`input_shape`; default Fashion-MNIST's 1 x 28 x 28, 10 classes): the entries a search on
    that input looks up. Returns a summary with that ``input`` (and the calibration / held-out fit report).
    `cache`, `calibrate` and the timing options (warmup 10, repeats 7, number 10 by default) are for local
    devices; given with a table device they are refused (UserError), as nothing is measured there."""
    shape = input_shape(dataset, data_root, dataset_options, in_channels, resolution, num_classes)
    sp = _make_space(space, space_options, shape["in_channels"], shape["resolution"], shape["num_classes"])
    check_target(device, sp)
    timing = _timing(device, warmup, repeats, number, cache=cache, calibrate=calibrate)
    warmup, repeats, number = timing["warmup"], timing["repeats"], timing["number"]
    if is_local(device):
        from .lut import LatencyCache, build_local_lut, calibrate as run_calibration, default_cache_path

        from ..utils import check_writable

        c = LatencyCache(check_writable(cache, "--cache") if cache else default_cache_path(device), device)
        lut = build_local_lut(sp, device, c, warmup=warmup, repeats=repeats, number=number, progress=progress)
        out: dict[str, Any] = {"device": device, "space": sp.name, "input": shape, "cache": str(c.path),
                               "measured_now": lut.meta["measured_now"], "from_cache": lut.meta["from_cache"],
                               "cache_rebuilt_from_corrupt": c.rebuilt_from_corrupt, "bounds_ms": list(lut.bounds())}
        if calibrate:
            rep = run_calibration(sp, lut, c, n=calibrate, seed=seed, warmup=warmup, repeats=repeats, number=number)
            out["calibration"] = {k: v for k, v in rep.items() if k != "archs"}
        return out
    if sp.latency_table in PER_ARCH_TABLES:
        return {"device": device, "space": sp.name, "note": "latencies are exact per-architecture lookups; nothing to build"}
    from .cost import _fitted, table_dir

    table, report = _fitted(table_dir(tables), device, n_fit, seed)
    return {"device": device, "space": sp.name, "input": shape, "fit": report, "bounds_ms": list(table.bounds()),
            "summed_by_construction": device in SUMMED_FBNET_DEVICES}


def show_table(device: str, space: str = "mobile", space_options: dict[str, Any] | None = None, *,
               in_channels: int | None = None, resolution: int | None = None, num_classes: int | None = None,
               dataset: str | None = None, data_root: str | None = None,
               dataset_options: dict[str, Any] | None = None, tables: str | None = None,
               cache: str | None = None, n_fit: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The stored table (ms per layer and op, fixed part, calibration) for the input of `dataset` or of the
    explicit shape (as :func:`build_table`). Measures nothing."""
    shape = input_shape(dataset, data_root, dataset_options, in_channels, resolution, num_classes)
    sp = _make_space(space, space_options, shape["in_channels"], shape["resolution"], shape["num_classes"])
    check_target(device, sp)
    if not sp.layerwise:
        raise UserError(f"'{sp.name}' has no per-(layer, op) table; use `nasforge latency predict` for an architecture")
    if is_local(device):
        from .lut import LatencyCache, build_local_lut, default_cache_path

        c = LatencyCache(cache or default_cache_path(device), device, strict=True)
        lut = build_local_lut(sp, device, c, only_cached=True)
    else:
        from .cost import _fitted, table_dir

        lut, _ = _fitted(table_dir(tables), device, n_fit, seed)
    return {"device": device, "space": sp.name, "input": shape, "fixed_ms": lut.fixed, "calibration": lut.calibration,
            "layers": [{"layer": i, **spec.as_dict(), "ms": e} for i, (spec, e) in enumerate(zip(sp.layer_specs(), lut.entries))],
            "bounds_ms": list(lut.bounds())}


def _timing(device: str, warmup: int | None, repeats: int | None, number: int | None,
            **only_local: Any) -> dict[str, int]:
    """The timing options (defaults warmup 10, repeats 7, number 10) of a run on `device`. A table device times
    nothing: timing options or other local-only options (`only_local`: flag name -> value, None/False/0 = not
    given) given with one are refused (UserError), rather than ignored."""
    if not is_local(device):
        given = [f"--{k}" for k, v in (("warmup", warmup), ("repeats", repeats), ("number", number)) if v is not None]
        given += [f"--{k}" for k, v in only_local.items() if v]
        if given:
            raise UserError(f"{', '.join(given)}: only for networks timed here; '{device}' is a table device, nothing "
                            f"is timed (use a local one: {', '.join(LOCAL_DEVICES)})")
    return {"warmup": 10 if warmup is None else warmup, "repeats": 7 if repeats is None else repeats,
            "number": 10 if number is None else number}


def predict_arch(arch_file: str | Path, device: str, *, space: str | None = None, tables: str | None = None,
                 cache: str | None = None, measure: bool = False, n_fit: int = 1000, warmup: int | None = None,
                 repeats: int | None = None, number: int | None = None) -> dict[str, Any]:
    """Latency of the architecture in `arch_file` (arch.json / result.json) on `device`. `warmup` / `repeats` /
    `number` (default 10 / 7 / 10) time networks here: a local device's LUT entries and `measure`.
    Raises UserError for a missing or malformed file, a space mismatch, an unknown device, and `measure` or
    timing options with a table device (nothing is timed there: they would be ignored)."""
    from ..building import load_arch

    spec = load_arch(arch_file)
    if space is not None and spec["space"] != space:
        raise UserError(f"architecture file {arch_file} holds a '{spec['space']}' architecture, not '{space}'")
    cfg = dict(spec.get("space_config") or {})
    kw = {k: cfg.pop(k) for k in ("in_channels", "resolution", "num_classes") if k in cfg}
    cfg.pop("space", None)
    sp = _make_space(spec["space"], cfg, **kw)
    check_target(device, sp)
    mkw = _timing(device, warmup, repeats, number, measure=measure)
    arch = sp.validate(spec["arch"])
    out: dict[str, Any] = {"device": device, "space": sp.name, "arch": arch}
    if sp.latency_table in PER_ARCH_TABLES:
        from .cost import table_dir
        from .tablefit import NB201TableLatency

        out["latency_ms"] = NB201TableLatency(table_dir(tables), device).predict(arch)
        out["source"] = "HELP table (measured network)"
        return out
    from .cost import latency_model

    # raw table (both predictions are reported below; calibration comes from `latency build --calibrate N` or a
    # hurricane search)
    model = latency_model(device, sp, tables=tables, cache_path=cache, n_fit=n_fit,
                          measure_kw=mkw if is_local(device) else None, metric="raw")
    out["lut_raw_ms"] = model.predict(arch)
    out["lut_calibrated_ms"] = model.calibrated(arch) if model.calibration else None
    out["source"] = model.meta.get("source")
    if measure:
        from .lut import measure_network

        out["measured_ms"] = measure_network(sp.build(arch), sp, device, **mkw)
    return out
