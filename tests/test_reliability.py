"""Reliability guarantees (issue 9): determinism across processes, contained trial failures, interrupts,
Ray with the real scratch estimator, threads inside trials, no empty run directories.
docs/reliability.md lists each guarantee with the test that proves it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nasforge
from nasforge import api
from nasforge.errors import UserError
from nasforge.runs.guard import RunInterrupted
from nasforge.runs.journal import TrialJournal

SRC = str(Path(nasforge.__file__).resolve().parents[1])
TINY = {"space": "nb201", "space_options": {"C": 4, "N": 1}, "dataset": "synthetic", "subset": 128, "threads": 1}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasforge.cli", *args], capture_output=True, text=True,
                          env=_env(), timeout=timeout)


# -- 1. determinism: the same seed gives bit-identical weights in fresh processes ---------------------------
_DETERMINISM = r"""
import hashlib, json, random, sys, torch
torch.seed(); random.seed()  # every process starts from a different global RNG state, as a real fresh run may
from nasforge import api
from nasforge.estimators.scratch import run_trial

def digest(path):
    sd = torch.load(path, weights_only=False)["model"]
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode()); h.update(sd[k].contiguous().numpy().tobytes())
    return h.hexdigest()

root = sys.argv[1]
tiny = {"dataset": "synthetic", "subset": 128, "test_subset": 64, "threads": 1}
t = api.train({**tiny, "arch": "baseline", "train": {"epochs": 1, "batch_size": 64}}, run_root=root)
s = api.search({**tiny, "space": "nb201", "space_options": {"C": 4, "N": 1}, "method": "random",
                "estimator": "scratch", "budget": {"trials": 2},
                "estimator_options": {"train": {"epochs": 1, "batch_size": 64}},
                "retrain": {"epochs": 1, "batch_size": 64}, "retrain_subset": 128}, run_root=root)
o = api.search({**tiny, "space": "nb201", "space_options": {"C": 4, "N": 1}, "method": "single-darts",
                "budget": {"epochs": 1}, "hparams": {"hessian_every": 0}}, run_root=root)
print(json.dumps({"train": [t["test_accuracy"], digest(t["model_file"])],
                  "trials": [r["score"] for r in map(json.loads, open(s["run_dir"] + "/metrics.jsonl"))
                             if r.get("event") == "trial"],
                  "retrain": digest(s["retrain"]["model_file"]),
                  "oneshot": [o["arch"], o["search"]["history_tail"]["alpha_softmax"]]}))
"""


def test_same_seed_same_weights_in_fresh_processes(tmp_path):
    script = tmp_path / "det.py"
    script.write_text(_DETERMINISM)
    outs = []
    for i in range(2):
        p = subprocess.run([sys.executable, str(script), str(tmp_path / f"runs{i}")], capture_output=True, text=True,
                           env=_env(), timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        outs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1]
    assert len(outs[0]["trials"]) == 2 and all(isinstance(s, float) for s in outs[0]["trials"])


# -- 2. a diverging trial is recorded as failed; the search goes on; resume re-runs nothing ------------------
def test_diverging_trials_fail_alone_and_resume_reruns_nothing(tmp_path):
    cfg = {**TINY, "method": "random", "estimator": "scratch", "budget": {"trials": 8},
           "estimator_options": {"train": {"epochs": 1, "batch_size": 16, "lr": 20000, "grad_clip": None}}}
    res = api.search(cfg, run_root=tmp_path)
    run = Path(res["run_dir"])
    with TrialJournal(run) as j:
        trials = j.all()
    failed = [t for t in trials if t.status == "failed"]
    done = [t for t in trials if t.status == "done"]
    assert failed and done and len(failed) + len(done) == 8  # a real NaN, and the search went on
    assert all("loss became nan" in t.error and t.attempts == 1 for t in failed)  # deterministic: no retry
    assert res["search"]["metrics"]["failed"] == len(failed) and res["trials"]["failed"] == len(failed)
    assert all(t.result["threads"] == 1 for t in done)  # --threads 1 applies inside trials (item 5)
    # an interrupted search (no checkpoint, no result yet) resumes without running any trial again
    for name in ("search.json", "result.json", "checkpoint.pt", "arch.json"):
        (run / name).unlink()
    again = api.search(resume=run)
    with TrialJournal(run) as j:
        assert [(t.key, t.status, t.attempts) for t in j.all()] == [(t.key, t.status, t.attempts) for t in trials]
    assert again["arch"] == res["arch"] and again["search"]["metrics"]["failed"] == len(failed)


# -- 3. Ctrl-C: exit 130, one line naming the run directory; cost.json kept; temp files cleaned ---------------
def test_ctrl_c_exits_130_naming_the_run_and_resumes(tmp_path):
    run = tmp_path / "runs" / "t"
    args = [sys.executable, "-m", "nasforge.cli", "train", "--arch", "baseline", "--dataset", "synthetic",
            "--subset", "256", "--test-subset", "64", "--epochs", "40", "--batch-size", "64", "--threads", "1",
            "--precision", "fp32", "--out", str(tmp_path / "runs"), "--name", "t", "--quiet"]  # fp32: the slower
    # path keeps the run going for a while after the first checkpoint (bf16 could finish before the signal)
    # SIGINT back to its default in the child: a shell starts background jobs with SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler, so the test depended on how the suite was launched
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "checkpoint.pt").exists():
        time.sleep(0.2)
    assert (run / "checkpoint.pt").exists(), "no checkpoint appeared"
    time.sleep(0.3)
    assert (run / "cost.json").exists()  # written with each checkpoint, before any interrupt
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(run.resolve()) in lines[0] and "--resume" in lines[0], err
    cost = json.loads((run / "cost.json").read_text())
    assert cost["wall_s"] > 0
    assert not list(run.glob(".*.tmp"))
    (run / ".checkpoint.pt.killed.tmp").write_bytes(b"half a checkpoint")  # a write killed half-way
    done = _cli("train", "--resume", str(run))
    assert done.returncode == 0, done.stderr
    assert not list(run.glob(".*.tmp"))
    result = json.loads((run / "result.json").read_text())
    assert result["epochs"] == 40 and len(result["history"]) == 40
    assert json.loads((run / "cost.json").read_text())["wall_s"] >= cost["wall_s"]


def test_interrupt_after_search_keeps_arch_json(tmp_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "_retrain", interrupted)
    cfg = {**TINY, "method": "single-darts", "budget": {"epochs": 1}, "hparams": {"hessian_every": 0},
           "retrain": {"epochs": 1}}
    with pytest.raises(RunInterrupted) as e:
        api.search(cfg, run_root=tmp_path, run_name="r")
    assert e.value.exit_code == 130 and str((tmp_path / "r").resolve()) in str(e.value)
    arch = json.loads((tmp_path / "r" / "arch.json").read_text())  # written as soon as the search ended
    assert arch["space"] == "nb201" and arch["arch"].startswith("|")


# -- 4. Ray with the real scratch estimator; a wrong address fails in seconds --------------------------------
def test_ray_runs_the_scratch_estimator(tmp_path):
    pytest.importorskip("ray")
    p = _cli("search", "--space", "nb201", "--method", "random", "--estimator", "scratch", "--trials", "2",
             "--executor", "ray", "--workers", "1", "--dataset", "synthetic", "--subset", "64", "--space-opt", "C=4",
             "--space-opt", "N=1", "--threads", "1", "--out", str(tmp_path), "--name", "r", "--quiet")
    assert p.returncode == 0, p.stderr[-3000:]
    with TrialJournal(tmp_path / "r") as j:
        trials = j.all()
    assert len(trials) == 2 and all(t.status == "done" for t in trials)
    assert all(t.worker and ":" in t.worker and t.result["threads"] == 1 for t in trials)


def test_unreachable_ray_address_fails_in_seconds(tmp_path):
    t0 = time.time()
    p = _cli("search", "--space", "nb201", "--method", "random", "--estimator", "scratch", "--trials", "2",
             "--executor", "ray", "--ray-address", "127.0.0.1:1", "--dataset", "synthetic", "--out", str(tmp_path))
    assert time.time() - t0 < 30
    assert p.returncode == 2 and "cannot reach the Ray cluster at '127.0.0.1:1'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and not any(tmp_path.iterdir())


# -- 8. no error leaves an empty run directory behind ------------------------------------------------------
def test_error_inside_a_run_leaves_no_empty_run_dir(tmp_path):
    # manas' top2 needs a supernet keeping 2 inputs per node; the strategy finds out in its setup, inside the run
    with pytest.raises(UserError, match="top2 applies to supernets"):
        api.search({**TINY, "method": "manas", "budget": {"epochs": 1}, "hparams": {"top2": True}},
                   run_root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_resume_names_the_right_command(tmp_path):
    api.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 32, "threads": 1,
               "train": {"epochs": 1}}, run_root=tmp_path, run_name="t")
    with pytest.raises(UserError, match=r"is a 'train' run; resume it with: nasforge train --resume"):
        api.search(resume=tmp_path / "t")


# -- 7. an explicit --data-root is authoritative; readers validate labels -----------------------------------
def test_explicit_data_root_is_authoritative(tmp_path, monkeypatch):
    from nasforge.data import load_dataset
    from nasforge.errors import DataError

    monkeypatch.delenv("NASFORGE_DATA", raising=False)
    with pytest.raises(DataError) as e:  # even where Debian's Fashion-MNIST is installed
        load_dataset("fashion-mnist", tmp_path / "empty")
    assert str(tmp_path / "empty") in str(e.value) and "/usr/share/datasets" not in str(e.value)


def test_cifar_labels_out_of_range_are_a_data_error(tmp_path):
    import pickle

    import numpy as np

    from nasforge.data import load_dataset
    from nasforge.errors import DataError

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        labels = [0, 12] if i == 2 else [0, 1]  # one batch holds a label outside 0..9
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, f)
    with pytest.raises(DataError, match=r"label 12 outside 0\.\.9"):
        load_dataset("cifar10", folder)


# -- 12. --seconds is checked every step; the run stops cleanly with a checkpoint ---------------------------
def test_seconds_budget_is_checked_every_step(tmp_path):
    cfg = {**TINY, "subset": 1024, "method": "single-darts", "batch_size": 16,
           "budget": {"epochs": 50, "seconds": 0.5}, "hparams": {"hessian_every": 0, "eval_batches": 1}}
    t0 = time.perf_counter()
    res = api.search(cfg, run_root=tmp_path, run_name="s")
    epochs = [m for m in map(json.loads, (tmp_path / "s" / "metrics.jsonl").read_text().splitlines())
              if m.get("event") == "epoch"]
    assert len(epochs) == 1 and epochs[0]["partial"] is True  # stopped inside the first epoch (32 steps)
    assert (tmp_path / "s" / "checkpoint.pt").exists() and res["search"]["metrics"]["epochs_run"] == 1
    assert time.perf_counter() - t0 < 60


# -- 11. plain progress lines when stderr is not a terminal --------------------------------------------------
def test_plain_progress_lines_without_a_terminal(tmp_path):
    p = _cli("train", "--arch", "baseline", "--dataset", "synthetic", "--subset", "64", "--test-subset", "32",
             "--epochs", "2", "--threads", "1", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.startswith("train epoch ")]
    assert len(lines) == 2 and "train_loss" in lines[0] and "test_accuracy" in lines[1]
    assert lines[0].startswith("train epoch 1 of 2:") and p.stderr.startswith("train: started (2 epoch(s))")
    q = _cli("train", "--arch", "baseline", "--dataset", "synthetic", "--subset", "64", "--test-subset", "32",
             "--epochs", "1", "--threads", "1", "--out", str(tmp_path), "--quiet")
    assert q.returncode == 0 and not q.stderr.strip()


# -- 9/10. a run directory stands on its own; the ONNX file takes raw pixels ---------------------------------
def test_moved_run_evaluates_and_exports_raw_pixels(tmp_path, monkeypatch):
    import shutil

    import onnx

    work = tmp_path / "work"
    work.mkdir()
    (work / "arch.json").write_text(json.dumps({"space": "nb201", "space_config": {"C": 4, "N": 1},
                                                "arch": "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+"
                                                        "|skip_connect~0|none~1|avg_pool_3x3~2|"}))
    monkeypatch.chdir(work)  # relative paths, as typed by a user
    # fp32: the ONNX file is fp32, so the accuracy check below compares like with like
    t = api.train({"arch": "arch.json", "dataset": "synthetic", "subset": 128, "threads": 1, "precision": "fp32",
                   "train": {"epochs": 1, "batch_size": 64}}, run_root="runs", run_name="t")
    assert json.loads((work / "runs" / "t" / "arch.json").read_text())["arch"] == t["arch"]
    moved = tmp_path / "elsewhere" / "t"
    shutil.move(str(work / "runs" / "t"), moved)
    shutil.rmtree(work)  # nothing outside the run directory is left
    monkeypatch.chdir(tmp_path)
    ev = api.evaluate(moved)
    assert ev["accuracy"] == pytest.approx(t["test_accuracy"])
    ex = api.export(moved, tmp_path / "m.onnx")
    assert ex["max_abs_diff"] < 1e-4 and ex["input"].startswith("float32 [N, C, H, W] pixel values 0..255")
    # fed raw pixels, the file is as accurate as the PyTorch model on normalised input (same 500 test images)
    assert ex["onnx_accuracy_images"] == ev["images"] and abs(ex["onnx_accuracy_raw_pixels"] - ev["accuracy"]) <= 0.004
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["mean"]) == pytest.approx(ex["mean"]) and len(json.loads(meta["std"])) == 1


def test_resume_says_which_flags_it_ignores(tmp_path):
    api.train({"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 32, "threads": 1,
               "train": {"epochs": 1}}, run_root=tmp_path, run_name="t")
    p = _cli("train", "--resume", str(tmp_path / "t"), "--epochs", "5", "--lr", "0.1", "--quiet")
    assert p.returncode == 0, p.stderr
    assert "ignored: --epochs, --lr" in p.stderr


# -- smaller ones ----------------------------------------------------------------------------------------
def test_subset_larger_than_the_data_is_an_error(run_cli, tmp_path):
    code, _, err = run_cli("train", "--arch", "baseline", "--dataset", "synthetic", "--subset", "100000",
                           "--out", str(tmp_path))
    assert code == 2 and "subset 100000 is larger than the data set (2000 images)" in err
    assert not any(tmp_path.iterdir())


def test_degenerate_warning_is_one_line(tmp_path, capsys, monkeypatch):
    from nasforge.engine.oneshot import OneShotStrategy

    monkeypatch.setattr(OneShotStrategy, "derive", lambda self, supernet, ctx: "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    res = api.search({**TINY, "method": "single-darts", "budget": {"epochs": 1}, "hparams": {"hessian_every": 0}},
                     run_root=tmp_path)
    err = [l for l in capsys.readouterr().err.splitlines() if "warning" in l.lower()]
    assert len(err) == 1 and err[0].startswith("warning: the derived architecture") and ".py" not in err[0]
    assert res["search"]["metrics"]["degenerate"] is True and len(res["search"]["history"]) == 1


def test_help_shows_defaults_and_switches():
    p = _cli("search", "--help")
    assert p.returncode == 0
    assert "[default: single-darts]" in p.stdout.replace("-\n", "-").replace("\n", " ").replace("  ", " ") or \
        "single-" in p.stdout
    assert "[default: 64]" in p.stdout and "<bool>" not in p.stdout
    assert "nasforge list METHOD" in p.stdout
