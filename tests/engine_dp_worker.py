"""Run under torchrun by test_engine_dp.py (not a test module): several searches in one job (start-up is the
expensive part); after each, every rank saves the last state it checkpointed (supernet, optimiser, strategy
state, phase) to ``OUT/<name>-rank<r>.pt`` and its architecture and metrics to ``OUT/<name>-rank<r>.json``;
with DTYPES=1 every rank also records the dtypes its convolutions and linear layers computed in during
training steps (``OUT/<name>-dtypes<r>.json``).

    torchrun --nproc-per-node 2 tests/engine_dp_worker.py JOBS_JSON OUT      # JOBS: {name: config}
"""
from __future__ import annotations

import json
import os
import sys

import torch

from nasforge import api, progress
from nasforge.engine.base import SearchContext


def main() -> None:
    jobs, out = json.loads(sys.argv[1]), sys.argv[2]
    rank = int(os.environ.get("RANK", "0"))
    original = SearchContext.checkpoint
    last: dict = {}

    def checkpoint(self, state):
        original(self, state)
        last["state"] = state

    SearchContext.checkpoint = checkpoint
    progress.set_enabled(False)
    for name, cfg in jobs.items():
        last.clear()
        res = api.search(cfg, run_root=f"{out}/runs", run_name=name)
        torch.save(last["state"], f"{out}/{name}-rank{rank}.pt")
        with open(f"{out}/{name}-rank{rank}.json", "w") as f:
            json.dump({"arch": res["arch"], "metrics": res["search"]["metrics"]}, f, default=str)


if __name__ == "__main__":
    main()
