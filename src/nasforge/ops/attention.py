"""Vision-transformer building blocks (DeiT-style, pre-norm) shared by the `vit` super-transformer and the
standalone networks built from its subnets.

The arithmetic lives in plain functions that take their weights as arguments (`patch_tokens`,
`attention`, `mlp`), so a supernet that passes *slices* of its large tensors and a standalone network that
passes its own (copied) tensors run the very same operations in the same order; that is what makes a
subnet's logits identical in both.

MAC convention (what `vit_macs` counts, and what nasforge.hardware.flops counts on these modules, divided
by 2): multiply-accumulates of convolutions, linear layers and the two attention matrix products, for
every token *including the class token*. With T = (R/p)^2 patch tokens, N = T + 1 tokens, embed e,
per-Q/K/V width a, MLP hidden m, c classes:

    patch embedding   T * p^2 * C_in * e         (the conv; the class token is not convolved)
    per block         N * e * 3a                 (Q, K, V projections)
                      + N^2 * a                  (Q K^T over all heads: h * N^2 * a/h)
                      + N^2 * a                  (attention-weighted sum of V)
                      + N * a * e                (output projection)
                      + 2 * N * e * m            (MLP)
    classifier        e * c                      (the class token only)

Layer norms, softmax, GELU, the attention scale, position-embedding additions and residual additions are
memory-bound and not counted (as in nasforge.hardware.flops). FLOPs = 2 x MACs.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .params import no_weight_decay


# ---------------------------------------------------------------------------------------------
# functional pieces (weights passed in; used by the supernet with slices, by standalone nets with copies)
# ---------------------------------------------------------------------------------------------
def patch_tokens(x: torch.Tensor, conv_w: torch.Tensor, conv_b: torch.Tensor, cls: torch.Tensor,
                 pos: torch.Tensor, patch: int) -> torch.Tensor:
    """Images [B, C, H, W] -> tokens [B, 1 + (H/p)(W/p), e]: patch conv, class token first, + position table.

    `conv_w` [e, C, p, p], `conv_b` [e], `cls` [1, 1, e], `pos` [1, N, e].
    """
    t = F.conv2d(x, conv_w, conv_b, stride=patch).flatten(2).transpose(1, 2)  # [B, T, e]
    t = torch.cat([cls.expand(t.shape[0], -1, -1), t], dim=1)
    return t + pos


def attention(x: torch.Tensor, qkv_w: torch.Tensor, qkv_b: torch.Tensor, proj_w: torch.Tensor,
              proj_b: torch.Tensor, heads: int, fused: bool = True) -> torch.Tensor:
    """Multi-head self-attention. x [B, N, e]; qkv_w [3a, e] (rows: Q, K, V); proj_w [e, a] -> [B, N, e].

    Each head has width a / heads; scores are scaled by (a / heads)^-1/2 (Vaswani et al. 2017). `fused`: see
    `attend`.
    """
    return F.linear(attend(F.linear(x, qkv_w, qkv_b), heads, fused), proj_w, proj_b)


_SECOND_ORDER = [0]  # open second_order() contexts


@contextlib.contextmanager
def second_order() -> Iterator[None]:
    """Within it, attention runs the explicit products even where `fused` asks for torch's fused kernel, which
    has no double backward: wrap forwards whose gradients are differentiated again (Hessian-vector products,
    GraSP)."""
    _SECOND_ORDER[0] += 1
    try:
        yield
    finally:
        _SECOND_ORDER[0] -= 1


def attend(qkv: torch.Tensor, heads: int, fused: bool = True) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V per head: qkv [B, N, 3a] (Q, K, V side by side) -> [B, N, a], d = a / heads.

    With `fused`, fp32 runs torch's F.scaled_dot_product_attention (the same values within float rounding,
    fewer passes over the N x N scores: 1.05-1.09x on the vit supernet step); lower precisions keep the
    explicit products, because the fused bf16 backward is slower on the CPU at these token counts
    (N = 17..65; docs/benchmarks.md, issue 20). `fused=False` is the explicit formulation, bit-identical to
    nasforge before issue 20. Inside `second_order()` the explicit products always run.
    """
    B, N, three_a = qkv.shape
    a = three_a // 3
    d = a // heads
    q, k, v = qkv.view(B, N, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)  # one backward node, not three
    if fused and q.dtype == torch.float32 and not _SECOND_ORDER[0]:
        o = F.scaled_dot_product_attention(q, k, v)  # scale d^-1/2 by default
    else:
        o = torch.softmax((q @ k.transpose(-2, -1)) * (d ** -0.5), dim=-1) @ v
    return o.transpose(1, 2).reshape(B, N, a)


def mlp(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """Two linear layers with GELU: x [B, N, e]; w1 [m, e]; w2 [e, m]."""
    return F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2)


def drop_path_sample(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth on a residual branch: drop whole samples with probability p, rescale the rest."""
    if not training or p <= 0.0:
        return x
    keep = torch.rand(x.shape[0], 1, 1, device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


def vit_macs(resolution: int, in_channels: int, num_classes: int, patch: int, embed: int,
             blocks: list[tuple[int, int] | None]) -> int:
    """Multiply-accumulates of one image through a ViT (see the module docstring for the convention).

    `blocks`: per active block (attention width a, MLP hidden m); None entries (identities) cost nothing.
    """
    T = (resolution // patch) ** 2
    N = T + 1
    macs = T * patch * patch * in_channels * embed + embed * num_classes
    for b in blocks:
        if b is None:
            continue
        a, m = b
        macs += N * embed * 3 * a + 2 * N * N * a + N * a * embed + 2 * N * embed * m
    return macs


# ---------------------------------------------------------------------------------------------
# standalone network
# ---------------------------------------------------------------------------------------------
class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, embed: int, heads: int, attn: int, hidden: int, fused: bool = True) -> None:
        super().__init__()
        self.fused = fused  # fp32 attention through torch's fused kernel (see `attend`)
        if attn % heads:
            raise ValueError(f"attention width {attn} is not divisible by {heads} heads")
        self.heads, self.embed = heads, embed
        self.norm1 = nn.LayerNorm(embed)
        self.qkv = nn.Linear(embed, 3 * attn)
        self.proj = nn.Linear(attn, embed)
        self.norm2 = nn.LayerNorm(embed)
        self.fc1 = nn.Linear(embed, hidden)
        self.fc2 = nn.Linear(hidden, embed)
        self.drop_path = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.embed
        h = F.layer_norm(x, (e,), self.norm1.weight, self.norm1.bias, self.norm1.eps)
        x = x + drop_path_sample(attention(h, self.qkv.weight, self.qkv.bias, self.proj.weight, self.proj.bias,
                                           self.heads, self.fused), self.drop_path, self.training)
        h = F.layer_norm(x, (e,), self.norm2.weight, self.norm2.bias, self.norm2.eps)
        return x + drop_path_sample(mlp(h, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias),
                                    self.drop_path, self.training)


class VisionTransformer(nn.Module):
    """A DeiT-style ViT with per-block widths (Dosovitskiy et al. 2021; Touvron et al. 2021).

    Input [B, in_channels, R, R] with R divisible by `patch`; output logits [B, num_classes] from the class
    token. `blocks` lists (heads, attention width a, MLP hidden m) per block; `fused`: see `attend`. Setting
    `drop_path_prob`
    (the training engine ramps it over epochs) applies stochastic depth to every residual branch.
    """

    def __init__(self, resolution: int, in_channels: int, num_classes: int, patch: int, embed: int,
                 blocks: list[tuple[int, int, int]], fused: bool = True) -> None:
        super().__init__()
        if resolution % patch:
            raise ValueError(f"patch size {patch} does not divide the {resolution}-pixel input")
        self.patch, self.embed = patch, embed
        self.resolution, self.in_channels, self.num_classes = resolution, in_channels, num_classes
        tokens = (resolution // patch) ** 2 + 1
        self.patch_embed = nn.Conv2d(in_channels, embed, patch, stride=patch)
        self.cls_token = no_weight_decay(nn.Parameter(torch.zeros(1, 1, embed)))
        self.pos_embed = no_weight_decay(nn.Parameter(torch.zeros(1, tokens, embed)))
        self.blocks = nn.ModuleList(Block(embed, h, a, m, fused) for h, a, m in blocks)
        self.norm = nn.LayerNorm(embed)
        self.head = nn.Linear(embed, num_classes)
        self.block_spec = [tuple(b) for b in blocks]
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self._drop_path_prob = 0.0

    @property
    def drop_path_prob(self) -> float:
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, p: float) -> None:
        self._drop_path_prob = float(p)
        for b in self.blocks:
            b.drop_path = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = patch_tokens(x, self.patch_embed.weight, self.patch_embed.bias, self.cls_token, self.pos_embed,
                         self.patch)
        for b in self.blocks:
            t = b(t)
        c = F.layer_norm(t[:, 0], (self.embed,), self.norm.weight, self.norm.bias, self.norm.eps)
        return F.linear(c, self.head.weight, self.head.bias)

    def macs(self) -> int:
        """Multiply-accumulates per image (module docstring convention)."""
        return vit_macs(self.resolution, self.in_channels, self.num_classes, self.patch, self.embed,
                        [(a, m) for _, a, m in self.block_spec])


def trunc_normal_(t: torch.Tensor, std: float = 0.02) -> torch.Tensor:
    return nn.init.trunc_normal_(t, std=std, a=-2 * std, b=2 * std)


def lcm(values: list[int]) -> int:
    out = 1
    for v in values:
        out = out * v // math.gcd(out, v)
    return out
