"""A run directory from someone else never runs code (issue 24, item 9).

Checkpoints and model files are read with `torch.load(weights_only=True)` and a numpy allowlist
(`nasforge.runs.store.load_torch_file`); CIFAR's python batches go through a restricted unpickler. A crafted
file whose pickle would create a file is refused with one line (exit 2) and the file is never created."""
from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch

from nasforge import api
from nasforge.errors import UserError
from nasforge.runs.store import RunDir

TRAIN = {"arch": "baseline", "dataset": "synthetic", "subset": 64, "test_subset": 32, "threads": 1,
         "train": {"epochs": 1, "batch_size": 32}}
SEARCH = {"space": "nb201", "space_options": {"C": 4, "N": 1}, "method": "manas", "dataset": "synthetic",
          "subset": 64, "batch_size": 32, "threads": 1, "budget": {"epochs": 1}}


class _CreatesFile:
    """Unpickling this calls open(target, "w"): the file appears only if the pickle is executed."""

    def __init__(self, target) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def _plant(path, target) -> None:
    """Overwrite a run's torch file with one that looks like it (same keys) but runs code when unpickled."""
    torch.save({"model": _CreatesFile(target), "mean": [0.5], "std": [0.5], "kind": "train", "epoch": 1}, path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    api.train(TRAIN, run_root=root, run_name="t")
    return root / "t"


def _copy(run, tmp_path, name="r"):
    dst = tmp_path / name
    shutil.copytree(run, dst)
    return dst


def _one_line_refusal(code, err, path) -> None:
    assert code == 2, err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "never writes" in lines[0] and str(path.name) in lines[0], err


@pytest.mark.parametrize("command", ["evaluate", "export", "report"])
def test_a_crafted_model_file_is_refused_and_never_runs(trained, tmp_path, run_cli, cli_ok, command):
    run = _copy(trained, tmp_path)
    target = tmp_path / "pwned"
    _plant(run / "model.pt", target)
    _plant(run / "checkpoint.pt", target)
    args = {"evaluate": ["evaluate", str(run)], "export": ["export", str(run), "--out", str(tmp_path / "m.onnx")],
            "report": ["report", str(run), "--out", str(tmp_path / "r.html")]}[command]
    if command == "report":  # the report reads JSON only: it never opens a torch file
        cli_ok(*args)
        assert (tmp_path / "r.html").is_file()
    else:
        code, _, err = run_cli(*args)
        _one_line_refusal(code, err, run / "model.pt")
    assert not target.exists(), "the pickle in the run directory was executed"


def test_a_crafted_teacher_is_refused_and_never_runs(trained, tmp_path, run_cli):
    teacher = _copy(trained, tmp_path, "teacher")
    target = tmp_path / "pwned"
    _plant(teacher / "model.pt", target)
    code, _, err = run_cli("train", "--arch", "baseline", "--dataset", "synthetic", "--subset", "64",
                           "--test-subset", "32", "--epochs", "1", "--teacher", str(teacher), "--quiet",
                           "--out", str(tmp_path / "runs"))
    assert not target.exists()
    _one_line_refusal(code, err, teacher / "model.pt")


@pytest.mark.parametrize("command", ["train", "search"])
def test_a_crafted_checkpoint_is_refused_on_resume(trained, tmp_path, run_cli, command, monkeypatch):
    if command == "train":
        run = _copy(trained, tmp_path)
    else:
        api.search(SEARCH, run_root=tmp_path, run_name="r")
        run = tmp_path / "r"
    for name in ("result.json", "model.pt", "search.json", "arch.json"):  # an unfinished run
        (run / name).unlink(missing_ok=True)
    target = tmp_path / "pwned"
    _plant(run / "checkpoint.pt", target)

    def no_data(*a, **k):
        raise AssertionError("the dataset was loaded before the checkpoint was checked")

    monkeypatch.setattr("nasforge.api.load_dataset", no_data)  # refused before any work
    code, _, err = run_cli(command, "--resume", str(run), "--quiet")
    assert not target.exists()
    assert code == 2 and "never writes" in err and "checkpoint.pt" in err and "Traceback" not in err, err


def test_nasforge_checkpoints_with_numpy_state_still_load(tmp_path):
    """MANAS keeps agent arrays and a loss history as numpy arrays: they are allowlisted (numeric dtypes
    only), so its checkpoints, and those written before this change, load and resume."""
    res = api.search(SEARCH, run_root=tmp_path, run_name="m")
    state = RunDir(res["run_dir"]).load_checkpoint()
    arrays = state["strategy"]["agents"]["arrays"]
    assert arrays and all(isinstance(a, np.ndarray) for a in arrays.values())
    assert isinstance(state["strategy"]["loss_history"], np.ndarray)
    # an object array (which could hold anything) is not on the list
    from nasforge.runs.store import load_torch_file

    torch.save({"x": np.array([1, "a"], dtype=object)}, tmp_path / "obj.pt")
    with pytest.raises(UserError, match="never writes .*ObjectDType"):
        load_torch_file(tmp_path / "obj.pt")


def test_a_corrupt_checkpoint_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(UserError, match="unreadable .*delete it to restart"):
        RunDir(tmp_path).load_checkpoint()


def _cifar_folder(tmp_path, payload):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        good = {b"batch_label": b"x", b"labels": [i % 10, (i + 5) % 10], b"data": np.full((2, 3072), i, np.uint8),
                b"filenames": [b"a.png", b"b.png"]}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(good, protocol=2))
    (folder / "test_batch").write_bytes(payload)
    return folder


def test_a_crafted_cifar_batch_is_refused_and_never_runs(tmp_path, run_cli):
    target = tmp_path / "pwned"
    folder = _cifar_folder(tmp_path, pickle.dumps({b"data": _CreatesFile(target), b"labels": [0]}))
    code, _, err = run_cli("train", "--arch", "baseline", "--dataset", "cifar10", "--data-root", str(folder),
                           "--epochs", "1", "--out", str(tmp_path / "runs"))
    assert not target.exists()
    assert code == 2 and "test_batch" in err and "io.open" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
