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


@pytest.fixture
def relaunches(monkeypatch):
    """Calls of distributed.relaunch (stubbed: no processes start; it 'succeeds')."""
    from nasforge import distributed

    calls: list[tuple[int, list[str]]] = []
    monkeypatch.setattr(distributed, "relaunch", lambda n, argv: calls.append((n, list(argv))) or 0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return calls


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
