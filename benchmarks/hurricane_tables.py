"""HURRICANE, training-free claims on the published latency tables (HELP, NB201); prints one JSON object.

* H1' (table fit): for every FBNet device column of HELP, a per-(layer, op) table is fitted by least squares
  on at most ``--n-fit`` architectures; the share of the held-out ones predicted within +/-10 % (target >= 90 %),
  the median absolute % error and Spearman rho. pixel3, raspi4, eyeriss and fpga are flagged: HELP built
  those FBNet columns as sums of per-block measurements, so a perfect fit there is no evidence of additivity.
* H2 (table devices): per-layer Jaccard of the candidate sets (hardware/selection.py: at most 4
  non-dominated ops per layer on within-layer latency differences, the only part of the fitted table that
  HELP's whole-network latencies determine; FLOPs at FBNet's ImageNet scale) between pairs of table devices.
  Noise floor: the same device's table fitted on two different random 1,000-network subsets (fit seeds 0
  and 1); a layer counts as differing across devices only when the cross-device Jaccard is below the lower
  of the two devices' same-device Jaccards in that layer. Also checked: a random zero-sum per-layer offset
  added to the fitted table changes no selected set.
* Device-specific search pays: regularised evolution under a hard latency constraint on NB201 (the
  `hurricane` strategy with --estimator table: 12-epoch CIFAR-10 validation accuracy as the search signal,
  HELP latency), searching for device A with A's budget (a quantile of A's latency column) and deploying on
  device B under B's budget of the same quantile, against searching on B directly. Reported per pair and
  quantile over ``--seeds`` seeds: the mean 200-epoch CIFAR-10 test accuracy of both winners, the share of
  A-winners that violate B's budget (not deployable on B), the accuracy difference counting a violating
  winner as 0 (nothing deployable), and, on the seeds where A's winner does fit B's budget, both winners'
  mean accuracy.

Usage: python benchmarks/hurricane_tables.py --tables ../shared/data/benchmarks [--seeds 100] > out.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def fit_all(tables: str, n_fit: int) -> list[dict]:
    from nasforge.tables.latency import LatencyTable
    from nasforge.hardware.devices import SUMMED_FBNET_DEVICES
    from nasforge.hardware.tablefit import fit_fbnet_device

    lat = LatencyTable.load(tables, space="fbnet")
    out = []
    for d in lat.devices():
        _, rep = fit_fbnet_device(lat, d, n_fit=n_fit, seed=0)
        rep["summed_by_construction"] = d in SUMMED_FBNET_DEVICES
        rep["h1_prime_pass"] = rep["heldout_within_10pct"] >= 0.9
        out.append(rep)
    return out


def table_jaccard(tables: str, pairs: list[tuple[str, str]], k: int = 4) -> list[dict]:
    from nasforge.hardware.lut import LayerLatencyTable
    from nasforge.hardware.selection import dominated_pairs, jaccard, layer_flops, select_candidates
    from nasforge.hardware.tablefit import fit_fbnet_device
    from nasforge.spaces.fbnet import FBNetSpace
    from nasforge.tables.latency import LatencyTable

    space = FBNetSpace(in_channels=3, num_classes=1000, resolution=224)
    flops = layer_flops(space)
    lat = LatencyTable.load(tables, space="fbnet")
    sel, floor, checks = {}, {}, {}
    rng = np.random.default_rng(0)
    out = []
    for a, b in pairs:
        for d in (a, b):
            if d in sel:
                continue
            fits = [fit_fbnet_device(lat, d, n_fit=1000, seed=fs)[0] for fs in (0, 1)]
            sel[d] = [select_candidates(space, t, k, flops)["candidates"] for t in fits]
            floor[d] = jaccard(sel[d][0], sel[d][1])
            t = fits[0]
            c = rng.normal(0.0, 0.3 * float(np.mean([v for row in t.entries for v in row.values()])), len(t.entries))
            c -= c.mean()
            shifted = LayerLatencyTable(d, [{o: v + c[i] for o, v in row.items()} for i, row in enumerate(t.entries)],
                                        t.fixed)
            checks[d] = {"offset_shift_changes_selection": select_candidates(space, shifted, k, flops)["candidates"]
                         != sel[d][0], "dominated_kept_ops": len(dominated_pairs(sel[d][0], t, flops)),
                         "same_device_layers_differing": sum(x < 1 for x in floor[d])}
        j = jaccard(sel[a][0], sel[b][0])
        above = [j[l] < min(floor[a][l], floor[b][l]) for l in range(len(j))]
        out.append({"devices": [a, b], "jaccard_per_layer": j, "mean_jaccard": float(np.mean(j)),
                    "layers_differing": sum(x < 1 for x in j), "layers_differing_above_noise": sum(above),
                    "same_device_jaccard_a": floor[a], "same_device_jaccard_b": floor[b],
                    "checks_a": checks[a], "checks_b": checks[b], "top4_a": sel[a][0], "top4_b": sel[b][0]})
    return out


def search_once(tables: str, target: str, budget: float, seed: int, trials: int) -> str:
    from nasforge.estimators.table import TableEstimator
    from nasforge.spaces.nb201 import NB201Space
    from nasforge.engine.base import Budget, SearchContext
    from nasforge.strategies.hurricane import Hurricane

    strat = Hurricane(target=target, latency_ms=budget)
    ctx = SearchContext(space=NB201Space(), budget=Budget(trials=trials), seed=seed,
                        estimator=TableEstimator(tables))
    return strat.search(ctx).arch


def device_specific(tables: str, devices: list[str], pairs: list[tuple[str, str]], quantiles: list[float],
                    seeds: int, trials: int) -> dict:
    from nasforge.tables import NB201Table
    from nasforge.tables.latency import LatencyTable

    acc = NB201Table.load(tables)
    lat = LatencyTable.load(tables, space="nb201")
    test = acc.column("cifar10", "test_200")
    budgets = {(d, q): float(np.quantile(lat.column(d), q)) for d in devices for q in quantiles}
    winners: dict = {}
    for q in quantiles:
        for d in devices:
            winners[(d, q)] = [search_once(tables, d, budgets[(d, q)], s, trials) for s in range(seeds)]
    rows = []
    for a, b in pairs:
        for q in quantiles:
            TB = budgets[(b, q)]
            arch_a, arch_b = winners[(a, q)], winners[(b, q)]
            acc_a = np.array([test[acc.index_of(x)] for x in arch_a])
            acc_b = np.array([test[acc.index_of(x)] for x in arch_b])
            viol = np.array([lat.latency(x, b) > TB for x in arch_a])
            ok = lat.column(b) <= TB
            rows.append({
                "searched_for": a, "deployed_on": b, "quantile": q, "budget_b_ms": TB,
                "mean_test_acc_searched_on_b": float(acc_b.mean()),
                "mean_test_acc_searched_for_a": float(acc_a.mean()),
                "accuracy_lost_pp_all": float((acc_b - acc_a).mean()),
                "share_a_winners_violating_b_budget": float(viol.mean()),
                "accuracy_lost_pp_violations_count_as_zero": float((acc_b - np.where(viol, 0.0, acc_a)).mean()),
                "a_winners_within_b_budget": int((~viol).sum()),
                "mean_test_acc_a_winners_within_b_budget": float(acc_a[~viol].mean()) if (~viol).any() else None,
                "mean_test_acc_b_winners_same_seeds": float(acc_b[~viol].mean()) if (~viol).any() else None,
                "best_possible_under_b_budget": float(test[ok].max()),
                "b_winners_within_b_budget": float(np.mean([lat.latency(x, b) <= TB for x in arch_b])),
            })
    return {"budgets_ms": {f"{d}@{q}": v for (d, q), v in budgets.items()}, "pairs": rows,
            "winners": {f"{d}@{q}": w for (d, q), w in winners.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tables", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "benchmarks"))
    p.add_argument("--n-fit", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--parts", default="h1,h2,search", help="any of h1 (table fits), h2, search")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    import torch

    torch.set_num_threads(1)
    t0 = time.time()
    load = os.getloadavg()
    fits = fit_all(args.tables, args.n_fit) if "h1" in parts else []
    table_pairs = [("pixel3", "titan_rtx_1"), ("pixel2", "gold_6240"), ("samsung_a50", "raspi4"),
                   ("titan_rtx_1", "titan_rtx_64")]
    jac = table_jaccard(args.tables, table_pairs) if "h2" in parts else None
    devices = ["titan_rtx_1", "pixel3", "raspi4", "gold_6240"]
    pairs = [("titan_rtx_1", "pixel3"), ("pixel3", "titan_rtx_1"), ("titan_rtx_1", "raspi4"),
             ("raspi4", "titan_rtx_1"), ("pixel3", "raspi4"), ("gold_6240", "pixel3")]
    dev = (device_specific(args.tables, devices, pairs, [0.25, 0.5, 0.75], args.seeds, args.trials)
           if "search" in parts else None)
    phones = ["pixel2", "pixel3", "samsung_a50", "samsung_s7", "essential_ph_1"]
    evidence = [f for f in fits if not f["summed_by_construction"]]
    out = {
        "benchmark": "hurricane_tables", "parts": sorted(parts), "seeds": args.seeds, "trials_per_search": args.trials, "n_fit": args.n_fit,
        "h1_prime": {"per_device": fits,
                     "phones": {f["device"]: f["heldout_within_10pct"] for f in fits if f["device"] in phones},
                     "devices_passing_90pct_excluding_summed": sum(f["h1_prime_pass"] for f in evidence),
                     "devices_counted": len(evidence)},
        "h2_table_devices": jac,
        "device_specific_search": dev,
        "wall_s": time.time() - t0, "load_avg_at_start": load, "load_avg_at_end": os.getloadavg(),
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip(),
    }
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
