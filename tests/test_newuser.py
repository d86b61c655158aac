"""What a new user tripped over (issue 24, items 1-4, 6-8): each test fails on the code before its fix."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from nasforge import api

NB201_ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished tiny train run (synthetic data, one epoch)."""
    root = tmp_path_factory.mktemp("trained")
    old = os.umask(0o022)
    try:
        api.train({"arch": "baseline", "dataset": "synthetic", "subset": 128, "test_subset": 64, "threads": 1,
                   "train": {"epochs": 1, "batch_size": 64}}, run_root=root, run_name="t")
    finally:
        os.umask(old)
    return root / "t"


# -- item 8: files follow the umask ------------------------------------------------------------------------------
@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_atomic_writes_follow_the_umask(tmp_path, mask):
    from nasforge.utils import atomic_torch_save, atomic_write_json

    old = os.umask(mask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        atomic_torch_save({"x": 1}, tmp_path / "c.pt")
        with open(tmp_path / "plain", "w"):  # what metrics.jsonl gets
            pass
    finally:
        os.umask(old)
    want = 0o666 & ~mask
    for name in ("a.json", "c.pt", "plain"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name


def test_run_files_are_as_readable_as_metrics(trained):
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in trained.iterdir() if p.is_file()}
    assert modes["metrics.jsonl"] == 0o644
    for name in ("config.json", "result.json", "checkpoint.pt", "model.pt", "cost.json"):
        assert modes[name] == 0o644, (name, oct(modes[name]))


# -- item 7: one line instead of a traceback ----------------------------------------------------------------------
@pytest.mark.parametrize("opset", ["5", "99"])
def test_export_bad_opset_is_one_line(run_cli, trained, tmp_path, opset):
    code, out, err = run_cli("export", str(trained), "--opset", opset, "--out", str(tmp_path / "m.onnx"))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "--opset must be an integer from 7 to" in err
    assert not (tmp_path / "m.onnx").exists()


def test_unwritable_outputs_are_one_line_before_work(run_cli, trained, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = str(blocker / "sub")  # a folder under a file: cannot be created, by anyone (root included)
    cases = [
        ("export", str(trained), "--out", f"{bad}/m.onnx"),
        ("export", str(trained), "--out", str(tmp_path)),
        ("report", str(trained), "--out", f"{bad}/r.html"),
        ("compare", str(trained), "--out", f"{bad}/c.html"),
        ("compare", str(trained), "--out", str(tmp_path / "c.html"), "--csv", f"{bad}/c.csv"),
        ("train", "--arch", "baseline", "--dataset", "synthetic", "--epochs", "1", "--out", bad),
        ("train", "--arch", "baseline", "--dataset", "synthetic", "--epochs", "1", "--out", str(blocker)),
        ("search", "--epochs", "1", "--dataset", "synthetic", "--subset", "64", "--out", bad),
        ("latency", "build", "--device", "local-cpu-1t", "--cache", f"{bad}/lut.json"),
    ]
    for args in cases:
        code, out, err = run_cli(*args)
        assert code == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (args, err)
        assert err.startswith("error: --"), (args, err)
    assert not (tmp_path / "c.html").exists()  # the csv was checked before the page was written


def test_an_export_that_fails_leaves_no_file(trained, tmp_path, monkeypatch):
    import torch

    from nasforge.errors import UserError

    def broken(*a, **k):
        raise RuntimeError("Unsupported: a made-up op at this opset\nsecond line")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(UserError, match="opset 17 cannot express this model"):
        api.export(trained, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# -- item 8: an explicit --name is never silently changed -----------------------------------------------------------
def test_existing_name_is_refused_before_work(run_cli, trained):
    code, out, err = run_cli("train", "--arch", "baseline", "--dataset", "synthetic", "--epochs", "1",
                             "--out", str(trained.parent), "--name", "t")
    assert code == 2 and "already exists (a finished train run); choose another --name" in err
    assert not (trained.parent / "t-2").exists()
    code, out, err = run_cli("train", "--arch", "baseline", "--dataset", "synthetic", "--epochs", "1",
                             "--out", str(trained.parent), "--name", "../escape")
    assert code == 2 and "--name must be a plain folder name" in err
    assert not (trained.parent.parent / "escape").exists()


def test_unfinished_run_name_points_at_resume(tmp_path):
    from nasforge.errors import UserError
    from nasforge.runs.store import RunDir

    RunDir.create(tmp_path, "search", {"x": 1}, name="s")
    with pytest.raises(UserError, match=r"unfinished search run; resume it with: nasforge search --resume"):
        RunDir.create(tmp_path, "search", {"x": 1}, name="s")
    # unnamed runs started in the same second still get distinct folders
    a = RunDir.create(tmp_path, "train", {})
    b = RunDir.create(tmp_path, "train", {})
    assert a.path != b.path


# -- item 6: --nproc checks first, then relaunches ------------------------------------------------------------------
def test_nproc_checks_before_it_relaunches(run_cli, relaunches, tmp_path):
    bad = [
        ("search", "--method", "darts", "--epochs", "1", "--set", "nosuch=1", "--nproc", "2"),
        ("search", "--method", "evolution", "--estimator", "table", "--trials", "8", "--tables", str(tmp_path),
         "--nproc", "2"),
        ("search", "--method", "random", "--estimator", "scratch", "--trials", "2", "--dataset", "synthetic",
         "--nproc", "2"),  # multi-trial under torchrun: refused in the parent
        ("search", "--epochs", "1", "--dataset", "synthetic", "--data-root", str(tmp_path / "none"), "--nproc", "2",
         "--space", "nb201", "--space-opt", "C=0"),
        ("train", "--arch", "baseline", "--dataset", "synthetic", "--set", "optimizer=rmsprop", "--nproc", "2"),
        ("train", "--arch", str(tmp_path / "missing.json"), "--nproc", "2"),
    ]
    for args in bad:
        code, out, err = run_cli(*args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)
    assert relaunches == []  # nothing was started for a command that cannot run
    # a good command is checked (no run directory is made by the check) and then relaunched without --nproc
    code, out, err = run_cli("search", "--method", "darts", "--epochs", "1", "--dataset", "synthetic",
                             "--subset", "64", "--space-opt", "C=4", "--space-opt", "N=1", "--threads", "1",
                             "--out", str(tmp_path / "runs"), "--nproc", "2")
    assert code == 0, err
    assert relaunches and relaunches[0][0] == 2 and "--nproc" not in relaunches[0][1]
    assert relaunches[0][1][:3] == ["search", "--method", "darts"]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# -- item 8: query-mode checkpoints do not grow with the history; PNAS says up front what its budget reaches ---------
def test_query_mode_checkpoints_do_not_grow_with_the_history(tmp_path, tables_dir, monkeypatch):
    from nasforge.runs.store import RunDir

    sizes: list[int] = []
    original = RunDir.save_checkpoint

    def spy(self, state):
        original(self, state)
        sizes.append((self.path / "checkpoint.pt").stat().st_size)

    monkeypatch.setattr(RunDir, "save_checkpoint", spy)
    cfg = {"method": "evolution", "estimator": "table", "tables": str(tables_dir), "budget": {"trials": 400},
           "hparams": {"population": 10, "sample_size": 3}}
    res = api.search(cfg, run_root=tmp_path, run_name="q")
    assert len(sizes) >= 390  # one checkpoint per round (batch 1)
    assert sizes[-1] <= sizes[30] * 1.1, (sizes[30], sizes[-1])  # constant, not linear in the trials
    lines = (tmp_path / "q" / "history.jsonl").read_text().splitlines()
    assert len(lines) == 400 and json.loads(lines[-1])["best_arch"] == res["arch"]


def test_pnas_warns_up_front_when_trials_cannot_grow_the_cells(tmp_path, capsys):
    from nasforge.strategies.pnas import PNAS
    from nasforge.engine.base import Budget, SearchContext
    from nasforge.spaces.pnas import PNASSpace

    space = PNASSpace(ops="reduced", blocks=2)
    for trials, grows in ((8, False), (36, False), (37, True)):
        s = PNAS(K=4)
        s.setup(SearchContext(space=space, budget=Budget(trials=trials)))
        err = capsys.readouterr().err
        assert ("never grow past 1 of 2 steps" in err) == (not grows), (trials, err)
        assert (s.extra_metrics().get("budget_note") is None) == grows


# -- item 1: a hard latency budget holds on the device ----------------------------------------------------------------
def test_hurricane_constrains_calibrated_latency_and_checks_the_winner_on_the_device(tmp_path, monkeypatch):
    from test_hurricane import TINY, fake_measure

    from nasforge.hardware import lut as lutmod
    from nasforge.hardware.lut import LatencyCache, build_local_lut
    from nasforge.hardware.verify import verdict, verify_latency
    from nasforge.spaces.layerwise import LayerwiseNetwork
    from nasforge.spaces.mobile import MobileSpace

    space = MobileSpace(**TINY)
    cache = tmp_path / "lut.json"
    raw = build_local_lut(space, "local-cpu-1t", LatencyCache(cache, "local-cpu-1t"), measure_fn=fake_measure)
    device = {"slowdown": 1.5}

    def on_device(module, shape, dev, **kw):  # whole networks are slower than the sum of their ops
        if isinstance(module, LayerwiseNetwork):
            return {"ms": device["slowdown"] * raw.predict(module.arch) + 0.02, "iqr_ms": 0.0, "min_ms": 0.0}
        return fake_measure(module, shape, dev)

    monkeypatch.setattr(lutmod, "measure", on_device)
    cfg = {"space": "mobile", "method": "hurricane", "dataset": "synthetic", "subset": 256, "batch_size": 32,
           "budget": {"epochs": 2}, "space_options": dict(TINY), "threads": 1,
           "hparams": {"population": 4, "sample_size": 2, "evaluations": 6, "bn_batches": 2, "eval_batches": 2,
                       "lut_cache": str(cache), "latency_frac": 0.6}}
    res = api.search(cfg, run_root=tmp_path / "runs", run_name="h")
    m = res["search"]["metrics"]
    arch = res["arch"]
    # the default: the LUT calibrated on whole networks (none was cached, so networks were measured first)
    assert m["latency_metric"] == "calibrated"
    assert m["latency_ms"] == pytest.approx(1.5 * raw.predict(arch) + 0.02, rel=1e-6)
    # the budget: latency_frac of the way from the fastest to the slowest network of the space searched
    lo, hi = raw.bounds(m["candidates"])
    assert m["budget_ms"] == pytest.approx(1.5 * (lo + 0.6 * (hi - lo)) + 0.02, rel=1e-6)
    assert m["latency_ms"] <= m["budget_ms"]
    assert json.loads(cache.read_text())["calibrations"]  # the calibration is cached for the next search
    # ... and the winner was measured end to end at the end: met, by this much
    check = m["on_target"]
    assert check["measured_ms"] == pytest.approx(m["latency_ms"]) and check["met"] is True
    assert check["margin_ms"] == pytest.approx(m["budget_ms"] - check["measured_ms"])
    assert check["margin_pct"] == pytest.approx(100 * check["margin_ms"] / m["budget_ms"])
    # the summary carries what was optimised (item 3), with the device and precision used
    opt = res["optimised"]
    assert opt["target"] == "local-cpu-1t" and opt["budget_ms"] == m["budget_ms"] and opt["latency_ms"] == m["latency_ms"]
    assert opt["on_target"]["verdict"].startswith("met on local-cpu-1t")
    assert res["device"] == "cpu" and res["precision"] == "fp32"
    # a device slower than its calibration: the check says the budget was missed, and by how much
    device["slowdown"] = 3.0
    missed = verify_latency(space, arch, "local-cpu-1t", m["budget_ms"])
    assert missed["met"] is False and missed["margin_ms"] < 0
    assert verdict(missed).startswith("MISSED on local-cpu-1t") and "% over" in verdict(missed)
    # the raw sum stays available as an explicit choice
    raw_cfg = {**cfg, "hparams": {**cfg["hparams"], "latency_metric": "raw"}}
    device["slowdown"] = 1.5
    m_raw = api.search(raw_cfg, run_root=tmp_path / "runs", run_name="r")["search"]["metrics"]
    lo, hi = raw.bounds(m_raw["candidates"])
    assert m_raw["budget_ms"] == pytest.approx(lo + 0.6 * (hi - lo), rel=1e-6)


def test_calibrated_table_is_the_linear_calibration_of_the_sum():
    from nasforge.hardware.lut import LayerLatencyTable, fit_calibration

    t = LayerLatencyTable("local-cpu-1t", [{"a": 1.0, "b": 2.0}, {"a": 0.5, "b": 3.0}], 0.25, {"a": 1.5, "b": 0.1})
    c = t.calibrated_table()
    for arch in (["a", "a"], ["b", "a"], ["b", "b"]):
        assert c.predict(arch) == pytest.approx(t.calibrated(arch)) and c.raw_predict(arch) == pytest.approx(t.predict(arch))
    assert c.bounds() == pytest.approx(tuple(1.5 * v + 0.1 for v in t.bounds()))
    c.recalibrate({"a": 2.0, "b": 0.0})
    assert c.predict(["b", "b"]) == pytest.approx(2.0 * t.predict(["b", "b"]))
    assert fit_calibration([1, 2, 3], [3, 2, 1])["a"] > 0  # noise that inverts the ranking: ratio fit, a > 0


# -- item 3: summaries say what was optimised, and when --seconds cut the search ---------------------------------------
def _cli(capsys, *args: str) -> tuple[int | None, str, str]:
    from nasforge.cli import main

    code = None
    try:
        main(list(args))
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_seconds_cut_is_said_in_the_summary_and_result(capsys, tmp_path):
    code, out, err = _cli(capsys, "search", "--method", "darts", "--dataset", "synthetic", "--subset", "256",
                             "--space-opt", "C=4", "--space-opt", "N=1", "--epochs", "3", "--seconds", "0.01",
                             "--threads", "1", "--out", str(tmp_path), "--name", "cut", "--quiet",
                             "--precision", "fp32")  # recorded as asked (the default, auto, is machine-dependent)
    assert code in (0, None), err
    shown = json.loads(out)
    assert shown["stopped"] == "seconds" and "essentially unsearched" in shown["note"]
    assert "note: --seconds 0.01 stopped the search after 0 full epoch(s) and part of one" in err
    saved = json.loads((tmp_path / "cut" / "result.json").read_text())
    assert saved["stopped"] == "seconds" and saved["note"] == shown["note"]
    assert saved["precision"] == "fp32" and saved["device"] == "cpu"


def test_optimised_facts_come_from_the_strategy_declaration():
    from nasforge.registry import STRATEGIES
    from nasforge.engine.base import SearchResult

    import nasforge.building

    nasforge.building.import_components()
    vitas = STRATEGIES.get("vitas")()
    res = SearchResult(arch={}, metrics={"macs": 1.5e6, "flops_min": 1e6, "flops_max": 2e6, "params": 7,
                                         "selection": {"best_fitness": 0.61, "evaluated": 24}})
    assert vitas.optimised(res) == {"macs": 1.5e6, "flops_min": 1e6, "flops_max": 2e6, "best_fitness": 0.61}
    assert STRATEGIES.get("darts")().optimised(res) == {}


def test_a_binary_search_reports_the_bops_of_its_cell():
    import random

    from nasforge.api import _binary_costs
    from nasforge.registry import SPACES

    import nasforge.building

    nasforge.building.import_components()
    space = SPACES.get("bats")(C=4, layers=3)
    costs = _binary_costs(space, space.sample(random.Random(0)))
    assert costs["bops_search_scale"] > 0 and costs["ops_search_scale"] >= costs["flops_search_scale"]
    assert _binary_costs(SPACES.get("nb201")(C=4, N=1), "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|") == {}


# -- item 2: compare averages only like with like, and links a train run to its search ------------------------------
def test_compare_groups_by_config_marks_unfinished_and_links_retraining(tmp_path, tables_dir):
    import shutil

    root = tmp_path / "runs"

    def tr(name, seed, epochs):
        return Path(api.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 64,
                               "threads": 1, "train": {"epochs": epochs, "batch_size": 32, "seed": seed},
                               "precision": "fp32"},
                              run_root=root, run_name=name)["run_dir"])

    a0, a1, b0 = tr("a0", 0, 1), tr("a1", 1, 1), tr("b0", 0, 2)
    cut = root / "a2"
    shutil.copytree(a1, cut)
    (cut / "result.json").unlink()  # killed before its result
    cfg = json.loads((cut / "config.json").read_text())
    cfg["train"]["seed"] = 2
    (cut / "config.json").write_text(json.dumps(cfg))
    # search -> train -> compare
    s = api.search({"method": "evolution", "estimator": "table", "tables": str(tables_dir), "budget": {"trials": 10}},
                   run_root=root, run_name="s")
    t = api.train({"arch": s["arch_file"], "dataset": "synthetic", "subset": 64, "test_subset": 64, "threads": 1,
                   "space_options": {"C": 4, "N": 1}, "train": {"epochs": 1, "batch_size": 32}},
                  run_root=root, run_name="t")
    res = api.compare([a0, a1, b0, cut, root / "s", root / "t"], out=tmp_path / "c.html", csv=tmp_path / "c.csv")
    groups = {(g["method"], g["differs"], g["status"]): g for g in res["groups"]}
    assert groups[("train", "train.epochs=1", "finished")]["n"] == 2  # seeds 0 and 1 of one configuration
    assert groups[("train", "train.epochs=2", "finished")]["n"] == 1  # not averaged with the 1-epoch runs
    assert groups[("train", "train.epochs=1", "unfinished")]["n"] == 1  # never averaged with finished runs
    rows = {r["run"]: r for r in res["runs"]}
    assert rows["t"]["search_run"] == "s"  # the train run is tied to its search ...
    assert rows["s"]["test_accuracy"] == pytest.approx(t["test_accuracy"]) and rows["s"]["test_accuracy_from"] == "t"
    (sg,) = [g for g in res["groups"] if g["method"] == "evolution"]
    assert sg["test_accuracy"]["mean"] == pytest.approx(t["test_accuracy"])  # ... so the search shows it
    assert not any(g["n"] and "t" in [r["run"] for r in res["runs"] if r.get("group") == g["id"]]
                   for g in res["groups"])
    assert rows["a0"]["precision"] == "fp32" and rows["a0"]["device"] == "cpu"
    html = (tmp_path / "c.html").read_text()
    assert "UNFINISHED" in html and "train.epochs=2" in html
    assert json.loads((Path(t["run_dir"]) / "config.json").read_text())["arch_from"] == str((root / "s").resolve())


# -- item 4: the report plots metrics, not bookkeeping, and stages one after the other --------------------------------
def test_report_curves_skip_bookkeeping_and_put_stages_in_sequence():
    from nasforge.report.charts import _xy, scalar_keys

    recs = [{"event": "epoch", "seq": 1, "stage": 1, "epoch": 1, "train_loss": 2.0},
            {"event": "epoch", "seq": 5, "stage": 1, "epoch": 2, "train_loss": 1.5},
            {"event": "epoch", "seq": 9, "stage": 2, "epoch": 1, "train_loss": 1.2, "partial": True}]
    assert scalar_keys(recs) == ["train_loss"]
    assert _xy(recs, "train_loss") == ([1.0, 2.0, 3.0], [2.0, 1.5, 1.2])
    plain = [{"epoch": 3, "train_loss": 1.0}, {"epoch": 4, "train_loss": 0.5}]
    assert _xy(plain, "train_loss")[0] == [3.0, 4.0]


# -- item 4: progress lines say phase, stage and epoch of how many; evolution shows --------------------------------
def test_progress_lines_name_phase_stage_and_total(capsys, tmp_path):
    from nasforge import progress

    progress.set_enabled(True)
    with progress.phase("search", 5, "hurricane on mobile"):
        progress.line({"event": "epoch", "stage": 1, "epoch": 1, "train_loss": 2.0})
        progress.line({"event": "epoch", "stage": 2, "epoch": 1, "train_loss": 1.0, "partial": True})
        for i in range(12):
            progress.line({"event": "candidate", "stage": 2, "arch": [], "accuracy": 0.1 * (i % 5)})
    with progress.phase("retrain", 4):
        progress.line({"event": "epoch", "epoch": 3, "test_accuracy": 0.5})
        progress.line({"event": "epoch", "epoch": 1, "train_loss": 1.0}, tmp_path / "retrain" / "stage2")
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "search: started (5 epoch(s), hurricane on mobile)"
    assert err[1].startswith("search stage 1 epoch 1: train_loss 2")  # not "epoch 1" twice, unplaced
    assert err[2].startswith("search stage 2 epoch 1 (cut by --seconds):")
    assert err[3:5] == ["search stage 2 evolution: candidate 1, best 0", "search stage 2 evolution: candidate 10, best 0.4"]
    assert err[5] == "retrain: started (4 epoch(s))"
    assert err[6].startswith("retrain epoch 3 of 4: test_accuracy 0.5")
    assert err[7].startswith("retrain stage 2 epoch 1:")  # a binary network's second training stage


def test_lut_timing_reports_progress(capsys, tmp_path):
    from test_hurricane import TINY, fake_measure

    from nasforge.hardware import lut as lutmod
    from nasforge.hardware.cost import latency_model
    from nasforge.spaces.mobile import MobileSpace
    from nasforge import progress

    progress.set_enabled(True)
    real = lutmod.measure
    lutmod.measure = fake_measure
    try:
        latency_model("local-cpu-1t", MobileSpace(**TINY), cache_path=tmp_path / "c.json", metric="raw")
    finally:
        lutmod.measure = real
    assert "latency table (local-cpu-1t):" in capsys.readouterr().err


# -- item 8: hints that point the right way, flags that exist, help that is complete -----------------------------------
def test_hints_point_the_right_way(run_cli, tmp_path):
    import random

    from nasforge.errors import ConfigError
    from nasforge.registry import SPACES
    from nasforge.strategies.vitas import calibrate_identity

    run = tmp_path / "s"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"command": "search", "dataset": "synthetic"}))
    (run / "result.json").write_text(json.dumps({"space": "nb201", "arch": NB201_ARCH}))
    code, _, err = run_cli("evaluate", str(run))
    assert code == 2 and f"nasforge train --arch {run / 'arch.json'}" in err
    import nasforge.building

    nasforge.building.import_components()
    space = SPACES.get("vit")()
    big = max(space.macs(space.sample(random.Random(i), p_identity=0.0)) for i in range(50))
    with pytest.raises(ConfigError, match=r"lower flops_min \(or budget\)"):
        calibrate_identity(space, 2 * big, 3 * big, samples=20, step=0.1)  # above every subnet: lower it
    small = min(space.macs(space.sample(random.Random(i), p_identity=1.0)) for i in range(50))
    with pytest.raises(ConfigError, match=r"raise flops_max \(or budget\)"):
        calibrate_identity(space, small / 4, small / 3, samples=20, step=0.1)  # below every subnet: raise it


def test_cli_flags_a_new_user_looked_for(run_cli, trained, tmp_path, capsys):
    from nasforge.cli import main

    base = ["search", "--dataset", "synthetic", "--epochs", "1", "--out", str(tmp_path / "runs")]
    code, _, err = run_cli(*base, "--test-subset", "64")
    assert code == 2 and "--test-subset applies only with retraining" in err
    code, _, err = run_cli(*base, "--retrain-epochs", "1", "--retrain-subset", "0")
    assert code == 2 and "retrain_subset" in err and "Traceback" not in err
    code, out, err = run_cli("evaluate", str(trained), "--threads", "0")
    assert code == 2 and "threads must be an integer >= 1" in err
    ev = api.evaluate(trained, threads=1, test_subset=32)
    assert ev["images"] == 32
    try:
        main(["train", "--help"])
    except SystemExit as e:
        assert e.code in (0, None)
    assert "sgd | adam | adamw" in capsys.readouterr().out


def test_pyproject_license_is_an_spdx_string():
    import tomllib

    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert data["project"]["license"] == "Apache-2.0"  # a table makes setuptools >= 77 print a deprecation banner
    assert any(r.startswith("setuptools>=77") for r in data["build-system"]["requires"])


# -- found by a new-user pass at the end of session 5 ------------------------------------------------------------
def test_dotted_option_keys_set_nested_options_and_the_hint_gives_that_syntax(run_cli):
    from nasforge.config import parse_assignments
    from nasforge.errors import ConfigError

    assert parse_assignments(["train.epochs=2", "train.batch_size=32", "eta=2"]) == \
        {"train": {"epochs": 2, "batch_size": 32}, "eta": 2}
    for bad in (["a..b=1"], ["train=3", "train.epochs=2"]):
        with pytest.raises(ConfigError):
            parse_assignments(bad)
    code, _, err = run_cli("search", "--method", "asha", "--estimator", "scratch", "--trials", "1", "--epochs", "2",
                           "--dataset", "synthetic")
    assert code == 2 and "--estimator-opt train.epochs=N" in err


def test_list_prints_help_examples_in_brackets(cli_ok):
    assert "[latency@pixel3<=5ms" in cli_ok("list", "nsga2")


def test_proxy_score_of_sampled_architectures_reports_the_scale_they_were_built_at(cli_ok):
    out = json.loads(cli_ok("proxy", "score", "--space", "nb201", "--sample", "1", "--proxy", "params",
                            "--space-opt", "C=4", "--space-opt", "N=1", "--dataset", "synthetic"))
    cfg = out["results"][0]["space_config"]
    assert (cfg["C"], cfg["N"]) == (4, 1)


def test_a_table_estimator_without_tables_is_refused_before_the_search_starts(run_cli, tmp_path):
    for method in ("asha", "evolution"):
        code, _, err = run_cli("search", "--method", method, "--estimator", "table", "--trials", "10",
                               "--out", str(tmp_path))
        assert code == 2 and "needs --tables" in err and "started" not in err, err
    assert not any(tmp_path.iterdir())
