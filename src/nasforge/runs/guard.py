"""What happens to a run directory when a run stops early: interrupts, errors, stray temp files.

`guarded(run, command, resumed)` wraps the work of a run:

- Ctrl-C (KeyboardInterrupt) becomes `RunInterrupted` (still a KeyboardInterrupt, with exit code 130) whose
  one-line message names the run directory and the command that resumes it; finished epochs and trials are in
  the checkpoint and the journal.
- Any other error that leaves nothing worth resuming (no checkpoint, no metrics, no trials) removes the
  directory the run created, so no empty run directory is left behind; otherwise the message is extended with
  the run directory.
- `clean_temp_files(run)` removes the temporary files of atomic writes that a killed process left behind
  (``.NAME.XXXX.tmp``), before a resume starts.
"""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import UserError
from .store import RunDir

#: files whose presence means a run holds work worth resuming
WORK_FILES = ("checkpoint.pt", "metrics.jsonl", "trials.sqlite", "search.json", "result.json", "retrain")


class RunInterrupted(KeyboardInterrupt):
    """The user interrupted a run (Ctrl-C); its run directory can be resumed. A KeyboardInterrupt (so code
    that catches Ctrl-C still does), carrying the run directory and a one-line message."""

    exit_code = 130

    def __init__(self, run_dir: Path, command: str) -> None:
        self.run_dir = Path(run_dir)
        super().__init__(f"interrupted; resume with: nasforge {command} --resume {self.run_dir.resolve()}")


def has_work(path: Path) -> bool:
    """Whether the run directory holds anything a resume would reuse."""
    return any((path / name).exists() for name in WORK_FILES)


def clean_temp_files(run: RunDir) -> list[Path]:
    """Remove leftovers of interrupted atomic writes (``.<name>.<random>.tmp``) in the run directory."""
    removed = []
    for p in list(run.path.glob(".*.tmp")) + list(run.path.glob("*/.*.tmp")):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


@contextmanager
def guarded(run: RunDir, command: str, resumed: bool) -> Iterator[RunDir]:
    """Run the body; on Ctrl-C raise RunInterrupted, on an error remove the run directory if it holds no work."""
    try:
        yield run
    except RunInterrupted:
        raise
    except KeyboardInterrupt:
        raise RunInterrupted(run.path, command) from None
    except BaseException as e:
        if not resumed and run.path.is_dir() and not has_work(run.path):
            shutil.rmtree(run.path, ignore_errors=True)
        elif isinstance(e, UserError) and str(run.path) not in str(e):
            e.args = (f"{e.args[0] if e.args else e}; run directory {run.path.resolve()}",)
        raise
