"""Networks as published: auxiliary heads reach the training engine, inference-time parameter counts,
any batch size (including a last batch of one image) in every network and supernet."""
from __future__ import annotations

import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from nasforge.building import import_components
from nasforge.data.datasets import synthetic
from nasforge.ops.heads import forward_with_aux, param_counts
from nasforge.registry import SPACES
from nasforge.training import TrainConfig, train_model

import_components()

#: small scales for the spaces this file knows; any other registered space is built at its defaults
SMALL = {"nb201": {"C": 4, "N": 1}, "darts": {"C": 4, "layers": 5}, "pnas": {"C": 4, "N": 1},
         "macro": {"C": 8, "head": 32}}


def small_space(name: str, resolution: int = 28):
    return SPACES.get(name)(in_channels=1, num_classes=10, resolution=resolution, **SMALL.get(name, {}))


def aux_spaces() -> list[str]:
    return [n for n in SPACES.names() if SPACES.get(n).aux_option]


def test_spaces_with_an_aux_head_are_known():
    assert {"darts", "pnas"} <= set(aux_spaces())


@pytest.mark.parametrize("name", aux_spaces())
def test_aux_head_receives_gradients_through_the_training_engine(name):
    """With aux_weight > 0 every parameter of the head gets a gradient through train_model, and the
    trained weights differ from a run with aux_weight 0 from the same start (issue: PNAS's head was
    never trained: both runs were bit-identical)."""
    space = small_space(name)
    arch = space.sample(random.Random(0))
    train, _ = synthetic(n_train=48, n_test=8, resolution=28)
    cfg = dict(epochs=1, batch_size=16, lr=0.05, crop_padding=0, hflip=False, seed=3)
    nets = {}
    for w in (0.0, 0.4):
        torch.manual_seed(0)
        net = space.build(arch, **{space.aux_option: True})
        grads: dict[str, bool] = {}
        hooks = [p.register_hook(lambda g, n=n: grads.__setitem__(n, bool(g.abs().sum() > 0)))
                 for n, p in net.aux_head.named_parameters()]
        train_model(net, train, None, TrainConfig(aux_weight=w, **cfg))
        for h in hooks:
            h.remove()
        nets[w] = (net, grads)
    trained, grads = nets[0.4]
    assert grads and all(grads.values()), f"aux head parameters without gradient: {[n for n, g in grads.items() if not g]}"
    assert not nets[0.0][1]  # weight 0: the head is not in the loss
    body = [k for k in trained.state_dict() if not k.startswith("aux_head.")]
    assert any(not torch.equal(trained.state_dict()[k], nets[0.0][0].state_dict()[k]) for k in body)
    counts = param_counts(trained)
    assert counts["params_aux"] == sum(p.numel() for p in trained.aux_head.parameters()) > 0
    assert counts["params"] + counts["params_aux"] == sum(p.numel() for p in trained.parameters())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_batch_of_one_trains_in_every_network(name):
    """Forward + backward in training mode on one image, with the auxiliary head where the space has one."""
    space = small_space(name)
    arch = space.sample(random.Random(1))
    options = [{}] + ([{space.aux_option: True}] if space.aux_option else [])
    for opts in options:
        net = space.build(arch, **opts).train()
        logits, aux = forward_with_aux(net, torch.randn(1, 1, 28, 28))
        assert logits.shape == (1, 10) and aux is None  # no auxiliary logits for a single image
        F.cross_entropy(logits, torch.tensor([3])).backward()
        logits, aux = forward_with_aux(net, torch.randn(2, 1, 28, 28))
        assert aux is None or aux.shape == (2, 10)


@pytest.mark.parametrize("name", [n for n in sorted(SMALL) if SPACES.get(n).supernet_kind in ("cell", "single-path")])
def test_a_batch_of_one_trains_in_every_supernet(name):
    supernet = small_space(name).supernet().train()
    x, y = torch.randn(1, 1, 28, 28), torch.tensor([1])
    F.cross_entropy(supernet(x), y).backward()  # weighted mode: every op
    assert all(a.grad is not None for a in supernet.arch_parameters())
    supernet.set_path(supernet.random_path(torch.Generator().manual_seed(0)))
    F.cross_entropy(supernet(x), y).backward()  # sampled mode: one op per edge


@pytest.mark.parametrize("name", SPACES.names())
def test_every_registered_network_and_supernet_trains_on_two_images(name):
    """Training loaders never yield a batch of one (drop_single), so two images is the smallest training
    batch any space must take: its network, and its supernet on a sampled path."""
    space = small_space(name)
    x, y = torch.randn(2, 1, 28, 28), torch.tensor([1, 2])
    net = space.build(space.sample(random.Random(0))).train()
    logits, _ = forward_with_aux(net, x)
    F.cross_entropy(logits, y).backward()
    if space.supernet_kind in ("cell", "single-path"):
        supernet = space.supernet().train()
        supernet.set_path(supernet.random_path(torch.Generator().manual_seed(0)))
        F.cross_entropy(supernet(x), y).backward()


def test_training_loaders_never_yield_a_single_image():
    from nasforge.data.loader import Loader

    data, _ = synthetic(n_train=9, n_test=4, resolution=8)
    sizes = lambda loader: [len(y) for _, y in loader]  # noqa: E731
    assert sizes(Loader(data, 4)) == [4, 4, 1]
    assert sizes(Loader(data, 4, drop_single=True)) == [4, 4]  # a lone last image is dropped
    assert sizes(Loader(data, 3, drop_single=True)) == [3, 3, 3]
    assert sizes(Loader(data, 5, drop_single=True)) == [5, 4]  # larger remainders train
    assert sizes(Loader(data, 4, drop_last=True)) == [4, 4]
    assert len(Loader(data.subset(torch.arange(1)), 4, drop_single=True)) == 1  # one image in all: kept


def test_a_network_with_1x1_batchnorm_trains_on_any_dataset_size():
    """FBNet-like networks end in BatchNorm over 1x1 maps, where a batch of one image cannot be normalised:
    train_model drops such a last batch (9 images in batches of 4: 4, 4)."""
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 28), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.Linear(4, 10))
    train, _ = synthetic(n_train=9, n_test=4, resolution=28)
    out = train_model(net, train, None, TrainConfig(epochs=1, batch_size=4, crop_padding=0, hflip=False))
    assert out["history"][0]["train_loss"] > 0


def test_a_last_batch_of_one_image_trains_with_the_aux_head():
    """Issue: `train --arch darts_v2.json --space-opt auxiliary=true --subset 257` (batches 128, 128, 1)
    crashed in the head's BatchNorm."""
    space = small_space("darts")
    train, _ = synthetic(n_train=9, n_test=4, resolution=28)  # batches of 4: 4, 4, 1
    net = space.build(space.sample(random.Random(2)), auxiliary=True)
    out = train_model(net, train, None, TrainConfig(epochs=1, batch_size=4, aux_weight=0.4, crop_padding=0,
                                                    hflip=False))
    assert out["history"][0]["train_loss"] > 0


# -- PNASNet-5 as published (TF-slim pnasnet.py / nasnet_utils.py and its PyTorch ports) -----------------------
def _pnas(**kw):
    from nasforge.spaces.pnas import PNASSpace

    return PNASSpace(**{"in_channels": 3, "num_classes": 10, "resolution": 32, **kw})


def test_pnasnet5_identity_at_stride_2_is_relu_strided_1x1_conv_bn():
    from nasforge.ops import FactorizedReduce, Identity
    from nasforge.spaces.pnas import PNASNET5

    net = _pnas(C=8, N=1, concat="all").build(PNASNET5)
    # block 5 = sep_conv_3x3(H[c-2]) + identity(H[c-1]); canonical order puts the identity half at op 9
    for i, cell in enumerate(net.cells):
        assert cell.inputs[9] == 1
        op = cell.ops[9]
        if i in net.reductions:
            assert not isinstance(op, FactorizedReduce)
            relu, conv, bn = list(op)
            assert isinstance(relu, torch.nn.ReLU) and isinstance(bn, torch.nn.BatchNorm2d)
            assert conv.kernel_size == (1, 1) and conv.stride == (2, 2) and conv.padding == (0, 0)
            assert conv.in_channels == conv.out_channels == cell.pre1[1].out_channels and conv.bias is None
        else:
            assert isinstance(op, Identity)
    x = torch.randn(2, 3, 32, 32)
    cell = net.cells[net.reductions[0]]
    s = cell.pre1(torch.randn(2, net.cells[0].C_out, 32, 32))
    expected = cell.ops[9][2](cell.ops[9][1](torch.relu(s)))  # ReLU -> 1x1 conv stride 2 -> BN, nothing else
    assert torch.equal(cell.ops[9](s), expected)
    assert net(x).shape == (2, 10)


def test_odd_channel_factorized_reduction_splits_floor_and_ceil():
    """PNASNet mobile (F=54): the second stem cell has F/2 = 27 filters; its H[c-2] (the stem conv, twice the
    resolution) goes through a factorized reduction whose two paths have 13 and 14 filters."""
    from nasforge.ops import FactorizedReduce
    from nasforge.spaces.pnas import PNASNET5

    net = _pnas(num_classes=1000, resolution=224, stem="imagenet", concat="all").build(PNASNET5, C=54, N=3)
    fr = net.stem_cells[1].pre0
    assert isinstance(fr, FactorizedReduce)
    assert (fr.conv_1.out_channels, fr.conv_2.out_channels, fr.bn.num_features) == (13, 14, 27)
    assert fr.conv_1.stride == fr.conv_2.stride == (2, 2) and fr.conv_1.in_channels == 32
    assert sum(p.numel() for p in net.parameters()) == 5_064_487  # the paper's 5.1M, unchanged by the split
    y = fr(torch.randn(1, 32, 111, 111))  # the stem conv's odd 111x111 map of a 224 input
    assert y.shape == (1, 27, 56, 56)
    even = FactorizedReduce(8, 16)
    assert even.conv_1.out_channels == even.conv_2.out_channels == 8  # DARTS: halves, as before


def test_pnas_batchnorm_options_and_the_published_values():
    from nasforge.errors import ConfigError
    from nasforge.spaces.pnas import PNASNET5, PUBLISHED_IMAGENET_BN

    assert PUBLISHED_IMAGENET_BN == {"bn_eps": 1e-3, "bn_momentum": pytest.approx(1 - 0.9997)}
    default = _pnas(C=8, N=1, aux=True).build(PNASNET5)
    published = _pnas(C=8, N=1, aux=True, **PUBLISHED_IMAGENET_BN).build(PNASNET5)
    bns = [m for m in published.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) > 20 and all((m.eps, m.momentum) == (1e-3, 3e-4) for m in bns)  # aux head included
    assert all((m.eps, m.momentum) == (1e-5, 0.1) for m in default.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert _pnas(C=8, N=1).build(PNASNET5, bn_eps=1e-3).cells[0].pre1[2].eps == 1e-3  # a build override
    # the momentum is the weight of the batch in the running statistics
    bn, seen = bns[0], []
    hook = bn.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().mean((0, 2, 3))))
    before = bn.running_mean.clone()
    published.train()(torch.randn(4, 3, 32, 32))
    hook.remove()
    assert torch.allclose(bn.running_mean, (1 - 3e-4) * before + 3e-4 * seen[0], atol=1e-7)
    for bad in ({"bn_eps": 0}, {"bn_momentum": 1.5}, {"bn_momentum": "x"}):
        with pytest.raises(ConfigError, match="bn_"):
            _pnas(**bad)


# -- connectivity-aware derivation on NB201 ----------------------------------------------------------------
def _nb201_supernet():
    from nasforge.spaces.nb201 import NB201Space

    return NB201Space(C=4, N=1).supernet()


def test_nb201_derivation_rules():
    from nasforge.spaces.nb201 import NB201Space
    from nasforge.tables.nb201_arch import NB201_EDGES, NB201_OPS, format_arch

    space, sn = NB201Space(), _nb201_supernet()
    scores = torch.zeros(6, 5)
    scores[:, NB201_OPS.index("nor_conv_3x3")] = 1.0
    for e, (src, _) in enumerate(NB201_EDGES):
        if src == 0:  # `none` wins every edge leaving the input: the collapse the issue describes
            scores[e, NB201_OPS.index("none")] = 3.0
            scores[e, NB201_OPS.index("skip_connect")] = 2.6 if (src, _) == (0, 3) else 2.5  # no ties
    default = sn.derive({"cell": scores})
    assert space.is_degenerate(default)
    no_none = sn.derive({"cell": scores}, rule="no-none")
    assert "none" not in no_none and not space.is_degenerate(no_none)
    connected = sn.derive({"cell": scores}, rule="connected")
    assert not space.is_degenerate(connected)
    # brute force: `connected` is the best-scoring connected cell (sum of per-edge log-softmax)
    logp = torch.log_softmax(scores.double(), -1)
    best = max((c for c in itertools.product(range(5), repeat=6)
                if not space.is_degenerate(format_arch([NB201_OPS[k] for k in c]))),
               key=lambda c: sum(float(logp[e, k]) for e, k in enumerate(c)))
    assert connected == format_arch([NB201_OPS[k] for k in best])
    assert connected == "|none~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    # a connected argmax is kept by every rule but no-none's ban on `none`
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        s = torch.randn(6, 5, generator=g)
        d = sn.derive({"cell": s})
        if not space.is_degenerate(d):
            assert sn.derive({"cell": s}, rule="connected") == d
    from nasforge.errors import ConfigError

    with pytest.raises(ConfigError, match="derivation rule"):
        sn.derive({"cell": scores}, rule="best")


def test_derive_option_of_differentiable_and_bandit_strategies(tmp_path):
    from nasforge import api
    from nasforge.errors import ConfigError
    from nasforge.registry import STRATEGIES

    for name in ("darts", "single-darts", "manas", "manas-ls"):
        assert STRATEGIES.get(name).defaults["derive"] == "default"
        with pytest.raises(ConfigError, match="derive rule"):
            STRATEGIES.get(name)(derive="best")
    with pytest.raises(ConfigError, match="final=argmax"):
        STRATEGIES.get("manas")(derive="connected", final="sample")
    base = {"space": "nb201", "space_options": {"C": 4, "N": 1}, "dataset": "synthetic", "subset": 128,
            "batch_size": 32, "budget": {"epochs": 1}}
    for method, hp in (("single-darts", {"hessian_every": 0}), ("manas", {})):
        res = api.search({**base, "method": method, "hparams": {**hp, "derive": "connected"}}, run_root=tmp_path)
        rules = res["search"]["metrics"]["derived_by_rule"]
        assert set(rules) == {"default", "no-none", "connected"} and res["arch"] == rules["connected"]
        assert "none" not in rules["no-none"]
