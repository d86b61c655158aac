"""Reading a run directory for reports: whatever it holds so far, finished or not, of any method.

Files read (all optional but ``config.json``): ``metrics.jsonl`` (``event: epoch`` and ``event: trial``
records), ``result.json``, ``search.json`` (the search's own result, written before retraining),
``arch.json``, ``cost.json``, ``trials.sqlite`` (the multi-trial journal, for runs still in progress),
``*/metrics.jsonl`` of sub-runs (retraining, training stages), any other ``*.json`` and ``*.png`` a method
writes (e.g. ``pareto_<device>.json``). Nothing is written.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

#: files every run may hold; any other *.json in the run directory is a method's own output
STANDARD_FILES = {"config.json", "result.json", "search.json", "arch.json", "cost.json"}
#: metrics.jsonl events that record one evaluated architecture, and the fields that may hold its score
TRIAL_EVENTS = ("trial", "candidate")
SCORE_KEYS = ("score", "fitness", "accuracy")


def _read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # absent, or being written right now: a report shows what exists


def _unreadable(path: Path) -> str | None:
    """Why an existing JSON file cannot be read (one line), or None when it is absent or reads as an object.
    The run directory writes its JSON files atomically, so a file that exists and does not parse is damaged
    (cut short by a full disk, edited by hand), not half-written."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError:
        return f"{path} is not text"
    except json.JSONDecodeError as e:
        return f"{path} is not valid JSON ({e.msg} at line {e.lineno})"
    except OSError as e:
        return f"{path} cannot be read ({e.strerror or type(e).__name__})"
    return None if isinstance(data, dict) else f"{path} holds a JSON {type(data).__name__}, not an object"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash or still being written
        if isinstance(rec, dict):
            out.append(rec)
    return out


@dataclass
class Trial:
    """One evaluated architecture of a multi-trial search, in evaluation order."""

    index: int
    arch: Any
    score: float | None
    time: float | None  # unix seconds when its result was recorded
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunView:
    """What a run directory holds, read once. ``result`` is None while the run is in progress."""

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    result: dict[str, Any] | None
    search: dict[str, Any] | None
    arch_file: dict[str, Any] | None
    cost: dict[str, Any] | None
    sub_runs: dict[str, list[dict[str, Any]]]
    extra_json: dict[str, Any]
    images: list[Path]
    trials: list[Trial]
    problems: list[str] = field(default_factory=list)  # damaged standard files, one line each (report/compare print them)

    # -- reading ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path) -> "RunView":
        """Read `path`. Raises UserError (one line) for a missing path, a file, a folder that is not a
        nasforge run directory (no config.json, e.g. an empty folder) or an unreadable config."""
        p = Path(path)
        if not p.exists():
            raise UserError(f"run directory {p} not found")
        if not p.is_dir():
            raise UserError(f"{p} is not a directory; give a run directory (runs/<command>-<time>/)")
        if not (p / "config.json").is_file():
            what = "an empty folder" if not any(p.iterdir()) else "no config.json"
            raise UserError(f"{p} is not a nasforge run directory ({what})")
        config = _read_json(p / "config.json")
        if not isinstance(config, dict):
            raise UserError(f"{p / 'config.json'} is not a readable JSON object")
        metrics = _read_jsonl(p / "metrics.jsonl")
        result = _read_json(p / "result.json")
        result = result if isinstance(result, dict) else None
        search = _read_json(p / "search.json")
        sub_runs = {}  # retraining, training stages (retrain/stage1, ...): two levels down at most
        for f in sorted(p.glob("*/metrics.jsonl")) + sorted(p.glob("*/*/metrics.jsonl")):
            recs = _read_jsonl(f)
            if recs:
                sub_runs[f.parent.relative_to(p).as_posix()] = recs
        extra = {}
        for f in sorted(p.glob("*.json")):
            if f.name not in STANDARD_FILES:
                data = _read_json(f)
                if data is not None:
                    extra[f.name] = data
        view = cls(path=p, config=config, metrics=metrics, result=result,
                   search=search if isinstance(search, dict) else None,
                   arch_file=_read_json(p / "arch.json"), cost=_read_json(p / "cost.json"), sub_runs=sub_runs,
                   extra_json=extra, images=sorted(p.glob("*.png")), trials=[])
        view.trials = view._trials()
        for name, what in (("result.json", "the run is shown as unfinished"),
                           ("search.json", "the search's own result is not shown")):
            why = _unreadable(p / name)
            if why is not None:
                view.problems.append(f"{why}: {what}")
        return view

    def _trials(self) -> list[Trial]:
        """Evaluated architectures in order: multi-trial searches log ``event: trial`` (with ``score``),
        the selection phase of one-shot searches (e.g. ViTAS's evolution) ``event: candidate`` (``fitness``)."""
        recs = [m for m in self.metrics if m.get("event") in TRIAL_EVENTS]
        if not recs:
            return self._journal_trials()
        trials = [Trial(i, m.get("arch"), _score(m), _num(m.get("time")),
                        {k: v for k, v in m.items() if k not in ("arch", "time", "event", *SCORE_KEYS)})
                  for i, m in enumerate(recs)]
        # a batch of trials is logged at once; the journal knows when each one finished
        finished = {}
        for t in self._journal_trials():
            finished.setdefault(_key(t.arch), t.time)
        for t in trials:
            if finished.get(_key(t.arch)) is not None:
                t.time = finished[_key(t.arch)]
        return trials

    def _journal_trials(self) -> list[Trial]:
        """Finished trials from trials.sqlite (a search in progress logs its trials in batches)."""
        db = self.path / "trials.sqlite"
        if not db.is_file():
            return []
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
            try:
                rows = con.execute("SELECT spec, result, finished FROM trials WHERE status = 'done' "
                                   "ORDER BY finished, id").fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            return []
        out = []
        for i, (spec, res, finished) in enumerate(rows):
            spec_d, res_d = _loads(spec), _loads(res)
            out.append(Trial(i, res_d.get("arch", spec_d.get("arch")), _score(res_d), _num(finished),
                             {k: v for k, v in res_d.items() if k not in ("arch", *SCORE_KEYS)}))
        return out

    # -- what the run is -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def command(self) -> str:
        return str(self.config.get("command", "?"))

    @property
    def started(self) -> float | None:
        """Unix time the run directory was created (its config.json is written once, then)."""
        try:
            return (self.path / "config.json").stat().st_mtime
        except OSError:
            return None

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def method(self) -> str:
        if self.command == "train":
            return "train"
        return str((self.result or {}).get("method") or self.config.get("method") or "?")

    @property
    def space(self) -> str | None:
        for src in (self.result, self.arch_file):
            if isinstance(src, dict) and src.get("space"):
                return str(src["space"])
        if self.command == "search":
            return self.config.get("space")
        arch = self.config.get("arch")
        return arch.get("space") if isinstance(arch, dict) else None

    @property
    def seed(self) -> Any:
        if self.result and "seed" in self.result:
            return self.result["seed"]
        if self.command == "train":
            return (self.config.get("train") or {}).get("seed", self.config.get("seed"))
        return self.config.get("seed")

    @property
    def epochs(self) -> list[dict[str, Any]]:
        """The per-epoch records of the search (or of training, for a train run)."""
        return [m for m in self.metrics if m.get("event") == "epoch"]

    @property
    def is_one_shot(self) -> bool:
        return any("alpha_softmax" in e for e in self.epochs)

    def arch(self) -> tuple[Any, str] | None:
        """The architecture to show and where it came from: the final one, else the latest derived (one-shot),
        else the best trial so far (multi-trial). None when the run holds none yet (or is a fixed model)."""
        if self.result and "arch" in self.result:
            return self.result["arch"], "found architecture"
        if self.search and "arch" in self.search:
            return self.search["arch"], "found architecture (search finished)"
        if isinstance(self.arch_file, dict) and "arch" in self.arch_file:
            return self.arch_file["arch"], "found architecture"
        derived = [e["arch"] for e in self.epochs if e.get("arch") is not None]
        if derived:
            return derived[-1], f"derived after epoch {len(derived)} (search in progress)"
        scored = [t for t in self.trials if t.score is not None and t.arch is not None]
        if scored:
            best = max(scored, key=lambda t: t.score)
            return best.arch, f"best of {len(scored)} trials so far (search in progress)"
        return None

    def space_config(self) -> dict[str, Any]:
        for src in (self.result, self.arch_file):
            if isinstance(src, dict) and isinstance(src.get("space_config"), dict):
                return src["space_config"]
        if self.command == "search":
            return {"space": self.config.get("space"), **(self.config.get("space_options") or {})}
        return {}

    def op_names(self) -> list[str] | None:
        """Names of the ops indexing each alpha row, when the run recorded them."""
        for src in ([self.search.get("metrics")] if self.search else []) + self.epochs[::-1]:
            if isinstance(src, dict) and isinstance(src.get("op_names"), list):
                return [str(o) for o in src["op_names"]]
        return None

    def table_dataset(self) -> str:
        return str(self.config.get("table_dataset") or "cifar10")

    def final_cost(self) -> dict[str, Any] | None:
        if self.result and isinstance(self.result.get("cost"), dict):
            return self.result["cost"]
        return self.cost if isinstance(self.cost, dict) else None

    def search_cost(self) -> dict[str, Any] | None:
        for src in (self.result and self.result.get("search"), self.search):
            if isinstance(src, dict) and isinstance(src.get("search_cost"), dict):
                return src["search_cost"]
        return self.final_cost() if self.command == "search" and not self.finished else None


def _key(arch: Any) -> str:
    return json.dumps(arch, sort_keys=True)


def _score(rec: dict[str, Any]) -> float | None:
    for k in SCORE_KEYS:
        if _num(rec.get(k)) is not None:
            return _num(rec[k])
    return None


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _loads(text: str | None) -> dict[str, Any]:
    try:
        d = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return d if isinstance(d, dict) else {}
