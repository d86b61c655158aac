"""Accuracy-vs-latency Pareto fronts: computed from every evaluated architecture, written as JSON and a plot."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..utils import atomic_write_json


def pareto_front(points: Sequence[dict[str, Any]], acc: str = "accuracy", lat: str = "latency_ms") -> list[int]:
    """Indices of the non-dominated points (higher `acc`, lower `lat`), sorted by latency. A point is dominated
    if another is at least as good in both and strictly better in one; exact duplicates keep the first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][lat], -points[i][acc], i))
    front, best = [], float("-inf")
    for i in order:
        if points[i][acc] > best:
            front.append(i)
            best = points[i][acc]
    return front


def write_pareto(folder: str | Path, device: str, points: Sequence[dict[str, Any]], budget_ms: float | None = None,
                 acc_label: str = "accuracy") -> dict[str, str]:
    """Write ``pareto_<device>.json`` (all points, the front's indices, the budget) and ``pareto_<device>.png``."""
    folder = Path(folder)
    front = pareto_front(points)
    js = folder / f"pareto_{device}.json"
    atomic_write_json(js, {"device": device, "budget_ms": budget_ms, "accuracy_metric": acc_label,
                           "front": [points[i] for i in front], "points": list(points)})
    png = folder / f"pareto_{device}.png"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.scatter([p["latency_ms"] for p in points], [p["accuracy"] for p in points], s=10, alpha=0.4,
                   label="evaluated")
        ax.plot([points[i]["latency_ms"] for i in front], [points[i]["accuracy"] for i in front], "r.-",
                label="Pareto front")
        if budget_ms is not None:
            ax.axvline(budget_ms, color="k", ls="--", lw=1, label="latency budget")
        ax.set_xlabel(f"latency on {device} (ms)")
        ax.set_ylabel(acc_label)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(png, dpi=110)
        plt.close(fig)
    except Exception as e:  # a plot must never fail a finished search
        return {"json": str(js), "plot_error": str(e)}
    return {"json": str(js), "png": str(png)}
