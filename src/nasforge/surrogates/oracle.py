"""A synthetic accuracy for PNAS cells with the property PNAS exploits (spec 1.8 tier A).

    acc(cell) = sigmoid( sum_blocks [u(op1, in1) + u(op2, in2) + v(op1, op2)]
                         + sum_{pairs of blocks} w(ops of one block, ops of the other) + eps )

with fixed random tables u, v, w and eps ~ N(0, noise) fixed per cell. A (b+1)-block cell's logit is its
b-block prefix's plus the new block's terms, so good prefixes predict good children. It tests the plumbing
of a search (canonicalisation, expansion, beam, surrogate refits), not the paper's claims.

`OracleEstimator` exposes it as an estimator (``ctx.evaluate`` runs it through an executor and a journal).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..estimators.base import Estimator
from ..spaces.base import Arch, SearchSpace
from ..spaces.pnas import PNAS_OP_NAMES, check_ops, validate_cell
from .tokenizers import PNASTokenizer, TokenBatch

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A fixed, well-mixed hash of uint64 values (vectorised); wraps modulo 2^64 by design."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class SyntheticCellOracle:
    """Deterministic given (ops, max_blocks, seed, noise); `score` is a value in (0, 1)."""

    def __init__(self, ops: str | Sequence[str] = PNAS_OP_NAMES, max_blocks: int = 3, seed: int = 0,
                 noise: float = 0.01) -> None:
        self.ops = check_ops(ops)
        self.max_blocks, self.seed, self.noise = max_blocks, seed, noise
        self.tokenizer = PNASTokenizer(self.ops, max_blocks)
        rng = np.random.default_rng(seed)
        n_ops, n_inputs = len(self.ops), max_blocks + 1
        # scales keep a 3-block cell's logit within a few units, so the sigmoid does not saturate
        self.u = rng.normal(0.0, 0.25, (n_ops, n_inputs))
        v = rng.normal(0.0, 0.15, (n_ops, n_ops))
        w = rng.normal(0.0, 0.08, (n_ops, n_ops))
        self.v, self.w = (v + v.T) / 2, (w + w.T) / 2  # symmetric: the halves of a block are unordered

    def _noise(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        # one N(0, noise) draw per cell, from a hash of its tokens, so every cell always gets the same value
        n, groups, slots = tokens.shape
        code = np.full(n, np.uint64(self.seed), dtype=np.uint64)
        flat = tokens.reshape(n, -1).astype(np.uint64)
        for j in range(flat.shape[1]):
            code = _splitmix64(code ^ (flat[:, j] + np.uint64(j * 1000003)))
        code = _splitmix64(code ^ lengths.astype(np.uint64))
        u1 = ((code >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
        u2 = ((_splitmix64(code) >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
        return self.noise * np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)

    def score_tokens(self, batch: TokenBatch) -> np.ndarray:
        """Scores of many cells at once (e.g. 200k samples for the top-1% threshold)."""
        t, lengths = batch.tokens, batch.lengths
        i1, i2, o1, o2 = t[..., 0], t[..., 1], t[..., 2], t[..., 3]
        real = np.arange(t.shape[1])[None, :] < lengths[:, None]
        per_block = (self.u[o1, i1] + self.u[o2, i2] + self.v[o1, o2]) * real
        logit = per_block.sum(axis=1)
        for k in range(t.shape[1]):
            for m in range(k + 1, t.shape[1]):
                both = real[:, k] & real[:, m]
                pair = (self.w[o1[:, k], o1[:, m]] + self.w[o1[:, k], o2[:, m]]
                        + self.w[o2[:, k], o1[:, m]] + self.w[o2[:, k], o2[:, m]])
                logit = logit + pair * both
        return 1.0 / (1.0 + np.exp(-(logit + self._noise(t, lengths))))

    def score(self, arch: Arch) -> float:
        cell = validate_cell(arch, self.ops, self.max_blocks)
        return float(self.score_tokens(self.tokenizer.batch([cell]))[0])

    def sample_scores(self, n: int, blocks: int, seed: int = 0) -> np.ndarray:
        """Scores of n uniformly random canonical `blocks`-block cells (vectorised)."""
        from ..spaces.pnas import canonical_blocks

        rng = np.random.default_rng(seed)
        cols = []
        for k in range(1, blocks + 1):
            table = self.tokenizer.block_tokens(canonical_blocks(k, self.ops))
            cols.append(table[rng.integers(0, len(table), n)])
        return self.score_tokens(TokenBatch(np.stack(cols, axis=1), np.full(n, blocks)))


@functools.lru_cache(maxsize=16)
def _oracle(ops: tuple[str, ...], max_blocks: int, seed: int, noise: float) -> SyntheticCellOracle:
    return SyntheticCellOracle(ops, max_blocks, seed, noise)


def run_trial(spec: dict[str, Any], threads: int = 1) -> dict[str, Any]:
    """Trial function of OracleEstimator."""
    oracle = _oracle(tuple(spec["ops"]), int(spec["max_blocks"]), int(spec["oracle_seed"]), float(spec["noise"]))
    return {"score": oracle.score(spec["arch"])}


class OracleEstimator(Estimator):
    """Scores PNAS cells with `SyntheticCellOracle` (tests and benchmarks; not registered for the CLI)."""

    name = "oracle"
    trial_fn = "nasforge.surrogates.oracle:run_trial"
    runs_in_process = True

    def __init__(self, seed: int = 0, noise: float = 0.01) -> None:
        self.seed, self.noise = seed, noise

    def trial_spec(self, space: SearchSpace, arch: Arch, seed: int) -> dict[str, Any]:
        if not space.block_cells:
            raise ConfigError(f"the oracle estimator scores PNAS block cells only, not space '{space.name}'")
        return {"oracle_seed": self.seed, "noise": self.noise, "ops": list(space.op_names),
                "max_blocks": space.max_blocks, "arch": space.validate(arch)}

    def oracle(self, space: SearchSpace) -> SyntheticCellOracle:
        return _oracle(tuple(space.op_names), space.max_blocks, self.seed, self.noise)
