"""One NNI 3.0 AutoFormer supernet training run with RandomOneShot, timed; run by benchmarks/vitas_peer_nni.py
inside the NNI venv (.peers/nni, made by ../shared/peers/nni/setup.sh).

Imports only NNI, torch, the standard library and _peer.py. Builds NNI's `AutoFormer` space at the
configuration the parent passes (embed, depth, heads, MLP ratios, patch, image size; class-token head, no
relative position encoding, no drop-path, so that it computes what nasforge's `vit` space in AutoFormer mode
computes), trains it for one epoch with `RandomOneShot` (a fresh uniform subnet per step) through
`NasExperiment` as NNI's tutorial does, and prints one JSON object:

- step_s: wall time of every training step (on_train_batch_start -> on_train_batch_end, Lightning callback);
- total_s: the whole user-level call, from building the space to run() returning;
- rss_base_mb / rss_peak_mb: resident memory after imports and data load, and the process peak.
"""
from __future__ import annotations

import json

import _peer


def ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",")]


def main() -> None:
    p = _peer.worker_parser(__doc__, threads=1)
    p.add_argument("--embed", type=ints, required=True)
    p.add_argument("--depth", type=ints, required=True)
    p.add_argument("--heads", type=ints, required=True)
    p.add_argument("--mlp-ratios", type=lambda s: [float(v) for v in s.split(",")], required=True)
    p.add_argument("--patch", type=int, required=True)
    args = p.parse_args()

    _peer.quiet_nni()
    from nni.nas.hub.pytorch import AutoFormer
    from nni.nas.strategy import RandomOneShot

    def space(x):
        return AutoFormer(search_embed_dim=tuple(args.embed), search_mlp_ratio=tuple(args.mlp_ratios),
                          search_num_heads=tuple(args.heads), search_depth=tuple(args.depth), img_size=x.shape[-1],
                          patch_size=args.patch, in_channels=x.shape[1], num_labels=10, qkv_bias=True,
                          drop_path_rate=0.0, global_pooling=False, rpe=False, pre_norm=True)

    record, supernet, _, _ = _peer.run_nni_experiment(args, space, RandomOneShot)
    print(json.dumps({**record, "supernet_params": sum(p.numel() for p in supernet.parameters())}))


if __name__ == "__main__":
    main()
