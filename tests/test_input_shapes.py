"""No default assumes Fashion-MNIST (issue 24): every registered space builds and trains with its default
options, and every method searches end to end, on 1- or 3-channel inputs of 28, 32 or 20 pixels with 2 to
100 classes. Where a default cannot fit an input (the vit patch sizes) it is derived from the input and
recorded in the space's config."""
from __future__ import annotations

import json
import random

import pytest
import torch

from nasforge import api
from nasforge.building import import_components, make_space
from nasforge.data.datasets import synthetic
from nasforge.errors import ConfigError
from nasforge.registry import SPACES, STRATEGIES

import_components()

#: (channels, resolution, classes): Fashion-MNIST's shape, CIFAR-100's, and a small two-class image folder's
SHAPES = [(1, 28, 10), (3, 32, 100), (3, 20, 2)]
SHAPE_IDS = ["1x28x28-10", "3x32x32-100", "3x20x20-2"]


def test_every_registered_space_is_covered():
    assert set(SPACES.names()) == {"nb201", "darts", "pnas", "macro", "mobile", "fbnet", "bats", "vit"}, \
        "a new space: add it to the shape tests (TINY below)"


@pytest.mark.parametrize("shape", SHAPES + [(3, 40, 5), (1, 64, 3), (3, 8, 2)],
                         ids=SHAPE_IDS + ["3x40x40-5", "1x64x64-3", "3x8x8-2"])
@pytest.mark.parametrize("name", sorted(SPACES.names()))
def test_space_defaults_build_and_train_at_any_input(name, shape):
    """With its DEFAULT options, each space's sampled network (and supernet, where it has one) maps
    [2, C, R, R] to [2, classes] and back-propagates finite gradients into every trainable parameter."""
    c, r, k = shape
    data, _ = synthetic(n_train=2, n_test=1, channels=c, resolution=r, num_classes=k)
    space = make_space(name, data, {})
    x = data.images.float() / 255
    torch.manual_seed(0)
    model = space.build(space.sample(random.Random(0)))
    model.train()
    out = model(x)
    assert out.shape == (2, k)
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    if space.supernet_kind in ("cell", "single-path"):
        net = space.supernet()
        if hasattr(net, "random_path"):  # single-path supernets run one sampled path
            net.set_path(net.random_path(torch.Generator().manual_seed(0)))  # host: path indices
        out = net(x)
        assert out.shape == (2, k) and torch.isfinite(out).all()
    assert space.config["in_channels"] == c and space.config["resolution"] == r and space.config["num_classes"] == k


@pytest.mark.parametrize("resolution,expected", [(28, [4, 7]), (32, [4, 8]), (20, [4, 5]), (40, [5, 10]),
                                                 (64, [8, 16]), (29, [1])])
def test_vit_patch_sizes_are_derived_from_the_input_and_recorded(resolution, expected):
    data, _ = synthetic(n_train=1, n_test=1, resolution=resolution)
    space = make_space("vit", data, {})
    assert space.patch_sizes == expected and space.config["patch_sizes"] == expected
    assert all(resolution % p == 0 for p in space.patch_sizes)
    # an explicit choice is kept, and one that does not fit is still refused in one line
    assert make_space("vit", data, {"patch_sizes": [resolution]}).patch_sizes == [resolution]
    if resolution % 3:
        with pytest.raises(ConfigError, match="does not divide"):
            make_space("vit", data, {"patch_sizes": [3]})


# -- every method end to end -----------------------------------------------------------------------------------
TINY = {  # smallest widths each space allows, so 33 searches stay within seconds each
    "nb201": {"C": 4, "N": 1},
    "darts": {"C": 2, "layers": 3},
    "pnas": {"ops": "reduced", "blocks": 2, "C": 4},
    "mobile": {"widths": [8, 8, 16, 16], "strides": [1, 2, 1, 2], "stem": 8, "head": 16},
    "bats": {"C": 2, "layers": 3, "groups": 1, "shuffle_groups": 2},
    "vit": {"embed_dim": 16, "qkv_dim": 16, "mlp_dim": 32, "depth": 2},
}
MULTI = {"estimator": "scratch", "budget": {"trials": 2}, "estimator_options": {"train": {"epochs": 1}}}
METHODS = {  # method -> (space, config)
    "darts": ("nb201", {"budget": {"epochs": 1}, "hparams": {"hessian_every": 0}}),
    "single-darts": ("darts", {"budget": {"epochs": 1}, "hparams": {"hessian_every": 0}}),
    "manas": ("nb201", {"budget": {"epochs": 1}}),
    "manas-ls": ("nb201", {"budget": {"epochs": 1}}),
    "random-ws": ("nb201", {"budget": {"epochs": 1}}),
    "bats": ("bats", {"budget": {"epochs": 1}, "hparams": {"gap_batches": 1, "eval_batches": 1}}),
    "hurricane": ("mobile", {"budget": {"epochs": 2}, "hparams": {"population": 4, "sample_size": 2,
                                                                 "evaluations": 4, "bn_batches": 1,
                                                                 "eval_batches": 1}}),
    "vitas": ("vit", {"budget": {"epochs": 1}, "hparams": {"budget": 0.3, "window_low": 0.5, "candidates": 4,
                                                           "population": 3, "sample_size": 2, "eval_images": 32,
                                                           "eval_batch": 32, "calib_samples": 100}}),
    "random": ("nb201", MULTI),
    "evolution": ("nb201", {**MULTI, "hparams": {"population": 2, "sample_size": 2}}),
    "pnas": ("pnas", {**MULTI, "hparams": {"K": 2}}),
    "nsga2": ("nb201", {**MULTI, "hparams": {"population": 2, "objectives": ["accuracy", "params", "flops"]}}),
    "bananas": ("nb201", {**MULTI, "budget": {"trials": 3}, "hparams": {"num_init": 2, "batch": 1, "steps": 5}}),
    "local-search": ("nb201", {**MULTI, "hparams": {"num_init": 1}}),
    # multi-fidelity: two rungs (1 and 2 epochs), a budget of one full (2-epoch) evaluation
    **{m: ("nb201", {**MULTI, "budget": {"trials": 1}, "estimator_options": {"train": {"epochs": 2}},
                     "hparams": {"eta": 2}}) for m in ("sh", "hyperband", "asha")},
}


RETRAIN = ("bats", "vitas", "single-darts", "hurricane")


def test_every_registered_method_is_covered():
    assert set(METHODS) >= set(STRATEGIES.names()), \
        f"a new method: add it to METHODS ({sorted(set(STRATEGIES.names()) - set(METHODS))})"


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_searches_any_input(method, shape, tmp_path, monkeypatch):
    """A tiny search through the API on synthetic data of each shape: it finishes, its architecture builds for
    that shape, and the run records the input it was sized for."""
    from test_hurricane import fake_measure

    monkeypatch.setattr("nasforge.hardware.lut.measure", fake_measure)  # hurricane's LUT: no clock
    c, r, k = shape
    space, extra = METHODS[method]
    cfg = {"space": space, "method": method, "space_options": TINY.get(space, {}), "dataset": "synthetic",
           "dataset_options": {"channels": c, "resolution": r, "num_classes": k, "n_train": 96, "n_test": 16},
           "subset": 64, "threads": 1, "seed": 1, **({} if "estimator" in extra else {"batch_size": 32}), **extra}
    if method == "hurricane":
        cfg["hparams"] = {**cfg["hparams"], "lut_cache": str(tmp_path / "lut.json")}
    if method in RETRAIN:  # the retraining recipes too (binary two-stage, ViT AdamW, DARTS cells)
        cfg.update(retrain={"epochs": 1, "batch_size": 32}, retrain_subset=32, test_subset=16)
    res = api.search(cfg, run_root=tmp_path, run_name="r")
    if method in RETRAIN:
        assert 0.0 <= res["retrain"]["test_accuracy"] <= 1.0
    arch_file = json.loads((tmp_path / "r" / "arch.json").read_text())
    sc = arch_file["space_config"]
    assert (sc["in_channels"], sc["resolution"], sc["num_classes"]) == (c, r, k)
    data, _ = synthetic(n_train=2, n_test=1, channels=c, resolution=r, num_classes=k)
    model, _ = api.build_model(arch_file, data)
    model.eval()
    assert model(data.images.float()).shape == (2, k)
    stored = json.loads((tmp_path / "r" / "config.json").read_text())
    assert stored["dataset_options"]["resolution"] == r  # the run can be resumed / retrained on the same input
    assert res["arch"] is not None


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_train_evaluate_export_read_the_input_of_their_run(shape, tmp_path, cli_ok):
    """`--data-opt` reaches the reader, the run stores it, and evaluate/export rebuild the model on that input."""
    c, r, k = shape
    opts = ["--data-opt", f"channels={c}", "--data-opt", f"resolution={r}", "--data-opt", f"num_classes={k}",
            "--data-opt", "n_train=64", "--data-opt", "n_test=16"]
    cli_ok("train", "--arch", "baseline", "--dataset", "synthetic", *opts, "--epochs", "1", "--batch-size", "32",
           "--threads", "1", "--quiet", "--name", "t", "--out", str(tmp_path))
    res = json.loads((tmp_path / "t" / "result.json").read_text())
    assert 0.0 <= res["test_accuracy"] <= 1.0
    ev = api.evaluate(tmp_path / "t", device="cpu")
    assert ev["images"] == 16 and ev["accuracy"] == pytest.approx(res["test_accuracy"])
    if shape == SHAPES[-1]:
        out = api.export(tmp_path / "t", tmp_path / "m.onnx", check_images=8)
        assert (tmp_path / "m.onnx").is_file() and out["argmax_agreement"] == 1.0


def test_unknown_or_bad_dataset_options_are_one_line(run_cli, tmp_path):
    for opt, msg in (("nosuch=1", "unknown option"), ("num_classes=1", "num_classes"),
                     ("resolution=abc", "resolution")):
        code, _, err = run_cli("train", "--arch", "baseline", "--dataset", "synthetic", "--data-opt", opt,
                               "--epochs", "1", "--out", str(tmp_path))
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli("search", "--dataset", "fashion-mnist", "--data-opt", "resolution=32", "--epochs", "1",
                           "--out", str(tmp_path))
    assert code == 2 and "unknown option" in err and "fashion-mnist" in err, err
    assert not any(tmp_path.iterdir())


def test_a_teacher_must_have_read_the_same_input(tmp_path, run_cli, capsys):
    api.train({"arch": "baseline", "dataset": "synthetic", "dataset_options": {"n_train": 32, "n_test": 8},
               "threads": 1, "train": {"epochs": 1}}, run_root=tmp_path, run_name="teacher")
    capsys.readouterr()  # the teacher's progress lines
    code, _, err = run_cli("train", "--arch", "baseline", "--dataset", "synthetic", "--data-opt", "channels=3",
                           "--data-opt", "n_train=32", "--data-opt", "n_test=8", "--epochs", "1",
                           "--teacher", str(tmp_path / "teacher"), "--out", str(tmp_path / "runs"))
    assert code == 2 and "a teacher must see the same inputs" in err and len(err.strip().splitlines()) == 1, err


def test_runs_from_before_dataset_options_read_image_folders_as_they_did():
    """Image folders used to be resized to 32x32 RGB; a run stored without `dataset_options` is rebuilt on
    that input (evaluate, export, resume), while a new run stores what it read."""
    from nasforge.data.datasets import stored_dataset_options

    assert stored_dataset_options({"dataset": "image-folder"}) == {"resolution": 32, "channels": 3}
    assert stored_dataset_options({"dataset": "image-folder", "dataset_options": {}}) == {}
    assert stored_dataset_options({"dataset": "fashion-mnist"}) == {}
