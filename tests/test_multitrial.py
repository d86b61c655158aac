"""Multi-trial strategies (random, evolution, pnas): budgets, histories, journal-backed resume, query mode.

Searches here score PNAS cells with the synthetic oracle (no data, no training) or look NB201 /
NAS-Bench-Macro cells up in the benchmark tables (query mode).
"""
import random

import numpy as np
import pytest

from nasforge.errors import ConfigError, UserError
from nasforge.estimators.table import TableEstimator, run_trial
from nasforge.registry import ESTIMATORS, STRATEGIES
from nasforge.runs.store import RunDir
from nasforge.spaces.macro import MacroSpace
from nasforge.spaces.nb201 import NB201Space
from nasforge.spaces.pnas import PNASSpace
from nasforge.engine.base import Budget, SearchContext
from nasforge.strategies.evolution import Evolution, RegularizedEvolution
from nasforge.spaces.darts import DartsSpace
from nasforge.strategies.pnas import PNAS, growth_for
from nasforge.strategies.random_search import RandomSearch
from nasforge.surrogates import oracle as oracle_module
from nasforge.surrogates.oracle import OracleEstimator

FAST = {"surrogate_steps": 60}  # a lighter surrogate fit keeps these tests fast


def reduced(blocks=3):
    return PNASSpace(blocks=blocks, ops="reduced")


def search(strategy, space, trials, seed=0, estimator=None, run=None):
    ctx = SearchContext(space=space, budget=Budget(trials=trials), seed=seed,
                        estimator=estimator or OracleEstimator(seed=seed), run=run)
    return strategy.search(ctx)


# -- a trial function that counts its calls and can simulate a kill ----------------------------------------
CALLS = {"n": 0, "stop_at": None}


def counting_oracle_trial(spec, threads):
    CALLS["n"] += 1
    if CALLS["stop_at"] is not None and CALLS["n"] >= CALLS["stop_at"]:
        CALLS["stop_at"] = None
        raise KeyboardInterrupt  # the driver is stopped in the middle of a round
    return oracle_module.run_trial(spec, threads)


class CountingOracle(OracleEstimator):
    trial_fn = "test_multitrial:counting_oracle_trial"


# -- shared behaviour ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["random", "evolution", "pnas"])
def test_history_budget_and_best_so_far(name):
    hp = {"pnas": {"K": 4, **FAST}, "evolution": {"population": 8, "sample_size": 3}}.get(name, {})
    result = search(STRATEGIES.get(name)(**hp), reduced(), trials=45)
    h = result.history
    assert [r["trial"] for r in h] == list(range(1, 46))
    keys = [str(r["arch"]) for r in h]
    assert len(set(keys)) == len(keys)  # each architecture scored once
    best = np.maximum.accumulate([r["score"] for r in h])
    assert np.allclose([r["best_score"] for r in h], best)
    assert result.arch == max(h, key=lambda r: r["score"])["arch"] and result.metrics["trials"] == 45


def test_budget_and_estimator_are_required():
    with pytest.raises(ConfigError, match="trial or time budget"):
        RandomSearch().search(SearchContext(space=reduced(), budget=Budget(epochs=1), estimator=OracleEstimator()))
    with pytest.raises(ConfigError, match="estimator"):
        RandomSearch().search(SearchContext(space=reduced(), budget=Budget(trials=3)))
    with pytest.raises(ConfigError, match="unknown hyperparameter"):
        PNAS(beam=3)
    with pytest.raises(ConfigError, match="K must be an integer >= 1; got 0"):
        search(PNAS(K=0), reduced(), trials=3)
    with pytest.raises(ConfigError, match="grows spaces with a categorical encoding or PNAS block cells"):
        search(PNAS(), DartsSpace(), trials=3)  # neither categorical nor block cells


def test_random_search_stops_when_a_small_space_is_used_up():
    result = search(RandomSearch(batch=16), reduced(blocks=1), trials=100)
    assert len(result.history) == 36  # every 1-block cell of the 4-op space, then nothing new to sample


# -- regularised evolution ------------------------------------------------------------------------------------
def toy_engine(**kw):
    return RegularizedEvolution(lambda rng: rng.randrange(1000), lambda a, rng: a + rng.choice((-2, 2)), **kw)


def test_evolution_engine_ages_selects_and_respects_constraints():
    rng = random.Random(0)
    engine = toy_engine(population_size=5, sample_size=5, constraint=lambda a: a % 2 == 0)
    first = engine.ask(rng, 5)
    assert len(first) == 5 and all(a % 2 == 0 for a in first)
    engine.tell(first, [float(a) for a in first])
    parent = max(first)
    child = engine.ask(rng, 1)[0]
    assert abs(child - parent) == 2  # the tournament (all 5 members) picked the fittest
    engine.tell([child], [-1.0])
    assert len(engine.population) == 5 and first[0] not in [a for a, _ in engine.population]  # oldest died
    assert len(set(engine.ask(rng, 50)) | set(first) | {child}) == 56  # never proposes a seen architecture
    # state + generator state -> the same future
    state, rng_state = engine.state_dict(), rng.getstate()
    a = engine.ask(rng, 3)
    other = toy_engine(population_size=5, sample_size=5, constraint=lambda a: a % 2 == 0)
    other.load_state_dict(state)
    rng.setstate(rng_state)
    assert other.ask(rng, 3) == a
    with pytest.raises(ConfigError, match="sample_size"):
        toy_engine(population_size=3, sample_size=4)


def test_evolution_improves_on_its_random_start():
    result = search(Evolution(population=10, sample_size=5), reduced(), trials=80, seed=1)
    scores = [r["score"] for r in result.history]
    assert max(scores[10:]) > max(scores[:10])


# -- PNAS -----------------------------------------------------------------------------------------------------
def test_pnas_rounds_follow_the_algorithm():
    result = search(PNAS(K=4, keep_searching=False, **FAST), reduced(), trials=1000)
    rounds = result.metrics["pnas_rounds"]
    # all 36 one-block cells, then the K-beam: 36 parents x 78 children, then 4 parents x 136 children
    assert [r["candidates"] for r in rounds] == [36, 36 * 78, 4 * 136]
    assert [r["picked"] for r in rounds] == [36, 4, 4] and len(result.history) == 44
    sizes = [len(r["arch"]) for r in result.history]
    assert sizes == [1] * 36 + [2] * 4 + [3] * 4
    beam = [r["arch"] for r in result.history[36:40]]
    assert all(r["arch"][:2] in beam for r in result.history[40:])  # only the beam was expanded
    assert all(-1 <= r["spearman"] <= 1 for r in rounds[1:])


def test_pnas_full_size_rounds_refit_in_between_and_stop_after_K():
    result = search(PNAS(K=8, batch_full=3, keep_searching=False, **FAST), reduced(blocks=2), trials=1000)
    rounds = result.metrics["pnas_rounds"]
    assert [r["picked"] for r in rounds] == [36, 3, 3, 2] and len(result.history) == 44
    assert [r["candidates"] for r in rounds] == [36, 36 * 78, 36 * 78 - 3, 36 * 78 - 6]


def test_pnas_continues_at_full_size_and_respects_the_budget():
    result = search(PNAS(K=4, **FAST), reduced(blocks=2), trials=50)
    assert len(result.history) == 50 and [len(r["arch"]) for r in result.history].count(2) == 14
    assert [r["size"] for r in result.metrics["pnas_rounds"]] == [1, 2, 2, 2, 2]


def test_tier_a_pnas_beats_random_on_the_oracle():
    """Spec 1.8 tier A in small: 4-op space, B = 3, K = 8 -> 36 + 8 + 8 = 52 oracle calls for each method."""
    wins = 0
    for seed in range(3):
        space = reduced()
        pnas = search(PNAS(K=8, keep_searching=False), space, trials=52, seed=seed)
        oracle = OracleEstimator(seed=seed).oracle(space)
        rand = oracle.sample_scores(52, 3, seed=100 + seed)  # uniform random 3-block cells
        wins += pnas.metrics["best_score"] > rand.max()
    assert wins >= 2


def test_nb201_growth_prefixes_are_table_cells():
    growth = growth_for(NB201Space())
    roots = growth.roots()
    assert len(roots) == 5 and growth.arch(roots[3]) == "|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|"
    kids = growth.expand(roots[:2])
    assert len(kids) == 2 * 25 and kids.tokens.tokens.shape == (50, 6, 2)
    grand = growth.expand([kids.get(7)])
    assert len(grand) == 125 and all(NB201Space().validate(growth.arch(grand.get(i))) for i in range(125))


# -- resume through checkpoint + journal --------------------------------------------------------------------
@pytest.mark.parametrize("name, hp", [("random", {"batch": 5}), ("evolution", {"population": 8, "sample_size": 3}),
                                      ("pnas", {"K": 4, **FAST})])
def test_resumed_search_reruns_no_finished_trial_and_ends_identically(tmp_path, name, hp):
    space, trials = reduced(), 52
    CALLS.update(n=0, stop_at=None)
    whole = search(STRATEGIES.get(name)(**hp), space, trials, estimator=CountingOracle(seed=0),
                   run=RunDir.create(tmp_path, "search", {}, name="whole"))
    assert CALLS["n"] == trials
    run = RunDir.create(tmp_path, "search", {}, name="cut")
    CALLS.update(n=0, stop_at=43)  # dies inside trial 43 (a round boundary is not needed)
    with pytest.raises(KeyboardInterrupt):
        search(STRATEGIES.get(name)(**hp), space, trials, estimator=CountingOracle(seed=0), run=run)
    assert CALLS["n"] == 43
    CALLS.update(n=0)
    resumed = search(STRATEGIES.get(name)(**hp), space, trials, estimator=CountingOracle(seed=0),
                     run=RunDir.open(run.path))
    assert CALLS["n"] == trials - 42  # only the interrupted trial and those never started
    assert resumed.history == whole.history and resumed.arch == whole.arch
    trial_logs = [m for m in run.metrics() if m.get("event") == "trial"]
    assert len(trial_logs) == trials  # records of the interrupted round were replaced, not duplicated
    CALLS.update(n=0)
    again = search(STRATEGIES.get(name)(**hp), space, trials, estimator=CountingOracle(seed=0),
                   run=RunDir.open(run.path))
    assert CALLS["n"] == 0 and again.history == whole.history  # a finished run re-runs nothing


# -- query mode ---------------------------------------------------------------------------------------------------
def test_table_estimator_scores_by_12_epoch_validation_and_reports_ground_truth(tables_dir):
    est = TableEstimator(tables_dir)
    assert ESTIMATORS.get("table") is TableEstimator
    sp = NB201Space()
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
    res = run_trial(est.trial_spec(sp, arch, seed=0))
    assert res == {"score": pytest.approx(84.89, abs=0.01), "metric": "cifar10_val_12"}  # no test accuracy
    assert est.ground_truth(sp, arch)["test_accuracy"] == pytest.approx(94.37, abs=0.01)
    c100 = TableEstimator(tables_dir, dataset="cifar100")
    assert run_trial(c100.trial_spec(sp, arch, 0))["metric"] == "cifar100_val_12"
    macro = MacroSpace()
    assert run_trial(est.trial_spec(macro, "22212220", 0))["score"] == pytest.approx(93.13, abs=0.01)


def test_table_estimator_errors(tmp_path, tables_dir):
    with pytest.raises(ConfigError, match="does not exist"):
        TableEstimator(tmp_path / "nope")
    with pytest.raises(UserError, match="unknown NB201 dataset"):
        TableEstimator(tables_dir, dataset="mnist")
    with pytest.raises(ConfigError, match="space 'pnas' has no published table"):
        TableEstimator(tables_dir).trial_spec(reduced(), [[0, "identity", 0, "identity"]], 0)


@pytest.mark.parametrize("name, hp", [("random", {}), ("evolution", {}), ("pnas", {"K": 8, **FAST})])
@pytest.mark.parametrize("space_cls", [NB201Space, MacroSpace])
def test_query_mode_is_repeatable_and_reports_ground_truth(tables_dir, name, hp, space_cls):
    runs = [search(STRATEGIES.get(name)(**hp), space_cls(), trials=30, seed=7, estimator=TableEstimator(tables_dir))
            for _ in range(2)]
    assert runs[0].history == runs[1].history and len(runs[0].history) == 30
    truth = runs[0].metrics["ground_truth"]
    assert truth["arch"] == runs[0].arch and 0 < truth["test_accuracy"] <= 100


def test_pnas_with_one_block_scores_the_one_block_cells_and_stops():
    result = search(PNAS(K=4, **FAST), reduced(blocks=1), trials=100)
    assert len(result.history) == 36 and len(result.metrics["pnas_rounds"]) == 1
