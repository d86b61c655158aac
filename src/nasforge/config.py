"""Run configuration: defaults, YAML file, command-line overrides, validation.

A config is a plain dict (so it is stored verbatim in the run directory and a resumed run reads it back).
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from . import options
from .accel import MEMORY_FORMATS, PRECISIONS
from .errors import ConfigError
from .options import Opt

SEARCH_DEFAULTS: dict[str, Any] = {
    "space": "nb201",
    "space_options": {},
    "method": "single-darts",
    "hparams": {},
    "dataset": "fashion-mnist",
    "dataset_options": {},  # reader options, e.g. image-folder resolution, synthetic shape (data.DATASET_OPTIONS)
    "data_root": None,
    "download": False,
    "subset": None,  # images of the training set used by the search (split into halves)
    "split_seed": 0,
    "train_portion": 0.5,  # share of the search subset used as search-train (DARTS: 0.5)
    "batch_size": 64,
    "augment": {"crop_padding": 0, "hflip": False, "cutout": 0},
    "budget": {"epochs": None, "trials": None, "seconds": None, "clock": "wall"},
    "estimator": None,  # multi-trial only: scratch | table
    "estimator_options": {},
    "executor": "local",
    "executor_options": {},
    "tables": None,  # folder with the benchmark tables (e.g. ../shared/data/benchmarks)
    "table_dataset": "cifar10",
    "seed": 0,
    "threads": None,
    "device": "auto",  # auto | cpu | cuda | cuda:N | mps (nasforge.accel.resolve_device)
    "precision": "auto",  # auto | fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler; auto: nasforge.accel)
    "memory_format": "auto",  # auto | channels_last | contiguous (nasforge.accel.apply_memory_format)
    "fast_path": None,  # set by the run: what auto resolved to per network kind; a resume or re-run reuses it
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
    "dataset_options": {},
    "data_root": None,
    "download": False,
    "subset": None,
    "test_subset": None,
    "space_options": {},
    "train": {},
    "threads": None,
    "teacher": None,  # a finished train run on the same dataset: knowledge distillation (CE + lambda tau^2 KL)
    "device": "auto",
    "precision": "auto",
    "memory_format": "auto",
    "compile": "off",  # off | probe | on: torch.compile of the fixed network (probe: only where it pays)
    "fast_path": None,
    "sync_bn": False,
    "arch_from": None,  # set by train: the search run whose arch.json / result.json was given (compare links them)
}

#: keys a resumed run may change (where it runs, not what it computes)
RESUME_OVERRIDABLE = ("device", "threads")


#: Types and ranges of the top-level keys beyond what their defaults say (see nasforge.options). A key added
#: to the defaults above without a rule here is typed by its default.
RULES: dict[str, Any] = {
    "space": Opt("nb201", type=str), "method": Opt("single-darts", type=str), "dataset": Opt("fashion-mnist", type=str),
    "data_root": Opt(None, type=str), "tables": Opt(None, type=str), "estimator": Opt(None, type=str),
    "executor": Opt("local", type=str), "table_dataset": Opt("cifar10", type=str),
    "space_options": Opt({}, type=dict), "hparams": Opt({}, type=dict), "estimator_options": Opt({}, type=dict),
    "executor_options": Opt({}, type=dict), "dataset_options": Opt({}, type=dict, help="checked by "
                                                                  "data.dataset_options"),
    "retrain_space_options": Opt({}, type=dict), "train": Opt({}, type=dict),
    "retrain": Opt(None, type=dict, help="training options of the final network; null: no retraining"),
    "subset": Opt(None, ">=1", type=int), "retrain_subset": Opt(None, ">=1", type=int),
    "test_subset": Opt(None, ">=1", type=int), "threads": Opt(None, ">=1", type=int),
    "seed": Opt(0, ">=0"), "split_seed": Opt(0, ">=0"), "train_portion": Opt(0.5, help="checked by data.check_train_portion"),
    "batch_size": Opt(64, ">=1"),
    "augment": {"crop_padding": Opt(0, ">=0"), "hflip": False, "cutout": Opt(0, ">=0")},
    "budget": {"epochs": Opt(None, ">=1", type=int), "trials": Opt(None, ">=1", type=int),
               "seconds": Opt(None, ">0", type=float),
               "clock": Opt("wall", choices=("wall", "cpu"),
                            help="what seconds counts: wall-clock, or this process's CPU seconds")},
    "arch": Opt("baseline", type=None, help="a model name, an architecture file, or {space, arch}"),
    "command": Opt(None, type=str), "arch_from": Opt(None, type=str),
    "precision": Opt("auto", choices=PRECISIONS), "memory_format": Opt("auto", choices=MEMORY_FORMATS, nullable=True,
                                                                     help="null: each builder's own (older runs)"),
    "compile": Opt("off", choices=("off", "probe", "on")),
    "fast_path": Opt(None, type=dict, help="recorded by the run: what precision/memory_format auto resolved to"),
}


def declaration(defaults: dict[str, Any]) -> dict[str, Any]:
    """The typed declaration of a defaults table (SEARCH_DEFAULTS / TRAIN_DEFAULTS): RULES where given."""
    out: dict[str, Any] = {}
    for k, v in defaults.items():
        rule = RULES.get(k)
        if rule is None:
            out[k] = v
        elif isinstance(rule, dict) and isinstance(v, dict):  # a section: rules for its keys, defaults for the rest
            out[k] = {kk: rule.get(kk, vv) for kk, vv in v.items()}
        else:
            out[k] = rule
    return out


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _yaml_problem(e: Exception) -> str:
    """A YAML parse error on one line: what is wrong and where (PyYAML's own text spans several lines)."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
    if mark is None or not problem:
        return " ".join(str(e).split())
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The options mapping of a YAML config file ({} for an empty file). Raises ConfigError (one line) for a
    missing, unreadable, non-text or invalid file, or one whose top level is not a mapping."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(e)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not YAML text (it is not UTF-8; a binary file?)") from None
    except OSError as e:  # a folder, unreadable: one line before any work, not a trace
        raise ConfigError(f"config file {path} cannot be read: {e.strerror or type(e).__name__}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of options")
    return data


def resolve(defaults: dict[str, Any], *layers: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults, then each layer (YAML file, then CLI flags), every value checked against its declaration.

    Raises:
        ConfigError: an unknown key, a value of the wrong type or out of range, a section that is not a mapping.
    """
    decl = declaration(defaults)
    cfg = copy.deepcopy(defaults)
    for layer in layers:
        if not layer:
            continue
        checked = options.resolve(decl, layer, "", fill=False, noun="config key")
        cfg = deep_merge(cfg, checked)
    return cfg


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` pairs; values are parsed as YAML scalars (numbers, booleans, lists). A dotted key sets a
    nested option: ``train.epochs=2`` gives ``{"train": {"epochs": 2}}`` (merged with other ``train.*`` keys).

    Raises:
        ConfigError: an item without ``=``, an empty key part, or a key both set as a value and nested into.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"expected key=value, got '{item}'")
        k, v = item.split("=", 1)
        try:
            value = yaml.safe_load(v)
        except yaml.YAMLError:
            value = v
        *parents, leaf = [part.strip() for part in k.strip().split(".")]
        if not leaf or not all(parents):
            raise ConfigError(f"expected key=value with a non-empty key, got '{item}'")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"'{item}': '{part}' is set to a value and cannot also hold '{leaf}'")
        node[leaf] = value
    return out
