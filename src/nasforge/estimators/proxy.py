"""Estimator that scores every candidate with a zero-cost proxy: no training (nasforge.proxies).

`--estimator proxy` turns any multi-trial strategy into a training-free search: ``random --trials N`` scores
N distinct random architectures and keeps the best by the proxy (NASWOT's search, Mellor et al. 2021);
``evolution`` evolves by proxy score.

Options (``estimator_options``, typed): ``proxy`` (one of nasforge.proxies.PROXIES or ``ensemble``),
``batch_size``, ``seed`` (picks the batch and initialises the weights; fixed per architecture, not per
search seed, so a cell scores the same whichever search proposes it), ``inputs`` (``dataset``: a batch of the
search-train split of the configured dataset; ``gaussian``: N(0, 1) images, data-free), ``binary``
(``real`` | ``binarized``, see nasforge.proxies.score), ``space_options`` (the scale the network is built
at), and for ``ensemble`` the ``members`` and the size of the ``reference`` sample: a single architecture
has no rank, so its ensemble score is the mean over members of its percentile among ``reference`` random
architectures of the space (drawn from ``seed``, scored once per process).

A degenerate network (a member or the proxy is -inf: e.g. its output ignores its input) gets no score
(``score: null``, ``degenerate: true``): it is recorded, never selected.
"""
from __future__ import annotations

import json
import math
import random
from functools import lru_cache
from typing import Any, ClassVar

import torch

from ..errors import ConfigError
from ..options import Opt, resolve
from ..proxies import DEFAULT_MEMBERS, PROXIES, Protocol, make_batch, percentile_aggregate, score_arch
from ..proxies.score import BINARY_MODES
from .. import spaces as _spaces  # noqa: F401  (registers the spaces a trial builds; a Ray worker is fresh)
from ..registry import ESTIMATORS, SPACES
from ..spaces.base import Arch, SearchSpace
from .base import Estimator


@ESTIMATORS.register("proxy", help="zero-cost proxy: score the untrained network (synflow, nwot, ...; no training)")
class ProxyEstimator(Estimator):
    name = "proxy"
    trial_fn = "nasforge.estimators.proxy:run_trial"
    defaults: ClassVar[dict[str, Any]] = {
        "proxy": Opt("nwot", choices=(*sorted(PROXIES), "ensemble"), help="which proxy scores a candidate"),
        "batch_size": Opt(64, ">=2", help="images per proxy batch"),
        "seed": Opt(0, help="picks the batch and initialises the weights"),
        "inputs": Opt("dataset", choices=("dataset", "gaussian"), help="dataset images or N(0, 1) inputs"),
        "binary": Opt("real", choices=BINARY_MODES, help="binary networks: scored real-valued or binarized"),
        "members": Opt(list(DEFAULT_MEMBERS), items=str, help="ensemble: member proxies"),
        "reference": Opt(32, ">=2", help="ensemble: random architectures ranked against"),
        "space_options": Opt({}, type=dict, help="network scale the proxies build (e.g. C, N)"),
    }

    def __init__(self, data: dict[str, Any] | None = None, device: str = "cpu", **options: Any) -> None:
        self.options = check_options(options)
        self.data = data or {}
        self.device = str(device)

    def trial_spec(self, space: SearchSpace, arch: Arch, seed: int) -> dict[str, Any]:
        # no search seed: the proxy seed is an option, so a journal entry is shared by any search
        return {"space": space.config, "arch": space.validate(arch), "options": self.options, "data": self.data,
                "device": self.device}


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The proxy estimator's options, checked and filled in. Raises ConfigError (one line)."""
    opts = resolve(ProxyEstimator.defaults, options, "estimator 'proxy'")
    if opts["proxy"] == "ensemble":
        bad = [m for m in opts["members"] if m not in PROXIES]
        if bad or len(opts["members"]) < 2:
            raise ConfigError(f"estimator 'proxy' option members must name at least two of "
                              f"{', '.join(sorted(PROXIES))}; got {opts['members']}")
    return opts


def _protocol(opts: dict[str, Any], data: dict[str, Any]) -> Protocol:
    proxies = list(opts["members"]) if opts["proxy"] == "ensemble" else [opts["proxy"]]
    return Protocol(proxies=proxies, batch_size=opts["batch_size"], seed=opts["seed"], data=opts["inputs"],
                    dataset=data.get("dataset") if opts["inputs"] == "dataset" else None, binary=opts["binary"],
                    space_options=dict(opts["space_options"])).check()


@lru_cache(maxsize=4)
def _images(dataset: str, root: str | None, subset: int | None, split_seed: int, train_portion: float,
            options: tuple = ()):
    from .scratch import _split

    return _split(dataset, root, subset, split_seed, train_portion, options)[0]


def _batch(space: SearchSpace, protocol: Protocol, data: dict[str, Any], device: torch.device):
    images = None
    if protocol.data == "dataset":
        if not data.get("dataset"):
            raise ConfigError("estimator 'proxy' with inputs 'dataset' needs a dataset (or set inputs: gaussian)")
        images = _images(data["dataset"], data.get("data_root"), data.get("subset"), data.get("split_seed", 0),
                         data.get("train_portion", 0.5), tuple(sorted((data.get("dataset_options") or {}).items())))
    return make_batch(space, protocol, images, device)


@lru_cache(maxsize=4)
def _reference(key: str) -> dict[str, list[float]]:
    """Member scores of `reference` random architectures (drawn from the proxy seed), once per process."""
    spec = json.loads(key)
    space, protocol, device = _setup(spec)
    batch = _batch(space, protocol, spec["data"], device)
    rng = random.Random(spec["options"]["seed"])
    out: dict[str, list[float]] = {m: [] for m in protocol.proxies}
    for _ in range(spec["options"]["reference"]):
        r = score_arch(space, space.validate(space.sample(rng)), protocol, batch, device)
        for m in protocol.proxies:
            out[m].append(r["scores"][m])
    return out


def _setup(spec: dict[str, Any]):
    from ..accel import resolve_device

    cfg = dict(spec["space"])
    space = SPACES.get(cfg.pop("space"))(**cfg)
    opts = check_options(spec["options"])
    return space, _protocol(opts, spec.get("data") or {}), resolve_device(spec.get("device", "cpu"))


def run_trial(spec: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """Trial function: score one architecture with the spec's proxy (or ensemble). Returns ``score`` (None for
    a degenerate network), the member ``scores``, the ``protocol`` and CPU seconds. May run in a fresh
    process (a Ray worker): this module's import registers the spaces."""
    if threads:
        torch.set_num_threads(threads)
    space, protocol, device = _setup(spec)
    opts = check_options(spec["options"])
    batch = _batch(space, protocol, spec.get("data") or {}, device)
    r = score_arch(space, spec["arch"], protocol, batch, device)
    scores = r["scores"]
    if opts["proxy"] == "ensemble":
        key = json.dumps({"space": spec["space"], "options": opts, "data": spec.get("data") or {},
                          "device": str(device)}, sort_keys=True)
        value = percentile_aggregate(scores, _reference(key), protocol.proxies)
        degenerate = any(not math.isfinite(scores[m]) for m in protocol.proxies)
    else:
        value = scores[opts["proxy"]]
        degenerate = not math.isfinite(value)
    out = {"score": None if degenerate else float(value), "proxy": opts["proxy"],
           "scores": {k: (v if math.isfinite(v) else None) for k, v in scores.items()},
           "protocol": {**protocol.as_dict(), "device": str(device)}, "cpu_s": round(sum(r["cpu_s"].values()), 4),
           "params": r["params"], "threads": torch.get_num_threads()}
    if degenerate:
        out["degenerate"] = True
    return out
