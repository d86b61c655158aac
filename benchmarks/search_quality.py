"""MANAS claim M3 at CPU scale: search quality of manas, manas-ls, random-ws, darts and single-darts on nb201.

Every method searches the NAS-Bench-201 cell on Fashion-MNIST with the same supernet (C=8, N=1 by
default), data (a `--subset` of the training set, split in halves), batch size and the same wall-clock
budget per run (`--seconds`). The one-shot weight schedule (cosine) is planned over `--epochs` and cut
by the clock, so faster methods see more epochs; `epochs_run` is reported. Diagnostics that only
the differentiable methods would pay for (the Hessian eigenvalue) are switched off.

For each derived cell it reports:
  * the NAS-Bench-201 200-epoch test accuracies on CIFAR-10, CIFAR-100 and ImageNet16-120 (table lookup;
    the cell was searched on Fashion-MNIST, so this measures transfer of the found topology);
  * its Fashion-MNIST test accuracy after retraining from scratch (`--retrain-epochs` epochs on
    `--retrain-subset` training images at C=`--retrain-C`, N=`--retrain-N`, one fixed seed; identical
    cells are trained once).
Derivation rules, side by side: the differentiable and bandit strategies record the final cell under every
derivation rule of their supernet (`default`: NB201's per-edge argmax with `none`; `no-none`: argmax among
the other ops; `connected`: the best-scoring cell whose input reaches its output), from the same search.
Per method and rule: the table accuracies, and how many seeds derived a disconnected (constant) cell.
Per method: mean and standard deviation over seeds, and the relative improvement
RI = (acc - mean acc of random-ws) / mean acc of random-ws (spec §4.6). As a reference, the table's
expectation for a uniformly random cell (the mean over all 15,625 cells) and its best cell.

Runs are scheduled seed-major (every method of seed 0, then seed 1, ...) so that changes in machine load
spread over methods; `--jobs 2` runs two searches at a time, one torch thread each.

    .venv/bin/python benchmarks/search_quality.py --seeds 0 --seconds 20 --epochs 3     # smoke run
    .venv/bin/python benchmarks/search_quality.py --seeds 0 1 2 --seconds 150 --jobs 2
    .venv/bin/python benchmarks/search_quality.py --methods darts single-darts manas manas-ls --no-retrain
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from nasforge import api
from nasforge.spaces.nb201 import NB201Space
from nasforge.supernet import DERIVATION_RULES
from nasforge.tables import NB201Table

DEFAULT_TABLES = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "benchmarks"
METHODS = ["manas", "manas-ls", "random-ws", "darts", "single-darts"]
#: per-method hyperparameters: only diagnostics switched off; every search setting is the method's default
HPARAMS: dict[str, dict[str, Any]] = {"darts": {"hessian_every": 0}, "single-darts": {"hessian_every": 0}}
TABLE_KEYS = {"cifar10": "cifar10_test_200", "cifar100": "cifar100_test_200",
              "imagenet16-120": "imagenet16-120_test_200"}


def _search(job: dict[str, Any]) -> dict[str, Any]:
    cfg = {"space": "nb201", "space_options": {"C": job["C"], "N": job["N"]}, "method": job["method"],
           "hparams": HPARAMS.get(job["method"], {}), "dataset": "fashion-mnist", "data_root": job["data_root"],
           "subset": job["subset"], "batch_size": job["batch"], "seed": job["seed"], "threads": 1,
           "budget": {"epochs": job["epochs"], "seconds": job["seconds"]}, "tables": job["tables"]}
    import nasforge.progress as progress

    progress.set_enabled(False)
    res = api.search(cfg, run_root=job["out"], run_name=f"{job['method']}-s{job['seed']}")
    metrics = res["search"]["metrics"]
    by_rule = {}
    if "derived_by_rule" in metrics:
        table = NB201Table.load(job["tables"])
        for rule, arch in metrics["derived_by_rule"].items():
            rec = table.record(arch)
            by_rule[rule] = {"arch": arch, "degenerate": NB201Space().is_degenerate(arch),
                             "nb201": {k: rec[v] for k, v in TABLE_KEYS.items()}}
    return {"method": job["method"], "seed": job["seed"], "arch": res["arch"], "by_rule": by_rule,
            "epochs_run": metrics["epochs_run"], "search_wall_s": res["search"]["search_cost"]["wall_s"],
            "search_cpu_s": res["search"]["search_cost"]["cpu_s"],
            "nb201": {k: res["table"][v] for k, v in TABLE_KEYS.items()},
            "arch_file": res["arch_file"], "run_dir": res["run_dir"]}


def _retrain(job: dict[str, Any]) -> dict[str, Any]:
    import nasforge.progress as progress

    progress.set_enabled(False)
    res = api.train({"arch": job["arch_file"], "dataset": "fashion-mnist", "data_root": job["data_root"],
                     "subset": job["subset"], "test_subset": job["test_subset"], "threads": 1,
                     "space_options": {"C": job["C"], "N": job["N"]},
                     "train": {"epochs": job["epochs"], "seed": 0}}, run_root=job["out"])
    return {"arch": job["arch"], "test_accuracy": res["test_accuracy"], "params": res["params"],
            "train_wall_s": res["cost"]["wall_s"]}


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=METHODS)
    p.add_argument("--seconds", type=float, default=120.0, help="wall-clock budget of every search")
    p.add_argument("--epochs", type=int, default=50, help="planned epochs (cosine schedule); the clock cuts them")
    p.add_argument("--subset", type=int, default=5000, help="training images of the search (split in halves)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--retrain-epochs", type=int, default=2)
    p.add_argument("--retrain-subset", type=int, default=10000)
    p.add_argument("--test-subset", type=int, default=None, help="test images (default: all 10,000)")
    p.add_argument("--retrain-C", type=int, default=16)
    p.add_argument("--retrain-N", type=int, default=1)
    p.add_argument("--no-retrain", action="store_true")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--tables", default=str(DEFAULT_TABLES.resolve()))
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default="runs/search_quality", help="run directories are written here")
    args = p.parse_args()
    t0 = time.perf_counter()
    load_start = list(os.getloadavg())
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    jobs = [{"method": m, "seed": s, "C": args.C, "N": args.N, "subset": args.subset, "batch": args.batch,
             "epochs": args.epochs, "seconds": args.seconds, "tables": args.tables, "data_root": args.data_root,
             "out": str(out / "search")} for s in args.seeds for m in args.methods]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = list(pool.map(_search, jobs))
        retrained: dict[str, dict[str, Any]] = {}
        if not args.no_retrain:
            unique = {r["arch"]: r["arch_file"] for r in runs}
            rjobs = [{"arch": a, "arch_file": f, "subset": args.retrain_subset, "test_subset": args.test_subset,
                      "epochs": args.retrain_epochs, "C": args.retrain_C, "N": args.retrain_N,
                      "data_root": args.data_root, "out": str(out / "retrain")} for a, f in unique.items()]
            retrained = {r["arch"]: r for r in pool.map(_retrain, rjobs)}
    for r in runs:
        if r["arch"] in retrained:
            r["fmnist_test_accuracy"] = retrained[r["arch"]]["test_accuracy"]
            r["retrained_params"] = retrained[r["arch"]]["params"]

    metrics = list(TABLE_KEYS) + ([] if args.no_retrain else ["fmnist_test_accuracy"])

    def value(r: dict[str, Any], key: str) -> float:
        return r["fmnist_test_accuracy"] if key == "fmnist_test_accuracy" else r["nb201"][key]

    summary: dict[str, Any] = {}
    for m in args.methods:
        mine = [r for r in runs if r["method"] == m]
        summary[m] = {k: _stats([value(r, k) for r in mine]) for k in metrics}
        summary[m]["epochs_run"] = [r["epochs_run"] for r in mine]
        summary[m]["distinct_archs"] = len({r["arch"] for r in mine})
        if all(r["by_rule"] for r in mine):
            summary[m]["by_rule"] = {
                rule: {**{k: _stats([r["by_rule"][rule]["nb201"][k] for r in mine]) for k in TABLE_KEYS},
                       "degenerate_seeds": sum(r["by_rule"][rule]["degenerate"] for r in mine)}
                for rule in DERIVATION_RULES}
    if "random-ws" in summary:
        for m in args.methods:
            summary[m]["RI_vs_random_ws"] = {
                k: (summary[m][k]["mean"] - summary["random-ws"][k]["mean"]) / summary["random-ws"][k]["mean"]
                for k in metrics}
    table = NB201Table.load(args.tables)
    reference = {k: {"uniform_random_cell_mean": float(np.mean(table.column(k))), "best": table.best(k)[1]}
                 for k in TABLE_KEYS}
    print(json.dumps({
        "benchmark": "search_quality",
        "load_avg_1_5_15": {"start": load_start, "end": list(os.getloadavg())},
        "config": vars(args),
        "hparams": HPARAMS,
        "table_reference": reference,
        "summary": summary,
        "runs": [{k: v for k, v in r.items() if k not in ("arch_file",)} for r in runs],
        "wall_s": time.perf_counter() - t0,
        "out": str(out),
    }, indent=2))


if __name__ == "__main__":
    main()
