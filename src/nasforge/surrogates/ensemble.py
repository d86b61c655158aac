"""The PNAS surrogate ensemble: M predictors, each refit from scratch on a random 4/5 of all data (spec 1.4).

Every `fit` starts from fresh weights: the paper found refitting on all data collected so far lower in
variance than fine-tuning. The prediction is the members' mean. Given the same seed and the same data the
fit is bit-for-bit repeatable (member initialisation, subsets and training use generators derived from
``(seed, number of data points)``), so a resumed search refits to exactly the model it had.

Targets: the paper regresses accuracies in [0, 1] with a sigmoid output and an L1 loss. With
``normalize=True`` (default) targets are first mapped affinely so the data span [0.25, 0.75], which makes any
score scale (e.g. accuracies in %) work, leaves room to predict better cells than seen so far, and keeps
rankings unchanged.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..errors import ConfigError, choices_message
from .models import LSTMPredictor, MLPMembers
from .tokenizers import TokenBatch, Tokenizer

KINDS = ("mlp", "lstm")
#: Adam steps, learning rates and batch sizes (None = full batch). The MLP is cheap enough for full batches;
#: the LSTM (100 hidden units over up to 20 tokens) takes mini-batches to stay within seconds on a CPU.
DEFAULT_STEPS = {"mlp": 200, "lstm": 150}
DEFAULT_LR = {"mlp": 1e-2, "lstm": 1e-2}
BATCH_SIZE = {"mlp": None, "lstm": 64}


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Use torch's global generator with `seed` without disturbing anyone else's random stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """The predictors are tiny: on a shared CPU one thread trains them several times faster than two."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Ensemble:
    """Surrogate ensemble over a space's tokens.

    `kind` is "mlp" (block-averaged embeddings, the paper's headline predictor) or "lstm"; `members=1,
    subsample=1.0` gives a single predictor trained on all data.
    """

    def __init__(self, tokenizer: Tokenizer, kind: str = "mlp", members: int = 5, subsample: float = 0.8,
                 embed_dim: int = 100, hidden: int = 100, steps: int | None = None, lr: float | None = None,
                 weight_decay: float = 1e-4, normalize: bool = True, seed: int = 0) -> None:
        if kind not in KINDS:
            raise ConfigError(choices_message("surrogate kind", str(kind), list(KINDS)))
        if not isinstance(members, int) or members < 1:
            raise ConfigError(f"surrogate ensemble needs members >= 1, got {members!r}")
        if not 0.0 < subsample <= 1.0:
            raise ConfigError(f"surrogate subsample must be in (0, 1], got {subsample!r}")
        self.tokenizer, self.kind, self.members, self.subsample = tokenizer, kind, members, subsample
        self.embed_dim, self.hidden = embed_dim, hidden
        self.steps = steps if steps is not None else DEFAULT_STEPS[kind]
        self.lr = lr if lr is not None else DEFAULT_LR[kind]
        self.weight_decay, self.normalize, self.seed = weight_decay, normalize, seed
        self._mlp: MLPMembers | None = None
        self._lstms: list[LSTMPredictor] = []
        self._lo, self._span = 0.0, 1.0
        self.n_fit = 0

    # -- data ---------------------------------------------------------------------------------
    def _batch(self, data: TokenBatch | Sequence[Any]) -> TokenBatch:
        return data if isinstance(data, TokenBatch) else self.tokenizer.batch(list(data))

    @property
    def fitted(self) -> bool:
        return self.n_fit > 0

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, data: TokenBatch | Sequence[Any], scores: Sequence[float]) -> "Ensemble":
        """Refit every member from scratch on its own random `subsample` share of all (arch, score) data."""
        batch = self._batch(data)
        y = np.asarray(scores, dtype=np.float64)
        if len(batch) != len(y) or len(y) == 0:
            raise ConfigError(f"surrogate fit needs one score per architecture and at least one, got {len(batch)} "
                              f"architectures and {len(y)} scores")
        if not np.isfinite(y).all():
            raise ConfigError("surrogate fit got non-finite scores; drop failed trials first")
        if self.normalize:
            lo, hi = float(y.min()), float(y.max())
            self._span = (hi - lo) / 0.5 if hi > lo else 1.0
            self._lo = lo - 0.25 * self._span  # data span [0.25, 0.75] of the sigmoid's range
        elif y.min() < 0 or y.max() > 1:
            raise ConfigError("with normalize=False surrogate targets must lie in [0, 1] (accuracy fractions)")
        target = torch.tensor((y - self._lo) / self._span, dtype=torch.float32)  # host: the PNAS surrogate is fitted on the CPU
        n = len(y)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, n]))
        take = max(1, int(round(self.subsample * n)))
        masks = np.zeros((self.members, n), np.float32)
        for m in range(self.members):
            masks[m, rng.permutation(n)[:take]] = 1.0
        member_seeds = rng.integers(0, 2**31 - 1, size=self.members)
        tokens, lengths = torch.from_numpy(batch.tokens), torch.from_numpy(batch.lengths)  # host: the PNAS surrogate is fitted on the CPU
        if self.kind == "mlp":
            with _seeded(int(member_seeds[0])):
                self._mlp = MLPMembers(self.members, self.tokenizer.slot_tables, self.tokenizer.table_sizes,
                                       self.embed_dim, self.hidden)
            bag = self._mlp.bag(tokens, lengths)
            self._train(self._mlp, lambda i: self._mlp.forward_bag(bag if i is None else bag[i]), target,
                        torch.from_numpy(masks), int(member_seeds[0]))  # host: the PNAS surrogate is fitted on the CPU
        else:
            self._lstms = []
            for m in range(self.members):
                sel = torch.from_numpy(np.flatnonzero(masks[m]))  # host: the PNAS surrogate is fitted on the CPU
                with _seeded(int(member_seeds[m])):
                    model = LSTMPredictor(self.tokenizer.slot_tables, self.tokenizer.table_sizes, self.embed_dim,
                                          self.hidden)
                t, ln = tokens[sel], lengths[sel]
                self._train(model, lambda i: model(t if i is None else t[i], ln if i is None else ln[i]).unsqueeze(0),
                            target[sel], torch.ones(1, len(sel)), int(member_seeds[m]))  # host: the PNAS surrogate is fitted on the CPU
                self._lstms.append(model)
        self.n_fit += 1
        return self

    def _train(self, model: torch.nn.Module, forward: Any, target: torch.Tensor, masks: torch.Tensor,
               seed: int) -> None:
        """Adam on the L1 loss of sigmoid outputs; each member (row of masks) learns only from its data.
        `forward(index)` returns (members, len(index)) logits, all rows when index is None."""
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        n, batch = target.shape[0], BATCH_SIZE[self.kind]
        gen = torch.Generator().manual_seed(seed)  # host: the PNAS surrogate is fitted on the CPU
        model.train()
        with _threads(1):
            for _ in range(self.steps):
                index = None if batch is None or batch >= n else torch.randint(n, (batch,), generator=gen)  # host: the PNAS surrogate is fitted on the CPU
                t, m = (target, masks) if index is None else (target[index], masks[:, index])
                opt.zero_grad()
                pred = torch.sigmoid(forward(index))  # (M, batch)
                # members are independent, so the sum of their losses trains each on its own data
                loss = ((pred - t).abs() * m).sum(dim=1).div(m.sum(dim=1).clamp(min=1)).sum()
                loss.backward()
                opt.step()
        model.eval()

    # -- prediction ---------------------------------------------------------------------------
    @torch.no_grad()
    def predict_members(self, data: TokenBatch | Sequence[Any], chunk: int = 32768) -> np.ndarray:
        """(members, n) predictions in the score's units."""
        if not self.fitted:
            raise ConfigError("the surrogate ensemble has not been fitted yet")
        batch = self._batch(data)
        out = np.empty((self.members, len(batch)), np.float64)
        for start in range(0, len(batch), chunk):
            part = batch.take(slice(start, start + chunk))
            tokens, lengths = torch.from_numpy(part.tokens), torch.from_numpy(part.lengths)  # host: the PNAS surrogate is fitted on the CPU
            if self.kind == "mlp":
                logits = self._mlp(tokens, lengths)
            else:
                logits = torch.stack([m(tokens, lengths) for m in self._lstms])
            out[:, start:start + len(part)] = torch.sigmoid(logits).double().numpy()  # host: the PNAS surrogate is fitted on the CPU
        return self._lo + self._span * out

    def predict(self, data: TokenBatch | Sequence[Any], chunk: int = 32768) -> np.ndarray:
        """(n,) ensemble-mean predictions in the score's units."""
        return self.predict_members(data, chunk).mean(axis=0)
