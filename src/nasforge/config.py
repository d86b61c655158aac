"""Run configuration: defaults, YAML file, command-line overrides, validation.

A config is a plain dict (so it is stored verbatim in the run directory and a resumed run reads it back).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

SEARCH_DEFAULTS: dict[str, Any] = {
    "space": "nb201",
    "space_options": {},
    "method": "single-darts",
    "hparams": {},
    "dataset": "fashion-mnist",
    "data_root": None,
    "download": False,
    "subset": None,  # images of the training set used by the search (split into halves)
    "split_seed": 0,
    "train_portion": 0.5,  # share of the search subset used as search-train (DARTS: 0.5)
    "batch_size": 64,
    "augment": {"crop_padding": 0, "hflip": False, "cutout": 0},
    "budget": {"epochs": None, "trials": None, "seconds": None},
    "estimator": None,  # multi-trial only: scratch | table
    "estimator_options": {},
    "executor": "local",
    "executor_options": {},
    "tables": None,  # folder with the benchmark tables (e.g. ../shared/data/benchmarks)
    "table_dataset": "cifar10",
    "seed": 0,
    "threads": None,
    "device": "auto",  # auto | cpu | cuda | cuda:N | mps (nasforge.accel.resolve_device)
    "precision": "fp32",  # fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler)
    "sync_bn": False,  # data parallel (torchrun): synchronise BatchNorm statistics across processes
    "retrain": None,  # TrainConfig dict to retrain the found architecture from scratch; None skips it
    "retrain_space_options": {},  # scale of the final network (e.g. C, N)
    "retrain_subset": None,
    "test_subset": None,
    "teacher": None,  # a finished train run whose model distils into the search (if the method does) and retraining
}

TRAIN_DEFAULTS: dict[str, Any] = {
    "arch": "baseline",
    "dataset": "fashion-mnist",
    "data_root": None,
    "download": False,
    "subset": None,
    "test_subset": None,
    "space_options": {},
    "train": {},
    "threads": None,
    "teacher": None,  # a finished train run on the same dataset: knowledge distillation (CE + lambda tau^2 KL)
    "device": "auto",
    "precision": "fp32",
    "sync_bn": False,
}

#: keys a resumed run may change (where it runs, not what it computes)
RESUME_OVERRIDABLE = ("device", "threads")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of options")
    return data


def resolve(defaults: dict[str, Any], *layers: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults, then each layer (YAML file, then CLI flags); unknown top-level keys are an error."""
    cfg = copy.deepcopy(defaults)
    for layer in layers:
        if not layer:
            continue
        unknown = set(layer) - set(defaults)
        if unknown:
            raise ConfigError(f"unknown config key(s) {sorted(unknown)}; valid: {', '.join(sorted(defaults))}")
        cfg = deep_merge(cfg, layer)
    return cfg


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` pairs; values are parsed as YAML scalars (numbers, booleans, lists)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"expected key=value, got '{item}'")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v)
        except yaml.YAMLError:
            out[k.strip()] = v
    return out
