"""The report's figures: matplotlib (object API, Agg canvas) to PNG bytes, embedded in the HTML page.

Each function takes plain records (as read by :mod:`nasforge.report.rundir`) and returns PNG bytes, or None
when the records hold nothing to plot.
"""
from __future__ import annotations

import io
import math
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .plots import _figure

#: per-epoch fields drawn elsewhere or not numbers worth a curve
#: bookkeeping fields of metrics records, never plotted as curves (seq: record counter; stage: which stage)
_SKIP = {"epoch", "time", "event", "round", "trial", "index", "seed", "epochs_run", "degenerate", "seq", "stage",
         "partial", "epochs", "of"}


def png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def scalar_keys(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Numeric scalar fields present in the records, in first-seen order."""
    keys: list[str] = []
    for r in records:
        for k, v in r.items():
            if k not in keys and k not in _SKIP and _is_num(v):
                keys.append(k)
    return keys


def _staged(records: Sequence[Mapping[str, Any]]) -> bool:
    """True when the records come from several stages that each count epochs from 1 (HURRICANE's two stages)."""
    return len({r.get("stage") for r in records if r.get("stage") is not None}) > 1


def _xy(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(x, y) of `key`: x is the epoch, or for staged records the running epoch over all stages (stage 2's
    epoch 1 comes after stage 1's last epoch instead of on top of it)."""
    staged = _staged(records)
    xs, ys = [], []
    for i, r in enumerate(records):
        if _is_num(r.get(key)):
            xs.append(float(i + 1) if staged or not _is_num(r.get("epoch", None)) else float(r["epoch"]))
            ys.append(float(r[key]))
    return xs, ys


def classify(keys: Sequence[str]) -> dict[str, list[str]]:
    """Group per-epoch fields into panels: losses, accuracies, throughput, then every other field alone."""
    panels: dict[str, list[str]] = {"loss": [], "accuracy": [], "images / s": []}
    rest: list[str] = []
    for k in keys:
        if k.endswith("loss") and "agent" not in k:
            panels["loss"].append(k)
        elif "accuracy" in k:
            panels["accuracy"].append(k)
        elif k == "images_per_s":
            panels["images / s"].append(k)
        else:
            rest.append(k)
    out = {name: ks for name, ks in panels.items() if ks}
    for k in rest:
        out[k] = [k]
    return out


def epoch_curves(records: Sequence[Mapping[str, Any]], keys: Sequence[str] | None = None,
                 title: str | None = None, max_panels: int = 12) -> bytes | None:
    """Every numeric per-epoch field over epochs: losses together, accuracies together, throughput, and one
    small panel per other field (learning rate, entropy, Hessian eigenvalue, ...)."""
    keys = list(keys) if keys is not None else scalar_keys(records)
    panels = list(classify(keys).items())[:max_panels]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    height = 2.8 * rows + (0.4 if title else 0)
    fig = Figure(figsize=(4.2 * cols, height))  # fixed margins: a layout engine costs more than the drawing
    FigureCanvasAgg(fig)
    top = 1 - (0.5 + (0.4 if title else 0)) / height
    axes = fig.subplots(rows, cols, squeeze=False, gridspec_kw={
        "left": 0.6 / (4.2 * cols), "right": 1 - 0.15 / (4.2 * cols), "bottom": 0.55 / height, "top": top,
        "wspace": 0.28, "hspace": 0.55 * 2.8 / 2.8})
    for ax, (name, ks) in zip(axes.flat, panels):
        single = len(records) == 1
        for k in ks:
            xs, ys = _xy(records, k)
            ax.plot(xs, ys, marker="o" if single or len(xs) <= 12 else None, markersize=3, label=k)
        xs_all = sorted({x for k in ks for x in _xy(records, k)[0]})
        if len(xs_all) == 1:  # one epoch: centre it, integer ticks only
            ax.set_xlim(xs_all[0] - 1, xs_all[0] + 1)
            ax.set_xticks([xs_all[0]])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch (all stages in sequence)" if _staged(records) else "epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(ks) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    return png(fig)


def edge_entropies(records: Sequence[Mapping[str, Any]], key: str = "edge_entropy") -> bytes | None:
    """Entropy (nats) of each edge's op distribution over epochs, one thin line per edge, the mean in black,
    with the uniform distribution's entropy dashed."""
    rows = [r for r in records if isinstance(r.get(key), dict)]
    if not rows:
        return None
    epochs = np.array([r.get("epoch", i + 1) for i, r in enumerate(rows)], dtype=float)
    groups = list(rows[0][key])
    try:
        values = np.concatenate([np.array([r[key][g] for r in rows], dtype=float).reshape(len(rows), -1)
                                 for g in groups], axis=1)
    except (KeyError, ValueError):
        return None
    fig = _figure(6.2, 3.2)
    ax = fig.subplots()
    ax.plot(epochs, values, color="C0", alpha=max(0.08, min(0.6, 8.0 / values.shape[1])), linewidth=0.8)
    ax.plot(epochs, values.mean(1), color="black", linewidth=2, label=f"mean over {values.shape[1]} edges")
    k = _n_ops(records)
    if k:
        ax.axhline(math.log(k), color="grey", linestyle="--", linewidth=0.8, label=f"uniform over {k} ops")
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel("entropy (nats)", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return png(fig)


def _n_ops(records: Sequence[Mapping[str, Any]]) -> int | None:
    for r in records:
        a = r.get("alpha_softmax")
        if isinstance(a, dict) and a:
            first = next(iter(a.values()))
            if first and isinstance(first[0], list):
                return len(first[0])
    return None


def trial_scores(times: Sequence[float | None], scores: Sequence[float | None], metric: str = "score",
                 start: float | None = None) -> bytes | None:
    """Every trial's score against the seconds since `start` (default: the first result) when it finished,
    with the best-so-far curve, and the same against the trial index."""
    idx = [i for i, s in enumerate(scores) if s is not None]
    if not idx:
        return None
    s = np.array([scores[i] for i in idx], dtype=float)
    n = np.array(idx, dtype=float) + 1
    have_time = all(times[i] is not None for i in idx)
    fig = _figure(10 if have_time else 5.6, 3.4)
    axes = list(fig.subplots(1, 2 if have_time else 1, squeeze=False)[0])

    def draw(ax, x: np.ndarray, label: str) -> None:
        order = np.argsort(x, kind="stable")
        ax.scatter(x, s, s=12, color="C0", alpha=0.6, label=f"trial ({len(s)})")
        ax.step(x[order], np.maximum.accumulate(s[order]), where="post", color="C3", linewidth=1.6,
                label="best so far")
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)

    if have_time:
        t = np.array([times[i] for i in idx], dtype=float)
        t0 = start if start is not None and start <= t.min() else t.min()
        draw(axes.pop(0), t - t0, "seconds since the run started" if t0 != t.min() else "seconds since the first result")
    draw(axes[0], n, "trial")
    return png(fig)


def pareto(points: Sequence[tuple[float, float]], front: Sequence[tuple[float, float]], device: str,
           x_label: str = "latency", y_label: str = "accuracy", budget: float | None = None,
           exact: Sequence[tuple[float, float]] | None = None) -> bytes | None:
    """Accuracy (y, higher is better) against latency (x, lower is better): every evaluated point and the
    Pareto front as a step line; `exact`, when given, the true front (from a table) as a grey step line."""
    if not points and not front:
        return None
    fig = _figure(5.6, 3.6)
    ax = fig.subplots()
    if exact:
        e = np.array(sorted(exact), dtype=float)
        ax.step(e[:, 0], e[:, 1], where="post", color="0.45", linewidth=1.2, linestyle="--",
                label=f"exact front ({len(e)})", zorder=2)
    if points:
        p = np.array(points, dtype=float)
        ax.scatter(p[:, 0], p[:, 1], s=12, color="C0", alpha=0.5, label=f"evaluated ({len(p)})")
    if front:
        f = np.array(sorted(front), dtype=float)
        ax.step(f[:, 0], f[:, 1], where="post", color="C3", linewidth=1.6)
        ax.scatter(f[:, 0], f[:, 1], s=24, color="C3", label=f"Pareto front ({len(f)})", zorder=3)
    if budget is not None:
        ax.axvline(budget, color="black", linestyle="--", linewidth=1, label=f"budget {budget:.4g}")
    ax.set_xlabel(x_label, fontsize=8)
    ax.set_ylabel(y_label, fontsize=8)
    ax.set_title(device, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return png(fig)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by another (lower-or-equal x and higher-or-equal y, one strictly), sorted by x."""
    front: list[tuple[float, float]] = []
    best = -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def accuracy_vs_cost(rows: Sequence[Mapping[str, Any]], x_key: str, y_key: str, x_label: str,
                     y_label: str) -> bytes | None:
    """One dot per run, a colour per method (group means as larger outlined markers); x on a log scale."""
    pts = [(r["method"], float(r[x_key]), float(r[y_key])) for r in rows
           if _is_num(r.get(x_key)) and _is_num(r.get(y_key)) and float(r[x_key]) > 0]
    if not pts:
        return None
    methods = sorted({m for m, _, _ in pts})
    fig = _figure(6.8, 4.2)
    ax = fig.subplots()
    for i, m in enumerate(methods):
        xs = np.array([x for mm, x, _ in pts if mm == m])
        ys = np.array([y for mm, _, y in pts if mm == m])
        ax.scatter(xs, ys, s=26, color=f"C{i % 10}", alpha=0.75, label=m)
        if len(xs) > 1:
            ax.scatter([np.exp(np.log(xs).mean())], [ys.mean()], s=110, facecolors="none",
                       edgecolors=f"C{i % 10}", linewidths=2)
    ax.set_xscale("log")
    ax.set_xlabel(x_label, fontsize=9)
    ax.set_ylabel(y_label, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    return png(fig)
