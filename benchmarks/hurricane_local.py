"""HURRICANE H1 (LUT additivity) and H2 (hardware specificity) on the local "devices"; prints one JSON object.

Space: `mobile` at its defaults (Fashion-MNIST 1x28x28; stem 3x3/2 to 16; 8 searchable layers of widths
16,16,24,24,40,40,80,80, strides 1,1,2,1,2,1,1,1; head 128; the 32 HURRICANE candidates + skip), spec 2.6.
Devices: local-cpu-1t (torch fp32, 1 thread, batch 1), local-cpu-2t-b32 (torch fp32, 2 threads, batch 32,
channels-last), local-ort-1t (onnxruntime, 1 thread, batch 1).

* H1: per device, a LUT is timed (median of ``--repeats`` replicates of ``--number`` calls after
  ``--warmup``); a linear calibration is fitted on ``--calib`` random networks measured end to end; then
  ``--nets`` *other* random networks are measured end to end (median of 50 single calls after 10 warm-ups)
  and compared with the raw and calibrated LUT sums: Spearman rho (target >= 0.9), share within +/-10 %
  after calibration (target >= 90 %), median absolute % error (spec target <= 15 %). Networks are
  measured interleaved across devices (net 1 on every device, then net 2, ...) so that a load change hits
  all devices alike.
* H2: per-layer Jaccard of the candidate sets (hardware/selection.py: at most 4 non-dominated ops per layer)
  between device pairs, and the latency ratios SE / no-SE and h-swish / ReLU over all MBConv candidates and
  layers, per device. Noise floor: ``--builds`` fresh LUTs of every device (separate caches, timed
  interleaved: build 1 of every device, then build 2, ...); the same-device Jaccard between builds is the
  test-retest floor, and a layer counts as differing across two devices only when the mean cross-device
  Jaccard (over all build pairs) is below the lower of the two devices' same-device Jaccards in that layer.
  Also counted: kept ops dominated by another kept op (must be 0).

The machine is shared (2 cores, other jobs running): the load average is recorded at start and end; every
timing is a median, and the numbers are noisy.

Usage: python benchmarks/hurricane_local.py [--nets 30] [--calib 20] > docs/results/hurricane_local.json
       python benchmarks/hurricane_local.py --parts h2 --builds 3 > docs/results/hurricane_local_h2.json
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEVICES = ["local-cpu-1t", "local-cpu-2t-b32", "local-ort-1t"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", type=int, default=30)
    p.add_argument("--calib", type=int, default=20)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--number", type=int, default=10)
    p.add_argument("--cache-dir", default=None, help="LUT caches (default: a fresh temporary folder)")
    p.add_argument("--devices", default=",".join(DEVICES))
    p.add_argument("--parts", default="h1,h2", help="h1, h2 or both")
    p.add_argument("--builds", type=int, default=2, help="fresh LUT builds per device (H2 noise floor)")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    import torch

    from nasforge.hardware.lut import LatencyCache, build_local_lut, error_summary, fit_calibration, measure_network
    from nasforge.hardware.selection import dominated_pairs, jaccard, layer_flops, select_candidates
    from nasforge.ops.mobile import MOBILE_OPS
    from nasforge.spaces.mobile import MobileSpace

    torch.set_num_threads(1)
    devices = args.devices.split(",")
    t0, load0 = time.time(), os.getloadavg()
    cache_dir = Path(args.cache_dir or tempfile.mkdtemp(prefix="hurricane-lut-"))
    space = MobileSpace()
    kw = {"warmup": args.warmup, "repeats": args.repeats, "number": args.number}
    luts, lut_s = {}, {}
    builds: dict[str, list] = {d: [] for d in devices}
    for j in range(max(1, args.builds) if "h2" in parts else 1):
        for d in devices:
            t = time.time()
            builds[d].append(build_local_lut(space, d, LatencyCache(cache_dir / f"build{j}" / f"{d}.json", d), **kw))
            lut_s.setdefault(d, time.time() - t)
    luts = {d: builds[d][0] for d in devices}
    rng = random.Random(0)
    calib = [space.sample(rng) for _ in range(args.calib)]
    tests = [space.sample(rng) for _ in range(args.nets)]
    e2e = {"warmup": 10, "repeats": 50, "number": 1}
    measured: dict[str, dict[str, list[float]]] = {d: {"calib": [], "test": []} for d in devices}
    torch.manual_seed(0)
    for split, archs in (("calib", calib), ("test", tests)) if "h1" in parts else ():
        for arch in archs:
            net = space.build(arch)
            for d in devices:
                measured[d][split].append(measure_network(net, space, d, **e2e))
    h1 = {}
    for d in devices if "h1" in parts else ():
        lut = luts[d]
        raw_c = [lut.predict(a) for a in calib]
        cal = fit_calibration(raw_c, measured[d]["calib"])
        raw = [lut.predict(a) for a in tests]
        calp = [cal["a"] * r + cal["b"] for r in raw]
        s_raw = error_summary(raw, measured[d]["test"], "raw_")
        s_cal = error_summary(calp, measured[d]["test"], "calibrated_")
        h1[d] = {"calibration": cal, **s_raw, **s_cal, "lut_build_s": lut_s[d],
                 "measured_ms": measured[d]["test"], "raw_ms": raw, "calibrated_ms": calp,
                 "pass_spearman_0.9": s_raw["raw_spearman"] >= 0.9,
                 "pass_within10_90pct": s_cal["calibrated_within_10pct"] >= 0.9,
                 "pass_median_err_15pct": s_cal["calibrated_median_abs_pct_error"] <= 15}
    flops = layer_flops(space)
    sels = {d: [select_candidates(space, lut, 4, flops)["candidates"] for lut in builds[d]] for d in devices}
    top4 = {d: sels[d][0] for d in devices}
    dominated = {d: [len(dominated_pairs(c, lut, flops)) for c, lut in zip(sels[d], builds[d])] for d in devices}
    n_layers = len(space.layer_choices())

    def same(d):  # per layer, the lowest Jaccard between two builds of the same device (1.0 with one build)
        pj = [jaccard(x, y) for i, x in enumerate(sels[d]) for y in sels[d][i + 1:]]
        return [min(p[l] for p in pj) for l in range(n_layers)] if pj else [1.0] * n_layers

    floor = {d: same(d) for d in devices}
    pairs = [(a, b) for i, a in enumerate(devices) for b in devices[i + 1:]]
    jac = []
    for a, b in pairs:
        cross = [jaccard(x, y) for x in sels[a] for y in sels[b]]
        mean_cross = [float(np.mean([c[l] for c in cross])) for l in range(n_layers)]
        above = [mean_cross[l] < min(floor[a][l], floor[b][l]) for l in range(n_layers)]
        jac.append({"devices": [a, b], "jaccard_per_layer": jaccard(top4[a], top4[b]),
                    "layers_differing": sum(x < 1 for x in jaccard(top4[a], top4[b])),
                    "mean_cross_jaccard_per_layer": mean_cross,
                    "layers_differing_above_noise": sum(above)})
    ratios = {}
    for d in devices:
        se, hs = [], []
        for layer in luts[d].entries:
            for name, prm in MOBILE_OPS.items():
                if prm["family"] != "mbconv" or name not in layer:
                    continue
                hs_tag = "_hs" if prm["act"] == "hswish" else ""
                base = f"mb_k{prm['kernel']}_e{prm['expand']}"
                if not prm["se"] and f"{base}_se{hs_tag}" in layer:
                    se.append(layer[f"{base}_se{hs_tag}"] / layer[name])
                if prm["act"] == "relu" and name + "_hs" in layer:
                    hs.append(layer[name + "_hs"] / layer[name])
        ratios[d] = {"se_over_no_se_median": float(np.median(se)), "hswish_over_relu_median": float(np.median(hs)),
                     "n_pairs": [len(se), len(hs)]}
    out = {"benchmark": "hurricane_local", "space": space.config, "devices": devices, "nets": args.nets,
           "calib_nets": args.calib, "lut_timing": kw, "e2e_timing": e2e, "h1": h1,
           "h2": {"top4": top4, "jaccard": jac, "cost_ratios": ratios, "builds": args.builds,
                  "same_device_jaccard_per_layer": floor,
                  "same_device_layers_differing": {d: sum(x < 1 for x in floor[d]) for d in devices},
                  "dominated_kept_ops": dominated, "selection_rule": "hardware/selection.py (non-dominated)"},
           "parts": sorted(parts),
           "luts": {d: luts[d].as_dict() for d in devices},
           "wall_s": time.time() - t0, "load_avg_at_start": load0, "load_avg_at_end": os.getloadavg(),
           "torch_threads_note": "each device sets its own thread count while it is timed",
           "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=Path(__file__).parent).stdout.strip()}
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
