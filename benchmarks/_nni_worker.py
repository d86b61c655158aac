"""One NNI 3.0 DARTS search over NAS-Bench-201 or the DARTS space, timed; run by benchmarks/peer_nni.py inside
the NNI venv.

This file imports only NNI, torch, the standard library and _peer.py (NNI lives in its own venv, .peers/nni,
see ../shared/peers/nni/setup.sh). It is run the way NNI's own example runs a search (NasExperiment with the
DARTS strategy and a Classification evaluator), on the images the parent saved, over `--space nb201`
(NasBench201, C = stem channels, N cells per stage) or `--space darts` (NNI's DARTS space: width C,
`--layers` cells in three stages, the CIFAR stem), at `--precision` fp32 or bf16, and prints one JSON object:

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
    p.add_argument("--space", choices=("nb201", "darts"), default="nb201")
    p.add_argument("--layers", type=int, default=5, help="cells of the darts space")
    p.add_argument("--grad-clip", type=float, default=5.0)
    args = p.parse_args()

    _peer.quiet_nni()
    import torch
    from nni.nas.hub.pytorch import DARTS as DartsSpace, NasBench201
    from nni.nas.strategy import DARTS
    from torch.utils.flop_counter import FlopCounterMode

    def make_space(x):
        if args.space == "darts":  # layers split over three stages as nasforge's (reductions at 1/3, 2/3)
            return DartsSpace(width=args.C, num_cells=args.layers, dataset="cifar")
        return NasBench201(stem_out_channels=args.C, num_modules_per_stack=args.N, num_labels=10)

    # no shuffling: step k sees the same train and val batch as nasforge's step k
    record, space, experiment, x_train = _peer.run_nni_experiment(
        args, make_space, lambda: DARTS(gradient_clip_val=args.grad_clip))

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
