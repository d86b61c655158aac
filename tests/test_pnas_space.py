"""The PNAS cell space (canonical form, enumeration, network, golden PNASNet-5 sizes) and the macro space."""
import itertools
import random

import pytest
import torch

from nasforge.ops.heads import forward_with_aux, take_aux_logits
from nasforge.errors import ConfigError, UserError
from nasforge.registry import SPACES
from nasforge.spaces.macro import MacroSpace
from nasforge.spaces.pnas import (
    PNAS_OP_NAMES,
    PNASNET5,
    PNASSpace,
    canonical_block,
    canonical_blocks,
    cell_output_blocks,
    expand,
    one_block_cells,
    validate_cell,
)

EXPANSIONS = {2: 300, 3: 528, 4: 820, 5: 1176}  # spec 1.2


def space(**kw):
    return PNASSpace(in_channels=1, num_classes=10, resolution=28, **kw)


def n_params(net):
    return sum(p.numel() for p in net.parameters())


# -- canonical form and counts -------------------------------------------------------------------------
def test_136_one_block_cells_and_halves_are_unordered():
    cells = one_block_cells()
    assert len(cells) == 136 == len(set(cells))
    # every raw ordered block (4 * 64 = 256 of them) maps onto one of the 136, and both orders agree
    raw = {canonical_block(i1, o1, i2, o2) for i1, i2 in itertools.product((0, 1), repeat=2)
           for o1, o2 in itertools.product(PNAS_OP_NAMES, repeat=2)}
    assert raw == {c[0] for c in cells}
    a = validate_cell([[1, "max_pool_3x3", 0, "sep_conv_3x3"]])
    b = validate_cell([[0, "sep_conv_3x3", 1, "max_pool_3x3"]])
    assert a == b == ((0, "sep_conv_3x3", 1, "max_pool_3x3"),)
    assert len(one_block_cells("reduced")) == 36


@pytest.mark.parametrize("b, count", sorted(EXPANSIONS.items()))
def test_expansion_counts_and_children_are_canonical_and_distinct(b, count):
    rng = random.Random(b)
    sp = space(blocks=5)
    parent = validate_cell(sp.sample(rng)[: b - 1])
    children = expand(parent)
    assert len(children) == count == len(canonical_blocks(b)) == len(set(children))
    assert all(c[: b - 1] == parent and validate_cell(c) == c for c in children)


def test_reduced_space_counts_and_candidate_totals():
    assert [len(canonical_blocks(b, "reduced")) for b in (2, 3)] == [78, 136]
    # candidates per PNAS round at K = 256 (spec 1.3): all 136 one-block cells at b = 2, then K parents
    totals = [136 * EXPANSIONS[2]] + [256 * EXPANSIONS[b] for b in (3, 4, 5)]
    assert totals == [40_800, 135_168, 209_920, 301_056]


def test_concat_rule():
    assert cell_output_blocks(PNASNET5, "unused") == [1, 2, 4, 5]  # block 3 feeds block 4
    assert cell_output_blocks(PNASNET5, "all") == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("arch, fragment", [
    ("nope", "non-empty list of blocks"),
    ([], "non-empty list of blocks"),
    ([[0, "sep_conv_3x3", 1]], "must be 4 items"),
    ([[2, "sep_conv_3x3", 1, "identity"]], "input 2 must be an integer in 0..1"),
    ([[0, "conv_9x9", 1, "identity"]], "unknown op 'conv_9x9'"),
    ([[0, "identity", True, "identity"]], "input True"),
])
def test_invalid_cells_are_user_errors(arch, fragment):
    with pytest.raises(UserError, match=fragment):
        space().validate(arch)


def test_block_limit_and_op_set_are_enforced():
    with pytest.raises(UserError, match="at most 2"):
        space(blocks=2).validate(PNASNET5)
    with pytest.raises(UserError, match="unknown op 'sep_conv_7x7'"):
        space(ops="reduced").validate(PNASNET5)
    with pytest.raises(ConfigError, match="unknown PNAS op set"):
        space(ops="tiny")
    with pytest.raises(ConfigError, match="unknown option"):
        space(F=8)


def test_sample_is_canonical_and_mutate_changes_one_decision():
    sp = space(blocks=3)
    rng = random.Random(0)
    for _ in range(50):
        arch = sp.sample(rng)
        assert len(arch) == 3 and sp.validate(arch) == arch
        child = sp.mutate(arch, rng)
        assert child != arch and sp.validate(child) == child
        changed = sum(x != y for a, b in zip(arch, child) for x, y in zip(a, b))
        assert 1 <= changed <= 4  # one slot, possibly re-sorted within its block
    assert "b1 = " in sp.describe(arch)
    assert SPACES.get("pnas") is PNASSpace


# -- the network -----------------------------------------------------------------------------------
def test_every_op_in_normal_and_reduction_cells_forwards():
    # each op once on each kind of input, in a 3-cell net (28 -> 14 -> 7); stem_multiplier 3 makes the
    # first cell's ops change channels (it reads the raw stem output, as the official code does)
    ops = list(PNAS_OP_NAMES)
    cell = [[0, ops[0], 1, ops[1]], [2, ops[2], 0, ops[3]], [3, ops[4], 1, ops[5]], [4, ops[6], 2, ops[7]]]
    for mult in (1.0, 3.0):
        net = space(C=4, N=1, blocks=4, stem_multiplier=mult).build(cell)
        out = net(torch.randn(2, 1, 28, 28))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert net.reductions == [1, 2]


def test_scale_overrides_aux_head_and_drop_path():
    sp = space(C=4, N=1, blocks=5)
    small, big = sp.build(PNASNET5), sp.build(PNASNET5, C=8, N=2)
    assert n_params(big) > n_params(small)
    net = sp.build(PNASNET5, aux=True)
    net.drop_path_prob = 0.2
    net.train()
    logits, aux = forward_with_aux(net, torch.randn(2, 1, 28, 28))
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    net.eval()
    net(torch.randn(1, 1, 28, 28))
    assert take_aux_logits(net) is None
    with pytest.raises(ConfigError, match="unknown build option"):
        sp.build(PNASNET5, F=8)


def test_imagenet_stem_forwards_at_small_scale():
    sp = PNASSpace(in_channels=3, num_classes=5, resolution=35, stem="imagenet", C=8, N=1, concat="all")
    assert sp.build(PNASNET5)(torch.randn(1, 3, 35, 35)).shape == (1, 5)


def test_golden_pnasnet5_parameter_counts():
    """PNASNet-5 large (N=4, F=216, ImageNet stem with stem multiplier 3, 1000 classes, no aux head):
    86,057,668 parameters, exactly the published PyTorch port's count (imgclsmob/Cadene: 86.06M). The
    official network concatenates all five blocks (concat="all"); the "unused" rule gives 78.8M."""
    sp = PNASSpace(in_channels=3, num_classes=1000, resolution=331, stem="imagenet", stem_multiplier=3.0,
                   concat="all")
    assert n_params(sp.build(PNASNET5, C=216, N=4)) == 86_057_668
    mobile = PNASSpace(in_channels=3, num_classes=1000, resolution=224, stem="imagenet", concat="all")
    assert abs(n_params(mobile.build(PNASNET5, C=54, N=3)) / 5.1e6 - 1) < 0.01  # paper: 5.1M
    cifar = PNASSpace(in_channels=3, num_classes=10, resolution=32, stem_multiplier=3.0, concat="all")
    assert abs(n_params(cifar.build(PNASNET5, C=48, N=3)) / 3.2e6 - 1) < 0.01  # paper: 3.2M


# -- NAS-Bench-Macro space --------------------------------------------------------------------------------
def test_macro_space_sample_validate_mutate_and_errors():
    sp = MacroSpace(in_channels=3, num_classes=10, resolution=32)
    rng = random.Random(0)
    archs = {sp.sample(rng) for _ in range(100)}
    assert len(archs) > 90 and all(len(a) == 8 and set(a) <= set("012") for a in archs)
    a = sp.sample(rng)
    m = sp.mutate(a, rng)
    assert sum(x != y for x, y in zip(a, m)) == 1
    assert sp.validate([0, 1, 2, 2, 1, 0, 0, 1]) == "01221001"
    for bad in ("0122100", "01221003", 7):
        with pytest.raises(UserError, match="NAS-Bench-Macro"):
            sp.validate(bad)
    assert sp.describe("22212220").startswith("mb6_k5 mb6_k5 mb6_k5 mb3_k3")


def test_macro_network_matches_the_benchmark_parameter_counts(tables_dir):
    from nasforge.tables import MacroTable

    table = MacroTable.load(tables_dir)
    sp = MacroSpace(in_channels=3, num_classes=10, resolution=32)
    for arch in ("00000000", "22212220", "02012100", "11111221", "10101010"):
        assert n_params(sp.build(arch)) == table.record(arch)["params"]
    out = sp.build("22212220")(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
