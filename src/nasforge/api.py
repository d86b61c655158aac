"""The Python API; the CLI is a thin shell over these functions.

    import nasforge
    result = nasforge.search({"space": "nb201", "method": "single-darts", "budget": {"epochs": 10},
                              "space_options": {"C": 8, "N": 1}, "subset": 10000})
    nasforge.train({"arch": result["arch_file"], "train": {"epochs": 5}})
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from . import config as cfgmod
from .building import build_model, import_components, load_arch, load_trained, make_space
from .data import ImageDataset, SearchData, final_split, load_dataset, search_split
from .data.datasets import check_train_portion
from .errors import ConfigError
from .hardware.binary import model_costs
from .ops.heads import param_counts
from .models import MODELS
from .registry import DATASETS, ESTIMATORS, EXECUTORS, SPACES, STRATEGIES
from .runs.store import RunDir
from .strategies.base import Budget, SearchContext
from .training import TrainConfig, evaluate as evaluate_model, train_model
from .training.recipes import fit, train_config_for
from .utils import Cost, CostMeter, atomic_write_json, seed_everything, set_threads

DEFAULT_RUN_ROOT = "runs"


__all__ = ["build_model", "components", "evaluate", "export", "load_arch", "search", "train"]

_import_all = import_components  # the name other modules used


def components() -> dict[str, list[tuple[str, str]]]:
    """Everything registered, by kind: what `nasforge list` prints."""
    import_components()
    return {"spaces": list(SPACES.describe()), "strategies": list(STRATEGIES.describe()),
            "datasets": list(DATASETS.describe()), "estimators": list(ESTIMATORS.describe()),
            "executors": list(EXECUTORS.describe()), "models": list(MODELS.describe())}


@contextmanager
def _tracked_cost(run: RunDir) -> Iterator[CostMeter]:
    """Accumulate this process's cost into the run (so a resumed run reports the total)."""
    p = run.file("cost.json")
    prev = Cost(**json.loads(p.read_text())) if p.exists() else Cost()
    meter = CostMeter(prev)
    try:
        yield meter
    finally:
        atomic_write_json(p, meter.now().as_dict())


def _config_or_resume(defaults: dict[str, Any], config: dict[str, Any] | None,
                      resume: str | Path | None) -> tuple[RunDir | None, dict[str, Any]]:
    """A resumed run takes its stored config (the run directory is the source of truth)."""
    if resume is None:
        return None, cfgmod.resolve(defaults, config)
    run = RunDir.open(resume)
    stored = run.config()
    stored.pop("command", None)
    return run, cfgmod.resolve(defaults, stored)


def _datasets(cfg: dict[str, Any]) -> tuple[ImageDataset, ImageDataset]:
    return load_dataset(cfg["dataset"], cfg.get("data_root"), cfg.get("download", False))


# ---------------------------------------------------------------------------------------------
# search
# ---------------------------------------------------------------------------------------------
def search(config: dict[str, Any] | None = None, *, run_root: str | Path = DEFAULT_RUN_ROOT,
           resume: str | Path | None = None, run_name: str | None = None) -> dict[str, Any]:
    """Run a search (and the optional retraining of its result); returns result.json's content."""
    import_components()
    run, cfg = _config_or_resume(cfgmod.SEARCH_DEFAULTS, config, resume)
    strategy_cls = STRATEGIES.get(cfg["method"])
    strategy = strategy_cls(**cfg["hparams"])
    budget = Budget(**cfg["budget"])
    kind = strategy.mode(cfg["estimator"])  # one-shot or multi-trial (a strategy may do both, e.g. hurricane)
    needs_data = kind == "one-shot" or cfg["estimator"] == "scratch" or cfg["retrain"]
    _check_search(cfg, strategy, budget)  # before a run directory exists
    set_threads(cfg["threads"])

    train = test = None
    if needs_data:
        train, test = _datasets(cfg)
    space = make_space(cfg["space"], train, cfg["space_options"])
    if hasattr(strategy, "prepare"):  # checks that need the space (e.g. vitas' MACs window), before the run dir
        strategy.prepare(space)
    teacher = _teacher(cfg)
    if teacher is not None and not getattr(strategy, "uses_teacher", False) and not cfg["retrain"]:
        raise ConfigError(f"--teacher is used by knowledge distillation, but strategy '{cfg['method']}' does not "
                          "distil and no retraining is configured")
    table = _load_table(cfg, space)
    if resume is None:
        strategy.preflight(space, cfg)  # checks that need space + config (e.g. a reachable latency budget)
        run = RunDir.create(run_root, "search", cfg, name=run_name)

    with _tracked_cost(run) as meter:
        search_file = run.file("search.json")
        if search_file.exists():  # the search finished before the interruption
            found = json.loads(search_file.read_text())
        else:
            res = _run_strategy(cfg, strategy, space, budget, train, table, run, teacher)
            found = {"arch": res.arch, "metrics": res.metrics, "search_cost": meter.now().as_dict(),
                     "history_tail": res.history[-1] if res.history else None}
            atomic_write_json(search_file, found)
        arch = space.validate(found["arch"])
        result: dict[str, Any] = {"space": space.name, "space_config": space.config, "arch": arch,
                                  "method": cfg["method"], "seed": cfg["seed"], "search": found}
        if table is not None:
            result["table"] = table.record(arch)
        if cfg["retrain"]:
            result["retrain"] = _retrain(cfg, space, arch, train, test, RunDir(run.path / "retrain"), teacher)
        result["cost"] = meter.now().as_dict()
    result["run_dir"] = str(run.path)
    atomic_write_json(run.file("arch.json"), {"space": space.name, "space_config": space.config, "arch": arch})
    result["arch_file"] = str(run.file("arch.json"))
    run.write_result(result)
    return result


def _check_search(cfg: dict[str, Any], strategy, budget: Budget) -> None:
    """The checks of a search config that need the strategy: estimator and budget fit its kind; the
    train portion and executor are valid. Raises ConfigError (one line)."""
    kind = strategy.mode(cfg["estimator"])
    if kind == "multi-trial":
        if cfg["estimator"] is None:
            raise ConfigError(f"strategy '{cfg['method']}' evaluates many architectures; choose --estimator "
                              f"from: {', '.join(ESTIMATORS.names())}")
        if not budget.trials and not budget.seconds:
            raise ConfigError(f"strategy '{cfg['method']}' needs a trial budget (--trials N) or --seconds")
    elif cfg["estimator"] is not None:
        raise ConfigError(f"strategy '{cfg['method']}' is one-shot and takes no --estimator")
    elif not budget.epochs:
        raise ConfigError(f"strategy '{cfg['method']}' needs an epoch budget (--epochs N)")
    check_train_portion(cfg["train_portion"])
    _check_executor(cfg["executor"])


def _run_strategy(cfg: dict[str, Any], strategy, space, budget: Budget, train: ImageDataset | None, table,
                  run: RunDir, teacher=None):
    """Build the strategy's context (search-train/val halves for one-shot; estimator and executor for
    multi-trial) and run it; returns its SearchResult."""
    data = None
    kind = strategy.mode(cfg["estimator"])
    if kind == "one-shot":
        tr, va = search_split(train, seed=cfg["split_seed"], subset=cfg["subset"], train_portion=cfg["train_portion"])
        mean, std = train.stats()
        data = SearchData(tr, va, cfg["batch_size"], cfg["augment"], mean, std)
    estimator = _estimator(cfg, space) if kind == "multi-trial" else None
    executor = _executor(cfg) if kind == "multi-trial" else None
    ctx = SearchContext(space=space, budget=budget, seed=cfg["seed"], data=data, estimator=estimator,
                        executor=executor, run=run, table=table)
    ctx.teacher = teacher
    try:
        return strategy.search(ctx)
    finally:
        if executor is not None and hasattr(executor, "shutdown"):
            executor.shutdown()


def _check_executor(name: str) -> None:
    """An unknown executor name is a ConfigError (raised here, before a run directory exists)."""
    if name != "local":
        EXECUTORS.get(name)


def _load_table(cfg: dict[str, Any], space):
    """The published table of `space` (SearchSpace.table) when --tables is given, else None."""
    if not cfg["tables"] or space.table is None:
        return None
    from .tables.lookup import open_lookup

    return open_lookup(space.table, cfg["tables"], dataset=cfg["table_dataset"])


def _estimator(cfg: dict[str, Any], space):
    name = cfg["estimator"]
    cls = ESTIMATORS.get(name)
    opts = dict(cfg["estimator_options"])
    if name == "scratch":
        opts.setdefault("data", {"dataset": cfg["dataset"], "data_root": cfg["data_root"], "subset": cfg["subset"],
                                 "split_seed": cfg["split_seed"], "train_portion": cfg["train_portion"]})
    if name == "table":
        if not cfg["tables"]:
            raise ConfigError("--estimator table needs --tables pointing at the benchmark tables folder")
        opts.setdefault("tables", str(Path(cfg["tables"]).resolve()))
        opts.setdefault("dataset", cfg["table_dataset"])
    try:
        return cls(**opts)
    except TypeError as e:
        raise ConfigError(f"bad options for estimator '{name}': {e}") from None


def _executor(cfg: dict[str, Any]):
    from .runs.executors import make_executor

    return make_executor(cfg["executor"], **cfg["executor_options"])


def _retrain(cfg: dict[str, Any], space, arch, train: ImageDataset, test: ImageDataset, run: RunDir,
             teacher=None) -> dict[str, Any]:
    run.path.mkdir(parents=True, exist_ok=True)
    tr, te = final_split(train, test, seed=cfg["split_seed"], subset=cfg["retrain_subset"],
                         test_subset=cfg["test_subset"])
    model = space.build(arch, **cfg["retrain_space_options"])
    tcfg = train_config_for(model, cfg["retrain"])  # binary networks: Adam + cosine defaults, two stages
    out = fit(model, tr, te, tcfg, run=run, teacher=teacher, costs=_costs_of(tr))
    torch.save({"model": model.state_dict(), "mean": out["mean"], "std": out["std"]}, run.path / "model.pt")
    return {"test_accuracy": out["final"].get("test_accuracy"), **param_counts(model),
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
          resume: str | Path | None = None, run_name: str | None = None) -> dict[str, Any]:
    """Train an architecture (or the baseline) from scratch on the full training set; test on the test set."""
    run, cfg = _config_or_resume(cfgmod.TRAIN_DEFAULTS, config, resume)
    TrainConfig.from_dict(cfg["train"])  # options checked before any data is read
    set_threads(cfg["threads"])
    train_set, test_set = _datasets(cfg)
    tr, te = final_split(train_set, test_set, subset=cfg["subset"], test_subset=cfg["test_subset"])
    seed_everything(int(cfg["train"].get("seed", 0)))  # the initial weights, too, are the same in any process
    model, described = build_model(_arch_source(cfg["arch"], resumed=resume is not None), tr, cfg["space_options"])
    tcfg = train_config_for(model, cfg["train"])  # binary networks: Adam + cosine defaults, two stages
    teacher = _teacher(cfg)
    if resume is None:
        run = RunDir.create(run_root, "train", {**cfg, "train": tcfg.as_dict()}, name=run_name)
    with _tracked_cost(run) as meter:
        out = fit(model, tr, te, tcfg, run=run, teacher=teacher, costs=_costs_of(tr))
        cost = meter.now().as_dict()
    torch.save({"model": model.state_dict(), "mean": out["mean"], "std": out["std"]}, run.path / "model.pt")
    result = {**described, "test_accuracy": out["final"].get("test_accuracy"),
              "train_accuracy": out["final"].get("train_accuracy"),
              **param_counts(model), **model_costs(model, tr.in_channels, tr.resolution), "epochs": tcfg.epochs,
              "images_per_s": out["final"].get("images_per_s"), "history": out["history"], "cost": cost,
              "stages": out["stages"], "teacher": cfg.get("teacher"),
              "dataset": cfg["dataset"], "run_dir": str(run.path), "model_file": str(run.path / "model.pt")}
    run.write_result(result)
    return result


def _arch_source(arch: Any, resumed: bool) -> Any:
    """What `train` builds from: a model name or architecture dict as given; a new run's architecture file by
    its absolute path (a resumed run reads the path its config stored)."""
    if resumed or not str(arch).endswith(".json"):
        return arch
    return str(Path(arch).resolve())


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
    model = load_trained(cfg["teacher"])[0]
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def evaluate(run_dir: str | Path, test_subset: int | None = None) -> dict[str, Any]:
    """Test accuracy of a trained run's model on the official test set."""
    from .data import Loader, split_indices

    model, state, cfg, test_set = load_trained(run_dir)
    if test_subset:
        test_set = test_set.subset(split_indices(len(test_set), 0, test_subset))
    loader = Loader(test_set, 500, mean=state["mean"], std=state["std"])
    t0 = time.perf_counter()
    metrics = evaluate_model(model, loader)
    return {**metrics, "images": len(test_set), "images_per_s": len(test_set) / (time.perf_counter() - t0)}


def export(run_dir: str | Path, out: str | Path, opset: int = 17, check_images: int = 64) -> dict[str, Any]:
    """Export a trained model to ONNX and verify it in onnxruntime against PyTorch's logits."""
    from .export import export_onnx

    model, state, cfg, test_set = load_trained(run_dir)
    from .data import Loader

    x, _ = next(iter(Loader(test_set, check_images, mean=state["mean"], std=state["std"])))
    return export_onnx(model, x, out, opset=opset)


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
