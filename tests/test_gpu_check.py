"""The prepared GPU check (benchmarks/gpu_check.py) runs end to end at toy size on the CPU, so it cannot rot
between the sessions that have a GPU to run it on."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nasforge

REPO = Path(__file__).resolve().parents[1]
SRC = str(Path(nasforge.__file__).resolve().parents[1])


def _load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_runs_every_step_at_toy_size_and_writes_json(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--toy",
                        "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["failed_steps"] == []
    assert report["environment"]["dependencies"]["torch"].startswith(report["environment"]["torch"][:3])
    assert report["tests"]["passed"] >= 1 and report["tests"]["failures"] == 0
    assert (tmp_path / "junit.xml").is_file() and (tmp_path / "pytest.log").is_file()
    steps = report["benchmark"]["result"]["steps"]
    assert steps and all(s["images_per_s"] > 0 for s in steps)
    train = report["training"]["train_baseline_bf16"]
    assert 0.0 <= train["test_accuracy"] <= 1.0 and train["images_per_s"] > 0
    assert report["training"]["search_single_darts_bf16"]["arch"]


def test_a_failing_step_is_recorded_with_its_error_and_does_not_stop_the_check(tmp_path):
    gpu_check = _load_script()
    res = gpu_check._run([sys.executable, "-c", "import sys; sys.exit('no CUDA here')"], dict(os.environ), 60)
    assert res["ok"] is False and res["returncode"] == 1 and res["error"] == "no CUDA here"
    late = gpu_check._run([sys.executable, "-c", "import time; time.sleep(5)"], dict(os.environ), 0.5)
    assert late["ok"] is False and "timed out" in late["error"]
    assert gpu_check._ok({"a": {"ok": True}, "b": {"ok": False}}) is False
