"""Multi-objective search (issue 22 item 3): non-dominated sorting, crowding distance, hypervolume on hand-made
fronts; objectives and constraints; NSGA-II on a synthetic table and on NB201 x a HELP device; exact resume;
the CLI end to end with report and compare."""
import json
import random

import numpy as np
import pytest

from nasforge.errors import ConfigError, UserError
from nasforge.hardware.objectives import parse_constraint, parse_objective, parse_objectives
from nasforge.hardware.pareto import (
    crowding_distance, dominates, hypervolume, non_dominated_sort, normalized_hypervolume, pareto_mask,
)
from nasforge.registry import STRATEGIES
from nasforge.runs.store import RunDir
from nasforge.spaces.nb201 import NB201Space
from nasforge.engine.base import Budget, SearchContext
from nasforge.engine.nsga2 import NSGA2
from nasforge.strategies.nsga2 import NSGA2Search
from nasforge.estimators.base import Estimator

# -- a small synthetic table: an additive score over NB201's 6 edges x 5 ops (unique optimum) ---------------
_W = np.random.default_rng(7).uniform(0, 10, size=(6, 5))


def synthetic_trial(spec, threads):
    ops = NB201Space().categorical().encode(spec["arch"])
    return {"score": float(sum(_W[e, o] for e, o in enumerate(ops)))}


class SyntheticTable(Estimator):
    name = "synthetic"
    trial_fn = "test_multiobjective:synthetic_trial"
    runs_in_process = True

    def trial_spec(self, space, arch, seed):
        return {"arch": space.validate(arch)}


def synthetic_optimum():
    return float(_W.max(axis=1).sum())


# -- hand-made fronts ---------------------------------------------------------------------------------------
def test_hypervolume_2d_by_hand():
    # minimised; reference (6, 6): rectangles 5*1 + 4*2 + 2*2 = 17; the dominated (3, 4) and (5, 5) add nothing,
    # (7, 0) lies beyond the reference in x and adds nothing
    F = [[1, 5], [2, 3], [4, 1], [3, 4], [5, 5], [7, 0]]
    assert hypervolume(F, [6, 6]) == pytest.approx(17.0)
    assert hypervolume([[1, 5]], [6, 6]) == pytest.approx(5.0)
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0
    assert hypervolume([[6, 1]], [6, 6]) == 0.0  # on the reference's boundary: no volume


def test_hypervolume_3d_by_hand():
    # inclusion-exclusion: boxes 6 + 6 + 3, pairwise overlaps 4 + 1 + 1, triple 1 -> 10
    F = [[1, 2, 3], [2, 1, 3], [3, 3, 1]]
    assert hypervolume(F, [4, 4, 4]) == pytest.approx(10.0)
    assert hypervolume([[1, 1, 1]], [2, 3, 4]) == pytest.approx(6.0)
    # duplicates and dominated points change nothing
    assert hypervolume(F + [[2, 1, 3], [3, 3, 3]], [4, 4, 4]) == pytest.approx(10.0)
    # 4-D: one box
    assert hypervolume([[0, 0, 0, 0]], [1, 2, 3, 4]) == pytest.approx(24.0)


def test_normalized_hypervolume_of_the_front_itself():
    # a front spanning ideal (0, 0) .. nadir (1, 1): normalised, reference 1.1
    front = [[0, 1], [1, 0]]
    assert normalized_hypervolume(front, [0, 0], [1, 1]) == pytest.approx(1.1 * 0.1 + 0.1 * 1.0)  # 0.21


def test_normalized_hypervolume_units_do_not_matter():
    F = np.array([[-90.0, 5.0], [-80.0, 2.0], [-70.0, 1.0]])
    ideal, nadir = F.min(axis=0), F.max(axis=0)
    scaled = F * np.array([1.0, 1000.0])  # latency in us instead of ms
    assert normalized_hypervolume(F, ideal, nadir) == pytest.approx(
        normalized_hypervolume(scaled, ideal * [1, 1000], nadir * [1, 1000]))


def test_hypervolume_rejects_bad_input():
    with pytest.raises(UserError, match="reference"):
        hypervolume([[1, 2]], [3])
    with pytest.raises(UserError, match="finite"):
        hypervolume([[1, np.nan]], [3, 3])


def test_non_dominated_sort_by_hand():
    F = [[1, 5], [2, 3], [4, 1], [3, 4], [5, 5], [2, 3]]
    assert non_dominated_sort(F) == [[0, 1, 2, 5], [3], [4]]
    assert dominates([1, 1], [1, 2]) and not dominates([1, 2], [1, 2]) and not dominates([1, 3], [2, 1])
    assert pareto_mask(F).tolist() == [True, True, True, False, False, True]
    # 3 objectives: (1,1,1) dominates everything else
    assert non_dominated_sort([[2, 2, 2], [1, 1, 1], [3, 1, 2], [1, 3, 3]]) == [[1], [0, 2, 3]]
    assert pareto_mask([[2, 2, 2], [1, 1, 1], [3, 1, 2]]).tolist() == [False, True, False]


def test_pareto_mask_agrees_with_the_first_front_on_random_points():
    rng = np.random.default_rng(0)
    for m in (2, 3, 4):
        F = rng.integers(0, 6, size=(60, m)).astype(float)  # many ties and duplicates
        first = np.zeros(60, bool)
        first[non_dominated_sort(F)[0]] = True
        assert (pareto_mask(F) == first).all()


def test_constrained_domination_by_hand():
    # point 0 is best by objectives but infeasible; 1 and 2 are feasible; 3 is less infeasible than 0
    F = [[0, 0], [1, 2], [2, 1], [0, 0]]
    assert non_dominated_sort(F, [0.5, 0, 0, 0.1]) == [[1, 2], [3], [0]]
    with pytest.raises(UserError):
        non_dominated_sort(F, [0, 0])


def test_crowding_distance_by_hand():
    # front sorted by f1: (0,4) (1,2) (3,1) (4,0); ranges 4 and 4
    F = np.array([[1, 2], [0, 4], [4, 0], [3, 1]])
    d = crowding_distance(F)
    assert np.isinf(d[1]) and np.isinf(d[2])
    assert d[0] == pytest.approx((3 - 0) / 4 + (4 - 1) / 4)  # neighbours (0,4) and (3,1)
    assert d[3] == pytest.approx((4 - 1) / 4 + (2 - 0) / 4)  # neighbours (1,2) and (4,0)
    assert np.isinf(crowding_distance([[1, 1], [2, 2]])).all()


# -- objectives and constraints -----------------------------------------------------------------------------
def test_objective_and_constraint_parsing():
    assert parse_objective("latency@pixel3").key == "latency@pixel3"
    assert parse_objective("accuracy").maximize and not parse_objective("params").maximize
    c = parse_constraint("latency@pixel3<=5ms")
    assert (c.objective.key, c.op, c.bound) == ("latency@pixel3", "<=", 5.0)
    assert parse_constraint("latency@pixel3<=500us").bound == pytest.approx(0.5)
    assert parse_constraint("params<=1.5M").bound == 1.5e6 and parse_constraint("flops <= 20k").bound == 2e4
    assert parse_constraint("accuracy>=90%").violation(85.0) == pytest.approx(5 / 90)
    assert c.violation(4.0) == 0.0 and c.violation(6.0) == pytest.approx(0.2)
    for bad, needle in [("latency<=5", "needs a device"), ("latency@toaster<=5", "unknown latency device"),
                        ("params<=5W", "unknown unit"), ("params>=5", "wrong side"), ("accuracy<=50", "wrong side"),
                        ("size<=5", "unknown objective"), ("params=5", "NAME<=BOUND"), ("accuracy>=120", "<= 100")]:
        with pytest.raises(ConfigError, match=needle):
            parse_constraint(bad)
    with pytest.raises(ConfigError, match="include accuracy"):
        parse_objectives(["params", "flops"])
    with pytest.raises(ConfigError, match="at least two"):
        parse_objectives("accuracy")
    assert [o.key for o in parse_objectives("accuracy, latency@pixel3")] == ["accuracy", "latency@pixel3"]


# -- the engine ---------------------------------------------------------------------------------------------
def test_nsga2_engine_keeps_the_best_fronts():
    rng = random.Random(0)
    eng = NSGA2(lambda r: r.randrange(100), lambda a, r: a + 1, population_size=3, key=str)
    archs = [0, 1, 2, 3, 4]
    # objectives: 0,1,2 form the first front; 3 is dominated; 4 is feasible-dominated by violation
    eng.tell(archs, [[1, 3], [2, 2], [3, 1], [3, 3], [0, 0]], [0, 0, 0, 0, 1.0])
    assert sorted(a for a, _, _ in eng.population) == [0, 1, 2]
    state = json.loads(json.dumps(eng.state_dict()))
    other = NSGA2(lambda r: r.randrange(100), lambda a, r: a + 1, population_size=3, key=str)
    other.load_state_dict(state)
    assert [other.tournament(random.Random(s)) for s in range(5)] == [eng.tournament(random.Random(s)) for s in range(5)]
    assert eng.ask(rng, 2) and all(str(a) not in {"0", "1", "2", "3", "4"} for a in eng.ask(rng, 2))


# -- searches on the synthetic table --------------------------------------------------------------------------
def search(hp, trials=60, seed=0, run=None, space=None):
    space = space or NB201Space(C=2, N=1)
    return NSGA2Search(**hp).search(SearchContext(space=space, budget=Budget(trials=trials), seed=seed,
                                                  estimator=SyntheticTable(), run=run))


def test_nsga2_respects_a_params_constraint_and_reports_the_front(tmp_path):
    space = NB201Space(C=2, N=1)
    res = search({"objectives": ["accuracy", "params"], "population": 10, "constraints": ["params<=2200"]},
                 trials=40, space=space, run=RunDir.create(tmp_path, "search", {}, name="c"))
    assert len(res.history) == 40
    assert all(h["objectives"]["params"] <= 2200 for h in res.history)  # never evaluated a violating arch
    assert res.metrics["rejected_by_constraints"] > 0  # the bound bites (some draws were over it)
    front = res.metrics["front"]
    assert front and all(p["params"] <= 2200 for p in front)
    F = np.array([[-p["accuracy"], p["params"]] for p in front])
    assert pareto_mask(F).all()  # no member of the reported front dominates another
    others = np.array([[-h["score"], h["objectives"]["params"]] for h in res.history])
    for row in others:  # and every evaluated architecture is dominated by (or on) the front
        assert any(np.all(f <= row) for f in F)
    assert res.arch == max(front, key=lambda p: p["accuracy"])["arch"]
    assert res.metrics["hypervolume"] > 0 and "found front" in res.metrics["hypervolume_basis"]
    saved = json.loads((tmp_path / "c" / "multiobjective.json").read_text())
    assert saved["constraints"] == ["params<=2200"] and len(saved["points"]) == 40


def test_nsga2_reference_point_hypervolume():
    res = search({"objectives": ["accuracy", "params"], "population": 8, "reference": [0.0, 5000.0]}, trials=24)
    F = np.array([[-p["accuracy"], p["params"]] for p in res.metrics["front"]])
    assert res.metrics["hypervolume"] == pytest.approx(hypervolume(F, [0.0, 5000.0]))


def test_nsga2_beats_its_random_start_on_the_synthetic_table():
    res = search({"objectives": ["accuracy", "params"], "population": 10}, trials=80)
    first, last = res.history[:10], res.history
    assert max(h["score"] for h in last) > max(h["score"] for h in first)


def test_nsga2_resume_after_a_kill_is_identical(tmp_path, crash):
    hp = {"objectives": ["accuracy", "params"], "population": 6, "batch": 4}
    whole = search(hp, trials=30, run=RunDir.create(tmp_path, "search", {}, name="whole"))
    run = RunDir.create(tmp_path, "search", {}, name="cut")
    with crash(SearchContext, "evaluate", at=3, exc=KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        search(hp, trials=30, run=run)
    resumed = search(hp, trials=30, run=RunDir.open(run.path))
    assert resumed.history == whole.history and resumed.arch == whole.arch
    assert resumed.metrics["front"] == whole.metrics["front"]


def test_nsga2_bad_options_are_config_errors():
    for hp, needle in [({"objectives": ["accuracy"]}, "at least two"), ({"constraints": ["params<5"]}, "NAME<=BOUND"), ({"constraints": "params<=5"}, "list"),
                       ({"reference": [1.0]}, "one per objective"), ({"population": 1}, ">= 2"),
                       ({"objectives": ["accuracy", "latency@nowhere"]}, "unknown latency device")]:
        with pytest.raises(ConfigError, match=needle):
            NSGA2Search(**hp)
    from nasforge.spaces.darts import DartsSpace

    with pytest.raises(ConfigError, match="categorical"):
        NSGA2Search(crossover_prob=0.5).preflight(DartsSpace(), {})
    with pytest.raises(ConfigError, match="fbnet"):  # a device measured on FBNet only
        NSGA2Search(objectives=["accuracy", "latency@1080ti_64"]).preflight(NB201Space(), {})


# -- NB201 x a HELP device ------------------------------------------------------------------------------------
def test_nsga2_on_nb201_latency_with_exact_front(tables_dir, tmp_path):
    from nasforge.estimators.table import TableEstimator

    hp = {"objectives": ["accuracy", "latency@pixel3"], "constraints": ["latency@pixel3<=12ms"], "population": 10}
    res = NSGA2Search(**hp).search(SearchContext(space=NB201Space(), budget=Budget(trials=60), seed=0,
                                                 estimator=TableEstimator(tables_dir),
                                                 run=RunDir.create(tmp_path, "search", {}, name="t")))
    assert all(h["objectives"]["latency@pixel3"] <= 12 for h in res.history)
    m = res.metrics
    assert 0 < m["hypervolume"] <= m["hypervolume_exact"] and 0 < m["hypervolume_ratio"] <= 1
    exact = json.loads((tmp_path / "t" / "multiobjective.json").read_text())["exact_front"]
    assert all(p["latency@pixel3"] <= 12 for p in exact)
    with pytest.raises(ConfigError, match="cannot be met"):
        NSGA2Search(objectives=["accuracy", "latency@pixel3"], constraints=["latency@pixel3<=0.001ms"]).preflight(
            NB201Space(), {"tables": str(tables_dir)})


def test_cli_end_to_end_with_report_and_compare(tables_dir, tmp_path, run_cli, cli_ok):
    out = tmp_path / "runs"
    args = ["search", "--space", "nb201", "--method", "nsga2", "--estimator", "table", "--tables", str(tables_dir),
            "--trials", "30", "--set", "objectives=[accuracy,latency@pixel3]", "--set",
            "constraints=[latency@pixel3<=15ms]", "--set", "population=10", "--out", str(out), "--quiet"]
    cli_ok(*args, "--name", "a")
    result = json.loads((out / "a" / "result.json").read_text())
    assert result["search"]["metrics"]["hypervolume_ratio"] > 0
    assert (out / "a" / "multiobjective.json").exists()
    cli_ok("report", str(out / "a"), "--out", str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text()
    assert "Multi-objective search" in page and "exact front" in page
    cli_ok("compare", str(out / "a"), "--csv", str(tmp_path / "c.csv"), "--out", str(tmp_path / "c.html"))
    assert "hypervolume_ratio" in (tmp_path / "c.csv").read_text().splitlines()[0]
    # bad input: one line, exit 2, no run directory
    for bad in ("objectives=[accuracy,latency@toaster]", "constraints=[latency@pixel3<=0.001ms]", "constraints=[params=3]",
                "constraints=latency@pixel3<=5ms"):  # a single constraint is still a list: [..]
        code, _, err = run_cli(*args[:-4], "--set", bad, "--out", str(tmp_path / "bad"), "--quiet")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()
    assert "nsga2" in cli_ok("list")
