"""Multi-objective search on NAS-Bench-201 x the 27 HELP device columns (issue 22 item 3).

For every device, NSGA-II (`nsga2`, objectives accuracy and latency@DEVICE, its defaults) searches with the
table estimator for --budget queries; random search and regularised evolution on accuracy alone (`random`,
`evolution`) get the same queries, and their front is taken from everything they evaluated. The search
signal is CIFAR-10's 12-epoch validation accuracy (the table estimator's default).

Measured per run: the hypervolume of the found front (accuracy signal, latency) divided by that of the
exact front over all 15,625 cells, both normalised by the exact front's ideal and nadir points with the
reference 10 % beyond the nadir (`nasforge.hardware.pareto.normalized_hypervolume`); the same ratio with the
200-epoch test accuracy of the found architectures against the exact 200-epoch front ("ground truth"); and
the share of the exact front's points the search evaluated. Target: mean ratio >= 0.95 within 300
queries on at least 20 of 27 devices.

Resumable: each finished run is a JSON file in --work (reused); seeds run in order over all devices and
methods. Prints the summary JSON (docs/results/multiobjective.json).

    nice -n 10 python benchmarks/multiobjective.py --seeds 10 --work runs/bench_multiobjective > docs/results/multiobjective.json
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
METHODS = ("nsga2", "random", "evolution")
CHECKPOINTS = (100, 200, 300)


def _front(F: np.ndarray) -> np.ndarray:
    from nasforge.hardware.pareto import pareto_mask

    return F[pareto_mask(F)]


def run_one(device: str, method: str, seed: int, tables: str, budget: int, exact: dict[str, np.ndarray],
            cols: dict[str, np.ndarray], index: dict[str, int]) -> dict[str, Any]:
    import torch

    from nasforge.estimators.table import TableEstimator
    from nasforge.hardware.pareto import normalized_hypervolume
    from nasforge.registry import STRATEGIES, import_all
    from nasforge.spaces.nb201 import NB201Space
    from nasforge.engine.base import Budget, SearchContext

    torch.set_num_threads(1)
    import_all()
    space = NB201Space()
    est = TableEstimator(tables)
    hp = {"objectives": ["accuracy", f"latency@{device}"]} if method == "nsga2" else {}
    t0 = time.perf_counter()
    res = STRATEGIES.get(method)(**hp).search(SearchContext(space=space, budget=Budget(trials=budget), seed=seed,
                                                            estimator=est))
    idx = np.array([index[h["arch"]] for h in res.history])
    out: dict[str, Any] = {"device": device, "method": method, "seed": seed, "trials": len(idx),
                           "seconds": time.perf_counter() - t0}
    for what, acc in (("signal", cols["val_12"]), ("ground_truth", cols["test_200"])):
        E = exact[what]
        ideal, nadir = E.min(axis=0), E.max(axis=0)
        hv_exact = normalized_hypervolume(E, ideal, nadir)
        exact_set = {tuple(r) for r in E}
        for b in CHECKPOINTS:
            sel = idx[:b]
            F = np.stack([-acc[sel], cols["latency"][sel]], axis=1)
            out[f"{what}_ratio_{b}"] = normalized_hypervolume(F, ideal, nadir) / hv_exact
            out[f"{what}_exact_points_{b}"] = len({tuple(r) for r in _front(F)} & exact_set) / len(exact_set)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", type=Path, default=DEFAULT_TABLES)
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. seeds-1 per device and method")
    p.add_argument("--budget", type=int, default=300)
    p.add_argument("--devices", default=None, help="comma-separated; default: all 27 NB201 columns")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--work", type=Path, default=REPO / "runs" / "bench_multiobjective")
    args = p.parse_args()

    from nasforge.tables.nb201 import NB201Table

    table = NB201Table.load(args.tables)
    lat = table.latency
    devices = args.devices.split(",") if args.devices else lat.devices()
    methods = [m for m in args.methods.split(",") if m]
    index = {table.arch_of(i): i for i in range(len(table))}
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    acc = {"val_12": np.asarray(table.column("cifar10", "val_12")), "test_200": np.asarray(table.column("cifar10", "test_200"))}
    per_device = {}
    for d in devices:
        cols = {**acc, "latency": np.asarray(lat.column(d), float)}
        exact = {what: _front(np.stack([-acc[m], cols["latency"]], axis=1))
                 for what, m in (("signal", "val_12"), ("ground_truth", "test_200"))}
        per_device[d] = (cols, exact)
    for seed in range(args.seeds):
        for d in devices:
            cols, exact = per_device[d]
            for m in methods:
                f = args.work / f"{d}_{m}_{seed}.json"
                if f.exists():
                    runs.append(json.loads(f.read_text()))
                    continue
                r = run_one(d, m, seed, str(args.tables), args.budget, exact, cols, index)
                tmp = f.with_suffix(".tmp")
                tmp.write_text(json.dumps(r))
                tmp.replace(f)
                runs.append(r)

    summary: dict[str, Any] = {}
    for d in devices:
        summary[d] = {"exact_front_size": int(len(per_device[d][1]["signal"]))}
        for m in methods:
            rs = [r for r in runs if r["device"] == d and r["method"] == m]
            if not rs:
                continue
            summary[d][m] = {k: round(float(np.mean([r[k] for r in rs])), 4)
                             for k in rs[0] if k.startswith(("signal_", "ground_truth_"))}
            summary[d][m]["runs"] = len(rs)
    b = args.budget if args.budget in CHECKPOINTS else max(c for c in CHECKPOINTS if c <= args.budget)
    met = {m: sum(summary[d].get(m, {}).get(f"signal_ratio_{b}", 0) >= 0.95 for d in devices) for m in methods}
    met_gt = {m: sum(summary[d].get(m, {}).get(f"ground_truth_ratio_{b}", 0) >= 0.95 for d in devices) for m in methods}
    report = {"benchmark": "multiobjective", "space": "nb201", "signal": "cifar10 12-epoch validation accuracy",
              "ground_truth": "cifar10 200-epoch test accuracy", "budget": args.budget, "seeds": [0, args.seeds - 1],
              "hypervolume": "normalised by the exact front's ideal/nadir, reference 1.1 (nasforge.hardware.pareto)",
              "target": "mean signal ratio >= 0.95 at 300 queries on >= 20 of 27 devices",
              "devices_meeting_0.95_signal": met, "devices_meeting_0.95_ground_truth": met_gt,
              "single_runs_meeting_0.95_signal": {m: round(float(np.mean([r[f"signal_ratio_{b}"] >= 0.95 for r in runs
                                                                           if r["method"] == m])), 3) for m in methods},
              "worst_run_signal_ratio": {m: round(float(min(r[f"signal_ratio_{b}"] for r in runs if r["method"] == m)), 4)
                                         for m in methods},
              "mean_over_devices": {m: {k: round(float(np.mean([summary[d][m][k] for d in devices if m in summary[d]])), 4)
                                        for k in next(iter(summary.values()))[m] if k != "runs"}
                                    for m in methods if m in next(iter(summary.values()))},
              "per_device": summary, "wall_s_this_invocation": round(time.perf_counter() - t0, 1)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
