"""The two PNAS predictors (spec 1.4), both ending in one sigmoid unit.

* MLP: embed each slot of a group (a PNAS block: I1, I2 from the input table, O1, O2 from the op table),
  concatenate to a vector per group, **average over groups** (so the input does not grow with the number of
  blocks), two hidden ReLU layers, one sigmoid output.
* LSTM: read the sequence of embedded tokens (4 per block), final hidden state -> linear -> sigmoid.

`MLPMembers` holds all members of an ensemble in one module (parameters with a leading member axis) so
that 5 members train and predict as fast as one. Its first layer is applied to the embeddings before
averaging, which is the same linear map (averaging and a linear layer commute): a cell then is a small
"bag of tokens" vector, and scoring hundreds of thousands of cells is two dense matrix products.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn


def _uniform(shape: Sequence[int], fan_in: int) -> nn.Parameter:
    bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default initialisation
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))  # host: construction


def group_weights(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(n, groups * slots) weights: 1 / length for real groups, 0 for padding (a masked mean)."""
    n, groups, slots = tokens.shape
    real = (torch.arange(groups, device=tokens.device).unsqueeze(0) < lengths.unsqueeze(1)).float()
    w = real / lengths.clamp(min=1).unsqueeze(1).float()
    return w.unsqueeze(2).expand(n, groups, slots).reshape(n, groups * slots)


class MLPMembers(nn.Module):
    """M independent MLP predictors. forward -> (M, n) logits."""

    def __init__(self, members: int, slot_tables: Sequence[int], table_sizes: Sequence[int], embed_dim: int = 100,
                 hidden: int = 100) -> None:
        super().__init__()
        self.members, self.slot_tables, self.embed_dim = members, tuple(slot_tables), embed_dim
        self.table_sizes = tuple(table_sizes)
        self.embeddings = nn.ParameterList(
            [nn.Parameter(torch.randn(members, v, embed_dim)) for v in table_sizes])
        fan_in = len(slot_tables) * embed_dim  # the concatenated per-group vector
        self.w1, self.b1 = _uniform((members, fan_in, hidden), fan_in), _uniform((members, 1, hidden), fan_in)
        self.w2, self.b2 = _uniform((members, hidden, hidden), hidden), _uniform((members, 1, hidden), hidden)
        self.w3, self.b3 = _uniform((members, hidden, 1), hidden), _uniform((members, 1, 1), hidden)
        # token id of slot s lives at offset[s] in the stacked per-slot projection table
        sizes = [table_sizes[t] for t in self.slot_tables]
        self.register_buffer("offsets", torch.tensor([sum(sizes[:s]) for s in range(len(sizes))]), persistent=False)
        self.rows = sum(sizes)

    def bag(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(n, rows) bag of tokens: entry (i, offset[s] + token) holds the weight 1 / length of cell i."""
        n = tokens.shape[0]
        index = (tokens + self.offsets).reshape(n, -1)
        return torch.zeros(n, self.rows, device=tokens.device).scatter_add_(1, index, group_weights(tokens, lengths))

    def forward_bag(self, bag: torch.Tensor) -> torch.Tensor:
        D = self.embed_dim
        # (M, rows, hidden): every token's embedding multiplied by its slot's block of w1, so that
        # bag @ proj = w1 . (mean over groups of the concatenated slot embeddings)
        proj = torch.cat([self.embeddings[t] @ self.w1[:, s * D:(s + 1) * D] for s, t in enumerate(self.slot_tables)],
                         dim=1)
        h = torch.relu(torch.matmul(bag, proj) + self.b1)  # (M, n, hidden)
        h = torch.relu(torch.bmm(h, self.w2) + self.b2)
        return (torch.bmm(h, self.w3) + self.b3).squeeze(2)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_bag(self.bag(tokens, lengths))


class LSTMPredictor(nn.Module):
    """One LSTM predictor over the token sequence (4 tokens per PNAS block). forward -> (n,) logits."""

    def __init__(self, slot_tables: Sequence[int], table_sizes: Sequence[int], embed_dim: int = 100,
                 hidden: int = 100) -> None:
        super().__init__()
        self.slot_tables = tuple(slot_tables)
        self.embeddings = nn.ModuleList([nn.Embedding(v, embed_dim) for v in table_sizes])
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        n, groups, slots = tokens.shape
        x = torch.stack([self.embeddings[t](tokens[:, :, s]) for s, t in enumerate(self.slot_tables)], dim=2)
        x = x.reshape(n, groups * slots, -1)
        steps = lengths * slots
        if bool((steps == groups * slots).all()):
            _, (h, _) = self.lstm(x)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, steps.cpu(), batch_first=True, enforce_sorted=False)
            _, (h, _) = self.lstm(packed)
        return self.head(h[-1]).squeeze(1)
