"""Query-mode efficiency of the multi-trial strategies on NAS-Bench-201 and NAS-Bench-Macro.

Each strategy searches with the table estimator: on NB201 it sees only the 12-epoch *validation*
accuracy (dataset --dataset, CIFAR-10 by default); on NAS-Bench-Macro the mean CIFAR-10 test accuracy of
3 seeds (the only metric the table has). After 25/50/100/200 queries (distinct architectures looked up)
the recommendation is the best architecture by that score; we report its ground truth (NB201: 200-epoch
test accuracy) over seeds: mean, quartiles and the fraction of seeds whose recommendation is the optimum
(NB201 CIFAR-10: 94.37; Macro: 93.13). One search per seed with the largest budget gives all budgets,
because a strategy's first b queries do not depend on the budget.

Seeds start at --first-seed (default 100): seeds 0-59 were used while choosing hyperparameters
(evolution population/sample size, PNAS beam K, surrogate steps), so the reported runs are fresh.

    python benchmarks/query_efficiency.py --seeds 100 --jobs 2          # full run
    python benchmarks/query_efficiency.py                               # quick look (3 seeds)
"""
from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TABLES = REPO / ".." / "shared" / "data" / "benchmarks"


def run_one(space_name: str, strategy: str, seed: int, budget: int, tables: str, dataset: str,
            hp: dict[str, Any]) -> dict[str, Any]:
    """One search; returns, per query count, the recommendation's score and ground truth."""
    import torch

    from nasforge.estimators.table import TableEstimator
    from nasforge.registry import STRATEGIES
    from nasforge.spaces.macro import MacroSpace
    from nasforge.spaces.nb201 import NB201Space
    from nasforge.strategies import evolution, pnas, random_search  # noqa: F401  (registers the strategies)
    from nasforge.engine.base import Budget, SearchContext

    torch.set_num_threads(1)  # one search per process; --jobs processes share the cores
    space = NB201Space() if space_name == "nb201" else MacroSpace()
    est = TableEstimator(tables, dataset=dataset)
    t0 = time.perf_counter()
    result = STRATEGIES.get(strategy)(**hp).search(
        SearchContext(space=space, budget=Budget(trials=budget), seed=seed, estimator=est))
    seconds = time.perf_counter() - t0
    truth = {}
    curve = []
    for h in result.history:
        arch = h["best_arch"]
        if arch not in truth:
            truth[arch] = est.ground_truth(space, arch)["test_accuracy"]
        curve.append((h["best_score"], truth[arch]))
    return {"space": space_name, "strategy": strategy, "seed": seed, "curve": curve, "seconds": seconds}


def summarise(runs: list[dict[str, Any]], budgets: list[int], optimum: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for b in budgets:
        truth = np.array([r["curve"][min(b, len(r["curve"])) - 1][1] for r in runs])
        score = np.array([r["curve"][min(b, len(r["curve"])) - 1][0] for r in runs])
        q25, q50, q75 = np.percentile(truth, [25, 50, 75])
        out[str(b)] = {"mean": round(float(truth.mean()), 3), "std": round(float(truth.std()), 3),
                       "q25": round(float(q25), 3), "median": round(float(q50), 3), "q75": round(float(q75), 3),
                       "frac_optimum": round(float((truth >= optimum - 1e-6).mean()), 3),
                       "mean_search_score": round(float(score.mean()), 3)}
    out["seconds_per_search"] = round(float(np.mean([r["seconds"] for r in runs])), 2)
    return out


def signal_ceiling(table: Any, dataset: str) -> dict[str, Any]:
    """What the search signal allows at best: the ground truth of the cells ranked first by the 12-epoch
    validation accuracy (a search that always returns the k-th best cell by its signal scores this)."""
    signal, truth = table.column(dataset, "val_12"), table.column(dataset, "test_200")
    order = np.argsort(-signal, kind="stable")
    return {f"rank_{k}": round(float(truth[order[k - 1]]), 3) for k in (1, 2, 3, 4, 5)} | {
        "mean_of_top_5": round(float(truth[order[:5]].mean()), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", type=Path, default=DEFAULT_TABLES, help="folder holding nb201/ and nas_bench_macro/")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (use 100+ for the full run)")
    p.add_argument("--first-seed", type=int, default=100)
    p.add_argument("--budgets", default="25,50,100,200", help="query counts to report")
    p.add_argument("--spaces", default="nb201,macro")
    p.add_argument("--strategies", default="random,evolution,pnas")
    p.add_argument("--dataset", default="cifar10", help="NB201 data set (cifar10, cifar100, imagenet16-120)")
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes")
    p.add_argument("--pnas-K", default=None, type=int, help="PNAS beam width (default: the space's, 40 / 8)")
    args = p.parse_args()

    from nasforge.tables import MacroTable, NB201Table

    budgets = sorted(int(b) for b in args.budgets.split(","))
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    spaces = [s for s in args.spaces.split(",") if s]
    strategies = [s for s in args.strategies.split(",") if s]
    hp = {"random": {}, "evolution": {}, "pnas": {} if args.pnas_K is None else {"K": args.pnas_K}}
    optimum = {}
    if "nb201" in spaces:
        optimum["nb201"] = NB201Table.load(args.tables).best(args.dataset, "test_200")[1]
    if "macro" in spaces:
        optimum["macro"] = MacroTable.load(args.tables).best()[1]

    jobs = [(sp, st, seed, max(budgets), str(args.tables), args.dataset, hp[st])
            for sp in spaces for st in strategies for seed in seeds]
    t0 = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            runs = list(pool.map(run_one, *zip(*jobs)))
    else:
        runs = [run_one(*j) for j in jobs]
    report: dict[str, Any] = {
        "benchmark": "query_efficiency", "tables": str(args.tables.resolve()), "dataset_nb201": args.dataset,
        "seeds": [seeds[0], seeds[-1]], "n_seeds": len(seeds), "budgets": budgets,
        "signal": {"nb201": f"{args.dataset} 12-epoch validation accuracy", "macro": "CIFAR-10 mean test accuracy"},
        "ground_truth": {"nb201": f"{args.dataset} 200-epoch test accuracy", "macro": "CIFAR-10 mean test accuracy"},
        "reference": {"nb201_cifar10_random_100_queries": 93.74, "target_best_strategy_100_queries": 94.25},
    }
    if "nb201" in spaces:
        report["nb201_ceiling"] = signal_ceiling(NB201Table.load(args.tables), args.dataset)
    for sp in spaces:
        report[sp] = {"optimum": round(optimum[sp], 3)}
        for st in strategies:
            report[sp][st] = summarise([r for r in runs if r["space"] == sp and r["strategy"] == st], budgets, optimum[sp])
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
