"""Zero-cost proxies on NAS-Bench-201: rank correlation with the 200-epoch test accuracy (issue 22, item 1).

Protocol (every number is a flag):

- a fixed sample of `--n` (1,000) NB201 cells: indices drawn without replacement from 0..15624 by
  numpy's default_rng(`--sample-seed` 0), sorted;
- each cell built as the network the table trained (C = 16, N = 5; 10 / 100 / 120 classes; 32x32 input for
  CIFAR-10/100, 16x16 for ImageNet16-120), weights initialised by the space's own init seeded by the
  proxy seed (`--seeds` 0 1 2);
- data: the CIFAR and ImageNet16-120 images the table was measured on are not on this machine. The
  stand-in for all three is a batch of `--batch-size` (16) Fashion-MNIST training images picked by the
  seed, resized (bilinear) to 32x32 or 16x16, the grey channel repeated to 3, normalised by
  Fashion-MNIST's mean/std; labels are Fashion-MNIST's 10 classes (the 100- and 120-way heads see labels
  0..9 only). Data-free proxies (synflow, zen, params, flops, kernel_area) are unaffected;
- proxies in two groups, so the cheap, strong ones finish first under scarce CPU: `core` = synflow,
  snip, jacob_cov, nwot, params, flops, kernel_area; `extra` = grasp, zen;
- ensemble = mean normalised rank of synflow, nwot, jacob_cov (nasforge.proxies.DEFAULT_MEMBERS, chosen
  from the literature before this benchmark ran); `ensemble_all` = every non-baseline proxy that ran at
  every seed of the data set (listed as its `members`);
- Spearman rank correlation (ties share ranks; -inf scores rank lowest) with the 200-epoch test accuracy of
  the same data set, per seed, then mean and std over seeds;
- training-free search (NASWOT protocol, N = `--search-n` 100): `--search-runs` (100) runs, each draws N
  cells from the scored pool (run r: default_rng(1000 + r), without replacement), keeps the best by the
  proxy (seed r mod #seeds) and reports the mean +/- std of the kept cells' CIFAR-10 test accuracy.
  Caveat: the pool is the 1,000-cell sample, not all 15,625 cells, so runs share cells;
- cost: CPU seconds (this process, 1 thread) per architecture per proxy, measured in the runs.

Resumable: each (dataset, seed, group) chunk is cached under `--cache` (saved every 25 cells, atomically)
and reused; the summary JSON is rewritten after every chunk, so an interrupted run leaves a valid partial
result.

    nice -n 10 python benchmarks/proxies_nb201.py --tables ../shared/data/benchmarks \\
        --out docs/results/proxies_nb201.json
    python benchmarks/proxies_nb201.py --report-only --out docs/results/proxies_nb201.json   # from the cache
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

GROUPS = {"core": ["synflow", "snip", "jacob_cov", "nwot", "params", "flops", "kernel_area"],
          "extra": ["grasp", "zen"]}
BASELINES = ("params", "flops", "kernel_area")
NET = {"cifar10": (10, 32), "cifar100": (100, 32), "imagenet16-120": (120, 16)}
# Spearman rho over all 15,625 NB201 cells, as published (real CIFAR / ImageNet16-120 images, batch 64).
PUBLISHED = {
    "source": "Abdelfattah et al., ICLR 2021 (Spearman over all NB201 cells, real images, batch 64); no "
              "verified published figure was at hand for nwot, zen, params, flops on this protocol",
    "cifar10": {"synflow": 0.74, "snip": 0.58, "grasp": 0.48, "jacob_cov": 0.73},
    "cifar100": {"synflow": 0.76, "snip": 0.63, "grasp": 0.54, "jacob_cov": 0.71},
    "imagenet16-120": {"synflow": 0.75, "snip": 0.58, "grasp": 0.56, "jacob_cov": 0.71},
}


def atomic_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=_finite))
    tmp.replace(path)


def _finite(o: Any) -> Any:
    raise TypeError(f"not JSON: {type(o)}")


def _enc(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)  # -inf (degenerate cell) stored as null


def sample_indices(n: int, seed: int) -> list[int]:
    """The fixed sample, in the (uniformly random) order it is scored: any prefix is a uniform sample."""
    return [int(i) for i in np.random.default_rng(seed).choice(15625, n, replace=False)]


def run_chunk(args, table, fmnist, dataset: str, seed: int, group: str, indices: list[int]) -> dict[str, Any]:
    from nasforge.proxies import Protocol, make_batch, score_arch
    from nasforge.registry import SPACES

    path = Path(args.cache) / f"{dataset}_s{seed}_{group}.json"
    classes, res = NET[dataset]
    protocol = Protocol(proxies=GROUPS[group], batch_size=args.batch_size, seed=seed, data="dataset",
                        dataset="fashion-mnist (stand-in)", space_options={"C": 16, "N": 5})
    old = json.loads(path.read_text()) if path.exists() else None
    if old is not None and (sorted(old["indices"]) != sorted(indices) or old["protocol"] != protocol.as_dict()):
        old = None
    if old is not None and old["indices"] == indices:
        chunk = old
    else:
        chunk = {"dataset": dataset, "seed": seed, "group": group, "protocol": protocol.as_dict(),
                 "network": {"C": 16, "N": 5, "num_classes": classes, "resolution": res}, "indices": indices,
                 "scores": {p: [] for p in protocol.proxies}, "cpu_s": {p: [] for p in protocol.proxies}}
        if old is not None:  # scored in another order (an earlier version scored the sample sorted): reuse them
            n = len(old["scores"][protocol.proxies[0]])
            chunk["reuse"] = {str(i): {p: (old["scores"][p][k], old["cpu_s"][p][k]) for p in protocol.proxies}
                              for k, i in enumerate(old["indices"][:n])}
    reuse = chunk.get("reuse", {})
    done = len(chunk["scores"][protocol.proxies[0]])
    if done == len(indices):
        return chunk
    space = SPACES.get("nb201")(in_channels=3, num_classes=classes, resolution=res)
    batch = make_batch(space, protocol, fmnist)
    t0 = time.time()
    for k in range(done, len(indices)):
        if str(indices[k]) in reuse:  # the same protocol and cell: the same scores (deterministic)
            for p, (v, c) in reuse.pop(str(indices[k])).items():
                chunk["scores"][p].append(v)
                chunk["cpu_s"][p].append(c)
        else:
            r = score_arch(space, table.arch_of(indices[k]), protocol, batch)
            for p in protocol.proxies:
                chunk["scores"][p].append(_enc(r["scores"][p]))
                chunk["cpu_s"][p].append(round(r["cpu_s"][p], 5))
        if (k + 1) % 25 == 0 or k + 1 == len(indices):
            atomic_json(path, chunk)
            print(f"{dataset} s{seed} {group}: {k + 1}/{len(indices)} ({time.time() - t0:.0f} s)", file=sys.stderr,
                  flush=True)
    return chunk


def spearman(scores: list[float | None], acc: np.ndarray) -> float:
    from nasforge.proxies import normalised_ranks

    a = normalised_ranks(list(acc))
    s = normalised_ranks(scores)
    return float(np.corrcoef(s, a)[0, 1])


def summarise(args, table, indices: list[int], chunks: dict[tuple[str, int, str], dict]) -> dict[str, Any]:
    from nasforge.proxies import DEFAULT_MEMBERS, rank_aggregate

    out: dict[str, Any] = {
        "benchmark": "proxies_nb201",
        "command": "nice -n 10 python benchmarks/proxies_nb201.py --tables ../shared/data/benchmarks",
        "this_summary_by": " ".join(["python", "benchmarks/proxies_nb201.py", *sys.argv[1:]]),
        "n_cells": len(indices), "sample_seed": args.sample_seed, "seeds": args.seeds,
        "batch_size": args.batch_size, "stand_in": "Fashion-MNIST train images resized to 32x32 (16x16 for "
        "ImageNet16-120), grey channel repeated to 3, normalised; labels 0..9",
        "network": "NB201 C=16 N=5 (as the table trained), space default init seeded by the proxy seed",
        "ensemble_members": list(DEFAULT_MEMBERS), "published": PUBLISHED, "datasets": {}, "chunks_done": [],
        "chunks_missing": []}
    for key in sorted(chunks):
        c = chunks[key]
        n = len(c["scores"][c["protocol"]["proxies"][0]])
        (out["chunks_done"] if n == len(indices) else out["chunks_missing"]).append(
            f"{key[0]} seed {key[1]} {key[2]} ({n}/{len(indices)})")
    for dataset in args.datasets:
        acc_of = {i: table.query(i, dataset, "test_200") for i in indices}
        acc = np.array([acc_of[i] for i in indices])
        per_seed: dict[str, dict[int, float]] = {}
        n_cells: dict[str, dict[int, int]] = {}
        cost: dict[str, list[float]] = {}
        full_scores: dict[int, dict[str, list]] = {}
        # ensemble_all: the non-baseline proxies scored at every seed of this data set that has scores, so its
        # members are the same at every seed (grasp/zen may have run at one seed only)
        ran = [{p for g in args.groups for p, v in (chunks.get((dataset, s, g)) or {}).get("scores", {}).items() if v}
               for s in args.seeds]
        ran = [r for r in ran if r]
        every_seed = set.intersection(*ran) if ran else set()
        for seed in args.seeds:
            by_index: dict[str, dict[int, float | None]] = {}  # proxy -> cell index -> score (cells done)
            for group in args.groups:
                c = chunks.get((dataset, seed, group))
                if c is None:
                    continue
                for p, v in c["scores"].items():
                    if v:
                        by_index[p] = dict(zip(c["indices"], v))
                        cost.setdefault(p, []).extend(c["cpu_s"][p])
            if not by_index:
                continue
            groups_of = [set(d) for d in by_index.values()]
            for name, members in (("ensemble", list(DEFAULT_MEMBERS)),
                                  ("ensemble_all", [p for p in by_index if p not in BASELINES and p in every_seed])):
                if name == "ensemble_all" and len(members) <= len(DEFAULT_MEMBERS):
                    continue
                if not all(m in by_index for m in members):
                    continue
                common = [i for i in indices if all(i in by_index[m] for m in members)]
                if len(common) < 10:
                    continue
                agg = rank_aggregate({m: [by_index[m][i] for i in common] for m in members}, members)
                by_index[name] = dict(zip(common, (float(a) for a in agg)))
            full_scores[seed] = by_index
            for p, d in by_index.items():
                cells = [i for i in indices if i in d]
                per_seed.setdefault(p, {})[seed] = spearman([d[i] for i in cells], np.array([acc_of[i] for i in cells]))
                n_cells.setdefault(p, {})[seed] = len(cells)
        rows = {}
        for p, by_seed in per_seed.items():
            vals = list(by_seed.values())
            rows[p] = {"spearman_mean": round(float(np.mean(vals)), 4),
                       "spearman_std": round(float(np.std(vals)), 4) if len(vals) > 1 else None,
                       "per_seed": {str(s): round(v, 4) for s, v in by_seed.items()}, "n_seeds": len(vals),
                       "n_cells": {str(s): n for s, n in n_cells[p].items()}}
            if p in cost:
                rows[p]["cpu_s_per_arch"] = round(float(np.mean(cost[p])), 4)
        for p in ("ensemble", "ensemble_all"):
            if p in rows:
                members = DEFAULT_MEMBERS if p == "ensemble" else [m for m in rows if m not in BASELINES and
                                                                   not m.startswith("ensemble") and m in every_seed]
                rows[p]["members"] = list(members)
                rows[p]["cpu_s_per_arch"] = round(sum(rows[m].get("cpu_s_per_arch", 0) for m in members), 4)
        out["datasets"][dataset] = {"spearman": rows}
        if dataset == "cifar10" and full_scores:
            out["datasets"][dataset]["search"] = training_free_search(args, indices, acc_of, full_scores)
    return out


def training_free_search(args, indices: list[int], acc_of: dict[int, float],
                         full_scores: dict[int, dict[str, dict[int, float | None]]]) -> dict[str, Any]:
    """Mean +/- std CIFAR-10 test accuracy of the best-by-proxy of N cells, over runs (see the docstring).
    The pool is every cell scored by every proxy at every seed (the whole sample once it is complete)."""
    from nasforge.proxies.ensemble import _clean

    seeds = sorted(full_scores)
    names = sorted(set.intersection(*(set(s) for s in full_scores.values())))
    pool = [i for i in indices if all(i in full_scores[s][p] for s in seeds for p in names)]
    acc = np.array([acc_of[i] for i in pool])
    res: dict[str, Any] = {"N": args.search_n, "runs": args.search_runs, "pool": len(pool), "seeds": seeds}
    if len(pool) < args.search_n:
        return {**res, "skipped": f"pool of {len(pool)} cells is smaller than N"}
    res["oracle_best_in_pool"] = round(float(acc.max()), 2)
    for p in names:
        picks = []
        for r in range(args.search_runs):
            idx = np.random.default_rng(1000 + r).choice(len(pool), args.search_n, replace=False)
            s = _clean([full_scores[seeds[r % len(seeds)]][p][pool[i]] for i in idx])
            picks.append(acc[idx[int(np.argmax(s))]])
        res[p] = {"mean": round(float(np.mean(picks)), 3), "std": round(float(np.std(picks)), 3)}
    res["random_single_cell"] = {"mean": round(float(acc.mean()), 3)}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tables", default=str(REPO.parent / "shared" / "data" / "benchmarks"))
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "proxies_nb201.json"))
    ap.add_argument("--cache", default=str(REPO / "runs" / "bench-proxies-nb201"))
    ap.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100", "imagenet16-120"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--groups", nargs="+", default=["core", "extra"], choices=list(GROUPS))
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--search-n", type=int, default=100)
    ap.add_argument("--search-runs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true", help="summarise the cached chunks; score nothing")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from nasforge.data import load_dataset
    from nasforge.building import import_components
    from nasforge.tables.nb201 import NB201Table

    import_components()
    table = NB201Table.load(Path(args.tables) / "nb201")
    indices = sample_indices(args.n, args.sample_seed)
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    fmnist = None if args.report_only else load_dataset("fashion-mnist", args.data_root)[0]
    # order: the cheap strong group before the rest; within it every data set at the first seed
    # (CIFAR-10 carries the targets; ImageNet16-120 at 16x16 is the cheapest), then CIFAR-10's other seeds
    first = args.seeds[0]
    cost = {"imagenet16-120": 0, "cifar10": 1, "cifar100": 2}
    order = [(d, s, g) for g in args.groups for s in args.seeds for d in args.datasets]
    order.sort(key=lambda k: (args.groups.index(k[2]), k[1] != first, k[0] != "cifar10",
                              args.seeds.index(k[1]), cost.get(k[0], 3)))
    chunks: dict[tuple[str, int, str], dict] = {}
    for key in order:
        path = Path(args.cache) / f"{key[0]}_s{key[1]}_{key[2]}.json"
        if args.report_only:
            if path.exists():
                chunks[key] = json.loads(path.read_text())
            continue
        chunks[key] = run_chunk(args, table, fmnist, *key, indices)
        atomic_json(Path(args.out), summarise(args, table, indices, chunks))
    summary = summarise(args, table, indices, chunks)
    atomic_json(Path(args.out), summary)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
