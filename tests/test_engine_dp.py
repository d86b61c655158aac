"""Every one-shot method honours the supernet engine under data parallelism (issue 19): a 2-process gloo
search (torchrun) ends with bit-identical weights, BN buffers, optimiser and strategy state, phase and
architecture on both ranks - at an odd subset size whose last batch is partial (and split unevenly over the
ranks), with and without --sync-bn, and for darts with the Hessian diagnostic on (it must not change the
model). One torchrun job per method runs both configurations (process start-up dominates)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from test_distributed import _equal, torchrun
from test_hurricane import TINY as MOBILE_TINY, fake_cache  # noqa: F401  (fixture)
from test_vit import SMALL as VIT_SMALL

WORKER = Path(__file__).resolve().parent / "engine_dp_worker.py"
# 77 images: search-train 38 / search-val 39 halves; batches of 12 leave a last batch of 2 or 3 (1 + 1 or 1 + 2
# rows per rank)
TINY = {"dataset": "synthetic", "subset": 77, "batch_size": 12, "threads": 1, "device": "cpu", "seed": 4}
NB201 = {**TINY, "space": "nb201", "space_options": {"C": 2, "N": 1}, "budget": {"epochs": 1}}


def configs(method: str, lut: str) -> dict:
    if method in ("darts", "single-darts"):
        base = {**NB201, "method": method, "hparams": {"eval_batches": 1, "hessian_every": 1, "hessian_iters": 2}}
    elif method in ("manas", "manas-ls"):
        base = {**NB201, "method": method, "hparams": {"eval_batches": 1}}
    elif method == "random-ws":
        base = {**NB201, "method": method, "hparams": {"eval_batches": 1, "candidates": 3, "top_k": 2,
                                                      "rerank_batches": 1}}
    elif method == "bats":
        base = {**TINY, "space": "bats", "method": "bats", "budget": {"epochs": 1},
                "space_options": {"C": 2, "layers": 3, "groups": 1, "shuffle_groups": 2},
                "hparams": {"gap_batches": 1, "eval_batches": 1}}
    elif method == "hurricane":
        base = {**TINY, "space": "mobile", "method": "hurricane", "space_options": MOBILE_TINY, "budget": {"epochs": 2},
                "hparams": {"population": 4, "sample_size": 2, "evaluations": 4, "bn_batches": 1, "eval_batches": 1,
                            "lut_cache": lut}}
    else:
        base = {**TINY, "space": "vit", "method": "vitas", "space_options": VIT_SMALL, "budget": {"epochs": 1},
                "hparams": {"budget": 0.3, "window_low": 0.5, "candidates": 3, "population": 3, "sample_size": 2,
                            "eval_images": 24, "eval_batch": 12, "calib_samples": 100, "checkpoint_every": 2}}
    if method == "vitas":  # a ViT has no BatchNorm: --sync-bn is refused there (test_newuser)
        return {"plain": base}
    return {"plain": base, "syncbn": {**base, "sync_bn": True}}


METHODS = ["darts", "single-darts", "manas", "manas-ls", "random-ws", "bats", "hurricane", "vitas"]


@pytest.mark.parametrize("method", METHODS)
def test_two_process_search_ends_identical_on_both_ranks(method, tmp_path, fake_cache):
    jobs = configs(method, str(fake_cache))
    torchrun(str(WORKER), json.dumps(jobs), str(tmp_path))
    for name in jobs:
        s0 = torch.load(tmp_path / f"{name}-rank0.pt", weights_only=False)
        s1 = torch.load(tmp_path / f"{name}-rank1.pt", weights_only=False)
        for key in ("supernet", "w_opt", "w_sched", "strategy", "phase", "epoch", "selection"):
            assert _equal(s0[key], s1[key]), (name, key)
        r0, r1 = (json.loads((tmp_path / f"{name}-rank{r}.json").read_text()) for r in (0, 1))
        assert r0["arch"] == r1["arch"], name
        dp = r0["metrics"]["data_parallel"]
        assert dp["world_size"] == 2 and dp["ranks_identical"] and dp["arch_identical"], (name, dp)
