"""PNAS against random search with real training on Fashion-MNIST (spec 1.8, tier B).

Protocol (spec 1.8; every number below is a flag):

- space `pnas` with the reduced 4-op set (identity, sep 3x3, sep 5x5, max 3x3), B = 3 blocks;
  proxy network: stem to F = 8 channels, N = 1 cell per stage, reductions 28 -> 14 -> 7;
- every model: 1 epoch on a fixed 5k/2k split of the Fashion-MNIST training set (split seed 0 for
  every run), SGD lr 0.05 with cosine schedule, batch 128; the training seed is the search seed for
  every model of that search, so PNAS and random of the same seed see identical proxy noise;
- PNAS: K = 8, all 36 one-block cells, then 8 two-block and 8 three-block cells = 52 models
  (`keep_searching` off); random: 52 uniform canonical 3-block cells.

Both searches run through `nasforge.api.search`, so every run is a normal run directory with a trial
journal, and re-running this script resumes unfinished runs and re-trains nothing that finished.

Reported per seed and as medians over seeds:

- P-B1: top-5 mean validation accuracy of the models each search trained; `n_random`, the number of
  uniform random 3-block cells whose top-5 mean first reaches PNAS's top-5 mean, estimated by drawing
  orderings (2,000 permutations) of the same seed's random models (the training seed shifts every
  model's accuracy, so seeds are not pooled); draws that exhaust the pool count as "not reached" and
  are reported as a fraction (then n_random > the pool size, i.e. > 1x PNAS's models).
- P-B2: Spearman correlation between predictions and realised accuracies of the cells trained in each
  new round (b = 2 and b = 3), for the MLP ensemble (the one that picked them), a single MLP, the LSTM
  ensemble and a single LSTM, all fitted on exactly the data PNAS had before that round. Because the
  MLP ensemble chose those cells (a selection effect), the same predictors are also scored on the
  random search's 3-block cells (an unbiased extrapolation set: fit on PNAS's 1- and 2-block data).
- proxy reliability: Spearman correlation between two training seeds' accuracies of the one-block
  cells (every PNAS seed trains all of them);
- P-B3: stability: 5 refits with different seeds of the ensemble and of a single model, predicting
  the random 3-block cells; mean over cells of the variance of each cell's predicted rank.

    python benchmarks/pnas_tier_b.py --seeds 0 1 2 --jobs 2 > docs/results/pnas_tier_b.json
    python benchmarks/pnas_tier_b.py --seeds 0 --models 12 --K 2 --train 500 --val 200   # quick look
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def search_config(args: argparse.Namespace, method: str, seed: int) -> dict[str, Any]:
    hp = {"K": args.K, "keep_searching": False, "surrogate": "mlp"} if method == "pnas" else {}
    return {
        "space": "pnas", "space_options": {"C": args.F, "N": 1, "blocks": args.blocks, "ops": "reduced"},
        "method": method, "hparams": hp, "dataset": "fashion-mnist", "data_root": args.data_root,
        "subset": args.train + args.val, "train_portion": args.train / (args.train + args.val), "split_seed": 0,
        "estimator": "scratch",
        "estimator_options": {"train": {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch,
                                        "optimizer": "sgd", "seed": seed}},
        "budget": {"trials": args.models}, "seed": seed, "threads": 1, "executor_options": {"threads": 1},
    }


def run_search(args: argparse.Namespace, method: str, seed: int) -> dict[str, Any]:
    """One search in its own run directory (resumed if it exists); returns its trials and rounds."""
    from nasforge import api

    name = f"{method}-seed{seed}"
    run_dir = Path(args.runs) / name
    t0 = time.perf_counter()
    if (run_dir / "result.json").exists():
        result = json.loads((run_dir / "result.json").read_text())
    elif run_dir.exists():
        result = api.search(resume=run_dir)
    else:
        result = api.search(search_config(args, method, seed), run_root=args.runs, run_name=name)
    search = result["search"]
    trials, seen = [], set()
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():  # one "trial" event per trained model
        rec = json.loads(line)
        key = json.dumps(rec.get("arch"))
        if rec.get("event") == "trial" and key not in seen:  # a resumed run may log a trial twice
            seen.add(key)
            trials.append({"arch": rec["arch"], "score": rec.get("score")})
    return {"method": method, "seed": seed, "trials": trials, "rounds": search["metrics"].get("pnas_rounds"),
            "wall_s": (result.get("cost") or {}).get("wall_s", round(time.perf_counter() - t0, 1)),
            "cost": result.get("cost")}


def top_mean(scores: list[float], k: int = 5) -> float:
    return float(np.mean(sorted(scores, reverse=True)[:k]))


def n_random_to_reach(pool: list[float], target: float, k: int, draws: int, seed: int) -> dict[str, Any]:
    """Models a random search needs until its top-k mean reaches `target`, by permutations of `pool`."""
    rng = np.random.default_rng(seed)
    arr = np.asarray(pool, dtype=float)
    needed: list[int] = []
    for _ in range(draws):
        order = arr[rng.permutation(len(arr))]
        best: list[float] = []
        hit = None
        for n, s in enumerate(order, start=1):
            best = sorted(best + [float(s)], reverse=True)[:k]
            if n >= k and np.mean(best) >= target:
                hit = n
                break
        needed.append(hit if hit is not None else -1)
    reached = [n for n in needed if n > 0]
    return {"median": float(np.median(reached)) if reached else None,
            "mean": float(np.mean(reached)) if reached else None,
            "fraction_not_reached": 1.0 - len(reached) / draws, "pool": len(pool)}


def surrogate_study(pnas: dict[str, Any], random_trials: list[dict[str, Any]], args: argparse.Namespace,
                    seed: int) -> dict[str, Any]:
    """P-B2 and P-B3 for one seed, on the data PNAS collected."""
    from scipy.stats import spearmanr

    from nasforge.spaces.pnas import PNASSpace
    from nasforge.surrogates.ensemble import Ensemble
    from nasforge.surrogates.tokenizers import PNASTokenizer

    space = PNASSpace(ops="reduced", blocks=args.blocks)
    tok = PNASTokenizer(space.op_names, space.max_blocks)
    variants = {"mlp_ensemble": ("mlp", 5, 0.8), "mlp_single": ("mlp", 1, 1.0),
                "lstm_ensemble": ("lstm", 5, 0.8), "lstm_single": ("lstm", 1, 1.0)}
    trials = [t for t in pnas["trials"] if t["score"] is not None]
    sizes = [len(t["arch"]) for t in trials]
    rand = [t for t in random_trials if t["score"] is not None]
    out: dict[str, Any] = {"rounds": {}, "random_cells": {}, "stability": {}}

    def fit(kind: str, members: int, subsample: float, data: list[dict[str, Any]], s: int) -> Ensemble:
        return Ensemble(tok, kind=kind, members=members, subsample=subsample, seed=s).fit(
            [t["arch"] for t in data], [t["score"] for t in data])

    for b in range(2, args.blocks + 1):
        before = [t for t, n in zip(trials, sizes) if n < b]
        new = [t for t, n in zip(trials, sizes) if n == b]
        if len(new) < 3:
            continue
        out["rounds"][f"b{b}"] = {}
        for name, (kind, m, sub) in variants.items():
            pred = fit(kind, m, sub, before, seed).predict([t["arch"] for t in new])
            rho = spearmanr(pred, [t["score"] for t in new])[0]
            out["rounds"][f"b{b}"][name] = None if rho != rho else round(float(rho), 4)
    # extrapolation to the unbiased random 3-block cells: fit on PNAS's cells smaller than B
    before = [t for t, n in zip(trials, sizes) if n < args.blocks]
    truth = [t["score"] for t in rand]
    for name, (kind, m, sub) in variants.items():
        preds = [fit(kind, m, sub, before, seed * 100 + r).predict([t["arch"] for t in rand])
                 for r in range(args.refits)]
        rhos = [spearmanr(p, truth)[0] for p in preds]
        ranks = np.stack([np.argsort(np.argsort(-p)) for p in preds])  # (refits, cells)
        out["random_cells"][name] = {"spearman_mean": round(float(np.nanmean(rhos)), 4),
                                     "spearman_per_refit": [round(float(r), 4) for r in rhos]}
        out["stability"][name] = {"mean_rank_variance": round(float(ranks.var(axis=0).mean()), 3)}
    return out


def summarise(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    from scipy.stats import spearmanr

    by = {(r["method"], r["seed"]): r for r in runs}
    per_seed = []
    for seed in args.seeds:
        p, q = by[("pnas", seed)], by[("random", seed)]
        ps = [t["score"] for t in p["trials"] if t["score"] is not None]
        qs = [t["score"] for t in q["trials"] if t["score"] is not None]
        top_p, top_r = top_mean(ps), top_mean(qs)
        rec = {"seed": seed, "models": {"pnas": len(ps), "random": len(qs)},
               "top5_mean": {"pnas": round(top_p, 4), "random": round(top_r, 4)},
               "best": {"pnas": max(ps), "random": max(qs)},
               "pnas_best_arch": max(p["trials"], key=lambda t: t["score"] or -1)["arch"],
               "pnas_rounds": p["rounds"],
               "n_random": n_random_to_reach(qs, top_p, 5, args.draws, seed),
               "wall_s": {"pnas": p["wall_s"], "random": q["wall_s"]},
               "cpu_s": {"pnas": (p["cost"] or {}).get("cpu_s"), "random": (q["cost"] or {}).get("cpu_s")}}
        rec["n_random"]["ratio_to_pnas_models"] = (round(rec["n_random"]["median"] / len(ps), 3)
                                                   if rec["n_random"]["median"] else None)
        rec["surrogates"] = surrogate_study(p, q["trials"], args, seed)
        per_seed.append(rec)

    def med(get: Any) -> float | None:
        vals = [v for v in (get(r) for r in per_seed) if v is not None]
        return round(statistics.median(vals), 4) if vals else None

    # proxy reliability: every PNAS seed trains all one-block cells, each seed with its own training seed
    first = {s: {json.dumps(t["arch"]): t["score"] for t in by[("pnas", s)]["trials"] if len(t["arch"]) == 1}
             for s in args.seeds}
    proxy = []
    for i, a in enumerate(args.seeds):
        for b in args.seeds[i + 1:]:
            common = sorted(set(first[a]) & set(first[b]))
            if len(common) >= 3:
                proxy.append(float(spearmanr([first[a][k] for k in common], [first[b][k] for k in common])[0]))

    names = ("mlp_ensemble", "mlp_single", "lstm_ensemble", "lstm_single")
    summary: dict[str, Any] = {
        "proxy_spearman_between_training_seeds": [round(r, 4) for r in proxy],
        "top5_mean_median": {"pnas": med(lambda r: r["top5_mean"]["pnas"]),
                             "random": med(lambda r: r["top5_mean"]["random"])},
        "pnas_top5_ge_random_seeds": sum(r["top5_mean"]["pnas"] >= r["top5_mean"]["random"] for r in per_seed),
        "n_random_ratio_median": med(lambda r: r["n_random"]["ratio_to_pnas_models"]),
        "n_random_not_reached_fraction_median": med(lambda r: r["n_random"]["fraction_not_reached"]),
        "round_spearman_median": {f"b{b}": {n: med(lambda r, b=b, n=n: r["surrogates"]["rounds"].get(f"b{b}", {}).get(n))
                                            for n in names} for b in range(2, args.blocks + 1)},
        "random_cells_spearman_median": {n: med(lambda r, n=n: r["surrogates"]["random_cells"][n]["spearman_mean"])
                                         for n in names},
        "rank_variance_median": {n: med(lambda r, n=n: r["surrogates"]["stability"][n]["mean_rank_variance"])
                                 for n in names},
    }
    return {"summary": summary, "per_seed": per_seed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", type=int, default=52, help="trained models per search (36 + 2K for B=3)")
    ap.add_argument("--K", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--F", type=int, default=8)
    ap.add_argument("--train", type=int, default=5000)
    ap.add_argument("--val", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--refits", type=int, default=5)
    ap.add_argument("--draws", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=2, help="searches run in parallel (one thread each)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--runs", default=str(REPO / "runs" / "bench-pnas-tier-b"))
    args = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))

    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    jobs = [(m, s) for s in args.seeds for m in ("pnas", "random")]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_search, args, m, s) for m, s in jobs]
        runs = []
        for f, (m, s) in zip(futures, jobs):
            runs.append(f.result())
            print(f"[{m} seed {s}] {runs[-1]['wall_s']} s", file=sys.stderr)
    out = {"benchmark": "pnas_tier_b", "torch": torch.__version__,
           "config": {k: v for k, v in vars(args).items() if k not in ("runs", "data_root")},
           **summarise(runs, args), "wall_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
