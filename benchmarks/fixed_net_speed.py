"""Fixed-network training at the new default (`--precision auto --memory-format auto`) against the previous path
(fp32, contiguous NCHW), issue 20 item 3: (a) training speed, (b) accuracy parity.

(a) speed: one process, one thread; for each network every arm is built from the same seed and weights, then the
    arms train one step each in turn (A B C A B C ...) on the same Fashion-MNIST batches (batch 128, SGD momentum,
    clipping: the training engine's step). Reported: medians of per-step CPU time (exact for one thread) and wall
    time, images/s, and the median of per-round speed-ups; the load average before and after. Arms: `fp32` (the
    previous path), `auto` (what --precision/--memory-format auto resolve to on this machine, from the network's
    declaration), and with --compile `auto+compile` (torch.compile on top; its first step, the compilation, is
    reported apart and excluded from the medians).
(b) parity: `nasforge train` runs (nasforge.api.train, the real path) of both networks, 10 epochs, seeds 0 1 2, at
    `--precision fp32 --memory-format contiguous` and at the default (auto), test accuracy on the full test set.
    Every run is a run directory under --out: finished runs are reused, interrupted ones resume from their last
    epoch, so the benchmark can be stopped and restarted at any time.

    python benchmarks/fixed_net_speed.py speed --rounds 20 --warmup 3 [--compile]
    nice -n 10 python benchmarks/fixed_net_speed.py parity --subset 10000 --out runs/fixed_net_parity
    python benchmarks/fixed_net_speed.py all ... --write      # both; --write merges into docs/results/fixed_net_speed.json

Networks: the baseline CNN (`--arch baseline`) and the NB201 cell of the performance review (3f), at the demo's
retraining scale C=16, N=1: |nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "fixed_net_speed.json"
NB201_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NETS = {
    "baseline": {"arch": "baseline", "space_options": {}},
    "nb201": {"arch": {"space": "nb201", "arch": NB201_CELL}, "space_options": {"C": 16, "N": 1}},
}
PREVIOUS = {"precision": "fp32", "memory_format": "contiguous"}
DEFAULT = {"precision": "auto", "memory_format": "auto"}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def speed(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    from nasforge.accel import Precision, apply_memory_format, resolve_fast_path
    from nasforge.building import build_model, declared_fast_path
    from nasforge.data import load_dataset
    from nasforge.training import TrainConfig
    from nasforge.utils import seed_everything

    train, _ = load_dataset("fashion-mnist", None)
    cfg = TrainConfig(batch_size=args.batch)
    mean, std = train.stats()
    loader = cfg.loader(train, mean, std, train=True, device=torch.device("cpu"))
    batches = []
    for x, y in loader:
        batches.append((x, y))
        if len(batches) >= args.rounds + args.warmup:
            break
    cpu = torch.device("cpu")
    out: dict = {"threads": args.threads, "batch": args.batch, "rounds": args.rounds, "warmup": args.warmup,
                 "load_start": _load(), "nets": {}}
    for name in args.nets:
        spec = NETS[name]
        seed_everything(0)
        base, _ = build_model(spec["arch"], train, spec["space_options"])
        auto = resolve_fast_path("auto", "auto", cpu, declared_fast_path(spec["arch"], train))
        arms = {"fp32": dict(PREVIOUS), "auto": {k: auto[k] for k in ("precision", "memory_format")}}
        if args.compile:
            arms["auto+compile"] = {**arms["auto"], "compile": True}
        steps = {}
        for arm, how in arms.items():
            net = copy.deepcopy(base).train()
            apply_memory_format(net, how["memory_format"])
            run = torch.compile(net) if how.get("compile") else net
            prec = Precision(cpu, how["precision"])
            opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=3e-4)

            def step(x, y, run=run, net=net, prec=prec, opt=opt):
                c0, w0 = time.process_time(), time.perf_counter()
                with prec.autocast():
                    loss = F.cross_entropy(run(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                opt.step()
                return time.process_time() - c0, time.perf_counter() - w0
            steps[arm] = step
        first = {arm: steps[arm](*batches[0]) for arm in arms}  # compilation, first-touch allocations
        for x, y in batches[1:args.warmup]:
            for arm in arms:
                steps[arm](x, y)
        times: dict[str, list] = {arm: [] for arm in arms}
        for x, y in batches[args.warmup:]:
            for arm in arms:
                times[arm].append(steps[arm](x, y))
        res = {"resolved_auto": auto, "arms": {}}
        for arm in arms:
            cpu_s = [t[0] for t in times[arm]]
            wall_s = [t[1] for t in times[arm]]
            res["arms"][arm] = {**arms[arm], "first_step_s": round(first[arm][1], 3),
                                "cpu_s_median": round(statistics.median(cpu_s), 5),
                                "wall_s_median": round(statistics.median(wall_s), 5),
                                "images_per_cpu_s": round(args.batch / statistics.median(cpu_s), 1)}
        for arm in arms:
            if arm == "fp32":
                continue
            per_round = [a[0] / b[0] for a, b in zip(times["fp32"], times[arm])]
            res["arms"][arm]["speedup_cpu_median_per_round"] = round(statistics.median(per_round), 3)
            res["arms"][arm]["speedup_cpu_of_medians"] = round(res["arms"]["fp32"]["cpu_s_median"]
                                                              / res["arms"][arm]["cpu_s_median"], 3)
            res["arms"][arm]["target_2_5x_met"] = res["arms"][arm]["speedup_cpu_median_per_round"] >= 2.5
        out["nets"][name] = res
        print(json.dumps({name: res}), file=sys.stderr)
    out["load_end"] = _load()
    return out


def parity(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from nasforge import api

    out_root = Path(args.out)
    runs: dict = {}
    for seed in args.seeds:
        for name in args.nets:
            for label, how in (("fp32", PREVIOUS), ("auto", DEFAULT)):
                run_name = f"{name}-{label}-s{seed}-e{args.epochs}-n{args.subset or 'all'}"
                run_dir = out_root / run_name
                if (run_dir / "result.json").exists():
                    res = json.loads((run_dir / "result.json").read_text())
                elif (run_dir / "config.json").exists():
                    res = api.train(resume=run_dir, run_root=out_root)
                else:
                    cfg = {"arch": NETS[name]["arch"], "space_options": NETS[name]["space_options"],
                           "dataset": "fashion-mnist", "subset": args.subset, "threads": args.threads,
                           "train": {"epochs": args.epochs, "seed": seed}, **how}
                    res = api.train(cfg, run_root=out_root, run_name=run_name)
                runs[run_name] = {"net": name, "arm": label, "seed": seed, "precision": res.get("precision"),
                                  "memory_format": res.get("memory_format"),
                                  "test_accuracy": res["test_accuracy"], "train_accuracy": res["train_accuracy"],
                                  "images_per_s_last_epoch": res.get("images_per_s"), "cpu_s": res["cost"]["cpu_s"]}
                print(json.dumps({run_name: runs[run_name]}), file=sys.stderr)
    summary = {}
    for name in args.nets:
        acc = {arm: [r["test_accuracy"] for r in runs.values() if r["net"] == name and r["arm"] == arm]
               for arm in ("fp32", "auto")}
        if len(acc["fp32"]) == len(acc["auto"]) == len(args.seeds):
            diff_pp = 100 * (statistics.mean(acc["auto"]) - statistics.mean(acc["fp32"]))
            summary[name] = {"test_accuracy_fp32": acc["fp32"], "test_accuracy_auto": acc["auto"],
                             "mean_diff_pp_auto_minus_fp32": round(diff_pp, 3),
                             "per_seed_diff_pp": [round(100 * (a - b), 2) for a, b in zip(acc["auto"], acc["fp32"])],
                             "within_0_3_pp": abs(diff_pp) <= 0.3}
    return {"epochs": args.epochs, "subset": args.subset, "seeds": args.seeds, "threads": args.threads,
            "test_set": "full Fashion-MNIST test set (10,000)", "runs": runs, "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("speed", "parity", "all"))
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="(a) adds the auto+compile arm (about 1 min per network)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--subset", type=int, default=None, help="(b) training images (default: all 60,000)")
    ap.add_argument("--out", default="runs/fixed_net_parity")
    ap.add_argument("--write", action="store_true", help=f"merge the result into {RESULT.relative_to(REPO)}")
    args = ap.parse_args()
    result: dict = {"benchmark": "fixed_net_speed", "command": " ".join(sys.argv[1:]),
                    "nb201_cell": NB201_CELL, "nb201_scale": NETS["nb201"]["space_options"]}
    if args.what in ("speed", "all"):
        result["speed"] = speed(args)
    if args.what in ("parity", "all"):
        result["parity"] = parity(args)
    print(json.dumps(result, indent=1))
    if args.write:
        old = json.loads(RESULT.read_text()) if RESULT.exists() else {}
        old.update({k: v for k, v in result.items() if k != "command"})
        old.setdefault("commands", {})[args.what] = result["command"]
        RESULT.write_text(json.dumps(old, indent=1) + "\n")


if __name__ == "__main__":
    main()
