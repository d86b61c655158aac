"""Turn architectures into token arrays for the surrogate predictors.

An architecture is a sequence of *groups* (a PNAS block, an NB201 edge, a macro layer); each group has the
same number of *slots*, and every slot draws its token from one of a few embedding tables. PNAS blocks have
4 slots ``(I1, I2, O1, O2)``: two input tokens sharing the input table and two op tokens sharing the op table
(spec 1.4). Cells of different sizes are padded to a common number of groups; ``lengths`` says how many
groups are real.

Spaces with a fixed edge or layer list (NB201, NAS-Bench-Macro) have one group per position with two slots:
the (position, choice) pair, so that the MLP's average over groups keeps which op sits on which edge, and
the choice alone, shared by all positions, so that what is learnt about an op on one edge carries over to
the others (the edges of a grown prefix the predictor has not seen assigned yet).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError


@dataclass
class TokenBatch:
    """Token ids of n architectures: ``tokens`` (n, groups, slots) int64 padded with 0, ``lengths`` (n,)."""

    tokens: np.ndarray
    lengths: np.ndarray

    def __post_init__(self) -> None:
        self.tokens = np.ascontiguousarray(self.tokens, dtype=np.int64)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if self.tokens.ndim != 3 or self.lengths.shape != (self.tokens.shape[0],):
            raise ValueError(f"tokens must be (n, groups, slots) and lengths (n,), got {self.tokens.shape} and {self.lengths.shape}")

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def take(self, index: np.ndarray | Sequence[int] | slice) -> "TokenBatch":
        return TokenBatch(self.tokens[index], self.lengths[index])

    @staticmethod
    def concat(batches: Sequence["TokenBatch"]) -> "TokenBatch":
        """Stack batches, padding to the largest number of groups."""
        if not batches:
            raise ValueError("nothing to concatenate")
        groups = max(b.tokens.shape[1] for b in batches)
        tokens = [np.pad(b.tokens, ((0, 0), (0, groups - b.tokens.shape[1]), (0, 0))) for b in batches]
        return TokenBatch(np.concatenate(tokens), np.concatenate([b.lengths for b in batches]))


class Tokenizer(ABC):
    """Maps an architecture (the space's JSON form) to a (groups, slots) int array."""

    #: embedding table used by each slot of a group
    slot_tables: tuple[int, ...] = ()
    #: vocabulary size of each table
    table_sizes: tuple[int, ...] = ()

    @abstractmethod
    def encode(self, arch: Any) -> np.ndarray:
        """(groups, slots) token ids of one architecture."""

    def batch(self, archs: Sequence[Any]) -> TokenBatch:
        encoded = [self.encode(a) for a in archs]
        if not encoded:
            return TokenBatch(np.zeros((0, 1, len(self.slot_tables)), np.int64), np.zeros(0, np.int64))
        groups = max(e.shape[0] for e in encoded)
        tokens = np.zeros((len(encoded), groups, len(self.slot_tables)), np.int64)
        for i, e in enumerate(encoded):
            tokens[i, : e.shape[0]] = e
        return TokenBatch(tokens, np.array([e.shape[0] for e in encoded]))


class PNASTokenizer(Tokenizer):
    """PNAS cells: per block the tokens I1, I2 (input table, B + 1 entries) and O1, O2 (op table)."""

    slot_tables = (0, 0, 1, 1)

    def __init__(self, ops: Sequence[str], max_blocks: int) -> None:
        self.ops = tuple(ops)
        self.max_blocks = max_blocks
        self.op_index = {o: i for i, o in enumerate(self.ops)}
        self.table_sizes = (max_blocks + 1, len(self.ops))

    def block_tokens(self, blocks: Sequence[Sequence[Any]]) -> np.ndarray:
        """(n_blocks, 4) tokens of blocks given as (in1, op1, in2, op2)."""
        return np.array([[b[0], b[2], self.op_index[b[1]], self.op_index[b[3]]] for b in blocks],
                        dtype=np.int64).reshape(-1, 4)

    def encode(self, arch: Any) -> np.ndarray:
        return self.block_tokens(arch)


class PositionChoiceTokenizer(Tokenizer):
    """Fixed-length architectures (NB201 edges, macro layers): per position the tokens
    (position * n_choices + choice) from the pair table and (choice) from the choice table."""

    slot_tables = (0, 1)

    def __init__(self, n_positions: int, n_choices: int, choices_of: Any) -> None:
        self.n_positions, self.n_choices = n_positions, n_choices
        self.choices_of = choices_of  # arch -> sequence of n_positions choice indices
        self.table_sizes = (n_positions * n_choices, n_choices)

    def encode(self, arch: Any) -> np.ndarray:
        choices = np.asarray(self.choices_of(arch), dtype=np.int64)
        return np.stack([np.arange(self.n_positions) * self.n_choices + choices, choices], axis=1)


def tokenizer_for(space: Any) -> Tokenizer:
    """The tokenizer of a search space: (position, choice) tokens for a space with a categorical encoding
    (`SearchSpace.categorical()`, e.g. nb201, macro), block tokens for a space of PNAS block cells (one
    with `op_names` and `max_blocks`). Raises ConfigError for any other space."""
    encoding = space.categorical()
    if encoding is not None:
        return PositionChoiceTokenizer(encoding.positions, encoding.choices, encoding.encode)
    if space.block_cells:
        return PNASTokenizer(space.op_names, space.max_blocks)
    raise ConfigError(f"no surrogate tokenizer for space '{space.name}'; the surrogate predictors "
                      "support spaces with a categorical encoding (nb201, macro) and PNAS block cells")
