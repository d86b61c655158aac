"""BATS headline: a BATS cell trained fully binary (two stages) on Fashion-MNIST, tested on the official test
set, beside (1) the same genotype's real-valued twin (same network, binarization off) trained for the same
total number of epochs (2 x --epochs, one stage, same optimiser), and (2) the control that shows whether the
search did anything: a random cell of the same space (sampled with the seed), trained the same two-stage way.
Reports accuracy, parameters, BOPs/FLOPs/OPs per seed. The published binary record on Fashion-MNIST we compare
against: 92.86 % at 0.48 M parameters.

    python benchmarks/bats_headline.py --arch runs/bats_bench/b2-T0.2-s0/arch.json --C 16 --layers 5 \
        --epochs 10 --seeds 0 1 2 --threads 1 [--subset N] [--teacher RUN]

The cell given by --arch comes from a B2 search whose alphas barely moved (docs/bats.md), so the JSON calls it
"the B2 search's cell", and the random-cell control says whether it is any better than chance. Every training
is a resumable run directory under --out (finished runs are read back). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
RECORD = {"accuracy": 0.9286, "params": 480_000}


def _binary_run(a, api, spec: dict, name: str, seed: int) -> dict[str, Any]:
    run_dir = Path(a.out) / name
    if (run_dir / "result.json").exists():
        res = json.loads((run_dir / "result.json").read_text())
    elif (run_dir / "config.json").exists():
        res = api.train(resume=run_dir)
    else:
        res = api.train({"arch": spec, "dataset": "fashion-mnist", "subset": a.subset, "test_subset": a.test_subset,
                         "threads": a.threads, "teacher": a.teacher,
                         "train": {"epochs": a.epochs, "batch_size": a.batch, "hflip": False, "seed": seed}},
                        run_root=a.out, run_name=name)
    return {"test_accuracy": res["test_accuracy"], "params": res["params"], "flops": res["flops"], "bops": res["bops"],
            "ops": res["ops"], "epochs_total": a.epochs * len(res["stages"]),
            "stages": [{k: st.get(k) for k in ("stage", "test_accuracy", "binarization")} for st in res["stages"]],
            "arch": res["arch"]}


def _real_twin(a, spec: dict, name: str, seed: int, tr, te) -> dict[str, Any]:
    from nasforge.building import build_model
    from nasforge.hardware.binary import binary_cost
    from nasforge.ops.binary import set_binarization
    from nasforge.runs import RunDir
    from nasforge.training import TrainConfig, train_model

    torch.manual_seed(seed)
    model, _ = build_model(spec, tr)
    set_binarization(model, act=False, weight=False)
    twin_dir = Path(a.out) / name
    twin_dir.mkdir(parents=True, exist_ok=True)
    # equal epochs: the binary network trains a.epochs in each of its two stages, so the twin trains 2 x a.epochs
    cfg = TrainConfig.from_dict({"epochs": 2 * a.epochs, "batch_size": a.batch, "hflip": False, "seed": seed,
                                 "optimizer": "adam", "lr": 1e-3, "lr_min": 0.0, "weight_decay": 1e-5})
    out = train_model(model, tr, te, cfg, run=RunDir(twin_dir))
    cost = binary_cost(model, torch.zeros(1, tr.in_channels, tr.resolution, tr.resolution))
    return {"test_accuracy": out["final"]["test_accuracy"], "params": cost["params"], "flops": cost["flops"],
            "bops": cost["bops"], "ops": cost["ops"], "epochs_total": 2 * a.epochs}


def _mean(xs: list[float]) -> float:
    return statistics.mean(xs)


def _std(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, help="arch.json of a bats search")
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--groups", type=int, default=4)
    p.add_argument("--epochs", type=int, default=10, help="epochs per stage (the real twin trains 2 x this)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--subset", type=int, default=None, help="training images (default: all 60000)")
    p.add_argument("--test-subset", type=int, default=None)
    p.add_argument("--teacher", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(REPO / "runs" / "bats_headline"))
    p.add_argument("--write", action="store_true", help="also write docs/results/bats_headline.json")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from nasforge import api
    from nasforge.data import final_split, load_dataset
    from nasforge.building import import_components
    from nasforge.building import make_space

    import_components()  # the spaces register themselves on import

    load0 = os.getloadavg()
    spec = json.loads(Path(a.arch).read_text())
    sc = {**spec.get("space_config", {}), "C": a.C, "layers": a.layers, "groups": a.groups}
    sc = {k: v for k, v in sc.items() if k not in ("space", "in_channels", "num_classes", "resolution")}
    spec["space_config"] = sc
    train_set, test_set = load_dataset("fashion-mnist")
    tr, te = final_split(train_set, test_set, subset=a.subset, test_subset=a.test_subset)
    space = make_space(spec["space"], tr, sc)
    tag = f"C{a.C}-L{a.layers}-e{a.epochs}" + (f"-n{a.subset}" if a.subset else "")
    runs = []
    for seed in a.seeds:
        random_spec = {**spec, "arch": space.sample(random.Random(1000 + seed))}
        runs.append({"seed": seed,
                     "searched_binary": _binary_run(a, api, spec, f"binary-{tag}-s{seed}", seed),
                     "real_twin": _real_twin(a, spec, f"binary-{tag}-s{seed}-real-twin-2x", seed, tr, te),
                     "random_cell_binary": _binary_run(a, api, random_spec, f"random-{tag}-s{seed}", seed)})
    acc = {k: [r[k]["test_accuracy"] for r in runs] for k in ("searched_binary", "real_twin", "random_cell_binary")}
    best = max(runs, key=lambda r: r["searched_binary"]["test_accuracy"])["searched_binary"]
    res = {"benchmark": "bats_headline", "arch": best["arch"], "space_config": sc,
           "cell_origin": "lowest-search-val-loss genotype of B2's T=0.2 searches (alphas near initialisation)",
           "runs": runs, "mean_test_accuracy": {k: _mean(v) for k, v in acc.items()},
           "std_test_accuracy": {k: _std(v) for k, v in acc.items()},
           "binary_minus_real_points": 100 * (_mean(acc["searched_binary"]) - _mean(acc["real_twin"])),
           "searched_minus_random_points": 100 * (_mean(acc["searched_binary"]) - _mean(acc["random_cell_binary"])),
           "record": RECORD, "params": best["params"],
           "meets_record": max(acc["searched_binary"]) >= RECORD["accuracy"] and best["params"] <= RECORD["params"],
           "equal_epochs": True, "epochs_per_stage": a.epochs, "real_twin_epochs": 2 * a.epochs,
           "training_images": len(tr), "test_images": len(te), "seeds": a.seeds,
           "command": "python benchmarks/bats_headline.py " + " ".join(sys.argv[1:]),
           "loadavg_start": load0, "loadavg_end": os.getloadavg()}
    text = json.dumps(res, indent=2, default=str)
    print(text)
    if a.write:
        (REPO / "docs" / "results" / "bats_headline.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
