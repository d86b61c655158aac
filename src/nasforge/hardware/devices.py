"""Named target devices for latency: local execution regimes measured here, and devices of published tables.

A *target* is the hardware a search optimises for (the `hurricane` strategy's ``target`` option). It is not
where the search computes (``--device``). Two kinds:

* :class:`LocalDevice` — an execution regime on this machine, timed with torch.utils.benchmark:
  ``local-cpu-1t`` (torch fp32, 1 thread, batch 1, NCHW), ``local-cpu-2t-b32`` (torch fp32, 2 threads,
  batch 32, channels-last), ``local-ort-1t`` (onnxruntime CPU, 1 thread, batch 1). They are different
  execution regimes of the same CPU, which is what makes latency rankings differ (HURRICANE spec 2.6).
* a table device — a column of the HELP latency tables (Lee et al., NeurIPS 2021): 27 settings such as
  ``pixel3``, ``raspi4``, ``samsung_a50``, ``gold_6240``, ``titan_rtx_1`` (GPU at batch 1). Table devices
  cover the ``fbnet`` space (per-(layer, op) table fitted from 5,000 measured networks) and ``nb201`` (exact
  per-architecture lookups).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..errors import UserError


@dataclass(frozen=True)
class LocalDevice:
    """An execution regime: backend ('torch' | 'onnxruntime'), threads, batch size, memory format."""

    name: str
    backend: str
    threads: int
    batch: int
    channels_last: bool = False
    description: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


LOCAL_DEVICES: dict[str, LocalDevice] = {d.name: d for d in (
    LocalDevice("local-cpu-1t", "torch", 1, 1, False, "torch fp32, 1 thread, batch 1, NCHW"),
    LocalDevice("local-cpu-2t-b32", "torch", 2, 32, True, "torch fp32, 2 threads, batch 32, channels-last"),
    LocalDevice("local-ort-1t", "onnxruntime", 1, 1, False, "onnxruntime CPU, 1 thread, batch 1"),
)}

#: the device settings (column stems) of HELP's FBNet latency table; the NB201 table has the GPUs at batch
#: 1/32/256 instead of 1/32/64. Checked against the file when it is read.
HELP_FBNET_DEVICES: tuple[str, ...] = (
    "1080ti_1", "1080ti_32", "1080ti_64", "2080ti_1", "2080ti_32", "2080ti_64", "essential_ph_1", "eyeriss", "fpga",
    "gold_6226", "gold_6240", "pixel2", "pixel3", "raspi4", "samsung_a50", "samsung_s7", "silver_4114",
    "silver_4210r", "titan_rtx_1", "titan_rtx_32", "titan_rtx_64", "titanx_1", "titanx_32", "titanx_64", "titanxp_1",
    "titanxp_32", "titanxp_64")
HELP_NB201_DEVICES: tuple[str, ...] = tuple(d.replace("_64", "_256") for d in HELP_FBNET_DEVICES)
#: FBNet columns that HELP built as sums of per-block measurements (HW-NAS-Bench style): additive by
#: construction, so a good additive fit on them is no evidence that latency is additive on the device.
SUMMED_FBNET_DEVICES: tuple[str, ...] = ("pixel3", "raspi4", "eyeriss", "fpga")

TABLE_SPACES = {"fbnet": HELP_FBNET_DEVICES, "nb201": HELP_NB201_DEVICES}
#: every latency target name: the local regimes first, then the HELP table columns (FBNet's, then NB201's own)
TARGET_DEVICES: tuple[str, ...] = tuple(dict.fromkeys((*LOCAL_DEVICES, *HELP_FBNET_DEVICES, *HELP_NB201_DEVICES)))


def is_local(name: str) -> bool:
    return name in LOCAL_DEVICES


#: latency tables: key (a space's `latency_table` declaration) -> how the table covers the space
PER_ARCH_TABLES = ("nb201",)  # every architecture measured: exact lookups
PER_LAYER_TABLES = ("fbnet",)  # a sample measured: a per-(layer, op) table is fitted


def check_target(name: str, space=None) -> str:
    """Return `name` if it is a known target device (with latency data for `space`, a SearchSpace, if given);
    else UserError naming the choices. A space declares its published latency table as `latency_table`."""
    if not isinstance(name, str) or not name:
        raise UserError(f"a latency target is a device name, got {name!r}")
    table = space.latency_table if space is not None else None
    label = space.name if space is not None else "?"
    if name in LOCAL_DEVICES:
        if space is not None and not space.layerwise:
            devs = TABLE_SPACES.get(table, ())
            raise UserError(f"local device '{name}' times layer-wise spaces (per layer and op); '{label}' is not one"
                            + (f" (its latencies come from the HELP table: {', '.join(devs)})" if devs else ""))
        return name
    tables = [t for t, devs in TABLE_SPACES.items() if name in devs]
    if not tables:
        known = sorted(set(LOCAL_DEVICES) | set(HELP_FBNET_DEVICES) | set(HELP_NB201_DEVICES))
        raise UserError(f"unknown latency device '{name}'; choose from: {', '.join(known)}")
    if space is not None and table not in tables:
        raise UserError(f"device '{name}' has measured latencies for space(s) {', '.join(tables)}, not '{label}'; "
                        f"local devices ({', '.join(LOCAL_DEVICES)}) can time any layer-wise space")
    return name
