"""Devices and precision: resolution of device strings, one-line errors before a run directory exists,
device-independent checkpoints, bf16 autocast on CPU, and loaders that produce batches on the device."""
from __future__ import annotations

import json

import pytest
import torch

from nasforge import api
from nasforge.accel import Precision, check_precision, resolve_device, rng_state, set_rng_state
from nasforge.data.loader import Loader
from nasforge.errors import ConfigError

HAS_CUDA = torch.cuda.is_available()
TINY = {"space": "nb201", "space_options": {"C": 4, "N": 1}, "dataset": "synthetic", "subset": 128,
        "batch_size": 32, "budget": {"epochs": 2}, "hparams": {"hessian_every": 0, "eval_batches": 1}}


def test_resolve_device_spellings():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if HAS_CUDA else ("mps" if torch.backends.mps.is_available() else "cpu"))
    assert resolve_device(None) == auto
    with pytest.raises(ConfigError, match="unknown device 'gpu'; choose from: auto, cpu, cuda, cuda:N, mps"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match="not available"):
        resolve_device(f"cuda:{torch.cuda.device_count() + 7}")
    if not HAS_CUDA:
        with pytest.raises(ConfigError, match="device 'cuda' is not available"):
            resolve_device("cuda")


def test_precision_names():
    cpu = torch.device("cpu")
    assert check_precision("bf16", cpu) == "bf16"
    with pytest.raises(ConfigError, match="unknown precision 'fp8'; choose from: auto, fp32, bf16, fp16"):
        check_precision("fp8", cpu)
    assert Precision(cpu, "fp32").state_dict() == {}
    assert Precision(cpu, "fp16").scaler.is_enabled()


@pytest.mark.skipif(HAS_CUDA, reason="needs a machine without the CUDA device asked for")
@pytest.mark.parametrize("command", [
    ["search", "--method", "single-darts", "--epochs", "1", "--dataset", "synthetic", "--device", "cuda"],
    ["search", "--method", "single-darts", "--epochs", "1", "--dataset", "synthetic", "--device", "cuda:7"],
    ["train", "--arch", "baseline", "--dataset", "synthetic", "--epochs", "1", "--device", "cuda"],
    ["search", "--method", "single-darts", "--epochs", "1", "--dataset", "synthetic", "--precision", "fp8"],
])
def test_unavailable_device_is_one_line_exit_2_before_a_run_dir(run_cli, tmp_path, command):
    code, out, err = run_cli(*command, "--out", str(tmp_path / "runs"))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "not available" in err or "precision must be one of auto, fp32, bf16, fp16; got 'fp8'" in err
    assert not (tmp_path / "runs").exists()  # refused before any run directory was created


@pytest.mark.skipif(HAS_CUDA, reason="needs a machine without CUDA")
def test_evaluate_and_export_check_the_device(run_cli, tmp_path):
    code, _, err = run_cli("evaluate", str(tmp_path), "--device", "cuda:3")
    assert code == 2 and "not available" in err and len(err.strip().splitlines()) == 1


def test_loader_produces_batches_on_its_device_and_the_same_batches_everywhere(tiny_data):
    train, _ = tiny_data
    kw = dict(shuffle=True, seed=3, crop_padding=2, hflip=True, cutout=4)
    ref = list(Loader(train, 64, **kw))
    on_cpu = list(Loader(train, 64, device=torch.device("cpu"), **kw))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(ref, on_cpu))
    if HAS_CUDA:
        on_gpu = list(Loader(train, 64, device=torch.device("cuda"), **kw))
        assert on_gpu[0][0].device.type == "cuda"
        assert all(torch.allclose(a[0], b[0].cpu()) and torch.equal(a[1], b[1].cpu()) for a, b in zip(ref, on_gpu))


def test_loader_shards_are_the_global_batch(tiny_data):
    """Two ranks' shards, concatenated, are exactly the one-process batch (order and augmentation)."""
    train, _ = tiny_data
    kw = dict(shuffle=True, seed=5, crop_padding=2, hflip=True, cutout=6)
    full = list(Loader(train, 64, **kw))
    shards = [list(Loader(train, 64, rank=r, world_size=2, **kw)) for r in range(2)]
    assert len(full) == len(shards[0]) == len(shards[1])
    for (x, y), (x0, y0), (x1, y1) in zip(full, *shards):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    with pytest.raises(ConfigError, match="smaller than the number of processes"):
        Loader(train, 2, world_size=4, rank=0)


def test_rng_state_round_trip_and_old_format():
    dev = torch.device("cpu")
    torch.manual_seed(1)
    state = rng_state(dev)
    a = torch.rand(3)
    set_rng_state(state, dev)
    assert torch.equal(torch.rand(3), a)
    set_rng_state(state["cpu"], dev)  # checkpoints written before device RNG states existed
    assert torch.equal(torch.rand(3), a)
    set_rng_state({**state, "cuda": torch.zeros(8, dtype=torch.uint8)}, dev)  # a GPU run resumed on the CPU
    assert torch.equal(torch.rand(3), a)


def test_bf16_autocast_runs_a_search_step_on_cpu(tmp_path):
    cfg = {**TINY, "method": "single-darts", "precision": "bf16", "device": "cpu", "budget": {"epochs": 1}}
    res = api.search(cfg, run_root=tmp_path)
    ck = torch.load(f"{res['run_dir']}/checkpoint.pt", weights_only=False)
    assert ck["supernet"]["alphas.cell"].dtype == torch.float32  # alphas stay fp32 under autocast
    assert torch.isfinite(ck["supernet"]["alphas.cell"]).all()
    fp32 = api.search({**cfg, "precision": "fp32"}, run_root=tmp_path / "fp32")
    ck32 = torch.load(f"{fp32['run_dir']}/checkpoint.pt", weights_only=False)
    # bf16 really ran in lower precision: the alphas moved differently, but not far
    diff = (ck["supernet"]["alphas.cell"] - ck32["supernet"]["alphas.cell"]).abs().max().item()
    assert 0 < diff < 1e-2


def test_fp16_scaled_training_step_on_cpu():
    from nasforge.data.datasets import synthetic
    from nasforge.training import TrainConfig, train_model

    # fp16 convolutions on a CPU run on slow reference kernels: a 4-channel network and two steps are enough
    # to exercise autocast + GradScaler end to end
    train, test = synthetic(n_train=128, n_test=32)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))
    before = [p.detach().clone() for p in model.parameters()]
    out = train_model(model, train, test, TrainConfig(epochs=1, batch_size=64, seed=0), device="cpu",
                      precision="fp16")
    assert out["final"]["test_accuracy"] is not None and all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the scaled steps were taken


def test_checkpoint_written_with_one_device_string_resumes_with_another(tmp_path, crash):
    """A run started with device 'auto' (or a GPU) resumes with --device cpu and ends as the uninterrupted
    run does; the checkpoint's tensors load through map_location whatever device wrote them."""
    cfg = {**TINY, "method": "single-darts", "device": "auto", "budget": {"epochs": 3}}
    ref = api.search({**cfg, "device": "cpu"}, run_root=tmp_path / "ref")

    from nasforge.engine.oneshot import OneShotStrategy

    # dies during epoch 2, after epoch 1's checkpoint
    with crash(OneShotStrategy, "_diagnostics", at=2, exc=KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        api.search(cfg, run_root=tmp_path / "run", run_name="r")
    run = tmp_path / "run" / "r"
    ck = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == 1 and ck["device"] == str(resolve_device("auto")) and "cpu" in ck["rng"]
    with pytest.raises(ConfigError, match="only device, threads may change"):
        api.search({"seed": 5}, resume=run)
    res = api.search({"device": "cpu"}, resume=run)
    assert res["arch"] == ref["arch"]
    a = torch.load(run / "checkpoint.pt", weights_only=False)["supernet"]["alphas.cell"]
    b = torch.load(f"{ref['run_dir']}/checkpoint.pt", weights_only=False)["supernet"]["alphas.cell"]
    if resolve_device("auto").type == "cpu":
        assert torch.equal(a, b)
    else:  # started on a GPU, finished on the CPU: same run, float differences of the kernels only
        assert torch.allclose(a, b, atol=1e-3)
    assert json.loads((run / "config.json").read_text())["device"] == "auto"  # the stored config is kept


def test_trained_model_evaluates_and_exports_from_any_device(tmp_path):
    res = api.train({"arch": "baseline", "dataset": "synthetic", "subset": 256, "test_subset": 64,
                     "train": {"epochs": 1, "batch_size": 64}, "device": "auto"}, run_root=tmp_path)
    state = torch.load(res["model_file"], weights_only=False)
    assert all(v.device.type == "cpu" for v in state["model"].values())  # model files are device-free
    ev = api.evaluate(res["run_dir"], test_subset=64, device="cpu")
    assert ev["device"] == "cpu" and 0 <= ev["accuracy"] <= 1
    ex = api.export(res["run_dir"], tmp_path / "m.onnx")
    assert ex["max_abs_diff"] < 1e-4


def test_ray_gpus_per_trial_is_validated_and_trials_carry_their_device():
    from nasforge.api import _trial_device
    from nasforge.estimators.scratch import ScratchEstimator
    from nasforge.runs.executors import RayExecutor, make_executor
    from nasforge.runs.journal import spec_key
    from nasforge.spaces.nb201 import NB201Space

    assert RayExecutor(workers=2, gpus_per_trial=0.5).gpus_per_trial == 0.5
    for bad in (-1, 1.5, "one"):
        with pytest.raises(ConfigError, match="gpus_per_trial"):
            make_executor("ray", gpus_per_trial=bad)
    cfg = {"executor": "ray", "executor_options": {"gpus_per_trial": 0.25}}
    assert _trial_device(cfg, torch.device("cpu")) == "cuda"  # Ray's CUDA_VISIBLE_DEVICES picks the GPU
    assert _trial_device({**cfg, "executor_options": {}}, torch.device("cpu")) == "cpu"
    assert _trial_device({"executor": "local", "executor_options": {}}, torch.device("cpu")) == "cpu"
    est = ScratchEstimator(data={"dataset": "synthetic"}, device="cpu")
    space = NB201Space()
    arch = space.sample(__import__("random").Random(0))
    spec = est.trial_spec(space, arch, seed=0)
    assert spec["device"] == "cpu"
    # where a trial runs is not part of what it computes: the journal finds it again on another device
    assert spec_key(spec) == spec_key({**spec, "device": "cuda:1"})
