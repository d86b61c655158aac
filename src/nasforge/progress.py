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


#: the phases the API is in (search, retrain, train), innermost last: [(name, epochs or None)]
_phases: list[tuple[str, int | None]] = []


@contextmanager
def phase(name: str, epochs: int | None = None, detail: str = "") -> Iterator[None]:
    """The API's phase (``search``, ``retrain``, ``train``) with its epoch total: progress lines and bars say
    which phase, stage and epoch of how many they are at. Off a terminal, one line when the phase starts
    (a first epoch can take minutes). Event bars (evolution candidates) are closed when it ends."""
    _phases.append((name, epochs))
    if _enabled and not is_terminal():
        total = f"{epochs} epoch(s)" if epochs else ""
        what = ", ".join(x for x in (total, detail) if x)
        print(f"{name}: started" + (f" ({what})" if what else ""), file=sys.stderr, flush=True)
    try:
        yield
    finally:
        _close_event_bars()
        _phases.pop()


def _phase_label() -> str:
    return _phases[-1][0] if _phases else ""


@contextmanager
def bar(description: str, total: int | None) -> Iterator[_Bar]:
    """A bar on a terminal (nested in the one already shown, if any); a no-op elsewhere. The description is
    prefixed with the API's phase (see :func:`phase`) unless it names it already."""
    global _active
    label = _phase_label()
    if label and not description.startswith(label):
        description = f"{label}: {description}"
    if not _enabled or not is_terminal():
        yield _Bar(None, None)
        return
    if _active is not None:
        outer = _active  # the display this bar is a task of, even if another bar ends the display first
        task = outer.add_task(description, total=total)
        try:
            yield _Bar(outer, task)
        finally:
            if task in outer.task_ids:
                outer.remove_task(task)
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


_events: dict[str, dict] = {}  # open evolution-candidate bars / counters, by (phase, stage)


def _close_event_bars() -> None:
    for ev in _events.values():
        if ev.get("cm") is not None:
            ev["cm"].__exit__(None, None, None)
    _events.clear()


def _where(record: dict, run_path=None) -> str:
    """'retrain stage 2 ' / 'search stage 1 ' / '': the phase, and the stage of a staged run (a record's
    ``stage``, or a stage sub-run folder ``stageN`` of binary training)."""
    parts = [_phase_label()] if _phase_label() else []
    stage = record.get("stage")
    if stage is None and run_path is not None:
        name = getattr(run_path, "name", "")
        if name.startswith("stage") and name[5:].isdigit():
            stage = int(name[5:])
    if stage is not None:
        parts.append(f"stage {stage}")
    return " ".join(parts)


def _candidate(record: dict, where: str) -> None:
    """An evolution candidate: a counting bar on a terminal; off a terminal a line every 10th candidate."""
    if where not in _events:  # a new stage's evolution: the previous one's bar is done
        _close_event_bars()
    ev = _events.setdefault(where, {"n": 0, "best": None, "cm": None, "bar": None})
    ev["n"] += 1
    score = next((record[k] for k in ("accuracy", "fitness", "score") if isinstance(record.get(k), (int, float))), None)
    if score is not None and (ev["best"] is None or score > ev["best"]):
        ev["best"] = score
    best = f", best {ev['best']:.4g}" if ev["best"] is not None else ""
    text = f"{where + ' ' if where else ''}evolution: candidate {ev['n']}{best}"
    if is_terminal():
        if ev["cm"] is None:
            ev["cm"] = bar(text, None)
            ev["bar"] = ev["cm"].__enter__()
        ev["bar"].update(text)
        ev["bar"].advance()
    elif ev["n"] == 1 or ev["n"] % 10 == 0:
        print(text, file=sys.stderr, flush=True)


def line(record: dict, run_path=None) -> None:
    """Progress of one metrics record (and not with --quiet): off a terminal one plain line per `epoch` or
    `trial` event, saying the phase, stage and epoch of how many; evolution `candidate` events count on a
    bar (terminal) or every 10th in a line. `run_path`: the run directory that logged it (stage sub-runs)."""
    event = record.get("event")
    if not _enabled or event not in ("epoch", "trial", "candidate"):
        return
    where = _where(record, run_path)
    if event == "candidate":
        _candidate(record, where)
        return
    if is_terminal():
        return
    if event == "epoch":
        total = _phases[-1][1] if _phases and "stage" not in where else None
        head = f"epoch {record.get('epoch')}" + (f" of {total}" if total else "")
        head = f"{where} {head}" if where else head
        if record.get("partial"):
            head += " (cut by --seconds)"
    else:
        head = f"trial {record.get('trial', '')}".rstrip()
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


def note(text: str) -> None:
    """One line ``note: ...`` on stderr (shown with --quiet too): a fact about the command, not a problem."""
    print(f"note: {text}", file=sys.stderr, flush=True)
