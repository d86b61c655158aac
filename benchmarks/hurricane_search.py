"""HURRICANE searches with real training on Fashion-MNIST: H3, H4, H5 and the headline; prints one JSON object.

Every search is `nasforge.search` with method `hurricane` (the same code as `nasforge search --method
hurricane`), at a scale the shared 2-core machine allows (set by the flags; the defaults are recorded in
the output): search subset ``--subset`` Fashion-MNIST training images split 50/50 into search-train and
held-out search-val, batch 64, ``--evals`` evolution evaluations per stage (population 16, tournament 4),
BN recalibration on 10 training batches and scoring on 5 held-out batches per candidate, and the winner
retrained from scratch for ``--retrain-epochs`` epochs on ``--retrain-subset`` images and tested on
``--test-subset`` official test images.

* ``h3``: hardware-aware space (32 candidates + skip, top-4 per layer on local-cpu-1t) vs the fixed
  FBNet-like 4-op baseline space (MBConv k3e3/k3e6/k5e3/k5e6), same supernet (two-stage 5+2 epochs) and
  evolution budget, T = 60 % of the raw LUT latency of the slowest baseline network (the constraint is on
  the raw LUT sum); per seed: retrained test accuracy of both winners and their latency measured end to
  end (pass: mean accuracy difference >= -0.3 pp and measured latencies <= 1.1 T, with T carried into
  end-to-end units by the calibration a*T+b; the plain measured <= 1.1 T check is reported too).
* ``h4``: one-stage SPOS (joint, 10 epochs) vs two-stage late_first (5 + 2) vs early_first (5 + 2), equal
  *total* evolution evaluations (``--evals`` for one stage, ``--evals // 2`` per stage for two), the default
  budget (fastest + 0.6 x (slowest - fastest) network of the selected space: always feasible, and it binds): retrained accuracy,
  supernet training seconds and proposals rejected by the constraint (pass: two-stage within 0.5 pp of
  one-stage).
* ``h5``: over every search above, the number of evaluated candidates over the budget (must be 0), the
  number of violating proposals rejected before evaluation, and in how many searches the constraint
  rejected anything (a constraint that never binds shows nothing).
* ``headline``: the `fbnet` space (width 0.25) searched for local-cpu-1t, local-cpu-2t-b32, pixel3 and
  titan_rtx_1 (a GPU at batch 1): chosen candidate sets, winners, retrained accuracy, and the cross table of
  every winner's latency on all four devices (local: LUT raw, calibrated and measured end to end; table
  devices: the per-(layer, op) table fitted from HELP, i.e. the latency of the full-width 224x224 network).

Usage: python benchmarks/hurricane_search.py --part h3|h4|headline [--seeds 0,1,2] > docs/results/hurricane_<part>.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_search(args, space: str, space_options: dict, hparams: dict, seed: int, epochs: int, run_root: Path,
               name: str, evals: int | None = None) -> dict:
    """One `hurricane` search + retraining in run directory `run_root/name`; a finished run there is reused
    (its result.json is read), an interrupted one is resumed, so the benchmark can be stopped and restarted."""
    from nasforge import api

    cfg = {"space": space, "space_options": space_options, "method": "hurricane", "dataset": "fashion-mnist",
           "subset": args.subset, "batch_size": 64, "seed": seed, "threads": 1, "budget": {"epochs": epochs},
           "hparams": {"population": 16, "sample_size": 4, "evaluations": evals or args.evals, "bn_batches": 10,
                       "eval_batches": 5, "lut_cache": None, **hparams},
           "retrain": {"epochs": args.retrain_epochs, "seed": seed}, "retrain_subset": args.retrain_subset,
           "test_subset": args.test_subset, "tables": args.tables}
    t = time.time()
    run_dir = run_root / name
    if (run_dir / "result.json").exists():
        res = json.loads((run_dir / "result.json").read_text())
    elif (run_dir / "config.json").exists():
        res = api.search(resume=run_dir)
    else:
        res = api.search(cfg, run_root=run_root, run_name=name)
    m = res["search"]["metrics"]
    return {"space": space, "seed": seed, "hparams": hparams, "epochs": epochs, "arch": res["arch"],
            "test_accuracy": res["retrain"]["test_accuracy"], "params": res["retrain"]["params"],
            "budget_ms": m["budget_ms"], "latency_ms": m["latency_ms"], "latency_calibrated_ms": m["latency_calibrated_ms"],
            "supernet_train_s": m["supernet_train_s"], "evaluated": m["evaluated"],
            "violations_rejected": m["violations_rejected"], "evaluated_over_budget": m["evaluated_over_budget"],
            "candidates": m["candidates"], "stages": m["stages"], "wall_s_this_process": time.time() - t,
            "run_dir": str(run_dir)}


def measured_ms(space_name: str, space_options: dict, arch, device: str) -> float:
    from nasforge.hardware.lut import measure_network
    from nasforge.hardware.service import _make_space

    sp = _make_space(space_name, space_options)
    return measure_network(sp.build(arch), sp, device, warmup=10, repeats=50, number=1)


def lut_for(space_name: str, space_options: dict, device: str, tables, calibrate: int = 0):
    from nasforge.hardware.cost import latency_model
    from nasforge.hardware.lut import LatencyCache, calibrate as run_cal, default_cache_path
    from nasforge.hardware.service import _make_space

    sp = _make_space(space_name, space_options)
    model = latency_model(device, sp, tables=tables, metric="raw")  # this benchmark calibrates and compares itself
    if calibrate and model.calibration is None:
        run_cal(sp, model, LatencyCache(default_cache_path(device), device), n=calibrate, seed=100)
    return sp, model


def h3(args, root: Path) -> dict:
    base_opts = {"ops": "baseline", "skip": False}
    sp, base_lut = lut_for("mobile", base_opts, "local-cpu-1t", args.tables, calibrate=20)
    hw_sp, hw_lut = lut_for("mobile", {}, "local-cpu-1t", args.tables, calibrate=20)
    slowest = [max(e, key=e.get) for e in base_lut.entries]
    T = 0.6 * base_lut.predict(slowest)  # spec 2.6: 60 % of the LUT latency of the slowest baseline network
    a, b = base_lut.calibration["a"], base_lut.calibration["b"]
    T_measured_units = a * T + b  # the same budget in end-to-end (calibrated) units
    hp = {"target": "local-cpu-1t", "latency_ms": T, "latency_metric": "raw", "stage_epochs": [5, 2]}
    rows = []
    for seed in args.seeds:
        for name, opts in (("hardware_aware", {}), ("baseline", base_opts)):
            r = run_search(args, "mobile", opts, hp, seed, 7, root, f"h3-{name}-s{seed}")
            r["variant"] = name
            r["measured_ms"] = measured_ms("mobile", opts, r["arch"], "local-cpu-1t")
            rows.append(r)
    import numpy as np

    acc = {v: [r["test_accuracy"] for r in rows if r["variant"] == v] for v in ("hardware_aware", "baseline")}
    diff = float(np.mean(acc["hardware_aware"]) - np.mean(acc["baseline"]))
    within_cal = all(r["measured_ms"] <= 1.1 * T_measured_units for r in rows)
    within_raw = all(r["measured_ms"] <= 1.1 * T for r in rows)
    return {"T_ms": T, "T_rule": "0.6 x raw LUT latency of the slowest baseline network on local-cpu-1t (constraint "
            "on the raw LUT sum)", "T_in_measured_units_ms": T_measured_units,
            "calibration_baseline": base_lut.calibration, "calibration_hw": hw_lut.calibration, "runs": rows,
            "mean_acc": {k: float(np.mean(v)) for k, v in acc.items()}, "mean_diff_pp": 100 * diff,
            "all_measured_within_1.1T_calibrated": within_cal, "all_measured_within_1.1T_raw": within_raw,
            "pass": 100 * diff >= -0.3 and within_cal}


def h4(args, root: Path) -> dict:
    import numpy as np

    rows = []
    for seed in args.seeds:
        for name, hp, ep in (("one_stage_joint_10", {"order": "joint"}, 10),
                             ("two_stage_late_first_5_2", {"order": "late_first", "stage_epochs": [5, 2]}, 7),
                             ("two_stage_early_first_5_2", {"order": "early_first", "stage_epochs": [5, 2]}, 7)):
            stages = 1 if hp["order"] == "joint" else 2
            r = run_search(args, "mobile", {}, {"target": "local-cpu-1t", **hp}, seed, ep, root,
                           f"h4-{name}-e{args.evals}-s{seed}", evals=args.evals // stages)  # equal total evaluations
            r["variant"] = name
            rows.append(r)
    names = sorted({r["variant"] for r in rows})
    summary = {n: {"mean_test_accuracy": float(np.mean([r["test_accuracy"] for r in rows if r["variant"] == n])),
                   "mean_supernet_train_s": float(np.mean([r["supernet_train_s"] for r in rows if r["variant"] == n])),
                   "mean_evaluated": float(np.mean([r["evaluated"] for r in rows if r["variant"] == n])),
                   "violations_rejected": [r["violations_rejected"] for r in rows if r["variant"] == n]}
               for n in names}
    d = summary["two_stage_late_first_5_2"]["mean_test_accuracy"] - summary["one_stage_joint_10"]["mean_test_accuracy"]
    per_seed = {}
    for r in rows:
        per_seed.setdefault(r["seed"], {})[r["variant"]] = r["test_accuracy"]
    diffs = [100 * (v["two_stage_late_first_5_2"] - v["one_stage_joint_10"]) for v in per_seed.values()]
    return {"runs": rows, "summary": summary, "late_minus_one_stage_pp": 100 * d, "pass": abs(100 * d) <= 0.5 or d > 0,
            "late_minus_one_stage_pp_per_seed": diffs, "equal_total_evaluations": True,
            "time_saving": 1 - summary["two_stage_late_first_5_2"]["mean_supernet_train_s"]
            / summary["one_stage_joint_10"]["mean_supernet_train_s"],
            "late_minus_early_pp": 100 * (summary["two_stage_late_first_5_2"]["mean_test_accuracy"]
                                          - summary["two_stage_early_first_5_2"]["mean_test_accuracy"])}


def headline(args, root: Path) -> dict:
    opts = {"width": 0.25}
    devices = args.devices.split(",")
    models = {}
    for d in devices:
        models[d] = lut_for("fbnet", opts, d, args.tables, calibrate=10 if d.startswith("local") else 0)[1]
    rows = []
    se = [int(x) for x in args.stage_epochs.split(",")]
    for seed, d in [(s, d) for s in args.seeds for d in (args.only.split(",") if args.only else devices)]:
        r = run_search(args, "fbnet", opts, {"target": d, "order": "late_first", "stage_epochs": se},
                       seed, sum(se), root, f"headline-{d}-s{seed}")
        r["target"] = d
        cross = {}
        for e in devices:
            c = {"lut_raw_ms": models[e].predict(r["arch"])}
            if e.startswith("local"):
                c["lut_calibrated_ms"] = models[e].calibrated(r["arch"])
                c["measured_ms"] = measured_ms("fbnet", opts, r["arch"], e)
            cross[e] = c
        r["latency_on"] = cross
        rows.append(r)
    return {"devices": devices, "space_options": opts, "runs": rows,
            "candidate_sets": {r["target"]: r["candidates"] for r in rows}}  # per device; the same for every seed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["h3", "h4", "headline"], required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--subset", type=int, default=3000)
    p.add_argument("--evals", type=int, default=40)
    p.add_argument("--retrain-epochs", type=int, default=3)
    p.add_argument("--retrain-subset", type=int, default=10000)
    p.add_argument("--test-subset", type=int, default=2000)
    p.add_argument("--devices", default="local-cpu-1t,local-cpu-2t-b32,pixel3,titan_rtx_1", help="headline targets")
    p.add_argument("--only", default=None, help="headline: search only these targets (cross table over --devices)")
    p.add_argument("--stage-epochs", default="5,2", help="headline: supernet epochs of stage 1 and 2")
    p.add_argument("--tables", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "benchmarks"))
    p.add_argument("--root", default=None, help="folder of the search runs (default: a new temporary folder); "
                   "finished runs there are reused and interrupted ones resumed")
    args = p.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    from nasforge import progress

    progress.set_enabled(False)
    t0, load0 = time.time(), os.getloadavg()
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix=f"hurricane-{args.part}-"))
    out = {"h3": h3, "h4": h4, "headline": headline}[args.part](args, root)
    runs = out["runs"]
    out.update({"benchmark": f"hurricane_{args.part}", "scale": {k: v for k, v in vars(args).items() if k != "part"},
                "h5": {"searches": len(runs), "evaluated": sum(r["evaluated"] for r in runs),
                       "evaluated_over_budget": sum(r["evaluated_over_budget"] for r in runs),
                       "violations_rejected": sum(r["violations_rejected"] for r in runs),
                       "searches_where_constraint_rejected_something": sum(r["violations_rejected"] > 0 for r in runs),
                       "pass": all(r["evaluated_over_budget"] == 0 for r in runs)},
                "wall_s": time.time() - t0, "load_avg_at_start": load0, "load_avg_at_end": os.getloadavg(),
                "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                      cwd=Path(__file__).parent).stdout.strip()})
    json.dump(out, sys.stdout, indent=1, default=str)
    print()


if __name__ == "__main__":
    main()
