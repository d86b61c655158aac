"""`nasforge report`: one self-contained HTML page for one run directory, of any method, finished or not.

The page is assembled from *sections*, each a list of items (key/value lists, tables, embedded PNG figures,
inline SVG drawings, preformatted text, notes); a jinja2 template (package data, ``templates/``) lays them
out. Every image is embedded (PNG as a base64 data URI, SVG inline), there is no script and no external
resource, so the file opens from disk anywhere.
"""
from __future__ import annotations

import base64
import json
import math
import time
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import charts
from .draw import DrawnPart, dot_available, dot_missing_message, draw_parts
from .rundir import RunView

#: result fields shown as the network's cost, in this order, wherever they appear
COST_FIELDS = ("params", "params_aux", "flops", "macs", "bops", "ops")
_JSON_LIMIT = 20_000  # characters of a method's JSON file shown on the page


# ---------------------------------------------------------------------------------------------------
# items
# ---------------------------------------------------------------------------------------------------
def kv(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {"type": "kv", "pairs": [(k, fmt(v)) for k, v in pairs if v is not None]}


def table(columns: list[str], rows: list[list[Any]], caption: str | None = None) -> dict[str, Any]:
    return {"type": "table", "columns": columns, "rows": [[fmt(v) for v in r] for r in rows], "caption": caption}


def image(data: bytes | None, caption: str | None = None) -> dict[str, Any] | None:
    if not data:
        return None
    return {"type": "image", "src": "data:image/png;base64," + base64.b64encode(data).decode(), "caption": caption}


def pre(text: str, caption: str | None = None) -> dict[str, Any]:
    return {"type": "pre", "text": text, "caption": caption}


def note(text: str) -> dict[str, Any]:
    return {"type": "note", "text": text}


def fmt(v: Any) -> str:
    """A value as page text: floats to 4 significant digits, large counts with thousands separators."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def _section(sid: str, title: str, items: list[Any]) -> dict[str, Any] | None:
    items = [i for i in items if i]
    return {"id": sid, "title": title, "items": items} if items else None


# ---------------------------------------------------------------------------------------------------
# what a run reports
# ---------------------------------------------------------------------------------------------------
def cost_fields(view: RunView) -> dict[str, Any]:
    """Network cost numbers (params, FLOPs, BOPs, OPs, latency per device) wherever the run reports them:
    the retrained network first, then the run's own result, then the search's metrics."""
    res = view.result or {}
    sources = [res.get("retrain"), res, (res.get("search") or {}).get("metrics"), (view.search or {}).get("metrics")]
    out: dict[str, Any] = {}
    for src in sources:
        if not isinstance(src, dict):
            continue
        for k in COST_FIELDS:
            if k not in out and isinstance(src.get(k), (int, float)) and not isinstance(src.get(k), bool):
                out[k] = src[k]
        for k, v in src.items():
            if not k.startswith("latency"):
                continue
            if isinstance(v, dict):
                for dev, ms in v.items():
                    if isinstance(ms, (int, float)):
                        out.setdefault(f"latency {dev}", ms)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                target = (view.config.get("hparams") or {}).get("target")  # the device a search optimised for
                out.setdefault(f"latency {target} ms" if k == "latency_ms" and target else k.replace("_", " "), v)
    return out


def test_accuracy(view: RunView) -> float | None:
    """Test accuracy of the final network: the retrained architecture (search) or the trained model (train)."""
    res = view.result or {}
    for src in (res.get("retrain"), res):
        if isinstance(src, dict) and isinstance(src.get("test_accuracy"), (int, float)):
            return float(src["test_accuracy"])
    return None


def table_accuracy(view: RunView) -> tuple[str, float] | None:
    """(metric name, value) of the benchmark table's record of the found architecture, when looked up."""
    rec = (view.result or {}).get("table")
    if not isinstance(rec, dict):
        return None
    ds = view.table_dataset()
    for key in (f"{ds}_test_200", f"{ds}_test", "test_accuracy", "accuracy"):
        if isinstance(rec.get(key), (int, float)):
            return key, float(rec[key])
    return None


def _status(view: RunView) -> str:
    if view.finished:
        return "finished"
    n_e, n_t = len(view.epochs), len(view.trials)
    what = f"{n_e} epoch(s)" if n_e else f"{n_t} trial(s)" if n_t else "nothing yet"
    return f"in progress or interrupted (no result.json yet; logged so far: {what})"


def _overview(view: RunView) -> dict[str, Any] | None:
    pairs: list[tuple[str, Any]] = [("run", view.name), ("command", view.command), ("status", _status(view)),
                                    ("method", view.method), ("space", view.space),
                                    ("dataset", view.config.get("dataset")), ("seed", view.seed)]
    res = view.result or {}
    fast = res.get("fast_path") or view.config.get("fast_path") or {}  # what --precision/--memory-format auto chose
    chosen = fast.get("supernet") or fast.get("network") or {}
    pairs += [("precision", res.get("precision") or chosen.get("precision") or view.config.get("precision") or "fp32"),
              ("device", res.get("device") or view.config.get("device"))]
    if fast:
        pairs.append(("precision, memory format", "; ".join(
            f"{kind}: {c.get('precision')}, {c.get('memory_format')}"
            + (", torch.compile" if (c.get("compile") or {}).get("on") else "")
            + f" (asked: {view.config.get('precision')}, {view.config.get('memory_format')})"
            for kind, c in fast.items() if isinstance(c, dict))))
    if view.command == "train" and view.result:
        pairs.append(("model", view.result.get("model") or view.result.get("space")))
    for k, v in (res.get("optimised") or {}).items():  # what the method optimised (see SearchResult.optimised)
        pairs.append((k, v.get("verdict", v) if isinstance(v, dict) else v))
    if res.get("note"):
        pairs.append(("note", res["note"]))
    acc = test_accuracy(view)
    if acc is not None:
        pairs.append(("test accuracy" + (" (retrained)" if view.command == "search" else ""), acc))
    tab = table_accuracy(view)
    if tab:
        pairs.append((f"table {tab[0]}", tab[1]))
    for k, v in cost_fields(view).items():
        pairs.append((k, v))
    cost = view.final_cost()
    if cost:
        pairs += [("wall s", cost.get("wall_s")), ("CPU s", cost.get("cpu_s")), ("peak RSS MB", cost.get("peak_rss_mb"))]
    return _section("overview", "Overview", [kv(pairs)])


def _architecture(view: RunView) -> tuple[dict[str, Any] | None, list[DrawnPart]]:
    found = view.arch()
    if found is None:
        if view.command == "train" and view.result and view.result.get("model"):
            return _section("architecture", "Architecture",
                            [note(f"fixed model '{view.result['model']}' (not from a search space)")]), []
        return None, []
    arch, where = found
    items: list[Any] = [note(where)]
    parts: list[DrawnPart] = []
    space = _space_of(view)
    if space is not None:
        try:
            figure = space.figure(arch)
        except Exception as e:  # a space that cannot describe this architecture must not cost the page
            figure = None
            items.append(note(f"cannot draw this architecture ({type(e).__name__}: {e})"))
        if figure:
            parts = draw_parts(figure)
            if any(p.kind == "graph" for p in parts) and not dot_available():
                items.append(note(dot_missing_message()))
            for p in parts:
                if p.kind == "table":
                    items.append(table(p.columns or [], p.rows or [], caption=p.title))
                elif p.svg:
                    items.append({"type": "svg", "svg": p.svg, "caption": None})
                else:
                    items.append(pre(p.source or "", caption=f"{p.title} (DOT source)"))
        try:
            described = space.describe(arch)
        except Exception:  # a describe() that fails must not cost the user the page
            described = None
        if described and described != str(arch):
            items.append(pre(described, caption="description"))
    items.append(pre(json.dumps(arch, indent=None if isinstance(arch, str) else 1), caption="architecture (JSON)"))
    return _section("architecture", "Architecture", items), parts


def _space_of(view: RunView):
    """The run's search space, rebuilt from its stored config (None if the space is unknown here)."""
    cfg = dict(view.space_config())
    name = cfg.pop("space", None) or view.space
    if not name:
        return None
    from ..building import import_components
    from ..registry import SPACES

    import_components()
    try:
        cls = SPACES.get(name)
    except Exception:
        return None
    dims = {k: cfg.pop(k) for k in ("in_channels", "num_classes", "resolution") if k in cfg}
    try:
        return cls(**dims, **cfg)
    except Exception:
        try:
            return cls(**dims)
        except Exception:
            return None


def _curves(view: RunView) -> dict[str, Any] | None:
    items: list[Any] = []
    epochs = view.epochs
    if epochs:
        title = "search (per epoch)" if view.command == "search" else "training (per epoch)"
        items.append(image(charts.epoch_curves(epochs), caption=title))
    for name, recs in view.sub_runs.items():
        recs_e = [r for r in recs if r.get("event", "epoch") == "epoch"]
        if recs_e:
            items.append(image(charts.epoch_curves(recs_e), caption=f"{name}/ (per epoch)"))
    return _section("curves", "Per-epoch curves", items)


def _one_shot(view: RunView) -> dict[str, Any] | None:
    epochs = [e for e in view.epochs if isinstance(e.get("alpha_softmax"), dict)]
    if not epochs:
        return None
    from .plots import plot_alpha_trajectories, plot_policies

    items: list[Any] = []
    ops = view.op_names()
    k = charts._n_ops(epochs)
    if ops is not None and len(ops) != k:
        ops = None
    values = [x for e in epochs for rows in e["alpha_softmax"].values() for row in rows for x in row]
    zoom = bool(values) and max(values) - min(values) < 0.2  # still near uniform: zoom in to show the movement
    items.append(image(_via_file(lambda p: plot_alpha_trajectories(epochs, p, op_names=ops, zoom=zoom)),
                       caption="op probability per edge over epochs (softmax of alpha; MANAS: the agents' policies)"
                               + (f"; y axis zoomed to {min(values):.4f}..{max(values):.4f}" if zoom else "")))
    final = (view.search or {}).get("metrics", {}).get("policies") if view.search else None
    if not isinstance(final, dict):
        final = epochs[-1]["alpha_softmax"]
    items.append(image(_via_file(lambda p: plot_policies(final, ops, p)),
                       caption="final op probabilities (rows: edges; red box: the most likely op)"))
    items.append(image(charts.edge_entropies(epochs), caption="entropy of each edge's op distribution"))
    rows = []
    for e in epochs:
        rows.append([e.get("epoch"), _short(e.get("arch")), e.get("parameter_free_ops"), e.get("mean_entropy"),
                     e.get("hessian_eigenvalue"), _table_value(e.get("table"), view.table_dataset())])
    items.append(table(["epoch", "derived architecture", "param-free ops", "mean entropy", "Hessian eig.",
                        f"table {view.table_dataset()} test acc"], rows, caption="derived architecture per epoch"))
    return _section("oneshot", "One-shot search: architecture distribution", items)


def _isnum(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _table_value(rec: Any, ds: str) -> Any:
    if isinstance(rec, dict):
        return rec.get(f"{ds}_test_200")
    return None


def _short(arch: Any, n: int = 90) -> str | None:
    if arch is None:
        return None
    s = arch if isinstance(arch, str) else json.dumps(arch, separators=(",", ":"))
    return s if len(s) <= n else s[: n - 1] + "…"


def _via_file(plot) -> bytes | None:
    """Run a path-writing plot function of plots.py into a temporary file and return the PNG bytes."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "f.png"
        try:
            plot(p)
        except UserError:
            return None
        return p.read_bytes()


def _trials(view: RunView) -> dict[str, Any] | None:
    trials = view.trials
    if not trials:
        return None
    metric = next((str(t.extra["metric"]) for t in trials if "metric" in t.extra), "score")
    if metric == "score" and any(e.get("event") == "candidate" and "fitness" in e for e in view.metrics):
        metric = "fitness"
    items: list[Any] = [image(charts.trial_scores([t.time for t in trials], [t.score for t in trials], metric,
                                                  start=view.started),
                              caption="every trial's score over time, with the best so far")]
    cost_key = next((k for k in ("latency", "latency_ms", "macs", "flops", "ops", "params")
                     if any(_isnum(t.extra.get(k)) for t in trials)), None)
    if cost_key is not None:
        pts = [(float(t.extra[cost_key]), t.score) for t in trials if _isnum(t.extra.get(cost_key)) and t.score is not None]
        items.append(image(charts.pareto(pts, charts.pareto_front(pts), f"{metric} vs {cost_key}", cost_key, metric),
                           caption=f"every evaluated architecture's {metric} against its {cost_key}, with the "
                                   "Pareto front (higher score at lower cost)"))
    scored = sorted((t for t in trials if t.score is not None), key=lambda t: -t.score)
    extra_keys = [k for k in ("macs", "flops", "params", "train_s", "val_loss", "round")
                  if any(k in t.extra for t in scored)]
    rows = [[t.index + 1, _short(t.arch), t.score] + [t.extra.get(k) for k in extra_keys] for t in scored[:15]]
    items.append(table(["trial", "architecture", metric] + extra_keys, rows,
                       caption=f"best {len(rows)} of {len(trials)} trials"))
    kind = "Multi-trial search" if view.command == "search" and not view.is_one_shot and not view.epochs \
        else "Evaluated architectures (selection phase)"
    return _section("trials", kind, items)


def rung_summary(view: RunView) -> list[dict[str, Any]] | None:
    """Per rung of a multi-fidelity search (sh, hyperband, asha): fidelity, trials, failed, promoted, best
    score; from the finished search's metrics, else counted from the trial records logged so far."""
    metrics = (view.search or {}).get("metrics") or ((view.result or {}).get("search") or {}).get("metrics") or {}
    if isinstance(metrics.get("rungs"), list):
        return metrics["rungs"]
    logged = [m for m in view.metrics if m.get("event") == "trial" and isinstance(m.get("rung"), int)]
    if not logged:
        return None
    out = []
    for k in sorted({m["rung"] for m in logged}):
        on = [m for m in logged if m["rung"] == k]
        ok = [m["score"] for m in on if _isnum(m.get("score"))]
        up = {m["config"] for m in logged if m["rung"] == k + 1}
        out.append({"rung": k, "fidelity": on[0].get("fidelity"), "trials": len(on), "failed": len(on) - len(ok),
                    "promoted": len({m["config"] for m in on} & up), "best_score": max(ok) if ok else None})
    return out


def _rungs(view: RunView) -> dict[str, Any] | None:
    rungs = rung_summary(view)
    if not rungs:
        return None
    metrics = (view.search or {}).get("metrics") or {}
    rows = [[r["rung"], r["fidelity"], r["trials"], r["failed"], r["promoted"], r["best_score"]] for r in rungs]
    caption = (f"{metrics.get('scheduler', 'multi-fidelity')} search, eta {metrics.get('eta', '?')}: budget used "
               f"{fmt(metrics.get('budget_used'))} full-evaluation equivalents") if metrics else "search in progress"
    return _section("rungs", "Rungs", [table(["rung", f"fidelity ({metrics.get('fidelity_unit', 'epochs')})", "trials",
                                              "failed", "promoted", "best score"], rows, caption=caption)])


def _pareto(view: RunView) -> dict[str, Any] | None:
    items: list[Any] = []
    for name, data in view.extra_json.items():
        if not name.startswith("pareto"):
            continue
        device = name[len("pareto"):].strip("_-").rsplit(".", 1)[0] or "device"
        parsed = pareto_points(data)
        if parsed is None:
            items.append(note(f"{name}: no (accuracy, latency) points recognised"))
            continue
        points, front, xl, yl = parsed
        budget = data.get("budget_ms") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(data.get("accuracy_metric"), str):
            yl = data["accuracy_metric"]
        items.append(image(charts.pareto(points, front, device, xl, yl, budget if _isnum(budget) else None),
                           caption=f"{device}: accuracy vs latency ({len(points)} evaluated, {len(front)} on the front)"))
    return _section("pareto", "Hardware-aware: Pareto front per device", items)


def _multiobjective(view: RunView) -> dict[str, Any] | None:
    """A multi-objective search (nsga2's multiobjective.json): hypervolume, and per cost objective accuracy
    against it with the found front and, where a table gives it, the exact front."""
    data = view.extra_json.get("multiobjective.json")
    if not isinstance(data, dict) or not isinstance(data.get("objectives"), list):
        return None
    keys = [str(k) for k in data["objectives"]]
    pairs = [(k, data.get(k)) for k in ("front_size", "evaluated", "feasible", "hypervolume", "hypervolume_exact",
                                        "hypervolume_ratio", "hypervolume_basis") if k in data]
    items: list[Any] = [kv([("objectives", ", ".join(keys)), ("constraints", ", ".join(data.get("constraints") or []) or "-"),
                            *pairs])]
    acc = "accuracy"
    points = [p for p in data.get("points") or [] if isinstance(p, dict) and p.get("feasible")]
    front = [p for p in data.get("front") or [] if isinstance(p, dict)]
    exact = [p for p in data.get("exact_front") or [] if isinstance(p, dict)]
    for k in keys:
        if k == acc:
            continue
        pts = [(float(p[k]), float(p[acc])) for p in points if _isnum(p.get(k)) and _isnum(p.get(acc))]
        # the 2-D front of this projection (with 3+ objectives the full front holds more points)
        fr = charts.pareto_front(pts)
        ex = charts.pareto_front([(float(p[k]), float(p[acc])) for p in exact if _isnum(p.get(k)) and _isnum(p.get(acc))])
        items.append(image(charts.pareto(pts, fr, f"{acc} vs {k}", k, acc, exact=ex or None),
                           caption=f"every feasible evaluated architecture's {acc} against its {k}, the found front"
                                   + (" and the exact front of the table" if ex else "")))
    rows = [[_short(p.get("arch"), 60)] + [p.get(k) for k in keys] for p in front[:30]]
    items.append(table(["architecture"] + keys, rows, caption=f"the found Pareto front ({len(front)} architectures)"))
    return _section("multiobjective", "Multi-objective search: Pareto front and hypervolume", items)


_ACC_KEYS = ("accuracy", "val_accuracy", "top1", "acc", "score", "test_accuracy")


def pareto_points(data: Any) -> tuple[list, list, str, str] | None:
    """(all points, front points, x label, y label) from a pareto JSON: a list of point dicts, or a dict
    holding one (``points``/``evaluated``/``all``) and optionally the front (``front``/``pareto``). A point
    has an accuracy field (accuracy, val_accuracy, top1, acc, score) and a latency field (a key containing
    ``latency``, or ``ms``). The front is computed when absent."""
    def pts(rows: Any) -> tuple[list[tuple[float, float]], str, str] | None:
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            return None
        first = rows[0]
        yk = next((k for k in _ACC_KEYS if k in first), None)
        xk = next((k for k in first if "latency" in k), None) or ("ms" if "ms" in first else None)
        if yk is None or xk is None:
            return None
        out = [(float(r[xk]), float(r[yk])) for r in rows
               if isinstance(r.get(xk), (int, float)) and isinstance(r.get(yk), (int, float))]
        return out, xk, yk

    if isinstance(data, list):
        got = pts(data)
        if got is None:
            return None
        return got[0], charts.pareto_front(got[0]), got[1], got[2]
    if not isinstance(data, dict):
        return None
    all_rows = next((data[k] for k in ("points", "evaluated", "all", "candidates") if k in data), None)
    front_rows = next((data[k] for k in ("front", "pareto", "pareto_front") if k in data), None)
    got_all, got_front = pts(all_rows), pts(front_rows)
    if got_all is None and got_front is None:
        return None
    ref = got_all or got_front
    points = got_all[0] if got_all else []
    front = got_front[0] if got_front else charts.pareto_front(points)
    return points, front, ref[1], ref[2]


def _table_lookup(view: RunView) -> dict[str, Any] | None:
    rec = (view.result or {}).get("table")
    if not isinstance(rec, dict):
        return None
    rows = [[k, v] for k, v in rec.items() if k not in ("arch",)]
    return _section("table", "Benchmark table look-up", [table(["field", "value"], rows,
                                                                caption="the found architecture's record")])


def _retraining(view: RunView) -> dict[str, Any] | None:
    res = view.result or {}
    items: list[Any] = []
    rt = res.get("retrain")
    if isinstance(rt, dict):
        items.append(kv([(k, v) for k, v in rt.items() if k not in ("model_file",) and not isinstance(v, (dict, list))]
                        + [(k, v) for k, v in rt.items() if isinstance(v, dict) and v]))
        items += _record_tables(rt)
    if view.command == "train" and res:
        items.append(kv([(k, res.get(k)) for k in ("test_accuracy", "train_accuracy", "params", *COST_FIELDS[1:],
                                                    "epochs", "images_per_s", "dataset", "teacher")]))
        items += _record_tables(res, skip=("history",))
    return _section("retrain", "Retraining" if view.command == "search" else "Training result", items)


def _record_tables(d: dict[str, Any], skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A table for every list of records in a result (e.g. the stages of a two-stage binary training)."""
    out = []
    for k, v in d.items():
        if k in skip or not isinstance(v, list) or not v or not all(isinstance(r, dict) for r in v):
            continue
        cols: list[str] = []
        for r in v:
            cols += [c for c in r if c not in cols and not isinstance(r[c], (dict, list))]
        out.append(table(cols, [[r.get(c) for c in cols] for r in v], caption=k))
    return out


def _cost(view: RunView) -> dict[str, Any] | None:
    rows = []
    for label, c in (("search", view.search_cost()), ("whole run", view.final_cost())):
        if isinstance(c, dict):
            rows.append([label, c.get("wall_s"), c.get("cpu_s"), c.get("peak_rss_mb")])
    rt = (view.result or {}).get("retrain")
    if isinstance(rt, dict) and rt.get("train_s") is not None:
        rows.append(["retraining", rt.get("train_s"), None, None])
    if not rows:
        return None
    return _section("cost", "Cost", [table(["part", "wall s", "CPU s", "peak RSS MB"], rows)])


def _method_files(view: RunView) -> dict[str, Any] | None:
    items: list[Any] = []
    for p in view.images:
        items.append(image(p.read_bytes(), caption=f"{p.name} (written by the method)"))
    for name, data in view.extra_json.items():
        text = json.dumps(data, indent=1)
        if len(text) > _JSON_LIMIT:
            text = text[:_JSON_LIMIT] + f"\n… ({len(text):,} characters; the rest is in {name})"
        items.append({"type": "details", "summary": name, "text": text})
    return _section("files", "Files written by the method", items)


def _config(view: RunView) -> dict[str, Any]:
    return {"id": "config", "title": "Configuration",
            "items": [pre(json.dumps(view.config, indent=2, sort_keys=True), caption="config.json")]}


def build_report(view: RunView) -> dict[str, Any]:
    """The template context of one run's page: title, subtitle and the list of sections."""
    arch_section, parts = _architecture(view)
    sections = [_overview(view), arch_section, _curves(view), _one_shot(view), _trials(view), _rungs(view),
                _pareto(view), _multiobjective(view),
                _table_lookup(view), _retraining(view), _cost(view), _method_files(view), _config(view)]
    sections = [s for s in sections if s]
    if not view.metrics and not view.finished:
        sections.insert(1, {"id": "empty", "title": "Nothing logged yet",
                            "items": [note("this run has its configuration but no metrics or result yet")]})
    if view.problems:
        sections.insert(1, {"id": "damaged", "title": "Damaged files", "items": [note(p) for p in view.problems]})
    subtitle = " · ".join(str(x) for x in (view.method, view.space, view.config.get("dataset"),
                                           f"seed {view.seed}" if view.seed is not None else None) if x)
    return {"title": f"nasforge report: {view.name}", "heading": view.name, "subtitle": subtitle,
            "status": _status(view), "finished": view.finished, "sections": sections,
            "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "path": str(view.path.resolve()),
            "warnings": list(view.problems) + ([(dot_missing_message() if not dot_available() else
                          "graphviz could not render the architecture; the page shows its DOT source")]
            if any(p.kind == "graph" and p.svg is None for p in parts) else [])}


def render(template: str, context: dict[str, Any]) -> str:
    """Render a packaged jinja2 template (autoescaped; SVG items are marked safe by the template)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("nasforge.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env.get_template(template).render(**context)


def write_report(run_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write one run's report. `out` defaults to ``RUN_DIR/report.html``. Returns
    ``{"report": path, "run_dir", "status", "sections": [ids], "drawn": bool, "warnings": [str]}`` (a warning
    when graphviz's `dot` is missing and the architecture is shown as DOT text instead of a drawing, and one per
    damaged result.json/search.json).

    Raises UserError (one line) before writing anything if `run_dir` is not a run directory."""
    from ..utils import atomic_write_bytes, check_writable

    view = RunView.open(run_dir)
    target = Path(out) if out is not None else view.path / "report.html"
    if target.is_dir():
        raise UserError(f"--out {target} is a directory; give an .html file name")
    check_writable(target, "--out")  # before the page is built
    ctx = build_report(view)
    page = render("report.html.j2", ctx)
    target.parent.mkdir(parents=True, exist_ok=True)

    atomic_write_bytes(target, page.encode())
    return {"report": str(target), "run_dir": str(view.path), "status": ctx["status"],
            "sections": [s["id"] for s in ctx["sections"]],
            "drawn": any(i.get("type") == "svg" for s in ctx["sections"] for i in s["items"]),
            "warnings": ctx["warnings"]}


__all__ = ["write_report", "build_report", "render"]
