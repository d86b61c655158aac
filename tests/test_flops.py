import random

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasforge.tables import MacroTable
from nasforge.errors import UserError
from nasforge.hardware.flops import count_flops, count_params, model_cost
from nasforge.spaces.macro import MacroSpace
from nasforge.spaces.nb201 import NB201Space, SearchCell


def test_conv_and_linear_flops_follow_the_formula():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 4, 1, stride=2, bias=False), nn.Flatten(), nn.Linear(4 * 5 * 5, 7))
    cost = model_cost(net, torch.zeros(2, 3, 10, 10))
    conv1 = 2 * 8 * 3 * 9 * 10 * 10  # per sample: 2 * C_out * C_in * k * k * H_out * W_out
    conv2 = 2 * 4 * 8 * 5 * 5
    linear = 2 * 100 * 7
    assert cost.flops == 2 * (conv1 + conv2 + linear)
    assert cost.macs * 2 == cost.flops and cost.flops_per_sample == conv1 + conv2 + linear
    assert cost.params == count_params(net) == sum(p.numel() for p in net.parameters())
    assert cost.by_child["0"] == 2 * conv1 and cost.by_child["1"] == 0 and cost.by_child["5"] == 2 * linear


def test_functional_convs_in_a_custom_forward_are_counted():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 4, 3, 3))

        def forward(self, x):
            return F.conv2d(x, self.w, padding=1).mean((2, 3))

    assert count_flops(Functional(), torch.zeros(1, 4, 8, 8)) == 2 * 6 * 4 * 9 * 64


def test_counting_leaves_mode_and_running_statistics_alone():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    before = net[1].running_mean.clone()
    model_cost(net, torch.randn(4, 1, 8, 8))
    assert net.training and torch.equal(net[1].running_mean, before)


def test_macs_and_params_equal_published_nas_bench_macro_values(tables_dir):
    """NAS-Bench-Macro's `flops` field counts multiply-adds of its CIFAR-10 networks (thop's convention)."""
    table = MacroTable.load(tables_dir)
    space = MacroSpace(in_channels=3, num_classes=10, resolution=32)
    rng = random.Random(0)
    for arch in ["00000000", "22222222"] + rng.sample(table.archs(), 4):
        cost = model_cost(space.build(arch), torch.zeros(1, 3, 32, 32))
        rec = table.record(arch)
        assert (cost.macs, cost.params) == (rec["flops"], rec["params"]), arch


def test_fused_supernet_counts_the_same_convs_as_the_reference_sum():
    """The fused NB201 forward runs every conv op; on top it only adds the depthwise sum-pool (9 MACs/pixel)."""
    sn = NB201Space(in_channels=1, num_classes=10, resolution=28, C=4, N=1).supernet()
    x = torch.zeros(2, 1, 28, 28)
    SearchCell.fused = False
    try:
        reference = count_flops(sn, x)
    finally:
        SearchCell.fused = True
    pixels = [4 * 28 * 28, 8 * 14 * 14, 16 * 7 * 7]  # C*H*W of the one cell in each of the three stages
    # 3 source nodes per cell, batch 2, 9 multiply-adds of 2 FLOPs per output element
    assert count_flops(sn, x) - reference == 3 * 2 * 9 * 2 * sum(pixels)


def test_bad_example_is_a_user_error():
    with pytest.raises(UserError, match="example batch"):
        model_cost(nn.Linear(3, 2), torch.tensor(1.0))


def test_step_flop_counter_counts_a_depthwise_weight_gradient_once_not_c_times():
    """torch's conv backward formula ignores groups (a depthwise conv's weight gradient came out C x too
    high); step_flop_counter counts one forward's worth per requested gradient."""
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from nasforge.hardware.flops import step_flop_counter

    x = torch.randn(4, 16, 8, 8, requires_grad=True)
    w = torch.randn(16, 1, 3, 3, requires_grad=True)
    fwd = 2 * 4 * 16 * 9 * 64
    counts = []
    for counter in (FlopCounterMode(display=False), step_flop_counter()):
        with counter:
            F.conv2d(x, w, padding=1, groups=16).sum().backward()
        counts.append(counter.get_total_flops())
    assert counts[0] > 3 * fwd  # the overcount this counter corrects
    assert counts[1] == 3 * fwd  # forward + input gradient + weight gradient
