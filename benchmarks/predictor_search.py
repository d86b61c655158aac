"""Predictor-guided search on NAS-Bench-201 (issue 22 item 4): BANANAS and local search against random search
and regularised evolution at equal queries, on the published table (query mode, CIFAR-10).

Two settings, each over --runs seeds (0, 1, ...):

* ``find_optimum``: the search sees the 200-epoch test accuracy (an oracle signal, as in White et al.'s
  NB201 experiments); we record how many queries (distinct architectures looked up) it takes until the
  optimum, 94.37, has been queried, up to --cap queries (a run that has not found it by then counts as
  > cap). Target: median <= 150 over 100 runs.
* ``val12``: the search sees the 12-epoch validation accuracy; after 150 queries its recommendation (the best
  by that signal) is scored by its 200-epoch test accuracy. Target: mean >= 94.2.

Resumable: every finished run is a JSON file in --work (reused when the script runs again; an interrupted
run starts over — a run lasts seconds to a minute). Seeds run in order, every method and setting per seed,
so a partial run still compares the methods on the same seeds. Prints the summary JSON (write it to
docs/results/predictor_search.json).

    nice -n 10 python benchmarks/predictor_search.py --runs 100 --work runs/bench_predictor > docs/results/predictor_search.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TABLES = REPO / ".." / "shared" / "data" / "benchmarks"
METHODS = ("bananas", "local-search", "evolution", "random")
SETTINGS = {"find_optimum": "test_200", "val12": "val_12"}


class _Found(Exception):
    def __init__(self, queries: int) -> None:
        self.queries = queries


def run_one(setting: str, method: str, seed: int, tables: str, cap: int, budget: int) -> dict[str, Any]:
    import warnings

    import torch

    from nasforge.estimators.table import TableEstimator
    from nasforge.registry import STRATEGIES, import_all
    from nasforge.spaces.nb201 import NB201Space
    from nasforge.engine.base import Budget, SearchContext

    torch.set_num_threads(1)
    import_all()
    warnings.simplefilter("ignore")  # the oracle signal warns that it is the ground truth: intended here
    space = NB201Space()
    est = TableEstimator(tables, dataset="cifar10", metric=SETTINGS[setting])
    optimum = est.lookup(space).table.best("cifar10", "test_200")[1]
    t0 = time.perf_counter()
    if setting == "find_optimum":
        class Ctx(SearchContext):
            queries = 0

            def evaluate(self, archs, *, round=None):  # stop as soon as the optimum has been queried
                out = super().evaluate(archs, round=round)
                for res in out:
                    Ctx.queries += 1
                    if res is not None and res["score"] >= optimum - 1e-9:
                        raise _Found(Ctx.queries)
                return out

        try:
            STRATEGIES.get(method)().search(Ctx(space=space, budget=Budget(trials=cap), seed=seed, estimator=est))
            found = None
        except _Found as f:
            found = f.queries
        return {"setting": setting, "method": method, "seed": seed, "queries_to_optimum": found,
                "seconds": time.perf_counter() - t0}
    res = STRATEGIES.get(method)().search(SearchContext(space=space, budget=Budget(trials=budget), seed=seed,
                                                        estimator=est))
    curve = {}
    for b in (50, 100, 150):
        if b <= len(res.history):
            curve[str(b)] = est.ground_truth(space, res.history[b - 1]["best_arch"])["test_accuracy"]
    return {"setting": setting, "method": method, "seed": seed, "test_200": curve, "trials": len(res.history),
            "seconds": time.perf_counter() - t0}


def summarise(runs: list[dict[str, Any]], cap: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for setting in SETTINGS:
        out[setting] = {}
        for m in METHODS:
            rs = [r for r in runs if r["setting"] == setting and r["method"] == m]
            if not rs:
                continue
            s: dict[str, Any] = {"runs": len(rs), "mean_seconds": round(float(np.mean([r["seconds"] for r in rs])), 2)}
            if setting == "find_optimum":
                q = np.array([r["queries_to_optimum"] if r["queries_to_optimum"] is not None else np.inf for r in rs])
                med = float(np.median(q))
                s.update(median_queries=med if np.isfinite(med) else f"> {cap}",
                         q25=float(np.percentile(q, 25)) if np.isfinite(np.percentile(q, 25)) else f"> {cap}",
                         q75=float(np.percentile(q, 75)) if np.isfinite(np.percentile(q, 75)) else f"> {cap}",
                         found_within_cap=round(float(np.isfinite(q).mean()), 3),
                         found_within_150=round(float((q <= 150).mean()), 3))
            else:
                for b in ("50", "100", "150"):
                    v = np.array([r["test_200"][b] for r in rs if b in r["test_200"]])
                    s[f"mean_at_{b}"] = round(float(v.mean()), 3)
                    s[f"std_at_{b}"] = round(float(v.std(ddof=1)), 3) if len(v) > 1 else None
            out[setting][m] = s
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", type=Path, default=DEFAULT_TABLES)
    p.add_argument("--runs", type=int, default=5, help="seeds 0 .. runs-1 (100 for the full benchmark)")
    p.add_argument("--cap", type=int, default=300, help="find_optimum: most queries per run")
    p.add_argument("--budget", type=int, default=150, help="val12: queries per run")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--work", type=Path, default=REPO / "runs" / "bench_predictor_search")
    p.add_argument("--summary-only", action="store_true",
                   help="summarise the finished runs in --work (seeds < --runs) without running anything")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    methods = [m for m in args.methods.split(",") if m]
    t0 = time.perf_counter()
    runs = []
    for seed in range(args.runs):
        for setting in SETTINGS:
            for m in methods:
                f = args.work / f"{setting}_{m}_{seed}.json"
                if f.exists():
                    runs.append(json.loads(f.read_text()))
                    continue
                if args.summary_only:
                    continue
                r = run_one(setting, m, seed, str(args.tables), args.cap, args.budget)
                tmp = f.with_suffix(".tmp")
                tmp.write_text(json.dumps(r))
                tmp.replace(f)  # atomic: a killed run leaves no half-written result
                runs.append(r)
    report = {"benchmark": "predictor_search", "space": "nb201", "dataset": "cifar10",
              "seeds": [0, args.runs - 1], "cap": args.cap,
              "runs_per_method": {m: sum(r["method"] == m for r in runs) // len(SETTINGS) for m in methods}, "budget_val12": args.budget,
              "signals": {"find_optimum": "200-epoch test accuracy (oracle)", "val12": "12-epoch validation accuracy"},
              "ground_truth": "200-epoch test accuracy", "optimum": 94.37,
              "targets": {"find_optimum_median_queries": 150, "val12_mean_at_150": 94.2},
              "hyperparameters": "each strategy's defaults (nasforge list bananas / local-search / evolution / random)",
              **summarise(runs, args.cap), "wall_s_this_invocation": round(time.perf_counter() - t0, 1)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
