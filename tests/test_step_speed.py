"""benchmarks/step_speed.py (issue 20's per-method step benchmark) runs at toy size on the CPU, so it cannot rot
between the quiet-machine runs that produce docs/results/step_speed.json."""
from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import nasforge

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "step_speed.py"
SRC = str(Path(nasforge.__file__).resolve().parents[1])


def _load():
    spec = importlib.util.spec_from_file_location("step_speed", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_driver_writes_every_figure_and_reuses_finished_methods(tmp_path):
    out = tmp_path / "step_speed.json"
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, str(SCRIPT), "--quick", "--methods", "darts-nb201", "vitas", "--write", "--out", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(out.read_text())
    assert json.loads(p.stdout) == res
    assert res["settings"]["threads"] == 1 and len(res["load_avg_start"]) == 3 and len(res["load_avg_end"]) == 3
    assert res["peaks"]["matmul_fp32_gflops"] > 0 and res["peaks"]["matmul_bf16_gflops"] > 0
    assert res["peaks"]["copy_gbs"] > 0
    assert set(res["methods"]) == {"darts-nb201", "vitas"}
    for r in res["methods"].values():
        old, new = r["arms"]["old"], r["arms"]["new"]
        assert old["precision"] == "fp32" and new["precision"] in ("bf16", "auto", "fp32")
        assert len(old["cpu_ms"]) == len(new["cpu_ms"]) == res["settings"]["rounds"]
        # the speed-up is the median of the per-round ratios (cpu_ms is rounded to 0.01 ms)
        ratio = statistics.median(o / n for o, n in zip(old["cpu_ms"], new["cpu_ms"]))
        assert r["speedup_cpu"] == pytest.approx(ratio, rel=0.02)
        assert r["target_met"] == (r["speedup_cpu"] >= 2.0)
        for arm in (old, new):
            assert arm["gflop_per_step"] > 0 and arm["conv_bn_gbytes_per_step"] > 0
            assert arm["achieved_gflops"] == pytest.approx(arm["gflop_per_step"] / arm["cpu_ms_median"] * 1e3)
            assert arm["share_of_fp32_peak"] == pytest.approx(arm["achieved_gflops"]
                                                              / res["peaks"]["matmul_fp32_gflops"])
    # a rerun with --write keeps the methods the file holds for the same settings (resumable runner)
    res["methods"]["vitas"]["marker"] = "kept"
    out.write_text(json.dumps(res))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(out.read_text())["methods"]["vitas"]["marker"] == "kept"


@pytest.mark.parametrize("name", ["darts-darts", "single-darts", "manas", "bats", "hurricane"])
def test_every_method_step_runs_in_both_arms(name):
    torch.set_num_threads(1)
    r = _load().measure(name, rounds=1, warmup=0, count_steps=1, quick=True, batch=8)
    assert set(r["arms"]) == {"old", "new"} and r["speedup_cpu"] > 0
    assert r["depthwise_heavy"] == (name != "single-darts")
    for arm in r["arms"].values():
        assert arm["cpu_ms_median"] > 0 and arm["gflop_per_step"] > 0 and arm["conv_bn_calls_per_step"] > 0


def test_conv_bn_bytes_count_each_tensor_once_at_its_dtype():
    mod = _load()
    x, w, b = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.randn(4)
    with mod.ConvNormBytes() as m:
        y = F.conv2d(x, w, b, padding=1)
        F.relu(y)  # not a conv or norm: not counted
    assert m.calls == 1
    assert m.bytes == 4 * (x.numel() + w.numel() + b.numel() + y.numel())
    with mod.ConvNormBytes() as m:
        F.conv2d(x.bfloat16(), w.bfloat16(), None, padding=1)
    assert m.bytes == 2 * (x.numel() + w.numel() + y.numel())


def test_arms_leave_out_options_this_checkout_lacks():
    mod = _load()
    from nasforge.spaces.nb201 import NB201Space

    ctx, space, missing = mod._applicable({"ctx": {"precision": "fp32", "no_such_field": 1},
                                           "space": {"C": 8, "no_such_option": True}}, NB201Space)
    assert ctx == {"precision": "fp32"} and space == {"C": 8}
    assert missing == ["ctx.no_such_field=1", "space.no_such_option=True"]


def test_prev_arm_runs_the_plain_depthwise_convs(monkeypatch):
    """`--arms prev new` (the tiled depthwise backward alone): 'prev' runs the new default with the plain
    depthwise convs; both arms step and are compared against the last."""
    import nasforge.ops.depthwise as dw

    mod = _load()
    seen = []
    real = mod.build_arm

    def spy(spec, arm, *a, **k):
        out = real(spec, arm, *a, **k)
        seen.append((arm.get("plain_depthwise", False), out["not_in_this_checkout"]))
        return out

    monkeypatch.setattr(mod, "build_arm", spy)
    res = mod.measure("hurricane", 1, 1, 1, True, batch=8, arms=("prev", "new"))
    assert seen == [(True, []), (False, [])]
    assert set(res["speedup_cpu_vs_last"]) == {"prev"} and res["speedup_cpu"] > 0
    assert dw._TILED[0] is True  # the switch is restored after the prev arm's steps
