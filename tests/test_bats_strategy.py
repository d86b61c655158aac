"""The `bats` strategy, the two-stage binary training recipe and their CLI (spec B0 + the issue's "Done when")."""
import json

import pytest
import torch

from nasforge import api
from nasforge.data.datasets import SearchData, synthetic
from nasforge.errors import ConfigError
from nasforge.ops.binary import binarization_state
from nasforge.spaces.bats import BatsSpace
from nasforge.engine.base import Budget, SearchContext
from nasforge.strategies.bats import BATS
from nasforge.training import kd_loss

TINY = {"C": 2, "layers": 3, "groups": 1, "shuffle_groups": 2}
BASE = {"space": "bats", "space_options": TINY, "method": "bats", "dataset": "synthetic", "subset": 64,
        "batch_size": 32, "budget": {"epochs": 2}, "hparams": {"eval_batches": 1, "gap_batches": 1}}


def _epochs(run_dir):
    return [json.loads(l) for l in open(f"{run_dir}/metrics.jsonl") if '"event": "epoch"' in l]


def test_a_search_step_updates_alphas_and_keeps_them_finite():
    torch.manual_seed(0)
    space = BatsSpace(**TINY)
    train, _ = synthetic(n_train=64, n_test=8)
    ctx = SearchContext(space=space, budget=Budget(epochs=1), data=SearchData(train, train, 16))
    strat = BATS()
    sn = space.supernet()
    strat._make_weight_optimizer(sn, ctx, 1)
    strat.setup(sn, ctx)
    assert binarization_state(sn) == {"act": True, "weight": False}  # 32W/1A by default
    assert sn.temperature == 0.2
    before = {g: a.detach().clone() for g, a in sn.alphas.items()}
    x, y = next(iter(ctx.data.loaders(0)[0]))
    stats = strat.step(sn, (x, y), (x, y), ctx)
    for g, a in sn.alphas.items():
        assert torch.isfinite(a).all() and not torch.equal(a, before[g])
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    strat1 = BATS(search_weight_bits=1)
    strat1._make_weight_optimizer(sn, ctx, 1)
    strat1.setup(sn, ctx)
    assert binarization_state(sn) == {"act": True, "weight": True}


def test_temperature_is_constant_by_default_and_anneals_when_asked():
    assert [BATS().temperature_at(e, 5) for e in range(5)] == [0.2] * 5
    t = [BATS(anneal=True, temperature=1.0, temperature_min=0.1).temperature_at(e, 5) for e in range(5)]
    assert t[0] == pytest.approx(1.0) and t[-1] == pytest.approx(0.1) and all(a > b for a, b in zip(t, t[1:]))


def test_kd_loss_is_zero_for_equal_logits_and_positive_otherwise():
    s = torch.randn(4, 10)
    assert kd_loss(s, s, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(s, torch.randn(4, 10), 2.0).item() > 0


def test_search_logs_mixing_entropy_and_gap_and_resumes_exactly(tmp_path, crash, same_supernet):
    cfg = {**BASE, "budget": {"epochs": 2}}
    ref = api.search(cfg, run_root=tmp_path / "a")
    epochs = _epochs(ref["run_dir"])
    assert [e["epoch"] for e in epochs] == [1, 2]
    for e in epochs:
        assert e["temperature"] == 0.2 and 0 < e["mixing_entropy_normalised"] <= 1.0 + 1e-6
        assert -1 <= e["discretization_gap"] <= 1 and "supernet_val_accuracy" in e and "alpha_softmax" in e
    # sharpening by T: the entropy of softmax(alpha/T) is never above that of softmax(alpha)
    assert epochs[-1]["mixing_entropy_normalised"] <= epochs[-1]["alpha_entropy_t1_normalised"] + 1e-9

    from nasforge.engine.oneshot import OneShotStrategy

    # after epoch 2's diagnostics, before its checkpoint: resumes from epoch 1
    with crash(OneShotStrategy, "_diagnostics", at=2, exc=KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        api.search(cfg, run_root=tmp_path / "b", run_name="r")
    resumed = api.search(resume=tmp_path / "b" / "r")
    same_supernet(ref["run_dir"], tmp_path / "b" / "r")
    assert resumed["arch"] == ref["arch"]
    assert [e["epoch"] for e in _epochs(resumed["run_dir"])] == [1, 2]


def test_two_stage_training_with_a_teacher_resumes_each_stage_exactly(tmp_path, crash):
    teacher = api.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 32,
                         "train": {"epochs": 1, "batch_size": 32}}, run_root=tmp_path, run_name="teacher")
    arch = {"space": "bats", "space_config": TINY, "arch": BatsSpace(**TINY).sample(__import__("random").Random(0))}
    cfg = {"arch": arch, "dataset": "synthetic", "subset": 64, "test_subset": 32,
           "train": {"epochs": 2, "batch_size": 32}, "teacher": teacher["run_dir"]}
    ref = api.train(cfg, run_root=tmp_path, run_name="ref")
    assert [s["binarization"] for s in ref["stages"]] == [{"act": True, "weight": False}, {"act": True, "weight": True}]
    assert ref["stages"][0]["bops"] == 0 and ref["stages"][1]["bops"] > 0 == ref["stages"][0]["bops"]
    assert ref["bops"] == ref["stages"][1]["bops"] and ref["ops"] == pytest.approx(ref["flops"] + ref["bops"] / 64)
    assert ref["test_accuracy"] == ref["stages"][1]["test_accuracy"]
    stored = json.load(open(f"{ref['run_dir']}/config.json"))["train"]
    assert stored["optimizer"] == "adam" and stored["lr"] == 1e-3  # binary defaults under the user's settings

    from nasforge.training import engine

    # stage 1 ran 2 epochs; stage 2 dies after its first epoch's training (before evaluating it)
    with crash(engine, "evaluate", at=3, exc=KeyboardInterrupt, before=True), pytest.raises(KeyboardInterrupt):
        api.train(cfg, run_root=tmp_path, run_name="cut")
    resumed = api.train(resume=tmp_path / "cut")
    a = torch.load(ref["model_file"], weights_only=False)["model"]
    b = torch.load(resumed["model_file"], weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["stages"] == [{**s, "wall_s": r["wall_s"]} for s, r in zip(ref["stages"], resumed["stages"])]


def test_cli_search_then_train_with_and_without_teacher(tmp_path, cli_ok):
    common = ["--dataset", "synthetic", "--subset", "64", "--batch-size", "32", "--quiet", "--out", str(tmp_path)]
    out = json.loads(cli_ok("search", "--space", "bats", "--method", "bats", "--epochs", "1", "--space-opt", "C=2",
                            "--space-opt", "layers=3", "--space-opt", "groups=1", "--space-opt", "shuffle_groups=2",
                            "--set", "eval_batches=1", "--set", "gap_batches=1", "--name", "s", *common))
    assert out["space"] == "bats"
    arch_file = out["arch_file"]
    train_common = ["--dataset", "synthetic", "--subset", "64", "--test-subset", "32", "--epochs", "1", "--quiet",
                    "--out", str(tmp_path), "--batch-size", "32"]
    cli_ok("train", "--arch", "baseline", "--name", "t", *train_common)
    for name, extra in (("plain", []), ("kd", ["--teacher", str(tmp_path / "t")])):
        res = json.loads(cli_ok("train", "--arch", arch_file, "--name", name, *train_common, *extra))
        assert len(res["stages"]) == 2 and res["bops"] > 0 and res["ops"] > res["flops"] > 0
    assert json.load(open(tmp_path / "kd" / "config.json"))["teacher"] == str(tmp_path / "t")


@pytest.mark.parametrize("args,needle", [
    (["search", "--space", "bats", "--method", "bats", "--epochs", "1", "--space-opt", "C=12", "--space-opt",
      "groups=5"], "groups G=5 must divide the channel count C=12"),
    (["search", "--space", "nb201", "--method", "bats", "--epochs", "1"],
     "strategy 'bats' searches binary networks, but space 'nb201' is real-valued"),
    (["search", "--space", "darts", "--method", "bats", "--epochs", "1"], "space 'darts' is real-valued"),
    (["search", "--space", "bats", "--method", "bats", "--epochs", "1", "--set", "search_weight_bits=8"],
     "search_weight_bits must be one of 32, 1; got 8"),
    (["train", "--arch", "baseline", "--teacher", "/nonexistent/run"], "is not a nasforge run directory"),
])
def test_bad_combinations_are_one_line_exit_2(tmp_path, run_cli, args, needle):
    code, _, err = run_cli(*args, "--dataset", "synthetic", "--out", str(tmp_path / "runs"))
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # rejected before a run directory exists


def test_teacher_of_another_dataset_is_rejected_before_a_run_directory(tmp_path, run_cli):
    api.train({"arch": "baseline", "dataset": "synthetic", "subset": 32, "test_subset": 16,
               "train": {"epochs": 1, "batch_size": 32}}, run_root=tmp_path, run_name="teacher")
    cfg = json.load(open(tmp_path / "teacher" / "config.json"))
    cfg["dataset"] = "mnist"  # pretend the teacher was trained on MNIST
    json.dump(cfg, open(tmp_path / "teacher" / "config.json", "w"))
    code, _, err = run_cli("search", "--space", "bats", "--method", "bats", "--epochs", "1", "--dataset",
                           "synthetic", "--teacher", str(tmp_path / "teacher"), "--out", str(tmp_path / "runs"))
    assert code == 2 and "was trained on 'mnist', but this run uses 'synthetic'" in err, err
    assert not (tmp_path / "runs").exists()


def test_method_darts_runs_on_the_naive_binary_darts_space(tmp_path):
    res = api.search({**BASE, "space": "darts", "space_options": {"C": 2, "layers": 3, "binary": "naive"},
                      "method": "darts", "budget": {"epochs": 1}, "hparams": {"hessian_every": 0}},
                     run_root=tmp_path)
    assert "sep_conv_3x3" in json.dumps(res["arch"]) or "dil_conv" in json.dumps(res["arch"]) or res["arch"]
    with pytest.raises(ConfigError, match="is real-valued"):
        BATS().prepare(__import__("nasforge.spaces.darts", fromlist=["DartsSpace"]).DartsSpace())


@pytest.mark.parametrize("kd_alpha", [False, True])
def test_fp16_loss_scaling_covers_the_distillation_steps(tiny_data, kd_alpha):
    """Under fp16 the scaled loss (x 65536) is what gradients are taken of, and the optimisers unscale them:
    a step with the fp16 scaler must move weights and alphas as the fp32 step does (here without autocast, so
    only the scaling differs). The distillation steps (a teacher; kd_alpha for the alpha step) are included."""
    import copy

    from nasforge.accel import Precision

    train, _ = tiny_data
    space = BatsSpace(**TINY)
    ctx = SearchContext(space=space, budget=Budget(epochs=1), data=SearchData(train, train, 16))
    torch.manual_seed(0)
    ctx.teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))  # any fixed net will do
    x, y = next(iter(ctx.data.loaders(0)[0]))
    sn0 = space.supernet()
    after = {}
    for precision in ("fp32", "fp16"):
        sn = copy.deepcopy(sn0)
        strat = BATS(w_optimizer="sgd", kd_alpha=kd_alpha)
        strat._make_weight_optimizer(sn, ctx, 1)
        strat.setup(sn, ctx)
        strat.prec = Precision(torch.device("cpu"), precision)
        strat.step(sn, (x, y), (x, y), ctx)
        after[precision] = {k: v.detach().clone() for k, v in sn.state_dict().items()}
    for k, v in after["fp32"].items():
        assert torch.allclose(after["fp16"][k], v, rtol=1e-4, atol=1e-6), k
