"""The Fashion-MNIST leaderboard (issue 23): every method and hand-designed baseline under one protocol.

The protocol (data, budget, size bound and scaling rule, retraining recipe, seeds, what is reported) is
written in docs/leaderboard.md; this script is its only implementation. For each (row, seed) job:

1. search (search rows): ``nasforge search`` on the search split of the training set, with the one search
   budget (``--seconds``, one thread); the method spends it as it likes (epochs planned by the protocol,
   trials until the clock stops it);
2. scale: the found architecture (or the hand-designed model) is sized by the fixed rule: the largest
   width of a ladder fixed in advance whose network has at most ``bound`` parameters (:func:`scale_options`);
3. retrain: ``nasforge train --arch SEARCH_RUN/arch.json --space-opt ...`` (or ``--arch MODEL --space-opt
   width=W``) with the one recipe on the training set, tested on the official 10k test set;
4. measure: parameters, FLOPs, BOPs (from the train run), latency on this CPU at batch 1 and 32 (one thread,
   fp32, ``nasforge.hardware.lut.measure``), search and retraining CPU-seconds (the runs' cost.json), and
   the precision each run actually used (its result.json).

Resumable: every step is its own run folder under ``--out`` named ``ROW-sSEED-search`` / ``-train``; a
finished run (result.json) is reused, an unfinished one continued with ``--resume``; a finished job is
appended to ``--out``/leaderboard-runs.json (atomic rewrite) and never recomputed. ``--jobs 2`` runs two
jobs at a time (each command one thread). ``--write`` aggregates the runs into docs/results/leaderboard.json,
the table between the markers of docs/leaderboard.md and docs/leaderboard.png (accuracy vs cost).

    python benchmarks/leaderboard.py --scale toy --rows single-darts baseline-cnn --seeds 0 \
        --out /tmp/lb --write --docs /tmp/lb/docs     # ~1 min; all 15 rows x 3 seeds: ~5 min idle
    python benchmarks/leaderboard.py --scale smoke --seeds 0 --out /tmp/lbs                   # minutes, real data
    nice -n 10 python benchmarks/leaderboard.py --scale full --seeds 0 1 2 --jobs 2 --write     # ~8 h
    python benchmarks/leaderboard.py --scale full --rows single-darts baseline-cnn --seeds 0 --dry-run
    python benchmarks/leaderboard.py --record --dry-run     # the record-attempt commands (docs/leaderboard.md)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from nasforge.utils import atomic_write_json, atomic_write_bytes  # noqa: E402

TABLE_START, TABLE_END = "<!-- leaderboard:table:start -->", "<!-- leaderboard:table:end -->"
#: widths every scaling rule chooses from (channels / model width); fixed before any run
WIDTH_LADDER: tuple[int, ...] = tuple(range(4, 1025, 4))
#: width multipliers of the spaces whose widths are lists (mobile) or tied to the architecture (vit)
FACTOR_LADDER: tuple[float, ...] = tuple(k / 8 for k in range(2, 129))
#: depth of the final network per space (fixed; the width is what the size rule scales)
FINAL_DEPTH: dict[str, dict[str, int]] = {"nb201": {"N": 2}, "darts": {"layers": 8}, "pnas": {"N": 2},
                                          "bats": {"layers": 8}}
RUNS_FILE = "leaderboard-runs.json"
#: one latency measurement / one LUT build at a time in this process (the other job's run is a subprocess)
_MEASURE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Row:
    """One leaderboard row: a search (space, method, its own options) or a hand-designed model (train)."""

    name: str
    kind: str  # "search" | "train"
    space: str | None = None
    method: str | None = None
    model: str | None = None  # hand-designed: a nasforge.models name
    hparams: dict[str, Any] = field(default_factory=dict)
    space_options: dict[str, Any] = field(default_factory=dict)  # the search supernet / trial scale
    estimator: str | None = None  # multi-trial rows: scratch
    binary: bool = False
    note: str = ""
    min_epochs: int = 1  # one-shot: the fewest epochs the method accepts (HURRICANE's two stages need 2)


@dataclass(frozen=True)
class Scale:
    """Everything the protocol fixes that changes between the full leaderboard and its toy version."""

    name: str
    dataset: str
    data_opts: dict[str, Any]
    search_subset: int  # training images the search sees (split in halves: search-train / search-val)
    search_seconds: float  # the one search budget, CPU-seconds on one thread (--seconds)
    oneshot_epochs: int  # epochs a one-shot search plans its schedules over (the clock may stop it earlier)
    trials: int  # multi-trial: an upper bound; the clock stops them
    trial_epochs: int  # scratch estimator: epochs per trial
    retrain_epochs: int
    retrain_subset: int | None  # None: the full 60k training set
    test_subset: int | None  # None: the official 10k test set
    bound: int  # parameter bound of the final network
    binary_bound: int
    #: compute bound of the final network: forward FLOPs per image (the FLOPs of a standard ResNet-20, width 16,
    #: on 1x28x28 are 62.0 M); None: parameters alone
    flops_bound: float | None = None
    batch_size: int = 128
    search_space_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per space, over the row's
    latency_samples: int = 101  # random mobile networks whose median latency is HURRICANE's constraint
    measure_latency: bool = True
    #: one-shot rows plan their epochs to fill this share of `search_seconds` (from a 1- and a 2-epoch probe of
    #: the row, measured once per board and recorded in epoch-plan.json); None: every one-shot row plans
    #: `oneshot_epochs`
    budget_fill: float | None = 0.9
    epoch_cap: int | None = None  # the most epochs a plan may give (toy: keeps the test fast)


SCALES: dict[str, Scale] = {
    "full": Scale("full", "fashion-mnist", {}, search_subset=20000, search_seconds=450, oneshot_epochs=10,
                  trials=1000, trial_epochs=1, retrain_epochs=3, retrain_subset=None, test_subset=None,
                  bound=1_000_000, binary_bound=1_000_000, flops_bound=64e6),  # E = 3: docs/leaderboard.md "Budget"
    # minutes: the full protocol's data, bound and networks on small subsets (a check before a long sitting)
    "smoke": Scale("smoke", "fashion-mnist", {}, search_subset=2000, search_seconds=60, oneshot_epochs=2,
                   trials=3, trial_epochs=1, retrain_epochs=1, retrain_subset=2000, test_subset=1000,
                   bound=1_000_000, binary_bound=1_000_000, flops_bound=64e6),
    # seconds: synthetic gratings, tiny supernets, a tiny bound so the ladder rule is exercised
    "toy": Scale("toy", "synthetic", {"n_train": 192, "n_test": 64, "resolution": 16}, search_subset=128,
                 search_seconds=20, oneshot_epochs=2, trials=2, trial_epochs=1, retrain_epochs=1,
                 retrain_subset=None, test_subset=None, bound=60_000, binary_bound=60_000, batch_size=32,
                 search_space_options={"nb201": {"C": 4, "N": 1}, "darts": {"C": 4, "layers": 3},
                                       "bats": {"C": 4, "layers": 3}, "pnas": {"C": 4, "N": 1, "blocks": 2}},
                 latency_samples=5, measure_latency=True, epoch_cap=3),
}

_NB201 = {"C": 8, "N": 1}
ROWS: dict[str, Row] = {r.name: r for r in (
    Row("darts", "search", "nb201", "darts", hparams={"hessian_every": 0}, space_options=_NB201),
    Row("single-darts", "search", "nb201", "single-darts", hparams={"hessian_every": 0}, space_options=_NB201),
    Row("manas", "search", "nb201", "manas", space_options=_NB201),
    Row("manas-ls", "search", "nb201", "manas-ls", space_options=_NB201),
    Row("random-ws", "search", "nb201", "random-ws", space_options=_NB201),
    Row("random", "search", "nb201", "random", space_options=_NB201, estimator="scratch",
        note="random search: cells trained from scratch on search-train, best on search-val"),
    Row("pnas", "search", "pnas", "pnas", space_options={"C": 8, "N": 1, "blocks": 5, "ops": "reduced"},
        estimator="scratch"),
    Row("bats", "search", "bats", "bats", space_options={"C": 12, "layers": 5}, binary=True),
    Row("hurricane", "search", "mobile", "hurricane", hparams={"target": "local-cpu-1t"}, min_epochs=2,
        note="latency constraint: median predicted latency of random networks of the space (local-cpu-1t LUT)"),
    Row("vitas", "search", "vit", "vitas"),
    Row("baseline-cnn", "train", model="baseline"),
    Row("resnet20", "train", model="resnet20"),
    Row("mobilenetv2", "train", model="mobilenetv2"),
    Row("vit-uniform", "train", model="vit-uniform"),
    Row("birealnet", "train", model="birealnet", binary=True),
)}
#: methods that learn alphas with Adam: their arch learning rate follows the alpha-step rule (arch_lr_for)
ALPHA_METHODS = ("darts", "single-darts", "bats")
# the alpha-travel rule lives beside the optimiser it sizes (the default job's config follows it too)
from nasforge.strategies.darts import REFERENCE_ALPHA_TRAVEL, arch_lr_for  # noqa: E402,F401


# ---------------------------------------------------------------------------------------------
# the scaling rule
# ---------------------------------------------------------------------------------------------
def _params(model) -> int:
    from nasforge.ops.heads import param_counts

    return param_counts(model)["params"]


def _flops(model, data: dict[str, int]) -> float:
    import torch

    from nasforge.hardware.flops import count_flops

    x = torch.zeros(1, data["in_channels"], data["resolution"], data["resolution"])
    return count_flops(model.eval(), x)


def _largest(ladder, build, bound: int, flops_bound: float | None = None, data: dict[str, int] | None = None):
    """The largest ladder value whose network has <= bound parameters and, with `flops_bound`, <= that many
    forward FLOPs per image of shape `data` (both grow with the value): galloping from the small end (so no
    giant network is ever built), then bisection. The smallest value if none fits. A value the space refuses
    (e.g. groups must divide C) counts as too large. Returns (value, params)."""
    def params(i: int) -> float:
        try:
            model = build(ladder[i])
            n = _params(model)
            if flops_bound is not None and n <= bound and _flops(model, data) > flops_bound:
                return math.inf
            return n
        except Exception:
            return math.inf

    n0 = params(0)
    if n0 > bound:
        return ladder[0], n0
    good, step = (0, n0), 1
    bad = len(ladder)
    while good[0] + step < len(ladder):  # gallop: 1, 2, 4, ... ladder steps
        i = good[0] + step
        n = params(i)
        if n <= bound:
            good, step = (i, n), step * 2
        else:
            bad = i
            break
    lo, hi = good[0] + 1, bad - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        n = params(mid)
        if n <= bound:
            good, lo = (mid, n), mid + 1
        else:
            hi = mid - 1
    return ladder[good[0]], good[1]


def _data_keys(space_config: dict[str, Any]) -> dict[str, Any]:
    return {k: space_config[k] for k in ("in_channels", "num_classes", "resolution") if k in space_config}


def scale_options(arch_doc: dict[str, Any] | None, model: str | None, bound: int,
                  data: dict[str, int], flops_bound: float | None = None) -> tuple[dict[str, Any], int]:
    """The rule of docs/leaderboard.md: (``--space-opt`` options of the final network, its parameters).

    Cell spaces (nb201, darts, pnas, bats): depth fixed by FINAL_DEPTH, C the largest of WIDTH_LADDER with
    params <= bound (multiples of the space's group counts only, via the space's own checks). mobile: the
    space's widths, stem and head times the largest FACTOR_LADDER multiplier (rounded to multiples of 4).
    vit: the architecture's widths times the largest multiplier (``width_mult``). Hand-designed models:
    ``width`` from WIDTH_LADDER. `data`: in_channels, num_classes, resolution. With `flops_bound`, the
    value must also keep the forward FLOPs per image at or under it (the protocol's compute bound)."""
    from nasforge.building import import_components
    from nasforge.models import build_named
    from nasforge.registry import SPACES

    import_components()
    if model is not None:
        w, n = _largest(WIDTH_LADDER, lambda w: build_named(model, data["in_channels"], data["num_classes"],
                                                            {"width": w}, data["resolution"]), bound,
                        flops_bound, data)
        return {"width": w}, n
    name, cfg, arch = arch_doc["space"], dict(arch_doc.get("space_config") or {}), arch_doc["arch"]
    cfg.pop("space", None)
    space = SPACES.get(name)(**cfg)
    if name in FINAL_DEPTH:
        depth = FINAL_DEPTH[name]
        c, n = _largest(WIDTH_LADDER, lambda c: space.build(arch, C=c, **depth), bound, flops_bound, data)
        return {"C": c, **depth}, n
    if name == "mobile":
        base = {"widths": list(space.options["widths"]), "stem": space.options["stem"], "head": space.options["head"]}

        def opts(f: float) -> dict[str, Any]:
            r4 = lambda v: max(4, int(round(v * f / 4)) * 4)  # noqa: E731
            return {"widths": [r4(v) for v in base["widths"]], "stem": r4(base["stem"]), "head": r4(base["head"])}

        f, n = _largest(FACTOR_LADDER, lambda f: space.build(arch, **opts(f)), bound, flops_bound, data)
        return opts(f), n
    if name == "vit":
        f, n = _largest(FACTOR_LADDER, lambda f: space.build(arch, width_mult=f), bound, flops_bound, data)
        return {"width_mult": f}, n
    raise ValueError(f"no scaling rule for space '{name}'")


# ---------------------------------------------------------------------------------------------
# commands and runs
# ---------------------------------------------------------------------------------------------
def _nasforge() -> list[str]:
    return [sys.executable, "-m", "nasforge"]


def _data_args(scale: Scale, data_root: str | None) -> list[str]:
    args = ["--dataset", scale.dataset]
    for k, v in scale.data_opts.items():
        args += ["--data-opt", f"{k}={v}"]
    if data_root:
        args += ["--data-root", data_root]
    return args


def _kv_args(flag: str, opts: dict[str, Any]) -> list[str]:
    return [a for k, v in opts.items() for a in (flag, f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}")]


def search_steps_per_epoch(scale: Scale) -> int:
    """Weight (and alpha) steps per search epoch: the search-train half of the subset over the batch."""
    return max(1, (scale.search_subset // 2) // 64)


def search_command(row: Row, scale: Scale, seed: int, out: Path, name: str, data_root: str | None,
                   precision: str | None, extra_hparams: dict[str, Any] | None = None,
                   epochs: int | None = None) -> list[str]:
    """The `nasforge search` command of (row, seed) under `scale` (no retraining: the runner scales first).
    `epochs`: a one-shot row's planned epochs (default `scale.oneshot_epochs`; see plan_oneshot_epochs)."""
    epochs = epochs or scale.oneshot_epochs
    space_opts = {**row.space_options, **scale.search_space_options.get(row.space, {})}
    hp = dict(row.hparams)
    if row.method in ALPHA_METHODS:
        hp.setdefault("arch_lr", round(arch_lr_for(epochs * search_steps_per_epoch(scale)), 6))
    hp.update(extra_hparams or {})
    cmd = [*_nasforge(), "search", "--space", row.space, "--method", row.method, *_data_args(scale, data_root),
           "--subset", str(scale.search_subset), "--seed", str(seed), "--seconds", str(scale.search_seconds),
           "--clock", "cpu",  # the budget is CPU-seconds of the search's own process: fair on a shared machine
           "--threads", "1", "--out", str(out), "--name", name, "--quiet",
           *_kv_args("--space-opt", space_opts), *_kv_args("--set", hp)]
    if row.estimator:
        cmd += ["--estimator", row.estimator, "--trials", str(scale.trials),
                "--estimator-opt", f"train.epochs={scale.trial_epochs}"]
    else:
        cmd += ["--epochs", str(epochs)]
    if precision:
        cmd += ["--precision", precision]
    return cmd


PLAN_FILE = "epoch-plan.json"
_PLAN_LOCK = threading.Lock()


def plan_oneshot_epochs(row: Row, scale: Scale, out: Path, data_root: str | None, precision: str | None,
                        extra_hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """How many epochs one-shot `row` plans so that its search fills `scale.budget_fill` of the budget.

    Measured once per board, then reused by every seed and sitting (`out`/epoch-plan.json, atomic), so a
    resumed or repeated job runs the same command: the probe is like `--precision auto`'s choice, recorded
    once. Probe: the row's own search command (seed 0) planned for m and for 2m epochs (m = the row's
    `min_epochs`, 1 but for HURRICANE's two stages), run to the end (`out`/probes/ROW-eM, -e2M: resumable run
    folders); CPU-seconds per epoch = (c2 - c1) / (the epochs the two actually ran apart), fixed cost (set-up,
    the method's final phase: ViTAS' evolution, HURRICANE's candidate scoring, random-ws' ranking) = c1 -
    its epochs. Planned epochs = floor((fill x seconds - fixed) / per epoch), at least m. Returns the row's plan entry ({"epochs", "per_epoch_cpu_s", "fixed_cpu_s",
    "probe_cpu_s", ...}). Why: with one epoch count for all (10), MANAS' searches used 86-97 of their 450
    CPU-seconds and Single-DARTS' 215, so the rows did not get the same budget (docs/leaderboard.md)."""
    path = out / PLAN_FILE
    with _PLAN_LOCK:
        plan = json.loads(path.read_text()) if path.is_file() else {}
        if row.name in plan:
            return plan[row.name]
    probes = out / "probes"
    probes.mkdir(parents=True, exist_ok=True)
    costs, ran = [], []
    for e in (row.min_epochs, 2 * row.min_epochs):
        run = probes / f"{row.name}-e{e}"
        res = run_step(search_command(row, scale, 0, probes, run.name, data_root, precision, extra_hparams, epochs=e),
                       run, probes / f"{row.name}.log")
        costs.append(float(_cost(run).get("cpu_s") or 0.0))
        ran.append(int(((res.get("search") or {}).get("metrics") or {}).get("epochs_run") or e))
    per_epoch = (costs[1] - costs[0]) / (ran[1] - ran[0]) if ran[1] > ran[0] and costs[1] > costs[0] else costs[1] / ran[1]
    per_epoch = max(per_epoch, 1e-3)
    fixed = max(0.0, costs[0] - ran[0] * per_epoch)
    epochs = max(row.min_epochs, int((scale.budget_fill * scale.search_seconds - fixed) // per_epoch))
    if scale.epoch_cap:
        epochs = min(epochs, scale.epoch_cap)
    entry = {"epochs": epochs, "per_epoch_cpu_s": round(per_epoch, 3), "fixed_cpu_s": round(fixed, 3),
             "probe_cpu_s": costs, "probe_epochs_run": ran, "fill": scale.budget_fill,
             "search_seconds": scale.search_seconds, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             "load_avg": list(os.getloadavg())}
    with _PLAN_LOCK:
        plan = json.loads(path.read_text()) if path.is_file() else {}
        plan.setdefault(row.name, entry)
        atomic_write_json(path, plan)
        return plan[row.name]


def train_command(row: Row, scale: Scale, seed: int, out: Path, name: str, arch: str, options: dict[str, Any],
                  data_root: str | None, precision: str | None) -> list[str]:
    """The `nasforge train` command: the one recipe (binary networks: its two-stage form, same epochs)."""
    # binary networks train in BATS' two stages (binary activations, then binary weights too), each of the
    # recipe's epochs (`nasforge train --epochs` is per stage for them)
    cmd = [*_nasforge(), "train", "--arch", arch, *_data_args(scale, data_root), "--epochs", str(scale.retrain_epochs),
           "--seed", str(seed), "--threads", "1", "--out", str(out), "--name", name, "--quiet",
           *_kv_args("--space-opt", options)]
    if not row.binary:  # real networks: SGD-Nesterov 0.05 cosine, batch 128 (TrainConfig's defaults, spelled out)
        cmd += ["--batch-size", str(scale.batch_size), "--lr", "0.05", "--optimizer", "sgd"]
    if scale.retrain_subset:
        cmd += ["--subset", str(scale.retrain_subset)]
    if scale.test_subset:
        cmd += ["--test-subset", str(scale.test_subset)]
    if precision:
        cmd += ["--precision", precision]
    return cmd


def _finished(run: Path) -> bool:
    return (run / "result.json").is_file()


def run_step(cmd: list[str], run: Path, log: Path) -> dict[str, Any]:
    """Run `cmd` unless `run` is finished (reused); an interrupted `run` is resumed (``--resume``).
    Returns the run's result.json. Raises RuntimeError naming the log when the command fails."""
    if _finished(run):
        return json.loads((run / "result.json").read_text())
    if (run / "config.json").is_file():
        verb = cmd[len(_nasforge())]
        cmd = [*_nasforge(), verb, "--resume", str(run), "--threads", "1", "--quiet"]
    elif run.exists() and not any(run.iterdir()):
        run.rmdir()  # an empty folder left by a kill before the config was written: nothing to lose
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if code != 0 or not _finished(run):
        raise RuntimeError(f"{' '.join(cmd[2:5])} failed (exit {code}); see {log}")
    return json.loads((run / "result.json").read_text())


def _cost(run: Path) -> dict[str, float]:
    p = run / "cost.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _latency_device(batch: int):
    """The latency regime of the table's columns: torch fp32 on one thread of this CPU, eval mode, `batch`."""
    from nasforge.hardware.devices import LocalDevice

    return LocalDevice(f"local-cpu-1t-b{batch}", "torch", 1, batch, False, "leaderboard")


def measure_latency(run: Path) -> dict[str, float]:
    """Latency of the trained model of `run` on this CPU, one thread, fp32, eval mode: batch 1 and 32
    (median replicate, ms per forward), timed as the project's LUTs are (nasforge.hardware.lut.measure)."""
    import torch

    from nasforge.building import load_trained
    from nasforge.hardware.lut import measure

    model, _, _, test_set = load_trained(run)
    shape = (test_set.in_channels, test_set.resolution, test_set.resolution)
    threads = torch.get_num_threads()
    with _MEASURE_LOCK:
        out = {}
        for batch in (1, 32):
            out[f"latency_b{batch}_ms"] = measure(model, shape, _latency_device(batch), warmup=3, repeats=5, number=5)["ms"]
        torch.set_num_threads(threads)
        return out


def hurricane_constraint(scale: Scale, out: Path) -> float:
    """HURRICANE's latency constraint: the median predicted latency (ms, calibrated local-cpu-1t LUT, the
    model the search itself uses) of `scale.latency_samples` uniformly random networks of the mobile space
    (random.Random(0)). Computed once per leaderboard folder and cached in hurricane-constraint.json."""
    with _MEASURE_LOCK:
        return _hurricane_constraint(scale, out)


def _hurricane_constraint(scale: Scale, out: Path) -> float:
    cache = out / "hurricane-constraint.json"
    if cache.is_file():
        return float(json.loads(cache.read_text())["latency_ms"])
    from nasforge.building import import_components
    from nasforge.hardware.cost import latency_model
    from nasforge.registry import SPACES

    import_components()
    res = scale.data_opts.get("resolution", 28)
    space = SPACES.get("mobile")(in_channels=scale.data_opts.get("channels", 1), num_classes=10, resolution=res)
    import torch

    torch.set_num_threads(1)
    model = latency_model("local-cpu-1t", space, progress=lambda *a: None)
    rng = random.Random(0)
    lat = sorted(model.predict(space.sample(rng)) for _ in range(scale.latency_samples))
    median = statistics.median(lat)
    atomic_write_json(cache, {"latency_ms": median, "samples": scale.latency_samples, "seed": 0,
                              "device": "local-cpu-1t", "min_ms": lat[0], "max_ms": lat[-1]})
    return median


LATENCY_FILE = "latency.json"


def remeasure_latency(board: "Board", out: Path, rounds: int = 5) -> dict[str, Any]:
    """Latency of every finished run's final network, re-measured in this one process (one thread, fp32, eval
    mode, batch 1 and 32), the runs interleaved: `rounds` rounds, each timing every (run, batch) once
    (`nasforge.hardware.lut.measure`, 1 replicate of 5 forwards after 3 warm-up forwards), reported as the
    median over rounds. The jobs measure their own network right after training, beside the other job, so
    their figures carry whatever else ran then; this pass, run on a quiet machine, makes the latency columns
    one measurement under one load (the table prefers it; the in-job figures stay in the runs). Writes
    `out`/latency.json (atomic) with the load average before and after and returns it."""
    import torch

    from nasforge.building import load_trained
    from nasforge.hardware.lut import measure

    torch.set_num_threads(1)
    nets = []
    for r in board.records:
        model, _, _, test_set = load_trained(Path(r["train_run"]))
        nets.append((r["train_run"], model, (test_set.in_channels, test_set.resolution, test_set.resolution)))
    samples: dict[str, dict[str, list[float]]] = {run: {"1": [], "32": []} for run, _, _ in nets}
    load_start = os.getloadavg()
    for _ in range(rounds):
        for run, model, shape in nets:
            for batch in (1, 32):
                samples[run][str(batch)].append(measure(model, shape, _latency_device(batch), warmup=3, repeats=1,
                                                        number=5)["ms"])
    doc = {"rounds": rounds, "threads": 1, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "load_avg_start": load_start, "load_avg_end": os.getloadavg(),
           "runs": {run: {"latency_b1_ms": statistics.median(v["1"]), "latency_b32_ms": statistics.median(v["32"]),
                          "samples_b1_ms": v["1"], "samples_b32_ms": v["32"]} for run, v in samples.items()}}
    atomic_write_json(out / LATENCY_FILE, doc)
    return doc


def with_remeasured_latency(records: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """`records` with latency_b1_ms / latency_b32_ms taken from `out`/latency.json where it has the run
    (`latency_source` says which: "pass" or "in-job"; the in-job figures are kept as `*_in_job`)."""
    path = out / LATENCY_FILE
    measured = json.loads(path.read_text())["runs"] if path.is_file() else {}
    res = []
    for r in records:
        r = dict(r)
        m = measured.get(r.get("train_run"))
        if m:
            for k in ("latency_b1_ms", "latency_b32_ms"):
                r[f"{k}_in_job"] = r.get(k)
                r[k] = m[k]
        r["latency_source"] = "pass" if m else "in-job"
        res.append(r)
    return res


class Board:
    """The finished jobs of one leaderboard folder (leaderboard-runs.json), rewritten atomically per job."""

    def __init__(self, out: Path) -> None:
        self.path = out / RUNS_FILE
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = json.loads(self.path.read_text()) if self.path.is_file() else []
        self.failures: list[str] = []  # "ROW seed S: why" of the jobs that failed in this sitting

    def get(self, row: str, seed: int) -> dict[str, Any] | None:
        return next((r for r in self.records if r["row"] == row and r["seed"] == seed), None)

    def add(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.records = [r for r in self.records if (r["row"], r["seed"]) != (record["row"], record["seed"])]
            self.records.append(record)
            atomic_write_json(self.path, self.records)


def run_job(row: Row, seed: int, scale: Scale, out: Path, data_root: str | None, precision: str | None,
            data: dict[str, int]) -> dict[str, Any]:
    """Search (if any), scale, retrain, measure one (row, seed); every step reuses or resumes its run."""
    log = out / "logs" / f"{row.name}-s{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    rec: dict[str, Any] = {"row": row.name, "seed": seed, "kind": row.kind, "scale": scale.name,
                           "binary": row.binary}
    bound = scale.binary_bound if row.binary else scale.bound
    if row.kind == "search":
        extra = {}
        if row.method == "hurricane":
            extra["latency_ms"] = round(hurricane_constraint(scale, out), 4)
        srun = out / f"{row.name}-s{seed}-search"
        epochs = None
        if not row.estimator and scale.budget_fill:
            epochs = plan_oneshot_epochs(row, scale, out, data_root, precision, extra)["epochs"]
            rec["planned_epochs"] = epochs
        sres = run_step(search_command(row, scale, seed, out, srun.name, data_root, precision, extra, epochs),
                        srun, log)
        arch_doc = json.loads((srun / "arch.json").read_text())
        options, n = scale_options(arch_doc, None, bound, data, scale.flops_bound)
        arch_arg = str(srun / "arch.json")
        scost = _cost(srun)
        metrics = (sres.get("search") or {}).get("metrics") or {}
        rec.update({"space": row.space, "method": row.method, "search_run": str(srun), "arch": sres["arch"],
                    "search_cpu_s": scost.get("cpu_s"), "search_wall_s": scost.get("wall_s"),
                    "search_precision": sres.get("precision"), "stopped": sres.get("stopped"),
                    "epochs_run": metrics.get("epochs_run"), "trials_run": metrics.get("trials"),
                    "optimised": sres.get("optimised")})
    else:
        options, n = scale_options(None, row.model, bound, data, scale.flops_bound)
        arch_arg = row.model
        rec.update({"model": row.model, "search_cpu_s": 0.0, "search_wall_s": 0.0})
    trun = out / f"{row.name}-s{seed}-train"
    tres = run_step(train_command(row, scale, seed, out, trun.name, arch_arg, options, data_root, precision), trun, log)
    tcost = _cost(trun)
    rec.update({"scale_options": options, "params": tres.get("params"), "params_rule": n, "bound": bound,
                "within_bound": n <= bound,  # False only when even the smallest ladder width is over the bound
                "flops": tres.get("flops"), "bops": tres.get("bops"), "test_accuracy": tres.get("test_accuracy"),
                "train_run": str(trun), "retrain_cpu_s": tcost.get("cpu_s"), "retrain_wall_s": tcost.get("wall_s"),
                "retrain_precision": tres.get("precision"), "retrain_memory_format": tres.get("memory_format"),
                "epochs": tres.get("epochs"),
                "stages": len(tres.get("stages") or [])})
    if scale.measure_latency:
        rec.update(measure_latency(trun))
    return rec


def data_shape(scale: Scale) -> dict[str, int]:
    """in_channels, num_classes, resolution of the scale's dataset (without reading it for the known ones)."""
    if scale.dataset == "synthetic":
        return {"in_channels": scale.data_opts.get("channels", 1), "num_classes": scale.data_opts.get("num_classes", 10),
                "resolution": scale.data_opts.get("resolution", 28)}
    return {"in_channels": 1, "num_classes": 10, "resolution": 28}  # fashion-mnist


def run_board(rows: list[Row], seeds: list[int], scale: Scale, out: Path, jobs: int = 2, data_root: str | None = None,
              precision: str | None = None, stop_after: int | None = None) -> Board:
    """Every (row, seed) job not yet in the board, `jobs` at a time, seed-major (all rows of seed 0 first, so
    a partial board has every row). `stop_after`: return after that many newly finished jobs (tests use it to
    leave a partial board). A failed job is reported and left out; the others go on."""
    out.mkdir(parents=True, exist_ok=True)
    board = Board(out)
    other = sorted({r.get("epochs") for r in board.records} - {scale.retrain_epochs})
    if other:  # one recipe per board: a sitting must not change it half-way
        raise SystemExit(f"error: {out} holds runs retrained for {other} epoch(s), this sitting asks for "
                         f"{scale.retrain_epochs}; use another --out")
    todo = [(r, s) for s in seeds for r in rows if board.get(r.name, s) is None]
    data = data_shape(scale)
    done = [0]
    failures: list[str] = []
    stop = threading.Event()

    def work(item):
        row, seed = item
        if stop.is_set():
            return
        try:
            rec = run_job(row, seed, scale, out, data_root, precision, data)
        except Exception as e:  # a failed job is recorded, not fatal
            failures.append(f"{row.name} seed {seed}: {e}")
            print(f"FAILED {row.name} seed {seed}: {e}", file=sys.stderr, flush=True)
            return
        board.add(rec)
        done[0] += 1
        print(json.dumps({"finished": row.name, "seed": seed, "test_accuracy": rec["test_accuracy"],
                          "params": rec["params"]}), flush=True)
        if stop_after is not None and done[0] >= stop_after:
            stop.set()

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(work, todo))
    board.failures = failures
    return board


# ---------------------------------------------------------------------------------------------
# aggregation, table, plot
# ---------------------------------------------------------------------------------------------
def _mean_std(vals: list[float]) -> tuple[float | None, float | None]:
    vals = [float(v) for v in vals if isinstance(v, (int, float))]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def aggregate(records: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """One summary per row: test accuracy mean and sample std over seeds, mean costs, precisions used."""
    out = []
    for name in order:
        rs = sorted((r for r in records if r["row"] == name), key=lambda r: r["seed"])
        if not rs:
            continue
        acc_m, acc_s = _mean_std([r["test_accuracy"] for r in rs])
        summary = {"row": name, "kind": rs[0]["kind"], "n": len(rs), "seeds": [r["seed"] for r in rs],
                   "test_accuracy_mean": acc_m, "test_accuracy_std": acc_s,
                   "precision": sorted({str(r.get("retrain_precision")) for r in rs}
                                       | {str(r["search_precision"]) for r in rs if r.get("search_precision")})}
        for key in ("params", "flops", "bops", "latency_b1_ms", "latency_b32_ms", "search_cpu_s", "retrain_cpu_s"):
            summary[key] = _mean_std([r.get(key) for r in rs])[0]
        summary["stopped_by_seconds"] = sum(1 for r in rs if r.get("stopped"))
        summary["over_bound"] = sum(1 for r in rs if r.get("within_bound") is False)
        out.append(summary)
    return out


def _fmt(v: Any, kind: str = "") -> str:
    if v is None:
        return "—"
    if kind == "acc":
        return f"{100 * v:.2f}"
    if kind == "int":
        return f"{v / 1e6:.3f} M" if v >= 1e5 else f"{int(v):,}"
    if kind == "ops":
        return f"{v / 1e6:.1f} M"
    if kind == "ms":
        return f"{v:.2f}"
    if kind == "s":
        return f"{v:,.0f}"
    return str(v)


def table_markdown(summary: list[dict[str, Any]], scale: str) -> str:
    """The leaderboard table (markdown) of `summary` (see aggregate)."""
    lines = [f"Scale `{scale}`; test accuracy in % (mean ± sample std over seeds); costs are means over seeds.", "",
             "| row | seeds | test acc. % | params | FLOPs | BOPs | latency b1 ms | latency b32 ms | search CPU s "
             "| retrain CPU s | precision |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in sorted(summary, key=lambda s: -(s["test_accuracy_mean"] or 0)):
        acc = _fmt(s["test_accuracy_mean"], "acc") + ("" if s["test_accuracy_std"] is None
                                                      else f" ± {100 * s['test_accuracy_std']:.2f}")
        params = _fmt(s['params'], 'int') + (" (over the bound)" if s.get("over_bound") else "")
        lines.append(f"| {s['row']} | {s['n']} | {acc} | {params} | {_fmt(s['flops'], 'ops')} | "
                     f"{_fmt(s['bops'] or None, 'ops')} | {_fmt(s['latency_b1_ms'], 'ms')} | "
                     f"{_fmt(s['latency_b32_ms'], 'ms')} | {_fmt(s['search_cpu_s'] if s['kind'] == 'search' else None, 's')} | "
                     f"{_fmt(s['retrain_cpu_s'], 's')} | {', '.join(s['precision'])} |")
    return "\n".join(lines) + "\n"


def write_outputs(board: Board, order: list[str], scale: Scale, docs: Path, results: Path) -> dict[str, Any]:
    """docs/results/leaderboard.json, the table in docs/leaderboard.md (between the markers; the file is
    created with just the markers if missing) and docs/leaderboard.png."""
    records = with_remeasured_latency(board.records, board.path.parent)
    summary = aggregate(records, order)
    doc = {"benchmark": "leaderboard", "scale": scale.name, "protocol": {
        "dataset": scale.dataset, "search_subset": scale.search_subset, "search_seconds": scale.search_seconds,
        "oneshot_epochs": scale.oneshot_epochs, "retrain_epochs": scale.retrain_epochs,
        "retrain_subset": scale.retrain_subset, "test_subset": scale.test_subset, "bound": scale.bound,
        "binary_bound": scale.binary_bound, "flops_bound": scale.flops_bound, "final_depth": FINAL_DEPTH,
        "budget_fill": scale.budget_fill,
        "epoch_plan": json.loads(p.read_text()) if (p := board.path.parent / PLAN_FILE).is_file() else None},
        "command": " ".join(["python", "benchmarks/leaderboard.py", *sys.argv[1:]]),
        "rows": summary, "runs": records}
    results.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results, doc)
    md = docs / "leaderboard.md"
    docs.mkdir(parents=True, exist_ok=True)
    text = md.read_text() if md.is_file() else f"# Leaderboard\n\n{TABLE_START}\n{TABLE_END}\n"
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"error: {md} has no {TABLE_START} ... {TABLE_END} markers")
    head, rest = text.split(TABLE_START, 1)
    tail = rest.split(TABLE_END, 1)[1]
    atomic_write_bytes(md, (head + TABLE_START + "\n" + table_markdown(summary, scale.name) + TABLE_END + tail).encode())
    plot(summary, records, docs / "leaderboard.png")
    return doc


def plot(summary: list[dict[str, Any]], records: list[dict[str, Any]], path: Path) -> None:
    """Accuracy vs total CPU hours (search + retraining) and vs parameters, one point per row with the
    seeds' spread; hand-designed rows as squares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for s in summary:
        rs = [r for r in records if r["row"] == s["row"]]
        cost = statistics.fmean([(r.get("search_cpu_s") or 0) + (r.get("retrain_cpu_s") or 0) for r in rs]) / 3600
        acc, err = 100 * (s["test_accuracy_mean"] or 0), 100 * (s["test_accuracy_std"] or 0)
        marker = "s" if s["kind"] == "train" else "o"
        for ax, x in ((axes[0], cost), (axes[1], (s["params"] or 0) / 1e6)):
            ax.errorbar([x], [acc], yerr=[err], fmt=marker, capsize=3)
            ax.annotate(s["row"], (x, acc), textcoords="offset points", xytext=(4, 3), fontsize=7)
    axes[0].set_xlabel("CPU hours per run (search + retraining, one thread)")
    axes[1].set_xlabel("parameters (M)")
    for ax in axes:
        ax.set_ylabel("Fashion-MNIST test accuracy (%)")
        ax.grid(alpha=0.3)
    fig.suptitle("Leaderboard: accuracy vs cost (o searched, ■ hand-designed; bars: std over seeds)")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def measure_rates(rows: list[Row], scale: Scale, steps: int = 3, precisions: tuple[str, ...] = ("fp32", "bf16"),
                  seed: int = 0) -> list[dict[str, Any]]:
    """Sizing the budget: each row's final network (search rows: a random architecture of the row's search
    space, scaled by the rule) timed for `steps` training steps (after one warm-up) at the recipe's batch, one
    thread, in each precision (autocast; channels_last for bf16). Returns per row: params, images/s and the
    seconds one retraining epoch on 60k images would take. Timings on a loaded machine are ratios only."""
    import torch
    import torch.nn.functional as F

    from nasforge.accel import Precision
    from nasforge.building import import_components
    from nasforge.registry import SPACES

    import_components()
    torch.set_num_threads(1)
    data = data_shape(scale)
    out = []
    for row in rows:
        bound = scale.binary_bound if row.binary else scale.bound
        if row.kind == "train":
            opts, n = scale_options(None, row.model, bound, data, scale.flops_bound)
            make = lambda: __import__("nasforge.models", fromlist=["build_named"]).build_named(  # noqa: E731
                row.model, data["in_channels"], data["num_classes"], opts, data["resolution"])
        else:
            sp = SPACES.get(row.space)(**data, **{**row.space_options, **scale.search_space_options.get(row.space, {})})
            arch = sp.sample(random.Random(seed))
            doc = {"space": row.space, "space_config": sp.config, "arch": arch}
            opts, n = scale_options(doc, None, bound, data, scale.flops_bound)
            make = lambda: sp.build(arch, **opts)  # noqa: E731
        rec: dict[str, Any] = {"row": row.name, "params": n, "options": opts}
        batch = 256 if row.binary else scale.batch_size
        for prec in precisions:
            torch.manual_seed(seed)
            model = make()
            if row.binary:
                from nasforge.ops.binary import set_binarization

                set_binarization(model, True, True)
            x = torch.randn(batch, data["in_channels"], data["resolution"], data["resolution"])
            y = torch.randint(0, data["num_classes"], (batch,))
            if prec == "bf16":
                model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
            p = Precision(torch.device("cpu"), prec)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            times = []
            for i in range(steps + 1):
                t = time.perf_counter()
                with p.autocast():
                    loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if i:
                    times.append(time.perf_counter() - t)
            ips = batch / statistics.median(times)
            rec[f"{prec}_images_per_s"] = round(ips, 1)
            rec[f"{prec}_epoch_60k_s"] = round(60000 / ips, 1)
        print(json.dumps(rec), flush=True)
        out.append(rec)
    return out


def sizing(rates: list[dict[str, Any]], scale: Scale, seeds: int = 3, hours: float = 8.0, jobs: int = 2,
           precision: str = "bf16", speedup: float = 1.0) -> dict[str, Any]:
    """The protocol's budget arithmetic: CPU-seconds of the searches plus one retraining epoch of every
    (row, seed) (binary rows: two stages), and the largest retraining epoch count E whose total fits in
    `hours` with `jobs` runs at a time. `speedup`: how much faster a run is expected to go than when
    `rates` were measured (e.g. 4 for a measurement under a load of 8 on 2 cores)."""
    n_search = sum(1 for r in rates if ROWS[r["row"]].kind == "search")
    search = seeds * n_search * scale.search_seconds
    per_epoch = {r["row"]: r[f"{precision}_epoch_60k_s"] / speedup * (2 if ROWS[r["row"]].binary else 1)
                 for r in rates}
    epoch_all = seeds * sum(per_epoch.values())
    budget = hours * 3600 * jobs
    return {"search_cpu_s": search, "one_epoch_all_rows_cpu_s": round(epoch_all), "per_row_epoch_s": per_epoch,
            "max_epochs": max(0, int((budget - search) // epoch_all)), "hours": hours, "precision": precision,
            "speedup_assumed": speedup,
            "hours_at": {e: round((search + e * epoch_all) / jobs / 3600, 1) for e in (1, 2, 4)}}


# ---------------------------------------------------------------------------------------------
# the record attempt (issue 23 item 4)
# ---------------------------------------------------------------------------------------------
RECORD = {"epochs": 200, "bound": 1_000_000, "binary_bound": 500_000}


def record_commands(out: Path, board_out: Path, data_root: str | None, epochs: int | None = None,
                    scale: Scale | None = None) -> list[list[str]]:
    """The record attempt: the searched row whose *search-time* evidence is best (search-val accuracy of the
    found architecture as the search reported it; never test accuracy) and the best binary search, trained
    with the long recipe on the full training set under the record bounds. Needs a finished leaderboard."""
    board = Board(board_out)
    if not board.records:
        raise SystemExit(f"error: no finished leaderboard runs in {board_out}; run the leaderboard first")

    def evidence(r: dict[str, Any]) -> float:
        """The search's own validation score of what it found: multi-trial best_score, ViTAS' best fitness,
        HURRICANE's last stage's best accuracy, else the supernet's search-val accuracy at the last epoch.
        Each is the method's own estimate (weight-shared or short trials), so the pick is a judgment on
        search-time evidence, as the issue asks, not a like-for-like ranking."""
        res = json.loads((Path(r["search_run"]) / "result.json").read_text())
        m = (res.get("search") or {}).get("metrics") or {}
        hist = (res.get("search") or {}).get("history") or []
        nested = [(m.get("selection") or {}).get("best_fitness")] + [st.get("best_accuracy") for st in
                                                                       (m.get("stages") or [])[-1:]]
        for v in [m.get("best_score"), *nested]:
            if isinstance(v, (int, float)):
                return float(v)
        vals = [h.get("supernet_val_accuracy") for h in hist if isinstance(h, dict)]
        vals = [v for v in vals if isinstance(v, (int, float))]
        return float(vals[-1]) if vals else -1.0

    searched = [r for r in board.records if r["kind"] == "search"]
    cmds = []
    for binary, bound, tag in ((False, RECORD["bound"], "record-1m"), (True, RECORD["binary_bound"], "record-binary")):
        cands = [r for r in searched if r["binary"] == binary]
        if not cands:
            continue
        best = max(cands, key=evidence)
        arch_doc = json.loads((Path(best["search_run"]) / "arch.json").read_text())
        options, _ = scale_options(arch_doc, None, bound, {"in_channels": 1, "num_classes": 10, "resolution": 28})
        cmd = [*_nasforge(), "train", "--arch", str(Path(best["search_run"]) / "arch.json"),
               "--epochs", str(epochs or RECORD["epochs"]), "--seed", "0", "--threads", "2", "--out", str(out), "--name", tag,
               *_kv_args("--space-opt", options), "--set", "cutout=8", "--set", "label_smoothing=0.1"]
        if not binary:
            cmd += ["--set", "drop_path=0.1", "--batch-size", "128", "--lr", "0.05"]
        cmd += _data_args(scale or SCALES["full"], data_root)  # the full training set, the official test set
        cmds.append(cmd)
    return cmds


def run_record(cmds: list[list[str]], out: Path) -> list[dict[str, Any]]:
    """Run the record-attempt commands one after the other, each its own run folder under `out` (finished ones
    reused, an interrupted one resumed with ``--resume``), and write `out`/record.json: per attempt the
    architecture file, scaled options, test accuracy, parameters, FLOPs/BOPs, epochs, precision and the
    training's CPU and wall seconds. A failed attempt is recorded with its error; the other still runs."""
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for cmd in cmds:
        name = cmd[cmd.index("--name") + 1]
        run = out / name
        entry: dict[str, Any] = {"name": name, "arch": cmd[cmd.index("--arch") + 1], "command": " ".join(cmd[1:])}
        try:
            res = run_step(cmd, run, out / f"{name}.log")
            cost = _cost(run)
            entry.update({k: res.get(k) for k in ("test_accuracy", "params", "flops", "bops", "epochs", "precision",
                                                 "memory_format")})
            entry.update({"train_cpu_s": cost.get("cpu_s"), "train_wall_s": cost.get("wall_s"), "run": str(run)})
        except Exception as e:  # a failed attempt is recorded, not fatal
            entry["error"] = str(e)
        results.append(entry)
        atomic_write_json(out / "record.json", {"bounds": {"params": RECORD["bound"], "binary_params": RECORD["binary_bound"]},
                                               "attempts": results})
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", choices=sorted(SCALES), default="full")
    p.add_argument("--rows", nargs="+", default=None, help=f"rows (default all): {' '.join(ROWS)}")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="jobs at a time (each command one thread)")
    p.add_argument("--out", type=Path, default=None, help="leaderboard folder (default runs/leaderboard-SCALE)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--precision", default=None, help="passed to every run (default: the commands' own default)")
    p.add_argument("--write", action="store_true", help="write results JSON, the docs table and the plot")
    p.add_argument("--docs", type=Path, default=REPO / "docs", help="folder of leaderboard.md / leaderboard.png")
    p.add_argument("--results", type=Path, default=None, help="default DOCS/results/leaderboard.json")
    p.add_argument("--dry-run", action="store_true", help="print the first commands of each job and exit")
    p.add_argument("--record", action="store_true", help="the record-attempt commands (needs a finished board)")
    p.add_argument("--report-only", action="store_true", help="with --write: write from the finished runs, run no jobs "
                   "(e.g. while another process is filling the board)")
    p.add_argument("--latency", action="store_true", help="re-measure every finished run's latency in one process "
                   "(runs interleaved; on a quiet machine) into OUT/latency.json, which --write then uses; runs no jobs")
    p.add_argument("--latency-rounds", type=int, default=5, help="--latency: rounds over all runs (median)")
    p.add_argument("--run", action="store_true", help="--record: run the record commands one after the other "
                   "(each a resumable run folder under --record-out; record.json there sums them up)")
    p.add_argument("--record-out", type=Path, default=None, help="--record: folder of the record runs (default runs/record)")
    p.add_argument("--record-epochs", type=int, default=None, help=f"--record: epochs (default {RECORD['epochs']})")
    p.add_argument("--measure", action="store_true", help="time each row's final network (sizing the budget)")
    p.add_argument("--speedup", type=float, default=1.0, help="--measure: expected speed-up of the real runs over "
                   "this measurement (e.g. 4 when measured under a load of 8 on 2 cores)")
    args = p.parse_args(argv)
    scale = SCALES[args.scale]
    unknown = [r for r in (args.rows or []) if r not in ROWS]
    if unknown:
        p.error(f"unknown row(s) {unknown}; choose from {' '.join(ROWS)}")
    if args.jobs < 1 or any(s < 0 for s in args.seeds):
        p.error("--jobs must be >= 1 and seeds >= 0")
    rows = [ROWS[r] for r in (args.rows or ROWS)]
    out = args.out or REPO / "runs" / f"leaderboard-{scale.name}"
    if args.measure:
        rates = measure_rates(rows, scale)
        print(json.dumps({"sizing": sizing(rates, scale, seeds=len(args.seeds), speedup=args.speedup)}), flush=True)
        return 0
    if args.latency:
        board = Board(out)
        if not board.records:
            p.error(f"no finished leaderboard runs in {out}")
        if args.latency_rounds < 1:
            p.error("--latency-rounds must be >= 1")
        doc = remeasure_latency(board, out, args.latency_rounds)
        print(json.dumps({k: doc[k] for k in ("rounds", "when", "load_avg_start", "load_avg_end")} |
                         {"runs": len(doc["runs"])}), flush=True)
        if args.write:
            write_outputs(board, list(ROWS), scale, args.docs, args.results or args.docs / "results" / "leaderboard.json")
        return 0
    if args.record:
        if args.record_epochs is not None and args.record_epochs < 1:
            p.error("--record-epochs must be >= 1")
        rec_out = args.record_out or REPO / "runs" / "record"
        cmds = record_commands(rec_out, out, args.data_root, args.record_epochs, scale)
        if not args.run:
            for cmd in cmds:
                print(" ".join(cmd[1:]).replace("-m nasforge", "nasforge"))
            return 0
        print(json.dumps({"record": run_record(cmds, rec_out)}), flush=True)
        return 0
    if args.dry_run:
        plan = json.loads((out / PLAN_FILE).read_text()) if (out / PLAN_FILE).is_file() else {}
        for s in args.seeds:
            for r in rows:
                if r.kind == "search":
                    extra = {"latency_ms": "MEDIAN"} if r.method == "hurricane" else None
                    epochs = (plan.get(r.name) or {}).get("epochs") if scale.budget_fill and not r.estimator else None
                    cmd = search_command(r, scale, s, out, f"{r.name}-s{s}-search", args.data_root, args.precision, extra,
                                         epochs)
                    if scale.budget_fill and not r.estimator and epochs is None:
                        cmd[cmd.index("--epochs") + 1] = "PLANNED"
                        cmd = [a if not a.startswith("arch_lr=") else "arch_lr=RULE(PLANNED)" for a in cmd]
                else:
                    opts, _ = scale_options(None, r.model, scale.binary_bound if r.binary else scale.bound, data_shape(scale),
                                            scale.flops_bound)
                    cmd = train_command(r, scale, s, out, f"{r.name}-s{s}-train", r.model, opts, args.data_root,
                                        args.precision)
                print(" ".join(cmd[1:]).replace("-m nasforge", "nasforge"))
        return 0
    if args.report_only:
        if not args.write:
            p.error("--report-only needs --write")
        board = Board(out)
        if not board.records:
            p.error(f"no finished leaderboard runs in {out}")
        write_outputs(board, list(ROWS), scale, args.docs, args.results or args.docs / "results" / "leaderboard.json")
        return 0
    t0 = time.time()
    board = run_board(rows, args.seeds, scale, out, args.jobs, args.data_root, args.precision)
    print(json.dumps({"finished_jobs": len(board.records), "failed": board.failures, "wall_s": round(time.time() - t0, 1),
                      "out": str(out)}), flush=True)
    if args.write:
        write_outputs(board, list(ROWS), scale, args.docs, args.results or args.docs / "results" / "leaderboard.json")
    return 1 if board.failures else 0


if __name__ == "__main__":
    sys.exit(main())
