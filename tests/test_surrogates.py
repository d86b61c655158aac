"""Surrogate predictors: tokens, the MLP's block average, ensemble refits, determinism, the oracle."""
import random

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from nasforge.errors import ConfigError
from nasforge.spaces.pnas import PNASSpace, expand, one_block_cells, validate_cell
from nasforge.surrogates import Ensemble, MLPMembers, PNASTokenizer, TokenBatch, tokenizer_for
from nasforge.surrogates.oracle import SyntheticCellOracle


@pytest.fixture(scope="module")
def data():
    """Oracle-scored 1- and 2-block cells of the reduced 4-op space (small and fast)."""
    oracle = SyntheticCellOracle("reduced", max_blocks=3, seed=0)
    rng = random.Random(0)
    ones = one_block_cells("reduced")
    twos = [c for p in rng.sample(ones, 12) for c in rng.sample(expand(p, "reduced"), 10)]
    cells = ones + twos
    return oracle, cells, np.array([oracle.score(c) for c in cells])


def tok():
    return PNASTokenizer(("identity", "sep_conv_3x3", "sep_conv_5x5", "max_pool_3x3"), 3)


def test_tokens_padding_and_batches():
    t = tok()
    cell = validate_cell([[1, "max_pool_3x3", 0, "identity"], [2, "sep_conv_3x3", 1, "sep_conv_5x5"]], "reduced")
    assert t.encode(cell).tolist() == [[0, 1, 0, 3], [1, 2, 2, 1]]  # I1, I2, O1, O2 per block
    b = t.batch([cell, cell[:1]])
    assert b.tokens.shape == (2, 2, 4) and b.lengths.tolist() == [2, 1] and b.tokens[1, 1].tolist() == [0, 0, 0, 0]
    both = TokenBatch.concat([t.batch([cell[:1]]), b])
    assert both.tokens.shape == (3, 2, 4) and both.lengths.tolist() == [1, 2, 1]
    assert t.slot_tables == (0, 0, 1, 1) and t.table_sizes == (4, 4)  # two shared tables (spec 1.4)


def test_mlp_equals_mlp_of_block_averaged_concatenated_embeddings():
    """The bag-of-tokens forward is the spec's MLP: embed, concatenate per block, average over blocks."""
    torch.manual_seed(0)
    t = tok()
    m = MLPMembers(2, t.slot_tables, t.table_sizes, embed_dim=5, hidden=7)
    cells = [validate_cell([[0, "identity", 1, "sep_conv_3x3"], [2, "max_pool_3x3", 0, "sep_conv_5x5"]], "reduced"),
             validate_cell([[1, "sep_conv_5x5", 1, "sep_conv_5x5"]], "reduced")]
    b = t.batch(cells)
    out = m(torch.from_numpy(b.tokens), torch.from_numpy(b.lengths))
    for member in range(2):
        for i, cell in enumerate(cells):
            toks = torch.from_numpy(t.encode(cell))
            per_block = torch.cat([m.embeddings[tab][member][toks[:, s]] for s, tab in enumerate(t.slot_tables)], dim=1)
            h = torch.relu(per_block.mean(0) @ m.w1[member] + m.b1[member, 0])
            h = torch.relu(h @ m.w2[member] + m.b2[member, 0])
            assert torch.allclose(out[member, i], (h @ m.w3[member] + m.b3[member, 0])[0], atol=1e-5)


def test_ensemble_refit_is_deterministic_from_scratch_and_uses_all_data(data):
    oracle, cells, y = data
    t = tok()
    fit = lambda e, n: e.fit(cells[:n], y[:n])  # noqa: E731
    a = fit(Ensemble(t, steps=60, seed=1), len(cells))
    b = fit(Ensemble(t, steps=60, seed=1), len(cells))
    np.testing.assert_array_equal(a.predict(cells), b.predict(cells))  # same seed + data -> same model
    c = fit(Ensemble(t, steps=60, seed=2), len(cells))
    assert not np.allclose(a.predict(cells), c.predict(cells))  # the seed matters
    # refitting starts from scratch: fit(less data) then fit(all data) == fit(all data) alone
    d = fit(fit(Ensemble(t, steps=60, seed=1), 50), len(cells))
    np.testing.assert_array_equal(d.predict(cells), a.predict(cells))
    assert d.n_fit == 2
    # ... and the data changed what it learnt
    e = fit(Ensemble(t, steps=60, seed=1), 50)
    assert not np.allclose(e.predict(cells), a.predict(cells))
    members = a.predict_members(cells)
    assert members.shape == (5, len(cells)) and np.allclose(members.mean(0), a.predict(cells))
    assert members.std(0).mean() > 0  # members saw different 4/5 subsets


def test_ensemble_extrapolates_to_larger_cells_and_handles_any_score_scale(data):
    oracle, cells, y = data
    t = tok()
    e = Ensemble(t, steps=150, seed=0).fit(cells, 100 * y)  # percent scores
    rng = random.Random(1)
    threes = [c for p in rng.sample(cells[36:], 10) for c in rng.sample(expand(p, "reduced"), 10)]
    truth = np.array([oracle.score(c) for c in threes])
    pred = e.predict(threes)
    assert spearmanr(pred, truth)[0] > 0.3
    assert 0 < pred.min() and pred.max() < 150


def test_lstm_ensemble_fits_and_is_deterministic(data):
    oracle, cells, y = data
    t = tok()
    kw = dict(kind="lstm", members=2, embed_dim=8, hidden=8, steps=15, seed=0)
    a = Ensemble(t, **kw).fit(cells[:60], y[:60])
    b = Ensemble(t, **kw).fit(cells[:60], y[:60])
    np.testing.assert_array_equal(a.predict(cells), b.predict(cells))
    assert np.isfinite(a.predict(cells)).all()


def test_ensemble_errors():
    t = tok()
    with pytest.raises(ConfigError, match="unknown surrogate kind"):
        Ensemble(t, kind="gp")
    with pytest.raises(ConfigError, match="not been fitted"):
        Ensemble(t).predict([[[0, "identity", 0, "identity"]]])
    with pytest.raises(ConfigError, match="non-finite"):
        Ensemble(t).fit([[[0, "identity", 0, "identity"]]], [float("nan")])
    with pytest.raises(ConfigError, match="one score per architecture"):
        Ensemble(t).fit([[[0, "identity", 0, "identity"]]], [0.1, 0.2])
    from nasforge.spaces.darts import DartsSpace

    with pytest.raises(ConfigError, match="no surrogate tokenizer for space 'darts'"):
        tokenizer_for(DartsSpace())  # neither a categorical encoding nor PNAS block cells


def test_tokenizers_of_table_spaces():
    from nasforge.spaces.macro import MacroSpace
    from nasforge.spaces.nb201 import NB201Space

    nb = tokenizer_for(NB201Space())
    arch = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    assert nb.encode(arch).tolist() == [[3, 3], [5, 0], [11, 1], [19, 4], [22, 2], [25, 0]]  # (edge*5+op, op)
    mac = tokenizer_for(MacroSpace())
    assert mac.encode("01220120")[:, 1].tolist() == [0, 1, 2, 2, 0, 1, 2, 0]
    assert tokenizer_for(PNASSpace(blocks=5)).table_sizes == (6, 8)


def test_oracle_is_deterministic_and_prefix_correlated():
    oracle = SyntheticCellOracle(max_blocks=3, seed=3)
    cell = validate_cell([[0, "identity", 1, "sep_conv_3x3"], [2, "max_pool_3x3", 0, "sep_conv_5x5"]])
    assert oracle.score(cell) == SyntheticCellOracle(max_blocks=3, seed=3).score(cell)
    assert 0 < oracle.score(cell) < 1
    s = oracle.sample_scores(5000, 3, seed=0)
    assert s.std() > 0.05 and 0.01 < s.mean() < 0.99
    # a parent's score predicts its children's mean score
    rng = random.Random(0)
    parents = rng.sample(one_block_cells(), 40)
    parent_scores = [oracle.score(p) for p in parents]
    child_means = [oracle.score_tokens(oracle.tokenizer.batch(expand(p))).mean() for p in parents]
    assert spearmanr(parent_scores, child_means)[0] > 0.5
