"""PNAS mechanics (spec 1.8 tier A): counts, a full-size dry run, predictor speed, a synthetic oracle.

1. Counts: canonical 1-block cells (136), children per cell at b = 2..5 (300/528/820/1176) and candidates
   per round at K = 256 (40,800 / 135,168 / 209,920 / 301,056).
2. Dry run of the PNAS strategy at the paper's scale (B = 5, K = 256, 8 ops) with the synthetic oracle as
   the "trainer": the number of models scored must be 136 + 4 * 256 = 1160; reports each round's candidate
   count and the time to refit the 5-member MLP ensemble and to score the candidates.
3. Oracle experiment (B = 3, K = 16, 136 + 2 * 16 = 168 oracle calls per seed; random size-3 cells as the
   baseline), reported two ways:
   * as worded in spec 1.8: n_PNAS = calls until PNAS first scores a cell above the 99th percentile of
     random 3-block cells, n_random = the same for uniform random 3-block cells;
   * as in the paper's efficiency protocol (spec 1.6): how many random 3-block cells it takes until their
     running top-M mean reaches PNAS's final top-M mean, divided by PNAS's 168 calls (M = 1, 5).
   plus the Spearman correlation of the ensemble's predictions with the oracle on the cells it picked.

This exercises canonicalisation, expansion, the beam and the surrogate refits; it is not evidence for the
paper's claims.

    python benchmarks/pnas_mechanics.py                  # 5 oracle seeds + the dry run
    python benchmarks/pnas_mechanics.py --seeds 20       # the spec's 20 seeds
"""
from __future__ import annotations

import argparse
import heapq
import json
import random
import time
from typing import Any

import numpy as np
import torch

from nasforge.spaces.pnas import PNASSpace, canonical_blocks, expand, one_block_cells
from nasforge.engine.base import Budget, SearchContext
from nasforge.strategies.pnas import PNAS
from nasforge.surrogates import Ensemble, TokenBatch
from nasforge.surrogates.oracle import OracleEstimator


def counts() -> dict[str, Any]:
    per_cell = {b: len(canonical_blocks(b)) for b in range(2, 6)}
    rng = random.Random(0)
    sp = PNASSpace(blocks=5)
    measured = {b: len(expand(sp.validate(sp.sample(rng))[: b - 1])) for b in range(2, 6)}
    return {
        "one_block_cells": len(one_block_cells()),
        "children_per_cell": per_cell,
        "children_per_cell_by_expand": measured,
        "candidates_per_round_K256": [136 * per_cell[2]] + [256 * per_cell[b] for b in (3, 4, 5)],
        "reduced_space": {"one_block_cells": len(one_block_cells("reduced")),
                          "children_per_cell": {b: len(canonical_blocks(b, "reduced")) for b in (2, 3)}},
    }


class _TimedPNAS(PNAS):
    """PNAS that also records how long each refit and each candidate scoring took."""

    def _fit(self) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        super()._fit()
        self.timings.append({"n_data": len(self.history), "fit_s": round(time.perf_counter() - t0, 2),
                             "fit_cpu_s": round(time.process_time() - c0, 2)})

    def _pick(self, cands, k, exclude=None):
        t0, c0 = time.perf_counter(), time.process_time()
        out = super()._pick(cands, k, exclude)
        self.timings[-1].update(candidates=len(cands), predict_s=round(time.perf_counter() - t0, 2),
                                predict_cpu_s=round(time.process_time() - c0, 2))
        return out


def dry_run(seed: int = 0) -> dict[str, Any]:
    space = PNASSpace(blocks=5)
    strategy = _TimedPNAS(K=256, keep_searching=False)
    strategy.timings = []
    t0 = time.perf_counter()
    result = strategy.search(SearchContext(space=space, budget=Budget(trials=100_000), seed=seed,
                                           estimator=OracleEstimator(seed=seed)))
    return {
        "models_scored": len(result.history),
        "expected": 136 + 4 * 256,
        "candidates_per_round": [r["candidates"] for r in result.metrics["pnas_rounds"]],
        "scored_per_round": [r["picked"] for r in result.metrics["pnas_rounds"]],
        "spearman_per_round": [r.get("spearman") for r in result.metrics["pnas_rounds"]],
        "refits": strategy.timings,
        "wall_s": round(time.perf_counter() - t0, 1),
    }


def predictor_speed(n_train: int = 1024, seed: int = 0) -> dict[str, Any]:
    """Fit the 5-member MLP ensemble on n_train 4-block cells, then score 256 x 1176 = 301,056 5-block cells."""
    space = PNASSpace(blocks=5)
    est = OracleEstimator(seed=seed)
    oracle = est.oracle(space)
    rng = random.Random(seed)
    cells = [space.canonical(space.sample(rng))[:4] for _ in range(n_train)]
    tok = oracle.tokenizer
    train = tok.batch(cells)
    ens = Ensemble(tok, seed=seed)
    t0, c0 = time.perf_counter(), time.process_time()
    ens.fit(train, oracle.score_tokens(train))
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    parents = train.tokens[:256]
    blocks = tok.block_tokens(canonical_blocks(5))
    tokens = np.concatenate([np.repeat(parents, len(blocks), 0), np.tile(blocks, (256, 1))[:, None]], axis=1)
    cands = TokenBatch(tokens, np.full(len(tokens), 5))
    t0, c0 = time.perf_counter(), time.process_time()
    ens.predict(cands)
    return {"n_train": n_train, "fit_s": round(fit_s, 2), "fit_cpu_s": round(fit_cpu, 2), "n_candidates": len(cands),
            "predict_s": round(time.perf_counter() - t0, 2), "predict_cpu_s": round(time.process_time() - c0, 2),
            "threads": torch.get_num_threads(),
            "note": "wall seconds depend on what else runs on the machine; cpu_s is the process's CPU time"}


def _first_reaching(stream: np.ndarray, target: float, m: int) -> int | None:
    """1-based index at which the running top-m mean of `stream` first reaches `target` (None: never)."""
    heap: list[float] = []
    total = 0.0
    for i, x in enumerate(stream):
        if len(heap) < m:
            heapq.heappush(heap, x)
            total += x
        elif x > heap[0]:
            total += x - heapq.heapreplace(heap, x)
        if len(heap) == m and total / m >= target - 1e-12:
            return i + 1
    return None


def oracle_experiment(seed: int, K: int = 16, blocks: int = 3, n_stream: int = 200_000) -> dict[str, Any]:
    space = PNASSpace(blocks=blocks)
    est = OracleEstimator(seed=seed)
    oracle = est.oracle(space)
    threshold = float(np.quantile(oracle.sample_scores(200_000, blocks, seed=10_000 + seed), 0.99))
    budget = 136 + (blocks - 1) * K
    result = PNAS(K=K, keep_searching=False).search(
        SearchContext(space=space, budget=Budget(trials=budget), seed=seed, estimator=est))
    scores = np.array([h["score"] for h in result.history])
    stream = oracle.sample_scores(n_stream, blocks, seed=20_000 + seed)  # the random baseline, in order
    above = np.flatnonzero(scores >= threshold)
    above_full = [i for i in above if len(result.history[i]["arch"]) == blocks]
    out: dict[str, Any] = {
        "seed": seed, "pnas_calls": len(scores), "threshold_99": round(threshold, 4),
        "n_pnas": int(above[0]) + 1 if len(above) else None,
        "n_pnas_full_size": int(above_full[0]) + 1 if above_full else None,
        "n_random": _first_reaching(stream, threshold, 1),
        "spearman_per_round": [r.get("spearman") for r in result.metrics["pnas_rounds"]],
    }
    for m in (1, 5):
        target = float(np.sort(scores)[-m:].mean())
        n = _first_reaching(stream, target, m)
        out[f"pnas_top{m}"] = round(target, 4)
        out[f"n_random_top{m}"] = n  # None: not reached within n_stream random cells
        out[f"speedup_top{m}"] = round((n if n is not None else n_stream) / len(scores), 2)
    return out


def _median(xs: list[float | None], cap: float) -> float:
    return float(np.median([cap if x is None else x for x in xs]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5, help="oracle seeds (the spec uses 20)")
    p.add_argument("--K", type=int, default=16, help="beam width of the oracle experiment")
    p.add_argument("--no-dry-run", action="store_true", help="skip the B=5, K=256 dry run (about a minute)")
    args = p.parse_args()

    report: dict[str, Any] = {"benchmark": "pnas_mechanics", "counts": counts(), "predictor_speed": predictor_speed()}
    if not args.no_dry_run:
        report["dry_run_B5_K256"] = dry_run()
    runs = [oracle_experiment(seed, K=args.K) for seed in range(args.seeds)]
    cap = 200_000
    ratios = [(r["n_random"] or cap) / r["n_pnas"] for r in runs if r["n_pnas"]]
    report["oracle_B3"] = {
        "K": args.K, "seeds": args.seeds, "runs": runs,
        "median_n_pnas": _median([r["n_pnas"] for r in runs], cap),
        "median_n_random": _median([r["n_random"] for r in runs], cap),
        "median_ratio_n_random_over_n_pnas": round(float(np.median(ratios)), 2) if ratios else None,
        "median_speedup_top1": round(_median([r["speedup_top1"] for r in runs], cap), 2),
        "median_speedup_top5": round(_median([r["speedup_top5"] for r in runs], cap), 2),
        "note": "n_* are oracle calls; speedup_topM = random calls to match PNAS's final top-M mean / PNAS calls "
                "(capped at 200,000 random cells)",
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
