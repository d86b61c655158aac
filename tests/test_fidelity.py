"""Networks as published: auxiliary heads reach the training engine, inference-time parameter counts,
any batch size (including a last batch of one image) in every network and supernet."""
from __future__ import annotations

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


@pytest.mark.parametrize("name", [n for n in sorted(SMALL) if SPACES.get(n).supports_weight_sharing])
def test_a_batch_of_one_trains_in_every_supernet(name):
    supernet = small_space(name).supernet().train()
    x, y = torch.randn(1, 1, 28, 28), torch.tensor([1])
    F.cross_entropy(supernet(x), y).backward()  # weighted mode: every op
    assert all(a.grad is not None for a in supernet.arch_parameters())
    supernet.set_path(supernet.random_path(torch.Generator().manual_seed(0)))
    F.cross_entropy(supernet(x), y).backward()  # sampled mode: one op per edge


def test_a_last_batch_of_one_image_trains_with_the_aux_head():
    """Issue: `train --arch darts_v2.json --space-opt auxiliary=true --subset 257` (batches 128, 128, 1)
    crashed in the head's BatchNorm."""
    space = small_space("darts")
    train, _ = synthetic(n_train=9, n_test=4, resolution=28)  # batches of 4: 4, 4, 1
    net = space.build(space.sample(random.Random(2)), auxiliary=True)
    out = train_model(net, train, None, TrainConfig(epochs=1, batch_size=4, aux_weight=0.4, crop_padding=0,
                                                    hflip=False))
    assert out["history"][0]["train_loss"] > 0
