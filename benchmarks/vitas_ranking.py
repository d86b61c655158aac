"""V3: does the ViTAS-style super-transformer rank subnets better than AutoFormer-style sharing?

Per seed: the Fashion-MNIST training set is cut to `--subset` images and split in halves (search-train,
search-val; `nasforge search`'s split). Four supernets are trained on search-train with the `vitas` strategy
(same data, epochs, recipe, calibrated identity probability, seed):

  vitas        bilateral sharing, private Q/K per head count, private class tokens
  autoformer   leading slices, one shared Q/K/V, shared class token (style=autoformer)
  no_private_qk   vitas with one shared Q/K/V          (ablation: private Q/K off)
  leading      vitas with leading slices only         (ablation: bilateral off)

12 distinct subnets are sampled inside one MACs window (calibrated sampling, the same 12 for every
supernet). Inherited accuracy: top-1 on the first `--eval-images` of search-val with the supernet's weights
(the strategy's own score: left/right mean where the sharing has two views). Ground truth: each subnet
trained stand-alone from scratch on search-train (AdamW, the DeiT-style options of the training engine) and
tested on the same search-val images. Kendall tau-b between the two per supernet; the claim is
tau(vitas) >= tau(autoformer) averaged over the seeds.

    .venv/bin/python benchmarks/vitas_ranking.py --seeds 0 1 > docs/results/vitas_ranking.json
    # add a seed to an earlier run (seeds already there are reused when the settings match)
    .venv/bin/python benchmarks/vitas_ranking.py --seeds 0 1 2 --reuse old.json > new.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from nasforge import api, progress
from nasforge.data import SearchData, search_split
from nasforge.data.datasets import fashion_mnist
from nasforge.data.loader import Loader
from nasforge.spaces.vit import ViTSpace
from nasforge.strategies.vitas import ViTAS, calibrate_identity
from nasforge.training import TrainConfig, evaluate, train_model

VARIANTS = {"vitas": {}, "autoformer": {"style": "autoformer"}, "no_private_qk": {"private_qk": False},
            "leading": {"share": "leading"}}


def sample_subnets(space: ViTSpace, lo: float, hi: float, n: int, seed: int) -> list[dict]:
    p, _, _ = calibrate_identity(space, lo, hi, samples=1000, seed=seed)
    rng = random.Random(f"v3-{seed}")
    out, seen = [], set()
    while len(out) < n:
        a = space.sample(rng, p_identity=p)
        key = json.dumps(a)
        if lo <= space.macs(a) <= hi and key not in seen:
            seen.add(key)
            out.append(a)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--subset", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=5, help="supernet epochs")
    ap.add_argument("--gt-epochs", type=int, default=3, help="stand-alone epochs per subnet")
    ap.add_argument("--subnets", type=int, default=12)
    ap.add_argument("--budget", type=float, default=0.2, help="window [0.5 B, B] x largest subnet MACs")
    ap.add_argument("--eval-images", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reuse", type=Path, default=None,
                    help="an earlier output of this script: its seeds are reused when its settings match")
    args = ap.parse_args()
    prev: dict = {}
    if args.reuse is not None:
        try:
            earlier = json.loads(args.reuse.read_text())
        except (OSError, ValueError) as e:
            sys.exit(f"error: --reuse {args.reuse}: not a readable JSON output of this script ({e})")
        same = {k: v for k, v in vars(args).items() if k not in ("seeds", "threads", "reuse")}
        theirs = {k: earlier.get("config", {}).get(k) for k in same}
        if same != theirs:
            sys.exit(f"error: --reuse {args.reuse}: its settings {theirs} differ from these {same}")
        prev = earlier.get("seeds", {})
    torch.set_num_threads(args.threads)
    progress.set_enabled(False)
    t0 = time.perf_counter()
    train, _ = fashion_mnist()
    space0 = ViTSpace()
    top = space0.macs(space0.extreme_archs()[1])
    lo, hi = 0.5 * args.budget * top, args.budget * top
    hp = {"flops_min": lo, "flops_max": hi, "candidates": 1, "population": 1, "sample_size": 1, "eval_images": 100}
    out = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "window_macs": [lo, hi], "load_avg_start": os.getloadavg(), "seeds": {}}
    for seed in args.seeds:
        if str(seed) in prev:  # same settings, same seed: the earlier result is this run's result
            out["seeds"][seed] = prev[str(seed)]
            print(f"seed {seed}: reused from {args.reuse}", file=sys.stderr)
            continue
        subnets = sample_subnets(space0, lo, hi, args.subnets, seed)
        tr, va = search_split(train, seed=0, subset=args.subset)
        mean, std = train.stats()
        val_eval = va.subset(torch.arange(min(args.eval_images, len(va))))
        gt = []
        for i, a in enumerate(subnets):
            net = space0.build(a)
            cfg = TrainConfig(epochs=args.gt_epochs, batch_size=64, optimizer="adamw", lr=1e-3, weight_decay=0.05,
                              label_smoothing=0.1, warmup_epochs=0, decay_norms=False, crop_padding=2, hflip=True,
                              seed=seed)
            train_model(net, tr, None, cfg, mean=mean, std=std)
            gt.append(evaluate(net, Loader(val_eval, 500, mean=mean, std=std))["accuracy"])
            print(f"seed {seed} gt {i}: {gt[-1]:.3f}", file=sys.stderr)
        res = {"subnets": subnets, "macs": [space0.macs(a) for a in subnets], "ground_truth": gt, "variants": {}}
        for name, opts in VARIANTS.items():
            with tempfile.TemporaryDirectory() as tmp:
                r = api.search({"space": "vit", "method": "vitas", "dataset": "fashion-mnist", "subset": args.subset,
                                "batch_size": 64, "seed": seed, "space_options": opts, "hparams": hp,
                                "budget": {"epochs": args.epochs}, "threads": args.threads}, run_root=tmp)
                ck = torch.load(Path(r["run_dir"]) / "checkpoint.pt", weights_only=False)
            space = ViTSpace(**opts)
            sn = space.supernet()
            sn.load_state_dict(ck["supernet"])
            strat = ViTAS(**hp)
            strat.device = torch.device("cpu")
            batches = list(Loader(val_eval, 500, mean=mean, std=std))
            inh = [strat.score(sn, space, a, batches) for a in subnets]
            tau = kendalltau(inh, gt).statistic
            res["variants"][name] = {"inherited": inh, "kendall_tau": float(tau),
                                     "supernet_train_s": r["cost"]["wall_s"],
                                     "last_epoch": {k: v for k, v in ck["history"][-1].items() if k != "event"}}
            print(f"seed {seed} {name}: tau {tau:.3f}", file=sys.stderr)
        out["seeds"][seed] = res
    taus = {n: float(np.mean([out["seeds"][s]["variants"][n]["kendall_tau"] for s in args.seeds])) for n in VARIANTS}
    out["mean_tau"] = taus
    out["claim_met"] = taus["vitas"] >= taus["autoformer"]
    out["wall_s"] = time.perf_counter() - t0
    out["load_avg_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
