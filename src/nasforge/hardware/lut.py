"""Latency lookup tables (LUT) measured on this machine, cached on disk, calibrated end to end.

For every searchable layer of a layer-wise space and every op allowed there, the op alone is timed at the
layer's input shape on a :class:`~nasforge.hardware.devices.LocalDevice` with ``torch.utils.benchmark``:
``warmup`` untimed calls, then ``repeats`` replicates of ``number`` calls each, in a fixed number of threads;
the entry is the **median** replicate (ms per call). Stem and head are timed once each (the fixed part). The
LUT predicts a network's latency as ``fixed + sum over layers of lat[layer][op]`` (FBNet / ProxylessNAS
standard). Summing per-op timings misses what a whole network does differently (per-call overhead counted
per op, caches, fusion), so a linear calibration ``a * LUT + b`` is fitted by least squares on networks
measured end to end; both the raw and the calibrated predictions are reported.

Cache: one JSON file per device (default ``$NASFORGE_CACHE`` or ``~/.cache/nasforge/latency/<device>.json``).
Entries are keyed by the library versions (torch, onnxruntime), backend, threads, batch, memory format, op
and shape, so a change of any of them re-measures instead of reusing a stale number. A cache file that does
not parse or holds an invalid entry is never trusted: it is moved aside (``*.corrupt``) with a warning and
rebuilt. No pickles: JSON only.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import platform
import random
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..errors import DataError, UserError
from ..utils import atomic_write_json
from .devices import LOCAL_DEVICES, LocalDevice

CACHE_FORMAT = 1


# ---------------------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------------------
def library_versions(backend: str) -> dict[str, str]:
    """Versions that change timings: torch always, onnxruntime for that backend, and the machine/Python."""
    v = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine()}
    if backend == "onnxruntime":
        import onnxruntime

        v["onnxruntime"] = onnxruntime.__version__
    return v


def _onnx_session(module: nn.Module, x: torch.Tensor, threads: int):
    import onnxruntime as ort

    buf = io.BytesIO()
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    return sess, {"x": x.numpy()}  # host: latency is measured on the host CPU


def measure(module: nn.Module, input_shape: Sequence[int], device: LocalDevice, *, warmup: int = 10,
            repeats: int = 7, number: int = 10) -> dict[str, float]:
    """Latency of `module` on an input ``[device.batch, *input_shape]`` (C, H, W) under `device`'s regime.

    Returns {"ms": median replicate in ms per forward, "iqr_ms": interquartile range of the replicates,
    "min_ms"}. The module runs in eval mode without autograd; its weights are the ones it holds (latency of
    the ops here does not depend on their values). Raises UserError for an unusable input shape.
    """
    if len(input_shape) != 3 or any(int(s) < 1 for s in input_shape):
        raise UserError(f"latency input shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
    from torch.utils import benchmark

    module = module.eval()
    x = torch.randn(device.batch, *[int(s) for s in input_shape])  # host: latency is measured on the host CPU
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(device.threads)
    try:
        if device.backend == "torch":
            if device.channels_last:
                module = module.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last)

            def run() -> None:
                with torch.no_grad():
                    module(x)
        elif device.backend == "onnxruntime":
            sess, feed = _onnx_session(module, x, device.threads)

            def run() -> None:
                sess.run(None, feed)
        else:
            raise UserError(f"unknown latency backend {device.backend!r}")
        timer = benchmark.Timer(stmt="run()", globals={"run": run}, num_threads=device.threads)
        timer.timeit(max(warmup, 1))
        times = [timer.timeit(number).mean * 1e3 for _ in range(repeats)]
    finally:
        torch.set_num_threads(prev_threads)
    q = np.percentile(times, [25, 75])
    return {"ms": float(statistics.median(times)), "iqr_ms": float(q[1] - q[0]), "min_ms": float(min(times))}


# ---------------------------------------------------------------------------------------------------------
# cache
# ---------------------------------------------------------------------------------------------------------
def default_cache_path(device: str) -> Path:
    root = os.environ.get("NASFORGE_CACHE", "").strip()
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "nasforge"
    return base / "latency" / f"{device}.json"


def entry_key(device: LocalDevice, kind: str, op: str, input_shape: Sequence[int], C_out: int, stride: int,
              extra: dict[str, Any] | None = None) -> str:
    """Cache key of one timing: library versions, backend, threads, batch, memory format, op and shape."""
    key = {"versions": library_versions(device.backend), "backend": device.backend, "threads": device.threads,
           "batch": device.batch, "channels_last": device.channels_last, "kind": kind, "op": op,
           "shape": [int(s) for s in input_shape], "C_out": int(C_out), "stride": int(stride), **(extra or {})}
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


class CorruptCache(DataError):
    """A latency cache file that cannot be trusted."""


def _check_cache(data: Any, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("entries"), dict):
        raise CorruptCache(f"latency cache {path} is not a format-{CACHE_FORMAT} nasforge cache")
    for k, e in data["entries"].items():
        ms = e.get("ms") if isinstance(e, dict) else None
        if not isinstance(k, str) or isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) \
                or ms <= 0:
            raise CorruptCache(f"latency cache {path} holds an invalid entry ({str(k)[:60]}...: {e!r})")
    cal = data.get("calibrations", {})
    if not isinstance(cal, dict) or any(not isinstance(c, dict) or not {"a", "b"} <= set(c) for c in cal.values()):
        raise CorruptCache(f"latency cache {path} holds an invalid calibration")
    data.setdefault("calibrations", {})
    return data


class LatencyCache:
    """The on-disk JSON cache of one device: ``{"format", "device", "entries": {key: {"ms", ...}},
    "calibrations": {space_key: {"a", "b", ...}}}``. ``strict=True`` raises CorruptCache on a bad file;
    otherwise the bad file is renamed ``*.corrupt`` (with a warning) and an empty cache is used."""

    def __init__(self, path: str | Path, device: str, strict: bool = False) -> None:
        self.path = Path(path).expanduser()
        self.device = device
        self.rebuilt_from_corrupt = False
        self.data: dict[str, Any] = {"format": CACHE_FORMAT, "device": device, "entries": {}, "calibrations": {}}
        if self.path.exists():
            try:
                try:
                    raw = json.loads(self.path.read_text())
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise CorruptCache(f"latency cache {self.path} is not valid JSON ({e})") from None
                self.data = _check_cache(raw, self.path)
                if self.data.get("device") != device:
                    raise CorruptCache(f"latency cache {self.path} belongs to device {self.data.get('device')!r}, "
                                       f"not {device!r}")
            except CorruptCache as e:
                if strict:
                    raise
                bad = self.path.with_suffix(self.path.suffix + ".corrupt")
                os.replace(self.path, bad)
                print(f"warning: {e}; moved it to {bad.name} and rebuilding (its numbers are not used)",
                      file=sys.stderr)
                self.rebuilt_from_corrupt = True
                self.data = {"format": CACHE_FORMAT, "device": device, "entries": {}, "calibrations": {}}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data["entries"].get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.data["entries"][key] = entry

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

    def __len__(self) -> int:
        return len(self.data["entries"])


# ---------------------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------------------
class LayerLatencyTable:
    """lat[layer][op] in ms plus a fixed part; `predict(arch)` = fixed + sum of the arch's entries.

    Used for local LUTs and for tables fitted from published measurements alike. `calibration` (a, b), when
    set, gives `calibrated(arch) = a * predict(arch) + b`.
    """

    def __init__(self, device: str, entries: list[dict[str, float]], fixed: float,
                 calibration: dict[str, float] | None = None, meta: dict[str, Any] | None = None) -> None:
        self.device, self.entries, self.fixed = device, [dict(e) for e in entries], float(fixed)
        self.calibration = calibration
        self.meta = meta or {}

    def layer_latency(self, layer: int, op: str) -> float:
        try:
            return self.entries[layer][op]
        except (IndexError, KeyError):
            raise UserError(f"no latency for op {op!r} in layer {layer} on {self.device}") from None

    def predict(self, arch: Sequence[str]) -> float:
        """Raw LUT sum in ms. Raises UserError for an arch of the wrong length or an op not in the table."""
        if len(arch) != len(self.entries):
            raise UserError(f"the {self.device} latency table has {len(self.entries)} layers; the architecture "
                            f"has {len(arch)}")
        return self.fixed + sum(self.layer_latency(i, op) for i, op in enumerate(arch))

    def calibrated(self, arch: Sequence[str]) -> float:
        """a * predict + b if a calibration is set, else the raw sum."""
        raw = self.predict(arch)
        if not self.calibration:
            return raw
        return self.calibration["a"] * raw + self.calibration["b"]

    @property
    def applied(self) -> dict[str, float] | None:
        """The calibration (a, b) already folded into the entries by :meth:`calibrated_table`, or None."""
        return self.meta.get("calibration_applied")

    def raw_predict(self, arch: Sequence[str]) -> float:
        """The uncalibrated LUT sum (ms) even for a calibrated table: (predict - b) / a."""
        ms = self.predict(arch)
        cal = self.applied
        return (ms - cal["b"]) / cal["a"] if cal else ms

    def calibrated_table(self) -> "LayerLatencyTable":
        """This table in calibrated ms: every entry times a, the fixed part a * fixed + b, so that `predict`,
        `bounds`, `layer_latency` and candidate selection all speak the unit the budget is in (a linear
        calibration of a sum is a sum of scaled terms). Returns `self` when there is no calibration (a > 0 is
        guaranteed by :func:`fit_calibration`)."""
        if not self.calibration:
            return self
        a, b = float(self.calibration["a"]), float(self.calibration["b"])
        meta = {**self.meta, "calibration_applied": {"a": a, "b": b},
                "source": f"{self.meta.get('source', 'table')}, calibrated end to end"}
        return LayerLatencyTable(self.device, [{op: a * v for op, v in e.items()} for e in self.entries],
                                 a * self.fixed + b, None, meta)

    def recalibrate(self, cal: dict[str, float]) -> None:
        """Replace the calibration: a raw table stores it; a calibrated one is rescaled in place from its raw
        entries (what :func:`calibrate` does after measuring networks again)."""
        old = self.applied
        if not old:
            self.calibration = {"a": cal["a"], "b": cal["b"]}
            return
        a0, b0, a, b = old["a"], old["b"], float(cal["a"]), float(cal["b"])
        self.entries = [{op: a * v / a0 for op, v in e.items()} for e in self.entries]
        self.fixed = a * (self.fixed - b0) / a0 + b
        self.meta["calibration_applied"] = {"a": a, "b": b}

    def bounds(self, candidates: Sequence[Sequence[str]] | None = None) -> tuple[float, float]:
        """(fastest, slowest) raw latency over the architectures whose layer ops come from `candidates`."""
        cands = candidates or [list(e) for e in self.entries]
        lo = self.fixed + sum(min(self.entries[i][o] for o in c) for i, c in enumerate(cands))
        hi = self.fixed + sum(max(self.entries[i][o] for o in c) for i, c in enumerate(cands))
        return lo, hi

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "fixed_ms": self.fixed, "layers": self.entries,
                "calibration": self.calibration, **self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LayerLatencyTable":
        meta = {k: v for k, v in d.items() if k not in ("device", "fixed_ms", "layers", "calibration")}
        return cls(d["device"], d["layers"], d["fixed_ms"], d.get("calibration"), meta)


def load_run_table(path: Path | None) -> LayerLatencyTable | None:
    """The latency table a run stored at `path` (``lut_<device>.json`` in its directory), or None when there
    is none (no run directory, or not stored yet): a resumed run continues with the table it started with
    rather than a re-timed one."""
    if path is None or not path.exists():
        return None
    return LayerLatencyTable.from_dict(json.loads(path.read_text()))


def save_run_table(path: Path | None, model: Any) -> None:
    """Store latency model `model` at `path` for load_run_table, once: a model without ``as_dict`` (a
    per-architecture benchmark table, read from its files again) and an existing file are left alone."""
    if path is not None and hasattr(model, "as_dict") and not path.exists():
        atomic_write_json(path, model.as_dict())


def space_key(space) -> str:
    """Identity of a space's layer shapes (what a calibration is valid for)."""
    cfg = {k: v for k, v in space.config.items()}
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"))


def _local_device(name: str) -> LocalDevice:
    if name not in LOCAL_DEVICES:
        raise UserError(f"unknown local device '{name}'; choose from: {', '.join(LOCAL_DEVICES)}")
    return LOCAL_DEVICES[name]


def build_local_lut(space, device: str, cache: LatencyCache | None = None, *, ops: Sequence[Sequence[str]] | None = None,
                    warmup: int = 10, repeats: int = 7, number: int = 10, measure_fn: Callable | None = None,
                    progress: Callable[[int, int], None] | None = None, only_cached: bool = False) -> LayerLatencyTable:
    """Time every (layer, op) of a layer-wise `space` (or only `ops[layer]`) on a local device; cached entries
    are reused, new ones are added to `cache` (saved at the end). Stem and head form the fixed part.
    `only_cached=True` measures nothing and raises UserError if an entry is missing."""
    dev = _local_device(device)
    cache = cache if cache is not None else LatencyCache(default_cache_path(device), device)
    measure_fn = measure_fn or measure
    specs = space.layer_specs()
    choices = ops if ops is not None else space.layer_choices()
    C, s = space.stem_spec()
    stem_and_head = space.build(space.sample(random.Random(0)))
    jobs: list[tuple[str, str, tuple[int, int, int], int, int, Callable[[], nn.Module]]] = [
        ("stem", "stem", (space.in_channels, space.resolution, space.resolution), C, s, lambda: stem_and_head.stem)]
    last = specs[-1]
    jobs.append(("head", f"head{space.head_channels()}x{space.num_classes}",
                 (last.C_out, last.out_resolution, last.out_resolution), space.num_classes, 1,
                 lambda: stem_and_head.head))
    for spec, names in zip(specs, choices):
        for op in names:
            jobs.append(("op", op, (spec.C_in, spec.resolution, spec.resolution), spec.C_out, spec.stride,
                         lambda op=op, spec=spec: space.make_op(op, spec.C_in, spec.C_out, spec.stride)))
    values: dict[str, float] = {}
    todo = []
    for kind, op, shape, c_out, stride, make in jobs:
        key = entry_key(dev, kind, op, shape, c_out, stride)
        hit = cache.get(key)
        if hit is not None:
            values[key] = hit["ms"]
        elif key not in [t[0] for t in todo]:
            todo.append((key, make, shape))
    if todo and only_cached:
        raise UserError(f"the {device} latency table for this space is not built ({len(todo)} of {len(jobs)} entries "
                        f"missing in {cache.path}); run `nasforge latency build --device {device}` first")
    torch.manual_seed(0)
    for n, (key, make, shape) in enumerate(todo):
        res = measure_fn(make(), shape, dev, warmup=warmup, repeats=repeats, number=number)
        cache.put(key, {**res, "warmup": warmup, "repeats": repeats, "number": number})
        values[key] = res["ms"]
        if progress is not None:
            progress(n + 1, len(todo))
        if (n + 1) % 25 == 0:  # an interrupted build keeps what it measured
            cache.save()
    if todo:
        cache.save()

    def val(kind, op, shape, c_out, stride):
        return values[entry_key(dev, kind, op, shape, c_out, stride)]

    fixed = val(*jobs[0][:5]) + val(*jobs[1][:5])
    entries = [{op: val("op", op, (spec.C_in, spec.resolution, spec.resolution), spec.C_out, spec.stride)
                for op in names} for spec, names in zip(specs, choices)]
    cal = cache.data["calibrations"].get(space_key(space))
    return LayerLatencyTable(device, entries, fixed, {"a": cal["a"], "b": cal["b"], "n": cal.get("n")} if cal else None,
                             meta={"source": "measured", "measured_now": len(todo), "from_cache": len(jobs) - len(todo),
                                   "cache": str(cache.path), "device_regime": dev.as_dict(),
                                   "versions": library_versions(dev.backend)})


def measure_network(model: nn.Module, space, device: str, **kw: Any) -> float:
    """End-to-end latency (ms, median replicate) of a whole network of `space` on a local device."""
    return measure(model, (space.in_channels, space.resolution, space.resolution), _local_device(device), **kw)["ms"]


def fit_calibration(raw: Sequence[float], measured: Sequence[float], fastest_raw: float | None = None) -> dict[str, float]:
    """Least-squares a, b of measured ~ a * raw + b (needs >= 2 distinct raw values). Falls back to the ratio
    fit measured ~ a * raw (b = 0), so a calibrated table stays a table of positive latencies, when the slope
    is <= 0 (timings too noisy to rank the networks) or when a negative intercept would predict <= 0 ms for
    the space's fastest network (`fastest_raw`, its raw LUT sum in ms: the line fitted to random networks,
    extrapolated down to the all-cheapest one, e.g. an FBNet of skips, can cross zero)."""
    x, y = np.asarray(raw, float), np.asarray(measured, float)
    if len(x) < 2 or np.ptp(x) == 0:
        raise UserError("a latency calibration needs at least 2 networks with different LUT sums")
    a, b = np.polyfit(x, y, 1)
    if a <= 0 or (fastest_raw is not None and a * fastest_raw + b <= 0):
        return {"a": float((x @ y) / (x @ x)), "b": 0.0, "fit": "ratio"}
    return {"a": float(a), "b": float(b)}


def calibration_keeps_positive(lut: LayerLatencyTable, cal: dict[str, float] | None) -> bool:
    """Whether calibration `cal` = {a, b} predicts a positive latency for the fastest network of `lut`'s space
    (its raw LUT sum; `lut` raw or calibrated). A cache written before this check may hold one that does
    not; callers refit it."""
    if not cal:
        return True
    return float(cal["a"]) > 0 and float(cal["a"]) * _fastest_raw(lut) + float(cal["b"]) > 0


def _fastest_raw(lut: LayerLatencyTable) -> float:
    return lut.raw_predict([min(e, key=e.get) for e in lut.entries])  # the all-cheapest network, uncalibrated ms


def calibrate(space, lut: LayerLatencyTable, cache: LatencyCache, n: int = 20, seed: int = 0,
              **measure_kw: Any) -> dict[str, Any]:
    """Measure `n` random networks of `space` end to end, fit the calibration, store it in the cache and the
    LUT; return {"a", "b", "n", "raw": [...], "measured": [...], "calibrated": [...]} plus error summaries."""
    rng = random.Random(seed)
    archs, raw, measured = [], [], []
    torch.manual_seed(seed)
    for _ in range(n):
        arch = [rng.choice(list(e)) for e in lut.entries]
        archs.append(arch)
        raw.append(lut.raw_predict(arch))
        measured.append(measure_network(space.build(arch), space, lut.device, **measure_kw))
    cal = fit_calibration(raw, measured, fastest_raw=_fastest_raw(lut))
    cal_pred = [cal["a"] * r + cal["b"] for r in raw]
    report = {**cal, "n": n, "seed": seed, "archs": archs, "raw": raw, "measured": measured, "calibrated": cal_pred,
              **error_summary(raw, measured, "raw_"), **error_summary(cal_pred, measured, "calibrated_")}
    cache.data["calibrations"][space_key(space)] = {"a": cal["a"], "b": cal["b"], "n": n}
    cache.save()
    lut.recalibrate(cal)
    return report


def error_summary(pred: Sequence[float], true: Sequence[float], prefix: str = "") -> dict[str, float]:
    """Median absolute % error, share within +/-10 %, Spearman rank correlation."""
    from scipy.stats import spearmanr

    p, t = np.asarray(pred, float), np.asarray(true, float)
    rel = np.abs(p - t) / t
    rho = float(spearmanr(p, t).statistic) if len(p) > 2 else float("nan")
    return {f"{prefix}median_abs_pct_error": float(np.median(rel) * 100), f"{prefix}within_10pct": float(np.mean(rel <= 0.10)),
            f"{prefix}spearman": rho}
