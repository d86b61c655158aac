"""What `--precision auto` / `--memory-format auto` pick per space, checked by measurement (issue 20).

For each workload (a space's supernet or standalone network, built from the project's classes), every arm is
built from the same weights; each round trains one step of every arm in turn (forward, cross-entropy, backward,
SGD step; the same batch and, for sampled supernets, the same path or subnet in every arm of a round). Arms:
fp32 contiguous (the previous path for nb201/mobile/vit/baseline), fp32 channels_last, bf16 contiguous, bf16
channels_last, and `auto` (what the space's declaration resolves to on this machine). Reported per arm: the
median CPU time per step (exact for one thread) and the median of per-round speed-ups over fp32 contiguous,
plus the load average before and after. Prints JSON; --write stores it in docs/results/precision_auto.json.

    python benchmarks/precision_auto.py --rounds 7 --warmup 2 [--workloads nb201-supernet darts-supernet ...]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "precision_auto.json"
CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ARMS = {"fp32": ("fp32", "contiguous"), "fp32+cl": ("fp32", "channels_last"), "bf16": ("bf16", "contiguous"),
        "bf16+cl": ("bf16", "channels_last")}


def workloads():
    """name -> (builder() -> (module, FastPath, forward(net, x, round) -> logits))."""
    from nasforge.models import BaselineCNN
    from nasforge.spaces.darts import DartsSpace
    from nasforge.spaces.mobile import MobileSpace
    from nasforge.spaces.nb201 import NB201Space
    from nasforge.spaces.vit import ViTSpace

    def plain(net, x, r):
        return net(x)

    def nb201_supernet():
        sp = NB201Space(C=16, N=1)
        return sp.supernet(), sp.fast_path("supernet"), plain

    def nb201_network():
        sp = NB201Space(C=16, N=1)
        return sp.build(CELL), sp.fast_path("network"), plain

    def darts_supernet():
        sp = DartsSpace(C=8, layers=5)
        return sp.supernet(), sp.fast_path("supernet"), plain

    def mobile_supernet():
        sp = MobileSpace()
        rng = random.Random(0)
        cands = [sorted(rng.sample(c, min(4, len(c)))) for c in sp.layer_choices()]
        net = sp.supernet(candidates=cands)

        def fwd(n, x, r):
            local = random.Random(r)  # the same path for every arm of round r
            n.set_path(n.arch_to_path([local.choice(c) for c in n.candidates]))
            return n(x)
        return net, sp.fast_path("supernet"), fwd

    def vit(options):
        def build():
            sp = ViTSpace(**options)

            def fwd(n, x, r):
                return n(x, sp.sample(random.Random(r)), "left")
            return sp.supernet(), sp.fast_path("supernet"), fwd
        return build

    def autoformer():
        """The peer benchmark's AutoFormer space (benchmarks/vitas_peer_nni.py: embed 48/64, depth 4-6, heads
        1/2/4 of width 64, MLP ratio 2/3, patch 4) and its sampling."""
        sys.path.insert(0, str(REPO / "benchmarks"))
        import argparse as _ap

        import vitas_peer_nni as vp
        a = _ap.Namespace(embed=[48, 64], depth=[4, 5, 6], heads=[1, 2, 4], mlp_ratios=[2.0, 3.0], patch=4)
        sp = vp.vit_space(a)

        def fwd(n, x, r):
            return n(x, vp.sample(random.Random(r), a), "left")
        return sp.supernet(), sp.fast_path("supernet"), fwd

    def baseline():
        return BaselineCNN(1, 10), BaselineCNN.fast_path, plain

    return {"nb201-supernet": nb201_supernet, "nb201-network": nb201_network, "darts-supernet": darts_supernet,
            "mobile-supernet": mobile_supernet, "vit-supernet": vit({}), "vit-supernet-mlp192": vit({"mlp_dim": 192}),
            "vit-supernet-autoformer": autoformer,
            "baseline": baseline}


def measure(name: str, build, batches, rounds: int, warmup: int) -> dict:
    import torch
    import torch.nn.functional as F

    from nasforge.accel import Precision, apply_memory_format, resolve_fast_path

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    base, declared, fwd = build()
    auto = resolve_fast_path("auto", "auto", cpu, declared)
    arms = dict(ARMS)
    arms["auto"] = (auto["precision"], auto["memory_format"])
    steps = {}
    for arm, (precision, fmt) in arms.items():
        net = copy.deepcopy(base).train()
        apply_memory_format(net, fmt)
        prec = Precision(cpu, precision)
        opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.01, momentum=0.9)

        def step(x, y, r, net=net, prec=prec, opt=opt):
            c0 = time.process_time()
            with prec.autocast():
                loss = F.cross_entropy(fwd(net, x, r), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return time.process_time() - c0
        steps[arm] = step
    times = {arm: [] for arm in arms}
    for r in range(warmup + rounds):
        x, y = batches[r % len(batches)]
        for arm in arms:
            t = steps[arm](x, y, r)
            if r >= warmup:
                times[arm].append(t)
    out = {"declared": {"bf16": declared.bf16, "channels_last": declared.channels_last, "why": declared.why},
           "auto": f"{auto['precision']}, {auto['memory_format']}", "arms": {}}
    for arm in arms:
        per_round = [a / b for a, b in zip(times["fp32"], times[arm])]
        out["arms"][arm] = {"cpu_s_median": round(statistics.median(times[arm]), 4),
                            "speedup_vs_fp32_contiguous": round(statistics.median(per_round), 3)}
    print(json.dumps({name: out}), file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = list(workloads())
    ap.add_argument("--workloads", nargs="+", default=names, choices=names)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from nasforge.accel import cpu_native_bf16
    from nasforge.data import load_dataset

    train, _ = load_dataset("fashion-mnist", None)
    mean, std = train.stats()
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(train), generator=g)[: 4 * args.batch]
    x = (train.images[idx].float() / 255 - mean[0]) / std[0]
    y = train.labels[idx]
    batches = [(x[i:i + args.batch].contiguous(), y[i:i + args.batch]) for i in range(0, len(idx), args.batch)]
    res = {"benchmark": "precision_auto", "command": " ".join(sys.argv[1:]), "threads": args.threads,
           "batch": args.batch, "rounds": args.rounds, "warmup": args.warmup, "cpu_native_bf16": cpu_native_bf16(),
           "load_start": [round(v, 2) for v in os.getloadavg()], "workloads": {}}
    build = workloads()
    for name in args.workloads:
        res["workloads"][name] = measure(name, build[name], batches, args.rounds, args.warmup)
    res["load_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(res, indent=1))
    if args.write:
        old = json.loads(RESULT.read_text()) if RESULT.exists() else {"workloads": {}}
        old.update({k: v for k, v in res.items() if k != "workloads"})
        old["workloads"].update(res["workloads"])
        RESULT.write_text(json.dumps(old, indent=1) + "\n")


if __name__ == "__main__":
    main()
