"""Throughput of the trial executors on this machine: trials/hour and Ray's per-trial overhead.

Measures, for a CPU-bound trial (a small CNN trained on random tensors for a fixed number of steps, calibrated
to take ``--trial-seconds`` with one thread):

- local execution, one thread (``LocalExecutor(threads=1)``) and all cores (``LocalExecutor()``);
- the Ray executor with 1 and 2 workers, one thread each; speedup = 2-worker / 1-worker trials per hour;
- the overhead Ray adds per trial: very short trials (``--short-seconds``) run by Ray with 1 worker versus
  locally with 1 thread, ms per trial.

Every timed batch writes to its own fresh trial journal, so journal writes are part of every figure. Ray's
start-up (``ray.init`` plus the first task on each worker, which imports torch) is reported separately as
``ray_startup_s`` and not counted in trials/hour: a search pays it once. The configurations are interleaved
in rounds, and the 1-minute load average is recorded, because the machine may be shared.

    python benchmarks/ray_scaling.py                             # ~2-3 minutes on an idle 2-core machine
    python benchmarks/ray_scaling.py --trials 6 --rounds 4 --seeds 0 1
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

TRIAL_FN = "ray_scaling:cnn_trial"  # this file, imported by name in the driver and on the Ray workers


def cnn_trial(spec: dict[str, Any], threads: int) -> dict[str, Any]:
    """Train a small CNN on random 28x28 images for spec["steps"] steps; score = -final loss."""
    torch.set_num_threads(threads)
    torch.manual_seed(spec["seed"])
    t0, c0 = time.perf_counter(), time.process_time()
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(spec["batch"], 1, 28, 28), torch.randint(0, 10, (spec["batch"],))
    loss = torch.tensor(0.0)
    for _ in range(spec["steps"]):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    # cpu_s / seconds < threads means the trial waited for a core (other processes on a shared machine)
    return {"score": -float(loss), "seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def calibrate(seconds: float, batch: int) -> int:
    """Number of training steps that takes about `seconds` with one thread on this machine."""
    probe = 5
    cnn_trial({"seed": 0, "steps": 1, "batch": batch}, 1)  # warm up kernels and allocator
    # the fastest of three probes: on a shared machine the slower ones measure other people's load
    took = min(cnn_trial({"seed": 0, "steps": probe, "batch": batch}, 1)["seconds"] for _ in range(3))
    return max(1, round(seconds / (took / probe)))


def timed_run(executor: Any, n: int, steps: int, batch: int, seed: int, tag: str) -> dict[str, float]:
    """Run n distinct trials on a fresh journal; wall-clock throughput and mean in-trial seconds."""
    from nasforge.runs.journal import TrialJournal

    specs = [{"tag": tag, "seed": seed * 100_000 + i, "steps": steps, "batch": batch} for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp, TrialJournal(tmp) as journal:
        t0 = time.perf_counter()
        results = executor.run(specs, TRIAL_FN, journal, max_retries=0)
        wall = time.perf_counter() - t0
    failed = [r for r in results if r["score"] is None]
    if failed:
        raise RuntimeError(f"{len(failed)} benchmark trials failed: {failed[0]['error']}")
    return {
        "trials": n,
        "wall_s": round(wall, 3),
        "trials_per_hour": round(3600 * n / wall, 1),
        "wall_ms_per_trial": round(1000 * wall / n, 2),
        "mean_trial_s": round(statistics.mean(r["seconds"] for r in results), 4),
        "cpu_per_wall": round(sum(r["cpu_s"] for r in results) / sum(r["seconds"] for r in results), 3),
    }


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def add(total: dict[str, float] | None, part: dict[str, float]) -> dict[str, float]:
    """Pool two timed runs of the same configuration."""
    if total is None:
        return part
    n, wall = total["trials"] + part["trials"], total["wall_s"] + part["wall_s"]
    def pooled(k: str) -> float:
        return round((total[k] * total["trials"] + part[k] * part["trials"]) / n, 4)

    return {"trials": n, "wall_s": round(wall, 3), "trials_per_hour": round(3600 * n / wall, 1),
            "wall_ms_per_trial": round(1000 * wall / n, 2), "mean_trial_s": pooled("mean_trial_s"),
            "cpu_per_wall": pooled("cpu_per_wall")}


def bench_seed(seed: int, args: argparse.Namespace, executors: dict[str, Any], steps: int,
               short_steps: int) -> dict[str, Any]:
    """Every configuration in each round, the order rotated round to round, so load from other processes
    on a shared machine falls on all configurations alike rather than on whichever ran during a busy spell."""
    long_names = ["local_1thread", "local_all_cores", "ray_1worker", "ray_2workers"]
    short_names = {"local_short": "local_1thread", "ray_1worker_short": "ray_1worker"}
    pooled: dict[str, Any] = {}
    load_start = os.getloadavg()[0]
    for r in range(args.rounds):
        k = r % len(long_names)
        for name in long_names[k:] + long_names[:k]:
            log(f"[seed {seed} round {r}] {name}")
            part = timed_run(executors[name], args.trials, steps, args.batch, seed, f"{name}-{r}")
            pooled[name] = add(pooled.get(name), part)
        for name, executor in (list(short_names.items()) if r % 2 == 0 else list(short_names.items())[::-1]):
            part = timed_run(executors[executor], args.short_trials, short_steps, args.batch, seed, f"{name}-{r}")
            pooled[name] = add(pooled.get(name), part)
    out: dict[str, Any] = {"seed": seed, **pooled}
    out["load_avg_1min"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    out["speedup_2_vs_1_workers"] = round(
        out["ray_2workers"]["trials_per_hour"] / out["ray_1worker"]["trials_per_hour"], 3)
    out["speedup_ray2_vs_local_all_cores"] = round(
        out["ray_2workers"]["trials_per_hour"] / out["local_all_cores"]["trials_per_hour"], 3)
    out["ray_overhead_ms_per_trial"] = round(
        out["ray_1worker_short"]["wall_ms_per_trial"] - out["local_short"]["wall_ms_per_trial"], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=4, help="CPU-bound trials per configuration per round")
    p.add_argument("--rounds", type=int, default=2, help="rounds; each runs every configuration once")
    p.add_argument("--trial-seconds", type=float, default=3.0, help="target length of one trial, 1 thread")
    p.add_argument("--short-trials", type=int, default=40, help="very short trials per round, for Ray's overhead")
    p.add_argument("--short-seconds", type=float, default=0.05, help="target length of a short trial")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = p.parse_args()

    from nasforge.runs.executors import LocalExecutor, RayExecutor

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # so TRIAL_FN imports (Ray workers inherit it)
    torch.set_num_threads(1)
    steps = calibrate(args.trial_seconds, args.batch)
    short_steps = calibrate(args.short_seconds, args.batch)
    log(f"calibrated: {steps} steps ~ {args.trial_seconds} s, {short_steps} steps ~ {args.short_seconds} s")

    # One local Ray instance with 2 CPUs serves both Ray configurations: the 1-worker executor keeps one trial
    # in flight (its throughput is that of a 1-CPU instance), so the two can be interleaved without restarting Ray.
    ray2 = RayExecutor(workers=2, threads_per_worker=1)
    t0 = time.perf_counter()
    # start Ray and bring up both workers (each imports torch on its first task) before anything is timed
    timed_run(ray2, 2, 1, args.batch, -1, "warmup")
    startup_s = time.perf_counter() - t0
    executors = {
        "local_1thread": LocalExecutor(threads=1),
        "local_all_cores": LocalExecutor(),
        "ray_1worker": RayExecutor(workers=1, threads_per_worker=1),  # reuses the running instance
        "ray_2workers": ray2,
    }
    try:
        per_seed = [bench_seed(s, args, executors, steps, short_steps) for s in args.seeds]
    finally:
        ray2.shutdown()

    def mean(get: Any) -> float:
        return round(statistics.mean(get(r) for r in per_seed), 3)

    summary = {
        "trials_per_hour": {
            k: mean(lambda r, k=k: r[k]["trials_per_hour"])
            for k in ("local_1thread", "local_all_cores", "ray_1worker", "ray_2workers")
        },
        "mean_trial_s_1thread": mean(lambda r: r["local_1thread"]["mean_trial_s"]),
        # inside trials, CPU seconds per wall second: ~1 per thread on an idle machine, lower under others' load
        "cpu_per_wall": {k: mean(lambda r, k=k: r[k]["cpu_per_wall"])
                         for k in ("local_1thread", "local_all_cores", "ray_1worker", "ray_2workers")},
        "speedup_2_vs_1_workers": mean(lambda r: r["speedup_2_vs_1_workers"]),
        "speedup_ray2_vs_local_all_cores": mean(lambda r: r["speedup_ray2_vs_local_all_cores"]),
        "ray_overhead_ms_per_trial": mean(lambda r: r["ray_overhead_ms_per_trial"]),
        "short_trial_ms_local": mean(lambda r: r["local_short"]["wall_ms_per_trial"]),
        "short_trial_ms_ray_1worker": mean(lambda r: r["ray_1worker_short"]["wall_ms_per_trial"]),
        "ray_startup_s": round(startup_s, 2),
    }
    print(json.dumps({
        "benchmark": "ray_scaling",
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "config": {**vars(args), "steps": steps, "short_steps": short_steps},
        "summary": summary,
        "per_seed": per_seed,
    }, indent=2))


if __name__ == "__main__":
    main()
