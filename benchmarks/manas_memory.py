"""MANAS memory and compute claim (spec §4.3 / §4.6 M1): the same supernet under `darts` and `manas`.

Network: the darts space, 8 cells, C=16, batch 64, Fashion-MNIST (1x28x28). One search step of each
strategy is what `nasforge search` runs per minibatch:
  * darts (first order): alpha forward+backward on a search-val batch, then weight forward+backward on
    a search-train batch, every op of every edge in the weighted sum;
  * manas: one sampled path trained on the train batch, then scored on the val batch without gradient.
Both strategies are built once, on supernets with identical initial weights, and their steps are
interleaved (darts, manas, manas, darts, ...) so that load on this shared machine hits both alike.

Measured per step:
  * op forward calls: forward hooks on every candidate op module inside every MixedOp. `none` never runs
    in either mode (the weighted sum skips it because its output is zero; a sampled `none` edge is
    skipped by the cell), so it is counted separately as a skipped op slot: darts from a pre-hook on each
    weighted MixedOp call, manas from the sampled path. ``op_slots = calls + skipped none`` is the number
    of (edge, op) evaluations the method asks for; its manas/darts ratio is the 1/K claim.
  * peak memory: torch.profiler(profile_memory=True) around one step; every profiler event carries the
    bytes allocated minus freed inside it (excluding children); the running sum of those, in event start
    order, is the memory held above the step's start, and its maximum is the peak (op granularity:
    transient buffers inside one kernel are attributed to that op's start).
  * activation bytes saved for backward: torch.autograd.graph.saved_tensors_hooks records every tensor
    autograd keeps, deduplicated by storage, parameters excluded, per forward pass; the max over the
    step's forward passes (darts: alpha pass, weight pass; manas: the train pass; its val pass saves
    nothing under no_grad). This is the O(N*K) vs O(N) quantity of the paper, free of allocator effects.
  * time per step: wall and CPU seconds of uninstrumented steps (median over steps).

    .venv/bin/python benchmarks/manas_memory.py                  # 3 measured steps per method, seed 0
    .venv/bin/python benchmarks/manas_memory.py --steps 5 --seeds 0 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from nasforge.data import SearchData, load_dataset, search_split
from nasforge.spaces.darts import DartsSpace
from nasforge.engine.base import Budget, SearchContext
from nasforge.strategies.darts import DARTS
from nasforge.strategies.manas import MANAS
from nasforge.supernet import MixedOp


class OpCounter:
    """Forward hooks on every candidate op of every MixedOp; counts calls and skipped `none` slots."""

    def __init__(self, supernet: torch.nn.Module) -> None:
        self.calls = 0
        self.skipped_none_weighted = 0
        self.handles = []
        for m in supernet.modules():
            if isinstance(m, MixedOp):
                n_none = sum(name == "none" for name in m.names)
                self.handles.append(m.register_forward_pre_hook(self._pre(n_none), with_kwargs=True))
                for op in m.ops:
                    self.handles.append(op.register_forward_hook(self._count))

    def _count(self, *_: Any) -> None:
        self.calls += 1

    def _pre(self, n_none: int):
        def hook(module, args, kwargs):
            if kwargs.get("index") is None and (len(args) < 3 or args[2] is None):  # weighted mode
                self.skipped_none_weighted += n_none
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@contextmanager
def saved_activation_bytes(supernet: torch.nn.Module) -> Iterator[list[int]]:
    """Yields a list that receives, per forward pass of `supernet`, the bytes autograd saved for backward."""
    params = {p.data_ptr() for p in supernet.parameters()}
    per_forward: list[dict[int, int]] = []

    def new_forward(*_: Any) -> None:
        per_forward.append({})

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if per_forward and ptr not in params:
            per_forward[-1][ptr] = storage.nbytes()
        return t

    out: list[int] = []
    handle = supernet.register_forward_pre_hook(new_forward)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield out
    finally:
        handle.remove()
        out.extend(sum(d.values()) for d in per_forward)


def profiled_peak_bytes(fn) -> int:
    """Peak of the running allocation balance (bytes above the start) while `fn()` runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    running = peak = 0
    for e in events:
        running += e.self_cpu_memory_usage
        peak = max(peak, running)
    return peak


def build(strategy, space, data: SearchData, seed: int):
    ctx = SearchContext(space=space, budget=Budget(epochs=1), seed=seed, data=data)
    torch.manual_seed(seed)  # identical initial weights for both methods
    supernet = space.supernet()
    strategy._make_weight_optimizer(supernet, ctx, 1)
    strategy.setup(supernet, ctx)
    supernet.train()
    return supernet, ctx


def run_seed(args: argparse.Namespace, seed: int, train) -> dict[str, Any]:
    tr, va = search_split(train, seed=seed, subset=2 * args.batch * (2 * args.steps + args.warmup + 2))
    data = SearchData(tr, va, args.batch, None, *train.stats())
    space = DartsSpace(in_channels=1, num_classes=10, resolution=28, C=args.C, layers=args.layers)
    methods = {"darts": DARTS(order=1), "manas": MANAS()}
    nets = {name: build(strat, space, data, seed) for name, strat in methods.items()}
    train_loader, val_loader = data.loaders(seed)
    batches = list(zip(train_loader, val_loader))
    ref = nets["darts"][0]
    n_edges = sum(ref.alphas[g].shape[0] for g in ref.cell_groups)  # edges in the whole network (all cells)
    k = len(ref.op_names)
    rec: dict[str, dict[str, list]] = {m: {"wall_s": [], "cpu_s": [], "op_calls": [], "skipped_none": [],
                                           "op_slots": [], "peak_bytes": [], "saved_activation_bytes": []}
                                       for m in methods}
    b = 0
    for i in range(args.warmup + args.steps):
        order = list(methods) if i % 2 == 0 else list(reversed(methods))
        for name in order:
            strat, (supernet, ctx) = methods[name], nets[name]
            # timing pass, uninstrumented
            (x, y), second = batches[b % len(batches)]
            b += 1
            w0, c0 = time.perf_counter(), time.process_time()
            strat.step(supernet, (x, y), second, ctx)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            # instrumented pass: op counts, saved activations, profiler peak
            (x, y), second = batches[b % len(batches)]
            b += 1
            counter = OpCounter(supernet)
            with saved_activation_bytes(supernet) as saved:
                peak = profiled_peak_bytes(lambda: strat.step(supernet, (x, y), second, ctx))
            counter.remove()
            if i < args.warmup:
                continue  # first steps allocate optimiser state and warm caches
            skipped = counter.skipped_none_weighted
            if name == "manas":  # sampled `none` edges are skipped by the cell; 2 forwards (train, val) on this path
                none = supernet.op_names.index("none")
                skipped += 2 * sum(int((supernet.path[g] == none).sum()) for g in supernet.cell_groups)
            r = rec[name]
            r["wall_s"].append(wall)
            r["cpu_s"].append(cpu)
            r["op_calls"].append(counter.calls)
            r["skipped_none"].append(skipped)
            r["op_slots"].append(counter.calls + skipped)
            r["peak_bytes"].append(peak)
            r["saved_activation_bytes"].append(max(saved) if saved else 0)
    out: dict[str, Any] = {"seed": seed, "edges": n_edges, "ops_per_edge": k}
    for name, r in rec.items():
        out[name] = {**r, "median_wall_s": statistics.median(r["wall_s"]),
                     "median_cpu_s": statistics.median(r["cpu_s"]),
                     "mean_peak_mb": statistics.fmean(r["peak_bytes"]) / 2**20,
                     "mean_saved_activation_mb": statistics.fmean(r["saved_activation_bytes"]) / 2**20}
    d, m = out["darts"], out["manas"]
    out["ratios_manas_over_darts"] = {
        "op_slots": statistics.fmean(m["op_slots"]) / statistics.fmean(d["op_slots"]),
        "op_calls": statistics.fmean(m["op_calls"]) / statistics.fmean(d["op_calls"]),
        "peak_memory": m["mean_peak_mb"] / d["mean_peak_mb"],
        "saved_activations": m["mean_saved_activation_mb"] / d["mean_saved_activation_mb"],
        "wall_time": m["median_wall_s"] / d["median_wall_s"],
        "cpu_time": m["median_cpu_s"] / d["median_cpu_s"],
    }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=3, help="measured steps per method")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    train, _ = load_dataset("fashion-mnist", args.data_root)
    t0 = time.perf_counter()
    runs = [run_seed(args, s, train) for s in args.seeds]
    summary = {key: statistics.fmean(r["ratios_manas_over_darts"][key] for r in runs)
               for key in runs[0]["ratios_manas_over_darts"]}
    print(json.dumps({
        "benchmark": "manas_memory",
        "config": {**vars(args), "space": "darts", "dataset": "fashion-mnist", "torch": torch.__version__},
        "method": __doc__.split("Measured per step:")[1].split("    .venv")[0].strip(),
        "expected": {"op_slots": 1 / 8, "peak_memory": "<= 1/6 (target), 1/8 (paper)"},
        "ratios_manas_over_darts_mean": summary,
        "runs": runs,
        "wall_s": time.perf_counter() - t0,
    }, indent=2))


if __name__ == "__main__":
    main()
