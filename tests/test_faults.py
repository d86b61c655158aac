"""Faults a demanding new user found by following README.md literally and then trying to break it (session
`faults`). Each test fails on the code before its fix: an option that was accepted and silently did nothing,
a budget that could never be used, a default that did not match the input the user named."""
from __future__ import annotations

import json

import pytest

from nasforge import api
from nasforge.errors import ConfigError

SYN = ("--dataset", "synthetic", "--threads", "1")


def _one_line(code, err, *words: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err


# -- --sync-bn where it would do nothing ------------------------------------------------------------------------------
def test_sync_bn_is_refused_where_it_would_do_nothing(run_cli, relaunches, tmp_path):
    runs = str(tmp_path / "runs")
    nb201 = ("--space", "nb201", "--space-opt", "C=4", "--space-opt", "N=1", "--subset", "64", "--out", runs)
    single = [  # one process: there is no other process to synchronise with
        ("search", "--method", "darts", "--epochs", "1", *nb201, *SYN, "--sync-bn"),
        ("search", "--method", "random", "--estimator", "proxy", "--trials", "2", *nb201, *SYN, "--sync-bn"),
        ("train", "--arch", "baseline", "--epochs", "1", "--subset", "64", "--out", runs, *SYN, "--sync-bn"),
        ("search", "--method", "darts", "--epochs", "1", *nb201, *SYN, "--sync-bn", "--nproc", "1"),
    ]
    for args in single:
        code, out, err = run_cli(*args)
        _one_line(code, err, "--sync-bn", "single process")
    no_bn = [  # several processes, but a ViT has LayerNorm only
        ("search", "--space", "vit", "--method", "vitas", "--epochs", "1", "--subset", "64", "--out", runs, *SYN,
         "--sync-bn", "--nproc", "2"),
        ("train", "--arch", "vit-uniform", "--epochs", "1", "--subset", "64", "--out", runs, *SYN, "--sync-bn",
         "--nproc", "2"),
    ]
    for args in no_bn:
        code, out, err = run_cli(*args)
        _one_line(code, err, "--sync-bn", "no BatchNorm")
    assert relaunches == []
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    # where it takes effect (several processes, BatchNorm present) it is accepted and passed on
    code, out, err = run_cli("train", "--arch", "baseline", "--epochs", "1", "--subset", "64", "--out", runs, *SYN,
                             "--sync-bn", "--nproc", "2")
    assert code == 0, err
    assert relaunches and "--sync-bn" in relaunches[0][1]


def test_sync_bn_under_torchrun_is_checked_against_the_world_size(monkeypatch, tmp_path):
    from nasforge.preflight import check_sync_bn, processes
    from nasforge.models import MODELS

    monkeypatch.setenv("WORLD_SIZE", "4")
    assert processes(1) == 4
    check_sync_bn({"sync_bn": True}, MODELS.get("baseline")(in_channels=1, num_classes=10), 1)  # accepted
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ConfigError, match="single process"):
        check_sync_bn({"sync_bn": True}, None, 1)
    check_sync_bn({"sync_bn": False}, None, 1)  # off: nothing to check


# -- a multi-trial budget the space cannot hold ------------------------------------------------------------------------
def test_a_trial_budget_larger_than_the_space_is_refused_before_work(run_cli, tmp_path):
    runs = tmp_path / "runs"
    for method in ("random", "evolution", "bananas", "local-search", "nsga2"):
        code, out, err = run_cli("search", "--space", "macro", "--method", method, "--estimator", "scratch",
                                 "--trials", "7000", *SYN, "--subset", "64", "--out", str(runs))
        _one_line(code, err, "--trials 7000", "6,561", "macro")
    assert not runs.exists() or not any(runs.iterdir())
    from nasforge.spaces.macro import MacroSpace
    from nasforge.spaces.nb201 import NB201Space
    from nasforge.spaces.darts import DartsSpace

    assert (MacroSpace().size(), NB201Space().size(), DartsSpace().size()) == (6561, 15625, (180 * 7 ** 8) ** 2)


def test_a_search_that_runs_out_of_architectures_says_so():
    from nasforge.engine.base import Budget, SearchContext
    from nasforge.spaces.pnas import PNASSpace
    from nasforge.strategies.random_search import RandomSearch
    from nasforge.surrogates.oracle import OracleEstimator

    ctx = SearchContext(space=PNASSpace(blocks=1, ops="reduced"), budget=Budget(trials=100), seed=0,
                        estimator=OracleEstimator(seed=0))
    result = RandomSearch(batch=16).search(ctx)
    assert result.metrics["trials"] == 36
    assert any("random stopped after 36 of the 100 trials" in w for w in result.metrics["warnings"]), result.metrics
    ctx = SearchContext(space=PNASSpace(blocks=1, ops="reduced"), budget=Budget(trials=36), seed=0,
                        estimator=OracleEstimator(seed=0))
    assert "warnings" not in RandomSearch(batch=16).search(ctx).metrics  # the budget was spent: nothing to say


class _StuckSampler:
    """A 2 x 2 categorical space whose sampler keeps drawing the same architecture (as uniform draws do, in
    effect, once only a few architectures of a space are left unscored)."""

    name = "stuck"

    def sample(self, rng):
        return "00"

    def validate(self, arch):
        return arch

    def categorical(self):
        from nasforge.spaces.base import CategoricalEncoding

        return CategoricalEncoding(positions=2, choices=2, encode=lambda a: [int(c) for c in a],
                                   decode=lambda c: "".join(str(int(i)) for i in c))

    def size(self):
        return 4


def test_random_proposals_reach_every_architecture_of_a_small_space():
    """A budget equal to the space's size is spent in full: `--method random --trials 6561 --space macro`
    stopped at 6,558 (1,000 draws in a row found only scored cells)."""
    import random
    from types import SimpleNamespace

    from nasforge.engine.multitrial import sample_distinct

    ctx = SimpleNamespace(space=_StuckSampler())
    got = sample_distinct(ctx, random.Random(0), set(), 10)
    assert sorted(got) == ["00", "01", "10", "11"]
    assert sample_distinct(ctx, random.Random(0), set(got), 1) == []


# -- latency tables for the input the search will read -----------------------------------------------------------------
def test_latency_show_and_build_take_the_input_shape_from_the_named_dataset(cli_ok, run_cli, tmp_path, monkeypatch):
    """`latency build/show` were fixed to 1x28x28 inputs with 10 classes (no --num-classes): a table for a
    CIFAR-100 search could not be built, and a table built with the defaults was silently never used by a search
    on other data. Now --dataset reads the shape from the data set the search will read, and the output names it."""
    from test_hurricane import TINY, fake_measure
    from nasforge.hardware.lut import LatencyCache, build_local_lut
    from nasforge.spaces.mobile import MobileSpace

    cache = tmp_path / "lut.json"
    space = MobileSpace(in_channels=3, resolution=32, num_classes=5, **TINY)
    build_local_lut(space, "local-cpu-1t", LatencyCache(cache, "local-cpu-1t"), measure_fn=fake_measure)
    opts = [a for k, v in TINY.items() for a in ("--space-opt", f"{k}={json.dumps(v).replace(' ', '')}")]
    base = ("latency", "show", "--device", "local-cpu-1t", "--space", "mobile", *opts, "--cache", str(cache), "--json")
    data = ("--dataset", "synthetic", "--data-opt", "channels=3", "--data-opt", "resolution=32",
            "--data-opt", "num_classes=5", "--data-opt", "n_train=20", "--data-opt", "n_test=10")
    shown = json.loads(cli_ok(*base, *data))
    assert shown["input"] == {"dataset": "synthetic", "in_channels": 3, "resolution": 32, "num_classes": 5}
    assert [layer["resolution"] for layer in shown["layers"]] == [s.resolution for s in space.layer_specs()]
    explicit = json.loads(cli_ok(*base, "--in-channels", "3", "--resolution", "32", "--num-classes", "5"))
    assert explicit["layers"] == shown["layers"] and explicit["input"]["dataset"] is None
    code, out, err = run_cli(*base)  # the defaults are Fashion-MNIST's 1x28x28, 10 classes: not this table
    _one_line(code, err, "not built")
    code, out, err = run_cli(*base, *data, "--resolution", "32")
    _one_line(code, err, "--dataset synthetic sets the input shape")
    code, out, err = run_cli(*base, "--num-classes", "1")
    _one_line(code, err, "--num-classes must be an integer >= 2")
    from nasforge.hardware.service import DEFAULT_INPUT, input_shape

    assert input_shape() == DEFAULT_INPUT == {"dataset": "fashion-mnist", "in_channels": 1, "resolution": 28,
                                              "num_classes": 10}


# -- options accepted and then ignored ----------------------------------------------------------------------------------
def test_options_a_search_would_ignore_are_refused_before_work(run_cli, tmp_path):
    """A table search with --dataset cifar100 gave CIFAR-10 table results without a word; --subset, --data-root,
    --download, --batch-size and --precision were accepted and did nothing; --batch-size was ignored by every
    multi-trial search (trials take theirs from --estimator-opt)."""
    runs = tmp_path / "runs"
    table = ("search", "--method", "random", "--estimator", "table", "--trials", "5", "--tables", str(tmp_path),
             "--out", str(runs))
    cases = [
        ((*table, "--dataset", "cifar100"), ["--dataset does not apply", "--table-dataset"]),
        ((*table, "--subset", "500", "--data-root", str(tmp_path)), ["--subset, --data-root do not apply"]),
        ((*table, "--download"), ["--download does not apply"]),
        ((*table, "--batch-size", "32"), ["--batch-size", "multi-trial"]),
        ((*table, "--precision", "bf16"), ["--precision does not apply"]),
        ((*table, "--memory-format", "contiguous"), ["--memory-format does not apply"]),
        ((*table, "--dataset", "synthetic", "--subset", "64", "--retrain-epochs", "1"),
         ["--subset does not apply", "--retrain-subset"]),
        (("search", "--method", "random", "--estimator", "proxy", "--trials", "2", "--estimator-opt",
          "inputs=gaussian", *SYN, "--out", str(runs)), ["--dataset does not apply", "gaussian"]),
        (("search", "--method", "evolution", "--estimator", "scratch", "--trials", "2", "--batch-size", "32", *SYN,
          "--out", str(runs)), ["--batch-size", "train.batch_size"]),
        (("search", "--method", "random", "--estimator", "proxy", "--trials", "2", "--batch-size", "32", *SYN,
          "--out", str(runs)), ["--batch-size", "--estimator-opt batch_size"]),
    ]
    for args, words in cases:
        code, out, err = run_cli(*args)
        _one_line(code, err, *words)
    assert not runs.exists() or not any(runs.iterdir())
    code, out, err = run_cli("search", "--method", "darts", "--epochs", "1", "--table-dataset", "cifar100")
    _one_line(code, err, "--table-dataset applies only with --tables")


def test_the_table_data_set_has_a_flag(cli_ok, tmp_path, tables_dir):
    """The refusal of --dataset in a table search names --table-dataset: the flag exists and reaches the table."""
    out = json.loads(cli_ok("search", "--method", "random", "--estimator", "table", "--trials", "3", "--tables",
                            str(tables_dir), "--table-dataset", "cifar100", "--out", str(tmp_path), "--name", "t",
                            "--quiet"))
    res = json.loads((tmp_path / "t" / "result.json").read_text())
    assert res["search"]["metrics"]["ground_truth"]["dataset"] == "cifar100" and out["arch"] == res["arch"]


def test_a_resumed_run_is_not_refused_for_options_it_was_started_with(tmp_path):
    """The 'does not apply' checks guard new runs only: a run directory made before them still resumes."""
    from nasforge.preflight import check_applies
    from nasforge.registry import STRATEGIES
    from nasforge.building import import_components

    import_components()
    cfg = {"estimator": "table", "estimator_options": {}, "retrain": None, "method": "random", "subset": 500,
           "precision": "auto", "memory_format": "auto", "batch_size": 64, "augment": {"crop_padding": 0,
           "hflip": False, "cutout": 0}, "dataset": "fashion-mnist", "dataset_options": {}, "data_root": None,
           "download": False, "split_seed": 0, "train_portion": 0.5}
    with pytest.raises(ConfigError, match="--subset does not apply"):
        check_applies(cfg, STRATEGIES.get("random")())
    run = api.search({"method": "random", "estimator": "proxy", "budget": {"trials": 2}, "dataset": "synthetic",
                      "subset": 64, "threads": 1, "estimator_options": {"batch_size": 8}},
                     run_root=tmp_path, run_name="r")
    stored = json.loads((tmp_path / "r" / "config.json").read_text())
    stored.update({"estimator_options": {**stored["estimator_options"], "inputs": "gaussian"}})  # as an old run
    (tmp_path / "r" / "config.json").write_text(json.dumps(stored))
    (tmp_path / "r" / "result.json").unlink()
    again = api.search(resume=tmp_path / "r")
    assert again["arch"] == run["arch"]


def test_batches_the_data_cannot_fill_are_refused_before_work(run_cli, tmp_path):
    """`--batch-size 100000` on a 64-image search (32 search-train images) ran one 32-image step per epoch
    without a word; `--subset 3 --train-portion 0.2` died on "dataset 'synthetic' is empty"."""
    runs = tmp_path / "runs"
    nb = ("--space-opt", "C=4", "--space-opt", "N=1", "--out", str(runs), *SYN)
    cases = [
        (("search", "--method", "darts", "--epochs", "1", "--subset", "64", "--batch-size", "100000", *nb),
         ["--batch-size 100000 exceeds the 32 search-train images"]),
        (("search", "--method", "darts", "--epochs", "1", "--subset", "3", "--train-portion", "0.2", *nb),
         ["leave 0 search-train and 3 search-val images"]),
        (("train", "--arch", "baseline", "--epochs", "1", "--subset", "64", "--batch-size", "65", "--out", str(runs),
          *SYN), ["--batch-size 65 exceeds the 64 training images"]),
    ]
    for args, words in cases:
        code, out, err = run_cli(*args)
        _one_line(code, err, *words)
    with pytest.raises(ConfigError, match="retrain batch_size 100 exceeds the 64 retraining images"):
        api.search({"method": "darts", "budget": {"epochs": 1}, "dataset": "synthetic", "subset": 64,
                    "batch_size": 32, "space_options": {"C": 4, "N": 1}, "threads": 1, "retrain_subset": 64,
                    "retrain": {"epochs": 1, "batch_size": 100}}, run_root=runs)
    assert not runs.exists() or not any(runs.iterdir())


# -- someone else's (damaged) run directory ------------------------------------------------------------------------------
def test_a_damaged_train_run_is_one_line_for_evaluate_and_export(run_cli, tmp_path, capsys):
    """A run directory whose config.json names no dataset or an arch of the wrong type, or whose model.pt holds
    another network's weights, gave a KeyError / TypeError / RuntimeError traceback (exit 1)."""
    import shutil

    base = {"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 32, "threads": 1,
            "train": {"epochs": 1, "batch_size": 32}}
    a = api.train(base, run_root=tmp_path, run_name="a")
    b = api.train({**base, "space_options": {"width": 8}}, run_root=tmp_path, run_name="b")
    capsys.readouterr()  # the trainings' progress lines
    for name, damage in (("no_dataset", lambda c: c.pop("dataset")), ("int_arch", lambda c: c.update(arch=5))):
        run = tmp_path / name
        shutil.copytree(a["run_dir"], run)
        cfg = json.loads((run / "config.json").read_text())
        damage(cfg)
        (run / "config.json").write_text(json.dumps(cfg))
        if name == "int_arch":
            res = json.loads((run / "result.json").read_text())
            res.pop("model", None)
            res.update(space="nb201", arch="x")
            (run / "result.json").write_text(json.dumps(res))
        code, out, err = run_cli("evaluate", str(run))
        _one_line(code, err, "the run directory is damaged")
    swapped = tmp_path / "swapped"
    shutil.copytree(a["run_dir"], swapped)
    shutil.copy(b["model_file"], swapped / "model.pt")
    for args in (("evaluate", str(swapped)), ("export", str(swapped), "--out", str(tmp_path / "m.onnx"))):
        code, out, err = run_cli(*args)
        _one_line(code, err, "does not hold the weights of the run's architecture")
    assert not (tmp_path / "m.onnx").exists()


def test_evaluate_test_subset_zero_is_refused_not_read_as_all(run_cli, tmp_path, capsys):
    """`nasforge evaluate RUN --test-subset 0` evaluated the whole test set (0 was read as "not given")."""
    run = api.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 32, "threads": 1,
                     "train": {"epochs": 1, "batch_size": 32}}, run_root=tmp_path, run_name="t")
    capsys.readouterr()
    for bad in ("0", "1"):
        code, out, err = run_cli("evaluate", run["run_dir"], "--test-subset", bad)
        _one_line(code, err, f"test_subset must be an integer >= 2 (images), got {bad}")
    assert api.evaluate(run["run_dir"], test_subset=2)["images"] == 2


def test_compare_counts_a_run_named_twice_once(tmp_path, capsys):
    """`nasforge compare runs/x runs/x` showed one run as "2 (seed repeated)" with a std of 0."""
    run = api.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 32, "threads": 1,
                     "train": {"epochs": 1, "batch_size": 32}}, run_root=tmp_path, run_name="t")
    res = api.compare([run["run_dir"], run["run_dir"], tmp_path / "t" / "."], csv=tmp_path / "c.csv")
    assert len(res["runs"]) == 1 and len(res["groups"]) == 1
    assert sum("given more than once" in w for w in res["warnings"]) == 2
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 2  # header + the run


def test_gpus_per_trial_without_a_gpu_is_refused_instead_of_waiting_forever(run_cli, tmp_path, monkeypatch):
    """`--executor ray --gpus-per-trial 0.5` on a machine without a GPU started a local Ray instance whose trials
    waited for a GPU forever (killed after 120 s, a run directory left behind)."""
    import torch

    runs = tmp_path / "runs"
    base = ("search", "--method", "random", "--estimator", "scratch", "--trials", "1", "--executor", "ray",
            "--workers", "1", "--subset", "64", *SYN, "--out", str(runs))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    code, out, err = run_cli(*base, "--gpus-per-trial", "0.5")
    _one_line(code, err, "--gpus-per-trial 0.5 needs a CUDA GPU", "this machine has 0")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code, out, err = run_cli(*base, "--gpus-per-trial", "2")
    _one_line(code, err, "--gpus-per-trial 2 needs 2 CUDA GPUs", "this machine has 1")
    assert not runs.exists() or not any(runs.iterdir())


def test_resume_names_every_flag_it_ignores(tmp_path, capsys):
    """`search --resume RUN --teacher T` (or --sync-bn, --gpus-per-trial, --table-dataset; `train --resume RUN
    --teacher T --sync-bn`) dropped the flag without the note the other flags get."""
    run = api.search({"method": "random", "estimator": "proxy", "budget": {"trials": 2}, "threads": 1,
                      "estimator_options": {"inputs": "gaussian", "batch_size": 8}}, run_root=tmp_path, run_name="r")
    (tmp_path / "r" / "result.json").unlink()
    capsys.readouterr()
    from nasforge.cli import main

    try:
        main(["search", "--resume", str(tmp_path / "r"), "--teacher", str(tmp_path), "--sync-bn", "--gpus-per-trial",
              "1", "--table-dataset", "cifar100", "--quiet"])
    except SystemExit as e:
        assert e.code in (0, None)
    note = capsys.readouterr().err
    for flag in ("--teacher", "--sync-bn", "--gpus-per-trial", "--table-dataset"):
        assert flag in note, note
    assert json.loads((tmp_path / "r" / "result.json").read_text())["arch"] == run["arch"]


def test_more_threads_than_cores_is_one_line(run_cli, tmp_path, monkeypatch):
    """`--threads 100000` ended in a MemoryError traceback while torch started the threads (exit 1)."""
    from nasforge import utils

    runs = tmp_path / "runs"
    monkeypatch.setattr(utils, "usable_cores", lambda: 2)
    for args in (("search", "--method", "darts", "--epochs", "1", "--dataset", "synthetic", "--threads", "3",
                  "--out", str(runs)),
                 ("train", "--arch", "baseline", "--dataset", "synthetic", "--threads", "100000", "--out", str(runs))):
        code, out, err = run_cli(*args)
        _one_line(code, err, "exceeds the 2 CPU core(s)", "use --threads 2 or fewer")
    assert not runs.exists() or not any(runs.iterdir())
    utils.set_threads(2)  # up to the cores: accepted
    utils.set_threads(64, check=False)  # threads for a Ray cluster's workers are not held to this machine
    utils.set_threads(1)


def test_resuming_a_finished_run_touches_nothing(tmp_path, capsys, relaunches):
    """`train --resume RUN` / `search --resume RUN` of a finished run reran its end: model.pt was rewritten and the
    no-op's seconds were added to the run's cost (result.json changed)."""
    run = api.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 32, "threads": 1,
                     "train": {"epochs": 1, "batch_size": 32}}, run_root=tmp_path, run_name="t")
    search = api.search({"method": "random", "estimator": "proxy", "budget": {"trials": 2}, "threads": 1,
                         "estimator_options": {"inputs": "gaussian", "batch_size": 8}}, run_root=tmp_path,
                        run_name="s")
    files = {p: p.read_bytes() for d in ("t", "s") for p in (tmp_path / d).iterdir() if p.is_file()}
    capsys.readouterr()
    assert api.train(resume=tmp_path / "t") == json.loads((tmp_path / "t" / "result.json").read_text())
    assert api.search(resume=tmp_path / "s")["arch"] == search["arch"]
    err = capsys.readouterr().err
    assert err.count("has finished; nothing to resume") == 2, err
    from nasforge.cli import main

    try:
        main(["train", "--resume", str(tmp_path / "t"), "--nproc", "2"])  # starts no processes
    except SystemExit as e:
        assert e.code in (0, None)
    out = capsys.readouterr().out
    assert relaunches == [] and json.loads(out)["test_accuracy"] == run["test_accuracy"]
    assert {p: p.read_bytes() for p in files} == files
