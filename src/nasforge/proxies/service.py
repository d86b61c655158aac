"""`nasforge proxy score`: score architectures (files, run directories or random samples) with proxies.

The function behind the command (`nasforge.api.proxy_score` re-exports it). Every input is checked before
anything is built or scored (unknown proxy, space, option, missing file: one ConfigError / UserError line).
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError, UserError
from .ensemble import DEFAULT_MEMBERS
from .measures import PROXIES, get_proxy
from .score import Protocol, score_archs

_DATA_KEYS = ("in_channels", "num_classes", "resolution")


def _config_of(spec: dict[str, Any]) -> dict[str, Any]:
    """The space options of an architecture file (its search scale), without the data-shaped keys."""
    return {k: v for k, v in (spec.get("space_config") or {}).items() if k not in _DATA_KEYS and k != "space"}


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def proxy_score(archs: Sequence[str | Path | dict[str, Any]] = (), proxies: Sequence[str] = ("nwot",), *,
                space: str | None = None, sample: int = 0, sample_seed: int = 0,
                dataset: str = "fashion-mnist", data_root: str | None = None, inputs: str = "dataset",
                batch_size: int = 64, seed: int = 0, binary: str = "real",
                space_options: dict[str, Any] | None = None, members: Sequence[str] | None = None,
                device: str = "auto", threads: int | None = 1, out: str | Path | None = None) -> dict[str, Any]:
    """Score architectures with zero-cost proxies under one protocol.

    Args:
        archs: architecture files (arch.json / result.json) or run directories, or dicts
            ``{"space", "arch", "space_config"?}``.
        proxies: names from nasforge.proxies.PROXIES, or "ensemble" (the mean normalised rank of `members`,
            default synflow, nwot, jacob_cov, *within the scored architectures*: needs >= 2 of them).
        space, sample, sample_seed: also score `sample` random architectures of `space`.
        dataset, data_root, inputs, batch_size, seed, binary: the protocol (nasforge.proxies.Protocol);
            the network is sized for the dataset (channels, classes, resolution).
        space_options: the scale the networks are built at (e.g. ``{"C": 8, "N": 1}``).
        device: auto | cpu | cuda[:N] | mps.  threads: torch threads (None: leave as is).
        out: also write the result JSON there (atomically).

    Returns:
        ``{"protocol", "device", "results": [{"space", "arch", "scores", "cpu_s", "params"}]}``; a
        degenerate network's -inf score is written as null and listed in ``degenerate``.

    Raises:
        ConfigError / UserError: bad names, options, files or sizes (before any scoring).
    """
    from ..accel import resolve_device
    from ..building import arch_spec, import_components, make_space
    from ..data import load_dataset
    from ..utils import atomic_write_json, set_threads

    import_components()
    names = list(dict.fromkeys(proxies))
    if not names:
        raise ConfigError("give at least one proxy (--proxy NAME)")
    want_ensemble = "ensemble" in names
    for n in names:
        if n != "ensemble":
            get_proxy(n)
    ens = list(members or DEFAULT_MEMBERS) if want_ensemble else None
    if ens is not None:
        for m in ens:
            get_proxy(m)
        if len(ens) < 2:
            raise ConfigError("the ensemble needs at least two member proxies")
    measured = list(dict.fromkeys([n for n in names if n != "ensemble"] + (ens or [])))
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise ConfigError(f"sample must be an integer >= 0, got {sample!r}")
    if sample and space is None:
        raise ConfigError("--sample needs --space (which space to draw architectures from)")
    if space is not None and not sample:
        raise ConfigError("--space is used with --sample N (how many random architectures to score)")
    specs: list[dict[str, Any]] = []
    for a in archs:
        spec = arch_spec(a if isinstance(a, dict) else Path(a))
        if isinstance(spec, str):
            raise UserError(f"'{a}' is a fixed model, not a searched architecture; proxies score architectures")
        specs.append(spec)
    protocol = Protocol(proxies=measured, batch_size=batch_size, seed=seed, data=inputs,
                        dataset=dataset if inputs == "dataset" else None, binary=binary,
                        space_options=dict(space_options or {})).check()
    for spec in specs:  # names, architectures and scale checked before any data is read
        sp = make_space(spec["space"], None, _config_of(spec))
        sp.validate(spec["arch"])
        sp.check_build_overrides(protocol.space_options)
    if sample:
        make_space(space, None, {}).check_build_overrides(protocol.space_options)
    if want_ensemble and len(specs) + sample < 2:
        raise ConfigError("the ensemble ranks architectures against each other: score at least two")
    if not specs and not sample:
        raise ConfigError("nothing to score: give architecture files / run directories or --space S --sample N")
    dev = resolve_device(device)
    if threads:
        set_threads(threads)
    images = load_dataset(dataset, data_root)[0] if inputs == "dataset" else None

    groups: dict[str, tuple[Any, list[Any]]] = {}  # one space (and batch) per space config
    for spec in specs:
        sp = make_space(spec["space"], images, _config_of(spec))
        key = repr(sorted(sp.config.items()))
        groups.setdefault(key, (sp, []))[1].append(sp.validate(spec["arch"]))
    if sample:
        sp = make_space(space, images, {})
        rng = random.Random(sample_seed)
        key = repr(sorted(sp.config.items()))
        groups.setdefault(key, (sp, []))[1].extend(sp.validate(sp.sample(rng)) for _ in range(sample))

    results: list[dict[str, Any]] = []
    for sp, arch_list in groups.values():
        for r in score_archs(sp, arch_list, protocol, images, dev):
            # the scale the networks were built at: the space's config with the protocol's build overrides
            results.append({"space": sp.name, "space_config": {**sp.config, **protocol.space_options}, **r})
    if ens is not None:  # ranks over every scored architecture, whichever space it came from
        from .ensemble import rank_aggregate

        agg = rank_aggregate({m: [r["scores"][m] for r in results] for m in ens}, ens)
        for r, v in zip(results, agg):
            r["scores"]["ensemble"] = float(v)
    degenerate = []
    for i, r in enumerate(results):
        bad = sorted(k for k, v in r["scores"].items() if not math.isfinite(v))
        if bad:
            degenerate.append({"index": i, "proxies": bad})
        r["scores"] = {k: _finite(v) for k, v in r["scores"].items() if k in names or k in (ens or [])}
    res = {"protocol": {**protocol.as_dict(), "ensemble_members": ens}, "device": str(dev), "results": results,
           "degenerate": degenerate}
    if out is not None:
        atomic_write_json(out, res)
        res["out"] = str(out)
    return res


def available() -> list[tuple[str, str]]:
    """(name, paper / definition) of every proxy, and the ensemble."""
    return [(n, p.paper) for n, p in sorted(PROXIES.items())] + [
        ("ensemble", f"mean normalised rank of members (default {', '.join(DEFAULT_MEMBERS)})")]
