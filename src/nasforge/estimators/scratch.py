"""Estimator that trains every candidate from scratch on the search split (the multi-trial ground truth)."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from ..data import load_dataset, search_split
from ..ops.heads import param_counts
from .. import spaces as _spaces  # noqa: F401  (registers the spaces a trial builds; a Ray worker is fresh)
from ..registry import ESTIMATORS, SPACES
from ..spaces.base import Arch, SearchSpace
from ..training import TrainConfig, evaluate, train_model
from ..utils import seed_everything
from .base import Estimator


@ESTIMATORS.register("scratch", help="train each architecture from scratch on search-train, score on search-val")
class ScratchEstimator(Estimator):
    name = "scratch"
    trial_fn = "nasforge.estimators.scratch:run_trial"

    def __init__(self, data: dict[str, Any], train: dict[str, Any] | None = None,
                 space_options: dict[str, Any] | None = None, device: str = "cpu", precision: str = "fp32",
                 memory_format: str | None = None) -> None:
        self.data = data  # {"dataset", "data_root", "subset", "split_seed", "train_portion"}
        self.train = TrainConfig.from_dict({"epochs": 1, **(train or {})}).as_dict()
        self.space_options = space_options or {}
        self.device = str(device)  # resolved where the trial runs (a Ray worker maps "cuda" to its own GPU)
        self.precision = precision
        self.memory_format = memory_format  # None: as the space builds it (trial keys of older runs unchanged)

    @classmethod
    def recorded_precision(cls, network_precision: str) -> str:
        """Trials train standalone networks: in the "network" precision (api passes it as ``precision=``)."""
        return network_precision

    @classmethod
    def fidelity(cls, space: SearchSpace, options: dict[str, Any]) -> dict[str, Any]:
        """Training epochs: any whole number; the default highest fidelity is the trials' ``train.epochs``."""
        epochs = ((options or {}).get("train") or {}).get("epochs", 1)
        return {"unit": "epochs", "levels": None, "max": int(epochs)}

    def trial_spec(self, space: SearchSpace, arch: Arch, seed: int, fidelity: int | None = None) -> dict[str, Any]:
        """`fidelity`: train for that many epochs instead of ``train.epochs`` (a complete training run with
        its own learning-rate schedule, so the spec alone says what the score means)."""
        # The training seed is fixed per architecture (not per search seed): proxy noise must not
        # depend on which search proposed the cell (PNAS pitfall "control proxy noise").
        train = {**self.train, "seed": self.train.get("seed", 0)}
        if fidelity is not None:
            train["epochs"] = int(fidelity)
        spec = {"space": space.config, "arch": arch, "build": self.space_options, "data": self.data,
                "train": train, "device": self.device}
        if self.precision != "fp32":
            spec["precision"] = self.precision
        if self.memory_format is not None:
            spec["memory_format"] = self.memory_format
        return spec


@lru_cache(maxsize=4)
def _split(dataset: str, root: str | None, subset: int | None, split_seed: int, train_portion: float,
           options: tuple = ()):
    train, _ = load_dataset(dataset, root, options=dict(options))
    return search_split(train, seed=split_seed, subset=subset, train_portion=train_portion)


def _cut_at_deadline(record: dict[str, Any], epochs: int) -> None:
    """Between epochs: stop a trial whose search has passed its deadline (--seconds, local executor); the
    executor leaves it pending. Never after the last epoch (the trial is as good as done then)."""
    from ..runs.executors import TrialCut, past_deadline

    if record["epoch"] < epochs and past_deadline():
        raise TrialCut(f"cut after epoch {record['epoch']} of {epochs}: the search's deadline passed")


def run_trial(spec: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """Trial function: build the architecture (weights seeded by the spec's training seed, so the same
    spec gives the same score in any process), train it on search-train, score it on search-val.
    May run in a fresh process (a Ray worker): this module's import registers the spaces. Run by the local executor
    of a search with --seconds, it stops between epochs once the deadline has passed (TrialCut: the trial
    stays pending, unscored)."""
    if threads:
        torch.set_num_threads(threads)
    from ..accel import resolve_device

    device = resolve_device(spec.get("device", "cpu"))
    precision = spec.get("precision", "fp32")
    d = spec["data"]
    tr, va = _split(d["dataset"], d.get("data_root"), d.get("subset"), d.get("split_seed", 0),
                    d.get("train_portion", 0.5), tuple(sorted((d.get("dataset_options") or {}).items())))
    cfg = dict(spec["space"])
    space = SPACES.get(cfg.pop("space"))(**cfg)
    train_cfg = TrainConfig.from_dict(spec["train"])
    seed_everything(train_cfg.seed)  # before the weights are initialised
    model = space.build(arch=spec["arch"], **spec.get("build", {}))
    mean, std = tr.stats()
    out = train_model(model, tr, None, train_cfg, mean=mean, std=std, device=device, precision=precision,
                      memory_format=spec.get("memory_format"),
                      on_epoch=lambda rec: _cut_at_deadline(rec, train_cfg.epochs))
    val = evaluate(model, train_cfg.loader(va, mean, std, train=False, device=device), precision)
    return {"score": val["accuracy"], "val_loss": val["loss"], "train_accuracy": out["final"].get("train_accuracy"),
            **param_counts(model), "train_s": out["cost"]["wall_s"], "threads": torch.get_num_threads(),
            "device": str(device)}
