"""The SQLite trial journal: keys, status transitions, persistence, crash safety."""
from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nasforge.errors import ConfigError, UserError
from nasforge.runs.journal import TrialJournal, spec_key
from nasforge.runs.store import RunDir


def test_key_is_canonical_and_add_is_idempotent(tmp_path):
    a = {"arch": [1, 2, 3], "train": {"epochs": 2, "lr": 0.1}, "seed": 3}
    b = {"seed": 3, "train": {"lr": 0.1, "epochs": 2}, "arch": [1, 2, 3]}  # same trial, other key order
    c = {**a, "seed": 4}
    assert spec_key(a) == spec_key(b) != spec_key(c)
    with TrialJournal(tmp_path / "trials.sqlite") as j:
        t1, t2, t3 = j.add(a), j.add(b), j.add(c)
        assert t1.key == t2.key == spec_key(a) and t3.key != t1.key
        assert len(j) == 2 and t1.status == "pending" and t1.attempts == 0 and t1.spec == a
        j.mark_done(t1.key, {"score": 0.9})
        assert j.add(b).status == "done"  # adding again never resets a finished trial


def test_numpy_values_in_spec_are_plain_json(tmp_path):
    with TrialJournal(tmp_path) as j:
        t = j.add({"arch": np.array([1, 2]), "seed": np.int64(3)})
        assert t.spec == {"arch": [1, 2], "seed": 3} and t.key == spec_key({"arch": [1, 2], "seed": 3})


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": math.nan}, [1, 2]])
def test_non_json_spec_is_a_config_error(tmp_path, bad):
    with TrialJournal(tmp_path) as j, pytest.raises(ConfigError, match="spec"):
        j.add(bad)


def test_status_transitions(tmp_path):
    with TrialJournal(tmp_path) as j:
        key = j.add({"x": 1}).key
        j.mark_running(key, worker="host:1")
        t = j.get(key)
        assert (t.status, t.attempts, t.worker, t.seconds) == ("running", 1, "host:1", None)
        j.mark_pending(key, error="RuntimeError: flaky")  # an attempt that will be retried
        assert j.get(key).status == "pending" and j.get(key).error == "RuntimeError: flaky"
        j.mark_running(key)
        j.mark_done(key, {"score": 2.5, "acc": np.float32(0.5)}, worker="host:2")
        t = j.get(key)
        assert t.status == "done" and t.attempts == 2 and t.result == {"score": 2.5, "acc": 0.5}
        assert t.error is None and t.worker == "host:2" and t.seconds is not None and t.seconds >= 0

        other = j.add({"x": 2}).key
        j.mark_running(other)
        j.mark_failed(other, "ValueError: boom\n\nTraceback ...")
        assert j.get(other).status == "failed" and j.get(other).error.startswith("ValueError: boom")
        assert j.counts() == {"pending": 0, "running": 0, "done": 1, "failed": 1}
        assert [t.key for t in j.done()] == [key] and [t.key for t in j.all()] == [key, other]

        assert j.reset_failed() == 1 and j.get(other).status == "pending"
        assert j.get("nope") is None
        with pytest.raises(KeyError):
            j.mark_done("nope", {"score": 1.0})


def test_nan_score_survives(tmp_path):
    with TrialJournal(tmp_path) as j:
        key = j.add({"x": 1}).key
        j.mark_done(key, {"score": float("nan")})
        assert math.isnan(j.get(key).result["score"])


def test_persists_across_reopen_and_accepts_a_run_dir(tmp_path):
    run = RunDir.create(tmp_path, "search", {"strategy": "random"})
    with TrialJournal(run) as j:
        key = j.add({"x": 1}).key
        j.mark_running(key)
        j.mark_done(key, {"score": 1.0})
        j.add({"x": 2})
    assert (run.path / "trials.sqlite").is_file()
    with TrialJournal(run.path / "trials.sqlite") as j:
        assert j.get(key).result == {"score": 1.0} and j.counts()["pending"] == 1
        assert j._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_in_memory_journal():
    with TrialJournal(":memory:") as j:
        assert j.add({"x": 1}).status == "pending"


def test_reader_sees_commits_while_writer_is_open(tmp_path):
    with TrialJournal(tmp_path) as writer, TrialJournal(tmp_path) as reader:
        key = writer.add({"x": 1}).key
        writer.mark_done(key, {"score": 3.0})
        assert reader.get(key).status == "done"


def test_running_trial_survives_driver_death(tmp_path):
    """A driver killed mid-trial (no close, no cleanup) leaves a readable journal with the trial `running`."""
    script = textwrap.dedent(f"""
        import os
        from nasforge.runs.journal import TrialJournal
        j = TrialJournal({str(tmp_path)!r})
        done = j.add({{"x": 1}}).key
        j.mark_running(done)
        j.mark_done(done, {{"score": 1.0}})
        j.mark_running(j.add({{"x": 2}}).key)
        os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    with TrialJournal(tmp_path) as j:
        assert j.counts() == {"pending": 0, "running": 1, "done": 1, "failed": 0}
        assert j.get(spec_key({"x": 1})).result == {"score": 1.0}
    # that the running trial is then re-run is tested in test_executors (test_driver_death_then_resume)


def test_corrupt_or_misplaced_file_is_a_user_error(tmp_path):
    bad = tmp_path / "trials.sqlite"
    bad.write_bytes(b"this is not a database, just bytes " * 100)
    with pytest.raises(UserError, match="not a usable SQLite database"):
        TrialJournal(bad)
    with pytest.raises(UserError, match="does not exist"):
        TrialJournal(tmp_path / "missing" / "trials.sqlite")


def test_schema_rejects_unknown_status(tmp_path):
    with TrialJournal(tmp_path) as j:
        key = j.add({"x": 1}).key
        with pytest.raises(sqlite3.IntegrityError):
            j._update(key, "status = ?", ("bogus",))
        assert j.get(key).status == "pending"  # the failed transaction rolled back
