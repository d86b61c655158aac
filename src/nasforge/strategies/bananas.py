"""BANANAS: Bayesian optimisation with a neural-network ensemble (White, Neiswanger & Savani, AAAI 2021).

    score `num_init` random architectures
    repeat:
        fit an ensemble of `members` predictors on every (architecture, score) so far
        candidates = `candidates` mutations of the `parents` best architectures so far (never scored before)
        score the `batch` candidates with the highest acquisition value

The ensemble is the existing surrogate ensemble (`nasforge.surrogates.Ensemble`, MLP or LSTM over the space's
tokens, refitted from scratch every round); its members' mean and spread give the acquisition:

* ``its`` (independent Thompson sampling, the paper's default): one draw from N(mean, std) per candidate;
* ``ucb``: mean + ``ucb_beta`` * std;
* ``ei``: expected improvement over the best score so far under N(mean, std).

The paper's ensemble members are trained on all data (``subsample`` 1.0) and differ by initialisation; its
path encoding is replaced by the space's own tokens (`tokenizer_for`), so BANANAS runs on every space with a
tokenizer (nb201, macro, pnas). A fit depends only on (seed, data), and the Thompson draws come from the
search's checkpointed generator, so a resumed search proposes exactly what the uninterrupted one would.
"""
from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from ..options import Opt
from ..registry import STRATEGIES
from ..spaces.base import Arch
from ..surrogates.ensemble import KINDS, Ensemble
from ..surrogates.tokenizers import tokenizer_for
from ..engine.base import SearchContext
from ..engine.multitrial import MultiTrialStrategy, arch_key, sample_distinct


def acquisition(mean: np.ndarray, std: np.ndarray, kind: str, rng: np.random.Generator, best: float,
                beta: float = 1.0) -> np.ndarray:
    """Acquisition values [n] (higher = query first) from the ensemble's mean and std [n] (score units).
    `kind`: its | ucb | ei; `best`: the best score so far (ei); `rng` draws the Thompson samples (its)."""
    if kind == "its":
        return mean + std * rng.standard_normal(len(mean))
    if kind == "ucb":
        return mean + beta * std
    sd = np.maximum(std, 1e-12)
    z = (mean - best) / sd
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return (mean - best) * cdf + sd * pdf


@STRATEGIES.register("bananas", help="BANANAS: surrogate ensemble + acquisition (ITS/UCB/EI) over mutations of the "
                                     "best architectures so far")
class Bananas(MultiTrialStrategy):
    name = "bananas"
    defaults = {
        "num_init": Opt(10, ">=1", help="random architectures before the first fit"),
        "batch": Opt(10, ">=1", help="architectures scored per round (the top of the acquisition)"),
        "candidates": Opt(100, ">=1", help="mutations generated per round"),
        "parents": Opt(10, ">=1", help="the best architectures so far that are mutated"),
        "acquisition": Opt("its", choices=("its", "ucb", "ei")),
        "ucb_beta": Opt(1.0, ">=0", help="weight of the ensemble's std in ucb"),
        "surrogate": Opt("mlp", choices=KINDS),
        "members": Opt(5, ">=2", help="predictors in the ensemble"),
        "subsample": Opt(1.0, "(0, 1]", help="share of the data each member is fitted on"),
        "steps": Opt(None, ">=1", type=int, help="Adam steps per fit; null: the surrogate's default"),
    }

    def setup(self, ctx: SearchContext) -> None:
        self.tokenizer = tokenizer_for(ctx.space)  # ConfigError for a space without tokens
        self.fits = 0

    def preflight(self, space, cfg: dict[str, Any]) -> None:
        tokenizer_for(space)
        super().preflight(space, cfg)  # a trial budget the space can hold

    def _ensemble(self, seed: int) -> Ensemble:
        hp = self.hp
        return Ensemble(self.tokenizer, kind=hp["surrogate"], members=hp["members"], subsample=hp["subsample"],
                        steps=hp["steps"], seed=seed)

    def _candidates(self, ctx: SearchContext, rng: random.Random, scored: list[tuple[Arch, float]]) -> list[Arch]:
        space = ctx.space
        parents = [a for a, _ in sorted(scored, key=lambda t: -t[1])[: self.hp["parents"]]]
        out: dict[str, Arch] = {}
        for i in range(self.hp["candidates"] * 10):  # mutations of used-up neighbourhoods are skipped
            if len(out) >= self.hp["candidates"]:
                break
            child = space.validate(space.mutate(parents[i % len(parents)], rng))
            k = arch_key(child)
            if k not in self.scores and k not in out:
                out[k] = child
        return list(out.values())

    def propose(self, ctx: SearchContext, rng: random.Random, remaining: int | None) -> list[Arch]:
        scored = [(h["arch"], h["score"]) for h in self.history if h["score"] is not None]
        n = self.hp["batch"] if remaining is None else min(self.hp["batch"], remaining)
        if len(self.history) < self.hp["num_init"] or not scored:
            n = self.hp["num_init"] - len(self.history) if len(self.history) < self.hp["num_init"] else n
            n = n if remaining is None else min(n, remaining)
            return sample_distinct(ctx, rng, set(self.scores), n)
        cands = self._candidates(ctx, rng, scored)
        if not cands:  # every mutation of the parents has been scored: widen with random architectures
            return sample_distinct(ctx, rng, set(self.scores), n)
        model = self._ensemble(ctx.seed).fit([a for a, _ in scored], [s for _, s in scored])
        self.fits += 1
        pred = model.predict_members(cands)
        gen = np.random.default_rng(rng.getrandbits(63))  # from the checkpointed generator: resumable
        acq = acquisition(pred.mean(axis=0), pred.std(axis=0), self.hp["acquisition"], gen,
                          max(s for _, s in scored), self.hp["ucb_beta"])
        order = np.argsort(-acq, kind="stable")
        return [cands[i] for i in order[:n]]

    def state(self) -> dict[str, Any]:
        return {"fits": self.fits}

    def load_state(self, state: dict[str, Any]) -> None:
        self.fits = int(state["fits"])

    def extra_metrics(self) -> dict[str, Any]:
        return {"surrogate_fits": self.fits}
