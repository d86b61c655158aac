"""Binarization (spec B0): sign, the straight-through estimator, XNOR weights, binary convs, BOP counting."""
import pytest
import torch
import torch.nn as nn

from nasforge.hardware.binary import binary_cost
from nasforge.ops.binary import (
    BinaryConv2d, ChannelShuffle, binarization_state, binarize_weight, check_binary_weights, fold_binary_weights,
    latent_binary_weights, set_binarization, sign_ste,
)


def test_sign_is_exactly_plus_minus_one_and_sign_of_zero_is_plus_one():
    x = torch.tensor([-3.0, -1e-7, 0.0, 1e-7, 0.5, 7.0], requires_grad=True)
    b = sign_ste(x)
    assert b.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    with torch.no_grad():  # the no-grad (export) path gives the same values
        assert sign_ste(x).tolist() == b.tolist()
    assert set(sign_ste(torch.randn(1000)).unique().tolist()) == {-1.0, 1.0}


def test_ste_gradient_is_one_inside_and_zero_outside():
    x = torch.tensor([-2.0, -1.0, -0.99, -0.3, 0.0, 0.4, 0.99, 1.0, 1.5], requires_grad=True)
    sign_ste(x).backward(torch.full_like(x, 3.0))
    assert x.grad.tolist() == [0.0, 0.0, 3.0, 3.0, 3.0, 3.0, 3.0, 0.0, 0.0]


@pytest.mark.parametrize("center", [False, True])
def test_binarized_weights_take_two_values_per_output_channel(center):
    torch.manual_seed(0)
    w = torch.randn(6, 4, 3, 3) * 0.1 + 0.02
    wb = binarize_weight(w, center=center)
    ref = w - w.mean(dim=(1, 2, 3), keepdim=True) if center else w
    for c in range(6):
        values = sorted(set(wb[c].flatten().tolist()))
        scale = ref[c].abs().mean().item()
        assert len(values) == 2
        assert values == pytest.approx([-scale, scale], rel=1e-6)
    conv = BinaryConv2d(4, 8, 3, padding=1, groups=2, center_weights=center)
    assert check_binary_weights(nn.Sequential(conv)) == {"0": 8}


def test_weight_gradient_reaches_the_latent_weights_through_sign_and_scale():
    torch.manual_seed(0)
    w = (torch.randn(2, 3, 1, 1) * 0.5).requires_grad_()
    binarize_weight(w).sum().backward()
    # d/dw_i sum_j(alpha * sign(w_j)) = alpha * 1[|w_i|<1] + sum_j sign(w_j) * sign(w_i) / n
    n = 3
    for c in range(2):
        s = torch.where(w[c] >= 0, 1.0, -1.0)
        alpha = w[c].abs().mean()
        expected = alpha * (w[c].abs() < 1).float() + s.sum() * s / n
        assert torch.allclose(w.grad[c], expected.detach(), atol=1e-6)


def test_grouped_binary_conv_has_one_gth_of_the_dense_parameters():
    for groups in (1, 2, 4, 12):
        dense = BinaryConv2d(24, 24, 3, padding=1, groups=1)
        grouped = BinaryConv2d(24, 24, 3, padding=1, groups=groups)
        assert grouped.weight.numel() * groups == dense.weight.numel()


def test_binary_conv_forward_equals_a_real_conv_on_signs_and_binarized_weights():
    torch.manual_seed(0)
    conv = BinaryConv2d(4, 6, 3, padding=2, dilation=2, groups=2)
    x = torch.randn(2, 4, 7, 7)
    ref = nn.functional.conv2d(torch.where(x >= 0, 1.0, -1.0), binarize_weight(conv.weight), padding=2,
                               dilation=2, groups=2)
    assert torch.allclose(conv(x), ref, atol=1e-6)
    set_binarization(conv, act=True, weight=False)  # stage 1: binary activations, real weights
    ref1 = nn.functional.conv2d(torch.where(x >= 0, 1.0, -1.0), conv.weight, padding=2, dilation=2, groups=2)
    assert torch.allclose(conv(x), ref1, atol=1e-6)
    assert binarization_state(conv) == {"act": True, "weight": False}
    assert latent_binary_weights(conv) == []
    set_binarization(conv, act=True, weight=True)
    assert latent_binary_weights(conv) == [conv.weight]


def test_learned_scale_multiplies_each_output_channel():
    conv = BinaryConv2d(2, 3, 1, learned_scale=True)
    x = torch.randn(1, 2, 4, 4)
    base = conv(x).detach()
    with torch.no_grad():
        conv.scale.copy_(torch.tensor([1.0, 2.0, -1.0]).view(1, 3, 1, 1))
    out = conv(x)
    assert torch.allclose(out[:, 1], 2 * base[:, 1]) and torch.allclose(out[:, 2], -base[:, 2])


def test_folded_copy_computes_the_same_function_with_binary_tensors_stored():
    torch.manual_seed(0)
    net = nn.Sequential(BinaryConv2d(3, 8, 3, padding=1, groups=1), nn.BatchNorm2d(8)).eval()
    x = torch.randn(2, 3, 5, 5)
    folded = fold_binary_weights(net)
    assert torch.allclose(net(x), folded(x), atol=1e-6)
    assert check_binary_weights(folded) == {"0": 8}
    assert len(folded[0].weight[0].unique()) == 2


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert ChannelShuffle(4)(x).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_bops_of_a_small_network_equal_the_hand_count():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),              # real: 4*1*9 * 8*8 = 2304 MACs
        BinaryConv2d(4, 4, 3, padding=1, groups=2),            # binary: 4*(4/2)*9 * 8*8 = 4608 BOPs
        BinaryConv2d(4, 8, 1, stride=2),                       # binary: 8*4*1 * 4*4 = 512 BOPs
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),  # real: 80 MACs
    )
    cost = binary_cost(net, torch.zeros(5, 1, 8, 8))
    assert cost["bops"] == 4608 + 512
    assert cost["flops"] == 2304 + 80
    assert cost["ops"] == pytest.approx(2304 + 80 + (4608 + 512) / 64)
    assert cost["params"] == sum(p.numel() for p in net.parameters())
    set_binarization(net, act=True, weight=False)  # one operand real: those MACs are FLOPs
    cost1 = binary_cost(net, torch.zeros(1, 1, 8, 8))
    assert cost1["bops"] == 0 and cost1["flops"] == 2304 + 80 + 4608 + 512
    real = binary_cost(nn.Sequential(nn.Conv2d(1, 2, 1)), torch.zeros(1, 1, 3, 3))
    assert real["bops"] == 0 and real["flops"] == 18 and real["binarization"] is None


def test_sign_of_zero_can_be_minus_one_for_nonnegative_inputs():
    x = torch.tensor([-1.0, 0.0, 0.3], requires_grad=True)
    assert sign_ste(x, zero=-1).tolist() == [-1.0, -1.0, 1.0]
    with torch.no_grad():
        assert sign_ste(x, zero=-1).tolist() == [-1.0, -1.0, 1.0]
    with pytest.raises(ValueError, match="sign"):
        sign_ste(x, zero=0)
    with pytest.raises(ValueError, match="sign_zero"):
        BinaryConv2d(2, 2, 1, sign_zero=0)
