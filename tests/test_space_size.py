"""`SearchSpace.size()`: the exact number of distinct architectures of every space, checked against a brute-force
enumeration (or exhaustive sampling) at tiny configurations and against the published counts at the defaults."""
from __future__ import annotations

import itertools
import json
import random

import pytest

import nasforge.building
from nasforge.registry import SPACES

nasforge.building.import_components()


def _drawn(space, n: int, key=lambda a: json.dumps(a, sort_keys=True), seed: int = 0) -> set[str]:
    """Distinct keys of `n` validated samples: with n >> size * ln(size) every architecture the sampler can
    produce is drawn (a fixed seed: the same set every run)."""
    rng = random.Random(seed)
    return {key(space.validate(space.sample(rng))) for _ in range(n)}


def _darts_network(arch) -> str:
    """A DARTS genotype up to the order of each node's two [op, input] pairs (the node sums them)."""
    cells = [c["ops"] for c in arch["cells"]] if "cells" in arch else [arch["normal"], arch["reduce"]]
    return json.dumps([[sorted(map(tuple, ops[i:i + 2])) for i in range(0, len(ops), 2)] for ops in cells])


@pytest.mark.parametrize("name,options", [
    ("darts", {"nodes": 1}),                                       # shared cells: 49^2
    ("darts", {"nodes": 1, "unique_cells": True, "layers": 2}),    # one cell per layer: 49^2
    ("darts", {"nodes": 2, "unique_cells": True, "layers": 1}),    # 49 * 3 * 49
    ("darts", {"nodes": 1, "binary": "naive"}),
    ("bats", {"nodes": 1}),
])
def test_darts_and_bats_sizes_are_the_distinct_sampled_genotypes(name, options):
    space = SPACES.get(name)(**options)
    size = space.size()
    drawn = _drawn(space, 14 * size, key=_darts_network)
    assert len(drawn) == size
    # the sampler lists a node's pairs in either order: those are one genotype, not two
    assert len(_drawn(space, 4 * size)) > len(_drawn(space, 4 * size, key=_darts_network))


def test_darts_size_at_the_defaults_is_the_papers_count():
    """DARTS (Liu et al. 2019): per cell prod_j C(j, 2) * 7^2 over its 4 nodes = 180 * 7^8 (~10^9), ~10^18 for
    a normal and a reduce cell; unique cells raise the cell count to the number of layers."""
    cell = 1 * 3 * 6 * 10 * 7 ** 8
    assert SPACES.get("darts")().size() == cell ** 2 and 1e18 < cell ** 2 < 1.1e18
    assert SPACES.get("darts")(unique_cells=True, layers=5).size() == cell ** 5
    assert SPACES.get("bats")().size() == cell ** 2  # the same skeleton, 7 non-none binary ops


@pytest.mark.parametrize("ops,blocks", [("reduced", 1), ("reduced", 2), ("full", 1)])
def test_pnas_size_is_every_canonical_cell_up_to_blocks(ops, blocks):
    """Brute force: every raw cell of 1..blocks blocks ([in1, op1, in2, op2] with inputs 0..k), canonicalised by
    the space's own validate; 36 / 136 one-block cells as the paper and the spec count them."""
    space = SPACES.get("pnas")(ops=ops, blocks=blocks)
    names = space.op_names
    cells: set[str] = set()
    for b in range(1, blocks + 1):
        choices = [list(itertools.product(range(k + 1), names, range(k + 1), names)) for k in range(1, b + 1)]
        for cell in itertools.product(*choices):
            cells.add(json.dumps(space.validate([list(blk) for blk in cell])))
    assert space.size() == len(cells)
    assert space.size() == {("reduced", 1): 36, ("reduced", 2): 36 + 36 * 78, ("full", 1): 136}[(ops, blocks)]
    full = space.size() - (36 if blocks == 2 else 0)  # sample draws the cells of `blocks` blocks only
    assert len(_drawn(space, 14 * full)) == full


@pytest.mark.parametrize("name,options,expected", [
    ("mobile", {"widths": [16], "strides": [1]}, 33),                         # 32 candidates + skip
    ("mobile", {"widths": [16, 24], "strides": [1, 2], "ops": "baseline"}, 5 * 4),  # no skip where shapes change
    ("mobile", {"widths": [16, 16], "strides": [1, 1], "skip": False, "ops": ["mb_k3_e3", "mb_k5_e6"]}, 4),
])
def test_layerwise_sizes_are_the_product_of_the_layer_choices(name, options, expected):
    space = SPACES.get(name)(**options)
    assert space.size() == expected == len(_drawn(space, 30 * expected))


def test_fbnet_size_is_nine_ops_in_22_layers():
    """FBNet (Wu et al. 2019): 9 candidates in each of 22 layers, 9^22 ~ 10^21."""
    assert SPACES.get("fbnet")().size() == SPACES.get("fbnet")(width=0.25).size() == 9 ** 22


@pytest.mark.parametrize("shift,expected", [(False, 2 * (1 + 4) ** 2), (True, 2 * (1 + 4 + 16))])
def test_vit_size_counts_identity_slots_and_their_canonical_placement(shift, expected):
    """patch {4, 7} x embed {64} x per slot (identity or heads {1, 2} x attn {32, 64} x mlp {128}), depth 2;
    identity_shift keeps identities last, so [None, block] and [block, None] are one architecture."""
    space = SPACES.get("vit")(depth=2, heads=[1, 2], attn_ratios=[0.5, 1.0], mlp_ratios=[1.0], embed_ratios=[1.0],
                              identity_shift=shift)
    assert space.size() == expected == len(_drawn(space, 40 * expected))
    assert SPACES.get("vit")().size() == 2 * 4 * (1 + 3 * 4 * 4) ** 6


def test_every_space_counts_and_list_prints_it(cli_ok):
    for name in SPACES.names():
        assert isinstance(SPACES.get(name)().size(), int)
    out = cli_ok("list", "darts")
    assert "architectures at these defaults: 1,076,746,950,455,072,400 (about 1.1e+18)" in " ".join(out.split())


def test_a_trial_budget_above_a_counted_space_is_refused_before_work(tmp_path):
    """pnas with one block of the 4 reduced ops holds 36 cells: 100 random trials can never be spent (before the
    count the search ran and stopped short with a warning)."""
    from nasforge import api
    from nasforge.errors import ConfigError

    cfg = {"space": "pnas", "space_options": {"blocks": 1, "ops": "reduced", "C": 2}, "method": "random",
           "estimator": "scratch", "dataset": "synthetic", "subset": 64, "budget": {"trials": 100}}
    with pytest.raises(ConfigError, match="--trials 100 exceeds the 36 distinct architectures of space 'pnas'"):
        api.search(cfg, run_root=tmp_path, check_only=True)
    assert api.search({**cfg, "budget": {"trials": 36}}, run_root=tmp_path, check_only=True)["checked"]
    assert not any(tmp_path.iterdir())
