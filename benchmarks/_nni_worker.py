"""One NNI 3.0 DARTS search over NAS-Bench-201, timed; run by benchmarks/peer_nni.py inside the NNI venv.

This file imports only NNI, torch and the standard library (NNI lives in its own venv, .peers/nni, see
../shared/peers/nni/setup.sh). It is run the way NNI's own example runs a search (NasExperiment with the
DARTS strategy and a Classification evaluator), on the images the parent saved, and prints one JSON object:

- step_s: wall time of every search step (arch step + weight step), from a Lightning callback
  (on_train_batch_start -> on_train_batch_end; data loading falls outside it);
- total_s: wall time of the whole user-level call, from building the space to run() returning;
- rss_base_mb / rss_peak_mb: resident memory after imports and data load, and the process peak;
- forward_flops: FLOPs of one forward of the mutated supernet (torch's FlopCounterMode).
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True, help="torch file written by peer_nni.py")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--grad-clip", type=float, default=5.0)
    p.add_argument("--workdir", required=True, help="where Lightning may write its logs and checkpoint")
    args = p.parse_args()

    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)  # NNI/Lightning chatter about unknown torch modules
    import nni
    import pytorch_lightning as pl
    import torch
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.experiment import NasExperiment
    from nni.nas.hub.pytorch import NasBench201
    from nni.nas.strategy import DARTS
    from torch.utils.data import TensorDataset
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = torch.load(args.data)
    x_train, y_train, x_val, y_val = data["x_train"], data["y_train"], data["x_val"], data["y_val"]
    rss_base = rss_mb()

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_train_batch_start(self, *args) -> None:
            self._t = time.perf_counter()

        def on_train_batch_end(self, *args) -> None:
            self.times.append(time.perf_counter() - self._t)

    timer = StepTimer()
    start = time.perf_counter()
    # no shuffling: step k sees the same train and val batch as nasforge's step k
    train = DataLoader(nni.trace(TensorDataset)(x_train, y_train), batch_size=args.batch)
    val = DataLoader(nni.trace(TensorDataset)(x_val, y_val), batch_size=args.batch)
    space = NasBench201(stem_out_channels=args.C, num_modules_per_stack=args.N, num_labels=10)
    evaluator = Classification(train_dataloaders=train, val_dataloaders=val, max_epochs=1, accelerator="cpu",
                               num_classes=10, callbacks=[timer], default_root_dir=args.workdir)
    experiment = NasExperiment(space, evaluator, DARTS(gradient_clip_val=args.grad_clip))
    experiment.run()
    experiment_s = time.perf_counter() - start
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    # FLOPs of one weighted forward of the supernet DARTS trained (the space was mutated in place)
    counter = FlopCounterMode(display=False)
    space.eval()
    with torch.no_grad(), counter:
        space(x_train[: args.batch])
    arch = experiment.export_top_models(formatter="dict")[0]
    print(json.dumps({"step_s": timer.times, "total_s": experiment_s, "rss_base_mb": rss_base,
                      "rss_peak_mb": rss_peak, "forward_flops": counter.get_total_flops(),
                      "threads": torch.get_num_threads(), "arch": {k: str(v) for k, v in arch.items()}}))


if __name__ == "__main__":
    main()
