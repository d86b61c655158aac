"""Issue 20, item 2: step speed-up of the grouped supernet kernels against the per-edge reference.

Arms of one workload are built with the same seed and run one step each in turn (A B A B ...), one thread,
CPU time per step (``time.process_time``: exact for a 1-thread process even on a loaded machine); the
figure is the median of per-round ratios. The load average is recorded at the start and the end.

Workloads (batch 64, Fashion-MNIST 1x28x28, the strategy's own ``step`` as its search loop calls it):

- ``darts``: DARTS (first order) on the darts space, C=8, 5 cells; arms ``reference`` (space option
  fused=false) and ``fused`` (the default: edges grouped by source node);
- ``bats``: BATS on the bats space, C=8, 5 cells, G=4; the same two arms and ``reference_old_ops`` (per-edge,
  with the sign / STE / channel shuffle of before issue 20, patched in for its steps);
- ``hurricane``: one uniform single-path step of the mobile supernet (SGD, clip 5, 4 candidates per layer),
  arms ``fp32`` (NCHW), ``fp32_cl`` (channels-last), ``bf16_cl`` (bf16 autocast, channels-last) and
  ``bf16_cl_dwfp32`` (the same, depthwise convs kept in fp32).

    python benchmarks/grouped_edges.py --workload darts --rounds 5 --out docs/results/grouped_edges_darts.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _batches(batch: int, seed: int, n: int = 4) -> Callable[[int], Any]:
    import _peer

    x, y = _peer.fashion_mnist_sample(seed, 2 * batch * n)
    return lambda k: ((x[(k % n) * batch:(k % n + 1) * batch].contiguous(), y[(k % n) * batch:(k % n + 1) * batch]),
                      (x[(n + k % n) * batch:(n + k % n + 1) * batch].contiguous(),
                       y[(n + k % n) * batch:(n + k % n + 1) * batch]))


def _oneshot(space_name: str, method: str, opts: dict[str, Any], seed: int, batch: int) -> Callable[[int], Any]:
    from nasforge.accel import Precision
    from nasforge.engine.base import Budget, SearchContext
    from nasforge.building import import_components
    from nasforge.registry import SPACES, STRATEGIES
    from nasforge.utils import seed_everything

    import_components()
    seed_everything(seed)
    space = SPACES.get(space_name)(in_channels=1, num_classes=10, resolution=28, **opts)
    strat = STRATEGIES.get(method)(hessian_every=0)
    net = space.supernet()
    ctx = SearchContext(space=space, budget=Budget(epochs=1), seed=seed, device=torch.device("cpu"), precision="fp32")
    strat.prec = Precision(torch.device("cpu"), "fp32")
    strat._make_weight_optimizer(net, ctx, epochs=1)
    strat.setup(net, ctx)
    net.train()
    get = _batches(batch, seed)

    def step(k: int) -> None:
        b, v = get(k)
        strat.step(net, b, v, ctx)
    return step


def _hurricane(arm: str, seed: int, batch: int) -> Callable[[int], Any]:
    """Hurricane's supernet training step (uniform single path, SGD, clip 5) on the mobile space, 4 seeded
    candidates per layer. Arms: fp32 | fp32_cl | bf16_cl | bf16_cl_dwfp32 (cl: channels-last weights and input;
    dwfp32: the depthwise convs stay fp32 under bf16 autocast, DepthwiseConv2d.fp32_under_autocast)."""
    import random

    import torch.nn.functional as F

    from nasforge.accel import apply_memory_format
    from nasforge.ops.mobile import DepthwiseConv2d
    from nasforge.spaces.mobile import MobileSpace
    from nasforge.utils import seed_everything

    seed_everything(seed)
    space = MobileSpace(in_channels=1, num_classes=10, resolution=28)
    rng = random.Random(seed)
    candidates = [rng.sample(choices, min(4, len(choices))) for choices in space.layer_choices()]
    net = space.supernet(candidates=candidates)
    cl = "cl" in arm
    apply_memory_format(net, "channels_last" if cl else "contiguous")
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    get = _batches(batch, seed)
    paths = torch.Generator().manual_seed(seed + 1)
    net.train()

    def step(k: int) -> None:
        (x, y), _ = get(k)
        net.set_path(net.random_path(paths))
        DepthwiseConv2d.fp32_under_autocast = arm.endswith("dwfp32")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=arm.startswith("bf16")):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
    return step


def _old_binary_ops():
    """The sign, STE backward and channel shuffle as they were before issue 20 (compare + where; abs, compare,
    cast, multiply; an NCHW reshape), patched in for the duration of one step of the ``reference_old_ops`` arm."""
    import contextlib

    from nasforge.ops import binary

    def hard_sign(x, zero=1):
        return torch.where(x >= 0 if zero > 0 else x > 0, 1.0, -1.0).to(x.dtype)

    def ste_backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() < 1).to(grad.dtype), None

    def shuffle(self, x):
        n, c, h, w = x.shape
        if self.groups <= 1:
            return x
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    @contextlib.contextmanager
    def patched():
        saved = binary._hard_sign, binary._SignSTE.backward, binary.ChannelShuffle.forward
        binary._hard_sign, binary._SignSTE.backward, binary.ChannelShuffle.forward = \
            hard_sign, staticmethod(ste_backward), shuffle
        try:
            yield
        finally:
            binary._hard_sign, binary._SignSTE.backward, binary.ChannelShuffle.forward = saved
    return patched


def _bats(arm: str, seed: int, batch: int) -> Callable[[int], Any]:
    step = _oneshot("bats", "bats", {"C": 8, "layers": 5, "groups": 4, "fused": arm == "fused"}, seed, batch)
    if arm != "reference_old_ops":
        return step
    patched = _old_binary_ops()

    def old_step(k: int) -> None:
        with patched():
            step(k)
    return old_step


WORKLOADS: dict[str, tuple[list[str], Callable[[str, int, int], Callable[[int], Any]]]] = {
    "darts": (["reference", "fused"],
              lambda arm, seed, batch: _oneshot("darts", "darts", {"C": 8, "layers": 5, "fused": arm == "fused"},
                                                seed, batch)),
    "bats": (["reference_old_ops", "reference", "fused"], _bats),
    "hurricane": (["fp32", "fp32_cl", "bf16_cl", "bf16_cl_dwfp32"], _hurricane),
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    arms, make = WORKLOADS[args.workload]
    steps = {arm: make(arm, args.seed, args.batch) for arm in arms}
    load_start = list(os.getloadavg())
    for k in range(args.warmup):
        for arm in arms:
            steps[arm](k)
    cpu: dict[str, list[float]] = {arm: [] for arm in arms}
    for r in range(args.rounds):
        for arm in arms:
            t = time.process_time()
            steps[arm](args.warmup + r)
            cpu[arm].append(time.process_time() - t)
    base = arms[0]
    result = {
        "workload": args.workload, "batch": args.batch, "seed": args.seed, "threads": 1, "rounds": args.rounds,
        "warmup": args.warmup, "torch": torch.__version__, "load_start": load_start, "load_end": list(os.getloadavg()),
        "arms": {arm: {"cpu_s": [round(t, 4) for t in cpu[arm]], "cpu_s_median": round(statistics.median(cpu[arm]), 4),
                       f"speedup_vs_{base}": round(statistics.median(b / t for b, t in zip(cpu[base], cpu[arm])), 3)}
                 for arm in arms},
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
