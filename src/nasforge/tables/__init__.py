"""Readers for published NAS benchmark tables (NB201, HELP device latencies, NAS-Bench-Macro).

nasforge never ships these tables: every reader takes a path. `default_table_dir()` returns the
folder named by the NASFORGE_TABLES environment variable, if set.
"""
from __future__ import annotations

import os
from pathlib import Path

from .latency import FBNET_LAYERS, FBNET_OPS, LATENCY_SPACES, LatencyTable
from .macro import MACRO_CHOICES, MACRO_LAYERS, MACRO_SIZE, MacroTable, parse_macro_arch
from .nb201 import (
    NB201_DATASETS,
    NB201_EDGES,
    NB201_METRICS,
    NB201_OPS,
    NB201_SIZE,
    NB201Table,
    format_arch,
    indices_to_ops,
    ops_to_indices,
    parse_arch,
)


def default_table_dir() -> Path | None:
    """`$NASFORGE_TABLES` as a Path if set (and non-empty), else None."""
    value = os.environ.get("NASFORGE_TABLES", "").strip()
    return Path(value).expanduser() if value else None


__all__ = [
    "FBNET_LAYERS",
    "FBNET_OPS",
    "LATENCY_SPACES",
    "LatencyTable",
    "MACRO_CHOICES",
    "MACRO_LAYERS",
    "MACRO_SIZE",
    "MacroTable",
    "NB201_DATASETS",
    "NB201_EDGES",
    "NB201_METRICS",
    "NB201_OPS",
    "NB201_SIZE",
    "NB201Table",
    "default_table_dir",
    "format_arch",
    "indices_to_ops",
    "ops_to_indices",
    "parse_arch",
    "parse_macro_arch",
]
