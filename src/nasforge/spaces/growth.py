"""How a space's architectures grow step by step, for progressive search (PNAS): a space declares its growth
(`SearchSpace.growth()`): by its categorical encoding (`CategoricalGrowth`, e.g. nb201, macro) or, for PNAS
block cells, block by block (`nasforge.spaces.pnas.BlockGrowth`). Strategies never know which.

This module imports no space module (the spaces import it), so types of spaces are written `Any`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..surrogates.tokenizers import TokenBatch, Tokenizer, tokenizer_for

Arch = Any
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
    #: a child can be a cell scored at an earlier step (e.g. an undecided position equals a choice), so a
    #: trial budget cannot be checked against the growth steps up front
    children_can_repeat: bool = False

    @abstractmethod
    def roots(self) -> list[Partial]:
        """All architectures of step 1."""

    @abstractmethod
    def expand(self, parents: Sequence[Partial]) -> Candidates:
        """All children (one step further) of the parents, which are distinct and of the same step."""

    @abstractmethod
    def arch(self, partial: Partial) -> Arch:
        """The architecture that is scored for a partial one (canonical JSON of the space)."""


class _ListGrowth(Growth):
    """Growth of a fixed-length architecture by assigning positions in steps; children are materialised."""

    children_can_repeat = True

    def __init__(self, space: Any, step_positions: Sequence[Sequence[int]], n_choices: int) -> None:
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

    def __init__(self, space: Any, encoding: Any) -> None:
        steps = encoding.growth_steps or tuple((i,) for i in range(encoding.positions))
        super().__init__(space, steps, encoding.choices)
        self.encoding = encoding
        self.default_K = encoding.beam or Growth.default_K
        self.default_batch_full = encoding.batch_full

    def arch(self, partial: Partial) -> Arch:
        return self.encoding.decode([i if i >= 0 else self.encoding.undecided for i in partial])
