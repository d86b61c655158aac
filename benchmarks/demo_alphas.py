"""Why the default job's alphas move as little as they do (issue 23 item 5): the demo's search alone
(configs/demo.yaml without retraining), one variant at a time, printing per epoch the mean edge entropy of
softmax(alpha), the alpha gradient's signal-to-noise ratio and RMS, the training loss and the search CPU-s.

The alpha gradient of every step is read after Adam's step (``alpha.grad`` still holds it); per epoch and per
alpha, SNR = |mean over the epoch's steps| / standard deviation, reported as the median over the 30 alphas.
Adam moves an alpha by about ``arch_lr x SNR`` per step, so with the alpha-travel rule (``arch_lr x steps``
fixed at DARTS' 5.87) the expected drift is ~5.87 x the mean SNR, whatever the search's length.

Variants (overrides of configs/demo.yaml; each keeps the reference travel 5.87 over its alpha steps):

* ``6ep``: the previous default, 6 epochs x 79 steps, arch_lr 0.0124;
* ``18ep``: 18 epochs (1,422 steps), arch_lr 4.13e-3;
* ``18ep-beta2``: the same with Adam's beta2 = 0.986 (a second-moment horizon of 5 % of the search, as
  0.999's 1,000 steps are of the reference's 19,550): tests whether a stale second moment damps the steps;
* ``fresh``: one 18k-image search stream (subset 20k, train_portion 0.9; 5 epochs x 282 = 1,410 steps),
  arch_lr 4.16e-3: tests whether memorising the 5k search-train images starves the alpha gradient;
* ``18ep-warmup5``: 5 epochs of weight-only warm-up (PC-DARTS' 30 %), then 13 x 79 = 1,027 alpha steps,
  arch_lr 5.71e-3.

Results are appended as JSON lines to ``--out`` (a variant already there is skipped: resumable).

    nice -n 10 python benchmarks/demo_alphas.py --variants 6ep 18ep 18ep-beta2 fresh 18ep-warmup5 --threads 1
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from nasforge import api, config as cfgmod  # noqa: E402
from nasforge.strategies import darts  # noqa: E402
from nasforge.utils import atomic_write_bytes  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "6ep": {"budget": {"epochs": 6}, "hparams": {"arch_lr": 0.0124}},
    "18ep": {"budget": {"epochs": 18}, "hparams": {"arch_lr": 0.00413}},
    "18ep-beta2": {"budget": {"epochs": 18}, "hparams": {"arch_lr": 0.00413, "arch_betas": [0.5, 0.986]}},
    "fresh": {"budget": {"epochs": 5}, "subset": 20000, "train_portion": 0.9, "hparams": {"arch_lr": 0.00416}},
    "18ep-warmup5": {"budget": {"epochs": 18}, "hparams": {"arch_lr": 0.00571, "arch_warmup": 5}},
}


def run_variant(name: str, threads: int, run_root: Path) -> dict[str, Any]:
    """The demo's search under VARIANTS[name]; returns the per-epoch record (see the module docstring)."""
    cfg = cfgmod.deep_merge(cfgmod.load_yaml(api.DEMO_CONFIG), VARIANTS[name])
    for k in ("retrain", "retrain_space_options", "retrain_subset"):
        cfg.pop(k, None)
    cfg["threads"] = threads
    grads: list[torch.Tensor] = []
    epochs_of: list[int] = []
    original = darts.SingleDARTS.arch_step
    current = {"epoch": 0}
    original_start = darts.SingleDARTS.on_epoch_start

    def on_epoch_start(self, supernet, epoch, epochs, ctx):
        current["epoch"] = epoch
        original_start(self, supernet, epoch, epochs, ctx)

    def arch_step(self, optimizer, params):
        original(self, optimizer, params)
        grads.append(torch.cat([p.grad.detach().flatten().float().clone() for p in params]))
        epochs_of.append(current["epoch"])

    darts.SingleDARTS.arch_step, darts.SingleDARTS.on_epoch_start = arch_step, on_epoch_start
    try:
        cpu0 = time.process_time()
        res = api.search(cfg, run_root=run_root / name)
        cpu = time.process_time() - cpu0
    finally:
        darts.SingleDARTS.arch_step, darts.SingleDARTS.on_epoch_start = original, original_start
    hist = res["search"]["history"]
    g_all, e_all = torch.stack(grads), torch.tensor(epochs_of)
    snr, rms = [], []
    for e in range(len(hist)):
        g = g_all[e_all == e]
        if len(g) < 2:  # a warm-up epoch: the alphas did not step
            snr.append(None)
            rms.append(None)
            continue
        snr.append(round(float((g.mean(0).abs() / g.std(0).clamp_min(1e-12)).median()), 3))
        rms.append(float("%.3g" % float(g.pow(2).mean().sqrt())))
    h = [round(x["mean_entropy"], 4) for x in hist]
    log_k = math.log(len(hist[-1]["op_names"]))
    return {"variant": name, "overrides": VARIANTS[name], "threads": threads, "search_cpu_s": round(cpu, 1),
            "alpha_steps": len(g_all), "mean_entropy_per_epoch": h, "drop_pct": round(100 * (log_k - h[-1]) / log_k, 2),
            "snr_median_per_epoch": snr, "grad_rms_per_epoch": rms,
            "max_edge_probability_final": [round(max(r), 3) for g in hist[-1]["alpha_softmax"].values() for r in g],
            "train_loss_per_epoch": [round(x["train_loss"], 3) for x in hist], "arch": res["arch"],
            "precision": res["precision"], "seed": cfg["seed"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("docs/results/demo_alphas.json"))
    ap.add_argument("--runs", type=Path, default=Path("runs/demo_alphas"))
    a = ap.parse_args(argv)
    done = json.loads(a.out.read_text()) if a.out.exists() else []
    for name in a.variants:
        if any(r["variant"] == name for r in done):
            continue
        rec = run_variant(name, a.threads, a.runs)
        print(json.dumps(rec), flush=True)
        done.append(rec)
        atomic_write_bytes(a.out, (json.dumps(done, indent=1) + "\n").encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
