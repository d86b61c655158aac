"""--seconds is checked at every step of every search loop (issue 9, item 12): the shared one-shot loop
(random-ws here), HURRICANE's supernet training and evolution, ViTAS' supernet training and evolution, and
the multi-trial loop (a trial is a step: none starts after the deadline; running ones finish). Each run
stops with a checkpoint that marks the stop, and a run resumed from that checkpoint (its result files
removed, as after a crash) ends with the same architecture without doing any more work."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nasforge import api
from nasforge.runs.journal import TrialJournal
from nasforge.runs.store import RunDir

from test_hurricane import TINY as MOBILE_TINY, fake_cache  # noqa: F401  (fixture)
from test_vit import SMALL as VIT_SMALL

NB201 = {"space": "nb201", "space_options": {"C": 4, "N": 1}, "dataset": "synthetic", "threads": 1}


def _records(run: Path, event: str) -> list[dict]:
    return [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if m.get("event") == event]


def _search(cfg: dict, tmp_path: Path) -> tuple[dict, Path, float]:
    t0 = time.perf_counter()
    res = api.search(cfg, run_root=tmp_path, run_name="s")
    return res, tmp_path / "s", time.perf_counter() - t0


def _resume_after_crash(run: Path, res: dict, events: tuple[str, ...]) -> dict:
    """Remove what the run wrote after its last checkpoint (as if it died there) and resume it: the
    architecture must be the same and no epoch, candidate or trial may be added."""
    before = {e: len(_records(run, e)) for e in events}
    for name in ("search.json", "result.json", "arch.json"):
        (run / name).unlink()
    again = api.search(resume=run)
    assert again["arch"] == res["arch"]
    assert {e: len(_records(run, e)) for e in events} == before
    return again


def test_one_shot_loop_stops_inside_an_epoch(tmp_path):
    cfg = {**NB201, "subset": 2000, "batch_size": 8, "method": "random-ws", "budget": {"epochs": 50, "seconds": 0.2},
           "hparams": {"hessian_every": 0, "eval_batches": 1, "candidates": 4, "top_k": 2, "rerank_batches": 1}}
    res, run, wall = _search(cfg, tmp_path)
    epochs = _records(run, "epoch")
    assert len(epochs) == 1 and epochs[0]["partial"] is True  # 125 steps an epoch; stopped inside the first
    assert res["search"]["metrics"]["stopped"] == "seconds"
    state = RunDir(run).load_checkpoint()
    assert state["stopped"] is True and state["elapsed_s"] < 0.2 + 10 and wall < 60
    _resume_after_crash(run, res, ("epoch",))


def test_hurricane_stops_in_supernet_training_and_evolution(tmp_path, fake_cache):
    cfg = {"space": "mobile", "method": "hurricane", "dataset": "synthetic", "subset": 2000, "batch_size": 8,
           "threads": 1, "budget": {"epochs": 40, "seconds": 0.2}, "space_options": dict(MOBILE_TINY),
           "hparams": {"population": 4, "sample_size": 2, "evaluations": 500, "bn_batches": 1, "eval_batches": 1,
                       "lut_cache": str(fake_cache)}}
    res, run, wall = _search(cfg, tmp_path)
    m = res["search"]["metrics"]
    epochs = _records(run, "epoch")
    assert len(epochs) == 1 and epochs[0]["partial"] is True  # stage 1, first epoch of 28 (125 steps): cut mid-epoch
    assert m["stopped"] == "seconds" and len(m["stages"]) == 1  # stage 2 skipped
    assert m["stages"][0]["evaluated"] == 1  # the deadline had passed: only the stage's starting point scored
    assert m["stages"][0]["epochs_run"] == 1 and m["stages"][0]["epochs"] == 28
    assert m["evaluated_over_budget"] == 0 and res["arch"] == m["stages"][0]["best_arch"]
    assert RunDir(run).load_checkpoint()["elapsed_s"] < 0.2 + 10 and wall < 60
    _resume_after_crash(run, res, ("epoch", "candidate"))


def test_hurricane_evolution_checks_the_clock_before_every_candidate(tmp_path, fake_cache, monkeypatch):
    """A deadline reached during the evolution (training finished) ends it after the candidate in progress."""
    from nasforge.strategies import hurricane

    cfg = {"space": "mobile", "method": "hurricane", "dataset": "synthetic", "subset": 128, "batch_size": 32,
           "threads": 1, "budget": {"epochs": 2, "seconds": 1.0}, "space_options": dict(MOBILE_TINY),
           "hparams": {"population": 4, "sample_size": 2, "evaluations": 500, "bn_batches": 1, "eval_batches": 1,
                       "lut_cache": str(fake_cache), "order": "joint"}}
    original = hurricane.inherited_accuracy  # the engine's scorer, as hurricane's fitness calls it

    def slow(*a, **kw):
        time.sleep(0.1)
        return original(*a, **kw)

    monkeypatch.setattr(hurricane, "inherited_accuracy", slow)
    res, run, _ = _search(cfg, tmp_path)
    m = res["search"]["metrics"]
    assert m["stopped"] == "seconds" and 1 <= m["evaluated"] < 30  # far fewer than the 500 asked for


def test_vitas_stops_in_supernet_training_and_evolution(tmp_path):
    cfg = {"space": "vit", "method": "vitas", "dataset": "synthetic", "subset": 2000, "batch_size": 8, "seed": 3,
           "threads": 1, "space_options": VIT_SMALL, "budget": {"epochs": 50, "seconds": 0.2},
           "hparams": {"budget": 0.3, "window_low": 0.5, "candidates": 500, "population": 3, "sample_size": 2,
                       "eval_images": 32, "eval_batch": 32, "checkpoint_every": 2, "calib_samples": 200}}
    res, run, wall = _search(cfg, tmp_path)
    m = res["search"]["metrics"]
    epochs = _records(run, "epoch")
    assert len(epochs) == 1 and epochs[0]["partial"] is True and m["stopped"] == "seconds"
    assert m["selection"]["evaluated"] == 1  # one candidate is always scored; the deadline had passed
    state = RunDir(run).load_checkpoint()
    assert state["stopped"] is True and state["elapsed_s"] < 0.2 + 10 and wall < 60
    _resume_after_crash(run, res, ("epoch", "candidate"))


def test_multi_trial_loop_starts_no_trial_after_the_deadline(tmp_path):
    cfg = {**NB201, "subset": 128, "method": "random", "estimator": "scratch",
           "budget": {"trials": 30, "seconds": 1.0}, "hparams": {"batch": 30},
           "estimator_options": {"train": {"epochs": 1, "batch_size": 32}}}  # one epoch: a trial is never cut
    res, run, wall = _search(cfg, tmp_path)
    with TrialJournal(run) as j:
        trials = j.all()
    done = [t for t in trials if t.status == "done"]
    pending = [t for t in trials if t.status == "pending"]
    assert len(trials) == 30 and done and pending and len(done) + len(pending) == 30  # the round was cut
    assert all(t.attempts == 0 for t in pending)  # never started; left for a resume
    assert res["search"]["metrics"]["stopped"] == "seconds" and res["search"]["metrics"]["trials"] == len(done)
    # the last trial started before the deadline: the overshoot is at most one trial (plus bookkeeping); trials
    # of several epochs stop at the next epoch end instead (test_executors.py::test_a_trial_cut_at_the_deadline_...)
    assert RunDir(run).load_checkpoint()["elapsed_s"] < 1.0 + max(t.seconds for t in done) + 5
    _resume_after_crash(run, res, ("trial",))
    with TrialJournal(run) as j:
        assert [(t.key, t.status, t.attempts) for t in j.all()] == [(t.key, t.status, t.attempts) for t in trials]


def test_cpu_clock_counts_this_process_s_cpu_time_not_waiting(tmp_path, monkeypatch):
    """--clock cpu: a search whose wall clock races ahead (as on a busy machine, simulated by a wall clock
    that jumps 1000 s per reading) is not cut by it; the default wall clock is."""
    from nasforge.engine import base

    real = time.perf_counter
    jumps = iter(range(0, 10 ** 9, 1000))
    monkeypatch.setitem(base.CLOCKS, "wall", lambda: real() + next(jumps))
    cfg = {**NB201, "subset": 200, "batch_size": 16, "method": "random-ws", "budget": {"epochs": 1, "seconds": 50},
           "hparams": {"hessian_every": 0, "eval_batches": 1, "candidates": 2, "top_k": 1, "rerank_batches": 1},
           "precision": "fp32"}
    wall_cut, _, _ = _search(cfg, tmp_path / "wall")
    assert wall_cut["search"]["metrics"].get("stopped") == "seconds"
    cpu = {**cfg, "budget": {**cfg["budget"], "clock": "cpu"}}
    res, run, _ = _search(cpu, tmp_path / "cpu")
    assert res["search"]["metrics"].get("stopped") is None and len(_records(run, "epoch")) == 1
    assert json.loads((run / "config.json").read_text())["budget"]["clock"] == "cpu"


@pytest.mark.parametrize("extra, message", [
    ({"budget": {"epochs": 1, "clock": "cpu"}}, "--clock cpu says how --seconds is counted"),
    ({"budget": {"seconds": 5, "clock": "gpu"}}, "clock"),
])
def test_bad_clock_is_one_line_before_work(extra, message, tmp_path):
    from nasforge.errors import ConfigError

    cfg = {**NB201, "method": "random-ws", **extra}
    with pytest.raises(ConfigError, match=message):
        api.search(cfg, run_root=tmp_path, run_name="s")
    assert not (tmp_path / "s").exists()
