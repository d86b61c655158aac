"""`nasforge compare`: many runs side by side — a leaderboard of configurations with the mean and standard
deviation over seeds, an accuracy-vs-search-cost scatter, as HTML, CSV and a terminal table.

Only like is averaged with like: runs form one group when their configs agree on everything but the seed
(and where they ran: device, threads, paths, executor), and finished and unfinished runs never share a
group. Groups of the same method and space say what differs between them (``differs``, e.g.
``budget.epochs=2, space_options.C=4``). A `train --arch runs/X/arch.json` run is linked to search X
(``arch_from`` in its config; else the one compared search with the same space and architecture): its test
accuracy is the search's retrained accuracy, and the train run is listed, not ranked on its own.

Standard deviations are sample standard deviations (n - 1 in the denominator), blank for a single run.
"""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

from rich.markup import escape

from ..errors import UserError
from . import charts
from .page import _short, cost_fields, fmt, image, note, render, rung_summary, table, table_accuracy, test_accuracy
from .rundir import RunView

#: columns of a run row, in CSV and HTML order
COLUMNS = ("run", "method", "space", "seed", "status", "arch", "table_metric", "table_accuracy", "test_accuracy",
           "test_accuracy_from", "params", "flops", "bops", "ops", "latency", "hypervolume", "hypervolume_ratio",
           "search_wall_s", "search_cpu_s", "wall_s", "peak_rss_mb", "precision", "device", "differs", "search_run",
           "run_dir")
#: config keys that do not make two runs different configurations (any key named "seed", at any depth, too):
#: where and how a run was executed, paths, and bookkeeping
NOT_CONFIG = {"command", "device", "threads", "data_root", "tables", "download", "executor", "executor_options",
              "arch_from", "teacher"}
#: numeric columns summarised per group
SUMMARISED = ("table_accuracy", "test_accuracy", "params", "flops", "bops", "ops", "latency", "hypervolume",
              "hypervolume_ratio", "search_wall_s",
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
    res = view.result or {}
    metrics = (res.get("search") or {}).get("metrics") or {}  # multi-objective: hypervolume
    return {"run": view.name, "method": view.method, "space": view.space or "-", "seed": view.seed,
            "status": "finished" if view.finished else "unfinished",
            "precision": res.get("precision") or view.config.get("precision") or "fp32",
            "device": res.get("device") or view.config.get("device"),
            "config": config_key(view.config), "arch_from": view.config.get("arch_from"),
            "command": view.command, "arch_json": _arch_text(found[0]) if found else None,
            "arch": _arch_text(found[0]) if found else (view.result or {}).get("model"),
            "table_metric": tab[0] if tab else None, "table_accuracy": tab[1] if tab else None,
            "test_accuracy": test_accuracy(view), "params": costs.get("params"), "flops": costs.get("flops"),
            "bops": costs.get("bops"), "ops": costs.get("ops"),
            "latency": latency[1],
            "latency_device": latency[0].removeprefix("latency").removesuffix("ms").strip() or None if latency[0] else None,
            "hypervolume": metrics.get("hypervolume"), "hypervolume_ratio": metrics.get("hypervolume_ratio"),
            "search_wall_s": search.get("wall_s"), "search_cpu_s": search.get("cpu_s"),
            "wall_s": final.get("wall_s"), "peak_rss_mb": final.get("peak_rss_mb"), "run_dir": str(view.path),
            "rungs": rung_summary(view)}


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k == "seed" or (not prefix and k in NOT_CONFIG):
            continue
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


def config_key(config: dict[str, Any]) -> str:
    """A run's configuration without its seed and where it ran (NOT_CONFIG), as canonical JSON of dotted keys."""
    return json.dumps(_flatten(config), sort_keys=True, default=str)


def link_retraining(rows: list[dict[str, Any]]) -> None:
    """Tie each train run to the compared search its architecture came from (``arch_from``, else the single
    search with the same space and architecture): the search row's ``test_accuracy`` becomes the train run's
    (``test_accuracy_from`` names it) unless the search retrained itself; the train row gets ``search_run``."""
    searches = [r for r in rows if r["command"] == "search"]
    by_path = {str(Path(r["run_dir"]).resolve()): r for r in searches}
    for r in sorted((r for r in rows if r["command"] == "train"), key=lambda r: r["run"]):
        src = by_path.get(str(Path(r["arch_from"]).resolve())) if r.get("arch_from") else None
        if src is None:
            same = [s for s in searches if s["space"] == r["space"] and s["arch_json"] is not None
                    and s["arch_json"] == r["arch_json"]]
            src = same[0] if len(same) == 1 else None
        if src is None:
            continue
        r["search_run"] = src["run"]
        if src.get("test_accuracy") is None and r.get("test_accuracy") is not None and r["status"] == "finished":
            src["test_accuracy"], src["test_accuracy_from"] = r["test_accuracy"], r["run"]


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
    """Rows grouped by configuration: the same method, space and config but for the seed (``config``, see
    :func:`config_key`), finished and unfinished apart; train runs linked to a compared search
    (``search_run``) are not ranked on their own. Each group: n, seeds, ``status``, ``differs`` (its values of
    the config keys that differ between groups of the same method and space; "" when there is one such
    group), ``seed_repeats`` (seeds that occur more than once: not independent replicates), and per numeric
    column {"mean", "std", "n"}; sorted by the mean test accuracy (else the table accuracy), best first."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("search_run"):
            continue
        groups.setdefault((r["method"], r["space"], r.get("config", ""), r["status"]), []).append(r)
    flat = {k: json.loads(k[2]) if k[2] else {} for k in groups}
    out = []
    for (method, space, conf, status), rs in groups.items():
        peers = [flat[k] for k in groups if k[:2] == (method, space)]
        keys = sorted({key for f in peers for key in f if len({json.dumps(p.get(key), sort_keys=True) for p in peers}) > 1})
        mine = flat[(method, space, conf, status)]
        differs = ", ".join(f"{key}={_short(json.dumps(mine.get(key), default=str), 24)}" for key in keys)
        seeds = [r["seed"] for r in rs if r["seed"] is not None]
        g: dict[str, Any] = {"method": method, "space": space, "n": len(rs), "status": status, "differs": differs,
                             "seeds": sorted(seeds, key=str),
                             "seed_repeats": sorted({s for s in seeds if seeds.count(s) > 1}, key=str)}
        for col in SUMMARISED:
            vals = [r[col] for r in rs if isinstance(r.get(col), (int, float)) and not isinstance(r.get(col), bool)]
            m, s = mean_std(vals)
            g[col] = {"mean": m, "std": s, "n": len(vals)}
        g["id"] = len(out)
        out.append(g)
        for r in rs:
            r["differs"], r["group"] = differs, g["id"]

    def key(g: dict[str, Any]) -> tuple[float, float]:
        t, b = g["test_accuracy"]["mean"], g["table_accuracy"]["mean"]
        return (-(t if t is not None else -1.0), -(b if b is not None else -1.0))

    return sorted(out, key=key)


def _in(g: dict[str, Any], r: dict[str, Any]) -> bool:
    return r.get("group") == g["id"]


def group_label(g: dict[str, Any]) -> str:
    """What sets a group apart: its differing config values, and 'UNFINISHED' for unfinished runs."""
    parts = [g["differs"]] if g["differs"] else []
    if g["status"] != "finished":
        parts.append("UNFINISHED")
    return "; ".join(parts) or "—"


def _seeds_text(g: dict[str, Any]) -> str:
    text = ", ".join(str(s) for s in g["seeds"])
    return text + (" (repeated)" if g["seed_repeats"] else "")


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
               ("hypervolume", "hypervolume"), ("hypervolume_ratio", "HV / exact HV"),
               ("search_wall_s", "search wall s"), ("search_cpu_s", "search CPU s")]


def _present(groups: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(k, label) for k, label in _GROUP_COLS if any(g[k]["n"] for g in groups)]


def compare_context(rows: list[dict[str, Any]], groups: list[dict[str, Any]]) -> dict[str, Any]:
    cols = _present(groups, rows)
    g_rows = [[g["method"], g["space"], group_label(g), g["n"], _seeds_text(g)] + [pm(g[k]) for k, _ in cols]
              for g in groups]
    sections = [{"id": "leaderboard",
                 "title": "Leaderboard by configuration (mean ± sample std over seeds; configs differ in 'config')",
                 "items": [table(["method", "space", "config", "runs", "seeds"] + [label for _, label in cols],
                                 g_rows)]}]
    run_cols = [("run", "run"), ("method", "method"), ("space", "space"), ("seed", "seed"), ("status", "status"),
                ("precision", "precision"), ("device", "device"), ("arch", "architecture"),
                ("table_metric", "table metric")]
    run_cols += [(k, label) for k, label in _GROUP_COLS if any(isinstance(r.get(k), (int, float)) for r in rows)]
    if any(r.get("test_accuracy_from") for r in rows):
        run_cols.append(("test_accuracy_from", "retrained by"))
    if any(r.get("search_run") for r in rows):
        run_cols.append(("search_run", "architecture of"))
    if any(r.get("latency_device") for r in rows):
        run_cols.append(("latency_device", "latency of"))
    ranked = [r for g in groups for r in sorted((r for r in rows if not r.get("search_run") and _in(g, r)),
                                                 key=lambda r: str(r["seed"]))]
    ordered = ranked + [r for r in rows if r.get("search_run")]
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
    notes = []
    unfinished = [r["run"] for r in rows if r["status"] != "finished"]
    if unfinished:
        notes.append(note("unfinished (numbers so far; never averaged with finished runs): " + ", ".join(unfinished)))
    repeats = [g for g in groups if g["seed_repeats"]]
    if repeats:
        notes.append(note("the same seed more than once in a group (repeats, not independent replicates): "
                          + "; ".join(f"{g['method']} seeds {', '.join(map(str, g['seed_repeats']))}" for g in repeats)))
    if notes:
        sections.append({"id": "notes", "title": "Notes", "items": notes})
    methods = sorted({g["method"] for g in groups})
    return {"title": "nasforge compare", "heading": f"Comparison of {len(rows)} runs",
            "subtitle": f"{len(methods)} method(s): " + ", ".join(methods), "sections": sections,
            "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "path": ", ".join(sorted({str(Path(r['run_dir']).resolve().parent) for r in rows}))}


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path | None = None,
                 csv_path: str | Path | None = None) -> dict[str, Any]:
    """Read every run, then write the HTML page (`out`) and/or the CSV (`csv_path`). Returns
    ``{"runs": [row], "groups": [group], "html": path|None, "csv": path|None, "warnings": [str]}`` (a warning
    per damaged result.json/search.json: such a run counts as unfinished).

    Raises UserError (one line, nothing written) if no run is given or any path is not a run directory."""
    if not run_dirs:
        raise UserError("give at least one run directory to compare")
    unique: dict[Path, str | Path] = {}
    repeated: list[str] = []
    for d in run_dirs:  # a run named twice (a typo, overlapping globs) is one run, not a repeated seed
        key = Path(d).expanduser().resolve()
        if key in unique:
            repeated.append(f"{d} is given more than once; it is counted once")
        else:
            unique[key] = d
    views = [RunView.open(d) for d in unique.values()]
    if out is not None and Path(out).is_dir():
        raise UserError(f"--out {out} is a directory; give an .html file name")
    from ..utils import check_writable

    for path, flag in ((out, "--out"), (csv_path, "--csv")):
        if path is not None:
            check_writable(path, flag)  # before anything is written
    rows = [run_row(v) for v in views]
    link_retraining(rows)
    groups = group_rows(rows)
    result: dict[str, Any] = {"runs": rows, "groups": groups, "html": None, "csv": None,
                              "warnings": repeated + [w for v in views for w in v.problems]}
    if out is not None:
        from ..utils import atomic_write_bytes

        target = Path(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, render("compare.html.j2", compare_context(rows, groups)).encode())
        result["html"] = str(target)
    if csv_path is not None:
        result["csv"] = str(write_csv(rows, csv_path))
    return result


def terminal_tables(result: dict[str, Any], width: int | None = None) -> list:
    """The leaderboard (groups) and the runs for the terminal, as rich renderables: a table each when it fits
    in `width` columns (None: always), else the same values as one block of "label  value" lines per group or
    run (a table of 14 columns at 80 columns folds every header and number into slivers). Absent values ("—")
    are left out of the blocks; the HTML and CSV hold every field."""
    from rich.table import Table

    groups, rows = result["groups"], result["runs"]
    cols = _present(groups, rows)
    labels = [group_label(grp) for grp in groups]
    show_config = any(x != "—" for x in labels)  # one configuration per method: nothing to tell apart
    g_cols = [("method", "method"), ("space", "space")] + ([("config", "config")] if show_config else []) + \
        [("runs", "runs")] + cols
    g_rows = [{"method": grp["method"], "space": grp["space"], "config": label,
               "runs": str(grp["n"]) + (" (seed repeated)" if grp["seed_repeats"] else ""),
               **{k: pm(grp[k]) for k, _ in cols}} for grp, label in zip(groups, labels)]
    g_title = "leaderboard by configuration (mean ± std over seeds)"
    g = Table(title=g_title, title_justify="left")
    for k, label in g_cols:
        g.add_column(label, justify="left" if k in ("method", "space", "config") else "right",
                     overflow="fold", max_width=30 if k == "config" else None)
    for row in g_rows:
        g.add_row(*[row[k] for k, _ in g_cols])
    run_cols = [("run", "run"), ("method", "method"), ("seed", "seed")]
    run_cols += [("status", "status")] if any(row["status"] != "finished" for row in rows) else []
    run_cols += [("precision", "precision")] if len({row.get("precision") for row in rows}) > 1 else []
    run_cols += [("arch", "architecture")] + cols
    if any(row.get("search_run") for row in rows):
        run_cols.append(("search_run", "architecture of"))
    r = Table(title="runs", title_justify="left")
    for k, label in run_cols:
        r.add_column(label, overflow="ellipsis", no_wrap=True, max_width=28 if k == "arch" else None)
    r_rows = [{k: fmt(row.get(k)) for k, _ in run_cols} for row in rows]
    for row in r_rows:
        r.add_row(*[row[k] for k, _ in run_cols])
    if width is None:
        return [g, r]
    return [t if _natural_width(t) <= width else _blocks(title, fields, records, width)
            for t, title, fields, records in ((g, g_title, g_cols, g_rows), (r, "runs", run_cols, r_rows))]


def _natural_width(table: Any) -> int:
    """Columns `table` takes when nothing wraps."""
    import io

    from rich.console import Console

    return Console(width=10_000, file=io.StringIO()).measure(table).maximum


def _blocks(title: str, fields: list[tuple[str, str]], records: list[dict[str, str]], width: int) -> Any:
    """`records` one under the other, one "label  value" line per present field (the first field in bold
    heads each block); long values (an architecture) wrap, and are cut after three lines."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    t = Table(show_header=False, box=None, padding=(0, 1), pad_edge=False)
    t.add_column(no_wrap=True)
    t.add_column(overflow="fold")
    room = 3 * max(width - max(len(label) for _, label in fields) - 1, 20)
    for n, rec in enumerate(records):
        if n:
            t.add_row("", "")
        for i, (k, label) in enumerate(fields):
            value = rec.get(k, "—")
            if value == "—" and i:
                continue
            value = value if len(value) <= room else value[:room - 1] + "…"
            t.add_row(f"[bold]{label}[/]" if i == 0 else label, f"[bold]{escape(value)}[/]" if i == 0
                      else escape(value))
    return Group(Text(title, style="italic"), t)  # the title over the whole width, as a table's title reads
