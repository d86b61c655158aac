"""Issue 20 item 2: the darts/bats supernets' weighted mode grouped by source node (supernet/grouped.py) computes
what the per-edge reference (space option fused=false) computes: outputs, gradients of weights and alphas,
and BN running statistics, in train and eval mode; and the faster binary ops give the values of the old ones."""
from __future__ import annotations

import copy

import pytest
import torch

from nasforge.errors import ConfigError
from nasforge.ops.binary import ChannelShuffle, set_binarization, sign_ste
from nasforge.spaces.bats import BatsSpace
from nasforge.spaces.darts import DartsSpace, SearchCell


def _pair(space, **overrides):
    torch.manual_seed(0)
    ref = space.supernet(fused=False, **overrides)
    ref.double()  # float64: the two formulations then agree to ~1e-12, so any real difference shows
    fused = copy.deepcopy(ref)
    for cell in fused.cells:
        cell.fused = True
    with torch.no_grad():  # alphas away from uniform, so a wrong op weight would show
        for a in list(ref.alphas.values()) + list(fused.alphas.values()):
            a.copy_(torch.linspace(-1.0, 1.0, a.numel()).view_as(a))
    return ref, fused


def _assert_same(ref, fused, train: bool, steps: int = 2) -> None:
    ref.train(train)
    fused.train(train)
    torch.manual_seed(1)
    for _ in range(steps):
        x = torch.randn(4, 1, 12, 12, dtype=torch.float64)
        outs = []
        for net in (ref, fused):
            net.zero_grad()
            y = net(x)
            (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
            outs.append(y.detach())
        torch.testing.assert_close(outs[1], outs[0], rtol=1e-9, atol=1e-9)
        for (name, p), q in zip(ref.named_parameters(), fused.parameters()):
            assert (p.grad is None) == (q.grad is None), name
            if p.grad is not None:
                scale = p.grad.abs().max().item() + 1e-6
                torch.testing.assert_close(q.grad / scale, p.grad / scale, rtol=0, atol=1e-9, msg=lambda m: f"{name}: {m}")
        for (name, b), c in zip(ref.named_buffers(), fused.buffers()):
            torch.testing.assert_close(c, b, rtol=1e-9, atol=1e-9, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("C", [4, 3])  # odd C: FactorizedReduce splits its channels 1 + 2
def test_darts_grouped_forward_equals_the_per_edge_reference(train, C):
    ref, fused = _pair(DartsSpace(C=C, layers=3))  # cells 1 and 2 are reduction cells (stride-2 edges)
    assert all(not c.fused for c in ref.cells) and all(c.fused for c in fused.cells)
    _assert_same(ref, fused, train)
    assert all(a.grad is not None and a.grad.abs().sum() > 0 for a in fused.alphas.values())


def test_darts_grouped_forward_without_running_stats_and_unique_cells():
    ref, fused = _pair(DartsSpace(C=4, layers=3, unique_cells=True), track_running_stats=False)
    _assert_same(ref, fused, True)


def test_bats_grouped_forward_equals_the_reference():
    """The BATS op set: pools, skips and FactorizedReduce grouped, the binary convs per edge. Compared with
    real-valued convs (a sign flips on any rounding difference, so binary outputs are not a float comparison)."""
    ref, fused = _pair(BatsSpace(C=4, layers=3, groups=2, shuffle_groups=2))
    set_binarization(ref, act=False, weight=False)
    set_binarization(fused, act=False, weight=False)
    _assert_same(ref, fused, True)
    _assert_same(ref, fused, False, steps=1)


@pytest.mark.parametrize("train", [True, False])
def test_bats_grouped_forward_equals_the_reference_in_binary_mode(train):
    """1-bit activations and weights: the shared BN and sign per source node give the per-edge values (float64,
    where no rounding difference reaches a sign)."""
    ref, fused = _pair(BatsSpace(C=4, layers=3, groups=2, shuffle_groups=2))
    _assert_same(ref, fused, train, steps=1)


def test_fused_is_the_default_and_a_space_option():
    assert all(isinstance(c, SearchCell) and c.fused for c in DartsSpace(C=2, layers=3).supernet().cells)
    assert not any(c.fused for c in BatsSpace(C=4, layers=3, groups=2, shuffle_groups=2, fused=False).supernet().cells)
    with pytest.raises(ConfigError, match="fused"):
        DartsSpace(fused="maybe")


def test_sampled_mode_ignores_grouping():
    """A path runs exactly its ops in both forms (the grouping is a weighted-mode formulation only)."""
    ref, fused = _pair(DartsSpace(C=4, layers=3))
    path = ref.random_path(torch.Generator().manual_seed(3))
    ref.set_path(path)
    fused.set_path(path)
    ref.eval()
    fused.eval()
    x = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    assert torch.equal(ref(x), fused(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("zero", [1, -1])
def test_fast_sign_and_ste_equal_the_comparison_form(dtype, zero):
    torch.manual_seed(0)
    x = torch.cat([torch.randn(5000) * 2, torch.tensor([0.0, -0.0, 1.0, -1.0, 0.999, -0.999, 1.001])])
    x = x.to(dtype).requires_grad_()
    y = sign_ste(x, zero)
    g = torch.randn_like(y)
    y.backward(g)
    want = torch.where(x >= 0 if zero > 0 else x > 0, 1.0, -1.0).to(dtype)
    assert y.dtype == dtype and torch.equal(y, want)
    assert torch.equal(x.grad, g * (x.detach().abs() < 1).to(dtype))
    with torch.no_grad():
        assert torch.equal(sign_ste(x, zero), want)


def test_channel_shuffle_keeps_channels_last():
    x = torch.randn(2, 12, 5, 5)
    for g in (2, 3, 4):
        y = ChannelShuffle(g)(x.contiguous(memory_format=torch.channels_last))
        assert torch.equal(y, ChannelShuffle(g)(x)) and y.is_contiguous(memory_format=torch.channels_last)


def test_depthwise_conv_stays_fp32_under_bf16_autocast_only():
    from nasforge.ops.mobile import DepthwiseConv2d

    torch.manual_seed(0)
    conv = DepthwiseConv2d(6, 5, stride=2)
    x = torch.randn(2, 6, 9, 9)
    ref = torch.nn.functional.conv2d(x, conv.weight, None, 2, 2, groups=6)
    assert torch.equal(conv(x), ref)  # outside autocast: a plain conv
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x.bfloat16())
        DepthwiseConv2d.fp32_under_autocast = False
        try:
            y_bf16 = conv(x)
        finally:
            DepthwiseConv2d.fp32_under_autocast = True
    assert y.dtype == torch.float32 and torch.equal(y, torch.nn.functional.conv2d(x.bfloat16().float(), conv.weight,
                                                                                None, 2, 2, groups=6))
    assert y_bf16.dtype == torch.bfloat16


def test_darts_supernet_under_bf16_gives_finite_gradients():
    """oneDNN's bf16 backward of a dilated depthwise conv returns non-finite weight gradients at some shapes (found
    by the issue-20 step benchmark: dil_conv_5x5, C=4, 3 cells, batch 16, 32x32 input; the per-edge reference
    still shows it). The grouped path runs dilated depthwise convs as plain convs on polyphase components."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    net = DartsSpace(in_channels=3, num_classes=10, resolution=32, C=4, layers=3).supernet()
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(net(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
