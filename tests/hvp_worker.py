"""Run under torchrun by test_distributed.py (not a test module): a Hessian-vector product differentiated twice
through nasforge's SyncBatchNorm (its all_reduce inside the double-backward graph, no local_batchnorm), next to
the one-process product on the global batch. Rank 0 writes OUT/hvp.json: both products and every warning.

    torchrun --nproc-per-node 2 tests/hvp_worker.py OUT
"""
from __future__ import annotations

import json
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasforge import distributed
from nasforge.supernet.hessian import hessian_vector_product


def main() -> None:
    out = sys.argv[1]
    distributed.init(torch.device("cpu"))
    r, n = distributed.rank(), distributed.world_size()
    torch.manual_seed(0)  # the same weights, data and probe on every rank
    net = distributed.convert_sync_batchnorm(nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(),
                                                           nn.Flatten(), nn.Linear(3 * 4 * 4, 5)))
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 5, (8,))
    params = list(net.parameters())
    vec = [torch.randn_like(p) for p in params]

    def hvp(xb: torch.Tensor, yb: torch.Tensor) -> list[torch.Tensor]:
        grads = torch.autograd.grad(F.cross_entropy(net(xb), yb), params, create_graph=True)
        return hessian_vector_product(grads, params, vec)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shard = slice(r * len(x) // n, (r + 1) * len(x) // n)
        dp = hvp(x[shard], y[shard])  # this rank's shard, BN statistics of the global batch
        distributed.average_(dp)  # the mean of the shard losses is the global batch's loss
    with distributed.local_batchnorm():
        ref = hvp(x, y)  # one process holding the whole batch
    if r == 0:
        with open(f"{out}/hvp.json", "w") as f:
            json.dump({"dp": [t.flatten().tolist() for t in dp], "ref": [t.flatten().tolist() for t in ref],
                       "warnings": [str(w.message) for w in caught]}, f)
    distributed.shutdown()


if __name__ == "__main__":
    main()
