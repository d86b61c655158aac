"""Speed and memory of nasforge's `darts` against NNI 3.0's DARTS on the same supernet: NAS-Bench-201 (default)
or the DARTS space (`--space darts`), each at the same precision and each at its best (issue 20).

Configuration, identical for both: first-order DARTS (an alpha step on a val batch, then a weight step on a
train batch), batch 64, the same Fashion-MNIST images in the same order. NNI's stems are hard-wired to 3
input channels, so both get 3x32x32 images: Fashion-MNIST padded by 2 pixels and repeated over 3 channels.
- nb201: 6 edges x 5 ops, one alpha matrix shared by all cells, C=16, N cells per stage (1 by default);
  nasforge on its native 1x28x28 input is reported as an extra (fp32).
- darts: NNI's `DARTS` space (width C=8, 5 cells: 1-2-2 over three stages, reductions opening stages 2 and
  3, CIFAR stem of 3C channels, 4 nodes per cell) against nasforge's `darts` space with C=8, layers=5 (the
  same layout: reductions at 1/3 and 2/3, stem multiplier 3). NNI's DARTS op set has no `none` (its
  differentiable cell leaves it out); nasforge's keeps DARTS' 8 ops, `none` costing no compute.

Arms (`--arms`, default: nasforge at fp32 and at its fastest setting, i.e. `--precision auto` where this
checkout has it, else bf16; NNI at fp32 and at bf16 through Lightning's precision="bf16"). Per seed every arm
runs in a fresh subprocess, the order rotated by one arm per seed so drift in the machine's load hits all:

- nasforge: `OneShotStrategy.search_step` (the search loop's step: DARTS' `step` under the engine's autocast)
  on the space's supernet, each step timed; the loop's data loading and diagnostics are not included.
- NNI: `NasExperiment(space, Classification, DARTS)` run as NNI's example runs it (in the venv made by
  ../shared/peers/nni/setup.sh), each step timed by a Lightning callback (on_train_batch_start -> end),
  plus the user-level wall time of the whole experiment, start-up included, per step.

After `--warmup` steps, the median of `--steps` timed steps gives the images/s (train images, i.e. batch
size per search step). Memory is the child's peak RSS (getrusage) and that peak minus the RSS after imports
and data load. Ratios are nasforge/NNI paired by seed, median over seeds: `ratios` is fp32 against fp32 (as
before issue 20); `precision.same_precision` the same with its target, `precision.best_vs_best` each
contender's fastest arm (highest median images/s) against the other's. Targets: nb201 >= 3x at fp32 and
>= 4x best against best, darts >= 2x; no more peak memory than NNI in each. FLOP/s: forward FLOPs of one
weighted supernet forward (every op; torch's FlopCounterMode: convs and linear layers, multiply-add = 2) x 3
(forward + backward) x 2 passes per DARTS step, divided by the step time, as a fraction of the fp32 2048^3
matmul rate measured in the same run, same thread count. Differences that come with the implementations
and are not configuration: NNI's cell BNs are affine (nasforge's search cells are not, as in the papers'
search code) and NNI's weight optimiser is Adam (its Classification default) where nasforge uses SGD; both
are negligible in compute. Gradient clipping is 5 for both.

    .venv/bin/python benchmarks/peer_nni.py --threads 1                     # nb201, 3 seeds, 4 arms, ~6-8 min
    .venv/bin/python benchmarks/peer_nni.py --threads 1 --space darts --steps 5 --warmup 2   # ~12-15 min
    .venv/bin/python benchmarks/peer_nni.py --seeds 0 1 2 3 4 --N 1 5 --steps 20 --with-reference

On a shared machine whose load exceeds its cores, 2-thread runs of both contenders slow down several-fold
(each OpenMP thread waits for its descheduled peer) and the ratio becomes noise: use --threads 1 then, and
compare `load_avg_start` / `load_avg_end` in the output.
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
import torch.nn.functional as F

import _peer
from _peer import peak_rss_mb, rss_mb

NNI_WORKER = Path(__file__).with_name("_nni_worker.py")


def matmul_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-`repeats` fp32 size^3 matrix-multiply rate: this CPU's practical compute ceiling."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


# ---------------------------------------------------------------------------------------------
# data: the same images for both contenders
# ---------------------------------------------------------------------------------------------
def make_data(seed: int, n_batches: int, batch: int, path: Path) -> None:
    """Draw disjoint train and val images from Fashion-MNIST's training split; save 3x32x32 and 1x28x28 copies."""
    x, y = _peer.fashion_mnist_sample(seed, 2 * n_batches * batch)  # [n, 1, 28, 28]
    x3 = F.pad(x, (2, 2, 2, 2)).repeat(1, 3, 1, 1).contiguous()  # NNI's stem needs 3 channels
    n = n_batches * batch
    torch.save({"x_train": x3[:n], "y_train": y[:n], "x_val": x3[n:], "y_val": y[n:],
                "x_train_1ch": x[:n].contiguous(), "x_val_1ch": x[n:].contiguous()}, path)


# ---------------------------------------------------------------------------------------------
# the nasforge contender (run as a subprocess of this script)
# ---------------------------------------------------------------------------------------------
def nasforge_worker(args: argparse.Namespace) -> dict[str, Any]:
    from nasforge.accel import Precision, apply_memory_format, resolve_fast_path
    from nasforge.hardware.flops import count_flops
    from nasforge.spaces.darts import DartsSpace
    from nasforge.spaces.nb201 import NB201Space, SearchCell
    from nasforge.engine.base import Budget, SearchContext
    from nasforge.strategies.darts import DARTS
    from nasforge.utils import seed_everything

    data = torch.load(args.data)
    suffix = "_1ch" if args.native else ""
    xt, xv = data["x_train" + suffix], data["x_val" + suffix]
    yt, yv = data["y_train"], data["y_val"]
    rss_base = rss_mb()

    start = time.perf_counter()
    seed_everything(args.seed)  # as OneShotStrategy.search does (it also selects deterministic kernels)
    torch.set_num_threads(args.threads)
    SearchCell.fused = not args.reference
    shape = {"in_channels": xt.shape[1], "num_classes": 10, "resolution": xt.shape[-1]}
    space = (DartsSpace(**shape, C=args.C, layers=args.layers) if args.space == "darts"
             else NB201Space(**shape, C=args.C, N=args.N))
    ctx = SearchContext(space=space, budget=Budget(epochs=1), seed=args.seed, precision=args.precision)
    # what search() does before its loop: `auto` resolved from the space's declaration, the format applied
    choice = resolve_fast_path(ctx.precision, "auto", ctx.device, space.fast_path("supernet"))
    ctx.precision, ctx.memory_format = choice["precision"], choice["memory_format"]
    strategy = DARTS(order=1, grad_clip=5.0)
    strategy.prec = Precision(ctx.device, ctx.precision)
    supernet = apply_memory_format(space.supernet(), ctx.memory_format)
    strategy._make_weight_optimizer(supernet, ctx, epochs=1)
    strategy.setup(supernet, ctx)
    supernet.train()
    times = []
    for k in range(len(xt) // args.batch):
        s = slice(k * args.batch, (k + 1) * args.batch)
        t = time.perf_counter()
        strategy.search_step(supernet, (xt[s], yt[s]), (xv[s], yv[s]), ctx)  # the search loop's step
        times.append(time.perf_counter() - t)
    total_s = time.perf_counter() - start
    rss_peak = peak_rss_mb()
    SearchCell.fused = False  # model FLOPs: every op of every edge, counted on the reference formulation
    flops = count_flops(supernet, xt[: args.batch])
    return {"step_s": times, "total_s": total_s, "rss_base_mb": rss_base, "rss_peak_mb": rss_peak,
            "forward_flops": flops, "threads": torch.get_num_threads(), "arch": supernet.derive(),
            "precision": strategy.prec.precision, "memory_format": ctx.memory_format}


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------
SPACES = {  # configuration and targets (issue 20) per space: nasforge / NNI at fp32, and best against best
    "nb201": {"C": 16, "N": 1, "layers": 5, "targets": (3.0, 4.0)},
    "darts": {"C": 8, "N": 1, "layers": 5, "targets": (2.0, 2.0)},
}


def summarise(run: dict[str, Any], warmup: int, batch: int) -> dict[str, Any]:
    return {**_peer.summarise(run, warmup, batch, keep=("forward_flops", "arch")),
            "step_s_min": min(run["step_s"][warmup:])}


def median_of(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    nni_python = _peer.nni_python_or_exit(args.nni_python)
    n_batches = args.warmup + args.steps
    results: dict[str, Any] = {
        "config": {"space": args.space, "C": args.C, "N": args.N if args.space == "nb201" else None,
                   "layers": args.layers if args.space == "darts" else None, "batch": args.batch,
                   "input": "3x32x32 (Fashion-MNIST padded to 32, repeated to 3 channels; NNI's stems take 3 "
                            "channels)",
                   "darts": "first order", "grad_clip": 5.0, "warmup_steps": args.warmup, "timed_steps": args.steps,
                   "threads": args.threads, "seeds": args.seeds, "arms": args.arms,
                   "images_per_s": "train images per search step (batch / median step time)"},
        "load_avg_start": os.getloadavg()[0],
    }
    matmul = [matmul_gflops(args.threads)]
    per_n: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nasforge-peer-") as tmp:
        for N in (args.N if args.space == "nb201" else [args.N[0]]):
            rows: dict[str, list[dict[str, Any]]] = {arm: [] for arm in args.arms}
            extras = [("nasforge_reference", ["--reference"])] * args.with_reference
            extras += [("nasforge_1x28x28", ["--native"])] * (args.space == "nb201" and not args.no_native)
            rows.update({name: [] for name, _ in extras})
            for i, seed in enumerate(args.seeds):
                data = Path(tmp) / f"data_{seed}.pt"
                make_data(seed, n_batches, args.batch, data)
                common = ["--data", str(data), "--seed", str(seed), "--C", str(args.C), "--N", str(N),
                          "--layers", str(args.layers), "--space", args.space, "--batch", str(args.batch),
                          "--threads", str(args.threads)]
                me = [sys.executable, __file__, "--worker", *common]
                nni = [str(nni_python), str(NNI_WORKER), "--workdir", tmp, *common]
                order = [(arm, (me if arm.startswith("nasforge") else nni) + ["--precision", arm.split(":")[1]])
                         for arm in _peer.rotated(args.arms, i)]
                order += [(name, me + ["--precision", "fp32", *flag]) for name, flag in extras]
                label = f"{args.space} N={N} seed={seed}" if args.space == "nb201" else f"darts seed={seed}"
                _peer.run_in_turn(rows, order, label, lambda run: summarise(run, args.warmup, args.batch))
                matmul.append(matmul_gflops(args.threads))
            per_n[f"N={N}" if args.space == "nb201" else "layers=%d" % args.layers] = report(rows, args.space)
    peak = max(matmul)
    for block in per_n.values():
        for name, stats in block["contenders"].items():
            stats["achieved_gflops"] = 6 * stats["forward_flops"] / stats["step_s_median"] / 1e9
            stats["fraction_of_matmul_peak"] = stats["achieved_gflops"] / peak
    results.update(per_n)
    results["matmul_2048_gflops"] = {"peak": peak, "all": matmul}
    results["flop_convention"] = ("forward FLOPs of one weighted supernet forward (all ops) x3 (fwd+bwd) x2 passes "
                                  "per first-order DARTS step; nasforge's alpha pass skips weight gradients, so it "
                                  "executes ~5/6 of this")
    results["load_avg_end"] = os.getloadavg()[0]
    return results


def report(rows: dict[str, list[dict[str, Any]]], space: str) -> dict[str, Any]:
    """Medians per arm; nasforge/NNI ratios paired by seed (same data, adjacent in time): `ratios` at fp32 against
    fp32 (as before issue 20), `precision` also best against best, each with its target."""
    rows, failed = _peer.completed(rows)
    contenders = {}
    for name, runs in rows.items():
        contenders[name] = {k: median_of(runs, k) for k in runs[0] if isinstance(runs[0][k], (int, float))}
        contenders[name]["per_seed_step_s"] = [r["step_s_median"] for r in runs]
        contenders[name]["arch"] = [r["arch"] for r in runs]
    out: dict[str, Any] = {"contenders": contenders, "failed_arms": failed}
    if "nasforge:fp32" in rows and "nni:fp32" in rows:
        same_target, best_target = SPACES[space]["targets"]
        ratios: dict[str, Any] = _peer.paired_ratios(rows["nasforge:fp32"], rows["nni:fp32"])
        if "nasforge_reference" in rows:
            ratios["fused_speedup_over_reference"] = statistics.median(
                r["step_s_median"] / a["step_s_median"] for a, r in zip(rows["nasforge:fp32"], rows["nasforge_reference"]))
        ratios["target_met"] = _peer.target_met(ratios, same_target)
        out["ratios"] = ratios
        out["precision"] = _peer.precision_comparison({k: v for k, v in rows.items() if ":" in k}, same_target,
                                                      best_target)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", choices=list(SPACES), default="nb201",
                   help="nb201 (NNI's NasBench201) or darts (NNI's DARTS space, C=8, 5 cells by default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run of every arm per seed")
    p.add_argument("--N", type=int, nargs="+", default=[1], help="nb201: cells per stage (one block of results each)")
    p.add_argument("--layers", type=int, default=None, help="darts: cells (default 5)")
    p.add_argument("--steps", type=int, default=8, help="timed search steps per run")
    p.add_argument("--warmup", type=int, default=3, help="untimed search steps first")
    p.add_argument("--C", type=int, default=None, help="channels of the first stage (default: nb201 16, darts 8)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="torch threads of every contender and of the matmul")
    p.add_argument("--arms", nargs="+", default=None,
                   help="contender:precision runs per seed, rotated per seed (default: nasforge at fp32 and at its "
                        "fastest setting, NNI at fp32 and bf16)")
    p.add_argument("--nni-python", default=str(_peer.DEFAULT_NNI_PYTHON))
    p.add_argument("--with-reference", action="store_true",
                   help="also time nasforge's unfused per-edge MixedOp sum (SearchCell.fused = False)")
    p.add_argument("--no-native", action="store_true", help="nb201: skip nasforge on the native 1x28x28 input")
    # internal: the nasforge contender
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--native", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.C = args.C if args.C is not None else SPACES[args.space]["C"]
    args.layers = args.layers if args.layers is not None else SPACES[args.space]["layers"]
    if args.worker:
        args.N = args.N[0]
        print(json.dumps(nasforge_worker(args)))
        return
    args.arms = _peer.arms_or_default(p, args.arms)
    print(json.dumps(benchmark(args), indent=2))


if __name__ == "__main__":
    main()
