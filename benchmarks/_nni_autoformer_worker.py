"""One NNI 3.0 AutoFormer supernet training run with RandomOneShot, timed; run by benchmarks/vitas_peer_nni.py
inside the NNI venv (.peers/nni, made by ../shared/peers/nni/setup.sh).

Imports only NNI, torch and the standard library. Builds NNI's `AutoFormer` space at the configuration the
parent passes (embed, depth, heads, MLP ratios, patch, image size; class-token head, no relative position
encoding, no drop-path, so that it computes what nasforge's `vit` space in AutoFormer mode computes), trains
it for one epoch with `RandomOneShot` (a fresh uniform subnet per step) through `NasExperiment` as NNI's
tutorial does, and prints one JSON object:

- step_s: wall time of every training step (on_train_batch_start -> on_train_batch_end, Lightning callback);
- total_s: the whole user-level call, from building the space to run() returning;
- rss_base_mb / rss_peak_mb: resident memory after imports and data load, and the process peak.
"""
from __future__ import annotations

import argparse
import json
import resource
import time
import warnings


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--embed", type=ints, required=True)
    p.add_argument("--depth", type=ints, required=True)
    p.add_argument("--heads", type=ints, required=True)
    p.add_argument("--mlp-ratios", type=lambda s: [float(v) for v in s.split(",")], required=True)
    p.add_argument("--patch", type=int, required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workdir", required=True)
    args = p.parse_args()

    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)
    import nni
    import pytorch_lightning as pl
    import torch
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.experiment import NasExperiment
    from nni.nas.hub.pytorch import AutoFormer
    from nni.nas.strategy import RandomOneShot
    from torch.utils.data import TensorDataset

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = torch.load(args.data)
    x_train, y_train, x_val, y_val = data["x_train"], data["y_train"], data["x_val"], data["y_val"]
    rss_base = rss_mb()

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_train_batch_start(self, *a) -> None:
            self._t = time.perf_counter()

        def on_train_batch_end(self, *a) -> None:
            self.times.append(time.perf_counter() - self._t)

    timer = StepTimer()
    start = time.perf_counter()
    train = DataLoader(nni.trace(TensorDataset)(x_train, y_train), batch_size=args.batch)
    val = DataLoader(nni.trace(TensorDataset)(x_val, y_val), batch_size=args.batch)
    space = AutoFormer(search_embed_dim=tuple(args.embed), search_mlp_ratio=tuple(args.mlp_ratios),
                       search_num_heads=tuple(args.heads), search_depth=tuple(args.depth), img_size=x_train.shape[-1],
                       patch_size=args.patch, in_channels=x_train.shape[1], num_labels=10, qkv_bias=True,
                       drop_path_rate=0.0, global_pooling=False, rpe=False, pre_norm=True)
    evaluator = Classification(train_dataloaders=train, val_dataloaders=val, max_epochs=1, accelerator="cpu",
                               num_classes=10, callbacks=[timer], default_root_dir=args.workdir)
    experiment = NasExperiment(space, evaluator, RandomOneShot())
    experiment.run()
    total_s = time.perf_counter() - start
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step_s": timer.times, "total_s": total_s, "rss_base_mb": rss_base, "rss_peak_mb": rss_peak,
                      "threads": torch.get_num_threads(),
                      "supernet_params": sum(p.numel() for p in space.parameters())}))


if __name__ == "__main__":
    main()
