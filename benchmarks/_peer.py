"""What the NNI peer benchmarks share: the timed NNI run (worker side) and the paired-seed driver (parent side).

Two pairs of scripts use it: peer_nni.py + _nni_worker.py (DARTS on NAS-Bench-201) and vitas_peer_nni.py +
_nni_autoformer_worker.py (AutoFormer with RandomOneShot). The workers run in NNI's own venv (.peers/nni, made
by ../shared/peers/nni/setup.sh), which has torch and NNI 3.0 but not nasforge's dependencies, so this module
imports only the standard library at the top; torch, Lightning and NNI are imported inside the functions that
need them. Every script runs with benchmarks/ as its first sys.path entry, so `import _peer` finds this file.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NNI_PYTHON = REPO / ".peers" / "nni" / "bin" / "python"


# ---------------------------------------------------------------------------------------------
# both sides
# ---------------------------------------------------------------------------------------------
def rss_mb() -> float:
    """Resident memory of this process now, in MiB (from /proc/self/statm; Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (getrusage's ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# worker side (NNI's venv): one NasExperiment, each training step timed
# ---------------------------------------------------------------------------------------------
def worker_parser(description: str | None, threads: int) -> argparse.ArgumentParser:
    """The options every NNI worker takes (--data, --seed, --batch, --threads, --workdir); a worker adds its own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", required=True, help="torch file of x_train/y_train/x_val/y_val written by the parent")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=threads)
    p.add_argument("--workdir", required=True, help="where Lightning may write its logs and checkpoint")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: Lightning's precision='bf16' (CPU bf16 autocast), as NNI users switch it on")
    return p


def quiet_nni() -> None:
    """Silence NNI's and Lightning's warnings (unknown torch module classes, ...); call before importing NNI."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def run_nni_experiment(args: argparse.Namespace, make_space: Callable[[Any], Any],
                       make_strategy: Callable[[], Any]) -> tuple[dict[str, Any], Any, Any, Any]:
    """Run one epoch of `NasExperiment(make_space(x_train), Classification, make_strategy())` as NNI's examples do.

    Loads the parent's images from `args.data` (unshuffled loaders of `args.batch`, so step k sees the same
    batch in both contenders), seeds torch with `args.seed` and runs on `args.threads` CPU threads. Timed:
    every training step (a Lightning callback, on_train_batch_start -> on_train_batch_end; data loading falls
    outside it), and the whole user-level call from building the loaders, space and strategy to run()
    returning. Import NNI's space and strategy classes before calling (imports are not timed).

    `args.precision` bf16 hands precision="bf16" to the Classification evaluator (Lightning's CPU bf16
    autocast). Returns (record, space, experiment, x_train): record holds step_s (list of seconds), total_s,
    rss_base_mb (after imports and data load), rss_peak_mb, threads and precision, for the worker's JSON line.
    """
    import nni
    import pytorch_lightning as pl
    import torch
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.experiment import NasExperiment
    from torch.utils.data import TensorDataset

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = torch.load(args.data)
    x_train, y_train, x_val, y_val = data["x_train"], data["y_train"], data["x_val"], data["y_val"]
    rss_base = rss_mb()

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_train_batch_start(self, *a) -> None:
            self._t = time.perf_counter()

        def on_train_batch_end(self, *a) -> None:
            self.times.append(time.perf_counter() - self._t)

    timer = StepTimer()
    start = time.perf_counter()
    train = DataLoader(nni.trace(TensorDataset)(x_train, y_train), batch_size=args.batch)
    val = DataLoader(nni.trace(TensorDataset)(x_val, y_val), batch_size=args.batch)
    space = make_space(x_train)
    precision = {"precision": "bf16"} if getattr(args, "precision", "fp32") == "bf16" else {}
    evaluator = Classification(train_dataloaders=train, val_dataloaders=val, max_epochs=1, accelerator="cpu",
                               num_classes=10, callbacks=[timer], default_root_dir=args.workdir, **precision)
    experiment = NasExperiment(space, evaluator, make_strategy())
    experiment.run()
    total_s = time.perf_counter() - start
    record = {"step_s": timer.times, "total_s": total_s, "rss_base_mb": rss_base, "rss_peak_mb": peak_rss_mb(),
              "threads": torch.get_num_threads(), "precision": getattr(args, "precision", "fp32")}
    return record, space, experiment, x_train


# ---------------------------------------------------------------------------------------------
# parent side (nasforge's venv): contenders in fresh subprocesses, paired by seed
# ---------------------------------------------------------------------------------------------
def nni_python_or_exit(path: str) -> Path:
    """The NNI venv's python, or exit with a line that says how to make it."""
    nni_python = Path(path)
    if not nni_python.is_file():
        sys.exit(f"NNI's venv python not found at {nni_python}; create it from {REPO} with "
                 "`bash ../shared/peers/nni/setup.sh .peers/nni` (or pass --nni-python)")
    return nni_python


def fashion_mnist_sample(seed: int, count: int):
    """`count` images and labels of Fashion-MNIST's training split in a seeded random order, normalised as
    nasforge's Loader normalises them: (x float [count, 1, 28, 28], y int64 [count])."""
    import torch
    from nasforge.data.datasets import fashion_mnist

    train, _ = fashion_mnist()
    mean, std = (v[0] for v in train.stats())
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train), generator=g)[:count]
    return (train.images[idx].float() / 255 - mean) / std, train.labels[idx]


def run_child(cmd: list[str]) -> dict[str, Any]:
    """Run one contender in a fresh process; return the JSON object on its last stdout line."""
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarise(run: dict[str, Any], warmup: int, batch: int, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """One run's figures: median step after `warmup` steps, images/s (batch / median step, s), RSS (MiB) and
    its growth over the base, the user-level wall time per step (set-up and warm-up included, imports not),
    and the run's own fields named in `keep`."""
    timed = run["step_s"][warmup:]
    step = statistics.median(timed)
    return {"step_s_median": step, "images_per_s": batch / step, "rss_peak_mb": run["rss_peak_mb"],
            "rss_base_mb": run["rss_base_mb"], "rss_delta_mb": run["rss_peak_mb"] - run["rss_base_mb"],
            "user_level_s_per_step": run["total_s"] / len(run["step_s"]), **{k: run[k] for k in keep}}


def run_in_turn(rows: dict[str, list[dict[str, Any]]], order: list[tuple[str, list[str]]], label: str,
                summary: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Run each (name, command) of `order` in turn, appending summary(result) to rows[name]; progress on stderr.
    A contender that fails is recorded as {"failed": its last error line}, not fatal (see `completed`)."""
    for name, cmd in order:
        try:
            rows[name].append(summary(run_child(cmd)))
        except RuntimeError as e:
            rows[name].append({"failed": str(e).strip().splitlines()[-1]})
            print(f"{label} {name}: failed: {rows[name][-1]['failed']}", file=sys.stderr)
            continue
        row = rows[name][-1]
        print(f"{label} {name}: {row['step_s_median'] * 1e3:.1f} ms/step, peak RSS {row['rss_peak_mb']:.0f} MB",
              file=sys.stderr)


def completed(rows: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """(the arms every run of which finished, {arm: first error} for the others)."""
    done = {a: runs for a, runs in rows.items() if runs and all("failed" not in r for r in runs)}
    failed = {a: next(r["failed"] for r in runs if "failed" in r) for a, runs in rows.items() if a not in done and runs}
    return done, failed


def alternate(pair: list[tuple[str, list[str]]], i: int) -> list[tuple[str, list[str]]]:
    """The two contenders in the order of seed number i: flipped every other seed, so load drift hits both."""
    return pair[::-1] if i % 2 else list(pair)


def paired_ratios(nasforge: list[dict[str, Any]], nni: list[dict[str, Any]]) -> dict[str, float]:
    """nasforge/NNI ratios paired by seed (same data, adjacent in time), median over seeds: throughput from the
    median step, throughput at user level (whole call per step), peak RSS and RSS growth."""
    pairs = list(zip(nasforge, nni))
    return {
        "throughput_nasforge_over_nni": statistics.median(a["images_per_s"] / b["images_per_s"] for a, b in pairs),
        "throughput_nasforge_over_nni_user_level": statistics.median(
            b["user_level_s_per_step"] / a["user_level_s_per_step"] for a, b in pairs),
        "peak_rss_nasforge_over_nni": statistics.median(a["rss_peak_mb"] / b["rss_peak_mb"] for a, b in pairs),
        "rss_delta_nasforge_over_nni": statistics.median(a["rss_delta_mb"] / b["rss_delta_mb"] for a, b in pairs),
    }


def target_met(ratios: dict[str, float], speedup: float = 1.5) -> bool:
    """A throughput target: at least `speedup` x NNI's throughput with no more peak memory."""
    return ratios["throughput_nasforge_over_nni"] >= speedup and ratios["peak_rss_nasforge_over_nni"] <= 1.0


# ---------------------------------------------------------------------------------------------
# precision arms (issue 20): "nasforge:fp32", "nni:bf16", ... one fresh process each per seed
# ---------------------------------------------------------------------------------------------
def nasforge_precisions() -> list[str]:
    """nasforge's arms: fp32 and its fastest setting (--precision auto where this checkout has it, else bf16)."""
    from nasforge.accel import PRECISIONS

    return ["fp32", "auto" if "auto" in PRECISIONS else "bf16"]


def arms_or_default(parser: argparse.ArgumentParser, arms: list[str] | None) -> list[str]:
    """The --arms given (each contender:precision, contender nasforge or nni; else a parser error, exit 2), or
    the default: nasforge at fp32 and at its fastest setting, NNI at fp32 and bf16."""
    arms = arms or [f"nasforge:{p}" for p in nasforge_precisions()] + ["nni:fp32", "nni:bf16"]
    bad = [a for a in arms if a.count(":") != 1 or a.split(":")[0] not in ("nasforge", "nni")]
    if bad:
        parser.error(f"arms are contender:precision with contender nasforge or nni; got {' '.join(bad)}")
    return arms


def rotated(order: list[Any], i: int) -> list[Any]:
    """`order` started at position i (mod its length): seed i runs the arms in a rotated order."""
    k = i % len(order)
    return order[k:] + order[:k]


def best_arm(rows: dict[str, list[dict[str, Any]]], who: str) -> str:
    """The arm of contender `who` ("nasforge" or "nni") with the highest median images/s over seeds."""
    mine = [a for a in rows if a.startswith(who + ":")]
    return max(mine, key=lambda a: statistics.median(r["images_per_s"] for r in rows[a]))


def precision_comparison(rows: dict[str, list[dict[str, Any]]], same_target: float,
                         best_target: float) -> dict[str, Any]:
    """nasforge against NNI at the same precision (fp32 vs fp32) and best against best (each contender's
    fastest arm), paired by seed; each with its throughput target (and no more peak memory)."""
    same = paired_ratios(rows["nasforge:fp32"], rows["nni:fp32"])
    out: dict[str, Any] = {"same_precision": {"arms": ["nasforge:fp32", "nni:fp32"], **same, "target": same_target,
                                              "target_met": target_met(same, same_target)}}
    mine, theirs = best_arm(rows, "nasforge"), best_arm(rows, "nni")
    best = paired_ratios(rows[mine], rows[theirs])
    out["best_vs_best"] = {"arms": [mine, theirs], **best, "target": best_target,
                           "target_met": target_met(best, best_target)}
    return out
