"""ViTAS mechanics on the tiny `vit` space (spec 3.7): V1 budget calibration, V2 per-channel-group usage,
V5 identity shifting. Deterministic, seconds, no training.

- V1: for budgets B (fractions of the largest subnet's MACs) and window [0.9 B, B], run the calibration
  (p from 0.5 in steps of 0.01, 1000 samples per check); report p, whether it terminated inside (0, 1), the
  mean MACs of 1000 *fresh* samples (another seed), and whether p is non-increasing in B. The spec's budgets
  are 30/50/70 %; we also run 10/15/20/25 %, and report the reachable range of the mean (p -> 0 and p -> 1).
- V2: over 10,000 sampled steps, how often each channel group (of the embed, attention and MLP widths) is
  used under leading / bilateral (left + right per step) / cyclic sharing; coefficient of variation
  (population std / mean) over the groups.
- V5: distinct weight paths (tuples of block slots run) per depth among 20,000 samples at p = 0.5, with and
  without identity shifting, against C(6, d).

    .venv/bin/python benchmarks/vitas_mechanics.py > docs/results/vitas_mechanics.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch

from nasforge.errors import ConfigError
from nasforge.spaces.vit import ViTSpace, all_paths, count_paths, window
from nasforge.strategies.vitas import calibrate_identity


def v1(seeds: list[int]) -> dict:
    sp = ViTSpace()
    top = sp.macs(sp.extreme_archs()[1])
    reach = {}
    for p in (0.0, 0.01, 0.99):
        rng = random.Random(f"reach-{p}")
        reach[f"mean_macs_fraction_at_p_{p}"] = float(np.mean([sp.macs(sp.sample(rng, p_identity=p)) for _ in range(5000)])) / top
    rows = []
    for seed in seeds:
        for B in (0.10, 0.15, 0.20, 0.25, 0.30, 0.50, 0.70):
            lo, hi = 0.9 * B * top, B * top
            row = {"seed": seed, "budget": B, "window_macs": [lo, hi], "spec_budget": B in (0.30, 0.50, 0.70)}
            try:
                p, mean, trace = calibrate_identity(sp, lo, hi, samples=1000, seed=seed)
                rng = random.Random(f"fresh-{seed}-{B}")
                fresh = float(np.mean([sp.macs(sp.sample(rng, p_identity=p)) for _ in range(1000)]))
                row.update(terminated=True, p_identity=p, checks=len(trace), calibrated_mean=mean, fresh_mean=fresh,
                           fresh_mean_in_window=lo <= fresh <= hi, fresh_mean_fraction=fresh / top)
            except ConfigError as e:
                row.update(terminated=False, error=str(e))
            rows.append(row)
    monotone = {}
    for seed in seeds:
        ps = [r["p_identity"] for r in rows if r["seed"] == seed and r["terminated"]]
        monotone[seed] = all(a >= b for a, b in zip(ps, ps[1:]))
    spec_rows = [r for r in rows if r["spec_budget"]]
    return {"largest_subnet_macs": top, "reachable": reach, "rows": rows, "p_non_increasing_in_B": monotone,
            "claim_met_spec_budgets": all(r["terminated"] and r["fresh_mean_in_window"] for r in spec_rows),
            "claim_met_reachable_budgets": all(r["fresh_mean_in_window"] for r in rows if r["terminated"])
            and all(monotone.values())}


def v2(steps: int, seed: int) -> dict:
    out = {}
    for share in ("leading", "bilateral", "cyclic"):
        sp = ViTSpace(share=share)
        sn = sp.supernet()
        rng = random.Random(seed)
        g = torch.Generator().manual_seed(seed)
        use = {"embed": np.zeros(sp.E), "attn": np.zeros(sp.A), "mlp": np.zeros(sp.M)}
        for _ in range(steps):
            a = sp.sample(rng, p_identity=0.0)  # every slot a block: attention/MLP usage from all 6 slots
            views = ["left", "right"] if share == "bilateral" else (
                ["left"] if share == "leading" else [sn.sample_offsets(a, g)])
            for v in views:
                off = sn.offsets(a, v)
                use["embed"][window(off["embed"], a["embed"], sp.E)] += 1
                for slot, b in sn.active(a):
                    use["attn"][window(off["attn"][slot], b["attn"], sp.A)] += 1
                    use["mlp"][window(off["mlp"][slot], b["mlp"], sp.M)] += 1
        res = {}
        for dim, counts in use.items():
            unit = sp.units[dim]
            groups = counts.reshape(-1, unit).sum(1) / unit
            res[dim] = {"group_usage_per_step": (groups / steps).tolist(), "cv": float(groups.std() / groups.mean())}
        out[share] = res
    ok = (out["bilateral"]["embed"]["cv"] <= 0.05 and out["cyclic"]["embed"]["cv"] <= 0.05
          and 0.4 <= out["leading"]["embed"]["cv"] <= 0.55)
    return {"steps": steps, "seed": seed, "theory_leading_cv": math.sqrt(0.078125) / 0.625, "shares": out,
            "claim_met": ok}


def v5(samples: int, seed: int) -> dict:
    rng = random.Random(seed)
    v1_space, shifted = ViTSpace(), ViTSpace(identity_shift=True)
    archs = [v1_space.sample(rng, p_identity=0.5) for _ in range(samples)]
    without = count_paths(v1_space, archs)
    with_shift = count_paths(shifted, archs)
    expected = {d: all_paths(6, d) for d in range(7)}
    return {"samples": samples, "p_identity": 0.5, "paths_without_shift": without, "paths_with_shift": with_shift,
            "c_6_d": expected,
            "claim_met": all(v == 1 for v in with_shift.values()) and without == expected}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=10_000)
    args = p.parse_args()
    t0 = time.perf_counter()
    res = {"V1": v1(args.seeds), "V2": v2(args.steps, args.seeds[0]), "V5": v5(20_000, args.seeds[0])}
    res["wall_s"] = time.perf_counter() - t0
    res["load_avg"] = os.getloadavg()
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
