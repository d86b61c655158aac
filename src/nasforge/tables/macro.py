"""Reader for NAS-Bench-Macro: all 3^8 = 6,561 layer-wise macro architectures trained on CIFAR-10.

An architecture is 8 layer choices, written as an 8-character string over {0, 1, 2} where
0 = identity, 1 = MobileNetV2 block (expansion 3, kernel 3), 2 = MobileNetV2 block (expansion 6,
kernel 5). Each entry holds the test accuracy (%) of 3 seeds, their mean and std, params and FLOPs.
Source: Su et al., "Prioritized Architecture Sampling with Monto-Carlo Tree Search" (CVPR 2021),
github xiusu/NAS-Bench-Macro. nasforge never ships the table; it is read from a path.
"""
from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from ..errors import DataError, UserError
from .files import file_signature, find_table_file

MACRO_CHOICES: tuple[str, ...] = ("identity", "mb3_k3", "mb6_k5")
MACRO_LAYERS = 8
MACRO_SIZE = len(MACRO_CHOICES) ** MACRO_LAYERS  # 6,561
MACRO_FILE = "nas_bench_macro_cifar10.json"

MacroArch = Union[str, Sequence[int]]


def parse_macro_arch(arch: MacroArch) -> str:
    """Canonical 8-character string of an architecture given as a string or a sequence of choice indices."""
    if isinstance(arch, str):
        digits = arch
    else:
        try:
            items = list(arch)
        except TypeError:
            raise UserError(f"a NAS-Bench-Macro architecture is a string like '01220120' or 8 ints, got {arch!r}") from None
        if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in items):
            raise UserError(f"NAS-Bench-Macro layer choices must be ints in 0..2, got {items}")
        digits = "".join(str(int(x)) for x in items)
    if len(digits) != MACRO_LAYERS or any(ch not in "012" for ch in digits):
        raise UserError(
            f"bad NAS-Bench-Macro architecture {arch!r}: expected {MACRO_LAYERS} layer choices, each 0..2 "
            f"({', '.join(f'{i}={c}' for i, c in enumerate(MACRO_CHOICES))}), e.g. '01220120'"
        )
    return digits


class MacroTable:
    """Mean CIFAR-10 test accuracy and cost of every NAS-Bench-Macro architecture."""

    def __init__(self, entries: dict[str, dict], source: Path | None = None) -> None:
        self._entries = entries
        self.source = source

    @classmethod
    def load(cls, path: str | Path) -> "MacroTable":
        """Read the JSON file, or find it by name in a directory (also under `nas_bench_macro/`). Cached."""
        path = Path(path).expanduser()
        if path.is_dir():
            found = find_table_file(path, MACRO_FILE, "nas_bench_macro")
            if found is None:
                raise DataError(f"NAS-Bench-Macro table {MACRO_FILE} not found in {path} or {path / 'nas_bench_macro'}")
            path = found
        elif not path.is_file():
            raise DataError(f"NAS-Bench-Macro table {path} does not exist; expected a file like {MACRO_FILE}")
        return _load_cached(file_signature(path.resolve()))

    def __len__(self) -> int:
        return len(self._entries)

    def archs(self) -> list[str]:
        """All architecture strings, sorted."""
        return sorted(self._entries)

    def query(self, arch: MacroArch) -> float:
        """Mean CIFAR-10 test accuracy (%) over the 3 seeds."""
        return self._entries[parse_macro_arch(arch)]["mean_acc"]

    def record(self, arch: MacroArch) -> dict:
        """arch, test_acc (3 seeds), mean_acc, std, params, flops of one architecture."""
        key = parse_macro_arch(arch)
        entry = self._entries[key]
        return {"arch": key, **entry, "test_acc": list(entry["test_acc"])}

    def best(self) -> tuple[str, float]:
        """(arch, mean accuracy) of the best architecture; ties go to the first in file order.

        Ties are real: the file repeats one result for some layer strings that differ only in where an
        identity layer sits (the best, 22212220, and 22212202 share every field), so file order decides.
        """
        arch = max(self._entries, key=lambda a: self._entries[a]["mean_acc"])  # max keeps the first maximum
        return arch, self._entries[arch]["mean_acc"]


def _number(value: object, integral: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) if integral else math.isfinite(value)


def _check_entry(path: Path, key: str, value: object) -> dict:
    def bad(why: str) -> DataError:
        return DataError(f"{path}: entry '{key}': {why}")

    try:
        parse_macro_arch(key)
    except UserError as e:
        raise bad(str(e)) from None
    if not isinstance(value, dict):
        raise bad(f"expected an object with test_acc, mean_acc, std, params, flops, got {type(value).__name__}")
    missing = [f for f in ("test_acc", "mean_acc", "std", "params", "flops") if f not in value]
    if missing:
        raise bad(f"missing field(s) {', '.join(missing)}")
    accs = value["test_acc"]
    if not isinstance(accs, list) or not accs or not all(_number(a) and 0 <= a <= 100 for a in accs):
        raise bad(f"test_acc must be a non-empty list of accuracies in % (0..100), got {accs!r}")
    for field in ("mean_acc", "std"):
        if not _number(value[field]):
            raise bad(f"{field} must be a finite number, got {value[field]!r}")
    if abs(value["mean_acc"] - float(np.mean(accs))) > 1e-6:
        raise bad(f"mean_acc {value['mean_acc']} is not the mean of test_acc {accs}")
    for field in ("params", "flops"):
        if not _number(value[field], integral=True) or value[field] <= 0:
            raise bad(f"{field} must be a positive integer, got {value[field]!r}")
    return {f: value[f] for f in ("test_acc", "mean_acc", "std", "params", "flops")}


@functools.lru_cache(maxsize=4)
def _load_cached(signature: tuple[str, int, int]) -> MacroTable:
    path = Path(signature[0])
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError as e:
        raise DataError(f"cannot read NAS-Bench-Macro table {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object mapping 8-digit arch strings to results, got {type(raw).__name__}")
    entries = {key: _check_entry(path, key, value) for key, value in raw.items()}
    if len(entries) != MACRO_SIZE:
        # keys are valid and distinct, so the right count means every architecture is present
        raise DataError(f"{path}: found {len(entries):,} architectures, expected all {MACRO_SIZE:,} (3^{MACRO_LAYERS})")
    return MacroTable(entries, path)
