"""Backward of a depthwise conv on the CPU: torch's kernel against the tiled weight gradient (issue 20).

For every shape the DARTS-space and mobile-space depthwise convs run at (batch 64, C 8-240, 28x28 to 4x4,
k 3/5/7, stride 1/2, dilation 1/2, fp32, channels_last and contiguous), one process, `--threads` threads
(1 by default), CPU time (time.process_time) medians of `--reps` interleaved rounds, each round timing in
turn: the forward, torch's input gradient, torch's weight gradient and the tiled weight gradient
(`nasforge.ops.depthwise.depthwise_weight_grad`; "-" where it does not apply: k = 3, which torch already
runs on oneDNN's depthwise kernel, and dilation 2, which the spaces run in polyphase form as plain convs).
`speedup` = median over rounds of torch's weight-gradient time over the tiled one; `max_rel_err` = the
largest |tiled - torch| over the largest |torch| (float rounding). With `--profile`, one torch.profiler
table of a torch 5x5 weight gradient (everything is inside aten::convolution_backward).

    .venv/bin/python benchmarks/depthwise_backward.py --write      # ~2 min idle; docs/results/depthwise_backward.json
    .venv/bin/python benchmarks/depthwise_backward.py --quick      # toy sizes (the test runs this)
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "depthwise_backward.json"

# (C, H): the darts space at C=8 (8/16/32 channels at 28/14/7, times E edges grouped per source node),
# and the mobile space's MBConv hidden widths (expansion 3-6 of 16-80 channels at 14/7/4)
SHAPES = [(8, 28), (32, 28), (16, 14), (96, 14), (32, 7), (120, 7), (240, 4)]
QUICK_SHAPES = [(4, 12), (8, 6)]


def _cpu_ms(f) -> float:
    c = time.process_time()
    f()
    return 1e3 * (time.process_time() - c)


def measure(C: int, H: int, k: int, stride: int, dilation: int, channels_last: bool, batch: int,
            reps: int) -> dict[str, Any]:
    from nasforge.ops.depthwise import depthwise_weight_grad

    g = torch.Generator().manual_seed(C * 1000 + H * 10 + k)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, C, H, H, generator=g).contiguous(memory_format=fmt)
    w = torch.randn(C, 1, k, k, generator=g).contiguous(memory_format=fmt)
    p = dilation * (k // 2)
    y = F.conv2d(x, w, None, stride, p, dilation, C)
    go = torch.randn(y.shape, generator=g).contiguous(memory_format=fmt)
    cb = torch.ops.aten.convolution_backward
    conf = ((stride, stride), (p, p), (dilation, dilation), False, (0, 0), C)
    arms = {"forward": lambda: F.conv2d(x, w, None, stride, p, dilation, C),
            "input_grad": lambda: cb(go, x, w, None, *conf, (True, False, False)),
            "weight_grad": lambda: cb(go, x, w, None, *conf, (False, True, False))}
    tiled = None
    if k > 3 and dilation == 1:
        tiled = depthwise_weight_grad(x, go, (k, k), (stride, stride))
        if tiled is not None:
            arms["weight_grad_tiled"] = lambda: depthwise_weight_grad(x, go, (k, k), (stride, stride))
    for f in arms.values():  # warm-up: primitive creation
        f()
    times: dict[str, list[float]] = {a: [] for a in arms}
    for _ in range(reps):
        for a, f in arms.items():
            times[a].append(_cpu_ms(f))
    out: dict[str, Any] = {"C": C, "H": H, "k": k, "stride": stride, "dilation": dilation,
                           "format": "channels_last" if channels_last else "contiguous",
                           **{f"{a}_ms": statistics.median(t) for a, t in times.items()}}
    if tiled is not None:
        ref = arms["weight_grad"]()[1]
        out["speedup"] = statistics.median(r / t for r, t in zip(times["weight_grad"], times["weight_grad_tiled"]))
        out["max_rel_err"] = ((tiled - ref).abs().max() / ref.abs().max()).item()
    return out


def profile_table(batch: int) -> str:
    """torch.profiler's table of one torch 5x5 depthwise weight gradient (B batch, C 32, 28x28, channels_last)."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.randn(batch, 32, 28, 28).contiguous(memory_format=torch.channels_last)
    w = torch.randn(32, 1, 5, 5).contiguous(memory_format=torch.channels_last)
    go = torch.randn_like(x)
    f = lambda: torch.ops.aten.convolution_backward(go, x, w, None, (1, 1), (2, 2), (1, 1), False, (0, 0), 32,  # noqa: E731
                                                    (True, True, False))
    f()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        f()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="toy sizes, 1 round: checks the script, measures nothing")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler's table of a 5x5 weight gradient")
    p.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)}")
    p.add_argument("--out", type=Path, default=RESULT, help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    shapes, batch, reps = (QUICK_SHAPES, 4, 1) if a.quick else (SHAPES, a.batch, a.reps)
    res: dict[str, Any] = {"settings": {"reps": reps, "batch": batch, "threads": a.threads, "quick": a.quick},
                           "torch": torch.__version__, "load_avg_start": os.getloadavg(), "rows": []}
    for (C, H), k, s, d, cl in itertools.product(shapes, (3, 5, 7), (1, 2), (1, 2), (True, False)):
        if d == 2 and k == 7:  # no dilated 7x7 in any space
            continue
        res["rows"].append(measure(C, H, k, s, d, cl, batch, reps))
    res["load_avg_end"] = os.getloadavg()
    if a.profile:
        res["profile_5x5_weight_grad"] = profile_table(batch)
    if a.write:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
