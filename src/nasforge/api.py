"""The Python API; the CLI is a thin shell over these functions.

    import nasforge
    result = nasforge.search({"space": "nb201", "method": "single-darts", "budget": {"epochs": 10},
                              "space_options": {"C": 8, "N": 1}, "subset": 10000})
    nasforge.train({"arch": result["arch_file"], "train": {"epochs": 5}})
"""
from __future__ import annotations

import json
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from . import config as cfgmod
from . import distributed, progress
from .accel import FastPath, apply_memory_format, check_memory_format, check_precision, resolve_device, resolve_fast_path, setup_device
from .building import arch_spec, build_model, declared_fast_path, import_components, load_arch, load_trained, make_space
from .data import ImageDataset, SearchData, final_split, load_dataset, search_split
from .data.datasets import dataset_options, stored_dataset_options
from .errors import ConfigError, UserError
from .hardware.binary import model_costs
from .ops.heads import param_counts
from .models import MODELS
from .preflight import check_applies, check_batches, check_search, check_sync_bn, reads_images
from .proxies.service import proxy_score
from .registry import DATASETS, ESTIMATORS, EXECUTORS, SPACES, STRATEGIES
from .runs.guard import clean_temp_files, guarded
from .runs.store import RunDir
from .engine.base import Budget, SearchContext
from .training import TrainConfig, evaluate as evaluate_model, train_model
from .training.recipes import fit, train_config_for
from .training.compiled import probe_compile
from .utils import Cost, CostMeter, atomic_write_json, check_writable, seed_everything, set_threads

DEFAULT_RUN_ROOT = "runs"


__all__ = ["build_model", "components", "evaluate", "export", "load_arch", "proxy_score", "search", "train"]


def components() -> dict[str, list[tuple[str, str]]]:
    """Everything registered, by kind: what `nasforge list` prints."""
    import_components()
    return {"spaces": list(SPACES.describe()), "strategies": list(STRATEGIES.describe()),
            "datasets": list(DATASETS.describe()), "estimators": list(ESTIMATORS.describe()),
            "executors": list(EXECUTORS.describe()), "models": list(MODELS.describe())}


def options_of(kind: str, name: str) -> list[tuple[str, str]]:
    """The declared options of a strategy (`--set`), a space (`--space-opt`, `--retrain-opt`) or training
    (`kind="training"`, any name): (key, "type range, default ...") rows, as `nasforge list NAME` prints them.
    Raises ConfigError for an unknown kind or name."""
    from .options import describe

    import_components()
    if kind == "training":
        return describe(TrainConfig.declaration())
    registry = {"strategy": STRATEGIES, "space": SPACES}.get(kind)
    if registry is None:
        raise ConfigError(f"unknown kind '{kind}'; choose from: space, strategy, training")
    return describe(registry.get(name).defaults)


def space_size(name: str, options: dict[str, Any] | None = None) -> int | None:
    """How many distinct architectures space `name` holds with `options` (defaults: the space's; input
    1x28x28, 10 classes), as `SearchSpace.size` counts them; None if the space does not count them.
    Raises ConfigError for an unknown space or option."""
    import_components()
    return make_space(name, None, dict(options or {})).size()


@contextmanager
def _tracked_cost(run: RunDir) -> Iterator[CostMeter]:
    """Accumulate this process's cost into the run (so a resumed run reports the total)."""
    p = run.file("cost.json")
    prev = Cost(**json.loads(p.read_text())) if p.exists() else Cost()
    meter = CostMeter(prev)
    # written with every checkpoint too, so a crash never loses the time spent before its last checkpoint
    run.on_checkpoint = lambda: run.write_json("cost.json", meter.now().as_dict())
    try:
        yield meter
    finally:
        run.on_checkpoint = None
        run.write_json("cost.json", meter.now().as_dict())


def train_choices(key: str) -> tuple[str, ...]:
    """The allowed values of a training option with choices (e.g. ``optimizer``), from its declaration."""
    return tuple(TrainConfig.declaration()[key].choices)


def train_default(key: str) -> Any:
    """The default of training option `key` (e.g. ``epochs``), from its declaration (TrainConfig)."""
    return TrainConfig.declaration()[key].default


def _config_or_resume(defaults: dict[str, Any], config: dict[str, Any] | None,
                      resume: str | Path | None) -> tuple[RunDir | None, dict[str, Any]]:
    """A resumed run takes its stored config (the run directory is the source of truth). A new run's paths
    (data_root, tables) are stored resolved, so the run can be resumed from any working directory.
    On resume `config` may change only where it runs (cfgmod.RESUME_OVERRIDABLE: device, threads)."""
    if resume is None:
        cfg = cfgmod.resolve(defaults, config)
        for key in ("data_root", "tables"):
            if cfg.get(key):
                cfg[key] = str(Path(cfg[key]).expanduser().resolve())
        return None, cfg
    run = RunDir.open(resume)
    stored = run.config()
    command = stored.pop("command", None)
    expected = "search" if defaults is cfgmod.SEARCH_DEFAULTS else "train"
    if command is not None and command != expected:
        raise UserError(f"{run.path} is a '{command}' run; resume it with: nasforge {command} --resume {run.path}")
    if run.file(RunDir.RESULT).is_file():
        raise _Finished(run)
    clean_temp_files(run)  # leftovers of a write that was killed half-way
    run.check_checkpoint()  # a crafted or foreign checkpoint is refused before any data loads
    # runs from before --memory-format: each network keeps the format its builder gave it (as they trained)
    stored.setdefault("memory_format", None)
    stored["dataset_options"] = stored_dataset_options(stored)  # runs from before the key: the old fixed sizes
    override = {k: v for k, v in (config or {}).items() if k in cfgmod.RESUME_OVERRIDABLE and v is not None}
    other = sorted(k for k, v in (config or {}).items() if k not in cfgmod.RESUME_OVERRIDABLE and v is not None)
    if other:
        raise ConfigError(f"a resumed run keeps its stored config; only {', '.join(cfgmod.RESUME_OVERRIDABLE)} "
                          f"may change, not {', '.join(other)}")
    return run, cfgmod.resolve(defaults, stored, override)


class _Finished(Exception):
    """--resume of a run that has finished: nothing to run (its result is returned as it is)."""

    def __init__(self, run: RunDir) -> None:
        super().__init__(str(run.path))
        self.run = run


def _finished_result(run: RunDir) -> dict[str, Any]:
    """The stored result of a finished run, said on stderr, with no file touched (a resume that reran the
    end of a finished run rewrote its model and added its seconds to the run's cost)."""
    progress.note(f"{run.path} has finished; nothing to resume (its result is unchanged)")
    try:
        return run.result()
    except ValueError:
        raise UserError(f"{run.path / RunDir.RESULT} is damaged (not JSON); the run cannot be resumed") from None


def _runtime(cfg: dict[str, Any], check_only: bool = False) -> torch.device:
    """Resolve and check the device and precision (before any run directory exists), join the torchrun
    process group when launched by torchrun, and set the thread count. Raises ConfigError.
    `check_only`: resolve and check only (the parent of an --nproc launch joins no process group)."""
    device = resolve_device(cfg.get("device", "auto"))
    check_precision(cfg.get("precision", "fp32"), device)
    check_memory_format(cfg.get("memory_format"))
    # a Ray cluster's workers have their own cores: --threads is theirs too, so it is not held to this machine's
    set_threads(cfg["threads"], check=not (cfg.get("executor_options") or {}).get("address"))
    if check_only:
        return device
    setup_device(device)
    distributed.init(device)
    return device


def _resolve_fast_paths(cfg: dict[str, Any], device: torch.device, declared: dict[str, FastPath]) -> None:
    """Set ``cfg["fast_path"]``: per network kind ("supernet", "network"), the precision and memory format
    the run trains in, from --precision / --memory-format (auto: the space's declaration and the device's
    native bf16, nasforge.accel.resolve_fast_path). A choice already recorded in ``cfg["fast_path"]`` (a
    resumed run, or a re-run from a run's config) is reused for what is ``auto``, so the same seed gives the
    same result on a machine where auto would pick differently. Raises ConfigError for a bad record."""
    record = cfg.get("fast_path") or {}
    out: dict[str, Any] = {}
    for kind, fast in declared.items():
        choice = resolve_fast_path(cfg["precision"], cfg["memory_format"], device, fast)
        old = record.get(kind)
        if isinstance(old, dict):
            if cfg["precision"] == "auto" and old.get("precision") is not None:
                choice["precision"] = check_precision(str(old["precision"]), device)
            if cfg["memory_format"] == "auto" and "memory_format" in old:
                choice["memory_format"] = check_memory_format(old["memory_format"])
            if choice["precision"] == "auto" or choice["memory_format"] == "auto":
                raise ConfigError(f"fast_path record of '{kind}' must name a precision and memory format, not auto")
            choice["why"] = old.get("why", "recorded")
            if isinstance(old.get("compile"), dict):  # train: the recorded torch.compile decision
                choice["compile"] = old["compile"]
        out[kind] = choice
    cfg["fast_path"] = out


def _check_new_run(run_root: str | Path, name: str | None) -> None:
    """Before any work: the run folder can be written and an explicit run name is free (an existing run is
    never renamed behind the user's back, nor reused: resume it, or choose another name). Raises ConfigError."""
    if not distributed.is_main():
        return  # only rank 0 creates the run directory
    check_writable(run_root, "--out", directory=True)
    if name is not None:
        RunDir.check_name(run_root, name)


def _create_run(run_root: str | Path, command: str, cfg: dict[str, Any], name: str | None) -> RunDir:
    """Rank 0 creates the run directory and every other rank uses the same one."""
    path = str(RunDir.create(run_root, command, cfg, name=name).path) if distributed.is_main() else None
    return RunDir(distributed.broadcast_object(path))


def _datasets(cfg: dict[str, Any]) -> tuple[ImageDataset, ImageDataset]:
    return load_dataset(cfg["dataset"], cfg.get("data_root"), cfg.get("download", False),
                        options=cfg.get("dataset_options"))


# ---------------------------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------------------------
def search(config: dict[str, Any] | None = None, *, run_root: str | Path = DEFAULT_RUN_ROOT,
           resume: str | Path | None = None, run_name: str | None = None, check_only: bool = False,
           nproc: int = 1) -> dict[str, Any]:
    """Run a search (and the optional retraining of its result); returns result.json's content.

    With `resume`, `config` may hold only `device`/`threads` (where the resumed run continues).
    `check_only=True` runs every check a search makes before its run directory exists (options, device,
    data, space, the strategy's preflight, the run folder and name) and returns ``{"checked": True}`` without
    starting anything: what ``--nproc N`` runs once before it starts N processes (`nproc`: that N).
    Raises UserError (ConfigError, DataError) for any bad input."""
    import_components()
    try:
        run, cfg = _config_or_resume(cfgmod.SEARCH_DEFAULTS, config, resume)
    except _Finished as done:
        return _finished_result(done.run)  # also under check_only: --nproc then starts nothing
    strategy = check_search(cfg)  # every option checked before data is loaded and a run directory exists
    if resume is None:
        check_applies(cfg, strategy)  # nothing accepted and then ignored
        check_sync_bn(cfg, None, nproc)  # one process: refused before the data loads (the network is checked below)
    budget = Budget(**cfg["budget"])
    kind = strategy.mode(cfg["estimator"])  # one-shot or multi-trial (a strategy may do both, e.g. hurricane)
    needs_data = reads_images(cfg, strategy)
    if kind == "multi-trial" and (distributed.launched() or nproc > 1):
        raise ConfigError(f"strategy '{cfg['method']}' evaluates many architectures: run it in one process and "
                          "parallelise trials with --executor ray (torchrun is for one-shot search and train)")
    if resume is None:
        _check_new_run(run_root, run_name)
    device = _runtime(cfg, check_only)

    train = test = None
    if needs_data:
        train, test = _datasets(cfg)
        if resume is None:
            check_batches(cfg, cfg["subset"] or len(train), kind == "one-shot")
    space = make_space(cfg["space"], train, cfg["space_options"])
    strategy.prepare(space)  # checks that need the space (e.g. vitas' MACs window), before the run dir
    if resume is None and cfg["sync_bn"]:  # a resumed run may continue in fewer processes: it keeps its record
        check_sync_bn(cfg, space.build(space.validate(space.sample(random.Random(0)))), nproc)
    teacher = _teacher(cfg)
    if teacher is not None and not strategy.uses_teacher and not cfg["retrain"]:
        raise ConfigError(f"--teacher is used by knowledge distillation, but strategy '{cfg['method']}' does not "
                          "distil and no retraining is configured")
    table = _load_table(cfg, space)
    _resolve_fast_paths(cfg, device, {"supernet": space.fast_path("supernet"), "network": space.fast_path("network")})
    if resume is None:
        strategy.preflight(space, cfg)  # checks that need space + config (e.g. a reachable latency budget)
    if check_only:
        return {"checked": True}
    if resume is None:
        run = _create_run(run_root, "search", cfg, run_name)

    with guarded(run, "search", resumed=resume is not None), _tracked_cost(run) as meter:
        search_file = run.file("search.json")
        if search_file.exists():  # the search finished before the interruption
            found = json.loads(search_file.read_text())
        else:
            with progress.phase("search", budget.epochs if kind == "one-shot" else None,
                                f"{cfg['method']} on {space.name}" + (f", {budget.trials} trials" if budget.trials else "")):
                res = _run_strategy(cfg, strategy, space, budget, train, table, run, device, teacher)
            found = {"arch": res.arch, "metrics": res.metrics, "search_cost": meter.now().as_dict(),
                     "history_tail": res.history[-1] if res.history else None, "history": res.history,
                     "optimised": {**strategy.optimised(res), **_binary_costs(space, res.arch)}}
            run.write_json("search.json", found)
        arch = space.validate(found["arch"])
        # the architecture alone, as soon as the search has ended (before any retraining)
        run.write_json("arch.json", {"space": space.name, "space_config": space.config, "arch": arch})
        result: dict[str, Any] = {"space": space.name, "space_config": space.config, "arch": arch,
                                  "method": cfg["method"], "seed": cfg["seed"], "search": found,
                                  "optimised": found.get("optimised", {}), "device": str(device),
                                  "precision": _search_precision(cfg, kind), "fast_path": cfg["fast_path"]}
        check = result["optimised"].get("on_target")
        if isinstance(check, dict) and check.get("met") is False and resume is None:
            progress.warn(f"the latency budget is a hard constraint, and the found network {check['verdict']}")
        if found["metrics"].get("warnings"):  # e.g. a multi-fidelity winner never scored at the top fidelity
            result["warnings"] = list(found["metrics"]["warnings"])
            for w in result["warnings"]:
                progress.warn(w)
        if found["metrics"].get("stopped"):  # --seconds cut the search: say so beside the architecture
            result["stopped"] = found["metrics"]["stopped"]
            result["note"] = _stopped_note(cfg, found)
        if "failed" in found["metrics"]:  # multi-trial: the summary counts failed trials
            n, failed = found["metrics"].get("trials", 0), found["metrics"]["failed"]
            result["trials"] = {"scored": n - failed, "failed": failed}
        if table is not None:
            result["table"] = table.record(arch)
        if cfg["retrain"]:
            child = RunDir(run.path / "retrain")
            child.on_checkpoint = run.on_checkpoint
            with progress.phase("retrain", TrainConfig.from_dict(cfg["retrain"]).epochs):
                result["retrain"] = _retrain(cfg, space, arch, train, test, child, device, teacher)
        result["cost"] = meter.now().as_dict()
    result["run_dir"] = str(run.path)
    result["arch_file"] = str(run.file("arch.json"))
    run.write_result(result)
    return result


def _search_precision(cfg: dict[str, Any], kind: str) -> str:
    """The precision the search computed in (result.json "precision", printed and compared): the supernet's
    for a one-shot search; for a multi-trial search its estimator's (Estimator.recorded_precision: scratch
    trials train in the "network" precision, a proxy scores in fp32, a table lookup computes nothing: "n/a").
    The retraining records its own under "retrain"."""
    if kind == "one-shot":
        return cfg["fast_path"]["supernet"]["precision"]
    return ESTIMATORS.get(cfg["estimator"]).recorded_precision(cfg["fast_path"]["network"]["precision"])


def _binary_costs(space, arch) -> dict[str, Any]:
    """BOPs / FLOPs / OPs of a binary space's found network, fully binarized, at the search scale (what a
    binary search optimises); {} for other spaces (their costs are in the retraining's result)."""
    if not getattr(space, "is_binary", False):
        return {}
    from .ops.binary import set_binarization

    net = space.build(arch)
    set_binarization(net, True, True)
    return {f"{k}_search_scale": v for k, v in model_costs(net, space.in_channels, space.resolution).items()}


def _stopped_note(cfg: dict[str, Any], found: dict[str, Any]) -> str:
    """One sentence: how far the search got before --seconds cut it."""
    m, seconds = found["metrics"], cfg["budget"].get("seconds")
    if "trials" in m:
        done = f"{m['trials']} trial(s) of {cfg['budget'].get('trials') or 'unlimited'}"
    else:
        epochs = [h for h in found.get("history") or [] if h.get("event", "epoch") == "epoch"]
        partial = bool(epochs) and epochs[-1].get("partial")
        done = f"{len(epochs) - (1 if partial else 0)} full epoch(s)" + (" and part of one" if partial else "")
        if len(epochs) == 0 or (len(epochs) == 1 and partial):
            done += " (the architecture is essentially unsearched)"
    return f"--seconds {seconds:g} stopped the search after {done}; the architecture is the best found by then"


def _run_strategy(cfg: dict[str, Any], strategy, space, budget: Budget, train: ImageDataset | None, table,
                  run: RunDir, device: torch.device, teacher=None):
    """Build the strategy's context (search-train/val halves for one-shot, on `device` and sharded under
    torchrun; estimator and executor for multi-trial) and run it; returns its SearchResult."""
    data = None
    kind = strategy.mode(cfg["estimator"])
    if kind == "one-shot":
        tr, va = search_split(train, seed=cfg["split_seed"], subset=cfg["subset"], train_portion=cfg["train_portion"])
        mean, std = train.stats()
        data = SearchData(tr, va, cfg["batch_size"], cfg["augment"], mean, std, device=device,
                          rank=distributed.rank(), world_size=distributed.world_size())
    estimator = _estimator(cfg, space, device) if kind == "multi-trial" else None
    executor = _executor(cfg) if kind == "multi-trial" else None
    ctx = SearchContext(space=space, budget=budget, seed=cfg["seed"], data=data, estimator=estimator,
                        executor=executor, run=run, table=table, device=device,
                        precision=cfg["fast_path"]["supernet"]["precision"],
                        memory_format=cfg["fast_path"]["supernet"]["memory_format"], sync_bn=bool(cfg["sync_bn"]))
    ctx.teacher = teacher
    try:
        return strategy.search(ctx)
    finally:
        ctx.close()
        if executor is not None and hasattr(executor, "shutdown"):
            executor.shutdown()


def _load_table(cfg: dict[str, Any], space):
    """The published table of `space` (SearchSpace.table) when --tables is given, else None."""
    if not cfg["tables"] or space.table is None:
        return None
    from .tables.lookup import open_lookup

    return open_lookup(space.table, cfg["tables"], dataset=cfg["table_dataset"])


def _estimator(cfg: dict[str, Any], space, device: torch.device | None = None):
    name = cfg["estimator"]
    cls = ESTIMATORS.get(name)
    opts = dict(cfg["estimator_options"])
    if name in ("scratch", "proxy"):  # estimators that build networks and read the search's data
        opts.setdefault("device", _trial_device(cfg, device))
        if name == "scratch":  # trials train standalone networks: the space's "network" choice
            opts.setdefault("precision", cfg["fast_path"]["network"]["precision"])
            opts.setdefault("memory_format", cfg["fast_path"]["network"]["memory_format"])
        opts.setdefault("data", {"dataset": cfg["dataset"], "data_root": cfg["data_root"], "subset": cfg["subset"],
                                 "split_seed": cfg["split_seed"], "train_portion": cfg["train_portion"]})
        if cfg.get("dataset_options"):  # only when set: trial keys of runs without options stay as they were
            opts["data"] = {**opts["data"], "dataset_options": cfg["dataset_options"]}
    if name == "table":  # preflight has refused a table estimator without --tables
        opts.setdefault("tables", str(Path(cfg["tables"]).resolve()))
        opts.setdefault("dataset", cfg["table_dataset"])
    try:
        return cls(**opts)
    except TypeError as e:
        raise ConfigError(f"bad options for estimator '{name}': {e}") from None


def _trial_device(cfg: dict[str, Any], device: torch.device | None) -> str:
    """Where scratch trials train: the configured device for the local executor; on Ray, "cuda" (the GPU
    Ray gives the task) when gpus_per_trial > 0, else the CPU."""
    if cfg["executor"] == "ray":
        return "cuda" if cfg["executor_options"].get("gpus_per_trial") else "cpu"
    return str(device) if device is not None else "cpu"


def _executor(cfg: dict[str, Any]):
    from .runs.executors import make_executor

    opts = dict(cfg["executor_options"])
    if cfg["threads"]:  # the user's --threads apply inside trials too
        opts.setdefault("threads" if cfg["executor"] == "local" else "threads_per_worker", cfg["threads"])
    return make_executor(cfg["executor"], **opts)


def _retrain(cfg: dict[str, Any], space, arch, train: ImageDataset, test: ImageDataset, run: RunDir,
             device: torch.device, teacher=None) -> dict[str, Any]:
    if distributed.is_main():
        run.path.mkdir(parents=True, exist_ok=True)
    distributed.barrier()
    tr, te = final_split(train, test, seed=cfg["split_seed"], subset=cfg["retrain_subset"],
                         test_subset=cfg["test_subset"])
    seed_everything(TrainConfig.from_dict(cfg["retrain"]).seed)  # the same weights in any process
    model = space.build(arch, **cfg["retrain_space_options"])
    tcfg = train_config_for(model, cfg["retrain"])  # binary networks: Adam + cosine defaults, two stages
    net = cfg["fast_path"]["network"]
    out = fit(model, tr, te, tcfg, run=run, teacher=teacher, costs=_costs_of(tr), device=device,
              precision=net["precision"], memory_format=net["memory_format"], sync_bn=bool(cfg["sync_bn"]))
    run.save_torch("model.pt", {"model": _cpu_state(model), "mean": out["mean"], "std": out["std"]})
    return {"precision": net["precision"], "memory_format": net["memory_format"],
            "test_accuracy": out["final"].get("test_accuracy"), **param_counts(model),
            **model_costs(model, tr.in_channels, tr.resolution), "epochs": tcfg.epochs,
            "train_s": out["cost"]["wall_s"], "model_file": str(run.path / "model.pt"),
            "space_options": cfg["retrain_space_options"], "stages": out["stages"]}


def _costs_of(data: ImageDataset):
    """model -> {params, params_aux, flops, bops, ops} on `data`'s image shape (see nasforge.hardware.binary)."""
    return lambda m: {**param_counts(m), **model_costs(m, data.in_channels, data.resolution)}


# ---------------------------------------------------------------------------------------------
# train / evaluate / export
# ---------------------------------------------------------------------------------------------
def train(config: dict[str, Any] | None = None, *, run_root: str | Path = DEFAULT_RUN_ROOT,
          resume: str | Path | None = None, run_name: str | None = None, check_only: bool = False,
          nproc: int = 1) -> dict[str, Any]:
    """Train an architecture (or the baseline) from scratch on the full training set; test on the test set.

    `check_only=True`: every check made before the run directory exists (options, architecture, device,
    teacher, data, the network builds), then ``{"checked": True}`` (what ``--nproc N`` runs first; `nproc`:
    that N). Raises UserError (ConfigError, DataError) for any bad input."""
    try:
        run, cfg = _config_or_resume(cfgmod.TRAIN_DEFAULTS, config, resume)
    except _Finished as done:
        return _finished_result(done.run)  # also under check_only: --nproc then starts nothing
    TrainConfig.from_dict(cfg["train"])  # options checked before any data is read
    if resume is None:
        check_sync_bn(cfg, None, nproc)
    dataset_options(cfg["dataset"], cfg["dataset_options"])
    if resume is None:
        cfg["arch_from"] = _search_run_of(cfg["arch"])
    cfg["arch"] = _arch_source(cfg["arch"], resumed=resume is not None)  # before the dataset loads
    if resume is None:
        _check_new_run(run_root, run_name)
    device = _runtime(cfg, check_only)
    teacher = _teacher(cfg)  # a teacher of another dataset is refused before the data loads
    train_set, test_set = _datasets(cfg)
    tr, te = final_split(train_set, test_set, subset=cfg["subset"], test_subset=cfg["test_subset"])
    if resume is None and "batch_size" in cfg["train"] and cfg["train"]["batch_size"] > len(tr):
        raise ConfigError(f"--batch-size {cfg['train']['batch_size']} exceeds the {len(tr)} training images, so every "
                          f"epoch would be one step of {len(tr)}; use --batch-size {len(tr)} or fewer")
    seed_everything(int(cfg["train"].get("seed", 0)))  # the same initial weights in any process
    model, described = build_model(cfg["arch"], tr, cfg["space_options"])
    if resume is None:
        check_sync_bn(cfg, model, nproc)
    tcfg = train_config_for(model, cfg["train"])  # binary networks: Adam + cosine defaults, two stages
    _resolve_fast_paths(cfg, device, {"network": declared_fast_path(cfg["arch"], tr)})
    net = cfg["fast_path"]["network"]
    if check_only:
        return {"checked": True}
    if "compile" not in net:  # decided once, before the run exists, and recorded (a resume reuses it)
        net["compile"] = (probe_compile(model, tr, tcfg, device, net["precision"], net["memory_format"])
                          if cfg["compile"] == "probe" else {"on": cfg["compile"] == "on",
                                                             "why": f"--compile {cfg['compile']}"})
    if resume is None:
        run = _create_run(run_root, "train", {**cfg, "train": tcfg.as_dict()}, run_name)
        if isinstance(cfg["arch"], dict):  # a copy of the architecture, beside the model it describes
            run.write_json("arch.json", cfg["arch"])
    with guarded(run, "train", resumed=resume is not None), _tracked_cost(run) as meter, \
            progress.phase("train", tcfg.epochs):
        out = fit(model, tr, te, tcfg, run=run, teacher=teacher, costs=_costs_of(tr), device=device,
                  precision=net["precision"], memory_format=net["memory_format"],
                  compile=bool(net["compile"]["on"]), sync_bn=bool(cfg["sync_bn"]))
        cost = meter.now().as_dict()
    run.save_torch("model.pt", {"model": _cpu_state(model), "mean": out["mean"], "std": out["std"]})
    result = {**described, "test_accuracy": out["final"].get("test_accuracy"),
              "train_accuracy": out["final"].get("train_accuracy"),
              **param_counts(model), **model_costs(model, tr.in_channels, tr.resolution), "epochs": tcfg.epochs,
              "images_per_s": out["final"].get("images_per_s"), "history": out["history"], "cost": cost,
              "stages": out["stages"], "teacher": cfg.get("teacher"), "device": str(device),
              "precision": net["precision"], "memory_format": net["memory_format"], "compile": net["compile"],
              "fast_path": cfg["fast_path"],
              "dataset": cfg["dataset"], "run_dir": str(run.path), "model_file": str(run.path / "model.pt")}
    run.write_result(result)
    return result


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict on the CPU (model files load on any device)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _arch_source(arch: Any, resumed: bool) -> Any:
    """What `train` builds from: a model name or architecture dict as given; a new run's architecture file is
    read now and stored in the run (its config holds the architecture itself, not the file's path), so the run
    needs nothing outside its directory."""
    if resumed:
        return arch
    spec = arch_spec(arch)
    if isinstance(spec, dict):  # a search's result.json holds much more than the architecture
        spec = {k: spec[k] for k in ("space", "space_config", "arch") if k in spec}
    return spec


def _search_run_of(arch: Any) -> str | None:
    """The search run directory an architecture file belongs to (``runs/X/arch.json`` or ``runs/X/result.json``
    of a search), resolved, or None: where a train run's architecture came from, so `compare` shows the
    retrained accuracy beside its search."""
    if not isinstance(arch, (str, Path)):
        return None
    path = Path(arch).expanduser()
    if path.is_dir():
        path = path / "arch.json"
    folder = path.parent
    try:
        cfg = json.loads((folder / RunDir.CONFIG).read_text())
    except (OSError, ValueError):
        return None
    return str(folder.resolve()) if isinstance(cfg, dict) and cfg.get("command") == "search" else None


_load_trained = load_trained  # the name other modules used


def _teacher(cfg: dict[str, Any]):
    """The frozen teacher model of ``cfg["teacher"]`` (a finished train run, or a search run with retraining),
    or None. Raises ConfigError when it was trained on another dataset than this run's."""
    if not cfg.get("teacher"):
        return None
    tcfg = RunDir.open(cfg["teacher"]).config()
    if tcfg.get("dataset") != cfg["dataset"]:
        raise ConfigError(f"teacher run {cfg['teacher']} was trained on '{tcfg.get('dataset')}', but this run uses "
                          f"'{cfg['dataset']}'; a teacher must be trained on the same dataset")
    if stored_dataset_options(tcfg) != (cfg.get("dataset_options") or {}):
        raise ConfigError(f"teacher run {cfg['teacher']} read '{cfg['dataset']}' with dataset options "
                          f"{stored_dataset_options(tcfg)}, but this run uses {cfg.get('dataset_options') or {}}; "
                          "a teacher must see the same inputs")
    model = load_trained(cfg["teacher"])[0]
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def evaluate(run_dir: str | Path, test_subset: int | None = None, device: str = "auto",
             precision: str = "auto", threads: int | None = None) -> dict[str, Any]:
    """Test accuracy of a trained run's model on the official test set, on `device` (auto|cpu|cuda[:N]|mps),
    with `threads` torch threads (None: torch's default). `precision` ``auto``: the precision and memory format
    the run trained in (its recorded ``fast_path``; fp32 for runs from before it), so the accuracy is the one
    training measured; an explicit precision evaluates in that precision.

    Raises:
        UserError: not a finished train run; ConfigError: unavailable device, bad precision or threads < 1.
    """
    from .data import Loader, split_indices

    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")
    if test_subset is not None and (isinstance(test_subset, bool) or not isinstance(test_subset, int) or test_subset < 2):
        raise ConfigError(f"test_subset must be an integer >= 2 (images), got {test_subset!r}")  # 0 never means "all"
    dev = resolve_device(device)
    check_precision(precision, dev)
    set_threads(threads)
    model, state, cfg, test_set = load_trained(run_dir)
    if test_subset is not None:
        test_set = test_set.subset(split_indices(len(test_set), 0, test_subset))
    loader = Loader(test_set, 500, mean=state["mean"], std=state["std"], device=dev)
    model.to(dev)
    trained = (cfg.get("fast_path") or {}).get("network") or {}
    if precision == "auto":
        stored = cfg.get("precision", "fp32")
        precision = trained.get("precision") or (stored if stored != "auto" else "fp32")
        check_precision(precision, dev)
    apply_memory_format(model, trained.get("memory_format"))
    t0 = time.perf_counter()
    metrics = evaluate_model(model, loader, precision)
    return {**metrics, "images": len(test_set), "images_per_s": len(test_set) / (time.perf_counter() - t0),
            "device": str(dev), "precision": precision}


def export(run_dir: str | Path, out: str | Path, opset: int = 17, check_images: int = 64,
           device: str = "cpu") -> dict[str, Any]:
    """Export a trained model to ONNX and verify it in onnxruntime against PyTorch's logits.

    The model is exported from the CPU in fp32 whatever device trained it (an ONNX file is device-free);
    `device` is only checked (exit 2 when it is not there) so the flag means the same on every command.
    """
    from .export import check_opset, export_onnx

    resolve_device(device)
    check_opset(opset)
    check_writable(out, "--out")
    model, state, cfg, test_set = load_trained(run_dir)
    # the normalisation is folded into the graph: the file takes raw pixels 0..255 (see export_onnx)
    x = test_set.images[:check_images]
    res = export_onnx(model, x, out, opset=opset, mean=state["mean"], std=state["std"])
    if len(test_set):  # accuracy of the exported file itself, fed raw pixels
        import onnxruntime as ort

        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        n = min(len(test_set), 1000)
        logits = sess.run(["logits"], {"images": test_set.images[:n].float().numpy()})[0]  # host: datasets live on the CPU
        res["onnx_accuracy_raw_pixels"] = float((logits.argmax(1) == test_set.labels[:n].numpy()).mean())  # host: labels live on the CPU
        res["onnx_accuracy_images"] = n
    return res


# ---------------------------------------------------------------------------------------------
# the default job
# ---------------------------------------------------------------------------------------------
DEMO_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"
#: the default job's alpha-movement target: mean edge entropy falls by >= this share of its maximum log(K)
ALPHA_MOVEMENT_TARGET = 0.10


def alpha_movement(history: list[dict[str, Any]], target: float = ALPHA_MOVEMENT_TARGET) -> dict[str, Any] | None:
    """How far a differentiable search's alphas moved: the mean over edges of the entropy of softmax(alpha)
    (nats) after the first and the last epoch, against its maximum log(K) (K ops per edge; where alphas start,
    1e-3 * N(0, 1)), and ``drop = (log K - H_last) / log K``; ``met`` is ``drop >= target``;
    ``mean_entropy_per_epoch`` lists H after every epoch.
    `history`: a search's per-epoch records (``mean_entropy``, ``op_names``). None when the search logged no
    entropies (a method without alphas)."""
    epochs = [h for h in history or [] if isinstance(h, dict) and isinstance(h.get("mean_entropy"), (int, float))]
    if not epochs or not epochs[-1].get("op_names"):
        return None
    import math

    h_max = math.log(len(epochs[-1]["op_names"]))
    last = float(epochs[-1]["mean_entropy"])
    drop = (h_max - last) / h_max
    return {"max_entropy": h_max, "mean_entropy_first_epoch": float(epochs[0]["mean_entropy"]),
            "mean_entropy_final": last, "drop": drop, "target": target, "met": drop >= target,
            "epochs": len(epochs), "mean_entropy_per_epoch": [float(h["mean_entropy"]) for h in epochs]}


def demo(overrides: dict[str, Any] | None = None, *, run_root: str | Path = DEFAULT_RUN_ROOT) -> dict[str, Any]:
    """The default job (configs/demo.yaml, `overrides` on top): a differentiable search, the found cell
    retrained from scratch, and the hand-designed baseline CNN trained with the same recipe on the same
    images (the search config's ``retrain``, ``retrain_subset``, ``test_subset``, seed, precision, threads).

    Returns {"search": the search's result, "baseline": the baseline train run's result, "alpha_movement":
    :func:`alpha_movement` of the search}. Raises UserError for bad input (before any work starts: the
    baseline's options are checked with the search's)."""
    cfg = cfgmod.deep_merge(cfgmod.load_yaml(DEMO_CONFIG), overrides or {})
    if not cfg.get("retrain"):
        raise ConfigError("the default job compares the retrained cell with the baseline: it needs 'retrain'")
    base_cfg = {"arch": "baseline", "dataset": cfg.get("dataset", "fashion-mnist"),
                "dataset_options": cfg.get("dataset_options") or {}, "data_root": cfg.get("data_root"),
                "subset": cfg.get("retrain_subset"), "test_subset": cfg.get("test_subset"),
                "train": dict(cfg["retrain"]), "threads": cfg.get("threads"),
                # the search's precision and memory format (auto resolves them per network, as the retraining
                # of the found cell does): a baseline in fp32 beside a bf16 cell would not be "trained the same way"
                "precision": cfg.get("precision", cfgmod.SEARCH_DEFAULTS["precision"]),
                "memory_format": cfg.get("memory_format", cfgmod.SEARCH_DEFAULTS["memory_format"]),
                "device": cfg.get("device", "auto")}
    base_cfg = cfgmod.resolve(cfgmod.TRAIN_DEFAULTS, {k: v for k, v in base_cfg.items() if v is not None})
    TrainConfig.from_dict(base_cfg["train"])
    res = search(cfg, run_root=run_root, run_name=None)
    baseline = train(base_cfg, run_root=run_root)
    history = (res.get("search") or {}).get("history") or []
    return {"search": res, "baseline": baseline, "alpha_movement": alpha_movement(history)}


# ---------------------------------------------------------------------------------------------
# report / compare (the logic lives in nasforge.report)
# ---------------------------------------------------------------------------------------------
def report(run_dir: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Write one run directory (any method, finished or in progress) as a self-contained HTML page;
    `out` defaults to RUN_DIR/report.html. Returns {"report": path, "status", "sections", ...}.
    Raises UserError if `run_dir` is not a run directory (nothing is written then)."""
    from .report import write_report

    return write_report(run_dir, out)


def compare(run_dirs: list[str | Path], out: str | Path | None = None,
            csv: str | Path | None = None) -> dict[str, Any]:
    """Leaderboard of runs grouped by method (mean +/- sample std over seeds) with an accuracy-vs-cost
    scatter, written as HTML (`out`) and/or CSV (`csv`). Returns {"runs", "groups", "html", "csv"}.
    Raises UserError if any path is not a run directory (nothing is written then)."""
    from .report import compare_runs

    return compare_runs(run_dirs, out=out, csv_path=csv)
