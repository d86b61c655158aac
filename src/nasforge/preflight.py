"""Every input of a run checked up front: before a dataset is loaded and before a run directory exists.

`check_search(cfg)` is called by `api.search` on the resolved config (types and shapes of the top-level
keys are already checked by `config.resolve`). It checks what only the chosen components can check —
strategy hyperparameters, space options, the retraining options and the scale of the final network, the
estimator's and executor's options — and rejects options that do not apply to the chosen method, estimator
or executor, so that nothing is silently ignored. Each failure is one `ConfigError` line.
"""
from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any

from . import config as cfgmod
from .data.datasets import check_train_portion, dataset_options
from .errors import ConfigError
from .registry import ESTIMATORS, EXECUTORS, SPACES, STRATEGIES

if TYPE_CHECKING:
    from .engine.base import Strategy


def _set_by_user(cfg: dict[str, Any], key: str) -> bool:
    return cfg.get(key) != cfgmod.SEARCH_DEFAULTS.get(key)


def check_space_scale(space, overrides: dict[str, Any], what: str) -> None:
    """Build one sampled architecture at the scale `overrides` asks for: a typo or a bad value fails now
    (not after a long search). The network is small at search scale and is thrown away."""
    if not overrides:
        return
    from .errors import UserError

    try:
        space.check_build_overrides(overrides)
        arch = space.validate(space.sample(random.Random(0)))
        space.build(arch, **overrides)
    except UserError as e:
        raise ConfigError(f"{what}: {e}") from None
    except TypeError as e:  # a keyword the network does not take
        raise ConfigError(f"{what}: {e}") from None


def processes(nproc: int = 1) -> int:
    """How many data-parallel processes this command runs as: torchrun's WORLD_SIZE when launched by it,
    else `nproc` (the --nproc N a parent checks before it starts them)."""
    from . import distributed

    return int(os.environ.get("WORLD_SIZE", "1")) if distributed.launched() else max(1, int(nproc or 1))


def check_sync_bn(cfg: dict[str, Any], net: Any, nproc: int = 1) -> None:
    """``sync_bn`` computes BatchNorm statistics over the processes of a data-parallel run; where it would do
    nothing it is refused rather than ignored: a run of one process, or a network (`net`, an nn.Module
    built from the run's space or model) without a BatchNorm layer (e.g. a ViT: LayerNorm needs no
    synchronisation). Raises ConfigError."""
    if not cfg.get("sync_bn"):
        return
    n = processes(nproc)
    if n <= 1:
        raise ConfigError("--sync-bn synchronises BatchNorm statistics across data-parallel processes, but this "
                          "run is a single process; start several with --nproc N (or torchrun), or drop --sync-bn")
    from torch.nn.modules.batchnorm import _BatchNorm

    if net is not None and not any(isinstance(m, _BatchNorm) for m in net.modules()):
        raise ConfigError(f"--sync-bn: the {type(net).__name__} network of this run has no BatchNorm layer, so "
                          "there is nothing to synchronise; drop --sync-bn")


def search_reads_images(cfg: dict[str, Any], strategy: "Strategy") -> bool:
    """Whether the search itself reads the dataset's images: a supernet trains on them (one-shot), trials train
    on them (estimator scratch), or a proxy scores a batch of them (unless its inputs are "gaussian")."""
    est = cfg["estimator"]
    return (strategy.mode(est) == "one-shot" or est == "scratch"
            or (est == "proxy" and (cfg["estimator_options"] or {}).get("inputs", "dataset") == "dataset"))


def reads_images(cfg: dict[str, Any], strategy: "Strategy") -> bool:
    """Whether the run reads the dataset: the search does (search_reads_images), or the found architecture is
    retrained."""
    return search_reads_images(cfg, strategy) or bool(cfg["retrain"])


#: config keys of the dataset (used by the search or the retraining), with the flag that sets each
_DATA_FLAGS = (("dataset", "--dataset"), ("dataset_options", "--data-opt"), ("data_root", "--data-root"),
               ("download", "--download"), ("split_seed", "split_seed"))
#: config keys of the search's own images
_SEARCH_DATA_FLAGS = (("subset", "--subset"), ("train_portion", "--train-portion"))


def check_applies(cfg: dict[str, Any], strategy: "Strategy") -> None:
    """A new search's options that would be accepted and then do nothing are refused, one line each: data
    options of a search that reads no images (a table lookup, gaussian proxy inputs; with retraining only the
    search's own --subset/--train-portion), the supernet's batch size and augmentation in a multi-trial search
    (trials take theirs from --estimator-opt), and a precision or memory format where no network is trained
    (table or proxy estimator without retraining). Not run on resume: a stored config is continued as it was.
    Raises ConfigError."""
    est = cfg["estimator"]
    multi = strategy.mode(est) == "multi-trial"
    if not search_reads_images(cfg, strategy):
        keys = _SEARCH_DATA_FLAGS + (() if cfg["retrain"] else _DATA_FLAGS)
        given = [flag for key, flag in keys if _set_by_user(cfg, key)]
        if given:
            what = ("looks architectures up in the benchmark table; its data set is --table-dataset" if est == "table" else
                    "scores networks on random gaussian inputs (inputs=gaussian)")
            retrain = "; the retraining reads --retrain-subset images" if cfg["retrain"] else ""
            raise ConfigError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply: this search "
                              f"reads no images (estimator '{est}' {what}){retrain}")
    if multi:
        where = {"scratch": "trials train with --estimator-opt train.batch_size=N",
                 "proxy": "the proxy batch is --estimator-opt batch_size=N"}.get(est, "nothing is trained")
        for key, flag in (("batch_size", "--batch-size"), ("augment", "augment")):
            if _set_by_user(cfg, key):
                raise ConfigError(f"{flag} is the supernet's of a one-shot search; strategy '{cfg['method']}' is "
                                  f"multi-trial and does not use it ({where}"
                                  + ("; the retraining's is retrain.batch_size)" if cfg["retrain"] else ")"))
    if multi and est in ("table", "proxy") and not cfg["retrain"]:
        for key, flag in (("precision", "--precision"), ("memory_format", "--memory-format")):
            if cfg.get(key) not in (None, "auto"):
                raise ConfigError(f"{flag} does not apply: estimator '{est}' trains no network and no retraining "
                                  "is configured")


def check_batches(cfg: dict[str, Any], n_images: int, one_shot: bool) -> None:
    """Batch sizes the user asked for that the data cannot fill are refused, not silently cut to the data
    (an epoch of one short step): the supernet batch against the search-train images of a one-shot search
    (`n_images`: the training images the search splits, i.e. --subset or the whole set), and an explicit
    retraining batch against the retraining images. Also refused: a split that leaves a half empty.
    Raises ConfigError."""
    if one_shot:
        cut = int(n_images * cfg["train_portion"])
        if cut < 1 or n_images - cut < 1:
            raise ConfigError(f"{n_images} search images x train_portion {cfg['train_portion']} leave {cut} "
                              f"search-train and {n_images - cut} search-val images; each half needs at least one "
                              "(raise --subset)")
        if _set_by_user(cfg, "batch_size") and cfg["batch_size"] > cut:
            raise ConfigError(f"--batch-size {cfg['batch_size']} exceeds the {cut} search-train images ({n_images} "
                              f"x train_portion {cfg['train_portion']}), so every epoch would be one step of {cut}; "
                              f"use --batch-size {cut} or fewer, or a larger --subset")
    retrain = cfg.get("retrain") or {}
    n_retrain = cfg.get("retrain_subset") or n_images
    if "batch_size" in retrain and retrain["batch_size"] > n_retrain:
        raise ConfigError(f"retrain batch_size {retrain['batch_size']} exceeds the {n_retrain} retraining images; "
                          f"use {n_retrain} or fewer, or a larger retrain_subset")


def check_search(cfg: dict[str, Any]):
    """The strategy instance for `cfg`, once every option has been checked (see the module docstring).

    Raises:
        ConfigError: one line naming the offending option.
    """
    from .engine.base import Budget
    from .training import TrainConfig

    strategy = STRATEGIES.get(cfg["method"])(**cfg["hparams"])
    budget = Budget(**cfg["budget"])
    if budget.clock != "wall" and budget.seconds is None:
        raise ConfigError(f"--clock {budget.clock} says how --seconds is counted; give --seconds too")
    if budget.clock == "cpu" and cfg.get("executor") == "ray":
        raise ConfigError("--clock cpu counts this process's CPU time, but the ray executor trains trials in other "
                          "processes; use --clock wall with --executor ray")
    dataset_options(cfg["dataset"], cfg.get("dataset_options"))  # the name and the reader's options
    space_cls = SPACES.get(cfg["space"])
    space = space_cls(**cfg["space_options"])  # checks the options; the real one is built with the data's shape
    multi = strategy.mode(cfg["estimator"]) == "multi-trial"
    if multi:
        if cfg["estimator"] is None:
            raise ConfigError(f"strategy '{cfg['method']}' evaluates many architectures; choose --estimator "
                              f"from: {', '.join(ESTIMATORS.names())}")
        ESTIMATORS.get(cfg["estimator"])
        if cfg["estimator"] == "table" and not cfg["tables"]:  # every strategy that queries a table (hurricane too)
            raise ConfigError("--estimator table needs --tables pointing at the benchmark tables folder")
        if not budget.trials and not budget.seconds:
            raise ConfigError(f"strategy '{cfg['method']}' needs a trial budget (--trials N) or --seconds")
        if budget.epochs is not None:
            raise ConfigError(f"strategy '{cfg['method']}' is multi-trial: --epochs does not apply (trial training "
                              "epochs are set with --estimator-opt train.epochs=N)")
    else:
        if cfg["estimator"] is not None:
            raise ConfigError(f"strategy '{cfg['method']}' is one-shot and takes no --estimator")
        if not budget.epochs:
            raise ConfigError(f"strategy '{cfg['method']}' needs an epoch budget (--epochs N)")
        if budget.trials is not None:
            raise ConfigError(f"strategy '{cfg['method']}' is one-shot: --trials does not apply")
        if cfg["estimator_options"]:
            raise ConfigError(f"strategy '{cfg['method']}' is one-shot: estimator options do not apply")
        if cfg["executor"] != "local" or cfg["executor_options"]:
            raise ConfigError(f"strategy '{cfg['method']}' is one-shot and runs in this process: "
                              "--executor/--workers/--ray-address do not apply")
    if multi:
        est = ESTIMATORS.get(cfg["estimator"])
        if getattr(est, "runs_in_process", False) and (cfg["executor"] != "local" or cfg["executor_options"]):
            raise ConfigError(f"estimator '{cfg['estimator']}' runs in this process (a table lookup): "
                              "--executor/--workers/--ray-address do not apply")
        EXECUTORS.get(cfg["executor"])
        address = (cfg["executor_options"] or {}).get("address")
        if address:
            from .runs.executors import check_ray_address

            check_ray_address(str(address))
        gpus = (cfg["executor_options"] or {}).get("gpus_per_trial") or 0
        if cfg["executor"] == "ray" and not address and isinstance(gpus, (int, float)) and gpus > 0:
            import torch

            have = torch.cuda.device_count()
            if have < gpus:  # the local Ray instance would wait forever for a GPU no trial can get
                raise ConfigError(f"--gpus-per-trial {gpus:g} needs {'a CUDA GPU' if gpus <= 1 else f'{gpus:g} CUDA GPUs'}"
                                  f" for the local Ray instance, and this machine has {have}; drop --gpus-per-trial "
                                  "or give --ray-address of a cluster with GPUs")
        if cfg["estimator"] == "scratch":
            opts = dict(cfg["estimator_options"])
            unknown = sorted(set(opts) - {"train", "space_options"})
            if unknown:
                raise ConfigError(f"unknown option(s) {unknown} for estimator 'scratch'; valid: space_options, train")
            TrainConfig.from_dict({"epochs": 1, **(opts.get("train") or {})})
            check_space_scale(space, opts.get("space_options") or {}, "estimator option space_options")
        if cfg["estimator"] == "table":  # the folder and data set are --tables / --table-dataset
            from .tables.nb201 import check_metric

            opts = dict(cfg["estimator_options"])
            unknown = sorted(set(opts) - {"metric"})
            if unknown:
                raise ConfigError(f"unknown option(s) {unknown} for estimator 'table'; valid: metric (the table's "
                                  "folder and data set are --tables and --table-dataset)")
            if "metric" in opts:
                check_metric(opts["metric"])
        if cfg["estimator"] == "proxy":
            from .estimators.proxy import check_options

            opts = check_options(dict(cfg["estimator_options"]))
            check_space_scale(space, opts["space_options"], "estimator option space_options")
    if cfg["retrain"] is None:
        for key in ("retrain_space_options", "retrain_subset"):
            if cfg.get(key):
                raise ConfigError(f"{key} applies only with retraining (--retrain-epochs N or retrain: in the config)")
    else:
        TrainConfig.from_dict(cfg["retrain"])
        check_space_scale(space, cfg["retrain_space_options"], "--retrain-opt")
    if cfg["tables"] is None and _set_by_user(cfg, "table_dataset"):
        raise ConfigError("--table-dataset applies only with --tables")
    check_train_portion(cfg["train_portion"])
    return strategy
