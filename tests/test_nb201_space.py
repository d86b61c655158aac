import random

import pytest
import torch
import torch.nn.functional as F

from nasforge.tables import NB201Table, format_arch, parse_arch
from nasforge.errors import UserError
from nasforge.spaces.nb201 import OPS, NB201Space

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def space(**kw):
    return NB201Space(in_channels=1, num_classes=10, resolution=28, **{"C": 4, "N": 1, **kw})


def test_build_runs_and_scales():
    sp = space()
    net = sp.build(BEST)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    bigger = sp.build(BEST, C=8, N=2)
    assert sum(p.numel() for p in bigger.parameters()) > sum(p.numel() for p in net.parameters())


def test_none_edges_hold_no_modules_and_cells_differ_in_params():
    sp = space()
    all_none = format_arch(["none"] * 6)
    net = sp.build(all_none)
    assert all(len(c.edges) == 0 for c in net.layers if hasattr(c, "edges"))
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_sample_validate_mutate():
    sp = space()
    rng = random.Random(0)
    archs = {sp.sample(rng) for _ in range(50)}
    assert len(archs) > 40 and all(sp.validate(a) == a for a in archs)
    a = sp.sample(rng)
    m = sp.mutate(a, rng)
    assert sum(x != y for x, y in zip(parse_arch(a), parse_arch(m))) == 1
    with pytest.raises(UserError):
        sp.validate("|conv~0|+|")


def test_round_trip_with_official_index_for_all_cells(tables_dir):
    table = NB201Table.load(tables_dir)
    sp = space()
    for i in range(len(table)):
        arch = table.arch_of(i)
        assert table.index_of(sp.validate(arch)) == i
    assert table.index_of(BEST) == 6111


def test_supernet_parameters_are_separated():
    sn = space().supernet()
    arch = sn.arch_parameters()
    assert len(arch) == 1 and arch[0].shape == (6, 5)
    assert not {id(p) for p in arch} & {id(p) for p in sn.weight_parameters()}
    n_all = sum(p.numel() for p in sn.parameters())
    assert n_all == 30 + sum(p.numel() for p in sn.weight_parameters())


def test_alpha_gradients_flow_only_where_they_should():
    sn = space().supernet()
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    loss = F.cross_entropy(sn(x), y)
    g_alpha = torch.autograd.grad(loss, sn.arch_parameters(), retain_graph=True)[0]
    assert g_alpha.abs().sum() > 0
    # weights-only backward leaves alpha untouched
    loss.backward(inputs=sn.weight_parameters())
    assert sn.alphas["cell"].grad is None
    # in sampled mode alphas are not used at all
    sn.zero_grad(set_to_none=True)
    sn.set_path({"cell": torch.tensor([3, 3, 1, 2, 3, 4])})
    F.cross_entropy(sn(x), y).backward()
    assert sn.alphas["cell"].grad is None


def test_sampled_path_runs_exactly_one_op_per_edge_and_only_its_weights_learn():
    sn = space().supernet()
    calls = []
    for cell in (m for m in sn.modules() if m.__class__.__name__ == "SearchCell"):
        for e, mixed in enumerate(cell.edges):
            for k, op in enumerate(mixed.ops):
                op.register_forward_hook(lambda mod, i, o, e=e, k=k: calls.append((e, k)))
    path = torch.tensor([3, 0, 2, 1, 4, 3])
    sn.set_path({"cell": path})
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    F.cross_entropy(sn(x), y).backward()
    cells = sum(1 for m in sn.modules() if m.__class__.__name__ == "SearchCell")
    assert sorted(calls) == sorted((e, int(k)) for e, k in enumerate(path) for _ in range(cells))
    for cell in (m for m in sn.modules() if m.__class__.__name__ == "SearchCell"):
        for e, mixed in enumerate(cell.edges):
            for k, op in enumerate(mixed.ops):
                grads = [p.grad for p in op.parameters()]
                if k == int(path[e]):
                    assert all(g is not None and g.abs().sum() > 0 for g in grads)
                else:
                    assert all(g is None for g in grads)


def test_weighted_mode_matches_explicit_sum_and_temperature():
    torch.manual_seed(0)
    sn = space().supernet()
    sn.eval()
    with torch.no_grad():
        sn.alphas["cell"].copy_(torch.randn(6, 5))
    x = torch.randn(2, 4, 7, 7)
    cell = next(m for m in sn.modules() if m.__class__.__name__ == "SearchCell")
    w = torch.softmax(sn.alphas["cell"], -1)
    got = cell(x, w, None)
    nodes = [x]
    e = 0
    for j in (1, 2, 3):
        total = 0
        for i in range(j):
            total = total + sum(w[e, k] * cell.edges[e].ops[k](nodes[i]) for k in range(5))
            e += 1
        nodes.append(total)
    assert torch.allclose(got, nodes[3], atol=1e-5)
    sn.temperature = 0.01
    sharp = sn.op_weights()["cell"]
    assert torch.allclose(sharp.max(-1).values, torch.ones(6), atol=1e-3)


def test_derive_is_argmax_including_none():
    sn = space().supernet()
    scores = torch.full((6, 5), -1.0)
    choice = [0, 3, 1, 2, 4, 0]
    for e, k in enumerate(choice):
        scores[e, k] = 1.0
    arch = sn.derive({"cell": scores})
    assert parse_arch(arch) == tuple(OPS[k] for k in choice)
    assert space().parameter_free_count(arch) == 4  # none, skip, avg_pool, none


def test_fused_weighted_forward_matches_reference_gradients():
    import copy

    torch.manual_seed(0)
    fused = space(C=4, N=2).supernet()
    with torch.no_grad():
        fused.alphas["cell"].copy_(torch.randn(6, 5))
    reference = copy.deepcopy(fused)
    for m in reference.modules():
        if m.__class__.__name__ == "SearchCell":
            m.fused = False
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    for net in (fused, reference):
        net.train()
        F.cross_entropy(net(x), y).backward()
    for (name, p), q in zip(fused.named_parameters(), reference.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6), name
    for (name, b), c in zip(fused.named_buffers(), reference.buffers()):
        if b.dtype.is_floating_point:
            assert torch.allclose(b, c, rtol=1e-4, atol=1e-6), name


def test_degenerate_cells_are_exactly_the_tables_constant_predictors(tables_dir):
    """No input-to-output path without `none` <=> the benchmark's 10 % cells (341 of 15,625)."""
    import numpy as np

    table, space = NB201Table.load(tables_dir), NB201Space()
    acc = table.column("cifar10", "test_200")
    degenerate = np.array([space.is_degenerate(table.arch_of(i)) for i in range(len(table))])
    assert degenerate.sum() == 341
    assert np.all(acc[degenerate] == 10.0) and acc[~degenerate].min() > 40.0
    # the cell Single-DARTS derived in the search-quality benchmark: all three input edges are `none`
    assert space.is_degenerate("|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert not space.is_degenerate("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|")
