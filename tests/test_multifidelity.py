"""Multi-fidelity schedulers (sh, hyperband, asha): hand-checked promotions, the rung ladder, resume after a
kill at several points, failed trials, Ray, preflight errors and the CLI."""
from __future__ import annotations

import json

import pytest

from mf_trials import CALLS, SyntheticFidelity, objective
from nasforge.errors import ConfigError
from nasforge.building import import_components
from nasforge.registry import STRATEGIES
from nasforge.runs.journal import TrialJournal
from nasforge.runs.store import RunDir
from nasforge.spaces.nb201 import NB201Space
from nasforge.engine.base import Budget, SearchContext
from nasforge.engine.multifidelity import ASHAScheduler, SyncHalving, rung_levels

import_components()

# rung-0 and rung-1 scores of configurations c0..c8 (higher is better), chosen so the order is easy to follow
S0 = [5, 9, 1, 7, 3, 8, 2, 6, 4]
S1 = {1: 20, 5: 30, 3: 10}


def drive(sched, scores, steps):
    """Run a scheduler one trial at a time (ask, then tell); returns [(config, rung)] in order."""
    out = []
    for _ in range(steps):
        job = sched.ask()
        if job is None:
            break
        out.append((job.config, job.rung))
        sched.tell(job, scores(job))
    return out


def labels():
    n = iter(range(1000))
    return lambda: f"c{next(n)}"


def table_scores(fail=()):
    def score(job):
        if job.config in fail:
            return None
        return S0[job.config] if job.rung == 0 else S1.get(job.config, 0) if job.rung == 1 else 100
    return score


# -- hand-checked promotions --------------------------------------------------------------------------------------
def test_asha_promotes_the_top_third_of_each_rung_as_soon_as_it_can():
    # rung 0 reaches 3 results -> its best (c1, 9) goes up; at 6 results the top 2 are c1, c5 -> c5 goes up; at 9
    # the top 3 add c3; rung 1 then holds 3 results (c1 20, c5 30, c3 10) and promotes c5 to rung 2
    got = drive(ASHAScheduler([1, 3, 9], 3, labels()), table_scores(), 13)
    assert got == [(0, 0), (1, 0), (2, 0), (1, 1), (3, 0), (4, 0), (5, 0), (5, 1), (6, 0), (7, 0), (8, 0),
                   (3, 1), (5, 2)]


def test_asha_never_promotes_a_failed_trial():
    # c5 fails on rung 0: at 6 results the top 2 of the succeeded ones are c1 and c3, so c3 goes up instead
    got = drive(ASHAScheduler([1, 3, 9], 3, labels()), table_scores(fail={5}), 13)
    assert got[:8] == [(0, 0), (1, 0), (2, 0), (1, 1), (3, 0), (4, 0), (5, 0), (3, 1)]
    assert (5, 1) not in got and (5, 2) not in got


def test_successive_halving_waits_for_the_rung_then_keeps_the_best_third():
    sched = SyncHalving([1, 3, 9], 3, labels(), lambda b: (0, 9))
    jobs = [sched.ask() for _ in range(9)]
    assert [(j.config, j.rung) for j in jobs] == [(c, 0) for c in range(9)]
    assert sched.ask() is None  # synchronous: nothing to start until the rung is complete
    for j in jobs:
        sched.tell(j, S0[j.config])
    rung1 = [sched.ask() for _ in range(3)]
    assert [(j.config, j.rung) for j in rung1] == [(1, 1), (5, 1), (3, 1)] and sched.ask() is None
    for j in rung1:
        sched.tell(j, S1[j.config])
    top = sched.ask()
    assert (top.config, top.rung, top.fidelity) == (5, 2, 9)
    sched.tell(top, 1.0)
    nxt = sched.ask()  # the next bracket starts with a new configuration on rung 0
    assert (nxt.config, nxt.rung, nxt.bracket) == (9, 0, 1)


def test_successive_halving_drops_failed_trials_and_ends_a_bracket_with_no_survivor():
    sched = SyncHalving([1, 3], 3, labels(), lambda b: (0, 3))
    jobs = [sched.ask() for _ in range(3)]
    for j in jobs:
        sched.tell(j, None if j.config == 1 else S0[j.config])  # the best by S0 (c1) failed
    up = sched.ask()
    assert (up.config, up.rung) == (0, 1)  # c0 (5) beats c2 (1); c1 is never promoted
    sched = SyncHalving([1, 3], 3, labels(), lambda b: (0, 2))
    for j in [sched.ask(), sched.ask()]:
        sched.tell(j, None)
    assert (sched.ask().rung, sched.bracket) == (0, 1)  # nobody to promote: a new bracket


def test_hyperband_brackets_follow_li_et_al():
    strat = STRATEGIES.get("hyperband")()
    sched = strat.make_scheduler([1, 3, 9], labels())
    # K = 2, eta = 3: bracket s=2 starts 9 configs on rung 0, s=1 5 on rung 1, s=0 3 on rung 2, then again
    assert [sched.plan(b) for b in range(4)] == [(0, 9), (1, 5), (2, 3), (0, 9)]
    first = [sched.ask() for _ in range(10)]
    assert [(j.config, j.rung) for j in first[:9]] == [(c, 0) for c in range(9)] and first[9] is None


def test_rung_ladders_and_impossible_ones():
    assert rung_levels(3, 1, 9, None, None, 9) == [1, 3, 9]
    assert rung_levels(3, 12, 200, None, None, 200) == [22, 67, 200]  # Hyperband's r_k = R eta^(k-K)
    assert rung_levels(2, None, None, None, None, 4) == [1, 2, 4]
    assert rung_levels(3, None, None, None, [12, 200], 200) == [12, 200]  # a table: its training lengths
    assert rung_levels(3, None, None, [2, 5, 11], None, 9) == [2, 5, 11]
    with pytest.raises(ConfigError, match=r"max_fidelity \(4 epochs\) is below min_fidelity \(8 epochs\)"):
        rung_levels(3, 8, 4, None, None, 9)
    with pytest.raises(ConfigError, match="at least two rungs"):
        rung_levels(3, 5, 5, None, None, 9)
    with pytest.raises(ConfigError, match="holds fidelities 12, 200 epochs; 50 is not one of them"):
        rung_levels(3, None, 50, None, [12, 200], 200)
    with pytest.raises(ConfigError, match="increasing"):
        rung_levels(3, None, None, [4, 2], None, 9)


# -- whole searches -----------------------------------------------------------------------------------------------
def search(method, hp=None, budget=12, run=None, est=None, executor=None, seed=0):
    strat = STRATEGIES.get(method)(**(hp or {}))
    ctx = SearchContext(space=NB201Space(), budget=Budget(trials=budget), seed=seed,
                        estimator=est or SyntheticFidelity(), executor=executor, run=run)
    return strat.search(ctx)


@pytest.mark.parametrize("method, hp", [("sh", {}), ("hyperband", {}), ("asha", {}), ("asha", {"slots": 3}),
                                        ("sh", {"sampler": "evolution", "population": 4, "sample_size": 2})])
def test_search_spends_the_budget_in_full_evaluations_and_recommends_from_the_top_rung(method, hp):
    res = search(method, hp)
    m = res.metrics
    assert m["rung_levels"] == [1, 3, 9] and m["budget_issued"] <= 12 + 1e-9
    assert m["budget_used"] == pytest.approx(sum(h["fidelity"] for h in res.history) / 9)
    top = [h for h in res.history if h["rung"] == 2]
    assert top and res.arch == max(top, key=lambda h: h["score"])["arch"]
    for h in res.history:  # every score is the objective at the trial's fidelity
        assert h["score"] == pytest.approx(objective(h["arch"], h["fidelity"]))
    for k in (1, 2):  # nobody reaches a rung without a result on the rung below
        below = {h["config"] for h in res.history if h["rung"] == k - 1}
        assert {h["config"] for h in res.history if h["rung"] == k} <= below or method == "hyperband"
    assert search(method, hp).history == res.history  # same seed, same search


def test_asha_simulated_workers_take_trials_in_order_of_simulated_completion():
    res = search("asha", {"slots": 3}, budget=4)
    # three workers start c0, c1, c2 at t=0 (1 epoch each): they finish together, in issue order; rung 0 then
    # holds 3 results and the best goes to rung 1 while c3, c4 start on rung 0
    assert [(h["config"], h["rung"]) for h in res.history[:3]] == [(0, 0), (1, 0), (2, 0)]
    best0 = max(res.history[:3], key=lambda h: (h["score"], -h["config"]))["config"]
    assert (best0, 1) in [(h["config"], h["rung"]) for h in res.history]
    assert res.history != search("asha", {"slots": 1}, budget=4).history


@pytest.mark.parametrize("method, hp", [("asha", {"slots": 3}), ("sh", {}), ("hyperband", {})])
@pytest.mark.parametrize("at, before", [(1, False), (5, True), (9, False), (17, False)])
def test_resume_after_a_kill_mid_rung_makes_the_same_promotions(tmp_path, crash, method, hp, at, before):
    whole = search(method, hp, run=RunDir.create(tmp_path, "search", {}, name="whole"))
    run = RunDir.create(tmp_path, "search", {}, name="cut")
    with crash(TrialJournal, "record_rung", at, before=before) as died:  # dies around decision number `at`
        with pytest.raises(died):
            search(method, hp, run=run)
    CALLS["n"] = 0
    resumed = search(method, hp, run=RunDir.open(run.path))
    assert resumed.history == whole.history and resumed.arch == whole.arch and resumed.metrics == whole.metrics
    # only trials the killed driver had not finished ran again (at most the one in flight when it died)
    assert CALLS["n"] <= len(whole.history) - at + 1
    with TrialJournal(run.path) as j:
        assert [r["job"] for r in j.rung_log()] == [h["job"] for h in whole.history]
    assert len([m for m in run.metrics() if m.get("event") == "trial"]) == len(whole.history)
    CALLS["n"] = 0
    again = search(method, hp, run=RunDir.open(run.path))
    assert CALLS["n"] == 0 and again.history == whole.history  # a finished search replays, runs nothing


def test_resume_refuses_a_rung_log_from_another_search(tmp_path):
    run = RunDir.create(tmp_path, "search", {}, name="r")
    search("asha", run=run, seed=0)
    with pytest.raises(ConfigError, match="does not match this search"):
        search("asha", run=RunDir.open(run.path), seed=1)


def test_failed_trials_are_recorded_and_never_promoted(tmp_path):
    first = search("asha", budget=12).history
    doomed = sorted({h["arch"] for h in first if h["rung"] >= 1})[:2]  # would have been promoted
    run = RunDir.create(tmp_path, "search", {}, name="f")
    res = search("asha", budget=12, est=SyntheticFidelity(fail=tuple(doomed)), run=run)
    failed = [h for h in res.history if h["arch"] in doomed]
    assert failed and all(h["score"] is None and h["rung"] == 0 for h in failed)
    assert res.metrics["rungs"][0]["failed"] == len(failed) and res.metrics["failed"] == len(failed)
    with TrialJournal(run.path) as j:
        assert {t.spec["arch"] for t in j.all() if t.status == "failed"} == set(doomed)
        assert [r["score"] for r in j.rung_log() if r["job"] in {h["job"] for h in failed}] == [None] * len(failed)


# -- Ray ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray")
    from nasforge.runs.executors import RayExecutor

    with RayExecutor(workers=2, threads_per_worker=1) as ex:
        yield ex


def test_asha_on_ray_matches_local_in_simulated_order_and_replays_real_order(tmp_path, ray_executor):
    local = search("asha", {"slots": 2}, budget=6)
    est = SyntheticFidelity(in_process=False, log_dir=str(tmp_path))
    on_ray = search("asha", {"slots": 2}, budget=6, est=est, executor=ray_executor)
    assert on_ray.history == local.history  # simulated order: Ray runs trials in parallel, decides the same
    run = RunDir.create(tmp_path, "search", {}, name="ray")
    real = search("asha", {"order": "completion"}, budget=6, est=est, executor=ray_executor, run=run)
    m = real.metrics
    assert m["rungs"][1]["trials"] >= 1 and m["budget_issued"] <= 6 + 1e-9
    calls = (tmp_path / "calls").read_text().count("\n")
    replay = search("asha", {"order": "completion"}, budget=6, est=est, executor=ray_executor, run=RunDir.open(run.path))
    assert replay.history == real.history  # the journal's rung log, not the timing, decides on resume
    assert (tmp_path / "calls").read_text().count("\n") == calls


# -- configuration errors and the CLI -----------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--set", "eta=1"], "eta must be an integer >= 2; got 1"),
    (["--set", "min_fidelity=50", "--set", "max_fidelity=20"], "max_fidelity (20) is below min_fidelity (50)"),
    (["--set", "max_fidelity=50"], "holds fidelities 12, 200 epochs; 50 is not one of them"),
    (["--set", "rung_levels=[12,100]"], "100 is not one of them"),
    (["--set", "order=completion"], "order=completion needs --executor ray"),
    (["--space", "macro"], "holds one training length only"),
    (["--set", "population=8"], "population apply only with sampler=evolution"),
])
def test_bad_multifidelity_input_is_one_line_and_exit_2(tmp_path, run_cli, tables_dir, args, message):
    base = ["search", "--space", "nb201", "--method", "asha", "--estimator", "table", "--tables", str(tables_dir),
            "--trials", "3", "--out", str(tmp_path)]
    code, out, err = run_cli(*base, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())  # refused before a run directory exists


def test_one_fidelity_estimator_is_refused(tmp_path, run_cli, tables_dir):
    code, _, err = run_cli("search", "--space", "nb201", "--method", "sh", "--estimator", "table", "--tables",
                           str(tables_dir), "--trials", "3", "--out", str(tmp_path), "--set", "min_fidelity=200")
    assert code == 2 and "at least two rungs" in err


@pytest.mark.parametrize("method", ["sh", "hyperband", "asha"])
def test_cli_search_on_the_nb201_table_reports_rungs(tmp_path, cli_ok, tables_dir, method):
    cli_ok("search", "--space", "nb201", "--method", method, "--estimator", "table", "--tables", str(tables_dir),
           "--trials", "3", "--out", str(tmp_path), "--name", "mf", "--seed", "1")
    run = tmp_path / "mf"
    result = json.loads((run / "result.json").read_text())
    m = result["search"]["metrics"]
    assert m["rung_levels"] == [12, 200] and m["budget_issued"] <= 3 + 1e-9 and m["scheduler"]
    assert [r["fidelity"] for r in m["rungs"]] == [12, 200] and m["rungs"][1]["trials"] >= 1
    assert m["rung_signals"] == {"12": "cifar10_val_12", "200": "cifar10_test_200"}
    assert result["table"]["cifar10_test_200"] == m["ground_truth"]["test_accuracy"]
    with TrialJournal(run) as j:
        assert {t.spec["metric"] for t in j.all()} == {"val_12", "test_200"}
        assert len(j.rung_log()) == m["trials"]
    page = tmp_path / "report.html"
    cli_ok("report", str(run), "--out", str(page))
    html = page.read_text()
    assert "Rungs" in html and ">200<" in html
    cli_ok("compare", str(run), str(run), "--out", str(tmp_path / "compare.html"))
    assert "rungs" in (tmp_path / "compare.html").read_text().lower()


def test_scratch_trials_train_for_their_rungs_epochs_and_resume(tmp_path, crash):
    """Epochs as fidelity with real (tiny) training: each trial's spec and score belong to its rung's epochs."""
    from nasforge import api

    cfg = {"dataset": "synthetic", "subset": 96, "threads": 1, "space": "nb201", "space_options": {"C": 4, "N": 1},
           "method": "asha", "hparams": {"eta": 2}, "estimator": "scratch", "budget": {"trials": 2},
           "estimator_options": {"train": {"epochs": 2, "batch_size": 48}}}
    whole = api.search(cfg, run_root=tmp_path, run_name="whole")
    m = whole["search"]["metrics"]
    assert m["rung_levels"] == [1, 2] and m["rungs"][1]["trials"] >= 1
    with TrialJournal(tmp_path / "whole") as j:
        epochs = {t.spec["train"]["epochs"] for t in j.all()}
        assert epochs == {1, 2} and all(t.status == "done" for t in j.all())
    with crash(TrialJournal, "record_rung", 3) as died:
        with pytest.raises(died):
            api.search(cfg, run_root=tmp_path, run_name="cut")
    resumed = api.search(resume=tmp_path / "cut")
    assert resumed["arch"] == whole["arch"] and resumed["search"]["history"] == whole["search"]["history"]


def test_seconds_budget_stops_issuing_and_keeps_the_best_so_far(monkeypatch):
    import mf_trials

    strat = STRATEGIES.get("asha")()
    ctx = SearchContext(space=NB201Space(), budget=Budget(seconds=1000.0), seed=0, estimator=SyntheticFidelity())
    original = mf_trials.synthetic_trial

    def clocked(spec, threads=1):
        out = original(spec, threads)
        if CALLS["n"] == 5:
            ctx.elapsed_before = 2000.0  # the deadline passes during the fifth trial
        return out

    CALLS["n"] = 0
    monkeypatch.setattr(mf_trials, "synthetic_trial", clocked)
    res = strat.search(ctx)
    assert len(res.history) == 5 and res.metrics["stopped"] == "seconds"
    assert res.arch == max(res.history, key=lambda h: (h["rung"], h["score"]))["arch"]


# -- files a finished multi-fidelity run leaves (new-user faults of issues 22/24) -------------------------------------
@pytest.mark.parametrize("method, hp", [("asha", {"slots": 3}), ("sh", {}), ("hyperband", {})])
def test_multifidelity_runs_append_history_jsonl_and_a_resumed_run_ends_with_the_same_file(tmp_path, crash, method, hp):
    """README: multi-trial runs write history.jsonl, one line per scored trial; the multi-fidelity driver did not."""
    whole_run = RunDir.create(tmp_path, "search", {}, name="whole")
    whole = search(method, hp, run=whole_run)
    lines = [json.loads(x) for x in (whole_run.path / "history.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(whole.history)) and len(lines) == whole.metrics["trials"]
    run = RunDir.create(tmp_path, "search", {}, name="cut")
    with crash(TrialJournal, "record_rung", 7) as died:  # dies after decision 7 is in the log, before its line
        with pytest.raises(died):
            search(method, hp, run=run)
    cut = (run.path / "history.jsonl").read_text()
    (run.path / "history.jsonl").write_text(cut + '{"trial": 99, "half-writ')  # a line cut short by the kill
    search(method, hp, run=RunDir.open(run.path))
    assert (run.path / "history.jsonl").read_text() == (whole_run.path / "history.jsonl").read_text()


def test_a_budget_too_small_for_the_top_rung_says_the_winner_was_never_scored_there(tmp_path, capsys, tables_dir):
    from nasforge.cli import main

    res = search("sh", budget=1)  # one bracket of 9 configs on 1/3/9 epochs costs 9/9 + 3/3 + 1 = 3 > 1
    assert res.metrics["best_rung"] < 2
    (w,) = res.metrics["warnings"]
    assert "never at the top fidelity (9 epochs)" in w and "raise --trials" in w
    assert "warnings" not in search("sh", budget=12).metrics  # a budget that reaches the top: no warning
    capsys.readouterr()
    try:
        main(["search", "--space", "nb201", "--method", "sh", "--estimator", "table", "--tables", str(tables_dir),
              "--trials", "1", "--out", str(tmp_path), "--name", "tiny"])
    except SystemExit as e:
        assert e.code in (0, None)
    err = capsys.readouterr().err
    assert "warning: sh: the recommended architecture was scored only at rung 0 (12 epochs)" in err
    result = json.loads((tmp_path / "tiny" / "result.json").read_text())
    assert result["warnings"] == result["search"]["metrics"]["warnings"] and "200 epochs" in result["warnings"][0]


def test_a_finished_run_and_its_report_leave_no_sqlite_wal_files(tmp_path, cli_ok, tables_dir):
    cli_ok("search", "--space", "nb201", "--method", "asha", "--estimator", "table", "--tables", str(tables_dir),
           "--trials", "2", "--out", str(tmp_path), "--name", "mf")
    run = tmp_path / "mf"
    assert (run / "trials.sqlite").is_file()
    assert not list(run.glob("*-wal")) and not list(run.glob("*-shm"))
    cli_ok("report", str(run))  # a read-only reader must not leave them either
    assert not list(run.glob("*-wal")) and not list(run.glob("*-shm"))
    with TrialJournal(run) as j:  # still a working journal (WAL again while open)
        assert len(j.rung_log()) == json.loads((run / "result.json").read_text())["search"]["metrics"]["trials"]
