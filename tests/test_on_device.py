"""Every method, the trainer, evaluation and export on the device pytest's ``--device`` names (cpu by default).

In the default suite these run on the CPU at toy size, so they cannot rot; ``benchmarks/gpu_check.py`` runs the
same file with ``--device cuda`` on a GPU machine. Each test checks what must hold on any device: the run ends,
its numbers are finite, its model and checkpoint tensors come back, and a precision other than fp32 changes
what was computed (so a method that silently ignores ``--precision`` on this device fails).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from nasforge import api
from test_hurricane import TINY as MOBILE_TINY, fake_cache  # noqa: F401  (fixture)
from test_vit import SMALL as VIT_SMALL

TINY = {"dataset": "synthetic", "subset": 64, "threads": 1, "batch_size": 32, "seed": 5, "test_subset": 64}

# one tiny search per method (the one-shot methods and a multi-trial method whose trials train on the device)
SEARCHES = {
    "darts": {"space": "nb201", "method": "darts", "space_options": {"C": 4, "N": 1}, "budget": {"epochs": 1},
              "hparams": {"hessian_every": 0}},
    "single-darts": {"space": "nb201", "method": "single-darts", "space_options": {"C": 4, "N": 1},
                     "budget": {"epochs": 1}},
    "manas": {"space": "nb201", "method": "manas", "space_options": {"C": 4, "N": 1}, "budget": {"epochs": 1}},
    "random-ws": {"space": "nb201", "method": "random-ws", "space_options": {"C": 4, "N": 1},
                  "budget": {"epochs": 1}},
    "bats": {"space": "bats", "method": "bats", "space_options": {"C": 2, "layers": 3, "groups": 1,
             "shuffle_groups": 2}, "budget": {"epochs": 1}, "hparams": {"gap_batches": 1, "eval_batches": 1}},
    "hurricane": {"space": "mobile", "method": "hurricane", "space_options": MOBILE_TINY, "budget": {"epochs": 2},
                  "hparams": {"population": 4, "sample_size": 2, "evaluations": 4, "bn_batches": 1,
                              "eval_batches": 1}},
    "vitas": {"space": "vit", "method": "vitas", "space_options": VIT_SMALL, "budget": {"epochs": 1},
              "hparams": {"budget": 0.3, "window_low": 0.5, "candidates": 4, "population": 3, "sample_size": 2,
                          "eval_images": 32, "eval_batch": 32, "calib_samples": 100}},
    "evolution": {"space": "nb201", "method": "evolution", "estimator": "scratch", "space_options": {"C": 4, "N": 1},
                  "budget": {"trials": 2}, "estimator_options": {"train": {"epochs": 1, "batch_size": 32}}},
    # multi-objective: trials train on the device, params/FLOPs of each candidate are counted on the host
    "nsga2": {"space": "nb201", "method": "nsga2", "estimator": "scratch", "space_options": {"C": 4, "N": 1},
              "budget": {"trials": 2}, "estimator_options": {"train": {"epochs": 1, "batch_size": 32}},
              "hparams": {"objectives": ["accuracy", "params", "flops"], "population": 2}},
}


def _finite_numbers(records: list[dict]) -> list[float]:
    return [v for r in records for k, v in r.items() if isinstance(v, float) and k.endswith(("loss", "acc"))]


@pytest.mark.parametrize("method", list(SEARCHES))
def test_every_method_searches_on_the_device(device, method, tmp_path, fake_cache):
    cfg = {**TINY, **SEARCHES[method], "device": str(device)}
    if "estimator" in cfg:  # multi-trial: trials take their batch from the estimator options, not the supernet's
        cfg.pop("batch_size")
    if method == "hurricane":
        cfg["hparams"] = {**cfg["hparams"], "lut_cache": str(fake_cache)}
    res = api.search(cfg, run_root=tmp_path, run_name=method)
    run = Path(res["run_dir"])
    assert res["arch"] is not None
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    numbers = _finite_numbers(records)
    assert numbers and all(math.isfinite(v) for v in numbers), method
    assert json.loads((run / "arch.json").read_text())["arch"] == json.loads(json.dumps(res["arch"]))


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_evaluation_and_export_on_the_device(device, precision, tmp_path):
    if precision == "fp16" and device.type == "cpu":
        pytest.skip("fp16 autocast on the CPU is covered by tests/test_devices.py")
    cfg = {"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 64, "threads": 1,
           "device": str(device), "precision": precision, "train": {"epochs": 1, "batch_size": 32, "seed": 5}}
    res = api.train(cfg, run_root=tmp_path, run_name=f"t-{precision}")
    acc = res["test_accuracy"]
    assert 0.0 <= acc <= 1.0 and math.isfinite(res["history"][-1]["train_loss"])
    again = api.evaluate(res["run_dir"], test_subset=64, device=str(device), precision=precision)
    assert again["device"] == str(device) and again["images"] == 64
    if precision == "fp32":  # the trained model, reloaded, scores what training measured
        assert again["accuracy"] == pytest.approx(acc, abs=1e-6)
    out = tmp_path / f"m-{precision}.onnx"
    onnx = api.export(res["run_dir"], out, check_images=16, device=str(device))
    assert out.is_file() and 0.0 <= onnx["onnx_accuracy_raw_pixels"] <= 1.0


def test_reduced_precision_changes_what_a_search_computes_on_the_device(device, tmp_path):
    """bf16 (and on CUDA fp16) autocast must reach the supernet: the first epoch's loss differs from fp32's."""
    base = {**TINY, **SEARCHES["single-darts"], "device": str(device)}
    losses = {}
    for precision in ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else []):
        res = api.search({**base, "precision": precision}, run_root=tmp_path, run_name=precision)
        first = next(json.loads(line) for line in Path(res["run_dir"], "metrics.jsonl").read_text().splitlines()
                     if json.loads(line).get("event") == "epoch")
        losses[precision] = first["train_loss"]
    assert all(math.isfinite(v) for v in losses.values())
    assert losses["bf16"] != losses["fp32"]


def test_a_checkpoint_written_on_the_device_loads_on_the_host(device, tmp_path):
    res = api.search({**TINY, **SEARCHES["single-darts"], "device": str(device)}, run_root=tmp_path, run_name="ck")
    state = torch.load(Path(res["run_dir"]) / "checkpoint.pt", map_location="cpu", weights_only=False)
    tensors = [v for v in state["supernet"].values() if torch.is_tensor(v)]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
