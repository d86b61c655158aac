"""Search-step speed per method: the previous default against the new one, and how close each gets to this
CPU's limit (issue 20).

For every method the strategy's own step is timed as its search loop runs it
(`OneShotStrategy.search_step`: the method's `step` under the engine's autocast, the scaler update and the
per-step schedule), on a supernet and strategy built through the registries as `nasforge search` builds
them, with real Fashion-MNIST batches (batch 64, a few batches drawn up front so loading is not timed), on
`--threads` threads (1 by default). Both arms are built in one process with the same seed and run one step
each in turn (old new old new ...), so load drift hits both alike. Per arm: median CPU ms per step
(time.process_time, exact for a 1-thread process) and wall ms; the speed-up is the median of the per-round
ratios old/new (CPU time); `target_met` is a speed-up of at least 2.

Work per step: the executed FLOPs of whole steps (forward and backward of every pass) counted by
`nasforge.hardware.flops.step_flop_counter` (torch's FlopCounterMode with the depthwise weight-gradient
formula corrected), and the bytes moved by convolutions and batch norms under this model: every tensor an
aten convolution / convolution_backward / batch_norm / batch_norm_backward call reads (its tensor arguments)
or writes (its outputs) crosses memory once at its dtype, i.e. no reuse between calls and none within a call
beyond one pass. Both are averaged over `--count-steps` further steps of each arm (paths are sampled per
step in manas, hurricane and vitas). Achieved GFLOP/s and GB/s divide them by the arm's median CPU time and
are given as shares of the peaks measured at the start of the same run: a 2048^3 matmul in fp32 and in
bf16 (best of `--peak-reps`, CPU time) and a 256 MiB tensor copy (GB/s counts read + write).

Arms (`ARMS`): "old" is the default before issue 20 (fp32, the memory format each space used, the per-edge
reference kernels), "new" what the new defaults resolve to. Each arm names SearchContext fields and space
options; an entry this checkout does not have is reported under `not_in_this_checkout` and left out, so the
table keeps working as the precision/memory-format and kernel options land (and a space without an
option, e.g. nb201 without `fused`, runs its one path in both arms).

    .venv/bin/python benchmarks/step_speed.py --write                        # all methods, ~6-8 min idle
    .venv/bin/python benchmarks/step_speed.py --methods darts-nb201 vitas --rounds 5
    .venv/bin/python benchmarks/step_speed.py --quick                        # toy sizes (the test runs this)
    .venv/bin/python benchmarks/step_speed.py --methods darts-darts hurricane --arms old prev new
                                     # 'prev': the new default with the plain depthwise convs (before the
                                     # tiled depthwise backward); speed-ups of each arm over the last

With --write, docs/results/step_speed.json is rewritten after every method and a rerun reuses the methods it
already holds for the same settings (--fresh measures them again).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "docs" / "results" / "step_speed.json"

# method -> what `nasforge search` would be given; "quick" replaces space options for the toy size
METHODS: dict[str, dict[str, Any]] = {
    "darts-nb201": {"method": "darts", "space": "nb201", "space_options": {"C": 16, "N": 1},
                    "quick": {"C": 4, "N": 1}},
    "darts-darts": {"method": "darts", "space": "darts", "space_options": {"C": 8, "layers": 5},
                    "quick": {"C": 4, "layers": 3, "nodes": 2}},
    "single-darts": {"method": "single-darts", "space": "nb201", "space_options": {"C": 16, "N": 1},
                     "quick": {"C": 4, "N": 1}},
    "manas": {"method": "manas", "space": "darts", "space_options": {"C": 8, "layers": 5, "unique_cells": True},
              "quick": {"C": 4, "layers": 3, "nodes": 2, "unique_cells": True}},
    "bats": {"method": "bats", "space": "bats", "space_options": {"C": 8, "layers": 5, "groups": 4},
             "quick": {"C": 4, "layers": 3, "nodes": 2, "groups": 2, "shuffle_groups": 2}},
    # HURRICANE's supernet over 4 candidates per layer (drawn with the seed: its candidate selection needs a
    # latency table of a target, which is not part of a step), all layers searchable (order=joint)
    "hurricane": {"method": "hurricane", "space": "mobile", "space_options": {}, "hparams": {"order": "joint"},
                  "quick": {"widths": [8, 8], "strides": [1, 2], "stem": 8, "head": 16}},
    # p_identity fixed at the calibrated value of docs/vitas.md (calibration is set-up, not a step)
    "vitas": {"method": "vitas", "space": "vit", "space_options": {}, "hparams": {"p_identity": 0.35},
              "quick": {"embed_dim": 16, "qkv_dim": 16, "mlp_dim": 32, "depth": 2, "heads": [1, 2]}},
}
DEPTHWISE_HEAVY = ("darts-darts", "manas", "bats", "hurricane")


def _new_precision() -> str:
    from nasforge.accel import PRECISIONS

    return "auto" if "auto" in PRECISIONS else "bf16"  # bf16 until `--precision auto` exists


# The arms, as SearchContext fields ("ctx") and space options ("space"), each applied where this checkout and
# the method's space declare it. "fused" is the per-edge/explicit reference (False) against the fused
# kernels (True): the vit space's attention today; add the memory-format option here as it lands.
# "prev" is "new" with the depthwise convs as before the tiled weight gradient (`plain_depthwise`: every
# DepthwiseConv2d module on the plain nn.Conv2d path and nasforge.ops.depthwise.tiled_weight_grad(False)
# around its steps; the grouped path keeps its polyphase form), i.e. the new default as it was measured
# before the depthwise-backward branch: `--arms prev new` isolates that change in one interleaved run.
ARMS: dict[str, dict[str, Any]] = {
    "old": {"ctx": {"precision": "fp32", "memory_format": None}, "space": {"fused": False}},
    "prev": {"ctx": {"precision": _new_precision(), "memory_format": "auto"}, "space": {"fused": True},
             "plain_depthwise": True},
    "new": {"ctx": {"precision": _new_precision(), "memory_format": "auto"}, "space": {"fused": True}},
}


# ---------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------
def best_cpu_time(f: Callable[[], Any], reps: int) -> float:
    """Best CPU time (s) of `reps` calls of f after two warm-up calls."""
    f()
    f()
    best = float("inf")
    for _ in range(reps):
        c = time.process_time()
        f()
        best = min(best, time.process_time() - c)
    return best


def peaks(reps: int, n: int = 2048) -> dict[str, float]:
    """This CPU's ceilings on this thread count: n^3 matmul GFLOP/s in fp32 and bf16 (native tensors) and
    the GB/s of copying a 256 MiB tensor (read + write)."""
    out: dict[str, float] = {"matmul_n": n}
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
        out[f"matmul_{name}_gflops"] = 2 * n**3 / best_cpu_time(lambda: a @ b, reps) / 1e9
    src = torch.randn(64 * 2**20)
    dst = torch.empty_like(src)
    out["copy_gbs"] = 2 * src.nbytes / best_cpu_time(lambda: dst.copy_(src), reps) / 1e9
    return out


class ConvNormBytes(torch.utils._python_dispatch.TorchDispatchMode):
    """Bytes read and written by convolution and batch-norm calls (forward and backward), each tensor
    argument read once and each output written once, at its dtype."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if "convolution" in name or "batch_norm" in name:
            self.calls += 1
            self.bytes += sum(t.numel() * t.element_size() for t in _tensors((args, kwargs, out)))
        return out


def _tensors(x: Any):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _tensors(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _tensors(v)


# ---------------------------------------------------------------------------------------------
# one method, both arms, in this process
# ---------------------------------------------------------------------------------------------
def _data(batch: int, n_batches: int, seed: int):
    from nasforge.data import SearchData, load_dataset, search_split
    from nasforge.errors import UserError

    try:
        name, (train, _) = "fashion-mnist", load_dataset("fashion-mnist")
    except UserError:  # a machine without the Debian package: the toy run still exercises every step
        name, (train, _) = "synthetic", load_dataset("synthetic")
    tr, va = search_split(train, seed=seed, subset=2 * batch * n_batches)
    mean, std = train.stats()
    return name, lambda device: SearchData(tr, va, batch, None, mean, std, device=device)


def _applicable(arm: dict[str, dict[str, Any]], space_cls) -> tuple[dict, dict, list[str]]:
    """The arm's SearchContext fields and space options this checkout has, and the names it lacks."""
    from nasforge.accel import PRECISIONS
    from nasforge.engine.base import SearchContext

    ctx_fields = {f.name for f in fields(SearchContext)}
    ctx = {k: v for k, v in arm["ctx"].items()
           if k in ctx_fields and (k != "precision" or v in PRECISIONS)}
    space = {k: v for k, v in arm["space"].items() if k in space_cls.defaults}
    missing = [f"ctx.{k}={v}" for k, v in arm["ctx"].items() if k not in ctx] + \
              [f"space.{k}={v}" for k, v in arm["space"].items() if k not in space]
    return ctx, space, missing


def build_arm(spec: dict[str, Any], arm: dict[str, dict[str, Any]], space_options: dict[str, Any],
              data, batch_count: int, seed: int) -> dict[str, Any]:
    """Space, supernet and strategy of one arm, set up as OneShotStrategy.search sets them up (no run
    directory, no resume), and `batch_count` search batches; returns {"step": step(k), ...}."""
    from nasforge.building import import_components, make_space
    from nasforge.engine.base import Budget, SearchContext
    from nasforge.registry import SPACES, STRATEGIES
    from nasforge.utils import seed_everything
    from nasforge.accel import Precision, apply_memory_format, resolve_fast_path

    import_components()
    ctx_kw, space_kw, missing = _applicable(arm, SPACES.get(spec["space"]))
    seed_everything(seed)
    space = make_space(spec["space"], data.train, {**space_options, **space_kw})
    strategy = STRATEGIES.get(spec["method"])(**spec.get("hparams", {}))
    strategy.prepare(space)
    ctx = SearchContext(space=space, budget=Budget(epochs=1), seed=seed, data=data, device=torch.device("cpu"),
                        **ctx_kw)
    # -- as OneShotStrategy.search: precision, supernet, weight optimiser, set-up, first phase and epoch (keep
    # in step with search(): where it resolves `auto` or converts the supernet's memory format, do it here too)
    if ctx.precision == "auto" or ctx.memory_format == "auto":  # as api.search resolves them (the space declares)
        choice = resolve_fast_path(ctx.precision, ctx.memory_format, ctx.device, space.fast_path("supernet"))
        ctx.precision, ctx.memory_format = choice["precision"], choice["memory_format"]
    strategy.prec = Precision(ctx.device, ctx.precision)
    if spec["method"] == "hurricane":  # its build_supernet starts from a target's latency table; not a step
        rng = random.Random(seed)
        cands = [sorted(rng.sample(c, min(4, len(c)))) for c in space.layer_choices()]
        supernet = space.supernet(candidates=cands)
        strategy.stages = strategy._stages(len(cands))
        strategy.fixed = [c[0] for c in cands]
    else:
        supernet = strategy.build_supernet(ctx, None)
    supernet = supernet.to(ctx.device)
    apply_memory_format(supernet, ctx.memory_format)  # as OneShotStrategy.search
    train_loader, val_loader = strategy.loaders(ctx)
    strategy._make_weight_optimizer(supernet, ctx, 1, len(train_loader))
    strategy.setup(supernet, ctx)
    strategy._phase, strategy._phase_epoch = 0, 0
    strategy.on_phase_start(supernet, 0, ctx)
    strategy.on_epoch_start(supernet, 0, 1, ctx)
    supernet.train()
    second = {"val": val_loader, "train": data.loader(data.train, seed + 104729)}.get(strategy.second_stream)
    train_loader.set_epoch(0)
    batches = [b for _, b in zip(range(batch_count), train_loader.forever())]
    seconds = [b for _, b in zip(range(batch_count), second.forever())] if second is not None else None

    plain = contextlib.nullcontext
    if arm.get("plain_depthwise"):
        try:
            from nasforge.ops.depthwise import set_fast_depthwise, tiled_weight_grad
        except ImportError:  # a checkout before the tiled depthwise backward: its convs are the plain ones
            missing.append("plain_depthwise")
        else:
            set_fast_depthwise(supernet, False)
            plain = lambda: tiled_weight_grad(False)  # noqa: E731

    def step(k: int) -> dict[str, float]:
        i = k % len(batches)
        with plain():
            return strategy.search_step(supernet, batches[i], seconds[i] if seconds else None, ctx)

    return {"step": step, "precision": strategy.prec.precision, "memory_format": ctx.memory_format, "ctx": ctx_kw, "space_options": space_kw,
            "not_in_this_checkout": missing}


def measure(name: str, rounds: int, warmup: int, count_steps: int, quick: bool, seed: int = 0,
            batch: int = 64, arms: tuple[str, ...] = ("old", "new")) -> dict[str, Any]:
    """Both arms of method `name`, interleaved; see the module docstring for every figure."""
    from nasforge.hardware.flops import step_flop_counter

    spec = METHODS[name]
    space_options = spec["quick"] if quick else spec["space_options"]
    n_batches = 4
    dataset, make_data = _data(batch, n_batches, seed)
    built = {a: build_arm(spec, ARMS[a], space_options, make_data(torch.device("cpu")), n_batches, seed)
             for a in arms}
    cpu: dict[str, list[float]] = {a: [] for a in arms}
    wall: dict[str, list[float]] = {a: [] for a in arms}
    for k in range(warmup):  # first steps create oneDNN primitives
        for a in arms:
            built[a]["step"](k)
    for r in range(rounds):
        for a in arms:
            c0, t0 = time.process_time(), time.perf_counter()
            built[a]["step"](warmup + r)
            cpu[a].append(time.process_time() - c0)
            wall[a].append(time.perf_counter() - t0)
    out: dict[str, Any] = {"method": spec["method"], "space": spec["space"], "space_options": space_options,
                           "hparams": spec.get("hparams", {}), "batch": batch, "dataset": dataset,
                           "depthwise_heavy": name in DEPTHWISE_HEAVY, "arms": {}}
    for a in arms:
        flops = ConvNormBytes()
        counter = step_flop_counter()
        with counter, flops:
            for k in range(count_steps):
                built[a]["step"](warmup + rounds + k)
        med = statistics.median(cpu[a])
        out["arms"][a] = {
            "precision": built[a]["precision"], "ctx": built[a]["ctx"], "space_options": built[a]["space_options"],
            "not_in_this_checkout": built[a]["not_in_this_checkout"],
            "cpu_ms": [round(1e3 * t, 2) for t in cpu[a]], "cpu_ms_median": 1e3 * med,
            "wall_ms_median": 1e3 * statistics.median(wall[a]),
            "gflop_per_step": counter.get_total_flops() / count_steps / 1e9,
            "conv_bn_gbytes_per_step": flops.bytes / count_steps / 1e9,
            "conv_bn_calls_per_step": flops.calls / count_steps,
        }
        out["arms"][a]["achieved_gflops"] = out["arms"][a]["gflop_per_step"] / med
        out["arms"][a]["conv_bn_gbs"] = out["arms"][a]["conv_bn_gbytes_per_step"] / med
    if len(arms) >= 2:  # the first arm against the last; with 3 arms also each earlier arm against the last
        old, new = arms[0], arms[-1]
        out["speedup_cpu"] = statistics.median(o / n for o, n in zip(cpu[old], cpu[new]))
        out["speedup_wall"] = statistics.median(o / n for o, n in zip(wall[old], wall[new]))
        out["target_met"] = out["speedup_cpu"] >= 2.0
        out["speedup_cpu_vs_last"] = {a: statistics.median(o / n for o, n in zip(cpu[a], cpu[new]))
                                      for a in arms[:-1]}
    return out


# ---------------------------------------------------------------------------------------------
# driver: one fresh process per method
# ---------------------------------------------------------------------------------------------
def _settings(a: argparse.Namespace) -> dict[str, Any]:
    return {"rounds": a.rounds, "warmup": a.warmup, "count_steps": a.count_steps, "quick": a.quick,
            "threads": a.threads, "seed": a.seed, "arms": {k: ARMS[k] for k in a.arms}, "arm_order": a.arms}


def _shares(res: dict[str, Any], peak: dict[str, float]) -> None:
    for arm in res["arms"].values():
        arm["share_of_fp32_peak"] = arm["achieved_gflops"] / peak["matmul_fp32_gflops"]
        arm["share_of_bf16_peak"] = arm["achieved_gflops"] / peak["matmul_bf16_gflops"]
        arm["conv_bn_share_of_copy_gbs"] = arm["conv_bn_gbs"] / peak["copy_gbs"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--rounds", type=int, default=7, help="timed rounds (one step of each arm per round)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each arm first")
    p.add_argument("--count-steps", type=int, default=2, help="further steps per arm over which work is counted")
    p.add_argument("--peak-reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="toy sizes and 1 round: checks the script, measures nothing")
    p.add_argument("--write", action="store_true", help=f"write {RESULT.relative_to(REPO)} (after every method)")
    p.add_argument("--out", type=Path, default=RESULT, help=argparse.SUPPRESS)
    p.add_argument("--fresh", action="store_true", help="with --write: measure methods the file already holds")
    p.add_argument("--new-precision", default=None,
                   help="the new arm's precision instead of the default's (e.g. fp32: what the kernel options alone buy)")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=["old", "new"],
                   help="arms in step order; speed-ups are each arm's time over the last arm's (default: old new; "
                        "'prev new' isolates the tiled depthwise weight gradient)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args()
    if len(a.arms) < 2 or len(set(a.arms)) != len(a.arms):
        p.error("--arms needs at least two distinct arms")
    if a.new_precision:
        ARMS["new"]["ctx"]["precision"] = a.new_precision
        ARMS["prev"]["ctx"]["precision"] = a.new_precision
    if a.quick:
        a.rounds, a.warmup, a.count_steps, a.peak_reps = min(a.rounds, 2), min(a.warmup, 1), 1, 1
    if a.worker:
        torch.set_num_threads(a.threads)
        print(json.dumps(measure(a.worker, a.rounds, a.warmup, a.count_steps, a.quick, a.seed,
                                 batch=8 if a.quick else 64, arms=tuple(a.arms))))
        return
    settings = _settings(a)
    old = json.loads(a.out.read_text()) if a.write and a.out.exists() and not a.fresh else {}
    reuse = old.get("methods", {}) if old.get("settings") == json.loads(json.dumps(settings)) else {}
    torch.set_num_threads(a.threads)
    res: dict[str, Any] = {"settings": settings, "torch": torch.__version__, "cpu_count": os.cpu_count(),
                           "load_avg_start": os.getloadavg(), "methods": {}}
    res["peaks"] = peaks(a.peak_reps, 256 if a.quick else 2048)
    for name in a.methods:
        if name in reuse:
            res["methods"][name] = reuse[name]
            continue
        cmd = [sys.executable, __file__, "--worker", name, "--rounds", str(a.rounds), "--warmup", str(a.warmup),
               "--count-steps", str(a.count_steps), "--threads", str(a.threads), "--seed", str(a.seed)]
        cmd += ["--new-precision", a.new_precision] if a.new_precision else []
        cmd += ["--arms", *a.arms]
        proc = subprocess.run(cmd + (["--quick"] if a.quick else []), capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"step_speed: method {name} failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["load_avg_after"] = os.getloadavg()
        _shares(r, res["peaks"])
        res["methods"][name] = r
        print(f"{name}: " + ", ".join(f"{k} {v['cpu_ms_median']:.1f} ms" for k, v in r["arms"].items())
              + f", x{r['speedup_cpu']:.2f}", file=sys.stderr, flush=True)
        if a.write:
            _write(a.out, {**res, "load_avg_end": os.getloadavg()})
    res["load_avg_end"] = os.getloadavg()
    res["all_targets_met"] = all(r["target_met"] for r in res["methods"].values())
    if a.write:
        _write(a.out, res)
    print(json.dumps(res, indent=1))


def _write(path: Path, res: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    main()
