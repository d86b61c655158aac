"""Depthwise convolution with a fast CPU backward for kernels wider than 3 (issue 20).

Profile (1 thread, fp32, torch 2.13 CPU, oneDNN; docs/benchmarks.md "Depthwise backward"): oneDNN's
specialised depthwise weight-gradient kernel (``jit_dw``) only takes kernels at most 3 wide and no dilation;
a 5x5 or 7x7 depthwise weight gradient falls back to the generic grouped-conv kernel, which pads every
1-channel group to a 16x16 block: 10-18x slower than the 3x3 one on the same tensors (B 64, C 32, 28x28,
channels_last: 10.3 ms for 5x5, 16 ms for 7x7 against 0.6 ms for 3x3), while the forward and the input
gradient stay on fast kernels. Since every column of the weight gradient is an independent correlation, a
k x k weight gradient is a sum of k x 3 column tiles, each of which the fast kernel computes
(:func:`depthwise_weight_grad`). :class:`DepthwiseConvFn` uses it as the backward of an unchanged
``F.conv2d`` forward; :func:`depthwise_conv2d` routes a conv through it where that is faster (CPU, fp32,
oneDNN, odd square kernel >= 5, stride 1 or 2, 'same' padding) and through ``F.conv2d`` otherwise, and also
rewrites a dilation-2 conv as a plain conv on polyphase components (oneDNN's dilated depthwise backward is
7-50x slower than the undilated one). :class:`DepthwiseConv2d` is the module every depthwise conv of the
DARTS, BATS-naive and mobile op sets is built from; ``fast = False`` (set by a space's ``fused = false``)
keeps the plain ``nn.Conv2d`` path, bit-identical to the code before.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache
from itertools import combinations
from typing import Iterator, NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

#: a tile of the weight gradient: kernel width 3 (the widest oneDNN's depthwise weight-gradient kernel takes)
_TILE_W = 3
#: below this many input elements the tiles' extra calls cost more than they save (measured: B 64, C 4-8 at
#: 5x5-7x7 is 2-5x slower tiled, C >= 8 at 28x28 faster)
MIN_NUMEL = 1 << 18
#: the same for the tiles at stride 2 (channels-last images above SMALL_IMAGE pixels): measured 0.6x at
#: B 64, C 8, 28x28 and 1.3-1.5x from C 32 (docs/results/depthwise_backward.json)
MIN_NUMEL_TILED_STRIDED = 1 << 20
_TILED = [True]  # process-wide switch of the tiled weight gradient (A/B measurement: tiled_weight_grad)


@contextmanager
def tiled_weight_grad(enabled: bool) -> Iterator[None]:
    """Within the block, :func:`depthwise_conv2d` uses (True) or never uses (False) the tiled weight
    gradient; the previous setting is restored on exit. For A/B measurements in one process
    (benchmarks/step_speed.py, benchmarks/depthwise_backward.py)."""
    old, _TILED[0] = _TILED[0], bool(enabled)
    try:
        yield
    finally:
        _TILED[0] = old


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _is_channels_last(x: torch.Tensor) -> bool:
    """x is stored NHWC (and is not also plain-contiguous, as 1-channel or 1x1 tensors are)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


class _Tile(NamedTuple):
    """One tile along one axis: taps [a, a + t) of the kernel computed by a t-tap conv with padding q over the
    input zero-padded by P on both sides; the grad output enters at offset o of the tile conv's output
    (size n_out); `taps` are the kernel taps this tile gives exactly."""

    a: int
    t: int
    q: int
    o: int
    n_out: int
    taps: frozenset


def _tiles(k: int, n: int, stride: int, P: int, sizes: tuple[int, ...]) -> list[_Tile]:
    """Every tile of `sizes` taps for a k-tap, 'same'-padded axis of length n at `stride` over the input padded
    by P, with the kernel taps it gives exactly. Tap u is exact when every term of the full weight gradient
    that the tile drops (grad-output index j whose tile index j + o falls outside [0, n_out)) reads the
    zero padding (input index s*j + u - k//2 outside [0, n))."""
    p, out = k // 2, (n + 2 * (k // 2) - k) // stride + 1
    found = []
    for t in sizes:
        for q in range(0, min(t // 2, 2 if stride > 1 else t) + 1):  # oneDNN's fast kernel: padding <= 2 at stride 2
            n_out = (n + 2 * P + 2 * q - t) // stride + 1
            for a in range(-(t - 1), k):
                if (a - p + q + P) % stride:
                    continue
                o = (a - p + q + P) // stride
                lost = [j for j in range(out) if not 0 <= j + o < n_out]
                taps = frozenset(u for u in range(max(a, 0), min(a + t, k))
                                 if all(not 0 <= stride * j + u - p < n for j in lost))
                if taps and max(taps) - min(taps) + 1 == len(taps):  # an interval (always, by the rule)
                    found.append(_Tile(a, t, q, o, n_out, taps))
    return found


@lru_cache(maxsize=None)
def _plan(kh: int, kw: int, H: int, W: int, stride: tuple[int, int]
          ) -> tuple[int, int, tuple[tuple[_Tile, _Tile], ...]] | None:
    """The cheapest tiling of a kh x kw depthwise weight gradient into tiles oneDNN's fast kernel takes (any
    height, width at most 3): (Ph, Pw, ((row tile, column tile), ...)), or None. Cost model (measured, module
    docstring): one unit per kernel call and per zero-padded copy of the grad output, two for padding x."""
    outs = [(H + 2 * (kh // 2) - kh) // stride[0] + 1, (W + 2 * (kw // 2) - kw) // stride[1] + 1]
    best, best_cost = None, float("inf")
    for P in range(0, 4):
        covers = []
        for axis, (k, n, s) in enumerate(((kh, H, stride[0]), (kw, W, stride[1]))):
            sizes = ((k,) if k <= n or k <= _TILE_W else ()) + (3, 1) if axis == 0 else (3, 1)
            cands = _tiles(k, n, s, P, tuple(dict.fromkeys(sizes)))
            full = frozenset(range(k))
            axis_covers = []
            for r in range(1, 4):
                for combo in combinations(cands, r):
                    if frozenset().union(*(c.taps for c in combo)) == full:
                        axis_covers.append(combo)
                if axis_covers:
                    break
            covers.append(axis_covers)
        for rows in covers[0]:
            for cols in covers[1]:
                pairs = tuple((r, c) for r in rows for c in cols)
                copies = sum(1 for r, c in pairs if r.o or c.o or r.n_out != outs[0] or c.n_out != outs[1])
                cost = len(pairs) + copies + (2 if P else 0)
                if cost < best_cost:
                    best, best_cost = (P, P, pairs), cost
    return best


_WORKSPACE = threading.local()  # per thread: {slot: flat buffer}, reused across calls (see _padded)


def _padded(t: torch.Tensor, pads: tuple[int, int, int, int], slot: str) -> torch.Tensor:
    """``F.pad(t, pads)`` (left, right, top, bottom; negative crops) for a 4-D `t`, in t's memory format,
    written into a per-thread workspace reused across calls: a fresh tensor of this size costs more in page
    faults than the copy itself on this machine (a 7 MB zeros 2.4-3 ms against 0.3-0.9 ms to refill an
    existing buffer). The result is valid until the next call with the same `slot` in this thread."""
    l, r, top, bot = pads
    B, C, H, W = t.shape
    Hn, Wn = H + top + bot, W + l + r
    n = B * C * Hn * Wn
    bufs = getattr(_WORKSPACE, "bufs", None)
    if bufs is None:
        bufs = _WORKSPACE.bufs = {}
    buf = bufs.get(slot)
    if buf is None or buf.numel() < n or buf.dtype != t.dtype or buf.device != t.device:
        buf = bufs[slot] = torch.empty(n, dtype=t.dtype, device=t.device)
    if _is_channels_last(t):
        out = buf[:n].view(B, Hn, Wn, C).permute(0, 3, 1, 2)
    else:
        out = buf[:n].view(B, C, Hn, Wn)
    r0, c0 = max(top, 0), max(l, 0)  # where t's kept part lands
    sr, sc = max(-top, 0), max(-l, 0)  # where it starts in t
    nr, nc = H - sr - max(-bot, 0), W - sc - max(-r, 0)
    out[:, :, :r0].zero_()
    out[:, :, r0 + nr:].zero_()
    out[:, :, r0:r0 + nr, :c0].zero_()
    out[:, :, r0:r0 + nr, c0 + nc:].zero_()
    out[:, :, r0:r0 + nr, c0:c0 + nc].copy_(t[:, :, sr:sr + nr, sc:sc + nc])
    return out


#: channels-last inputs with at most this many pixels per image take the batch-as-channels formulation
#: (measured: at 7x7 and below it beats the tiles, at 14x14 and above the tiles win)
SMALL_IMAGE = 64


def _weight_grad_by_forward(x: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int],
                            stride: tuple[int, int]) -> torch.Tensor:
    """The depthwise weight gradient as one forward depthwise conv with batch and channel folded together:
    image (b, c) of x, ``[1, B*C, H, W]``, correlated with its own grad output ``[B*C, 1, H', W']`` as the
    kernel (dilated by the stride), padding k // 2, gives ``[B*C, kh', kw']`` (kh' >= kh: cropped), summed
    over the batch. oneDNN runs it on its forward depthwise kernel (5-14x torch's weight-gradient kernel
    on contiguous tensors); channels-last tensors pay two layout copies first."""
    kh, kw = kernel
    B, C, H, W = x.shape
    xi = x.contiguous().reshape(1, B * C, H, W)
    gi = grad_out.contiguous().reshape(B * C, 1, *grad_out.shape[2:])
    y = F.conv2d(xi, gi, None, 1, (kh // 2, kw // 2), stride, B * C)
    return y[0, :, :kh, :kw].reshape(B, C, kh, kw).sum(0).unsqueeze(1)


def depthwise_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int],
                          stride: tuple[int, int]) -> torch.Tensor | None:
    """The weight gradient ``[C, 1, kh, kw]`` of ``F.conv2d(x, w, stride=stride, padding=(kh//2, kw//2),
    groups=C)`` for `x` ``[B, C, H, W]`` and `grad_out` ``[B, C, H', W']`` by the faster of two exact
    reformulations (module docstring): contiguous x and small channels-last images (<= SMALL_IMAGE pixels)
    as one forward depthwise conv with batch and channels folded (:func:`_weight_grad_by_forward`), larger
    channels-last images as a sum of tiles at most 3 taps wide (each one call of oneDNN's depthwise
    weight-gradient kernel). Equal to torch's weight gradient up to float rounding (another summation
    order). Returns None where the shape cannot be tiled (the caller uses torch's kernel)."""
    kh, kw = kernel
    if kh % 2 == 0 or kw % 2 == 0:
        return None
    if not _is_channels_last(x) or x.shape[2] * x.shape[3] <= SMALL_IMAGE:
        return _weight_grad_by_forward(x, grad_out, kernel, stride)
    return _tiled_weight_grad(x, grad_out, kernel, stride)


def _tiled_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int],
                       stride: tuple[int, int]) -> torch.Tensor | None:
    """The tiled form of :func:`depthwise_weight_grad` (channels-last x); None where no plan exists."""
    kh, kw = kernel
    plan = _plan(kh, kw, x.shape[2], x.shape[3], tuple(stride))
    if plan is None:
        return None
    Ph, Pw, pairs = plan
    C = x.shape[1]
    fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    xb = _padded(x, (Pw, Pw, Ph, Ph), "x") if Ph or Pw else x
    g = grad_out.contiguous(memory_format=fmt)
    Ho, Wo = g.shape[2:]
    out = x.new_empty((C, 1, kh, kw))
    for r, c in pairs:  # the plan's tiles cover every tap; where two give one, both are exact
        pads = (c.o, c.n_out - Wo - c.o, r.o, r.n_out - Ho - r.o)  # negative: crops the dropped zero terms
        gt = _padded(g, pads, "grad") if any(pads) else g
        w_tile = torch.empty((C, 1, r.t, c.t), dtype=x.dtype, device=x.device).contiguous(memory_format=fmt)
        dw = torch.ops.aten.convolution_backward(gt, xb, w_tile, None, stride, (r.q, c.q), (1, 1), False,
                                                 (0, 0), C, (False, True, False))[1]
        u0, u1, v0, v1 = min(r.taps), max(r.taps) + 1, min(c.taps), max(c.taps) + 1
        out[:, :, u0:u1, v0:v1] = dw[:, :, u0 - r.a:u1 - r.a, v0 - c.a:v1 - c.a]
    return out


def _fast_backward_applies(x: torch.Tensor, w: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
                           dilation: tuple[int, int], groups: int) -> bool:
    """Where the tiled weight gradient beats torch's kernel: the CPU with oneDNN, fp32 outside a reduced-
    precision autocast, at least MIN_NUMEL input elements, a depthwise conv (groups = C_in = C_out) with an odd kernel wider than 3 whose
    padding is 'same', stride 1 or 2, no dilation, and something to differentiate."""
    kh, kw = w.shape[-2:]
    tiled_strided = stride != (1, 1) and _is_channels_last(x) and x.shape[-2] * x.shape[-1] > SMALL_IMAGE
    return (_TILED[0] and x.device.type == "cpu" and x.dtype == torch.float32
            and x.numel() >= (MIN_NUMEL_TILED_STRIDED if tiled_strided else MIN_NUMEL) and w.dtype == torch.float32 and x.dim() == 4
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and (x.requires_grad or w.requires_grad) and torch.is_grad_enabled()
            and not (torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") != torch.float32)
            and groups == x.shape[1] == w.shape[0] and w.shape[1] == 1 and max(kh, kw) > _TILE_W
            and kh % 2 == 1 and kw % 2 == 1 and padding == (kh // 2, kw // 2) and dilation == (1, 1)
            and stride in ((1, 1), (2, 2), (1, 2), (2, 1)))


class DepthwiseConvFn(torch.autograd.Function):
    """``F.conv2d(x, w, None, stride, padding, 1, groups)`` whose backward takes the input gradient from
    torch's kernel and the weight gradient from :func:`depthwise_weight_grad` (torch's kernel where that
    declines). Values identical to ``F.conv2d``; gradients equal up to float rounding. Double backward is
    not supported (use ``F.conv2d`` for second-order terms; :func:`depthwise_conv2d` does when grad mode is
    off)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
                groups: int, x_node=None, w_node=None) -> torch.Tensor:
        ctx.save_for_backward(x, w)
        ctx.conf = (stride, padding, groups)
        ctx.nodes = (x_node, w_node)
        return F.conv2d(x, w, None, stride, padding, 1, groups)

    @staticmethod
    def _needed(ctx, i: int) -> bool:
        """Whether this backward must produce input i's gradient: it requires grad and (where its autograd
        node is known) the engine will run that node. torch's own conv skips a gradient nobody asked for
        (e.g. the weights' in DARTS' alpha step, ``autograd.grad(loss, alphas)``); a custom Function only
        learns it this way."""
        if not ctx.needs_input_grad[i]:
            return False
        node = ctx.nodes[i]
        if node is None:
            return True
        try:
            return bool(torch._C._will_engine_execute_node(node))
        except RuntimeError:  # outside what the engine can answer: compute it
            return True

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, w = ctx.saved_tensors
        stride, padding, groups = ctx.conf
        need_x, need_w = DepthwiseConvFn._needed(ctx, 0), DepthwiseConvFn._needed(ctx, 1)
        gw = depthwise_weight_grad(x, grad, tuple(w.shape[-2:]), stride) if need_w else None
        gx = None
        if need_x or (need_w and gw is None):
            gx, gw_ref, _ = torch.ops.aten.convolution_backward(grad, x, w, None, stride, padding, (1, 1), False,
                                                                (0, 0), groups, (need_x, need_w and gw is None, False))
            gw = gw_ref if need_w and gw is None else gw
        if gw is not None:
            gw = gw.contiguous(memory_format=torch.channels_last if _is_channels_last(w) else torch.contiguous_format)
        return (gx if need_x else None), gw, None, None, None, None, None


def _conv(x: torch.Tensor, w: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
          dilation: tuple[int, int], groups: int, fast: bool) -> torch.Tensor:
    if fast and _fast_backward_applies(x, w, stride, padding, dilation, groups):
        # views give every input a node of its own that the engine can be asked about (DepthwiseConvFn._needed)
        xv, wv = (t.view_as(t) if t.requires_grad else t for t in (x, w))
        return DepthwiseConvFn.apply(xv, wv, stride, padding, groups, xv.grad_fn, wv.grad_fn)
    return F.conv2d(x, w, None, stride, padding, dilation, groups)


def depthwise_conv2d(x: torch.Tensor, w: torch.Tensor, stride: int | Sequence[int] = 1,
                     padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                     groups: int | None = None, fast: bool = True) -> torch.Tensor:
    """``F.conv2d(x, w, None, stride, padding, dilation, groups)`` for a depthwise (groups None = C) or grouped
    `w` ``[C_out, C/groups, kh, kw]``: ``[B, C, H, W] -> [B, C_out, H', W']``, same values (up to float
    rounding) and gradients. With `fast`:

    - a dilation-2 conv with 'same' padding runs as a plain conv on the polyphase components of x, because
      oneDNN's dilated depthwise backward is 7-50x slower than the undilated one on this CPU (issue 20:
      3x3 d2 stride 2, 64 channels, 28x28: 44 ms against 2.4 ms for the input gradient). Exact rewrite:
      at stride 2, ``out[i] = sum_u w[u] x[2i + 2(u - m)]`` reads only the even pixels, so it is the plain
      conv (padding m = k // 2) of ``x[::2, ::2]``; at stride 1, output pixel ``2i + a`` reads only pixels of
      parity a: the four parity images (x zero-padded to even size) go through one plain conv stacked along
      the batch, then interleave back;
    - a depthwise conv with an odd kernel wider than 3 takes its weight gradient from
      :func:`depthwise_weight_grad` on the CPU (:class:`DepthwiseConvFn`).

    ``fast=False`` is exactly ``F.conv2d``. Raises what ``F.conv2d`` raises for inconsistent shapes."""
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    C, k = x.shape[1], w.shape[-1]
    G = C if groups is None else groups
    m = k // 2
    if (not fast or dilation != (2, 2) or padding != (2 * m, 2 * m) or w.shape[-2] != k or k % 2 == 0
            or stride not in ((1, 1), (2, 2))):
        return _conv(x, w, stride, padding, dilation, G, fast)
    cl = _is_channels_last(x)
    fmt = torch.channels_last if cl else torch.contiguous_format  # slices and crops keep x's memory format
    if stride == (2, 2):
        return _conv(x[:, :, ::2, ::2].contiguous(memory_format=fmt), w, (1, 1), (m, m), (1, 1), G, fast)
    B, _, H, W = x.shape
    xp = F.pad(x, (0, W % 2, 0, H % 2))
    H2, W2 = xp.shape[2] // 2, xp.shape[3] // 2
    if cl:  # rearrange in the NHWC view, so the stacked tensor stays channels-last
        v = xp.permute(0, 2, 3, 1).reshape(B, H2, 2, W2, 2, C).permute(2, 4, 0, 1, 3, 5)
        phases = v.reshape(4 * B, H2, W2, C).permute(0, 3, 1, 2)
    else:
        phases = xp.reshape(B, C, H2, 2, W2, 2).permute(3, 5, 0, 1, 2, 4).reshape(4 * B, C, H2, W2)
    y = _conv(phases, w, (1, 1), (m, m), (1, 1), G, fast)
    C = y.shape[1]  # output channels
    if cl:
        y = y.permute(0, 2, 3, 1).reshape(2, 2, B, H2, W2, C).permute(2, 3, 0, 4, 1, 5)
        y = y.reshape(B, 2 * H2, 2 * W2, C).permute(0, 3, 1, 2)
    else:
        y = y.reshape(2, 2, B, C, H2, W2).permute(2, 3, 4, 0, 5, 1).reshape(B, C, 2 * H2, 2 * W2)
    return y if y.shape[2:] == (H, W) else y[:, :, :H, :W].contiguous(memory_format=fmt)


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise k x k conv (groups = channels, no bias) ``[B, C, H, W] -> [B, C, H', W']``; padding defaults
    to 'same' (dilation x k // 2). An ``nn.Conv2d`` (same parameters, same state dict) whose forward is
    :func:`depthwise_conv2d` while ``fast`` (the default) and plain ``nn.Conv2d.forward`` with ``fast = False``
    (:func:`set_fast_depthwise`; a space's ``fused = false`` sets it).

    Under a reduced-precision autocast (bf16/fp16) with ``fp32_under_autocast`` it runs in fp32 (autocast
    off, input cast up), while the pointwise and dense convs around it follow autocast: oneDNN's bf16
    depthwise backward is several times slower than fp32 on CPUs (issue 20 profile: 4 vs 15 GFLOP/s)."""

    #: the per-op precision rule (class-wide: it is a property of the kernel, not of one layer)
    fp32_under_autocast: bool = True

    def __init__(self, C: int, kernel: int, stride: int = 1, padding: int | None = None, dilation: int = 1) -> None:
        super().__init__(C, C, kernel, stride, dilation * (kernel // 2) if padding is None else padding,
                         dilation=dilation, groups=C, bias=False)
        self.fast = True

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            return super().forward(x)
        return depthwise_conv2d(x, self.weight, self.stride, self.padding, self.dilation, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        if (self.fp32_under_autocast and torch.is_autocast_enabled(device)
                and torch.get_autocast_dtype(device) != torch.float32):
            with torch.autocast(device, enabled=False):
                return self._forward(x.float())
        return self._forward(x)


def set_fast_depthwise(module: nn.Module, fast: bool) -> nn.Module:
    """Set ``fast`` on every :class:`DepthwiseConv2d` in `module` (False: the plain ``nn.Conv2d`` reference
    path); returns `module`."""
    for m in module.modules():
        if isinstance(m, DepthwiseConv2d):
            m.fast = bool(fast)
    return module


__all__ = ["DepthwiseConv2d", "DepthwiseConvFn", "depthwise_conv2d", "depthwise_weight_grad", "set_fast_depthwise",
           "tiled_weight_grad"]
