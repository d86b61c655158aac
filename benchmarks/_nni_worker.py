"""One NNI 3.0 DARTS search over NAS-Bench-201, timed; run by benchmarks/peer_nni.py inside the NNI venv.

This file imports only NNI, torch, the standard library and _peer.py (NNI lives in its own venv, .peers/nni,
see ../shared/peers/nni/setup.sh). It is run the way NNI's own example runs a search (NasExperiment with the
DARTS strategy and a Classification evaluator), on the images the parent saved, and prints one JSON object:

- step_s: wall time of every search step (arch step + weight step), from a Lightning callback
  (on_train_batch_start -> on_train_batch_end; data loading falls outside it);
- total_s: wall time of the whole user-level call, from building the space to run() returning;
- rss_base_mb / rss_peak_mb: resident memory after imports and data load, and the process peak;
- forward_flops: FLOPs of one forward of the mutated supernet (torch's FlopCounterMode).
"""
from __future__ import annotations

import json

import _peer


def main() -> None:
    p = _peer.worker_parser(__doc__, threads=2)
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--grad-clip", type=float, default=5.0)
    args = p.parse_args()

    _peer.quiet_nni()
    import torch
    from nni.nas.hub.pytorch import NasBench201
    from nni.nas.strategy import DARTS
    from torch.utils.flop_counter import FlopCounterMode

    # no shuffling: step k sees the same train and val batch as nasforge's step k
    record, space, experiment, x_train = _peer.run_nni_experiment(
        args, lambda x: NasBench201(stem_out_channels=args.C, num_modules_per_stack=args.N, num_labels=10),
        lambda: DARTS(gradient_clip_val=args.grad_clip))

    # FLOPs of one weighted forward of the supernet DARTS trained (the space was mutated in place)
    counter = FlopCounterMode(display=False)
    space.eval()
    with torch.no_grad(), counter:
        space(x_train[: args.batch])
    arch = experiment.export_top_models(formatter="dict")[0]
    print(json.dumps({**record, "forward_flops": counter.get_total_flops(),
                      "arch": {k: str(v) for k, v in arch.items()}}))


if __name__ == "__main__":
    main()
