"""Predictor-guided search (issue 22 item 4): BANANAS and local search on a small synthetic table, their
acquisition and neighbourhoods, exact resume after a kill, and the CLI end to end on the NB201 table."""
import json
import math
import random

import numpy as np
import pytest

from nasforge.errors import ConfigError
from nasforge.registry import STRATEGIES
from nasforge.runs.store import RunDir
from nasforge.spaces.nb201 import NB201Space
from nasforge.strategies.bananas import Bananas, acquisition
from nasforge.engine.base import Budget, SearchContext
from nasforge.strategies.local_search import LocalSearch, neighbours
from test_multiobjective import SyntheticTable, synthetic_optimum

FAST = {"steps": 80}  # a lighter surrogate fit keeps these tests fast


def search(strategy, trials, seed=0, run=None):
    return strategy.search(SearchContext(space=NB201Space(C=2, N=1), budget=Budget(trials=trials), seed=seed,
                                         estimator=SyntheticTable(), run=run))


def first_hit(history, optimum):
    return next((h["trial"] for h in history if h["score"] is not None and h["score"] >= optimum - 1e-9), None)


def test_acquisition_functions_by_hand():
    mean, std = np.array([1.0, 0.0]), np.array([1.0, 2.0])
    # EI over best 0 at mean 1, std 1: z = 1 -> 1 * Phi(1) + phi(1)
    phi1, Phi1 = math.exp(-0.5) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    ei = acquisition(mean, std, "ei", np.random.default_rng(0), best=0.0)
    assert ei[0] == pytest.approx(Phi1 + phi1) and ei[1] == pytest.approx(2 / math.sqrt(2 * math.pi))
    assert acquisition(mean, std, "ucb", np.random.default_rng(0), 0.0, beta=2.0).tolist() == [3.0, 4.0]
    its = acquisition(mean, std, "its", np.random.default_rng(5), 0.0)
    z = np.random.default_rng(5).standard_normal(2)
    assert its.tolist() == pytest.approx((mean + std * z).tolist())


def test_nb201_neighbourhood_is_every_single_edge_change():
    space = NB201Space()
    arch = space.sample(random.Random(3))
    nb = neighbours(space, arch, random.Random(0))
    enc = space.categorical()
    assert len(nb) == 24 and len(set(nb)) == 24
    base = list(enc.encode(arch))
    assert all(sum(a != b for a, b in zip(enc.encode(n), base)) == 1 for n in nb)


def test_bananas_finds_the_optimum_of_a_small_synthetic_table():
    opt = synthetic_optimum()
    hits = [first_hit(search(Bananas(**FAST), trials=100, seed=s).history, opt) for s in range(2)]
    assert all(h is not None and h <= 100 for h in hits), hits
    # random search at the same budget finds it only by luck (100 of 15,625 cells)
    rand = [first_hit(search(STRATEGIES.get("random")(), trials=100, seed=s).history, opt) for s in range(2)]
    assert rand == [None, None]


@pytest.mark.parametrize("move", ["best", "first"])
def test_local_search_climbs_to_the_optimum_of_an_additive_table(move):
    # an additive score has no local optimum but the global one under single-edge moves
    res = search(LocalSearch(move=move), trials=220)
    assert first_hit(res.history, synthetic_optimum()) is not None
    assert res.metrics["moves"] >= 1 and res.metrics["local_optima"] >= 1  # reached it, then restarted
    assert res.metrics["best_score"] == pytest.approx(synthetic_optimum())


def test_local_search_moves_only_uphill():
    ls = LocalSearch()
    res = search(ls, trials=120)
    # the sequence of climb starts: the best of the initial sample, then strictly better neighbours
    scores = {h["arch"]: h["score"] for h in res.history}
    assert ls.ls["optima"] or ls.ls["current"]
    for arch, score in ls.ls["optima"]:
        assert all(scores.get(n, -1) <= score for n in neighbours(NB201Space(C=2, N=1), arch, random.Random(0)))


@pytest.mark.parametrize("name, hp", [("bananas", {**FAST, "batch": 5, "num_init": 5}), ("local-search", {}),
                                      ("local-search", {"move": "first"})])
def test_resume_after_a_kill_is_identical(tmp_path, crash, name, hp):
    whole = search(STRATEGIES.get(name)(**hp), trials=30, run=RunDir.create(tmp_path, "search", {}, name="whole"))
    run = RunDir.create(tmp_path, "search", {}, name="cut")
    with crash(SearchContext, "evaluate", at=2, exc=KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        search(STRATEGIES.get(name)(**hp), trials=30, run=run)
    resumed = search(STRATEGIES.get(name)(**hp), trials=30, run=RunDir.open(run.path))
    assert resumed.history == whole.history and resumed.arch == whole.arch
    assert resumed.metrics == whole.metrics


def test_bad_options_are_config_errors():
    for name, hp, needle in [("bananas", {"acquisition": "pi"}, "its, ucb, ei"), ("bananas", {"members": 1}, ">= 2"),
                             ("bananas", {"subsample": 0}, "subsample"), ("local-search", {"move": "worst"}, "best")]:
        with pytest.raises(ConfigError, match=needle):
            STRATEGIES.get(name)(**hp)
    from nasforge.spaces.darts import DartsSpace

    with pytest.raises(ConfigError, match="tokenizer"):
        Bananas().preflight(DartsSpace(), {})


@pytest.mark.parametrize("method", ["bananas", "local-search"])
def test_cli_end_to_end_on_the_table(tables_dir, tmp_path, run_cli, cli_ok, method):
    out = tmp_path / "runs"
    extra = ["--set", "steps=40", "--set", "num_init=5", "--set", "batch=5"] if method == "bananas" else []
    cli_ok("search", "--space", "nb201", "--method", method, "--estimator", "table", "--tables", str(tables_dir),
           "--trials", "20", *extra, "--out", str(out), "--name", "a", "--quiet")
    result = json.loads((out / "a" / "result.json").read_text())
    assert result["trials"]["scored"] == 20 and result["table"]["cifar10_test_200"] > 0
    cli_ok("report", str(out / "a"), "--out", str(tmp_path / "r.html"))
    assert "Multi-trial search" in (tmp_path / "r.html").read_text()
    code, _, err = run_cli("search", "--space", "nb201", "--method", method, "--estimator", "table", "--tables",
                           str(tables_dir), "--trials", "20", "--set", "num_init=0", "--out", str(tmp_path / "bad"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "num_init" in err
    assert not (tmp_path / "bad").exists()
    assert method in cli_ok("list")
