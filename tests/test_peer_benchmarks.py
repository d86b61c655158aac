"""The helpers the NNI side-by-side benchmarks share (benchmarks/_peer.py): arm order, failed arms, and the
same-precision and best-against-best comparisons with their targets (issue 20). The runs themselves need
NNI's venv and are made by hand (docs/benchmarks.md)."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def peer():
    spec = importlib.util.spec_from_file_location("_peer", REPO / "benchmarks" / "_peer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(ips: float, rss: float) -> dict:
    return {"images_per_s": ips, "rss_peak_mb": rss, "rss_delta_mb": rss / 2, "user_level_s_per_step": 64 / ips}


def test_arm_order_rotates_by_one_per_seed(peer):
    arms = ["nasforge:fp32", "nasforge:bf16", "nni:fp32", "nni:bf16"]
    orders = [peer.rotated(arms, i) for i in range(5)]
    assert [o[0] for o in orders] == arms + arms[:1]
    assert all(sorted(o) == sorted(arms) for o in orders)


def test_best_against_best_takes_each_contender_s_fastest_arm_and_checks_its_target(peer):
    rows = {"nasforge:fp32": [_run(100, 500), _run(110, 500)], "nasforge:bf16": [_run(150, 450), _run(160, 450)],
            "nni:fp32": [_run(40, 1000), _run(44, 1000)], "nni:bf16": [_run(50, 900), _run(50, 900)]}
    out = peer.precision_comparison(rows, same_target=3.0, best_target=4.0)
    same, best = out["same_precision"], out["best_vs_best"]
    assert same["arms"] == ["nasforge:fp32", "nni:fp32"] and same["throughput_nasforge_over_nni"] == pytest.approx(2.5)
    assert same["target_met"] is False and same["target"] == 3.0
    assert best["arms"] == ["nasforge:bf16", "nni:bf16"]
    assert best["throughput_nasforge_over_nni"] == pytest.approx(3.1)  # median of 150/50 and 160/50
    assert best["peak_rss_nasforge_over_nni"] == pytest.approx(0.5) and best["target_met"] is False
    assert peer.precision_comparison(rows, 2.0, 3.0)["best_vs_best"]["target_met"] is True
    rows["nasforge:bf16"] = [_run(150, 950), _run(160, 950)]  # faster, but more memory than NNI's best
    assert peer.precision_comparison(rows, 2.0, 3.0)["best_vs_best"]["target_met"] is False


def test_a_failed_arm_is_kept_apart_with_its_error(peer):
    rows = {"nasforge:fp32": [_run(100, 500)], "nasforge:bf16": [{"failed": "loss became nan"}],
            "nni:fp32": [_run(40, 1000)]}
    done, failed = peer.completed(rows)
    assert set(done) == {"nasforge:fp32", "nni:fp32"} and failed == {"nasforge:bf16": "loss became nan"}


def test_bad_arms_are_a_parser_error(peer):
    p = argparse.ArgumentParser()
    with pytest.raises(SystemExit) as e:
        peer.arms_or_default(p, ["nasforge:fp32", "tvm:fp32"])
    assert e.value.code == 2
    assert peer.arms_or_default(p, None)[2:] == ["nni:fp32", "nni:bf16"]


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_nasforge_contender_runs_its_fastest_arm(space, tmp_path, monkeypatch):
    """The nasforge worker of peer_nni.py resolves `auto` as `search` does (it once failed unresolved, which
    only a full run showed): a toy step runs and records the precision and memory format it used."""
    import torch

    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("peer_nni", REPO / "benchmarks" / "peer_nni.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)
    torch.save({"x_train": x, "x_val": x, "y_train": y, "y_val": y}, tmp_path / "data.pt")
    args = argparse.Namespace(data=str(tmp_path / "data.pt"), native=False, seed=0, threads=1, reference=False,
                              space=space, C=4, N=1, layers=3, batch=4, precision="auto")
    out = mod.nasforge_worker(args)
    assert len(out["step_s"]) == 2 and out["precision"] in ("fp32", "bf16")
    assert out["memory_format"] in ("channels_last", "contiguous")
