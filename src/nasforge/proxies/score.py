"""Scoring architectures with zero-cost proxies under a recorded protocol.

The protocol is everything a score depends on: which proxies, the batch (data source, size, the seed that
picks the images), the initialisation (the space's own, seeded by ``seed``), how binary networks are scored,
the network's scale (``space_options``) and the device. `score_arch` returns it with the scores, so a
result always says how it was measured. The same protocol gives the same scores in any process (the batch
and the weights are drawn from ``seed`` on the CPU; on a GPU, values agree to floating-point tolerance).

Binary networks (spaces ``bats``, ``darts`` with ``binary=naive``): with ``binary="real"`` (default) they are
scored as their real-valued twin (binarization switched off, latent weights): ``sign`` has a zero gradient
almost everywhere, so gradient-based proxies of the binarized network would only measure the
straight-through estimator's |x| < 1 mask. ``binary="binarized"`` scores them as configured, gradients
through the straight-through estimator (what training uses).
"""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import ImageDataset
from ..errors import ConfigError
from ..spaces.base import Arch, SearchSpace
from ..utils import seed_everything
from .measures import ProxyBatch, get_proxy

BINARY_MODES = ("real", "binarized")


@dataclass
class Protocol:
    """How proxies are measured (recorded with every score).

    data: "dataset" (a batch of the training images; `dataset` names them) or "gaussian" (N(0, 1) images,
    uniform labels: data-free). batch_size: images per batch. seed: picks the batch and initialises the
    weights (the space's own initialisation). binary: "real" | "binarized" (see the module docstring).
    """

    proxies: list[str]
    batch_size: int = 64
    seed: int = 0
    data: str = "dataset"
    dataset: str | None = None
    binary: str = "real"
    space_options: dict[str, Any] = field(default_factory=dict)
    init: str = "space default (seeded)"

    def check(self) -> "Protocol":
        """Raises ConfigError for an unknown proxy, data source or binary mode, or a bad batch size."""
        if not self.proxies:
            raise ConfigError("give at least one proxy")
        for p in self.proxies:
            get_proxy(p)
        if self.data not in ("dataset", "gaussian"):
            raise ConfigError(f"proxy inputs must be 'dataset' or 'gaussian', got '{self.data}'")
        if self.binary not in BINARY_MODES:
            raise ConfigError(f"proxy binary mode must be one of {', '.join(BINARY_MODES)}, got '{self.binary}'")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ConfigError(f"proxy batch_size must be an integer >= 2, got {self.batch_size!r}")
        return self

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_batch(space: SearchSpace, protocol: Protocol, images: ImageDataset | None,
               device: torch.device | str = "cpu") -> ProxyBatch:
    """The protocol's batch, shaped for `space` ([B, in_channels, resolution, resolution], labels below
    num_classes) on `device`.

    From a dataset: `batch_size` images drawn without replacement by `seed`, scaled to [0, 1], resized
    (bilinear) to the space's resolution and repeated to its channels when they differ (e.g. Fashion-MNIST
    as a 3x32x32 stand-in), normalised by the dataset's mean and std. Raises ConfigError when the dataset
    is smaller than the batch, its labels exceed the space's classes, or its channels cannot be repeated.
    """
    B, C, R = protocol.batch_size, space.in_channels, space.resolution
    gen = torch.Generator().manual_seed(protocol.seed)  # host: the same batch on every device
    if protocol.data == "gaussian" or images is None:
        if protocol.data == "dataset":
            raise ConfigError("proxy data 'dataset' needs images; pass a dataset or use data 'gaussian'")
        x = torch.randn((B, C, R, R), generator=gen)  # host: seeded draws, the same on every device
        y = torch.randint(0, space.num_classes, (B,), generator=gen)  # host: seeded draws, the same on every device
        return ProxyBatch(x.to(device), y.to(device), protocol.seed)
    if len(images) < B:
        raise ConfigError(f"proxy batch_size {B} exceeds the {len(images)} images available")
    if images.num_classes > space.num_classes:
        raise ConfigError(f"the dataset has {images.num_classes} classes but the network {space.num_classes}")
    idx = torch.randperm(len(images), generator=gen)[:B]  # host: seeded draws, the same on every device
    x = images.images[idx].float().div_(255)
    mean, std = images.stats()
    x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)  # host: the images are on the CPU
    if x.shape[-1] != R or x.shape[-2] != R:
        x = F.interpolate(x, size=(R, R), mode="bilinear", align_corners=False)
    if x.shape[1] != C:
        if x.shape[1] != 1:
            raise ConfigError(f"images have {x.shape[1]} channels but the network takes {C}")
        x = x.expand(-1, C, -1, -1).contiguous()
    return ProxyBatch(x.to(device), images.labels[idx].to(device), protocol.seed)


@contextmanager
def _own_rng() -> Iterator[None]:
    """Run a block with its own python / numpy / torch (CPU and CUDA) random state, restored afterwards."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def score_arch(space: SearchSpace, arch: Arch, protocol: Protocol, batch: ProxyBatch,
               device: torch.device | str = "cpu") -> dict[str, Any]:
    """Score one architecture with every proxy of `protocol` on `batch`.

    The network is built once (weights seeded by ``protocol.seed``) and restored before each proxy, so
    proxies do not see each other's side effects (BatchNorm statistics). Returns ``{"scores": {proxy:
    float}, "cpu_s": {proxy: CPU seconds of this process}, "params": int}``; a score may be -inf (a
    degenerate network: e.g. nwot with identical codes, jacob_cov of an output that ignores its input).
    """
    from ..ops.binary import set_binarization
    from ..ops.heads import param_counts

    scores: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with _own_rng():  # the caller's random streams (e.g. a search driver's) are left as they were
        seed_everything(protocol.seed)
        model = space.build(arch, **protocol.space_options).to(device)
        if protocol.binary == "real":
            set_binarization(model, act=False, weight=False)
        state = {k: v.clone() for k, v in model.state_dict().items()}
        for name in protocol.proxies:
            proxy = get_proxy(name)
            model.load_state_dict(state)
            model.zero_grad(set_to_none=True)
            torch.manual_seed(protocol.seed)  # any random op in a forward (dropout) draws the same per proxy
            t = time.process_time()
            scores[name] = float(proxy.fn(model, batch))
            cpu[name] = time.process_time() - t
    return {"scores": scores, "cpu_s": cpu, "params": param_counts(model)["params"]}


def score_archs(space: SearchSpace, archs: Sequence[Arch], protocol: Protocol, images: ImageDataset | None,
                device: torch.device | str = "cpu", ensemble: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Score several architectures (one batch for all); with `ensemble` (member proxy names, each in the
    protocol) add ``scores["ensemble"]``: the members' mean normalised rank *within these architectures*."""
    protocol.check()
    batch = make_batch(space, protocol, images, device)
    out = [{"arch": space.validate(a), **score_arch(space, a, protocol, batch, device)} for a in archs]
    if ensemble:
        from .ensemble import rank_aggregate

        missing = [m for m in ensemble if m not in protocol.proxies]
        if missing:
            raise ConfigError(f"ensemble members {missing} are not among the scored proxies")
        agg = rank_aggregate({m: [r["scores"][m] for r in out] for m in ensemble}, ensemble)
        for r, v in zip(out, agg):
            r["scores"]["ensemble"] = float(v)
    return out
