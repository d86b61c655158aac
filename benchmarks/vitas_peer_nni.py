"""Super-transformer training speed and memory: nasforge's `vit` space in AutoFormer mode against NNI 3.0's
AutoFormer space with its RandomOneShot strategy, at the same configuration.

Configuration, identical for both (defaults; flags change them): Fashion-MNIST 1x28x28, patch 4 (49 patches
+ the class token), embed {48, 64}, depth {4, 5, 6} (the first d blocks), heads {1, 2, 4} per block with head
width 64 (NNI's AutoFormer fixes it; attention width = 64 x heads), MLP ratio {2, 3} of the embed dim per
block, Q/K/V biases, class-token classifier, pre-norm, no relative position encoding, no drop-path, batch 64,
10 classes; one fresh uniform subnet per step (the same distribution in both: embed, depth, then per block
heads and MLP ratio), cross-entropy, one optimiser step (NNI's Classification: Adam lr 1e-3; nasforge:
AdamW lr 1e-3 with ViTAS' no-decay groups). The images are the same in both, in the same order.

nasforge's side is its `vit` super-transformer (style=autoformer: leading slices, one shared Q/K/V, shared
class token; identity_shift so depth d runs slots 0..d-1, as AutoFormer's first-d rule) driven by a plain
loop (sample, forward, loss, backward, step), each step timed; the ViTAS strategy's augmentation and CutMix
are not part of the measured step (NNI's side has none). NNI's side is `NasExperiment(AutoFormer(...),
Classification, RandomOneShot())` as NNI's tutorial runs it, each step timed by a Lightning callback.
Arms (issue 20; `--arms`): nasforge at fp32 and at its fastest setting (`auto` where this checkout has it, else
bf16; autocast as the engine runs a step), NNI at fp32 and at bf16 (Lightning's precision="bf16"). Per seed
every arm runs in a fresh subprocess, the order rotated by one arm per seed; after --warmup steps the median
of the timed steps gives images/s; memory is the child's peak RSS. `ratios` is fp32 against fp32 (target
>= 1.5x, no more memory), `precision.best_vs_best` each contender's fastest arm against the other's
(target >= 2x); a failing arm is recorded under `failed_arms`.

    .venv/bin/python benchmarks/vitas_peer_nni.py --threads 1 > docs/results/vitas_peer_nni.json   # ~6-8 min
"""
from __future__ import annotations

import argparse
import json
import os
import random
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

NNI_WORKER = Path(__file__).with_name("_nni_autoformer_worker.py")
TARGETS = (1.5, 2.0)  # issue 20: >= 1.5x NNI at fp32, >= 2x best against best; no more peak memory in either


def make_data(seed: int, n: int, path: Path) -> None:
    """n training images and 64 validation images of Fashion-MNIST, normalised, saved for both contenders."""
    x, y = _peer.fashion_mnist_sample(seed, n + 64)
    x = x.contiguous()
    torch.save({"x_train": x[:n], "y_train": y[:n], "x_val": x[n:], "y_val": y[n:]}, path)


def vit_space(args: argparse.Namespace):
    """nasforge's `vit` space holding exactly NNI AutoFormer's choices (AutoFormer mode)."""
    from nasforge.spaces.vit import ViTSpace

    E, D, H = max(args.embed), max(args.depth), max(args.heads)
    A = 64 * H
    mlps = sorted({int(e * r) for e in args.embed for r in args.mlp_ratios})
    M = max(mlps)
    return ViTSpace(in_channels=1, num_classes=10, resolution=28, style="autoformer", identity_shift=True,
                    patch_sizes=[args.patch], embed_dim=E, embed_ratios=[e / E for e in args.embed], depth=D,
                    heads=args.heads, qkv_dim=A, attn_ratios=[64 * h / A for h in args.heads], mlp_dim=M,
                    mlp_ratios=[m / M for m in mlps])


def sample(rng: random.Random, args: argparse.Namespace) -> dict[str, Any]:
    """AutoFormer's uniform distribution: embed, depth, then per block heads and MLP ratio."""
    e, d = rng.choice(args.embed), rng.choice(args.depth)
    blocks = []
    for i in range(max(args.depth)):
        h, r = rng.choice(args.heads), rng.choice(args.mlp_ratios)
        blocks.append({"heads": h, "attn": 64 * h, "mlp": int(e * r)} if i < d else None)
    return {"patch": args.patch, "embed": e, "blocks": blocks}


def nasforge_worker(args: argparse.Namespace) -> dict[str, Any]:
    from nasforge.accel import Precision, resolve_fast_path
    from nasforge.training import no_decay_groups
    from nasforge.utils import seed_everything

    data = torch.load(args.data)
    xt, yt = data["x_train"], data["y_train"]
    rss_base = rss_mb()
    start = time.perf_counter()
    seed_everything(args.seed)
    torch.set_num_threads(args.threads)
    space = vit_space(args)
    supernet = space.supernet()
    opt = torch.optim.AdamW(no_decay_groups(supernet, 0.05), lr=1e-3)
    rng = random.Random(args.seed)
    # `auto` resolved from the space's declaration, as search() does; then autocast as the engine runs a step
    precision = resolve_fast_path(args.precision, "auto", torch.device("cpu"), space.fast_path("supernet"))["precision"]
    prec = Precision(torch.device("cpu"), precision)
    supernet.train()
    times = []
    for k in range(len(xt) // args.batch):
        s = slice(k * args.batch, (k + 1) * args.batch)
        t = time.perf_counter()
        arch = sample(rng, args)
        with prec.autocast():
            loss = F.cross_entropy(supernet(xt[s], arch, "left"), yt[s])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    total_s = time.perf_counter() - start
    rss_peak = peak_rss_mb()
    return {"step_s": times, "total_s": total_s, "rss_base_mb": rss_base, "rss_peak_mb": rss_peak,
            "threads": torch.get_num_threads(), "supernet_params": sum(p.numel() for p in supernet.parameters()),
            "precision": prec.precision}


def summarise(run: dict[str, Any], warmup: int, batch: int) -> dict[str, Any]:
    return {**_peer.summarise(run, warmup, batch, keep=("supernet_params",)), "steps": len(run["step_s"])}


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    nni_python = _peer.nni_python_or_exit(args.nni_python)
    n = (args.warmup + args.steps) * args.batch
    csv = lambda v: ",".join(str(x) for x in v)  # noqa: E731
    common_cfg = ["--embed", csv(args.embed), "--depth", csv(args.depth), "--heads", csv(args.heads),
                  "--mlp-ratios", csv(args.mlp_ratios), "--patch", str(args.patch), "--batch", str(args.batch),
                  "--threads", str(args.threads)]
    rows: dict[str, list[dict[str, Any]]] = {arm: [] for arm in args.arms}
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nasforge-vit-peer-") as tmp:
        for i, seed in enumerate(args.seeds):
            data = Path(tmp) / f"data_{seed}.pt"
            make_data(seed, n, data)
            common = ["--data", str(data), "--seed", str(seed), *common_cfg]
            me = [sys.executable, __file__, "--worker", *common]
            nni = [str(nni_python), str(NNI_WORKER), "--workdir", tmp, *common]
            order = [(arm, (me if arm.startswith("nasforge") else nni) + ["--precision", arm.split(":")[1]])
                     for arm in _peer.rotated(args.arms, i)]
            _peer.run_in_turn(rows, order, f"seed={seed}", lambda run: summarise(run, args.warmup, args.batch))
    rows, failed = _peer.completed(rows)
    contenders = {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in rows.items()}
    for name, runs in rows.items():
        contenders[name]["per_seed_step_s"] = [r["step_s_median"] for r in runs]
    out: dict[str, Any] = {
        "config": {"dataset": "fashion-mnist 1x28x28", "patch": args.patch, "embed": args.embed,
                   "depth": args.depth, "heads": args.heads, "head_dim": 64, "mlp_ratios": args.mlp_ratios,
                   "batch": args.batch, "threads": args.threads, "seeds": args.seeds, "warmup_steps": args.warmup,
                   "timed_steps": args.steps, "arms": args.arms,
                   "images_per_s": "train images per supernet step (batch / median step time)"},
        "contenders": contenders, "failed_arms": failed, "load_avg_start": load_start}
    if "nasforge:fp32" in rows and "nni:fp32" in rows:  # fp32 against fp32 (as before issue 20), then best vs best
        ratios: dict[str, Any] = _peer.paired_ratios(rows["nasforge:fp32"], rows["nni:fp32"])
        ratios["target_met"] = _peer.target_met(ratios, TARGETS[0])
        out["ratios"] = ratios
        out["precision"] = _peer.precision_comparison(rows, *TARGETS)
    out["load_avg_end"] = os.getloadavg()
    return out


def main() -> None:
    if "--worker" in sys.argv:  # the nasforge contender: configuration as comma lists, as the NNI worker takes it
        w = argparse.ArgumentParser()
        for key in ("--embed", "--depth", "--heads"):
            w.add_argument(key, type=lambda s: [int(v) for v in s.split(",")])
        w.add_argument("--mlp-ratios", type=lambda s: [float(v) for v in s.split(",")])
        for key in ("--patch", "--batch", "--threads", "--seed"):
            w.add_argument(key, type=int)
        w.add_argument("--data")
        w.add_argument("--precision", default="fp32")
        w.add_argument("--worker", action="store_true")
        print(json.dumps(nasforge_worker(w.parse_args())))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--embed", type=int, nargs="+", default=[48, 64])
    p.add_argument("--depth", type=int, nargs="+", default=[4, 5, 6])
    p.add_argument("--heads", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--mlp-ratios", type=float, nargs="+", default=[2.0, 3.0])
    p.add_argument("--arms", nargs="+", default=None,
                   help="contender:precision runs per seed, rotated per seed (default: nasforge at fp32 and at its "
                        "fastest setting, NNI at fp32 and bf16)")
    p.add_argument("--nni-python", default=str(_peer.DEFAULT_NNI_PYTHON))
    args = p.parse_args()
    args.arms = _peer.arms_or_default(p, args.arms)
    print(json.dumps(benchmark(args), indent=2))


if __name__ == "__main__":
    main()
