"""Trial functions for the executor tests, passed as ``"executor_trials:<name>"``.

This is a plain module, not a test file: pytest puts tests/ on ``sys.path`` (tests/ is not a package), and
the Ray executor hands the driver's ``sys.path`` to its workers, so Ray workers import it too.

Each trial appends a line to ``<spec["log_dir"]>/<spec["name"]>.runs`` *before* doing anything else, so a
test can count how many times a trial really executed, whichever process ran it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from nasforge.errors import UserError


def runs(log_dir: str | Path, name: str) -> int:
    """How many times trial `name` started."""
    log = Path(log_dir) / f"{name}.runs"
    return len(log.read_text().splitlines()) if log.exists() else 0


def counting_trial(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """spec["mode"]: ok | raise | raise_once | exit_once | user_error | bad_result."""
    log = Path(spec["log_dir"]) / f"{spec['name']}.runs"
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    attempt = runs(spec["log_dir"], spec["name"])
    mode = spec.get("mode", "ok")
    if mode == "raise" or (mode == "raise_once" and attempt == 1):
        raise RuntimeError(f"trial {spec['name']} broke on attempt {attempt}")
    if mode == "exit_once" and attempt == 1:
        os._exit(13)  # the process running the trial dies without cleanup (a Ray worker, or the driver)
    if mode == "user_error":
        raise UserError(f"trial {spec['name']}: dataset 'nope' not found")
    if mode == "bad_result":
        return {"accuracy": 0.5}
    return {
        "score": float(spec["x"]) ** 2,
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }


def deadline_trial(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """Like counting_trial; mode "cut": passes the search's deadline itself (creates spec["marker"], which the
    test's stop() looks for), then asks `past_deadline` as a trial does between epochs and stops."""
    from nasforge.runs.executors import TrialCut, past_deadline

    log = Path(spec["log_dir"]) / f"{spec['name']}.runs"
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    if spec.get("mode") == "cut":
        Path(spec["marker"]).touch()
        if past_deadline():
            raise TrialCut("deadline")
    return {"score": float(spec["x"]) ** 2}
