"""The command line: one-line errors with exit code 2, and small end-to-end runs."""
import json
import subprocess
import sys

import pytest

@pytest.mark.parametrize("args,needle", [
    (["search", "--method", "nope", "--epochs", "1"], "unknown strategy 'nope'; choose from: "),
    (["search", "--space", "nope", "--epochs", "1"], "unknown search space 'nope'; choose from: "),
    (["search", "--dataset", "nope", "--epochs", "1"], "unknown dataset 'nope'; choose from: "),
    (["search", "--method", "darts"], "needs an epoch budget"),
    (["search", "--method", "darts", "--epochs", "1", "--estimator", "table"], "takes no --estimator"),
    (["search", "--method", "darts", "--epochs", "1", "--set", "lr"], "expected key=value"),
    (["search", "--method", "darts", "--epochs", "1", "--set", "bogus=1"], "unknown hyperparameter(s) ['bogus']"),
    (["search", "--epochs", "-3"], "budget.epochs must be an integer >= 1; got -3"),
    (["search", "--epochs", "1", "--train-portion", "1.5"], "train_portion (the search-train share"),
    (["search", "--bogus-flag"], "No such option: --bogus-flag"),
    (["train", "--arch", "nope"], "unknown architecture 'nope'"),
    (["train", "--set", "optimizer=lamb"], "optimizer must be one of sgd, adam, adamw; got 'lamb'"),
    (["evaluate", "/nonexistent/run"], "is not a nasforge run directory (it does not exist)"),
    (["search", "--resume", "/nonexistent/run"], "is not a nasforge run directory (it does not exist)"),
    (["search", "--config", "/nonexistent.yaml"], "config file /nonexistent.yaml not found"),
])
def test_errors_are_one_line_with_exit_2(run_cli, args, needle):
    code, out, err = run_cli(*args)
    assert code == 2
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


#: a run that starts anyway (the fault is back) stays a second's work
TINY = ("--dataset", "synthetic", "--subset", "64", "--epochs", "1", "--quiet")


def _bad_inputs(d):
    """Files a user may pass where a path or a name is expected: binary, not JSON, not an architecture."""
    (d / "bin.json").write_bytes(bytes(range(128, 256)))
    (d / "bad.json").write_text("{not json")
    (d / "list.json").write_text("[1, 2]")
    (d / "space.json").write_text('{"space": ["nb201"], "arch": 1}')
    (d / "cfg.json").write_text('{"space": "nb201", "arch": "x", "space_config": 3}')
    (d / "bad.yaml").write_text("a: [1,\nb: }\n")
    (d / "folder").mkdir()
    (d / "trained").mkdir()  # a finished `train --arch baseline` run
    (d / "trained" / "config.json").write_text('{"command": "train"}')
    (d / "trained" / "result.json").write_text('{"model": "baseline", "test_accuracy": 0.9}')
    (d / "cut").mkdir()  # a train run killed before its result
    (d / "cut" / "config.json").write_text('{"command": "train"}')


@pytest.mark.parametrize("args,needle", [
    (["train", "--arch", "{d}/nope.json"], "architecture file {d}/nope.json does not exist"),
    (["train", "--arch", "nope.json"], "architecture file nope.json does not exist"),
    (["train", "--arch", "runs/s/arch"], "architecture file runs/s/arch does not exist"),
    (["train", "--arch", "nope"], "unknown architecture 'nope': give a model name"),  # a bare name: as before
    (["train", "--arch", "{d}/bin.json"], "architecture file {d}/bin.json is not JSON text"),
    (["train", "--arch", "{d}/bad.json"], "architecture file {d}/bad.json is not valid JSON"),
    (["train", "--arch", "{d}/list.json"], "must hold a JSON object with 'space' and 'arch'"),
    (["train", "--arch", "{d}/space.json"], "'space' must be a space name (a string)"),
    (["train", "--arch", "{d}/cfg.json"], "'space_config' must be a JSON object"),
    (["train", "--arch", "{d}/folder"], "{d}/folder is a folder without result.json"),
    (["train", "--arch", "{d}/trained"], "is the result of training the model 'baseline', not a searched "
                                         "architecture: use --arch baseline"),
    (["train", "--arch", "{d}/cut"], "{d}/cut is an unfinished train run (no result.json or arch.json yet); "
                                     "finish it first: nasforge train --resume {d}/cut"),
    (["proxy", "score", "{d}/nope.json"], "architecture file {d}/nope.json does not exist"),
    (["proxy", "score", "{d}/bin.json"], "is not JSON text"),
    (["latency", "predict", "{d}/bin.json", "--device", "pixel3"], "is not JSON text"),
    (["search", "--config", "{d}/bin.json"], "config file {d}/bin.json is not YAML text"),
    (["search", "--config", "{d}/folder"], "config file {d}/folder cannot be read"),
    (["train", "--config", "{d}/bad.yaml"], "is not valid YAML: expected the node content, but found '}}' (line 2"),
    (["search", "--resume", "{d}/nope"], "{d}/nope is not a nasforge run directory (it does not exist)"),
    (["train", "--resume", "{d}/bad.json"], "{d}/bad.json is not a nasforge run directory (a file, not a folder)"),
    (["evaluate", "{d}/folder"], "{d}/folder is not a nasforge run directory (no config.json)"),
    (["report", "{d}/nope"], "run directory {d}/nope not found"),
    (["compare", "{d}/bad.json"], "{d}/bad.json is not a directory"),
    (["train", "--name", " ", *TINY], "--name must be a plain folder name"),  # made a folder named " "
    (["train", "--name", "run ", *TINY], "--name must be a plain folder name"),
    (["search", "--name", "a\tb", *TINY], "--name must be a plain folder name"),
    (["search", "--method", "evolution", "--estimator", "table", "--trials", "5", "--tables", "{d}/bad.json"],
     "is a file, not a folder"),
])
def test_paths_and_files_are_one_line_with_exit_2(run_cli, tmp_path, args, needle):
    """A path that does not exist is said to be missing (not an 'unknown name'); a file that is not what the
    option reads (binary, not JSON/YAML, not an architecture, a folder) is one line, exit 2, no traceback."""
    _bad_inputs(tmp_path)
    code, out, err = run_cli(*[a.format(d=tmp_path) for a in args], "--out", str(tmp_path / "runs")) \
        if args[0] in ("train", "search") else run_cli(*[a.format(d=tmp_path) for a in args])
    assert code == 2, err
    assert needle.format(d=tmp_path) in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # before any work


def test_a_search_run_whose_retraining_did_not_finish_gives_its_arch_json(tmp_path):
    """The search part of the run ended (arch.json written) but its retraining was cut: --arch RUN reads arch.json."""
    from nasforge.building import arch_spec

    run = tmp_path / "s"
    run.mkdir()
    (run / "config.json").write_text('{"command": "search"}')
    arch = {"space": "nb201", "arch": "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|"
                                      "avg_pool_3x3~2|"}
    (run / "arch.json").write_text(json.dumps(arch))
    assert arch_spec(str(run)) == arch


def test_an_unknown_table_estimator_option_names_the_valid_ones(run_cli, tables_dir, tmp_path):
    """It said "TableEstimator.__init__() got an unexpected keyword argument 'proxy'", after the search had
    started (a run directory made)."""
    code, _, err = run_cli("search", "--method", "evolution", "--estimator", "table", "--trials", "5", "--tables",
                           str(tables_dir), "--estimator-opt", "proxy=nwot", "--out", str(tmp_path / "runs"))
    assert code == 2 and "unknown option(s) ['proxy'] for estimator 'table'; valid: metric" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
    code, _, err = run_cli("search", "--method", "evolution", "--estimator", "table", "--trials", "5", "--tables",
                           str(tables_dir), "--estimator-opt", "metric=bogus", "--out", str(tmp_path / "runs"))
    assert code == 2 and "unknown NB201 metric 'bogus'" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_train_help_gives_every_option_a_text_and_its_default(cli_ok):
    """`train --help` listed --dataset, --epochs, --batch-size, --lr, --seed, --config, --resume with no text
    and no default (search's help has both)."""
    import re

    from nasforge.training.engine import TrainConfig

    text = " ".join(cli_ok("train", "--help").split())
    decl = TrainConfig.declaration()
    for flag, key in (("epochs", "epochs"), ("batch-size", "batch_size"), ("lr", "lr"), ("seed", "seed"),
                      ("optimizer", "optimizer")):
        assert re.search(rf"--{flag} <\w+> [^-]*\[default: {re.escape(str(decl[key].default))}\]", text), flag
    assert "[default: baseline]" in text and "[default: fashion-mnist]" in text
    for flag in ("--dataset", "--data-root", "--download", "--threads", "--config", "--resume", "--name"):
        after = text.split(flag, 1)[1].lstrip()
        after = after.split(" ", 1)[1] if after.startswith("<") else after  # the metavar
        assert not after.startswith("--"), f"{flag} has no help text"


def test_an_unfinished_run_names_the_resume_command(run_cli, tmp_path):
    """`evaluate` / `export` of a run killed before its result said "resume it with --resume" without the command."""
    from nasforge import api

    run = api.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 64, "threads": 1,
                     "train": {"epochs": 1, "batch_size": 32}}, run_root=tmp_path, run_name="t")["run_dir"]
    (tmp_path / "t" / "result.json").unlink()
    for command in ("evaluate", "export"):
        code, _, err = run_cli(command, run)
        assert code == 2 and f"the run has not finished; resume it with: nasforge train --resume {run}" in err, err


def test_list_shows_every_registered_component(cli_ok):
    out = cli_ok("list")
    for name in ("nb201", "darts", "single-darts", "fashion-mnist", "cifar10", "baseline", "scratch", "local"):
        assert name in out


def test_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "nasforge.cli", "--help"], capture_output=True, text=True).stdout
    for cmd in ("search", "train", "evaluate", "export", "list", "demo"):
        assert cmd in out


def test_train_evaluate_export_end_to_end(cli_ok, tmp_path):
    out = cli_ok("train", "--arch", "baseline", "--dataset", "synthetic", "--epochs", "1",
                 "--out", str(tmp_path), "--name", "t", "--quiet")
    res = json.loads(out)
    assert 0.0 <= res["test_accuracy"] <= 1.0 and res["params"] > 0
    ev = json.loads(cli_ok("evaluate", str(tmp_path / "t")))
    assert ev["accuracy"] == pytest.approx(res["test_accuracy"])
    ex = json.loads(cli_ok("export", str(tmp_path / "t"), "--out", str(tmp_path / "m.onnx")))
    assert ex["max_abs_diff"] < 1e-4 and ex["argmax_agreement"] == 1.0


def test_search_then_train_found_arch(cli_ok, tmp_path):
    out = cli_ok("search", "--space", "nb201", "--method", "single-darts", "--dataset", "synthetic",
                 "--epochs", "1", "--subset", "128", "--space-opt", "C=4", "--space-opt", "N=1",
                 "--set", "hessian_every=0", "--out", str(tmp_path), "--name", "s", "--quiet")
    res = json.loads(out)
    assert res["arch"].startswith("|")
    out = cli_ok("train", "--arch", res["arch_file"], "--dataset", "synthetic", "--epochs", "1",
                 "--space-opt", "C=4", "--out", str(tmp_path), "--name", "t2", "--quiet")
    assert json.loads(out)["arch"] == res["arch"]


def test_every_file_out_option_says_it_creates_missing_folders_and_does(cli_ok, tmp_path):
    """`export --out a/b/m.onnx` created a/b silently; every file output (export, report, compare, proxy score)
    creates missing folders the same way, like the run folder of `search --out`, and its help says so."""
    import typer.main

    from nasforge.cli import app

    group = typer.main.get_command(app)
    options = [("export", "--out"), ("report", "--out"), ("compare", "--out"), ("compare", "--csv")]
    proxy = group.commands["proxy"].commands["score"]
    helps = [next(p.help for p in group.commands[c].params if flag in p.opts) for c, flag in options]
    helps.append(next(p.help for p in proxy.params if "--out" in p.opts))
    assert all("missing folders are created" in h for h in helps), helps
    cli_ok("train", "--arch", "baseline", "--dataset", "synthetic", "--epochs", "1", "--subset", "64",
           "--out", str(tmp_path), "--name", "t", "--quiet")
    cli_ok("export", str(tmp_path / "t"), "--out", str(tmp_path / "new" / "deeper" / "m.onnx"))
    cli_ok("report", str(tmp_path / "t"), "--out", str(tmp_path / "new2" / "r.html"))
    assert (tmp_path / "new" / "deeper" / "m.onnx").is_file() and (tmp_path / "new2" / "r.html").is_file()
