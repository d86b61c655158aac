"""Progress bars (rich) that stay quiet when output is not a terminal or when disabled."""
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


@contextmanager
def bar(description: str, total: int | None) -> Iterator[_Bar]:
    console = Console(stderr=True)
    if not _enabled or not console.is_terminal:
        yield _Bar(None, None)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as p:
        yield _Bar(p, p.add_task(description, total=total))
