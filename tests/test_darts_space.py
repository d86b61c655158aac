"""The DARTS cell space: genotype validation, the published cells, the supernet's two modes and derivation."""
from __future__ import annotations

import copy
import random

import pytest
import torch
import torch.nn.functional as F

from nasforge.hardware.flops import model_cost
from nasforge.ops.heads import forward_with_aux, param_counts, take_aux_logits
from nasforge.errors import ConfigError, UserError
from nasforge.ops import Identity, Zero
from nasforge.registry import SPACES
from nasforge.spaces.darts import (
    DARTS_V1,
    DARTS_V2,
    OPS,
    DartsSpace,
    DartsSupernet,
    aux_pool_geometry,
    cell_edges,
    darts_top2_excluding_none,
)

SEP3, NONE = OPS.index("sep_conv_3x3"), OPS.index("none")


@pytest.fixture(autouse=True)
def _one_thread(_threads):
    """One thread here (after conftest's `_threads`): on tensors this small a second OpenMP thread only adds
    synchronisation, and on a busy 2-core machine a tiny supernet step then takes seconds instead of ~0.2 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_space(**options) -> DartsSpace:
    return DartsSpace(in_channels=1, num_classes=5, resolution=16, **{"C": 4, "layers": 3, **options})


def batch(n: int = 2, size: int = 16, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, channels, size, size, generator=g), torch.randint(0, 5, (n,), generator=g)


# -- genotypes ---------------------------------------------------------------------------------------------
def test_registered():
    assert SPACES.get("darts") is DartsSpace


def test_published_genotypes_validate_to_themselves():
    space = DartsSpace()
    assert space.validate(DARTS_V1) == DARTS_V1
    assert space.validate(DARTS_V2) == DARTS_V2
    # a Genotype written with tuples (as in the DARTS code) is accepted and canonicalised to lists
    as_tuples = {k: [tuple(p) for p in v] if k in ("normal", "reduce") else v for k, v in DARTS_V2.items()}
    assert space.validate(as_tuples) == DARTS_V2


@pytest.mark.parametrize("change, message", [
    (lambda a: a["normal"].__setitem__(0, ["conv_9x9", 0]), "unknown DARTS op 'conv_9x9'; choose from"),
    (lambda a: a["normal"].__setitem__(0, ["sep_conv_3x3", 2]), "node 2 reads node 2"),
    (lambda a: a["reduce"].__setitem__(7, ["skip_connect", -1]), "node 5 reads node -1"),
    (lambda a: a["normal"].pop(), "either 8 (two inputs per node) or 14"),
    (lambda a: a["normal"].__setitem__(3, ["skip_connect"]), "expected [op_name, input_node]"),
    (lambda a: a["normal"].__setitem__(3, ["skip_connect", 1.0]), "expected [op_name, input_node]"),
    (lambda a: a.__setitem__("normal_concat", [2, 3, 3]), "distinct intermediate nodes in 2..5"),
    (lambda a: a.__setitem__("reduce_concat", [1, 2]), "distinct intermediate nodes in 2..5"),
    (lambda a: a.__setitem__("reduce_concat", []), "non-empty"),
    (lambda a: a.pop("reduce"), "a DARTS arch is"),
    (lambda a: a.__setitem__("extra", 1), "a DARTS arch is"),
])
def test_validation_errors_name_the_problem(change, message):
    arch = copy.deepcopy(DARTS_V2)
    change(arch)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        DartsSpace().validate(arch)


def test_validation_of_other_forms():
    space = DartsSpace()
    with pytest.raises(UserError, match="a DARTS arch is"):
        space.validate("sep_conv_3x3")
    with pytest.raises(UserError, match="normal: expected a list of \\[op, input\\] pairs"):
        space.validate({"normal": "sep_conv_3x3", "reduce": DARTS_V2["reduce"]})
    with pytest.raises(UserError, match="'cells' must be a non-empty list"):
        space.validate({"cells": []})
    with pytest.raises(UserError, match=r"cells\[1\]"):
        space.validate({"cells": [{"ops": DARTS_V2["normal"]}, {"ops": DARTS_V2["normal"][:-1]}]})
    full = [["skip_connect", i] for i, _ in cell_edges()]
    full[4] = ["skip_connect", 0]  # edge 4 is 2 -> 3
    with pytest.raises(UserError, match="entry 4 must read node 2, not 0"):
        space.validate({"normal": full, "reduce": DARTS_V2["reduce"]})


def test_full_form_and_unique_cells_round_trip():
    space = DartsSpace()
    full = [["none" if e % 3 else "sep_conv_3x3", i] for e, (i, _) in enumerate(cell_edges())]
    arch = {"normal": full, "normal_concat": [2, 3, 4, 5], "reduce": DARTS_V1["reduce"], "reduce_concat": [2, 3, 4, 5]}
    assert space.validate(arch) == arch
    unique = {"cells": [{"ops": DARTS_V2["normal"], "concat": [2, 3, 4, 5]}, {"ops": full, "concat": [5, 2]}]}
    assert space.validate(unique) == unique
    # concat defaults to every intermediate node
    assert space.validate({"cells": [{"ops": full}]})["cells"][0]["concat"] == [2, 3, 4, 5]


def test_parameter_free_count():
    space = DartsSpace()
    assert space.parameter_free_count(DARTS_V2) == 2 + 8  # two skips; the reduce cell is all pools and skips
    assert space.parameter_free_count(DARTS_V1) == 3 + 8


def test_sample_and_mutate_stay_valid():
    space, rng = DartsSpace(), random.Random(0)
    for _ in range(30):
        arch = space.sample(rng)
        assert space.validate(arch) == arch
        for key in ("normal", "reduce"):
            assert all(op != "none" for op, _ in arch[key])
            inputs = [i for _, i in arch[key]]
            assert all(inputs[2 * k] != inputs[2 * k + 1] for k in range(4))
        child = space.mutate(arch, rng)
        changed = [(key, k) for key in ("normal", "reduce") for k in range(8) if child[key][k] != arch[key][k]]
        assert len(changed) == 1
        key, k = changed[0]
        assert (child[key][k][0] == arch[key][k][0]) != (child[key][k][1] == arch[key][k][1])  # op xor input
        assert child[key][k][0] != "none"
        assert child[key][2 * (k // 2)][1] != child[key][2 * (k // 2) + 1][1]
    unique = tiny_space(unique_cells=True, layers=5).sample(rng)
    assert len(unique["cells"]) == 5


# -- fixed networks ----------------------------------------------------------------------------------------
def test_darts_v2_parameter_count_matches_the_paper():
    """DARTS (2nd order) on CIFAR-10: the paper's 3.3M is 3,349,342 weights (its train.py log: "param size =
    3.349342MB"), counted without the auxiliary tower; the tower adds 476,426 (C=36, 20 cells, 10 classes)."""
    net = DartsSpace(in_channels=3, num_classes=10, resolution=32).build(DARTS_V2, C=36, layers=20, auxiliary=True)
    aux = sum(p.numel() for p in net.aux_head.parameters())
    total = sum(p.numel() for p in net.parameters())
    assert total - aux == 3_349_342
    assert aux == 476_426
    # what nasforge reports (train, retrain, result.json, model_cost): the inference network, head apart
    assert param_counts(net) == {"params": 3_349_342, "params_aux": 476_426}
    assert model_cost(net, torch.zeros(1, 3, 32, 32)).params == 3_349_342


def test_build_from_sampled_arch_trains():
    space = tiny_space()
    net = space.build(space.sample(random.Random(1)))
    x, y = batch()
    F.cross_entropy(net(x), y).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_full_form_drops_none_edges_and_empty_nodes_are_zero():
    space = tiny_space()
    full = [["none", i] for i, _ in cell_edges()]
    full[0] = ["sep_conv_3x3", 0]  # node 2 <- 0; nodes 3..5 get no input at all
    arch = {"normal": full, "reduce": copy.deepcopy(full)}
    net = space.build(arch)
    assert not any(isinstance(m, Zero) for m in net.modules())
    assert all(len(cell.ops) == 1 for cell in net.cells)
    assert net(batch()[0]).shape == (2, 5)


def test_unique_cells_fix_the_depth():
    space = tiny_space()
    arch = {"cells": [{"ops": DARTS_V2["normal"] if i != 1 else DARTS_V2["reduce"]} for i in range(4)]}
    net = space.build(arch)
    assert len(net.cells) == 4 and [c.reduction for c in net.cells] == [False, True, True, False]
    with pytest.raises(ConfigError, match="has 4 cells, but layers=6"):
        space.build(arch, layers=6)
    with pytest.raises(ConfigError, match="unknown build option"):
        space.build(arch, N=3)


@pytest.mark.parametrize("size", [16, 28])
def test_auxiliary_head_in_training_only(size):
    space = DartsSpace(in_channels=1, num_classes=5, resolution=size, C=4)
    net = space.build(DARTS_V2, layers=5, auxiliary=True)
    x, _ = batch(size=size)
    logits, aux = forward_with_aux(net.train(), x)
    assert logits.shape == aux.shape == (2, 5)
    assert take_aux_logits(net) is None  # taken once
    assert net.eval()(x).shape == (2, 5) and take_aux_logits(net) is None  # no head output in eval mode
    assert forward_with_aux(space.build(DARTS_V2, layers=5).train(), x)[1] is None  # no head


def test_aux_pool_geometry():
    assert aux_pool_geometry(8) == (5, 3)  # exactly DARTS' CIFAR head
    for size in range(2, 40):
        kernel, stride = aux_pool_geometry(size)
        assert kernel >= 1 and stride >= 1 and (size - kernel) // stride + 1 == 2
    with pytest.raises(ConfigError, match="at least 2x2"):
        aux_pool_geometry(1)
    with pytest.raises(ConfigError, match="at least 2x2"):
        DartsSpace(resolution=4).build(DARTS_V2, auxiliary=True)


def test_drop_path_changes_training_outputs_only():
    net = tiny_space().build(DARTS_V1)
    x, _ = batch(4)
    net.eval()
    before = net(x)
    net.drop_path_prob = 0.5
    assert torch.allclose(net(x), before)
    net.train()
    torch.manual_seed(0)
    dropped = net(x)
    net.drop_path_prob = 0.0
    assert not torch.allclose(net(x), dropped)


# -- supernet ----------------------------------------------------------------------------------------------
def test_supernet_groups_and_init():
    net = tiny_space().supernet()
    assert isinstance(net, DartsSupernet)
    assert net.edge_shapes() == {"normal": (14, 8), "reduce": (14, 8)}
    assert all(a.abs().max() < 0.01 for a in net.arch_parameters())  # 1e-3 * N(0, 1)
    unique = tiny_space(unique_cells=True, layers=5).supernet()
    assert list(unique.alphas) == [f"cell{i}" for i in range(5)]
    # non-affine BN inside cells; pools followed by BN
    for cell in unique.cells:
        bns = [m for m in cell.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert bns and all(not bn.affine for bn in bns)
        assert all(op.bn is not None for edge in cell.edges for op in edge.ops[1:3])


def test_weighted_mode_gives_alpha_gradients():
    net = tiny_space().supernet()
    x, y = batch()
    F.cross_entropy(net(x), y).backward()
    for g, a in net.alphas.items():
        assert a.grad is not None and a.grad.abs().sum() > 0, g


def test_sampled_mode_runs_one_op_per_edge_and_trains_only_those():
    net = tiny_space().supernet()
    path = net.random_path(torch.Generator().manual_seed(3))
    path["normal"][:3] = torch.tensor([NONE, SEP3, NONE])
    calls: dict[tuple[int, int, int], int] = {}
    for c, cell in enumerate(net.cells):
        for e, edge in enumerate(cell.edges):
            for k, op in enumerate(edge.ops):
                calls[c, e, k] = 0
                op.register_forward_hook(lambda *_, key=(c, e, k): calls.__setitem__(key, calls[key] + 1))
    net.set_path(path)
    x, y = batch()
    F.cross_entropy(net(x), y).backward()
    for c, cell in enumerate(net.cells):
        chosen = path[net.cell_groups[c]].tolist()
        for e, edge in enumerate(cell.edges):
            for k, op in enumerate(edge.ops):
                sampled = k == chosen[e] and k != NONE  # a sampled `none` runs nothing at all
                assert calls[c, e, k] == int(sampled), (c, e, k)
                for p in op.parameters():
                    assert (p.grad is not None) == sampled
    assert all(a.grad is None for a in net.alphas.values())


def test_sampled_mode_equals_weighted_mode_with_one_hot_alphas():
    net = tiny_space().supernet()
    path = net.random_path(torch.Generator().manual_seed(5))
    path["reduce"][:2] = NONE  # node 2 of the reduction cells gets no input
    with torch.no_grad():
        for g, a in net.alphas.items():
            a.copy_(F.one_hot(path[g], len(OPS)).float() * 1e4)  # softmax is exactly one-hot in fp32
    x, _ = batch()
    weighted = net(x)
    net.set_path(path)
    assert torch.allclose(net(x), weighted, atol=1e-6)


def test_top2_rule_on_hand_made_alphas():
    alpha = torch.zeros(14, 8)
    # node 2: edge 0->2 is mostly `none` but its best real op is sep_conv_3x3; edge 1->2 prefers max_pool
    alpha[0, NONE], alpha[0, SEP3] = 5.0, 4.0
    alpha[1, OPS.index("max_pool_3x3")] = 1.0
    # node 3: 0->3 is pure `none` (must lose), 1->3 skip, 2->3 dil_conv_5x5
    alpha[2, NONE] = 10.0
    alpha[3, OPS.index("skip_connect")] = 2.0
    alpha[4, OPS.index("dil_conv_5x5")] = 1.0
    # node 4 uniform; node 5: edge 4->5 strongest (sep_conv_5x5), then 3->5 (avg_pool)
    alpha[12, OPS.index("avg_pool_3x3")] = 0.5
    alpha[13, OPS.index("sep_conv_5x5")] = 3.0
    genotype = darts_top2_excluding_none(alpha)
    assert genotype[:6] == [["max_pool_3x3", 1], ["sep_conv_3x3", 0],  # ordered by score, `none` excluded
                            ["skip_connect", 1], ["dil_conv_5x5", 2],
                            ["max_pool_3x3", 0], ["max_pool_3x3", 1]]  # ties: first real op, lowest inputs
    assert genotype[6:] == [["sep_conv_5x5", 4], ["avg_pool_3x3", 3]]

    net = tiny_space().supernet()
    with torch.no_grad():
        net.alphas["normal"].copy_(alpha)
    arch = net.derive()
    assert arch["normal"] == genotype and arch["normal_concat"] == [2, 3, 4, 5]
    assert DartsSpace().validate(arch) == arch


def test_unique_supernet_derive_and_path_to_arch_build():
    space = tiny_space(unique_cells=True, layers=4)
    net = space.supernet()
    arch = net.derive()
    assert len(arch["cells"]) == 4 and space.validate(arch) == arch
    path = net.random_path(torch.Generator().manual_seed(0))
    path["cell0"][:2] = torch.tensor([NONE, SEP3])
    full = net.path_to_arch(path, top2=False)
    assert [op for op, _ in full["cells"][0]["ops"]] == [OPS[k] for k in path["cell0"]]
    pruned = net.path_to_arch(path)
    assert pruned["cells"][0]["ops"][:2] == [["sep_conv_3x3", 1], ["none", 0]]  # node 2 had one real input
    x, y = batch()
    for a in (arch, full, pruned):
        built = space.build(a)
        F.cross_entropy(built(x), y).backward()


def test_path_to_arch_top2_keeps_real_edges_first():
    net = tiny_space().supernet()
    path = {g: torch.full((14,), SEP3) for g in net.alphas}
    path["normal"][9:14] = torch.tensor([NONE, NONE, SEP3, NONE, OPS.index("skip_connect")])  # node 5
    arch = net.path_to_arch(path)
    assert arch["normal"][6:] == [["sep_conv_3x3", 2], ["skip_connect", 4]]
    assert arch["reduce"] == [["sep_conv_3x3", i] for i in (0, 1, 0, 1, 0, 1, 0, 1)]


def test_supernet_without_running_stats():
    net = tiny_space().supernet(track_running_stats=False)
    x, y = batch()
    F.cross_entropy(net(x), y).backward()
    cell_bns = [m for m in net.cells.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert cell_bns and all(bn.running_mean is None for bn in cell_bns)
    with pytest.raises(ConfigError, match="unknown supernet option"):
        tiny_space().supernet(N=2)


def test_reduction_cells_and_identity_skips():
    net = tiny_space(layers=6).build(DARTS_V2)
    assert [c.reduction for c in net.cells] == [False, False, True, False, True, False]
    normal_skips = [op for op in net.cells[0].ops if isinstance(op, Identity)]
    reduce_skips = [op for op in net.cells[2].ops if isinstance(op, Identity)]
    assert len(normal_skips) == 2
    assert len(reduce_skips) == 3  # skip_connect from node 2 (stride 1) stays an identity in a reduction cell


def test_shallow_supernet_keeps_both_groups():
    net = tiny_space(layers=2).supernet()  # reductions at L//3 = 0 and 2L//3 = 1: no normal cell
    assert net.cell_groups == ["reduce", "reduce"] and set(net.alphas) == {"normal", "reduce"}
    assert set(net.derive()) == {"normal", "normal_concat", "reduce", "reduce_concat"}
    x, y = batch()
    F.cross_entropy(net(x), y).backward()
    assert net.alphas["normal"].grad is None and net.alphas["reduce"].grad is not None
