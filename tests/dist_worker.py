"""Run under torchrun by test_distributed.py (not a test module): a search in which every rank also saves
the state it checkpoints to ``OUT/rank<r>.pt``, so the test can compare ranks; with KILL_AFTER=k, rank 0
kills itself with SIGKILL right after the checkpoint of epoch k (a crash after a checkpoint). With
TRAIN_JSON it then also runs `nasforge train` with that config and every rank saves its trained model to
``OUT/model<r>.pt``.

    torchrun --nproc-per-node 2 tests/dist_worker.py CONFIG_JSON OUT RUN_ROOT [KILL_AFTER [TRAIN_JSON]]
"""
from __future__ import annotations

import json
import os
import signal
import sys

import torch

from nasforge import api, progress
from nasforge.runs.store import RunDir
from nasforge.engine.base import SearchContext


def main() -> None:
    cfg, out, run_root = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    kill_after = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    rank = int(os.environ.get("RANK", "0"))
    original = SearchContext.checkpoint

    def checkpoint(self, state):
        original(self, state)
        torch.save(state, f"{out}/rank{rank}.pt")
        if kill_after and state["epoch"] == kill_after and rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    SearchContext.checkpoint = checkpoint
    progress.set_enabled(False)
    res = api.search(cfg, run_root=run_root, run_name="r")
    with open(f"{out}/result{rank}.json", "w") as f:
        json.dump({"arch": res["arch"]}, f)
    if len(sys.argv) > 5:
        save_torch = RunDir.save_torch

        def save_every_rank(self, name, obj):
            save_torch(self, name, obj)
            torch.save(obj, f"{out}/model{rank}.pt")

        RunDir.save_torch = save_every_rank
        trained = api.train(json.loads(sys.argv[5]), run_root=run_root, run_name="t")
        with open(f"{out}/train{rank}.json", "w") as f:
            json.dump({"test_accuracy": trained["test_accuracy"], "history": trained["history"]}, f)


if __name__ == "__main__":
    main()
