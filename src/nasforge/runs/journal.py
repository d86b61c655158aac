"""The trial journal: one SQLite file (``trials.sqlite`` in the run directory) recording every trial.

A *trial* is one architecture to evaluate, described by a plain-JSON ``spec``. Its ``key`` is a hash of
the spec's canonical JSON (sorted keys), so when a resumed search proposes the same trial again the journal
recognises it and the executor returns the stored result instead of training again.

Statuses: ``pending`` (known, not started) -> ``running`` -> ``done`` | ``failed``. Every write is one
transaction and the database runs in WAL mode, so killing the driver at any moment leaves the journal
consistent: a trial it left ``running`` simply was not finished, and executors run it again on resume.

A second table, ``rungs``, holds the decisions of a multi-fidelity scheduler (successive halving,
Hyperband, ASHA): one row per finished trial, in the order the scheduler took it into account, with its rung
and score. Promotions are a function of that sequence, so a resumed search replays it and makes exactly the
same promotions, even where trials finished in an order no rerun would repeat (parallel workers).
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UserError
from ..utils import to_jsonable
from .store import RunDir

STATUSES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    id       INTEGER PRIMARY KEY,
    key      TEXT UNIQUE NOT NULL,
    spec     TEXT NOT NULL,
    status   TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    result   TEXT,
    error    TEXT,
    started  REAL,
    finished REAL,
    worker   TEXT
);
CREATE TABLE IF NOT EXISTS rungs (
    seq       INTEGER PRIMARY KEY,
    job       INTEGER UNIQUE NOT NULL,
    rung      INTEGER NOT NULL,
    trial_key TEXT NOT NULL,
    score     REAL,
    record    TEXT NOT NULL
)
"""


def canonical_json(spec: dict[str, Any]) -> str:
    """The one JSON text of a spec: sorted keys, no whitespace, numpy scalars and paths made plain."""
    if not isinstance(spec, dict):
        raise ConfigError(f"a trial spec must be a JSON object (dict), got {type(spec).__name__}")
    try:
        return json.dumps(to_jsonable(spec), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"trial spec is not plain JSON ({e}): {spec!r:.200}") from None


#: spec keys that say where a trial runs, not what it computes: left out of the key, so a search resumed on
#: another device (``--resume RUN --device cpu``) still finds the trials it finished
PLACEMENT_KEYS = ("device",)


def spec_key(spec: dict[str, Any]) -> str:
    """Deterministic key of a spec: the same trial proposed again, even after a restart, has the same key."""
    return _hash(canonical_json({k: v for k, v in spec.items() if k not in PLACEMENT_KEYS}))


def _hash(canonical: str) -> str:
    # 16 hex digits = 64 bits: a collision becomes likely only after ~4e9 trials
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class Trial:
    key: str
    spec: dict[str, Any]
    status: str
    attempts: int
    result: dict[str, Any] | None
    error: str | None
    seconds: float | None  # wall time of the last attempt, once it finished
    worker: str | None = None


class TrialJournal:
    """SQLite-backed record of trials. ``path`` is the ``.sqlite`` file, a run directory (a ``RunDir`` or a
    folder, meaning ``<dir>/trials.sqlite``), or ``":memory:"`` for a throw-away journal.

    The driver alone writes to it (workers return results to the driver), so one connection suffices; WAL lets
    another process (e.g. a status command) read while a search writes. Run one driver per journal at a time:
    a trial that another live driver is running looks the same as one that a dead driver left behind.
    """

    FILENAME = "trials.sqlite"

    def __init__(self, path: str | Path | RunDir) -> None:
        if isinstance(path, RunDir):
            path = path.path / self.FILENAME
        elif str(path) != ":memory:" and Path(path).is_dir():
            path = Path(path) / self.FILENAME
        self.path = path
        if str(path) != ":memory:" and not Path(path).parent.is_dir():
            raise UserError(f"cannot open trial journal {path}: folder {Path(path).parent} does not exist")
        try:
            # timeout: wait for a reader's lock instead of failing at once
            self._conn = sqlite3.connect(str(path), timeout=30.0)
            # WAL: a commit is atomic and readers never block the writer. synchronous=NORMAL is safe against a
            # killed process (a power cut may lose the last commits, never corrupt the file).
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            with self._conn:
                self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise UserError(
                f"trial journal {path} is not a usable SQLite database ({e}); move it away to start the search afresh"
            ) from None

    # -- reading -------------------------------------------------------------------------------
    _COLUMNS = "key, spec, status, attempts, result, error, started, finished, worker"

    @staticmethod
    def _trial(row: tuple) -> Trial:
        key, spec, status, attempts, result, error, started, finished, worker = row
        seconds = finished - started if (started is not None and finished is not None) else None
        return Trial(
            key=key,
            spec=json.loads(spec),
            status=status,
            attempts=attempts,
            result=json.loads(result) if result is not None else None,
            error=error,
            seconds=seconds,
            worker=worker,
        )

    def get(self, key: str) -> Trial | None:
        row = self._conn.execute(f"SELECT {self._COLUMNS} FROM trials WHERE key = ?", (key,)).fetchone()
        return self._trial(row) if row else None

    def all(self) -> list[Trial]:
        """Every trial, in the order they were first added."""
        return [self._trial(r) for r in self._conn.execute(f"SELECT {self._COLUMNS} FROM trials ORDER BY id")]

    def done(self) -> list[Trial]:
        """Finished trials with a result, in the order they were first added."""
        rows = self._conn.execute(f"SELECT {self._COLUMNS} FROM trials WHERE status = 'done' ORDER BY id")
        return [self._trial(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of trials per status (every status present, zero if none)."""
        out = dict.fromkeys(STATUSES, 0)
        out.update(self._conn.execute("SELECT status, COUNT(*) FROM trials GROUP BY status").fetchall())
        return out

    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]

    # -- writing: each method is one transaction ----------------------------------------------------
    def add(self, spec: dict[str, Any]) -> Trial:
        """Record a trial as pending, or return the existing one with the same spec (idempotent)."""
        text = canonical_json(spec)
        key = spec_key(spec)
        with self._conn:
            self._conn.execute("INSERT OR IGNORE INTO trials (key, spec) VALUES (?, ?)", (key, text))
        trial = self.get(key)
        assert trial is not None
        return trial

    def _update(self, key: str, sql: str, params: tuple) -> None:
        with self._conn:
            cur = self._conn.execute(f"UPDATE trials SET {sql} WHERE key = ?", (*params, key))
        if cur.rowcount != 1:
            raise KeyError(f"no trial with key {key!r} in {self.path}")

    def mark_running(self, key: str, worker: str | None = None) -> None:
        """A new attempt starts: counts it and clears the previous attempt's outcome."""
        self._update(
            key,
            "status = 'running', attempts = attempts + 1, started = ?, finished = NULL, result = NULL, worker = ?",
            (time.time(), worker),
        )

    def mark_done(self, key: str, result: dict[str, Any], worker: str | None = None) -> None:
        # NaN scores (a diverged trial) are kept: Python's json reads them back
        text = json.dumps(to_jsonable(result))
        self._update(
            key,
            "status = 'done', result = ?, error = NULL, finished = ?, worker = COALESCE(?, worker)",
            (text, time.time(), worker),
        )

    def mark_failed(self, key: str, error: str) -> None:
        self._update(key, "status = 'failed', result = NULL, error = ?, finished = ?", (error, time.time()))

    def mark_pending(self, key: str, error: str | None = None) -> None:
        """Back to not-started: an attempt that will be retried, or one abandoned when the run stopped."""
        self._update(key, "status = 'pending', result = NULL, error = ?, finished = ?", (error, time.time()))

    def reset_failed(self) -> int:
        """Make failed trials pending so the next run tries them again (executors treat `failed` as final).
        Returns how many were reset."""
        with self._conn:
            return self._conn.execute("UPDATE trials SET status = 'pending' WHERE status = 'failed'").rowcount

    # -- multi-fidelity rung log --------------------------------------------------------------------
    def record_rung(self, record: dict[str, Any]) -> int:
        """Append one scheduler decision: `record` holds at least ``job`` (the scheduler's job number),
        ``rung``, ``trial_key`` and ``score`` (None for a failed trial). Returns its 0-based position (seq).

        Raises:
            ConfigError: the job was recorded already (two drivers on one journal, or a scheduler bug)."""
        text = json.dumps(to_jsonable(record), sort_keys=True)
        try:
            with self._conn:
                cur = self._conn.execute(
                    "INSERT INTO rungs (seq, job, rung, trial_key, score, record) VALUES "
                    "((SELECT COUNT(*) FROM rungs), ?, ?, ?, ?, ?)",
                    (int(record["job"]), int(record["rung"]), str(record["trial_key"]), record.get("score"), text))
        except sqlite3.IntegrityError:
            raise ConfigError(f"job {record['job']} is already in the rung log of {self.path}") from None
        return int(self._conn.execute("SELECT seq FROM rungs WHERE rowid = ?", (cur.lastrowid,)).fetchone()[0])

    def rung_log(self) -> list[dict[str, Any]]:
        """Every recorded scheduler decision, in decision order (each the dict given to `record_rung`)."""
        return [json.loads(r[0]) for r in self._conn.execute("SELECT record FROM rungs ORDER BY seq")]

    # -- lifetime --------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the journal. A file journal goes back to a rollback journal first, so a finished run holds
        one ``trials.sqlite`` and no ``-wal``/``-shm`` files (a read-only reader such as ``nasforge report``
        would otherwise leave them behind); it is WAL again as soon as a resumed search opens it. If another
        process holds the database right now, it stays in WAL mode (closing must not wait on a reader)."""
        if self._conn is None:
            return
        if str(self.path) != ":memory:":
            try:
                self._conn.execute("PRAGMA busy_timeout=1000")
                self._conn.execute("PRAGMA journal_mode=DELETE")  # checkpoints the WAL, then removes -wal/-shm
            except sqlite3.Error:
                pass
        self._conn.close()
        self._conn = None

    def __enter__(self) -> "TrialJournal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TrialJournal({str(self.path)!r}, {self.counts()})"
