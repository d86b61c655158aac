"""Strict CSV reading shared by the table readers: errors name the file, the line and what was expected."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError

# --------------------------------------------------------------------------------------------------
# CSV helpers
# --------------------------------------------------------------------------------------------------


def read_csv_rows(path: Path, expected_header: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a CSV file; every row must have as many fields as the header."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise DataError(f"cannot read table {path}: {e.strerror or e}") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not a readable CSV file: {e}") from None
    if not rows:
        raise DataError(f"{path}: the file is empty; expected a header line and data rows")
    header, body = rows[0], rows[1:]
    if expected_header is not None and header != list(expected_header):
        raise DataError(f"{path}: line 1: wrong header {header}; expected {list(expected_header)}")
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"{path}: line {i + 2}: found {len(row)} fields, expected {len(header)} ({', '.join(header)})")
    return header, body


def check_row_count(path: Path, rows: list[list[str]], expected: int, what: str) -> None:
    if len(rows) != expected:
        hint = " (the file looks truncated)" if len(rows) < expected else ""
        raise DataError(f"{path}: found {len(rows):,} data rows, expected {expected:,} ({what}){hint}")


def float_columns(path: Path, header: Sequence[str], rows: list[list[str]], columns: Sequence[int]) -> np.ndarray:
    """The given columns as a read-only (n_rows, n_columns) float array; non-numbers and NaN/inf are errors."""
    cells = [[row[c] for c in columns] for row in rows]
    try:
        values = np.array(cells, dtype=np.float64).reshape(len(rows), len(columns))
    except ValueError:
        values = None  # locate the culprit below; the vectorised path above is the fast common case
    if values is None or not np.isfinite(values).all():
        for i, row in enumerate(rows):
            for c in columns:
                try:
                    ok = math.isfinite(float(row[c]))
                except ValueError:
                    ok = False
                if not ok:
                    raise DataError(f"{path}: line {i + 2}: column '{header[c]}' holds {row[c]!r}, expected a finite number")
        if values is None:  # numpy refused a spelling Python's float() accepts; every cell is a finite number
            values = np.array([[float(x) for x in r] for r in cells], dtype=np.float64).reshape(len(rows), len(columns))
    values.setflags(write=False)  # tables are cached and shared, so nobody may edit them in place
    return values


def check_index_column(path: Path, header: Sequence[str], rows: list[list[str]], column: int) -> None:
    """The index column must read 0, 1, 2, ... so that row number == official index."""
    for i, row in enumerate(rows):
        if row[column] != str(i):
            raise DataError(f"{path}: line {i + 2}: column '{header[column]}' holds {row[column]!r}, expected {i} (row number)")




def find_table_file(directory: Path, name: str, subdir: str) -> Path | None:
    """`name` directly in `directory` or in its `subdir` (the layout of shared/data/benchmarks)."""
    for candidate in (directory / name, directory / subdir / name):
        if candidate.is_file():
            return candidate
    return None


def file_signature(path: Path) -> tuple[str, int, int]:
    """Cache key: a file edited in place (same path, new size or mtime) is read again."""
    st = path.stat()
    return (str(path), st.st_mtime_ns, st.st_size)
