"""Executors: ordered results, retries, failures, configuration errors, and resume without re-running.

Trial functions live in tests/executor_trials.py and are passed as "executor_trials:counting_trial". Every
execution of a trial appends a line to a counter file in tmp_path, so "was it run again?" is counted, not assumed.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # pytest normally does this (tests/ is not a package); do not depend on it
    sys.path.insert(0, str(HERE))

from executor_trials import runs  # noqa: E402

from nasforge.errors import ConfigError, UserError  # noqa: E402
from nasforge.registry import EXECUTORS  # noqa: E402
from nasforge.runs.executors import LocalExecutor, RayExecutor, make_executor  # noqa: E402
from nasforge.runs.journal import TrialJournal, spec_key  # noqa: E402

FN = "executor_trials:counting_trial"


def specs(log_dir: Path, *modes: str, first: int = 0) -> list[dict]:
    return [{"name": f"t{first + i}", "x": first + i, "mode": m, "log_dir": str(log_dir)} for i, m in enumerate(modes)]


# -- registry and construction --------------------------------------------------------------------------
def test_make_executor_via_registry():
    assert {"local", "ray"} <= set(EXECUTORS.names())
    ex = make_executor("local", threads=1)
    assert isinstance(ex, LocalExecutor) and ex.threads == 1
    ray_ex = make_executor("ray", workers=2, threads_per_worker=1)
    assert isinstance(ray_ex, RayExecutor) and ray_ex._ray is None  # nothing started until the first run
    with pytest.raises(ConfigError, match="unknown executor 'dask'; choose from: local, ray"):
        make_executor("dask")
    with pytest.raises(ConfigError, match="unknown option.*'workers'.*valid: threads"):
        make_executor("local", workers=2)
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        make_executor("ray", workers=0)


def test_importing_executors_does_not_import_ray():
    code = "import sys, nasforge.runs.executors; assert 'ray' not in sys.modules, 'ray was imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_missing_ray_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    message = r"ray is not installed; pip install 'nasforge\[ray\]'"
    with TrialJournal(tmp_path) as j, pytest.raises(UserError, match=message):
        RayExecutor(workers=1).run(specs(tmp_path, "ok"), FN, j)


def test_bad_trial_function_path(tmp_path):
    with TrialJournal(tmp_path) as j:
        for fn, match in [("executor_trials.counting_trial", "must be written"),
                          ("no_such_module_xyz:f", "cannot import"),
                          ("executor_trials:nope", "has no function 'nope'")]:
            with pytest.raises(ConfigError, match=match):
                LocalExecutor().run(specs(tmp_path, "ok"), fn, j)
        assert len(j) == 0  # failed before recording anything


# -- local executor -------------------------------------------------------------------------------------
def test_results_in_order_duplicates_once_and_progress(tmp_path):
    batch = specs(tmp_path, "ok", "ok", "ok")
    order = [batch[2], batch[0], batch[2], batch[1]]
    seen = []
    before = torch.get_num_threads()
    with TrialJournal(tmp_path) as j:
        record = lambda trial, n, total: seen.append((trial.key, n, total))  # noqa: E731
        results = LocalExecutor(threads=1).run(order, FN, j, progress=record)
        assert [r["score"] for r in results] == [4.0, 0.0, 4.0, 1.0]
        assert all(r["threads"] == 1 == r["torch_threads"] for r in results)
        assert torch.get_num_threads() == before  # the driver's setting is restored
        assert [runs(tmp_path, s["name"]) for s in batch] == [1, 1, 1]  # the duplicate ran once
        assert [n for _, n, _ in seen] == [1, 2, 3] and {total for *_, total in seen} == {3}
        assert j.counts()["done"] == 3 and all(t.worker for t in j.done())
        # the same batch again: everything comes from the journal, nothing runs, no progress events
        assert LocalExecutor().run(order, FN, j, progress=lambda *a: seen.append(a)) == results
        assert [runs(tmp_path, s["name"]) for s in batch] == [1, 1, 1] and len(seen) == 3


def test_crashing_trial_is_retried_then_recorded_failed_and_run_continues(tmp_path):
    batch = specs(tmp_path, "raise_once", "raise", "ok")
    with TrialJournal(tmp_path) as j:
        results = LocalExecutor().run(batch, FN, j, max_retries=2)
        assert results[0]["score"] == 0.0 and results[2]["score"] == 4.0
        assert results[1] == {"score": None, "error": "RuntimeError: trial t1 broke on attempt 3"}
        assert [runs(tmp_path, s["name"]) for s in batch] == [2, 3, 1]  # 1 retry; 1 + max_retries attempts; 1
        failed = j.get(spec_key(batch[1]))
        assert failed.status == "failed" and failed.attempts == 3 and "Traceback" in failed.error
        assert j.get(spec_key(batch[0])).attempts == 2
        # failed is final: a repeat returns the same failure without running it
        assert LocalExecutor().run(batch, FN, j) == results and runs(tmp_path, "t1") == 3
        # unless the user asks for failed trials to be tried again
        assert j.reset_failed() == 1
        LocalExecutor().run(batch, FN, j, max_retries=0)
        assert runs(tmp_path, "t1") == 4


def test_user_error_is_not_retried(tmp_path):
    batch = specs(tmp_path, "ok", "user_error", "ok")
    with TrialJournal(tmp_path) as j:
        with pytest.raises(UserError, match="dataset 'nope' not found"):
            LocalExecutor().run(batch, FN, j, max_retries=5)
        assert [runs(tmp_path, s["name"]) for s in batch] == [1, 1, 0]
        assert [t.status for t in j.all()] == ["done", "pending", "pending"]  # kept for a run after the fix
        assert "nope" in j.get(spec_key(batch[1])).error


def test_invalid_result_is_a_config_error(tmp_path):
    with TrialJournal(tmp_path) as j, pytest.raises(ConfigError, match="must return a dict with a numeric 'score'"):
        LocalExecutor().run(specs(tmp_path, "bad_result"), FN, j)
    assert runs(tmp_path, "t0") == 1


def test_resume_runs_no_finished_trial_again(tmp_path):
    path = tmp_path / "trials.sqlite"
    batch = specs(tmp_path, *["ok"] * 6)
    with TrialJournal(path) as j:
        first = LocalExecutor().run(batch[:3], FN, j)
    with TrialJournal(path) as j:  # a new driver: new executor, journal reopened from the file
        results = LocalExecutor().run(batch, FN, j)
    assert results[:3] == first
    assert [r["score"] for r in results] == [float(i * i) for i in range(6)]
    assert [runs(tmp_path, s["name"]) for s in batch] == [1] * 6


def test_driver_death_then_resume(tmp_path):
    """The driver process dies inside a trial (os._exit): on resume that trial runs again, finished ones do not."""
    path = tmp_path / "trials.sqlite"
    batch = specs(tmp_path, "ok", "exit_once", "ok")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from nasforge.runs.executors import LocalExecutor
        from nasforge.runs.journal import TrialJournal
        LocalExecutor(threads=1).run({batch!r}, {FN!r}, TrialJournal({str(path)!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 13, proc.stderr
    with TrialJournal(path) as j:
        assert [t.status for t in j.all()] == ["done", "running", "pending"]
        results = LocalExecutor().run(batch, FN, j)
        assert [r["score"] for r in results] == [0.0, 1.0, 4.0]
        assert [runs(tmp_path, s["name"]) for s in batch] == [1, 2, 1]
        assert j.get(spec_key(batch[1])).attempts == 2


# -- Ray executor ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray")
    # one local Ray instance for the module: starting Ray costs ~5 s
    with RayExecutor(workers=2) as ex:
        yield ex


def test_ray_retries_worker_crash_and_resume_reruns_nothing(tmp_path, ray_executor):
    path = tmp_path / "trials.sqlite"
    batch = specs(tmp_path, "ok", "exit_once", "raise_once", "ok", "ok", "raise")
    with TrialJournal(path) as j:
        first = ray_executor.run(batch[:4], FN, j, max_retries=1)
        assert [r["score"] for r in first] == [0.0, 1.0, 4.0, 9.0]
        assert [runs(tmp_path, s["name"]) for s in batch[:4]] == [1, 2, 2, 1]  # the dead worker's trial re-ran
        crashed = j.get(spec_key(batch[1]))
        assert crashed.attempts == 2 and crashed.status == "done" and crashed.worker not in (None, "ray")
        assert all(r["threads"] == r["torch_threads"] == ray_executor.threads_per_worker for r in first)
    with TrialJournal(path) as j:  # resume with a new journal object on the same file
        results = ray_executor.run(batch, FN, j, max_retries=1)
        assert results[:4] == first and results[4]["score"] == 16.0
        assert results[5]["score"] is None and "RuntimeError: trial t5 broke" in results[5]["error"]
        assert [runs(tmp_path, s["name"]) for s in batch] == [1, 2, 2, 1, 1, 2]
        assert j.counts() == {"pending": 0, "running": 0, "done": 5, "failed": 1}


def test_ray_user_error_is_not_retried(tmp_path, ray_executor):
    batch = specs(tmp_path, "user_error")
    with TrialJournal(tmp_path) as j:
        with pytest.raises(UserError, match="dataset 'nope' not found"):
            ray_executor.run(batch, FN, j, max_retries=3)
        assert runs(tmp_path, "t0") == 1 and j.counts()["running"] == 0


# -- a deadline (--seconds): no trial starts once stop() is true; the running ones finish -----------------
@pytest.mark.parametrize("kind", ["local", "ray"])
def test_no_trial_starts_after_stop(tmp_path, kind, request):
    executor = LocalExecutor(threads=1) if kind == "local" else request.getfixturevalue("ray_executor")
    batch = specs(tmp_path, *["ok"] * 6)
    finished = []
    with TrialJournal(tmp_path) as j:
        results = executor.run(batch, FN, j, progress=lambda t, n, total: finished.append(t.key),
                               stop=lambda: len(finished) >= 2)
        started = [runs(tmp_path, s["name"]) for s in batch]
        assert set(started) <= {0, 1} and 2 <= sum(started) < 6  # ray: the second worker's trial may be running
        for s, r, n in zip(batch, results, started):
            t = j.get(spec_key(s))
            if n:  # started before the deadline: finished and recorded
                assert t.status == "done" and r["score"] == float(s["x"]) ** 2
            else:  # never started: no result, pending for a resume
                assert r is None and t.status == "pending" and t.attempts == 0
        if kind == "local":
            assert started == [1, 1, 0, 0, 0, 0]
        assert j.counts()["running"] == 0


def test_a_trial_cut_at_the_deadline_stays_pending(tmp_path):
    """A local trial that finds the deadline passed between its epochs (TrialCut) is left pending, unscored."""
    from nasforge.estimators.scratch import _cut_at_deadline
    from nasforge.runs import executors

    marker = tmp_path / "deadline"
    batch = [{**s, "marker": str(marker)} for s in specs(tmp_path, "ok", "cut", "ok")]
    with TrialJournal(tmp_path) as j:
        results = LocalExecutor(threads=1).run(batch, "executor_trials:deadline_trial", j, stop=marker.exists)
        assert results[0]["score"] == 0.0 and results[1] is None and results[2] is None
        cut, later = j.get(spec_key(batch[1])), j.get(spec_key(batch[2]))
        assert cut.status == "pending" and cut.attempts == 1 and "deadline" in cut.error
        assert later.status == "pending" and later.attempts == 0 and runs(tmp_path, "t2") == 0
    # the scratch estimator's check between epochs: only with epochs left, only past the deadline
    token = executors._DEADLINE.set(lambda: True)
    try:
        with pytest.raises(executors.TrialCut, match="cut after epoch 1 of 3"):
            _cut_at_deadline({"epoch": 1}, 3)
        _cut_at_deadline({"epoch": 3}, 3)  # the last epoch is done: the trial is scored
    finally:
        executors._DEADLINE.reset(token)
    _cut_at_deadline({"epoch": 1}, 3)  # no deadline outside an executor's trial
