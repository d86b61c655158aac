"""Reader for measured device latencies of NB201 and FBNet architectures (HELP / HW-NAS-Bench).

Both CSVs hold one architecture per row and one `<device>_ms` column per device setting (GPUs at
several batch sizes, Xeon CPUs, phones, Raspberry Pi 4, an ASIC and an FPGA). The NB201 file covers
all 15,625 cells by official index; the FBNet file holds 5,000 sampled 22-layer FBNet architectures.
Source: Lee et al., "HELP: Hardware-Adaptive Efficient Latency Prediction for NAS via Meta-Learning"
(NeurIPS 2021), github HayeonLee/HELP; the NB201 pixel3/raspi4/eyeriss/fpga columns equal
HW-NAS-Bench (Li et al., ICLR 2021). nasforge never ships the tables; they are read from a path.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from ..errors import DataError, UserError, choices_message
from .files import (
    check_index_column, check_row_count, file_signature, find_table_file, float_columns, read_csv_rows,
)
from .nb201_arch import NB201_SIZE, check_arch_column, format_arch, parse_arch

NB201_LATENCY_FILE = "nb201_device_latency_ms.csv"

FBNET_LATENCY_FILE = "fbnet_device_latency_ms.csv"
# Column op_idx_list of the FBNet file indexes this tuple (checked against op_names on load).
FBNET_OPS: tuple[str, ...] = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
FBNET_LAYERS = 22
FBNET_SIZE = 5000  # architectures measured by HELP

LATENCY_SPACES: tuple[str, ...] = ("nb201", "fbnet")
_SPEC = {
    # space: (file name, sub-directory, leading non-device columns, expected rows)
    "nb201": (NB201_LATENCY_FILE, "nb201", ["arch_index", "arch_str"], NB201_SIZE),
    "fbnet": (FBNET_LATENCY_FILE, "fbnet", ["arch_index", "op_idx_list", "op_names"], FBNET_SIZE),
}
_SUFFIX = "_ms"

FBNetArch = Union[str, Sequence[str], Sequence[int]]
LatencyKey = Union[int, np.integer, str, Sequence[str], Sequence[int]]


class LatencyTable:
    """Latency in ms of every architecture in one table on each device setting.

    `arch_key` is a row index or, for nb201, an arch string; for fbnet, 22 op names (a sequence or
    one space-separated string) or 22 indices into FBNET_OPS.
    """

    def __init__(self, space: str, archs: list, devices: list[str], values: np.ndarray, source: Path | None = None) -> None:
        self.space = space
        self._archs = archs  # nb201: arch strings; fbnet: tuples of op names
        self._index = {a: i for i, a in enumerate(archs)}
        self._devices = devices
        self._column_of = {d: c for c, d in enumerate(devices)}
        self._values = values
        self.source = source

    @classmethod
    def load(cls, path: str | Path, space: str | None = None) -> "LatencyTable":
        """Read a latency CSV, or find it by name in a directory (then `space` picks nb201 or fbnet).

        For a file, `space` is inferred from the header when not given. Cached per (path, mtime, size).
        """
        if space is not None and space not in _SPEC:
            raise UserError(choices_message("latency table space", str(space), list(LATENCY_SPACES)))
        path = Path(path).expanduser()
        if path.is_dir():
            if space is None:
                raise UserError(f"{path} is a directory; pass space='nb201' or space='fbnet' to pick the latency table")
            name, subdir = _SPEC[space][0], _SPEC[space][1]
            found = find_table_file(path, name, subdir)
            if found is None:
                raise DataError(f"latency table {name} not found in {path} or {path / subdir}")
            path = found
        elif not path.is_file():
            raise DataError(f"latency table {path} does not exist; expected {NB201_LATENCY_FILE} or {FBNET_LATENCY_FILE}")
        table = _load_cached(file_signature(path.resolve()))
        if space is not None and table.space != space:
            raise DataError(f"{path} holds the {table.space} latency table, not the {space} one (see its header)")
        return table

    # ---- lookups ----

    def __len__(self) -> int:
        return len(self._archs)

    def devices(self) -> list[str]:
        """Device settings in file order, e.g. 'pixel3', 'raspi4', '2080ti_32' (GPU at batch 32)."""
        return list(self._devices)

    def _device_column(self, device: str) -> int:
        key = device[: -len(_SUFFIX)] if isinstance(device, str) and device.endswith(_SUFFIX) else device
        if key not in self._column_of:
            raise UserError(choices_message(f"{self.space} latency device", str(device), self._devices))
        return self._column_of[key]

    def column(self, device: str) -> np.ndarray:
        """Read-only latencies (ms) of all architectures on one device, indexed by row."""
        return self._values[:, self._device_column(device)]

    def latency(self, arch_key: LatencyKey, device: str) -> float:
        """Latency in ms of one architecture on one device."""
        c = self._device_column(device)
        return float(self._values[self.index_of(arch_key), c])

    def arch_of(self, index: int) -> str | tuple[str, ...]:
        """nb201: arch string; fbnet: tuple of the 22 op names."""
        return self._archs[self._check_index(index)]

    def index_of(self, arch_key: LatencyKey) -> int:
        """Row of an architecture given by index, nb201 arch string or fbnet op list."""
        if isinstance(arch_key, (int, np.integer)) and not isinstance(arch_key, bool):
            return self._check_index(arch_key)
        if self.space == "nb201":
            if not isinstance(arch_key, str):
                raise UserError(f"nb201 latency lookups take an index or an arch string, got {type(arch_key).__name__} {arch_key!r}")
            found = self._index.get(arch_key)
            # parse_arch raises the precise format error; all 15,625 valid cells are in the table.
            return found if found is not None else self._index[format_arch(parse_arch(arch_key))]
        ops = _fbnet_ops(arch_key)
        if ops not in self._index:
            raise UserError(f"FBNet architecture {' '.join(ops)} is not among the {len(self):,} measured ones; look up by index 0..{len(self) - 1}")
        return self._index[ops]

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(self._archs):
            raise UserError(f"{self.space} latency index {index!r} is not an integer in 0..{len(self._archs) - 1}")
        return int(index)


def _fbnet_ops(arch: FBNetArch) -> tuple[str, ...]:
    """22 op names from names, a space-separated string, or indices into FBNET_OPS."""
    items = arch.split() if isinstance(arch, str) else list(arch)
    if len(items) != FBNET_LAYERS:
        raise UserError(f"an FBNet architecture has {FBNET_LAYERS} layers, got {len(items)} ops: {items}")
    ops = []
    for item in items:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not 0 <= item < len(FBNET_OPS):
                raise UserError(f"FBNet op index {item} is not in 0..{len(FBNET_OPS) - 1} ({', '.join(FBNET_OPS)})")
            item = FBNET_OPS[int(item)]
        if item not in FBNET_OPS:
            raise UserError(choices_message("FBNet op", str(item), list(FBNET_OPS)))
        ops.append(item)
    return tuple(ops)


@functools.lru_cache(maxsize=8)
def _load_cached(signature: tuple[str, int, int]) -> LatencyTable:
    path = Path(signature[0])
    header, rows = read_csv_rows(path)
    detected = next((s for s, spec in _SPEC.items() if header[: len(spec[2])] == spec[2]), None)
    if detected is None:
        expected = " or ".join(f"{', '.join(spec[2])}, <device>_ms, ..." for spec in _SPEC.values())
        raise DataError(f"{path}: line 1: wrong header {header[:4]}...; expected {expected}")
    _, _, lead, size = _SPEC[detected]
    device_columns = header[len(lead):]
    bad = [h for h in device_columns if not h.endswith(_SUFFIX) or h == _SUFFIX]
    if not device_columns or bad or len(set(device_columns)) != len(device_columns):
        raise DataError(f"{path}: line 1: device columns must be distinct '<device>_ms' names after {lead}; got {bad or device_columns}")
    check_row_count(path, rows, size, f"{detected} architectures measured by HELP")
    check_index_column(path, header, rows, 0)

    if detected == "nb201":
        archs: list = [row[1] for row in rows]
        check_arch_column(path, archs)
    else:
        archs = []
        for i, row in enumerate(rows):
            try:
                ops = _fbnet_ops(row[2])
                indices = [int(x) for x in row[1].split()]
            except (UserError, ValueError) as e:
                raise DataError(f"{path}: line {i + 2}: bad FBNet architecture: {e}") from None
            if indices != [FBNET_OPS.index(op) for op in ops]:
                raise DataError(f"{path}: line {i + 2}: op_idx_list {row[1]!r} does not match op_names {row[2]!r} under {FBNET_OPS}")
            archs.append(ops)
        if len(set(archs)) != len(archs):
            raise DataError(f"{path}: an FBNet architecture appears on more than one row; expected each once")

    values = float_columns(path, header, rows, range(len(lead), len(header)))
    if (values <= 0).any():
        i, c = np.argwhere(values <= 0)[0]
        raise DataError(f"{path}: line {i + 2}: column '{device_columns[c]}' holds {values[i, c]}, expected a positive latency in ms")
    devices = [h[: -len(_SUFFIX)] for h in device_columns]
    return LatencyTable(detected, archs, devices, values, path)
