"""Issue 23: the hand-designed baselines, the leaderboard's size rule, the whole protocol at toy scale through
benchmarks/leaderboard.py (resume of a partial board included, `nasforge compare` agreeing with it), and the
default job's alpha-movement measure."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from nasforge import api
from nasforge.errors import ConfigError
from nasforge.models import MODELS, build_named
from nasforge.ops.binary import BinaryConv2d, is_binary
from nasforge.ops.heads import param_counts

REPO = Path(__file__).resolve().parents[1]


def _runner():
    spec = importlib.util.spec_from_file_location("leaderboard_runner", REPO / "benchmarks" / "leaderboard.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["leaderboard_runner"] = mod
    spec.loader.exec_module(mod)
    return mod


lb = _runner()
HAND = ("baseline", "resnet20", "mobilenetv2", "vit-uniform", "birealnet")


# -- the hand-designed networks ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name, params", [("baseline", 65_834), ("resnet20", 272_186), ("mobilenetv2", 2_236_106),
                                          ("vit-uniform", 205_962), ("birealnet", 701_178)])
def test_paper_sized_models_have_their_parameter_counts(name, params):
    """Default widths are the papers' (ResNet-20 ~0.27 M as in He et al. table 6; MobileNetV2 x1.0 with a
    10-class head ~2.2 M) and every model maps 1x28x28 and 3x32x32 images to logits."""
    m = build_named(name, 1, 10)
    assert param_counts(m)["params"] == params
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    m3 = build_named(name, 3, 7, {"width": 8}, resolution=32)
    assert m3(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_birealnet_is_binary_with_a_real_shortcut_per_binary_conv():
    m = build_named("birealnet", 1, 10)
    convs = [mod for mod in m.modules() if isinstance(mod, BinaryConv2d)]
    assert is_binary(m) and len(convs) == 16 and all(c.kernel_size == (3, 3) for c in convs)
    units = [mod for mod in m.modules() if type(mod).__name__ == "_BiRealBlock"]
    assert len(units) == 16  # each binary conv has its own shortcut (Bi-Real), not one per two convs (ResNet)
    x = torch.randn(4, 1, 28, 28, requires_grad=True)
    m(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # the STE and the shortcuts carry gradient


def test_model_options_are_checked():
    with pytest.raises(ConfigError, match="unknown option.*'depth'.*valid: width"):
        build_named("resnet20", 1, 10, {"depth": 3})
    with pytest.raises(ConfigError, match="width must be an integer >= 1"):
        build_named("baseline", 1, 10, {"width": 0})
    with pytest.raises(ConfigError, match="divisible by the 4 heads"):
        build_named("vit-uniform", 1, 10, {"width": 30})


def test_train_cli_scales_a_named_model(cli_ok, tmp_path):
    out = cli_ok("train", "--arch", "resnet20", "--space-opt", "width=4", "--dataset", "synthetic", "--data-opt",
                 "n_train=64", "--data-opt", "n_test=32", "--epochs", "1", "--threads", "1", "--out", str(tmp_path),
                 "--name", "r", "--quiet")
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    assert res["model"] == "resnet20" and res["params"] == param_counts(build_named("resnet20", 1, 10, {"width": 4}))["params"]
    assert json.loads(out)["params"] == res["params"]
    assert api.evaluate(tmp_path / "r", threads=1)["images"] == 32  # the trained run reloads at its width


# -- the size rule ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HAND)
def test_size_rule_takes_the_largest_ladder_width_under_the_bound(name):
    data = {"in_channels": 1, "num_classes": 10, "resolution": 28}
    opts, n = lb.scale_options(None, name, 1_000_000, data)
    w = opts["width"]
    assert n <= 1_000_000 and n == param_counts(build_named(name, 1, 10, opts))["params"]
    nxt = lb.WIDTH_LADDER[lb.WIDTH_LADDER.index(w) + 1]
    try:
        over = param_counts(build_named(name, 1, 10, {"width": nxt}))["params"]
    except ConfigError:
        over = math.inf
    assert over > 1_000_000


@pytest.mark.parametrize("space, options", [("nb201", {"C": 4, "N": 1}), ("darts", {"C": 4, "layers": 3}),
                                            ("bats", {"C": 4, "layers": 3}), ("mobile", {}), ("vit", {})])
def test_size_rule_scales_every_searched_space_under_the_bound(space, options):
    import random

    from nasforge.building import import_components, make_space

    import_components()
    sp = make_space(space, None, {"in_channels": 1, "num_classes": 10, "resolution": 28, **options})
    arch = sp.sample(random.Random(0))
    doc = {"space": space, "space_config": sp.config, "arch": arch}
    opts, n = lb.scale_options(doc, None, 400_000, {"in_channels": 1, "num_classes": 10, "resolution": 28})
    net = sp.build(arch, **opts)
    assert param_counts(net)["params"] == n <= 400_000
    assert n > 100_000  # the rule grew the network towards the bound (every ladder has fine enough steps)


def test_vit_width_mult_scales_the_architecture_and_is_checked():
    from nasforge.spaces.vit import ViTSpace

    sp = ViTSpace()
    import random

    arch = sp.sample(random.Random(1))
    small, big = sp.build(arch), sp.build(arch, width_mult=2.0)
    assert big.embed == 2 * small.embed and param_counts(big)["params"] > 3 * param_counts(small)["params"]
    with pytest.raises(ConfigError, match="width_mult must be a number > 0"):
        sp.build(arch, width_mult=0)
    with pytest.raises(ConfigError, match="unknown build option"):
        sp.build(arch, C=3)


def test_arch_lr_rule_keeps_the_reference_alpha_travel():
    assert lb.arch_lr_for(19_550) == pytest.approx(3e-4)
    assert lb.arch_lr_for(474) * 474 == pytest.approx(3e-4 * 19_550)
    assert lb.arch_lr_for(10**9) == 3e-4  # never below the reference


# -- the whole protocol at toy scale -------------------------------------------------------------------------------
def test_toy_leaderboard_resumes_a_partial_board_and_agrees_with_compare(tmp_path):
    scale = lb.SCALES["toy"]
    rows = [lb.ROWS["single-darts"], lb.ROWS["baseline-cnn"]]
    out = tmp_path / "lb"
    # a sitting that ends after its first finished job (as a kill between jobs would)
    board = lb.run_board(rows, [0], scale, out, jobs=1, stop_after=1)
    assert [(r["row"], r["seed"]) for r in board.records] == [("single-darts", 0)]
    first = json.loads((out / lb.RUNS_FILE).read_text())[0]
    stamp = {p: p.stat().st_mtime_ns for p in out.glob("single-darts-s0-*/result.json")}
    assert len(stamp) == 2
    # the next sitting: the finished job is reused (its run folders untouched), the missing one computed
    board = lb.run_board(rows, [0], scale, out, jobs=2)
    assert sorted((r["row"], r["seed"]) for r in board.records) == [("baseline-cnn", 0), ("single-darts", 0)]
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp
    assert json.loads((out / lb.RUNS_FILE).read_text())[0] == first
    for r in board.records:
        assert r["params"] <= scale.bound and r["within_bound"] and r["test_accuracy"] is not None
        assert r["retrain_precision"] and r["latency_b1_ms"] > 0 and r["latency_b32_ms"] > 0
        assert r["retrain_cpu_s"] > 0
    sd = next(r for r in board.records if r["row"] == "single-darts")
    assert sd["search_cpu_s"] > 0 and sd["search_precision"] and sd["scale_options"]["N"] == 2
    # one-shot rows plan their epochs once per board from a 1- and a 2-epoch probe; every seed reuses the plan
    plan = json.loads((out / lb.PLAN_FILE).read_text())["single-darts"]
    assert 1 <= plan["epochs"] <= scale.epoch_cap and plan["probe_epochs_run"] == [1, 2]
    assert sd["planned_epochs"] == plan["epochs"] == sd["epochs_run"]
    cfg = json.loads((out / "single-darts-s0-search" / "config.json").read_text())
    assert plan["epochs"] == cfg.get("budget", {}).get("epochs", cfg.get("epochs"))
    # a finished run is reused even when its job is missing from the board (runs outlive the JSON)
    (out / lb.RUNS_FILE).unlink()
    board = lb.run_board(rows, [0], scale, out, jobs=1)
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp and len(board.records) == 2
    # the table, the JSON and the plot
    docs = tmp_path / "docs"
    doc = lb.write_outputs(board, list(lb.ROWS), scale, docs, docs / "results" / "leaderboard.json")
    text = (docs / "leaderboard.md").read_text()
    assert "| single-darts | 1 |" in text and "| baseline-cnn | 1 |" in text
    assert (docs / "leaderboard.png").stat().st_size > 1000
    assert json.loads((docs / "results" / "leaderboard.json").read_text())["rows"] == json.loads(json.dumps(doc["rows"]))
    # `nasforge compare` over the run folders gives the same accuracies and parameter counts
    runs = sorted(p for p in out.iterdir() if (p / "config.json").is_file())
    res = api.compare(runs, out=tmp_path / "c.html")
    by_method = {(g["method"]): g for g in res["groups"]}
    assert by_method["single-darts"]["test_accuracy"]["mean"] == pytest.approx(sd["test_accuracy"])
    base = next(r for r in board.records if r["row"] == "baseline-cnn")
    assert by_method["train"]["test_accuracy"]["mean"] == pytest.approx(base["test_accuracy"])
    assert by_method["train"]["params"]["mean"] == base["params"]
    # the latency pass: every run re-timed in one process, and the table takes its figures (in-job kept)
    lat = lb.remeasure_latency(board, out, rounds=2)
    assert set(lat["runs"]) == {r["train_run"] for r in board.records}
    for m in lat["runs"].values():
        assert len(m["samples_b1_ms"]) == 2 and m["latency_b1_ms"] > 0 and m["latency_b32_ms"] > 0
    assert lb.main(["--scale", "toy", "--out", str(out), "--write", "--report-only", "--docs", str(docs)]) == 0
    written = json.loads((docs / "results" / "leaderboard.json").read_text())
    for r in written["runs"]:
        assert r["latency_source"] == "pass" and r["latency_b1_ms"] == lat["runs"][r["train_run"]]["latency_b1_ms"]
        assert r["latency_b1_ms_in_job"] == next(b for b in board.records if b["row"] == r["row"])["latency_b1_ms"]
    # the record attempt: the searched row by search-time evidence, the long recipe, the 1 M bound
    (cmd,) = lb.record_commands(tmp_path / "rec", out, None)
    assert cmd[cmd.index("--arch") + 1] == str(out / "single-darts-s0-search" / "arch.json")
    assert cmd[cmd.index("--epochs") + 1] == str(lb.RECORD["epochs"]) and "--name" in cmd
    # ... and run (here 1 epoch on the toy data): record.json sums the attempt up; a second call reuses it
    rec = tmp_path / "rec"
    (cmd,) = lb.record_commands(rec, out, None, epochs=1, scale=scale)
    (attempt,) = lb.run_record([cmd], rec)
    assert "error" not in attempt, attempt
    assert attempt["epochs"] == 1 and attempt["test_accuracy"] is not None and attempt["train_cpu_s"] > 0
    stamp = (rec / attempt["name"] / "result.json").stat().st_mtime_ns
    assert lb.run_record([cmd], rec)[0]["test_accuracy"] == attempt["test_accuracy"]
    assert (rec / attempt["name"] / "result.json").stat().st_mtime_ns == stamp
    assert json.loads((rec / "record.json").read_text())["attempts"][0]["name"] == attempt["name"]
    assert lb.main(["--scale", "toy", "--out", str(out), "--record", "--run", "--record-out", str(rec),
                    "--record-epochs", "1"]) == 0  # the CLI path: the finished attempt is reused


def test_runner_resumes_an_interrupted_run_with_resume(tmp_path, monkeypatch):
    """A run folder with a config but no result is continued with `nasforge <verb> --resume`, not restarted."""
    run = tmp_path / "x-s0-train"
    run.mkdir()
    (run / "config.json").write_text("{}")
    seen = []

    def fake_call(cmd, **kw):
        seen.append(cmd)
        (run / "result.json").write_text('{"ok": 1}')
        return 0

    monkeypatch.setattr(lb.subprocess, "call", fake_call)
    res = lb.run_step([*lb._nasforge(), "train", "--arch", "baseline"], run, tmp_path / "log")
    assert res == {"ok": 1} and seen[0][3:6] == ["train", "--resume", str(run)]
    assert lb.run_step(["never", "run"], run, tmp_path / "log") == {"ok": 1} and len(seen) == 1


def test_epoch_plan_probes_from_the_rows_minimum(tmp_path, monkeypatch):
    """HURRICANE's two stages refuse 1 epoch: its probe runs 2 and 4 epochs, and the plan never goes below 2;
    the per-epoch cost comes from the epochs the probes actually ran (a clock-stopped probe counts what ran)."""
    seen = []

    def fake_run_step(cmd, run, log):
        e = int(cmd[cmd.index("--epochs") + 1])
        seen.append(e)
        run.mkdir(parents=True, exist_ok=True)
        (run / "cost.json").write_text(json.dumps({"cpu_s": 30.0 + 100.0 * e}))
        return {"search": {"metrics": {"epochs_run": e}}}

    monkeypatch.setattr(lb, "run_step", fake_run_step)
    scale = lb.SCALES["full"]
    plan = lb.plan_oneshot_epochs(lb.ROWS["hurricane"], scale, tmp_path, None, None, {"latency_ms": 1.0})
    assert seen == [2, 4] and plan["per_epoch_cpu_s"] == pytest.approx(100.0) and plan["fixed_cpu_s"] == pytest.approx(30.0)
    assert plan["epochs"] == int((0.9 * 450 - 30) // 100) == 3
    assert lb.plan_oneshot_epochs(lb.ROWS["hurricane"], scale, tmp_path, None, None) == plan and seen == [2, 4]  # reused

    def slow(cmd, run, log):  # one epoch costs more than the budget: the 2-epoch probe is stopped after 1
        e = int(cmd[cmd.index("--epochs") + 1])
        run.mkdir(parents=True, exist_ok=True)
        (run / "cost.json").write_text(json.dumps({"cpu_s": 490.0}))
        return {"search": {"metrics": {"epochs_run": 1}}}

    monkeypatch.setattr(lb, "run_step", slow)
    assert lb.plan_oneshot_epochs(lb.ROWS["bats"], scale, tmp_path, None, None)["epochs"] == 1
    assert lb.plan_oneshot_epochs(lb.ROWS["hurricane"], scale, tmp_path / "x", None, None)["epochs"] == 2


def test_runner_refuses_unknown_rows(capsys):
    with pytest.raises(SystemExit) as e:
        lb.main(["--rows", "nope", "--dry-run"])
    assert e.value.code == 2 and "unknown row(s) ['nope']" in capsys.readouterr().err


@pytest.mark.parametrize("argv, msg", [(["--report-only"], "--report-only needs --write"),
                                       (["--report-only", "--write"], "no finished leaderboard runs"),
                                       (["--latency"], "no finished leaderboard runs")])
def test_report_and_latency_passes_refuse_an_empty_board(tmp_path, capsys, argv, msg):
    with pytest.raises(SystemExit) as e:
        lb.main(["--scale", "toy", "--out", str(tmp_path / "empty"), "--docs", str(tmp_path / "d"), *argv])
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_dry_run_prints_one_command_per_job(capsys, tmp_path):
    assert lb.main(["--scale", "full", "--seeds", "0", "--dry-run", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    e = lb.SCALES["full"].retrain_epochs
    assert all(f"--epochs {e} " in line or line.endswith(f"--epochs {e}") for line in lines if " train " in line)
    assert len(lines) == len(lb.ROWS)
    assert all("--threads 1" in line for line in lines)
    assert all("--clock cpu" in line for line in lines if " search " in line)
    assert sum("--seconds 450" in line for line in lines) == sum(r.kind == "search" for r in lb.ROWS.values())
    assert any("train --arch birealnet" in line for line in lines)
    # a board without its epoch plan yet: one-shot searches say PLANNED, and so does the alpha-travel arch_lr
    darts = next(line for line in lines if "--method darts " in line)
    assert "--epochs PLANNED" in darts and "arch_lr=RULE(PLANNED)" in darts
    assert "--epochs PLANNED" not in next(line for line in lines if "--method pnas " in line)


# -- the default job's alpha-movement measure ------------------------------------------------------------------------
def test_alpha_movement_is_the_entropy_drop_as_a_share_of_log_k():
    hist = [{"event": "epoch", "mean_entropy": 1.60, "op_names": list("abcde")},
            {"event": "epoch", "mean_entropy": 1.40, "op_names": list("abcde")}]
    m = api.alpha_movement(hist)
    assert m["max_entropy"] == pytest.approx(math.log(5))
    assert m["drop"] == pytest.approx((math.log(5) - 1.40) / math.log(5)) and m["met"] is True
    assert api.alpha_movement(hist[:1])["met"] is False
    assert api.alpha_movement([{"event": "epoch", "score": 1}]) is None  # no alphas, no measure


def test_demo_config_follows_the_alpha_travel_rule():
    """configs/demo.yaml's arch_lr is the alpha-travel rule for the steps its alphas take (epochs after any
    warm-up x search-train batches): changing the search length without re-deriving arch_lr fails here."""
    from nasforge import config as cfgmod
    from nasforge.strategies.darts import arch_lr_for

    cfg = cfgmod.load_yaml(api.DEMO_CONFIG)
    portion = cfg.get("train_portion", cfgmod.SEARCH_DEFAULTS["train_portion"])
    per_epoch = math.ceil(int(cfg["subset"] * portion) / cfg["batch_size"])
    steps = (cfg["budget"]["epochs"] - cfg["hparams"].get("arch_warmup", 0)) * per_epoch
    assert cfg["hparams"]["arch_lr"] == pytest.approx(arch_lr_for(steps), rel=2e-3)
    assert cfg["hparams"]["hessian_every"] == 0 and cfg["method"] == "single-darts"


def test_demo_reports_alpha_movement_and_the_baseline_trained_the_same_way(tmp_path, monkeypatch, cli_ok):
    toy = {"dataset": "synthetic", "dataset_options": {"n_train": 128, "n_test": 32, "resolution": 16},
           "subset": 64, "budget": {"epochs": 2}, "space_options": {"C": 4, "N": 1}, "threads": 1,
           "retrain": {"epochs": 1, "batch_size": 32}, "retrain_space_options": {"C": 4, "N": 1}, "retrain_subset": 48}
    res = api.demo(toy, run_root=tmp_path)
    move = res["alpha_movement"]
    hist = res["search"]["search"]["history"]
    assert move["epochs"] == 2 and move["mean_entropy_final"] == pytest.approx(hist[-1]["mean_entropy"])
    assert move["drop"] == pytest.approx((math.log(5) - hist[-1]["mean_entropy"]) / math.log(5))
    base = res["baseline"]
    assert base["model"] == "baseline" and base["epochs"] == 1
    bcfg = json.loads((Path(base["run_dir"]) / "config.json").read_text())
    assert bcfg["subset"] == 48 and bcfg["train"]["batch_size"] == 32 and bcfg["dataset_options"]["resolution"] == 16
    # trained the same way: the search's precision and memory format (auto), not a fixed fp32
    scfg = json.loads((Path(res["search"]["run_dir"]) / "config.json").read_text())
    assert (bcfg["precision"], bcfg["memory_format"]) == (scfg["precision"], scfg["memory_format"]) == ("auto", "auto")
    assert move["mean_entropy_per_epoch"] == pytest.approx([h["mean_entropy"] for h in hist])
    # the command prints the measure and both accuracies
    monkeypatch.setattr(api, "demo", lambda overrides, run_root: res)
    out = cli_ok("demo", "--quiet", "--out", str(tmp_path))
    assert "alphas: mean edge entropy" in out and "fell by" in out
    assert f"baseline CNN {base['test_accuracy']:.4f}" in out


def test_a_board_refuses_a_sitting_with_another_recipe(tmp_path):
    out = tmp_path / "lb"
    out.mkdir()
    (out / lb.RUNS_FILE).write_text(json.dumps([{"row": "baseline-cnn", "seed": 0, "epochs": 7}]))
    with pytest.raises(SystemExit, match=r"retrained for \[7\] epoch\(s\), this sitting asks for 1"):
        lb.run_board([lb.ROWS["baseline-cnn"]], [0], lb.SCALES["toy"], out)


def test_sizing_finds_the_largest_epoch_count_that_fits():
    rates = [{"row": "single-darts", "bf16_epoch_60k_s": 1000.0}, {"row": "birealnet", "bf16_epoch_60k_s": 500.0}]
    s = lb.sizing(rates, lb.SCALES["full"], seeds=3, hours=8.0, jobs=2)
    # searches: 3 x 450 s; one epoch of the table: 3 x (1000 + 2 stages x 500) = 6000 s
    assert s["search_cpu_s"] == 1350 and s["one_epoch_all_rows_cpu_s"] == 6000
    assert s["max_epochs"] == (8 * 3600 * 2 - 1350) // 6000


@pytest.mark.parametrize("name", ["baseline", "resnet20"])
def test_size_rule_respects_the_compute_bound_too(name):
    """With a FLOPs bound the width is the largest that keeps both bounds; the next ladder step breaks one."""
    data = {"in_channels": 1, "num_classes": 10, "resolution": 28}
    flops = 64e6
    opts, n = lb.scale_options(None, name, 1_000_000, data, flops)
    net = build_named(name, 1, 10, opts)
    assert lb._flops(net, data) <= flops and n <= 1_000_000
    nxt = build_named(name, 1, 10, {"width": lb.WIDTH_LADDER[lb.WIDTH_LADDER.index(opts["width"]) + 1]})
    assert lb._flops(nxt, data) > flops or param_counts(nxt)["params"] > 1_000_000
    assert opts["width"] < lb.scale_options(None, name, 1_000_000, data)[0]["width"]  # the bound binds here
