"""The prepared GPU check (issue 20, item 4): everything a session with a lent GPU runs, in one command, in minutes.

Steps, each in its own process with its own time limit (the whole check fits in 8 minutes on one H100):
  1. ``environment``: torch, the device's name and capability, which of nasforge's dependencies import;
  2. ``tests``: ``pytest tests/test_on_device.py tests/test_devices.py --device DEVICE`` (every method's search,
     training, evaluation and export, each precision, on the device), counted from pytest's JUnit XML;
  3. ``benchmark``: ``benchmarks/devices.py`` on the device (DARTS and Single-DARTS supernet steps and the
     baseline CNN's training step; fp32, bf16, fp16 on CUDA; step time, images/s, peak memory);
  4. ``training``: ``nasforge train --arch baseline`` on the full Fashion-MNIST training set (60k images), bf16
     autocast, tested on the 10k test set: accuracy, images/s, wall time; and a one-epoch Single-DARTS search
     on NB201 over 10k images, so a supernet's full epoch is timed on the device too.
It writes ``gpu_check.json`` (and the pytest log and JUnit XML) to ``--out``; a failing step is recorded with
its last error line and the next step still runs, so one broken piece never hides the others' numbers.

On the GPU machine (the device tool runs a copy of this checkout; Fashion-MNIST travels as a carried folder):

    mkdir -p .data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz .data/fashion-mnist/
    grep -qx '/.data/' .git/info/exclude || echo /.data/ >> .git/info/exclude
    # device run, carry [".data"], timeout_s 560:
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --device cuda --data-root .data --out $OUT

Here (and in the default suite, tests/test_gpu_check.py) the same script runs at toy size on the CPU, so it
cannot rot: ``python benchmarks/gpu_check.py --device cpu --toy --out /tmp/gpu-check``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEPENDENCIES = ("torch", "numpy", "typer", "rich", "yaml", "onnx", "onnxruntime", "matplotlib", "scipy", "jinja2",
                "graphviz", "pytest")


def _env(data_root: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    if data_root:
        env["NASFORGE_DATA"] = str(Path(data_root).resolve())
    return env


def _run(cmd: list[str], env: dict[str, str], timeout: float, log: Path | None = None) -> dict[str, Any]:
    """Run one step; returns its exit code, wall seconds and (on failure) the last line of its error output."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = {"ok": False, "error": f"timed out after {timeout:.0f} s", "wall_s": round(time.perf_counter() - t0, 1)}
        if log is not None:
            log.write_text((e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""))
        return out
    if log is not None:
        log.write_text(p.stdout + p.stderr)
    out: dict[str, Any] = {"ok": p.returncode == 0, "returncode": p.returncode,
                           "wall_s": round(time.perf_counter() - t0, 1), "stdout": p.stdout}
    if p.returncode != 0:
        out["error"] = (p.stderr.strip().splitlines() or p.stdout.strip().splitlines() or ["failed"])[-1]
    return out


def environment(device: str) -> dict[str, Any]:
    import torch

    deps = {}
    for name in DEPENDENCIES:
        try:
            deps[name] = getattr(importlib.import_module(name), "__version__", "present")
        except Exception as e:  # a missing package is what this step exists to report
            deps[name] = f"missing ({type(e).__name__})"
    env: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__, "device": device,
                           "cuda_available": torch.cuda.is_available(), "dependencies": deps, "cores": os.cpu_count()}
    if device.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(device).index or 0
        env["device_name"] = torch.cuda.get_device_name(idx)
        env["capability"] = list(torch.cuda.get_device_capability(idx))
        env["memory_gib"] = round(torch.cuda.get_device_properties(idx).total_memory / 2**30, 1)
        env["bf16_supported"] = torch.cuda.is_bf16_supported()
    return env


def tests(device: str, toy: bool, out: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    junit = out / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "tests/test_on_device.py", "tests/test_devices.py", "--device", device,
           "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    if toy:  # the suite runs these tests itself; the toy check only proves the step works
        cmd += ["-k", "checkpoint_written_on_the_device"]
    res = _run(cmd, env, timeout, log=out / "pytest.log")
    res.pop("stdout", None)
    if junit.is_file():
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        res.update(counts, passed=counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"])
        res["failed_tests"] = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
                               if c.find("failure") is not None or c.find("error") is not None]
    return res


def benchmark(device: str, toy: bool, env: dict[str, str], timeout: float) -> dict[str, Any]:
    precisions = ["fp32"] if toy else ["fp32", "bf16"] + (["fp16"] if device.startswith("cuda") else [])
    cmd = [sys.executable, "benchmarks/devices.py", "--devices", device, "--precisions", *precisions]
    cmd += ["--workloads", "baseline", "--steps", "1", "--warmup", "0"] if toy else ["--steps", "20", "--warmup", "5"]
    res = _run(cmd, env, timeout)
    stdout = res.pop("stdout", "")
    if res["ok"]:
        res["result"] = json.loads(stdout)
    return res


def _last_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def training(device: str, toy: bool, out: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    runs = out / "runs"
    data = ["--dataset", "synthetic", "--subset", "128", "--test-subset", "64"] if toy else ["--dataset", "fashion-mnist"]
    train = [sys.executable, "-m", "nasforge", "train", "--arch", "baseline", *data, "--epochs", "1" if toy else "5",
             "--device", device, "--precision", "bf16", "--out", str(runs), "--name", "train", "--quiet"]
    search = [sys.executable, "-m", "nasforge", "search", "--space", "nb201", "--method", "single-darts",
              "--space-opt", "C=4" if toy else "C=16", "--space-opt", "N=1" if toy else "N=5", "--epochs", "1",
              "--subset", "64" if toy else "10000", "--dataset", "synthetic" if toy else "fashion-mnist",
              "--device", device, "--precision", "bf16", "--out", str(runs), "--name", "search", "--quiet"]
    if toy:  # one thread: tiny tensors run fastest so, and the suite's other processes keep theirs
        train += ["--threads", "1"]
        search += ["--threads", "1", "--set", "hessian_every=0"]
    result: dict[str, Any] = {}
    for name, cmd in (("train_baseline_bf16", train), ("search_single_darts_bf16", search)):
        res = _run(cmd, env, timeout / 2)
        res.pop("stdout", None)
        result_file = runs / name.split("_")[0] / "result.json"
        if res["ok"] and result_file.is_file():
            r = _last_json(result_file)
            if name.startswith("train"):
                res.update(test_accuracy=r.get("test_accuracy"), images_per_s=r.get("images_per_s"),
                           epochs=r.get("epochs"), params=r.get("params"))
            else:
                epochs = [json.loads(line) for line in (runs / "search" / "metrics.jsonl").read_text().splitlines()
                          if '"event": "epoch"' in line]
                res.update(arch=r.get("arch"), images_per_s=epochs[-1].get("images_per_s") if epochs else None)
        result[name] = res
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (the GPU machine), cuda:N, or cpu (toy check here)")
    p.add_argument("--out", default=os.environ.get("OUT") or "gpu-check", help="folder for gpu_check.json and logs")
    p.add_argument("--data-root", default=None, help="folder holding fashion-mnist/ (becomes $NASFORGE_DATA)")
    p.add_argument("--toy", action="store_true", help="toy sizes and synthetic data (seconds; the suite's CPU run)")
    p.add_argument("--steps", nargs="*", default=["environment", "tests", "benchmark", "training"],
                   choices=["environment", "tests", "benchmark", "training"])
    p.add_argument("--budget-s", type=float, default=470.0, help="wall-clock seconds shared by the steps")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = _env(args.data_root)
    share = {"environment": 0.0, "tests": 0.35, "benchmark": 0.25, "training": 0.4}  # of the budget, per step
    report: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
                              "toy": args.toy, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    t0 = time.perf_counter()
    for step in args.steps:
        limit = max(30.0, share[step] * args.budget_s)
        print(f"gpu_check: {step} (limit {limit:.0f} s)", file=sys.stderr, flush=True)
        if step == "environment":
            report[step] = environment(args.device)
        elif step == "tests":
            report[step] = tests(args.device, args.toy, out, env, limit)
        elif step == "benchmark":
            report[step] = benchmark(args.device, args.toy, env, limit)
        else:
            report[step] = training(args.device, args.toy, out, env, limit)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=1))  # what ran so far survives a kill
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    failed = [s for s in args.steps if s != "environment" and not _ok(report[s])]
    report["failed_steps"] = failed
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({k: report[k] for k in ("wall_s", "failed_steps")}))
    return 1 if failed else 0


def _ok(step: dict[str, Any]) -> bool:
    if "ok" in step:
        return bool(step["ok"])
    return all(_ok(v) for v in step.values() if isinstance(v, dict))


if __name__ == "__main__":
    sys.exit(main())
