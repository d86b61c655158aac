"""Reports of runs: ``nasforge report`` (one run as a self-contained HTML page), ``nasforge compare`` (many runs
side by side), and the figures searches write next to their results (matplotlib, Agg backend).

The package is callable: ``nasforge.report(run_dir, out=None)`` writes one run's page (the same as
``nasforge.api.report``), while ``nasforge.report.page``, ``.compare``, ``.draw``, ``.charts`` and
``.plots`` stay importable as modules. Heavy modules (matplotlib, jinja2, graphviz) load on first use.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

_LAZY = {"plot_alpha_trajectories", "plot_loss_history", "plot_policies", "plot_policy_concentration"}


def write_report(run_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write one run's self-contained HTML report (see :func:`nasforge.report.page.write_report`)."""
    from .page import write_report as _write

    return _write(run_dir, out)


def compare_runs(run_dirs, out: str | Path | None = None, csv_path: str | Path | None = None) -> dict[str, Any]:
    """Compare runs (see :func:`nasforge.report.compare.compare_runs`)."""
    from .compare import compare_runs as _compare

    return _compare(run_dirs, out=out, csv_path=csv_path)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _ReportModule(types.ModuleType):
    def __call__(self, run_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
        """``nasforge.report(run_dir, out=None)``: write one run's HTML report; returns where and what."""
        return write_report(run_dir, out)


sys.modules[__name__].__class__ = _ReportModule

__all__ = ["write_report", "compare_runs", *sorted(_LAZY)]
