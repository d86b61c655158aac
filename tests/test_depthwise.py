"""The depthwise conv with the tiled CPU weight gradient (nasforge.ops.depthwise, issue 20): exact against
torch's conv (gradcheck in float64, allclose in fp32 at the spaces' shapes), routed only where it applies,
and the spaces' ``fused = false`` keeps the plain nn.Conv2d path bit for bit."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasforge.ops.depthwise import (DepthwiseConv2d, DepthwiseConvFn, _plan, depthwise_conv2d,
                                    depthwise_weight_grad, set_fast_depthwise)


def _fmt(t: torch.Tensor, cl: bool) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if cl else t.contiguous()


@pytest.mark.parametrize("k,stride", [(5, 1), (5, 2), (7, 1), (7, 2), (3, 2)])
@pytest.mark.parametrize("H,W,cl", [(5, 5, False), (7, 6, True), (4, 9, False), (9, 10, True), (12, 7, True)])
def test_gradcheck_float64(k, stride, H, W, cl):
    """Both formulations: contiguous and small channels-last images fold batch into channels; channels-last
    images above SMALL_IMAGE pixels (9x10, 12x7) take the column tiles."""
    g = torch.Generator().manual_seed(k * 100 + H * 10 + W + stride)
    x = _fmt(torch.randn(2, 3, H, W, dtype=torch.float64, generator=g), cl).requires_grad_()
    w = _fmt(torch.randn(3, 1, k, k, dtype=torch.float64, generator=g), cl).requires_grad_()
    fn = lambda x, w: DepthwiseConvFn.apply(x, w, (stride, stride), (k // 2, k // 2), 3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w), eps=1e-6, atol=1e-8)
    assert torch.equal(fn(x, w), F.conv2d(x, w, None, stride, k // 2, 1, 3))  # forward unchanged


@pytest.mark.parametrize("k,stride,cl", list(itertools.product((5, 7), (1, 2), (False, True))))
def test_weight_grad_matches_torch_fp32_real_shapes(k, stride, cl):
    """Batch 64 at the darts/mobile spaces' sizes: the tiled weight gradient equals torch's to float rounding."""
    g = torch.Generator().manual_seed(0)
    for C, H in ((16, 28), (32, 14), (24, 7), (40, 4)):
        x = _fmt(torch.randn(64, C, H, H, generator=g), cl)
        w = _fmt(torch.randn(C, 1, k, k, generator=g), cl)
        y = F.conv2d(x, w, None, stride, k // 2, 1, C)
        go = _fmt(torch.randn(y.shape, generator=g), cl)
        ref = torch.ops.aten.convolution_backward(go, x, w, None, (stride,) * 2, (k // 2,) * 2, (1, 1), False,
                                                  (0, 0), C, (False, True, False))[1]
        got = depthwise_weight_grad(x, go, (k, k), (stride, stride))
        assert got is not None and got.shape == ref.shape
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-3 * ref.abs().max().item())


@pytest.mark.parametrize("k,stride,dilation,cl", [(5, 1, 1, True), (7, 2, 1, False), (5, 2, 2, True),
                                                  (5, 1, 2, False), (3, 1, 2, True), (3, 2, 1, False)])
def test_module_values_and_gradients_match_plain_conv(k, stride, dilation, cl):
    """DepthwiseConv2d (fast) against nn.Conv2d with the same weight, all strides/dilations the spaces use."""
    torch.manual_seed(0)
    fast = DepthwiseConv2d(12, k, stride, dilation=dilation)
    plain = nn.Conv2d(12, 12, k, stride, dilation * (k // 2), dilation=dilation, groups=12, bias=False)
    plain.weight.data.copy_(fast.weight.data)
    x = _fmt(torch.randn(64, 12, 29, 28), cl)  # above MIN_NUMEL, also after the polyphase split
    xs = [x.clone().requires_grad_() for _ in range(2)]
    ys = [fast(xs[0]), plain(xs[1])]
    torch.testing.assert_close(ys[0], ys[1], rtol=1e-5, atol=1e-5)
    go = torch.randn_like(ys[1])
    ys[0].backward(go)
    ys[1].backward(go)
    torch.testing.assert_close(xs[0].grad, xs[1].grad, rtol=1e-5, atol=1e-5)
    scale = plain.weight.grad.abs().max().item()  # a sum of ~50k products: rounding scales with the largest
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, rtol=1e-4, atol=2e-5 * scale)


def test_routing_only_where_it_pays():
    """The custom backward runs for fp32 CPU depthwise convs wider than 3 with grad; plain F.conv2d for 3x3,
    small inputs, grouped (non-depthwise) weights, no grad, bf16 autocast and other devices (meta here)."""
    x = torch.randn(64, 8, 32, 32, requires_grad=True)
    small = torch.randn(2, 8, 9, 9, requires_grad=True)  # below MIN_NUMEL: torch's kernel is faster
    assert "DepthwiseConvFn" not in type(depthwise_conv2d(small, torch.randn(8, 1, 5, 5), 1, 2).grad_fn).__name__
    assert type(depthwise_conv2d(x, torch.randn(8, 1, 5, 5), 1, 2).grad_fn).__name__ == "DepthwiseConvFnBackward"
    assert "DepthwiseConvFn" not in type(depthwise_conv2d(x, torch.randn(8, 1, 3, 3), 1, 1).grad_fn).__name__
    assert "DepthwiseConvFn" not in type(depthwise_conv2d(x, torch.randn(8, 2, 5, 5), 1, 2, groups=4).grad_fn).__name__
    assert "DepthwiseConvFn" not in type(depthwise_conv2d(x, torch.randn(8, 1, 5, 5), 1, 2, fast=False).grad_fn).__name__
    with torch.no_grad():
        assert depthwise_conv2d(x, torch.randn(8, 1, 5, 5), 1, 2).grad_fn is None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = depthwise_conv2d(x, torch.randn(8, 1, 5, 5), 1, 2)
    assert "DepthwiseConvFn" not in type(y.grad_fn).__name__
    xm = torch.empty(64, 8, 32, 32, device="meta", requires_grad=True)
    ym = depthwise_conv2d(xm, torch.empty(8, 1, 5, 5, device="meta"), 2, 2)
    assert ym.shape == (64, 8, 16, 16) and "DepthwiseConvFn" not in type(ym.grad_fn).__name__


def test_tiles_match_torch_on_contiguous_input_too():
    """The tiled form is exact whatever the layout (the dispatcher sends contiguous tensors elsewhere)."""
    from nasforge.ops.depthwise import _tiled_weight_grad

    g = torch.Generator().manual_seed(3)
    for k, s in ((5, 1), (7, 2)):
        x = torch.randn(8, 6, 13, 13, generator=g)
        go = torch.randn(F.conv2d(x, torch.zeros(6, 1, k, k), None, s, k // 2, 1, 6).shape, generator=g)
        ref = torch.ops.aten.convolution_backward(go, x, torch.zeros(6, 1, k, k), None, (s, s), (k // 2,) * 2,
                                                  (1, 1), False, (0, 0), 6, (False, True, False))[1]
        torch.testing.assert_close(_tiled_weight_grad(x, go, (k, k), (s, s)), ref, rtol=1e-4, atol=1e-4)


def test_plan_covers_every_tap_with_fast_kernel_shapes():
    for k, n, s in itertools.product((5, 7, 9), (1, 2, 3, 4, 7, 14, 28), (1, 2)):
        plan = _plan(k, k, n, n, (s, s))
        assert plan is not None, (k, n, s)
        taps = {(u, v) for r, c in plan[2] for u in r.taps for v in c.taps}
        assert taps == set(itertools.product(range(k), range(k)))
        assert all(c.t <= 3 for _, c in plan[2])  # widths oneDNN's depthwise weight-gradient kernel takes


def test_fast_false_is_the_plain_conv_bit_for_bit():
    torch.manual_seed(1)
    m = DepthwiseConv2d(8, 5, 2)
    set_fast_depthwise(m, False)
    x = torch.randn(4, 8, 11, 11, requires_grad=True)
    y = m(x)
    ref = F.conv2d(x, m.weight, None, 2, 2, 1, 8)
    assert torch.equal(y, ref)
    gx, gw = torch.autograd.grad(y.square().sum(), (x, m.weight))
    rx, rw = torch.autograd.grad(ref.square().sum(), (x, m.weight))
    assert torch.equal(gx, rx) and torch.equal(gw, rw)


@pytest.mark.parametrize("space,opts", [("darts", {"C": 4, "layers": 3, "nodes": 2}), ("mobile", {}),
                                        ("fbnet", {"width": 0.25})])
def test_space_fused_option_selects_the_path(space, opts):
    from nasforge.registry import SPACES

    for fused in (True, False):
        sp = SPACES.get(space)(in_channels=1, num_classes=10, resolution=28, fused=fused, **opts)
        net = sp.supernet()
        dws = [m for m in net.modules() if isinstance(m, DepthwiseConv2d)]
        assert dws and all(m.fast is fused for m in dws)
        built = sp.build(sp.sample(__import__("random").Random(0)))
        assert all(m.fast is fused for m in built.modules() if isinstance(m, DepthwiseConv2d))
    # same parameters and state-dict keys as the nn.Conv2d it replaces
    assert isinstance(dws[0], nn.Conv2d) and "weight" in dws[0].state_dict()


def test_depthwise_backward_benchmark_runs_at_toy_size():
    """benchmarks/depthwise_backward.py (the profile behind docs/benchmarks.md) cannot rot."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import nasforge

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(Path(nasforge.__file__).resolve().parents[1])}
    p = subprocess.run([sys.executable, str(repo / "benchmarks" / "depthwise_backward.py"), "--quick"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    rows = json.loads(p.stdout)["rows"]
    tiled = [r for r in rows if "weight_grad_tiled_ms" in r]
    assert tiled and all(r["k"] > 3 and r["dilation"] == 1 for r in tiled)
    assert all(r["max_rel_err"] < 1e-5 for r in tiled)


def test_backward_skips_gradients_nobody_asked_for(monkeypatch):
    """As torch's conv does: autograd.grad w.r.t. something upstream (DARTS' alpha step) must not compute
    the conv weights' gradient; .backward() and grad w.r.t. the weight still do."""
    import nasforge.ops.depthwise as dw

    calls = []
    real = dw.depthwise_weight_grad
    monkeypatch.setattr(dw, "depthwise_weight_grad", lambda *a: calls.append(1) or real(*a))
    alpha = torch.ones((), requires_grad=True)
    m = DepthwiseConv2d(8, 5)
    x = torch.randn(64, 8, 32, 32)
    y = m(x * alpha)
    (ga,) = torch.autograd.grad(y.sum(), alpha, retain_graph=True)
    assert calls == [] and torch.isfinite(ga)
    (gw,) = torch.autograd.grad(y.sum(), m.weight, retain_graph=True)
    assert calls == [1]
    y.sum().backward()
    assert calls == [1, 1] and torch.allclose(m.weight.grad, gw)
