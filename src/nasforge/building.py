"""Model building: from a space name or an architecture file to a network (and back from a trained run).

`nasforge.api` orchestrates runs (configs, run directories, costs); everything here only turns descriptions
into modules: registration of the components, spaces from their options, architectures from files, fixed
or searched networks, and the trained model of a finished run.
"""
from __future__ import annotations

import importlib
import json
import os
import pkgutil
from pathlib import Path
from typing import Any

import torch.nn as nn

from .accel import FastPath
from .data import ImageDataset, load_dataset
from .data.datasets import stored_dataset_options
from .errors import DataError, UserError
from .models import MODELS, build_named
from .registry import SPACES
from .runs.store import RunDir, check_torch_file, load_torch_file
from .spaces.base import SearchSpace

#: keys of a stored space_config that describe the data, not the space's options
_DATA_KEYS = ("space", "in_channels", "num_classes", "resolution")


def import_components() -> None:
    """Import every space, strategy and estimator module (and the executors) so their registrations run: the
    packages list their modules explicitly (nasforge.registry)."""
    from . import estimators, spaces, strategies  # noqa: F401
    from .runs import executors  # noqa: F401


def make_space(name: str, data: ImageDataset | None, options: dict[str, Any]) -> SearchSpace:
    """The registered space `name` with `options`, sized for `data` (channels, classes, resolution) when
    given. Raises ConfigError for an unknown space or option."""
    cls = SPACES.get(name)
    if data is None:
        return cls(**options)
    return cls(in_channels=data.in_channels, num_classes=data.num_classes, resolution=data.resolution, **options)


def load_arch(path: str | Path) -> dict[str, Any]:
    """Read an architecture file: {"space", "arch", optional "space_config"} (a result.json works too, and a
    run directory stands for its result.json). Raises UserError (one line) if it is missing, unreadable, not
    JSON text or not such an object."""
    p = Path(path)
    if p.is_dir():
        if (p / RunDir.RESULT).is_file():
            p = p / RunDir.RESULT
        elif (p / "arch.json").is_file():  # a search whose retraining has not finished: its architecture is known
            p = p / "arch.json"
        elif (p / RunDir.CONFIG).is_file():
            cfg = RunDir(p).config()
            command = (cfg.get("command") if isinstance(cfg, dict) else None) or "search"
            raise UserError(f"{p} is an unfinished {command} run (no {RunDir.RESULT} or arch.json yet); finish it "
                            f"first: nasforge {command} --resume {p}")
        else:
            raise UserError(f"{p} is a folder without {RunDir.RESULT}; give an architecture JSON file (arch.json) "
                            "or a finished search run directory")
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"architecture file {p} does not exist") from None
    except UnicodeDecodeError:
        raise UserError(f"architecture file {p} is not JSON text (it is not UTF-8; a binary file?)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"architecture file {p} is not valid JSON: {e}") from None
    except OSError as e:  # unreadable (permissions, a special file): refused before any work
        raise UserError(f"architecture file {p} cannot be read: {e.strerror or type(e).__name__}") from None
    if isinstance(data, dict) and isinstance(data.get("model"), str) and "arch" not in data:
        raise UserError(f"{p} is the result of training the model '{data['model']}', not a searched architecture: "
                        f"use --arch {data['model']} (with the run's --space-opt)")
    return check_arch_record(data, f"architecture file {p}")


def check_arch_record(data: Any, where: str = "the architecture") -> dict[str, Any]:
    """`data` if it is an architecture record {"space": name, "arch": ..., optional "space_config": {...}};
    raises UserError naming `where` otherwise (what the space then says about "arch" itself is its own check)."""
    if not isinstance(data, dict) or "space" not in data or "arch" not in data:
        raise UserError(f"{where} must hold a JSON object with 'space' and 'arch'")
    if not isinstance(data["space"], str):
        raise UserError(f"{where}: 'space' must be a space name (a string), got {data['space']!r:.80}")
    if not isinstance(data.get("space_config", {}), dict):
        raise UserError(f"{where}: 'space_config' must be a JSON object of space options, got "
                        f"{data['space_config']!r:.80}")
    return data


def _looks_like_path(text: str) -> bool:
    """A name with a path separator or a .json ending is meant as a file, never as a model name."""
    return "/" in text or (os.sep in text) or bool(os.altsep and os.altsep in text) or text.lower().endswith(".json")


def arch_spec(arch: str | dict[str, Any] | Path) -> dict[str, Any] | str:
    """What `arch` names: a fixed model's name (returned as is), an architecture dict (as is), or the
    content of an architecture file. Raises UserError for anything else: "does not exist" for a missing
    file path (one with a path separator or a .json ending), "unknown architecture" for another name."""
    import_components()
    if isinstance(arch, str) and arch in MODELS:
        return arch
    if isinstance(arch, dict):
        return check_arch_record(arch)
    if not Path(str(arch)).exists():
        if _looks_like_path(str(arch)):
            raise UserError(f"architecture file {arch} does not exist")
        raise UserError(f"unknown architecture '{arch}': give a model name ({', '.join(MODELS.names())}) "
                        "or the path of an architecture JSON file (arch.json or result.json of a search)")
    return load_arch(arch)


def build_model(arch: str | dict[str, Any] | Path, data: ImageDataset,
                space_options: dict[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A model for a named fixed model ("baseline") or an architecture file/dict, sized for `data`.

    Returns (model, description): {"model": name} or {"space", "arch" (canonical)}. `space_options`
    change the scale of a searched architecture (e.g. C, N) or a named model (``width``). Raises UserError / ConfigError for an unknown
    architecture, space or option.
    """
    spec = arch_spec(arch)
    if isinstance(spec, str):  # a hand-designed model; space_options are its scale (e.g. width)
        return build_named(spec, data.in_channels, data.num_classes, space_options, data.resolution), {"model": spec}
    space_cfg = {k: v for k, v in spec.get("space_config", {}).items() if k not in _DATA_KEYS}
    space = make_space(spec["space"], data, space_cfg)
    return space.build(spec["arch"], **(space_options or {})), {"space": spec["space"], "arch": space.validate(spec["arch"])}


def declared_fast_path(arch: str | dict[str, Any] | Path, data: ImageDataset) -> FastPath:
    """What pays on the network `arch` names (nasforge.accel.FastPath): a fixed model's class attribute
    ``fast_path``, or its space's declaration for standalone networks (``SearchSpace.fast_path("network")``);
    the previous path (fp32, contiguous) when undeclared."""
    spec = arch_spec(arch)
    if isinstance(spec, str):
        return getattr(MODELS.get(spec), "fast_path", FastPath())
    space_cfg = {k: v for k, v in spec.get("space_config", {}).items() if k not in _DATA_KEYS}
    return make_space(spec["space"], data, space_cfg).fast_path("network")


def load_trained(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any], ImageDataset]:
    """The model of a finished `train` run (or a search run's retrained model) in eval mode, with its saved
    state (normalisation mean/std), the run's config and the official test set.
    Raises UserError for a search run without a retrained model."""
    run = RunDir.open(run_dir)
    try:
        return _load_trained(run)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:  # a damaged or crafted record
        raise DataError(f"{run.path}: its config.json / result.json do not describe a trained model "
                        f"({type(e).__name__}: {e}); the run directory is damaged") from None


def _load_trained(run: RunDir) -> tuple[nn.Module, dict[str, Any], dict[str, Any], ImageDataset]:
    cfg = run.config()
    res = run.result()
    if cfg.get("command") == "search":
        if "retrain" not in res:
            raise UserError(f"{run.path} is a search run without a retrained model; train its architecture: "
                            f"nasforge train --arch {run.path / 'arch.json'}")
        spec: Any = {"space": res["space"], "space_config": res["space_config"], "arch": res["arch"]}
        space_options = res["retrain"].get("space_options", {})
        state_file = run.path / "retrain" / "model.pt"  # relative to the run: a moved run still loads
    else:
        spec = res["model"] if "model" in res else {"space": res["space"], "arch": res["arch"],
                                                    "space_config": _space_config_of(cfg)}
        space_options = cfg.get("space_options", {})
        state_file = run.path / "model.pt"
    check_torch_file(state_file, "model file")  # a crafted file is refused before the data loads
    _, test_set = load_dataset(cfg["dataset"], cfg.get("data_root"), options=stored_dataset_options(cfg))
    model, _ = build_model(spec, test_set, space_options)
    state = load_torch_file(state_file, "model file")  # weights only: a run directory's pickles never run
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:  # missing / unexpected keys or shapes: the file is not this architecture's
        raise DataError(f"{state_file} does not hold the weights of the run's architecture "
                        f"({' '.join(line.strip() for line in str(e).splitlines()[1:2])[:160]})") from None
    model.eval()
    return model, state, cfg, test_set


def _space_config_of(cfg: dict[str, Any]) -> dict[str, Any]:
    arch = cfg["arch"]
    if isinstance(arch, dict):
        return arch.get("space_config", {})
    return load_arch(arch).get("space_config", {})
