"""Throughput per device and precision, and data parallelism on the CPU (issue 11).

Part 1 (default): images/s of one training step, per device available here and per precision:
  * ``darts``: a bi-level DARTS search step (first order) on the NB201 supernet (C=16, N=5, batch 64):
    an alpha forward+backward on a search-val batch, then a weight forward+backward on a search-train
    batch; images/s counts the 64 search-train images of the step (the val batch is extra work);
  * ``single-darts``: one forward+backward on one batch of 64, both optimisers step;
  * ``baseline``: a training step of the baseline CNN (batch 128, the training default).
Steps run exactly as `nasforge search` / `nasforge train` run them (the strategy's `step`, the engine's
autocast + gradient scaler) on Fashion-MNIST batches produced on the device by the loader. Each
(workload, device, precision) runs in its own process, so peak memory is its own: on CUDA
``torch.cuda.max_memory_allocated``; on CPU/MPS the process's peak RSS (includes PyTorch itself, ~300 MB).
The step time is the median over ``--steps`` measured steps after ``--warmup`` steps.

Part 2 (``--ddp``): the same search (single-darts, NB201 C=16 N=5, global batch 64, ``--ddp-steps``
search-train steps, Fashion-MNIST) as 1 process x 2 threads and as 2 processes x 1 thread (torchrun,
gloo), through the real CLI. Reports the search's images/s from the epoch record (start-up excluded), the
wall time of the whole command, whether both ranks ended with identical weights/alphas and architecture
(the run's own check, `search.metrics.data_parallel`), and whether 1 and 2 processes derived the same cell.

    .venv/bin/python benchmarks/devices.py --threads 1                 # every device here, fp32 bf16 fp16
    .venv/bin/python benchmarks/devices.py --ddp --skip-steps          # part 2 only
    .venv/bin/python benchmarks/devices.py --devices cuda --precisions fp32 bf16 fp16
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
WORKLOADS = ("darts", "single-darts", "baseline")


def _load(subset: int):
    from nasforge.data import load_dataset, search_split
    from nasforge.errors import UserError

    try:  # wherever the readers find it: $NASFORGE_DATA (a GPU machine's carried copy) or Debian's package
        name, (train, _) = "fashion-mnist", load_dataset("fashion-mnist")
    except UserError:
        name, (train, _) = "synthetic", load_dataset("synthetic")
    tr, va = search_split(train, seed=0, subset=subset)
    return name, train, tr, va


def one(workload: str, device: str, precision: str, steps: int, warmup: int, threads: int) -> dict[str, Any]:
    """Time `steps` steps of `workload` on `device` in `precision` (runs in its own process)."""
    from nasforge.accel import Precision, peak_memory_mb, resolve_device
    from nasforge.data import SearchData
    from nasforge.utils import seed_everything

    torch.set_num_threads(threads)
    dev = resolve_device(device)
    seed_everything(0)
    batch = 128 if workload == "baseline" else 64
    dataset, train, tr, va = _load(batch * (steps + warmup) * 2)
    mean, std = train.stats()
    data = SearchData(tr, va, batch, None, mean, std, device=dev)
    prec = Precision(dev, precision)

    if workload == "baseline":
        from nasforge.models import MODELS
        from nasforge.training.engine import TrainConfig, make_optimizer

        model = MODELS.get("baseline")(in_channels=1, num_classes=10).to(dev)
        cfg = TrainConfig(batch_size=batch)
        opt, _ = make_optimizer(model.parameters(), cfg, 1)
        loader = cfg.loader(tr, mean, std, train=True, device=dev)

        def step(x, y, second):
            import torch.nn.functional as F

            with prec.autocast():
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            prec.scale(loss).backward()
            prec.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            prec.step(opt)
            prec.update()
        second_iter = None
    else:
        from nasforge.registry import STRATEGIES
        from nasforge.spaces.nb201 import NB201Space
        from nasforge.engine.base import Budget, SearchContext
        import nasforge.strategies.darts  # noqa: F401  (registers darts, single-darts)

        space = NB201Space(in_channels=1, num_classes=10, resolution=28, C=16, N=5)
        strategy = STRATEGIES.get(workload)(hessian_every=0)
        ctx = SearchContext(space=space, budget=Budget(epochs=1), data=data, device=dev, precision=precision)
        supernet = space.supernet().to(dev)
        strategy.prec = prec
        strategy._make_weight_optimizer(supernet, ctx, 1)
        strategy.setup(supernet, ctx)
        supernet.train()
        loader, val_loader = data.loaders(0)
        second_iter = iter(val_loader.forever()) if strategy.second_stream == "val" else None

        def step(x, y, second):
            with prec.autocast():
                strategy.step(supernet, (x, y), second, ctx)
            prec.update()

    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    it = iter(loader.forever())
    for i in range(warmup + steps):
        x, y = next(it)
        second = next(second_iter) if second_iter is not None else None
        sync()
        t0 = time.perf_counter()
        step(x, y, second)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    gpu = peak_memory_mb(dev)
    return {"workload": workload, "device": str(dev), "device_name": _device_name(dev), "precision": precision,
            "batch": batch, "dataset": dataset, "threads": threads, "steps": steps, "step_s_median": round(med, 5),
            "step_s": [round(t, 5) for t in times], "images_per_s": round(batch / med, 1),
            "peak_memory_mb": round(gpu if gpu is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "memory_kind": "cuda max_memory_allocated" if gpu is not None else "process peak RSS"}


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return "Apple MPS"
    import platform

    return platform.processor() or platform.machine()


def _subprocess_json(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1], "cmd": " ".join(cmd)}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _env(threads: int) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def ddp(steps: int, seed: int) -> dict[str, Any]:
    """1 process x 2 threads against 2 processes x 1 thread, the same search and global batch."""
    batch = 64
    subset = 2 * batch * steps  # search-train half = steps global batches
    common = ["search", "--space", "nb201", "--method", "single-darts", "--epochs", "1", "--subset", str(subset),
              "--batch-size", str(batch), "--space-opt", "C=16", "--space-opt", "N=5", "--seed", str(seed),
              "--set", "hessian_every=0", "--set", "eval_batches=2", "--device", "cpu", "--quiet"]
    out: dict[str, Any] = {"method": "single-darts", "space": "nb201 C=16 N=5", "global_batch": batch,
                           "steps": steps, "seed": seed}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for label, threads, launcher in (("1proc_x_2threads", 2, [sys.executable, "-m", "nasforge"]),
                                         ("2proc_x_1thread", 1, [sys.executable, "-m", "torch.distributed.run",
                                                                 "--standalone", "--nproc-per-node=2", "-m", "nasforge"])):
            cmd = launcher + common + ["--threads", str(threads), "--out", f"{tmp}/{label}", "--name", "r"]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), cwd=REPO, timeout=7200)
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                runs[label] = {"error": (p.stderr.strip().splitlines() or ["failed"])[-1]}
                continue
            run = Path(tmp) / label / "r"
            res = json.loads((run / "result.json").read_text())
            epoch = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                     if '"event": "epoch"' in line][-1]
            runs[label] = {"images_per_s": round(epoch["images_per_s"], 2), "command_wall_s": round(wall, 1),
                           "arch": res["arch"], "train_loss": epoch["train_loss"],
                           "data_parallel": res["search"]["metrics"].get("data_parallel")}
        out["runs"] = runs
        a, b = runs.get("1proc_x_2threads", {}), runs.get("2proc_x_1thread", {})
        if "images_per_s" in a and "images_per_s" in b:
            out["speedup_2proc_over_1proc"] = round(b["images_per_s"] / a["images_per_s"], 3)
            out["same_arch_1proc_vs_2proc"] = a["arch"] == b["arch"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", nargs="*", default=None, help="default: every device available here")
    p.add_argument("--precisions", nargs="*", default=["fp32", "bf16", "fp16"])
    p.add_argument("--workloads", nargs="*", default=list(WORKLOADS))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ddp", action="store_true", help="also run part 2 (DDP on CPU)")
    p.add_argument("--ddp-steps", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-steps", action="store_true", help="skip part 1")
    p.add_argument("--one", nargs=3, metavar=("WORKLOAD", "DEVICE", "PRECISION"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, steps=args.steps, warmup=args.warmup, threads=args.threads)))
        return

    from nasforge.accel import available_devices

    devices = args.devices or available_devices()
    out: dict[str, Any] = {"torch": torch.__version__, "available_devices": available_devices(),
                           "load_before": os.getloadavg(), "cores": os.cpu_count(), "threads": args.threads}
    if not args.skip_steps:
        out["steps"] = []
        for dev in devices:
            for prec in args.precisions:
                for w in args.workloads:
                    cmd = [sys.executable, __file__, "--one", w, dev, prec, "--steps", str(args.steps),
                           "--warmup", str(args.warmup), "--threads", str(args.threads)]
                    r = _subprocess_json(cmd, env=_env(args.threads))
                    r.setdefault("workload", w)
                    r.setdefault("precision", prec)
                    r.setdefault("device", dev)
                    out["steps"].append(r)
                    print(json.dumps(r), file=sys.stderr)
    if args.ddp:
        out["ddp_cpu"] = ddp(args.ddp_steps, args.seed)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
