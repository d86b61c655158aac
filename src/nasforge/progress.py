"""Progress on stderr: rich bars on a terminal; plain lines (one per epoch, one per trial) when stderr is
not a terminal (nohup, CI, a log file); nothing with --quiet.

Bars nest: a bar opened while another is shown (a trial's training inside the search's "trial k of N" bar)
is added to the same display and removed when it ends."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_enabled = True


def set_enabled(flag: bool) -> None:
    global _enabled
    _enabled = flag


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._p, self._t = progress, task

    def advance(self, n: int = 1) -> None:
        if self._p is not None:
            self._p.advance(self._t, n)

    def update(self, description: str) -> None:
        if self._p is not None:
            self._p.update(self._t, description=description)


_active: Progress | None = None


def _console() -> Console:
    return Console(stderr=True)


def is_terminal() -> bool:
    return _console().is_terminal


@contextmanager
def bar(description: str, total: int | None) -> Iterator[_Bar]:
    """A bar on a terminal (nested in the one already shown, if any); a no-op elsewhere."""
    global _active
    if not _enabled or not is_terminal():
        yield _Bar(None, None)
        return
    if _active is not None:
        task = _active.add_task(description, total=total)
        try:
            yield _Bar(_active, task)
        finally:
            _active.remove_task(task)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=_console(), transient=True) as p:
        _active = p
        try:
            yield _Bar(p, p.add_task(description, total=total))
        finally:
            _active = None


@contextmanager
def stage_bar(description: str) -> Iterator:
    """A ``tick(done, total)`` callback for work whose size is known only when it starts (LUT timing,
    calibration): a bar on a terminal (opened at the first tick, nested like :func:`bar`), one plain line
    when the work is done elsewhere; nothing with --quiet or when there was nothing to do."""
    state: dict = {"cm": None, "bar": None, "done": 0}

    def tick(done: int, total: int) -> None:
        if not _enabled:
            return
        if is_terminal():
            if state["cm"] is None:
                state["cm"] = bar(description, total)
                state["bar"] = state["cm"].__enter__()
            state["bar"].advance(done - state["done"])
            state["done"] = done
        elif done >= total and state["done"] < total:
            state["done"] = done
            print(f"{description}: {total} done", file=sys.stderr, flush=True)

    try:
        yield tick
    finally:
        if state["cm"] is not None:
            state["cm"].__exit__(None, None, None)


_LINE_KEYS = ("train_loss", "train_accuracy", "val_loss", "supernet_val_accuracy", "test_accuracy", "score",
              "best_score", "images_per_s")


def line(record: dict) -> None:
    """One plain line for an `epoch` or `trial` event when stderr is not a terminal (and not --quiet)."""
    event = record.get("event")
    if not _enabled or event not in ("epoch", "trial") or is_terminal():
        return
    head = f"epoch {record.get('epoch')}" if event == "epoch" else f"trial {record.get('trial', '')}".rstrip()
    parts = []
    for k in _LINE_KEYS:
        v = record.get(k)
        if isinstance(v, float):
            parts.append(f"{k} {v:.4g}")
        elif v is not None and not isinstance(v, (dict, list)):
            parts.append(f"{k} {v}")
    if event == "trial" and record.get("error"):
        parts.append(f"failed: {str(record['error'])[:120]}")
    print(f"{head}: {', '.join(parts)}" if parts else head, file=sys.stderr, flush=True)


def warn(text: str) -> None:
    """One line ``warning: ...`` on stderr (shown with --quiet too: it is about the result, not progress)."""
    print(f"warning: {text}", file=sys.stderr, flush=True)
