"""`nasforge compare`: many runs side by side — a leaderboard grouped by method (and space) with the mean and
standard deviation over seeds, an accuracy-vs-search-cost scatter, as HTML, CSV and a terminal table.

Standard deviations are sample standard deviations (n - 1 in the denominator), blank for a single run.
"""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

from ..errors import UserError
from . import charts
from .page import _short, cost_fields, fmt, image, note, render, rung_summary, table, table_accuracy, test_accuracy
from .rundir import RunView

#: columns of a run row, in CSV and HTML order
COLUMNS = ("run", "method", "space", "seed", "status", "arch", "table_metric", "table_accuracy", "test_accuracy",
           "params", "flops", "bops", "ops", "latency", "search_wall_s", "search_cpu_s", "wall_s", "peak_rss_mb",
           "run_dir")
#: numeric columns summarised per group
SUMMARISED = ("table_accuracy", "test_accuracy", "params", "flops", "bops", "ops", "latency", "search_wall_s",
              "search_cpu_s")


def run_row(view: RunView) -> dict[str, Any]:
    """One leaderboard row of a run (missing numbers are None)."""
    found = view.arch()
    costs = cost_fields(view)
    latency = next(((k, v) for k, v in costs.items() if k.startswith("latency")), (None, None))
    tab = table_accuracy(view)
    search = view.search_cost() or {}
    final = view.final_cost() or {}
    if view.command == "train":  # a train run's whole cost is its training; it searched nothing
        search = {}
    return {"run": view.name, "method": view.method, "space": view.space or "-", "seed": view.seed,
            "status": "finished" if view.finished else "in progress",
            "arch": _arch_text(found[0]) if found else (view.result or {}).get("model"),
            "table_metric": tab[0] if tab else None, "table_accuracy": tab[1] if tab else None,
            "test_accuracy": test_accuracy(view), "params": costs.get("params"), "flops": costs.get("flops"),
            "bops": costs.get("bops"), "ops": costs.get("ops"),
            "latency": latency[1],
            "latency_device": latency[0].removeprefix("latency").removesuffix("ms").strip() or None if latency[0] else None,
            "search_wall_s": search.get("wall_s"), "search_cpu_s": search.get("cpu_s"),
            "wall_s": final.get("wall_s"), "peak_rss_mb": final.get("peak_rss_mb"), "run_dir": str(view.path),
            "rungs": rung_summary(view)}


def _arch_text(arch: Any) -> str:
    return arch if isinstance(arch, str) else json.dumps(arch, separators=(",", ":"))


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None for an empty list; std None for a single value)."""
    vals = [float(v) for v in values]
    if not vals:
        return None, None
    m = sum(vals) / len(vals)
    if len(vals) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))


def group_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped by (method, space): n, seeds, and per numeric column {"mean", "std", "n"}; sorted by
    the mean retrained test accuracy (else the table accuracy), best first."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["space"]), []).append(r)
    out = []
    for (method, space), rs in groups.items():
        g: dict[str, Any] = {"method": method, "space": space, "n": len(rs),
                             "seeds": sorted((r["seed"] for r in rs if r["seed"] is not None), key=str)}
        for col in SUMMARISED:
            vals = [r[col] for r in rs if isinstance(r.get(col), (int, float)) and not isinstance(r.get(col), bool)]
            m, s = mean_std(vals)
            g[col] = {"mean": m, "std": s, "n": len(vals)}
        out.append(g)

    def key(g: dict[str, Any]) -> tuple[float, float]:
        t, b = g["test_accuracy"]["mean"], g["table_accuracy"]["mean"]
        return (-(t if t is not None else -1.0), -(b if b is not None else -1.0))

    return sorted(out, key=key)


def pm(stat: dict[str, Any], digits: int = 4) -> str:
    """'mean ± std' text of a group statistic ('—' when absent)."""
    m, s = stat.get("mean"), stat.get("std")
    if m is None:
        return "—"
    text = fmt(float(m))
    if s is not None:
        text += " ± " + fmt(float(s))
    return text


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """One CSV line per run, columns :data:`COLUMNS` (+ latency_device)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(COLUMNS) + ["latency_device"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    return path


_GROUP_COLS = [("test_accuracy", "test acc (retrained)"), ("table_accuracy", "table acc"), ("params", "params"),
               ("flops", "FLOPs"), ("bops", "BOPs"), ("ops", "OPs"), ("latency", "latency ms"),
               ("search_wall_s", "search wall s"), ("search_cpu_s", "search CPU s")]


def _present(groups: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(k, label) for k, label in _GROUP_COLS if any(g[k]["n"] for g in groups)]


def compare_context(rows: list[dict[str, Any]], groups: list[dict[str, Any]]) -> dict[str, Any]:
    cols = _present(groups, rows)
    g_rows = [[g["method"], g["space"], g["n"], ", ".join(str(s) for s in g["seeds"])] + [pm(g[k]) for k, _ in cols]
              for g in groups]
    sections = [{"id": "leaderboard", "title": "Leaderboard by method (mean ± sample std over seeds)",
                 "items": [table(["method", "space", "runs", "seeds"] + [label for _, label in cols], g_rows)]}]
    run_cols = [("run", "run"), ("method", "method"), ("space", "space"), ("seed", "seed"), ("status", "status"),
                ("arch", "architecture"), ("table_metric", "table metric")]
    run_cols += [(k, label) for k, label in _GROUP_COLS if any(isinstance(r.get(k), (int, float)) for r in rows)]
    if any(r.get("latency_device") for r in rows):
        run_cols.append(("latency_device", "latency of"))
    ordered = [r for g in groups for r in sorted((r for r in rows if (r["method"], r["space"]) == (g["method"], g["space"])),
                                                  key=lambda r: str(r["seed"]))]
    shown = [[_short(r[k], 48) if k == "arch" else r.get(k) for k, _ in run_cols] for r in ordered]
    sections.append({"id": "runs", "title": "Runs", "items": [table([label for _, label in run_cols], shown)]})
    plots: list[Any] = []
    for y, label in (("test_accuracy", "retrained test accuracy"), ("table_accuracy", "table accuracy")):
        if any(isinstance(r.get(y), (int, float)) and isinstance(r.get("search_wall_s"), (int, float)) for r in rows):
            plots.append(image(charts.accuracy_vs_cost(rows, "search_wall_s", y, "search cost (wall s, log scale)", label),
                               caption=f"{label} vs search cost; one dot per run, circles: method means "
                                       "(geometric mean of cost)"))
    if not plots:
        plots.append(note("no run has both an accuracy and a search cost yet"))
    sections.insert(1, {"id": "scatter", "title": "Accuracy vs search cost", "items": [p for p in plots if p]})
    laddered = [r for r in ordered if r.get("rungs")]
    if laddered:  # multi-fidelity searches: trials and promotions per rung
        sections.append({"id": "rungs", "title": "Rungs of multi-fidelity searches", "items": [table(
            ["run", "method", "rungs (fidelity: trials / promoted)"],
            [[r["run"], r["method"], ", ".join(f"{x['fidelity']}: {x['trials']} / {x['promoted'] if x['promoted'] is not None else '-'}"
                                              for x in r["rungs"])] for r in laddered])]})
    unfinished = [r["run"] for r in rows if r["status"] != "finished"]
    if unfinished:
        sections.append({"id": "notes", "title": "Notes",
                         "items": [note("in progress (numbers so far): " + ", ".join(unfinished))]})
    methods = sorted({g["method"] for g in groups})
    return {"title": "nasforge compare", "heading": f"Comparison of {len(rows)} runs",
            "subtitle": f"{len(methods)} method(s): " + ", ".join(methods), "sections": sections,
            "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "path": ", ".join(sorted({str(Path(r['run_dir']).resolve().parent) for r in rows}))}


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None,
                 csv_path: str | Path | None = None) -> dict[str, Any]:
    """Read every run, then write the HTML page (`out`) and/or the CSV (`csv_path`). Returns
    ``{"runs": [row], "groups": [group], "html": path|None, "csv": path|None}``.

    Raises UserError (one line, nothing written) if no run is given or any path is not a run directory."""
    if not run_dirs:
        raise UserError("give at least one run directory to compare")
    views = [RunView.open(d) for d in run_dirs]
    if out is not None and Path(out).is_dir():
        raise UserError(f"--out {out} is a directory; give an .html file name")
    rows = [run_row(v) for v in views]
    groups = group_rows(rows)
    result: dict[str, Any] = {"runs": rows, "groups": groups, "html": None, "csv": None}
    if out is not None:
        from ..utils import atomic_write_bytes

        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, render("compare.html.j2", compare_context(rows, groups)).encode())
        result["html"] = str(target)
    if csv_path is not None:
        result["csv"] = str(write_csv(rows, csv_path))
    return result


def terminal_tables(result: dict[str, Any]):
    """The leaderboard (groups) and the runs as rich tables, for the terminal."""
    from rich.table import Table

    groups, rows = result["groups"], result["runs"]
    cols = _present(groups, rows)
    g = Table(title="leaderboard by method (mean ± std over seeds)", title_justify="left")
    for c in ["method", "space", "runs"] + [label for _, label in cols]:
        g.add_column(c, justify="left" if c in ("method", "space") else "right")
    for grp in groups:
        g.add_row(grp["method"], grp["space"], str(grp["n"]), *[pm(grp[k]) for k, _ in cols])
    r = Table(title="runs", title_justify="left")
    run_cols = [("run", "run"), ("method", "method"), ("seed", "seed"), ("arch", "architecture")] + cols
    for k, label in run_cols:
        r.add_column(label, overflow="ellipsis", no_wrap=True, max_width=28 if k == "arch" else None)
    for row in rows:
        r.add_row(*[fmt(row.get(k)) for k, _ in run_cols])
    return g, r
