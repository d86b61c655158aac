"""Cost of binarization in the search: time per search step of the `bats` supernet vs the real-valued `darts`
supernet of the same size (C, layers, batch), measured in one process, interleaved, medians.

A "search step" is what the strategies do per batch: one first-order alpha step (forward + backward on a
search-val batch) and one weight step (forward + backward + optimiser step on a search-train batch). Both
supernets have 14 edges x 8 ops per cell; `bats` runs in its default search mode (binary activations, real
weights, 32W/1A) and, as a second row, fully binary (1W/1A). Prints one JSON object.

    python benchmarks/bats_search_cost.py --C 8 --layers 3 --batch 32 --repeats 5 --threads 1
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
import torch.nn.functional as F

from nasforge.ops.binary import set_binarization
from nasforge.spaces.bats import BatsSpace
from nasforge.spaces.darts import DartsSpace


def step_time(sn, x, y, xv, yv) -> float:
    alphas = sn.arch_parameters()
    weights = sn.weight_parameters()
    a_opt = torch.optim.Adam(alphas, lr=3e-4)
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9)
    t0 = time.perf_counter()
    loss = F.cross_entropy(sn(xv), yv)
    for a, g in zip(alphas, torch.autograd.grad(loss, alphas)):
        a.grad = g
    a_opt.step()
    w_opt.zero_grad()
    F.cross_entropy(sn(x), y).backward(inputs=weights)
    w_opt.step()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--groups", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg()
    x, xv = torch.randn(a.batch, 1, 28, 28), torch.randn(a.batch, 1, 28, 28)
    y, yv = torch.randint(0, 10, (a.batch,)), torch.randint(0, 10, (a.batch,))
    nets = {"darts": DartsSpace(C=a.C, layers=a.layers).supernet(),
            "bats_32w1a": BatsSpace(C=a.C, layers=a.layers, groups=a.groups).supernet(),
            "bats_1w1a": BatsSpace(C=a.C, layers=a.layers, groups=a.groups).supernet()}
    set_binarization(nets["bats_32w1a"], act=True, weight=False)
    set_binarization(nets["bats_1w1a"], act=True, weight=True)
    times: dict[str, list[float]] = {k: [] for k in nets}
    for k, sn in nets.items():  # warm-up (allocator, oneDNN primitive caches)
        step_time(sn, x, y, xv, yv)
    for _ in range(a.repeats):  # interleaved so that load changes hit every variant alike
        for k, sn in nets.items():
            times[k].append(step_time(sn, x, y, xv, yv))
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"benchmark": "bats_search_step_cost", "C": a.C, "layers": a.layers, "groups": a.groups, "batch": a.batch,
           "threads": a.threads, "repeats": a.repeats,
           "params": {k: sum(p.numel() for p in sn.weight_parameters()) for k, sn in nets.items()},
           "step_s_median": med, "step_s_all": times,
           "ratio_bats_32w1a_over_darts": med["bats_32w1a"] / med["darts"],
           "ratio_bats_1w1a_over_darts": med["bats_1w1a"] / med["darts"],
           "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
           "note": "CPU, fp32 simulation of binary ops (sign + XNOR scale on the fly, float convs): binarization "
                   "adds work here; real speed-ups need XNOR/popcount kernels, which PyTorch does not have"}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
