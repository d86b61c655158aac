"""Figures of a search's architecture distributions: per-edge op probabilities and how they evolve.

Every function writes one PNG and returns its path. Figures are built on matplotlib's object API with
the Agg canvas, so importing this module never changes the pyplot backend of the caller's session.
Inputs are the plain per-epoch records one-shot searches log (``history``): dicts with ``epoch`` and
``alpha_softmax`` = ``{group: [[p_op, ...] per edge]}`` (for MANAS these are the agents' policies).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..errors import UserError


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _op_labels(op_names: Sequence[str] | None, k: int) -> list[str]:
    if op_names is None:
        return [f"op{i}" for i in range(k)]
    if len(op_names) != k:
        raise UserError(f"{len(op_names)} op names given for distributions over {k} ops")
    return list(op_names)


def _series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Epochs (T,) and per-group stacked values (T, ...) of one per-epoch record field."""
    rows = [h for h in history if key in h and h[key] is not None]
    if not rows:
        raise UserError(f"no epoch record holds '{key}'; nothing to plot")
    epochs = np.array([h.get("epoch", i + 1) for i, h in enumerate(rows)])
    groups = list(rows[0][key])
    return epochs, {g: np.array([h[key][g] for h in rows], dtype=float) for g in groups}


def plot_policies(policies: Mapping[str, Any], op_names: Sequence[str] | None, path: str | Path,
                  title: str | None = None) -> Path:
    """One heatmap per group: edges (rows) x ops (columns), colour = probability, best op outlined."""
    mats = {g: np.asarray(p, dtype=float) for g, p in policies.items()}
    if not mats or any(m.ndim != 2 for m in mats.values()):
        raise UserError("policies must map each group to an [edges, ops] matrix")
    k = next(iter(mats.values())).shape[1]
    labels = _op_labels(op_names, k)
    cols = min(len(mats), 4)
    rows = -(-len(mats) // cols)
    edges = max(m.shape[0] for m in mats.values())
    fig = _figure(2.2 + 0.45 * k * cols, 1.2 + (0.28 * edges + 1.3) * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    vmax = max(float(m.max()) for m in mats.values())
    image = None
    for ax, (g, m) in zip(axes.flat, mats.items()):
        image = ax.imshow(m, vmin=0.0, vmax=vmax, cmap="viridis", aspect="auto")
        best = m.argmax(1)
        for e, b in enumerate(best):
            ax.add_patch(_box(b, e))
        if m.shape[0] * k <= 120:  # annotate when the numbers stay legible
            for (e, o), v in np.ndenumerate(m):
                ax.text(o, e, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if v > 0.6 * vmax else "white")
        ax.set_title(g, fontsize=9)
        ax.set_xticks(range(k), labels, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(m.shape[0]), [f"e{e}" for e in range(m.shape[0])], fontsize=6)
    for ax in list(axes.flat)[len(mats):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes, shrink=0.6, label="probability")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _box(col: int, row: int) -> Rectangle:
    return Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.2)


def plot_alpha_trajectories(history: Sequence[Mapping[str, Any]], path: str | Path,
                            op_names: Sequence[str] | None = None, key: str = "alpha_softmax",
                            zoom: bool = False) -> Path:
    """Per-edge op probabilities over epochs: one panel per edge (rows = groups), one line per op. The y axis
    spans [0, 1], or with `zoom` the range of the values (for distributions that barely leave uniform).

    Works for every one-shot search that logs ``alpha_softmax`` (DARTS, Single-DARTS; for MANAS the
    values are the agents' policies)."""
    epochs, series = _series(history, key)
    first = next(iter(series.values()))
    if first.ndim != 3:
        raise UserError(f"'{key}' must hold, per group, a list of per-edge probability lists")
    k = first.shape[2]
    labels = _op_labels(op_names, k)
    edges = max(s.shape[1] for s in series.values())
    fig = _figure(1.9 * edges + 1.5, 1.5 * len(series) + 0.8)
    axes = fig.subplots(len(series), edges, squeeze=False, sharex=True, sharey=True)
    colours = [f"C{i}" for i in range(k)]
    for r, (g, s) in enumerate(series.items()):
        for e in range(edges):
            ax = axes[r, e]
            if e >= s.shape[1]:
                ax.set_visible(False)
                continue
            for o in range(k):
                ax.plot(epochs, s[:, e, o], color=colours[o], linewidth=1.0)
            if zoom:
                lo = min(float(v[:, :, :].min()) for v in series.values())
                hi = max(float(v[:, :, :].max()) for v in series.values())
                pad = max(1e-6, 0.05 * (hi - lo))
                ax.set_ylim(lo - pad, hi + pad)
                ax.ticklabel_format(axis="y", useOffset=False)
            else:
                ax.set_ylim(0, 1)
            ax.tick_params(labelsize=6)
            ax.set_title(f"{g} e{e}", fontsize=7)
    fig.legend([axes[0, 0].lines[o] for o in range(k)], labels, loc="outside right center", fontsize=7)
    fig.supxlabel("epoch", fontsize=8)
    fig.supylabel("op probability", fontsize=8)
    return _save(fig, path)


def plot_policy_concentration(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Per-agent policy entropy (nats) and probability of its most likely op, over epochs; one thin line per
    agent and the mean in black. Read from ``edge_entropy`` and ``alpha_softmax``."""
    epochs, ent = _series(history, "edge_entropy")
    _, probs = _series(history, "alpha_softmax")
    entropy = np.concatenate(list(ent.values()), axis=1)  # (T, agents)
    best = np.concatenate([p.max(axis=2) for p in probs.values()], axis=1)
    k = next(iter(probs.values())).shape[2]
    fig = _figure(9, 3.4)
    ax_e, ax_p = fig.subplots(1, 2)
    for ax, values, label, ref in ((ax_e, entropy, "policy entropy (nats)", np.log(k)),
                                   (ax_p, best, "probability of the best op", 1.0 / k)):
        ax.plot(epochs, values, color="C0", alpha=max(0.05, min(0.6, 8.0 / values.shape[1])), linewidth=0.8)
        ax.plot(epochs, values.mean(axis=1), color="black", linewidth=2, label="mean over agents")
        ax.axhline(ref, color="grey", linestyle="--", linewidth=0.8, label="uniform")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=7)
    fig.suptitle(f"{entropy.shape[1]} agents", fontsize=9)
    return _save(fig, path)


def plot_loss_history(losses: Sequence[float], path: str | Path, ylabel: str = "loss",
                      window: int | None = None) -> Path:
    """Per-round losses (light) and their moving average (dark)."""
    values = np.asarray(losses, dtype=float)
    if values.size == 0:
        raise UserError("no losses to plot")
    window = window or max(1, values.size // 50)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    fig = _figure(6, 3.2)
    ax = fig.subplots()
    ax.plot(np.arange(1, values.size + 1), values, color="C0", alpha=0.25, linewidth=0.6, label="per round")
    ax.plot(np.arange(window, values.size + 1), smooth, color="C0", linewidth=1.8, label=f"mean of {window}")
    ax.set_xlabel("round (minibatch)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return _save(fig, path)
