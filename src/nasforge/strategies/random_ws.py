"""random-ws: random search with weight sharing, the baseline MANAS is compared against.

Training is MANAS without learning: every step samples one op per edge uniformly at random and trains
only that path on a search-train batch (same supernet, optimiser, schedule and budget as the other
one-shot strategies). No validation batch is spent during training: uniform agents ignore feedback.

Choosing the final architecture (after Li & Talwalkar 2019, "Random search and reproducibility for
NAS"): sample ``candidates`` architectures, score each with the shared weights on the first
``candidate_batches`` search-val batches, re-score the ``top_k`` best on ``rerank_batches`` batches,
and return the one with the lowest validation cross-entropy. Every candidate sees the same batches,
and BN uses batch statistics (the running statistics mix many random paths); BN buffers are restored
afterwards, so choosing never changes the supernet. The choice is a deterministic function of the
weights and the number of steps trained, and is cached for that step count. It runs once, at the end
of the search (in the last epoch's diagnostics, whose result the final call reuses), so that random-ws
spends its wall-clock budget on training like the other methods; ``select_every=n`` also runs it after
every n-th epoch, to follow the chosen arch over time (each selection costs about candidates x
candidate_batches + top_k x rerank_batches forward passes). Epoch records without a fresh selection
repeat the last one (``selected_at_step`` tells which); before the first selection they show an
unscored uniform sample.

Candidates are drawn from the space's architectures: on nb201 a uniform op per edge (`none`
included); on darts with ``top2`` (the default) a DARTS genotype, i.e. per node two distinct inputs
with a non-`none` op each, evaluated as the path that sets every other edge to `none`; with
``top2=False`` a uniform op on all 14 edges, as in training.
"""
from __future__ import annotations

from itertools import islice
from typing import Any

import numpy as np

from ..options import Opt
from ..errors import ConfigError
from ..registry import STRATEGIES
from ..supernet import Supernet
from ..engine.bandits import AgentPopulation, UniformAgents
from ..engine.base import SearchContext
from ..engine.paths import PATH_DEFAULTS, PathSamplingStrategy, batch_statistics, path_to_arch, score_path

_SELECT_STREAM = 0x73656C  # "sel"
_SELECT_EPOCH = 20_000  # the val loader epoch whose batches score candidates (distinct from diagnostics')


@STRATEGIES.register("random-ws", help="random search with weight sharing: uniform paths, then best of M sampled "
                                       "architectures on validation batches")
class RandomWS(PathSamplingStrategy):
    name = "random-ws"
    feedback = False
    second_stream = None
    defaults = {**PATH_DEFAULTS, "candidates": Opt(50, ">=1"), "candidate_batches": Opt(1, ">=1"),
                "top_k": Opt(5, ">=1"), "rerank_batches": Opt(4, ">=1"), "select_every": Opt(0, ">=0")}

    def make_agents(self, n_agents: int, n_arms: int, horizon: int) -> AgentPopulation:
        return UniformAgents(n_agents, n_arms)

    def check_hparams(self) -> None:
        super().check_hparams()
        for key in ("candidates", "candidate_batches", "top_k", "rerank_batches", "select_every"):
            v, low = self.hp[key], 0 if key == "select_every" else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ConfigError(f"random-ws {key} must be an integer >= {low}, got {v!r}")

    def setup(self, supernet: Supernet, ctx: SearchContext) -> None:
        super().setup(supernet, ctx)
        self._sample_pruned = supernet.sample_pruned_actions  # genotypes of the pruned (top2) form
        self._selection: dict[str, Any] | None = None
        self._defer = False  # True while an epoch's diagnostics must not pay for a selection

    # -- choosing the architecture ----------------------------------------------------------------
    def sample_candidate(self, rng: np.random.Generator) -> np.ndarray:
        """One architecture as a flat action vector (see the module docstring for the distribution)."""
        if not self.top2:
            return rng.integers(0, self.n_arms, int(self.bounds[-1]))
        return np.concatenate(self._sample_pruned(rng)).astype(np.int64)

    def select(self, supernet: Supernet, ctx: SearchContext) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, _SELECT_STREAM, self.steps_done])
        seen: dict[tuple[int, ...], np.ndarray] = {}
        for _ in range(self.hp["candidates"]):
            a = self.sample_candidate(rng)
            seen.setdefault(tuple(a.tolist()), a)
        candidates = list(seen.values())
        _, val_loader = ctx.data.loaders(ctx.seed)
        val_loader.set_epoch(_SELECT_EPOCH)
        batches = list(islice(val_loader, max(self.hp["candidate_batches"], self.hp["rerank_batches"])))
        with batch_statistics(supernet):  # see the module docstring
            first = [score_path(supernet, self.actions_to_path(a), batches[: self.hp["candidate_batches"]])
                     for a in candidates]
            order = np.argsort([s[0] for s in first], kind="stable")[: self.hp["top_k"]]
            rerank = batches[: self.hp["rerank_batches"]]
            final = [(score_path(supernet, self.actions_to_path(candidates[i]), rerank), i) for i in order]
        (val_loss, val_acc), best = min(final, key=lambda t: t[0][0])
        path = self.actions_to_path(candidates[best])
        return {"step": self.steps_done, "arch": path_to_arch(supernet, path, top2=self.top2), "path": path,
                "val_loss": val_loss, "val_accuracy": val_acc, "evaluated": len(candidates)}

    def derive(self, supernet: Supernet, ctx: SearchContext) -> Any:
        fresh = self._selection is not None and self._selection["step"] == self.steps_done
        if not fresh and not self._defer:
            self._selection = self.select(supernet, ctx)
        if self._selection is None:  # diagnostics before the first selection: an unscored uniform sample
            rng = np.random.default_rng([self.seed, _SELECT_STREAM])
            return path_to_arch(supernet, self.actions_to_path(self.sample_candidate(rng)), top2=self.top2)
        return self._selection["arch"]

    def _diagnostics(self, supernet, ctx, val_loader, epoch):
        every = self.hp["select_every"]
        last = epoch + 1 >= ctx.budget.epochs or ctx.out_of_time()
        self._defer = not (last or (every and (epoch + 1) % every == 0))
        try:
            return super()._diagnostics(supernet, ctx, val_loader, epoch)
        finally:
            self._defer = False

    # -- reporting ------------------------------------------------------------------------------------
    def epoch_diagnostics(self, supernet, ctx, val_batch) -> dict[str, Any]:
        sel = self._selection or {}
        return {"selected_val_loss": sel.get("val_loss"), "selected_val_accuracy": sel.get("val_accuracy"),
                "candidates_evaluated": sel.get("evaluated"), "selected_at_step": sel.get("step")}

    def summary(self) -> dict[str, Any]:
        sel = self._selection or {}
        return {"candidates_evaluated": sel.get("evaluated"), "selected_val_loss": sel.get("val_loss"),
                "selected_val_accuracy": sel.get("val_accuracy"), "steps": self.steps_done}

    def write_plots(self, history, folder) -> list[str]:
        return []  # the policies are uniform by construction: nothing to plot
