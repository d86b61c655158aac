"""Whether ``torch.compile`` pays for training one fixed network: a short, timed probe.

Compilation costs about a minute per network on a CPU (measured 55-66 s for the NB201 demo cell network,
docs/benchmarks.md) and gains 1.2-1.3x per step on top of bf16 + channels_last where it pays. The probe times a
few eager and compiled training steps on a copy of the network (the run's own weights, optimiser state, BN
statistics and RNG stay untouched) and turns compilation on only when the compiled step is at least
:data:`MIN_SPEEDUP` x faster *and* the time it saves over the run's planned steps exceeds the measured
compilation time. Runs too short to repay any compilation (fewer than :data:`MIN_STEPS` planned steps) are
not probed at all, so tiny runs (tests) never compile. A weight-sharing supernet is never compiled: every
path switch would recompile. The decision is recorded in the run (``fast_path.network.compile``) and a resume
reuses it.
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..accel import Precision, apply_memory_format
from ..data.datasets import ImageDataset
from ..ops.heads import aux_modules
from .engine import TrainConfig, split_logits

#: compiled step must be at least this much faster than the eager one (issue 20)
MIN_SPEEDUP = 1.2
#: runs with fewer planned optimiser steps are not probed (a minute of compilation needs thousands of steps)
MIN_STEPS = 2000


def probe_compile(model: nn.Module, train: ImageDataset, cfg: TrainConfig, device: torch.device, precision: str,
                  memory_format: str | None, steps: int = 5, warmup: int = 2) -> dict[str, Any]:
    """Decide whether `model` trains under ``torch.compile``; returns ``{"on": bool, "why": str, ...}`` with the
    probe's medians (``eager_s``, ``compiled_s`` per step, ``compile_s``, ``speedup``, ``planned_steps``) when
    it ran. `model` is not modified (the probe trains a deep copy on `steps` + `warmup` batches of `train`)."""
    planned = cfg.epochs * max(1, len(train) // cfg.batch_size)
    if planned < MIN_STEPS:
        return {"on": False, "planned_steps": planned,
                "why": f"{planned} planned steps < {MIN_STEPS}: too few to repay compilation; not probed"}
    if aux_modules(model):
        return {"on": False, "planned_steps": planned, "why": "auxiliary head: its tap is a side effect; not probed"}
    rng = torch.get_rng_state()
    try:
        eager_s, compiled_s, compile_s = _time_steps(model, train, cfg, device, precision, memory_format, steps, warmup)
    finally:
        torch.set_rng_state(rng)
    speedup = eager_s / compiled_s
    saved = planned * (eager_s - compiled_s) - compile_s
    on = speedup >= MIN_SPEEDUP and saved > 0
    return {"on": on, "planned_steps": planned, "eager_s": round(eager_s, 5), "compiled_s": round(compiled_s, 5),
            "compile_s": round(compile_s, 2), "speedup": round(speedup, 3),
            "why": f"probe: compiled step {speedup:.2f}x (needs >= {MIN_SPEEDUP}), saves {saved:.0f} s over "
                   f"{planned} steps after {compile_s:.0f} s of compilation"}


def _time_steps(model: nn.Module, train: ImageDataset, cfg: TrainConfig, device: torch.device, precision: str,
                memory_format: str | None, steps: int, warmup: int) -> tuple[float, float, float]:
    """Median seconds of an eager and a compiled training step, and the first compiled step's time."""
    mean, std = train.stats()
    loader = cfg.loader(train, mean, std, train=True, device=device)
    batches = []
    for x, y in loader:
        batches.append((x, y))
        if len(batches) >= steps + warmup:
            break
    prec = Precision(device, precision)

    def runner(net: nn.Module):
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

        def step(x: torch.Tensor, y: torch.Tensor) -> float:
            t0 = time.perf_counter()
            with prec.autocast():
                loss = F.cross_entropy(split_logits(net(x))[0], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return time.perf_counter() - t0
        return step

    eager = copy.deepcopy(model).to(device).train()
    apply_memory_format(eager, memory_format)
    compiled_src = copy.deepcopy(eager)
    e_step, c_step = runner(eager), runner(torch.compile(compiled_src))
    compile_s = c_step(*batches[0])  # compilation happens on the first call
    for x, y in batches[1:warmup]:
        e_step(x, y), c_step(x, y)
    e_times, c_times = [], []
    for x, y in batches[warmup:]:  # interleaved, so load changes hit both arms alike
        e_times.append(e_step(x, y))
        c_times.append(c_step(x, y))
    return statistics.median(e_times), statistics.median(c_times), compile_s
