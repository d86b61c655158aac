"""PNAS: progressive beam search guided by a surrogate ensemble (Liu et al., ECCV 2018; spec 1.3).

    S_1 = all canonical 1-block cells; score them all; fit the ensemble
    for b = 2 .. B:
        candidates = every child (one block appended) of the K cells scored at b - 1
        score the K candidates the ensemble ranks highest; refit the ensemble from scratch on all data
    recommend the best-scored cell

How a space grows is a `Growth`:

* `PNASGrowth` (spaces of PNAS block cells): the paper's algorithm, blocks appended one at a time. Candidate tokens are
  built with numpy broadcasting (parent tokens x new-block tokens), so the ~300k candidates of b = 5 are
  never turned into Python objects; only the K picked ones are.
* `CategoricalGrowth` (a space with a categorical encoding, `SearchSpace.categorical()`): positions are
  decided in the groups the space declares. On nb201 (spec 1.8 tier C, our adaptation) edges are assigned in the fixed order
  0->3, 0->1, 1->3, 0->2, 1->2, 2->3, which connects input to output first; unassigned edges are `none`, so
  every prefix is a real cell of the table. Edges are added in three steps (0->3; then 0->1 and 1->3; then
  0->2, 1->2 and 2->3), each completing a new input-to-output path: an edge into a node that does not yet
  reach the output cannot change the network, so scoring it alone would spend a query on a copy of its
  parent.
  On macro, layers are chosen first to last; undecided layers are identity.

Beyond the paper: the full-size candidates (children of the last beam) can be scored in rounds of
``batch_full`` < K with a refit in between (on the pnas space the default is K, the paper's single round),
and with ``keep_searching`` (default on) a budget larger than the paper's 136 + (B - 1) K goes on scoring
the next-best of them, which makes PNAS an anytime search for query-mode benchmarks. Per round the result records the number of
candidates and the Spearman rank correlation between the ensemble's predictions and the scores of the
cells it picked.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from scipy.stats import spearmanr

from .. import progress
from ..options import Opt
from ..errors import ConfigError
from ..registry import STRATEGIES
from ..spaces.base import Arch, CategoricalEncoding, SearchSpace
from ..surrogates.ensemble import KINDS, Ensemble
from ..surrogates.tokenizers import PNASTokenizer, TokenBatch, Tokenizer, tokenizer_for
from ..engine.base import SearchContext
from ..engine.multitrial import MultiTrialStrategy

Partial = Any  # a growth's own hashable description of a (partly grown) architecture


@dataclass
class Candidates:
    """The children of a beam: their tokens and a way to materialise child i."""

    tokens: TokenBatch
    get: Callable[[int], Partial]

    def __len__(self) -> int:
        return len(self.tokens)


class Growth(ABC):
    """How architectures of a space grow step by step."""

    steps: int
    tokenizer: Tokenizer
    #: beam width and full-size round size used when the strategy's K / batch_full are None
    default_K: int = 256
    default_batch_full: int | None = None  # None: K, one round as in the paper

    @abstractmethod
    def roots(self) -> list[Partial]:
        """All architectures of step 1."""

    @abstractmethod
    def expand(self, parents: Sequence[Partial]) -> Candidates:
        """All children (one step further) of the parents, which are distinct and of the same step."""

    @abstractmethod
    def arch(self, partial: Partial) -> Arch:
        """The architecture that is scored for a partial one (canonical JSON of the space)."""


class PNASGrowth(Growth):
    def __init__(self, space: SearchSpace) -> None:
        from ..spaces.pnas import canonical_blocks, one_block_cells

        self.space, self.steps = space, space.max_blocks
        self.tokenizer = PNASTokenizer(space.op_names, space.max_blocks)
        self._blocks = lambda b: canonical_blocks(b, space.op_names)
        self._roots = one_block_cells(space.op_names)

    def roots(self) -> list[Partial]:
        return list(self._roots)

    def expand(self, parents: Sequence[Partial]) -> Candidates:
        parents = list(parents)
        b = len(parents[0])
        blocks = self._blocks(b + 1)
        new = self.tokenizer.block_tokens(blocks)  # (n_blocks, 4)
        old = np.stack([self.tokenizer.block_tokens(p) for p in parents])  # (P, b, 4)
        tokens = np.concatenate([np.repeat(old, len(blocks), axis=0), np.tile(new, (len(parents), 1))[:, None, :]],
                                axis=1)
        n = len(blocks)
        return Candidates(TokenBatch(tokens, np.full(len(tokens), b + 1)),
                          lambda i: tuple(parents[i // n]) + (blocks[i % n],))

    def arch(self, partial: Partial) -> Arch:
        return [list(blk) for blk in partial]


class _ListGrowth(Growth):
    """Growth of a fixed-length architecture by assigning positions in steps; children are materialised."""

    def __init__(self, space: SearchSpace, step_positions: Sequence[Sequence[int]], n_choices: int) -> None:
        self.space, self.step_positions, self.n_choices = space, [list(s) for s in step_positions], n_choices
        self.steps = len(self.step_positions)
        self.tokenizer = tokenizer_for(space)

    def _assignments(self, step: int) -> list[tuple[int, ...]]:
        k = len(self.step_positions[step])
        return [tuple(int(d) for d in np.unravel_index(i, (self.n_choices,) * k)) for i in range(self.n_choices ** k)]

    def _extend(self, partial: tuple[int, ...], step: int, values: tuple[int, ...]) -> tuple[int, ...]:
        out = list(partial)
        for pos, v in zip(self.step_positions[step], values):
            out[pos] = v
        return tuple(out)

    def _empty(self) -> tuple[int, ...]:
        return (-1,) * sum(len(s) for s in self.step_positions)

    def _step_of(self, partial: tuple[int, ...]) -> int:
        return sum(all(partial[p] >= 0 for p in s) for s in self.step_positions)

    def roots(self) -> list[Partial]:
        return [self._extend(self._empty(), 0, a) for a in self._assignments(0)]

    def expand(self, parents: Sequence[Partial]) -> Candidates:
        step = self._step_of(parents[0])
        children = [self._extend(p, step, a) for p in parents for a in self._assignments(step)]
        return Candidates(self.tokenizer.batch([self.arch(c) for c in children]), children.__getitem__)


class CategoricalGrowth(_ListGrowth):
    """Growth of a space with a categorical encoding (SearchSpace.categorical()): its `growth_steps` decide
    positions in groups; a position not decided yet holds the encoding's `undecided` choice."""

    def __init__(self, space: SearchSpace, encoding: CategoricalEncoding) -> None:
        steps = encoding.growth_steps or tuple((i,) for i in range(encoding.positions))
        super().__init__(space, steps, encoding.choices)
        self.encoding = encoding
        self.default_K = encoding.beam or Growth.default_K
        self.default_batch_full = encoding.batch_full

    def arch(self, partial: Partial) -> Arch:
        return self.encoding.decode([i if i >= 0 else self.encoding.undecided for i in partial])


def growth_for(space: SearchSpace) -> Growth:
    """How `space` grows: by its categorical encoding, or block by block for PNAS block cells."""
    encoding = space.categorical()
    if encoding is not None:
        return CategoricalGrowth(space, encoding)
    if hasattr(space, "max_blocks") and hasattr(space, "op_names"):
        return PNASGrowth(space)
    raise ConfigError(f"strategy 'pnas' grows spaces with a categorical encoding or PNAS block cells; "
                      f"space '{space.name}' has neither")


@STRATEGIES.register("pnas", help="progressive beam search over growing cells, guided by a surrogate ensemble")
class PNAS(MultiTrialStrategy):
    """Hyperparameters:

    * K: beam width (256 in the paper); None = the space's default (Growth.default_K).
    * batch_full: full-size candidates scored per round, with a refit in between; None = the space's
      default (Growth.default_batch_full; K, the paper's single round, on the pnas space).
    * keep_searching: after K full-size cells, go on scoring the next-best ones while the budget lasts.
    * surrogate ("mlp" or "lstm"), members (5), subsample (each member's share of the data, 0.8),
      surrogate_steps / surrogate_lr (None = the ensemble's defaults).
    """

    name = "pnas"
    defaults = {"K": Opt(None, ">=1", type=int, help="null: the space's default"),
                "batch_full": Opt(None, ">=1", type=int, help="null: the space's default"),
                "surrogate": Opt("mlp", choices=KINDS), "members": Opt(5, ">=1"), "subsample": Opt(0.8, "(0, 1]"),
                "surrogate_steps": Opt(None, ">=1", type=int), "surrogate_lr": Opt(None, ">0", type=float),
                "keep_searching": True}

    def setup(self, ctx: SearchContext) -> None:
        K = self.hp["K"]
        if K is not None and (isinstance(K, bool) or not isinstance(K, int) or K < 1):
            raise ConfigError(f"PNAS beam width K must be an integer >= 1 (or None for the space's default), got {K!r}")
        if self.hp["surrogate"] not in KINDS:
            raise ConfigError(f"PNAS surrogate must be one of {', '.join(KINDS)}, got {self.hp['surrogate']!r}")
        self.growth = growth_for(ctx.space)
        self.K = K if K is not None else self.growth.default_K
        b = self.hp["batch_full"]
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise ConfigError(f"PNAS batch_full must be an integer >= 1 (or None for the space's default), got {b!r}")
        self.batch_full = b or self.growth.default_batch_full or self.K
        self.budget_note = self._budget_note(ctx.budget.trials)
        if self.budget_note:
            progress.warn(self.budget_note)  # up front: the result will be a smaller cell than the space's
        self.surrogate = Ensemble(self.growth.tokenizer, kind=self.hp["surrogate"], members=self.hp["members"],
                                  subsample=self.hp["subsample"], steps=self.hp["surrogate_steps"],
                                  lr=self.hp["surrogate_lr"], seed=ctx.seed)
        self.level = 0  # number of growth steps of the current beam (0: nothing scored yet)
        self.beam: list[Partial] = []
        self.final_parents: list[Partial] = []  # the beam whose children have full size
        self.final: Candidates | None = None  # their children
        self.taken: np.ndarray | None = None  # which of those children were already picked
        self.pending: list[tuple[Partial, float | None]] = []  # this round's picks and their predictions
        self.rounds: list[dict[str, Any]] = []

    def _budget_note(self, trials: int | None) -> str | None:
        """A warning when `trials` cannot grow cells to full size: all R one-step cells are scored first, then
        each growth round takes min(K, what is left). None when full size is reachable (or no trial budget)."""
        steps, n_roots = self.growth.steps, len(self.growth.roots())
        if trials is None or steps <= 1:
            return None
        if trials >= n_roots and not isinstance(self.growth, PNASGrowth):
            return None  # a categorical space's children can repeat a cell scored before (free), so count only blocks
        left, size = trials - n_roots, 1
        while left > 0 and size < steps:
            left -= min(self.K, left)
            size += 1
        if size >= steps:
            return None
        needed = n_roots + (steps - 1) * self.K
        scored = f"only {trials} of the {n_roots} one-step cells are scored" if trials < n_roots else \
            f"{trials} trials score the {n_roots} one-step cells" + (f" and {trials - n_roots} more" if trials > n_roots else "")
        return (f"pnas: {scored}, so cells never grow past {size} of {steps} steps (the result is a {size}-step cell); "
                f"the algorithm as designed needs --trials {needed} (K={self.K}), full size at least "
                f"{n_roots + steps - 1}")

    # -- rounds -----------------------------------------------------------------------------
    def _fit(self) -> None:
        scored = [(h["arch"], h["score"]) for h in self.history if h["score"] is not None]
        if not scored:
            raise ConfigError("PNAS: every trial of the previous round failed, so the surrogate has no data")
        self.surrogate.fit([a for a, _ in scored], [s for _, s in scored])

    def _pick(self, cands: Candidates, k: int, exclude: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
        pred = self.surrogate.predict(cands.tokens)
        order = np.argsort(-pred, kind="stable")
        if exclude is not None:
            order = order[~exclude[order]]
        return [int(i) for i in order[:k]], pred

    def propose(self, ctx: SearchContext, rng: random.Random, remaining: int | None) -> list[Arch]:
        budget = remaining if remaining is not None else float("inf")
        record: dict[str, Any] = {"round": self.round}
        if self.level == 0:
            roots = self.growth.roots()
            if len(roots) > budget:  # not even the first step fits: a random share of it
                roots = rng.sample(roots, int(budget))
            self.pending = [(p, None) for p in roots]
            record.update(size=1, candidates=len(roots))
        elif self.level < self.growth.steps - 1:  # a growth round: the K best children of the beam
            self._fit()
            cands = self.growth.expand(self.beam)
            picks, pred = self._pick(cands, int(min(self.K, budget)))
            self.pending = [(cands.get(i), float(pred[i])) for i in picks]
            record.update(size=self.level + 1, candidates=len(cands))
        else:  # full size: the best unscored children of the last beam, `batch_full` per round
            if self.growth.steps == 1:
                return []  # the roots already had full size
            if self.taken is None:
                self.final_parents = list(self.beam)
                self.final = self.growth.expand(self.final_parents)
                self.taken = np.zeros(len(self.final), bool)
            limit = budget if self.hp["keep_searching"] else min(budget, self.K - int(self.taken.sum()))
            n = min(self.batch_full, limit)
            if n <= 0 or self.taken.all():
                return []
            self._fit()
            untaken = int((~self.taken).sum())
            picks, pred = self._pick(self.final, int(n), exclude=self.taken)
            self.taken[picks] = True
            self.pending = [(self.final.get(i), float(pred[i])) for i in picks]
            record.update(size=self.growth.steps, candidates=untaken)
        record["picked"] = len(self.pending)
        self.rounds.append(record)
        return [self.growth.arch(p) for p, _ in self.pending]

    def observe(self, ctx: SearchContext, archs: list[Arch], scores: list[float | None]) -> None:
        picked = [(p, pred, s) for (p, pred), s in zip(self.pending, scores) if s is not None]
        if self.level < self.growth.steps - 1 or self.level == 0:
            self.beam = [p for p, _, _ in picked]  # failed trials leave the beam
            self.level += 1
            if not self.beam:
                raise ConfigError("PNAS: every trial of a round failed; nothing left to expand")
        else:
            self.level = self.growth.steps
        with_pred = [(pred, s) for _, pred, s in picked if pred is not None]
        if len(with_pred) >= 3:
            rho = spearmanr([p for p, _ in with_pred], [s for _, s in with_pred])[0]
            self.rounds[-1]["spearman"] = None if rho != rho else float(rho)
        self.rounds[-1]["scored"] = len(picked)
        ctx.log(event="pnas_round", **self.rounds[-1])
        self.pending = []

    # -- state ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"level": self.level, "beam": self.beam, "final_parents": self.final_parents, "taken": self.taken,
                "rounds": self.rounds}

    def load_state(self, state: dict[str, Any]) -> None:
        self.level, self.beam, self.final_parents = state["level"], state["beam"], state["final_parents"]
        self.taken, self.rounds = state["taken"], state["rounds"]
        if self.final_parents:  # the last expansion is rebuilt, not stored (it can hold 300k candidates)
            self.final = self.growth.expand(self.final_parents)

    def extra_metrics(self) -> dict[str, Any]:
        out = {"K": self.K, "batch_full": self.batch_full, "pnas_rounds": self.rounds}
        if self.budget_note:
            out["budget_note"] = self.budget_note
        return out

