"""The `vit` space: a weight-sharing super-transformer for vision-transformer search (ViTAS; Su et al.,
"Vision Transformer Architecture Search", arXiv 2106.13700 / ECCV 2022), with an AutoFormer-style mode
(Chen et al., ICCV 2021) for ablations.

An architecture is a JSON object::

    {"patch": 4, "embed": 48, "blocks": [{"heads": 2, "attn": 32, "mlp": 96}, null, ...]}

with one entry per block slot (``depth`` of them); ``null`` is the identity. ``attn`` is the width of each
of Q, K and V (all heads together; head width attn/heads), ``mlp`` the MLP hidden width, ``embed`` the
token width shared by every block (the residual stream). Allowed values are ``ratio x max`` for the
ratios in the options; attention widths must be multiples of lcm(heads) so every head count divides them.

The super-transformer (`SuperTransformer`) holds one tensor per weight at its largest size and runs any
subnet by slicing it:

- every patch size has its own (*private*) patch-embedding conv, position table and (ViTAS) class token;
- every block slot has LayerNorms, V, output projection and MLP shared by all choices and, in ViTAS
  mode, *private Q/K* per head-count choice ("private self-attention maps"); AutoFormer mode has one
  Q/K/V tensor for every head count and one class token for every patch size;
- widths are sliced by a *view* of each sliced dimension: ``leading`` reads channels [0, w), the right
  side of ``bilateral`` reads [C - w, C) (both sides run every step, their logits summed), ``cyclic``
  reads the wrap-around window (s + arange(w)) mod C at an offset s drawn per step (a multiple of the
  dimension's channel group). Both sides of every residual (norms, projections, MLP output, class token,
  position table, classifier input) slice the same embed window.

With ``identity_shift`` the identities of an architecture are moved to the end (the k-th active block
always runs slot k), so every architecture with d blocks uses the one weight path of slots 0..d-1
(our reading of ViTAS v2's identity shifting); without it a block runs its own slot (v1).

MACs follow the convention of nasforge.ops.attention (class token and attention products counted).
"""
from __future__ import annotations

import math
import random
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..accel import FastPath
from ..errors import ConfigError, UserError
from ..options import Opt
from ..ops.params import no_weight_decay
from ..ops.attention import VisionTransformer, attention, lcm, mlp, patch_tokens, trunc_normal_, vit_macs
from ..registry import SPACES
from .base import SearchSpace

SHARES = ("leading", "bilateral", "cyclic")
STYLES = ("vitas", "autoformer")
Offsets = dict[str, Any]  # {"embed": int, "attn": {slot: int}, "mlp": {slot: int}}


def take(t: torch.Tensor, dim: int, offset: int, width: int, size: int) -> torch.Tensor:
    """Channels (offset + arange(width)) mod size of `t` along `dim`: a view when the window does not wrap."""
    if offset + width <= size:
        return t.narrow(dim, offset, width)
    idx = torch.arange(offset, offset + width, device=t.device) % size
    return t.index_select(dim, idx)


def window(offset: int, width: int, size: int) -> list[int]:
    """The channel indices `take` reads (for tests and usage statistics)."""
    return [(offset + i) % size for i in range(width)]


def _int_list(name: str, v: list[int]) -> list[int]:
    """Sorted `v` (integers >= 1: checked by the declaration); non-empty and without repeats."""
    if not v:
        raise ConfigError(f"space 'vit' option {name} must be a non-empty list; got []")
    if len(set(v)) != len(v):
        raise ConfigError(f"space 'vit' option {name} has repeated values: {v!r}")
    return sorted(v)


def _widths(name: str, size: int, ratios: list[float]) -> list[int]:
    """The channel widths ratio x size (ratios in (0, 1]: checked by the declaration), sorted; each must be a whole
    number of channels and they must differ."""
    if not ratios:
        raise ConfigError(f"space 'vit' option {name} must be a non-empty list; got []")
    out = []
    for r in ratios:
        w = r * size
        if abs(w - round(w)) > 1e-6:
            raise ConfigError(f"space 'vit' option {name}: ratio {r} of {size} is not a whole number of channels")
        out.append(int(round(w)))
    if len(set(out)) != len(out):
        raise ConfigError(f"space 'vit' option {name} gives repeated widths {out}")
    return sorted(out)


def default_patch_sizes(resolution: int) -> list[int]:
    """The default patch sizes for a `resolution`-pixel square input: the divisors p of the resolution whose
    token grid (resolution / p per side) lies in 4..8, the largest and smallest such grid (28 -> [4, 7],
    32 -> [4, 8], 20 -> [4, 5], 40 -> [5, 10], 64 -> [8, 16]). Where no divisor gives such a grid (a prime
    size such as 29) the divisor whose grid is nearest 6 per side in ratio; every result divides the input."""
    divisors = [p for p in range(1, resolution + 1) if resolution % p == 0]
    fitting = [p for p in divisors if 4 <= resolution // p <= 8]
    if fitting:
        return sorted({min(fitting), max(fitting)})
    return [min(divisors, key=lambda p: abs(math.log(resolution / p / 6)))]


@SPACES.register("vit", help="super-transformer (ViTAS / AutoFormer-style): patch, embed, depth with identity, "
                             "heads, attention and MLP widths; arch = JSON object")
class ViTSpace(SearchSpace):
    """Options (defaults: the tiny setup of the spec for 28x28 inputs):

    patch_sizes (default: derived from the input by `default_patch_sizes`, [4, 7] at 28x28, [4, 8] at 32x32,
    [4, 5] at 20x20, and recorded in the space's config); embed_dim 64 with embed_ratios; depth 6 block slots; heads [1, 2, 4]; qkv_dim 64
    (max width of each of Q, K, V) with attn_ratios; mlp_dim 128 with mlp_ratios (ratios default
    [0.25, 0.5, 0.75, 1]); share leading|bilateral|cyclic; identity_shift; style vitas|autoformer;
    private_qk and private_tokens (default: True for vitas, False for autoformer; AutoFormer style also
    defaults share to leading); fused (default true: fp32 attention through torch's fused kernel, see
    nasforge.ops.attention.attend; false: the explicit products, bit-identical to before issue 20).
    """

    name = "vit"
    supernet_kind = "super-transformer"  # trained by `vitas`, not by the cell methods
    supernet_hint = "its super-transformer is searched with --method vitas; random-ws-style sampling is " \
                    "--set sampling=uniform there"
    defaults = {"patch_sizes": Opt(None, ">=1", type=list, items=int,
                                   help="patch sizes (each must divide the input resolution); null: derived from "
                                        "the input (token grids of 4 to 8 per side)"),
                "embed_dim": Opt(64, ">=1"), "embed_ratios": Opt([0.25, 0.5, 0.75, 1.0], "(0, 1]"),
                "depth": Opt(6, ">=1", help="block slots"), "heads": Opt([1, 2, 4], ">=1"),
                "qkv_dim": Opt(64, ">=1", help="max width of each of Q, K, V"),
                "attn_ratios": Opt([0.25, 0.5, 0.75, 1.0], "(0, 1]"), "mlp_dim": Opt(128, ">=1"),
                "mlp_ratios": Opt([0.25, 0.5, 0.75, 1.0], "(0, 1]"),
                "share": Opt(None, type=str, choices=SHARES, help="null: bilateral (leading for style autoformer)"),
                "identity_shift": False, "style": Opt("vitas", choices=STYLES),
                "private_qk": Opt(None, type=bool, help="null: true for style vitas, false for autoformer"),
                "private_tokens": Opt(None, type=bool, help="null: true for style vitas, false for autoformer"),
                "fused": Opt(True, help="fp32 attention through torch's fused kernel; false: the explicit products "
                                        "(bit-identical to before issue 20)")}

    def __init__(self, in_channels: int = 1, num_classes: int = 10, resolution: int = 28, **options: Any) -> None:
        super().__init__(in_channels, num_classes, resolution, **options)
        o = self.options
        af = o["style"] == "autoformer"
        self.share = o["share"] if o["share"] is not None else ("leading" if af else "bilateral")
        self.identity_shift = bool(o["identity_shift"])
        self.private_qk = (not af) if o["private_qk"] is None else o["private_qk"]
        self.private_tokens = (not af) if o["private_tokens"] is None else o["private_tokens"]
        if o["patch_sizes"] is None:  # derived from the input, and recorded so the arch rebuilds the same way
            o["patch_sizes"] = default_patch_sizes(resolution)
        self.patch_sizes = _int_list("patch_sizes", o["patch_sizes"])
        for p in self.patch_sizes:
            if resolution % p:
                raise ConfigError(f"vit patch size {p} does not divide the {resolution}-pixel input; "
                                  f"choose patch_sizes that divide {resolution}")
        self.E, self.A, self.M, self.depth = o["embed_dim"], o["qkv_dim"], o["mlp_dim"], o["depth"]
        self.heads = _int_list("heads", o["heads"])
        self.embeds = _widths("embed_ratios", self.E, o["embed_ratios"])
        self.attns = _widths("attn_ratios", self.A, o["attn_ratios"])
        self.mlps = _widths("mlp_ratios", self.M, o["mlp_ratios"])
        L = lcm(self.heads)
        bad = [w for w in self.attns + [self.A] if w % L]
        if bad:
            raise ConfigError(f"vit head choices {self.heads} do not divide attention width(s) {sorted(set(bad))}: "
                              f"qkv_dim x attn_ratios must be multiples of lcm(heads) = {L}")
        # channel group of each sliced dimension: cyclic offsets are multiples of it
        self.units = {"embed": math.gcd(self.E, *self.embeds), "attn": math.gcd(self.A, *self.attns),
                      "mlp": math.gcd(self.M, *self.mlps)}

    # -- architectures ------------------------------------------------------------------------
    def sample(self, rng: random.Random, p_identity: float | None = None) -> dict[str, Any]:
        """A random architecture: patch and embed uniform; each slot the identity with probability
        `p_identity` (default: uniform over identity and the head counts), else heads, attention and MLP
        widths uniform. Identity-shifted spaces return the canonical form (identities last)."""
        blocks: list[dict[str, int] | None] = []
        for _ in range(self.depth):
            if p_identity is None:
                choice = rng.randrange(len(self.heads) + 1)
                ident = choice == len(self.heads)
            else:
                ident = rng.random() < p_identity
            if ident:
                blocks.append(None)
            else:
                blocks.append({"heads": rng.choice(self.heads), "attn": rng.choice(self.attns),
                               "mlp": rng.choice(self.mlps)})
        arch = {"patch": rng.choice(self.patch_sizes), "embed": rng.choice(self.embeds), "blocks": blocks}
        return self._canonical(arch)

    def size(self) -> int:
        """How many distinct architectures the space holds: a patch size and an embed width, and per block slot
        the identity or one of heads x attention widths x MLP widths (a = H·A·M blocks). Without identity_shift
        that is P·E·(1 + a)^depth; with it the identities sit last (canonical form), so only the number of
        active blocks matters for their placement: P·E·sum_{n=0..depth} a^n."""
        a = len(self.heads) * len(self.attns) * len(self.mlps)
        per = (sum(a ** n for n in range(self.depth + 1)) if self.identity_shift else (1 + a) ** self.depth)
        return len(self.patch_sizes) * len(self.embeds) * per

    def _canonical(self, arch: dict[str, Any]) -> dict[str, Any]:
        if self.identity_shift:
            active = [b for b in arch["blocks"] if b is not None]
            arch = {**arch, "blocks": active + [None] * (self.depth - len(active))}
        return arch

    def validate(self, arch: Any) -> dict[str, Any]:
        if not isinstance(arch, dict) or set(arch) != {"patch", "embed", "blocks"}:
            raise UserError("a vit architecture is a JSON object with keys patch, embed and blocks, got "
                            f"{str(arch)[:80]}")
        if arch["patch"] not in self.patch_sizes or isinstance(arch["patch"], bool):
            raise UserError(f"vit patch {arch['patch']!r} is not one of {self.patch_sizes}")
        if arch["embed"] not in self.embeds or isinstance(arch["embed"], bool):
            raise UserError(f"vit embed {arch['embed']!r} is not one of {self.embeds}")
        blocks = arch["blocks"]
        if not isinstance(blocks, list) or len(blocks) != self.depth:
            raise UserError(f"vit blocks must be a list of {self.depth} entries (null = identity)")
        out: list[dict[str, int] | None] = []
        for i, b in enumerate(blocks):
            if b is None:
                out.append(None)
                continue
            if not isinstance(b, dict) or set(b) != {"heads", "attn", "mlp"}:
                raise UserError(f"vit block {i} must be null or an object with heads, attn and mlp")
            for key, allowed in (("heads", self.heads), ("attn", self.attns), ("mlp", self.mlps)):
                if isinstance(b[key], bool) or b[key] not in allowed:
                    raise UserError(f"vit block {i}: {key} {b[key]!r} is not one of {allowed}")
            out.append({"heads": int(b["heads"]), "attn": int(b["attn"]), "mlp": int(b["mlp"])})
        return self._canonical({"patch": int(arch["patch"]), "embed": int(arch["embed"]), "blocks": out})

    def mutate(self, arch: Any, rng: random.Random) -> dict[str, Any]:
        """Change one decision: the patch size, the embed width, or one slot's op (identity / head count),
        attention width or MLP width."""
        a = self.validate(arch)
        blocks = [None if b is None else dict(b) for b in a["blocks"]]
        new = {"patch": a["patch"], "embed": a["embed"], "blocks": blocks}
        decisions = ["patch"] * (len(self.patch_sizes) > 1) + ["embed"] * (len(self.embeds) > 1)
        for i, b in enumerate(blocks):
            decisions.append(("op", i))
            if b is not None:
                decisions += [("attn", i)] * (len(self.attns) > 1) + [("mlp", i)] * (len(self.mlps) > 1)
        d = rng.choice(decisions)
        if d == "patch":
            new["patch"] = rng.choice([p for p in self.patch_sizes if p != a["patch"]])
        elif d == "embed":
            new["embed"] = rng.choice([e for e in self.embeds if e != a["embed"]])
        else:
            kind, i = d
            if kind == "op":
                cur = "identity" if blocks[i] is None else blocks[i]["heads"]
                ops: list[Any] = ["identity"] + list(self.heads)
                choice = rng.choice([o for o in ops if o != cur])
                if choice == "identity":
                    blocks[i] = None
                elif blocks[i] is None:
                    blocks[i] = {"heads": choice, "attn": rng.choice(self.attns), "mlp": rng.choice(self.mlps)}
                else:
                    blocks[i]["heads"] = choice
            else:
                allowed = self.attns if kind == "attn" else self.mlps
                blocks[i][kind] = rng.choice([w for w in allowed if w != blocks[i][kind]])
        return self._canonical(new)

    def crossover(self, a: Any, b: Any, rng: random.Random) -> dict[str, Any]:
        """Two-point crossover on the genome [patch, embed, slot 1, ..., slot depth] (a slot carries its
        op and widths together)."""
        a, b = self.validate(a), self.validate(b)
        ga = [a["patch"], a["embed"], *a["blocks"]]
        gb = [b["patch"], b["embed"], *b["blocks"]]
        i, j = sorted(rng.sample(range(len(ga) + 1), 2))
        g = ga[:i] + gb[i:j] + ga[j:]
        return self._canonical({"patch": g[0], "embed": g[1], "blocks": [None if x is None else dict(x) for x in g[2:]]})

    def weight_path(self, arch: Any) -> tuple[int, ...]:
        """The block slots whose weights `arch` runs (what identity shifting collapses)."""
        blocks = self.validate(arch)["blocks"]
        active = [i for i, b in enumerate(blocks) if b is not None]
        return tuple(range(len(active))) if self.identity_shift else tuple(active)

    def macs(self, arch: Any) -> int:
        """Multiply-accumulates per image (convention in nasforge.ops.attention: class token and attention
        counted); equals torch FlopCounterMode / 2 on the standalone network."""
        a = self.validate(arch)
        return vit_macs(self.resolution, self.in_channels, self.num_classes, a["patch"], a["embed"],
                        [None if b is None else (b["attn"], b["mlp"]) for b in a["blocks"]])

    def params(self, arch: Any) -> int:
        """Parameters of the standalone network of `arch`."""
        return sum(p.numel() for p in self.build(arch).parameters())

    def extreme_archs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(smallest, largest) architecture by MACs."""
        small = min(({"patch": p, "embed": self.embeds[0], "blocks": [None] * self.depth} for p in self.patch_sizes),
                    key=self.macs)
        big_block = {"heads": self.heads[-1], "attn": self.attns[-1], "mlp": self.mlps[-1]}
        large = max(({"patch": p, "embed": self.embeds[-1], "blocks": [dict(big_block)] * self.depth}
                     for p in self.patch_sizes), key=self.macs)
        return small, large

    def describe(self, arch: Any) -> str:
        a = self.validate(arch)
        blocks = " ".join("id" if b is None else f"h{b['heads']}/a{b['attn']}/m{b['mlp']}" for b in a["blocks"])
        return f"patch {a['patch']} embed {a['embed']} | {blocks} | {self.macs(a) / 1e6:.2f} M MACs"

    def figure(self, arch: Any) -> list:
        """The subnet as a block table (drawn by ``nasforge report``): the patch embedding, then one row per
        block slot (identity, or heads, Q/K/V width, head width, MLP hidden width, and the slot whose weights
        it runs, which identity shifting re-maps)."""
        from .figure import TableFigure

        a = self.validate(arch)
        p, e = a["patch"], a["embed"]
        tokens = (self.resolution // p) ** 2 + 1
        path = iter(self.weight_path(a))
        rows: list[list[Any]] = [["embed", f"{p}x{p} patches, {tokens} tokens (class token included)", "", "", "",
                                  "", f"width {e}"]]
        for i, b in enumerate(a["blocks"]):
            if b is None:
                rows.append([i, "identity", "", "", "", "", ""])
            else:
                rows.append([i, "transformer block", b["heads"], b["attn"], b["attn"] // b["heads"], b["mlp"],
                             f"slot {next(path)}"])
        active = sum(b is not None for b in a["blocks"])
        title = f"patch {p}, embed {e}, {active} of {len(a['blocks'])} blocks, {self.macs(a) / 1e6:.2f} M MACs"
        return [TableFigure(title, ["slot", "block", "heads", "Q/K/V width", "head width", "MLP hidden", "weights"],
                            rows)]

    # -- networks -------------------------------------------------------------------------------
    def fast_path(self, kind: str) -> FastPath:
        """bf16 pays when every subnet's GEMMs are wide enough for AMX: the narrowest embedding >= 48, attention
        width >= 64 and MLP >= 96 (AutoFormer's choices: bf16 1.69x on the supernet step, 1.75x standalone,
        docs/benchmarks.md); the default tiny space (widths down to 16) gains nothing (0.94-1.0x). Channels_last
        does not apply (no convs but the patch embedding). The same rule for the supernet and standalone networks."""
        narrow = (min(self.embeds), min(self.attns), min(self.mlps))
        wide = narrow[0] >= 48 and narrow[1] >= 64 and narrow[2] >= 96
        return FastPath(wide, False, f"vit, narrowest embed/attention/mlp {narrow[0]}/{narrow[1]}/{narrow[2]}: "
                        + ("bf16 pays at AutoFormer widths (>= 48/64/96)" if wide
                           else "bf16 does not pay below AutoFormer widths (48/64/96)"))

    def build(self, arch: Any, **overrides: Any) -> VisionTransformer:
        """The standalone ViT of `arch` (identities dropped), freshly initialised.

        ``width_mult=f`` (the only build option; a number > 0) scales the architecture's embedding, attention
        and MLP widths by f, each rounded to a multiple of 4 (so every head count divides it): the final
        network of a leaderboard's size rule. Raises ConfigError for another option or f <= 0."""
        unknown = sorted(set(overrides) - {"width_mult"})
        if unknown:
            raise ConfigError(f"unknown build option(s) {unknown} for space 'vit'; valid: width_mult (the "
                              "architecture fixes every width; width_mult scales them all)")
        a = self.validate(arch)
        f = overrides.get("width_mult", 1.0)
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not f > 0:
            raise ConfigError(f"space 'vit' option width_mult must be a number > 0, got {f!r}")

        def w(v: int) -> int:
            return v if f == 1.0 else max(4, int(round(v * f / 4)) * 4)

        blocks = [(b["heads"], w(b["attn"]), w(b["mlp"])) for b in a["blocks"] if b is not None]
        return VisionTransformer(self.resolution, self.in_channels, self.num_classes, a["patch"], w(a["embed"]), blocks,
                                 fused=bool(self.options["fused"]))

    def supernet(self, **overrides: Any) -> "SuperTransformer":
        if overrides:
            raise ConfigError(f"unknown supernet option(s) {sorted(overrides)} for space 'vit'")
        return SuperTransformer(self)


class SuperTransformer(nn.Module):
    """All weights of the `vit` space at their largest size; `forward(x, arch, view)` runs one subnet.

    `view` selects the channels of every sliced dimension: "left" (leading channels), "right" (trailing
    channels), or explicit offsets {"embed": s, "attn": {slot: s}, "mlp": {slot: s}} (cyclic windows; see
    `sample_offsets`). Parameters of choices the subnet does not use (other patch sizes, other head
    counts' Q/K, unused slots) take no part in the forward, so they get no gradient.
    """

    def __init__(self, space: ViTSpace) -> None:
        super().__init__()
        self.space = space
        E, A, M, C = space.E, space.A, space.M, space.in_channels
        R = space.resolution
        self.patch_w = nn.ParameterDict()
        self.patch_b = nn.ParameterDict()
        self.pos_embed = nn.ParameterDict()
        self.cls_token = nn.ParameterDict() if space.private_tokens else no_weight_decay(nn.Parameter(torch.zeros(1, 1, E)))
        for p in space.patch_sizes:
            conv = nn.Conv2d(C, E, p, stride=p)  # default PyTorch init of a conv of this shape
            self.patch_w[str(p)] = nn.Parameter(conv.weight.detach().clone())
            self.patch_b[str(p)] = nn.Parameter(conv.bias.detach().clone())
            self.pos_embed[str(p)] = no_weight_decay(nn.Parameter(trunc_normal_(torch.empty(1, (R // p) ** 2 + 1, E))))
            if space.private_tokens:
                self.cls_token[str(p)] = no_weight_decay(nn.Parameter(trunc_normal_(torch.empty(1, 1, E))))
        if not space.private_tokens:
            trunc_normal_(self.cls_token.data)
        self.slots = nn.ModuleList(_Slot(E, A, M, space.heads if space.private_qk else None)
                                   for _ in range(space.depth))
        self.norm_w = nn.Parameter(torch.ones(E))
        self.norm_b = nn.Parameter(torch.zeros(E))
        head = nn.Linear(E, space.num_classes)
        self.head_w = nn.Parameter(head.weight.detach().clone())
        self.head_b = nn.Parameter(head.bias.detach().clone())

    # -- views ---------------------------------------------------------------------------------
    def active(self, arch: dict[str, Any]) -> list[tuple[int, dict[str, int]]]:
        """(slot, block) pairs the subnet runs, in order (identity shifting maps the k-th block to slot k)."""
        blocks = [b for b in arch["blocks"] if b is not None]
        if self.space.identity_shift:
            return list(enumerate(blocks))
        return [(i, b) for i, b in enumerate(arch["blocks"]) if b is not None]

    def offsets(self, arch: dict[str, Any], view: str | Offsets) -> Offsets:
        """Channel offsets of every sliced dimension for a named view ("left" | "right") or explicit ones."""
        if isinstance(view, dict):
            return view
        sp = self.space
        act = self.active(arch)
        if view == "left":
            return {"embed": 0, "attn": {s: 0 for s, _ in act}, "mlp": {s: 0 for s, _ in act}}
        if view == "right":
            return {"embed": sp.E - arch["embed"], "attn": {s: sp.A - b["attn"] for s, b in act},
                    "mlp": {s: sp.M - b["mlp"] for s, b in act}}
        raise ValueError(f"unknown view {view!r}; use 'left', 'right' or explicit offsets")

    def sample_offsets(self, arch: dict[str, Any], generator: torch.Generator | None = None) -> Offsets:
        """Cyclic sharing: an offset per sliced dimension, uniform over the multiples of its channel group."""
        sp = self.space

        def draw(size: int, unit: int) -> int:
            return int(torch.randint(0, size // unit, (1,), generator=generator)) * unit  # host: drawn on the generator

        act = self.active(arch)
        return {"embed": draw(sp.E, sp.units["embed"]),
                "attn": {s: draw(sp.A, sp.units["attn"]) for s, _ in act},
                "mlp": {s: draw(sp.M, sp.units["mlp"]) for s, _ in act}}

    # -- weights of a subnet ----------------------------------------------------------------------
    def embed_weights(self, arch: dict[str, Any], off: Offsets) -> dict[str, torch.Tensor]:
        sp, p, e, eo = self.space, str(arch["patch"]), arch["embed"], off["embed"]
        cls = self.cls_token[p] if sp.private_tokens else self.cls_token
        return {"conv_w": take(self.patch_w[p], 0, eo, e, sp.E), "conv_b": take(self.patch_b[p], 0, eo, e, sp.E),
                "cls": take(cls, 2, eo, e, sp.E), "pos": take(self.pos_embed[p], 2, eo, e, sp.E)}

    def block_weights(self, slot: int, block: dict[str, int], e: int, off: Offsets) -> dict[str, torch.Tensor]:
        sp, s = self.space, self.slots[slot]
        E, A, M = sp.E, sp.A, sp.M
        eo, ao, mo = off["embed"], off["attn"][slot], off["mlp"][slot]
        a, m = block["attn"], block["mlp"]
        if s.private:
            k = str(block["heads"])
            qk_w = take(take(s.qk_w[k], 1, ao, a, A), 2, eo, e, E).reshape(2 * a, e)
            v_w = take(take(s.v_w, 0, ao, a, A), 1, eo, e, E)
            qkv_w = torch.cat([qk_w, v_w], 0)
            qkv_b = torch.cat([take(s.qk_b[k], 1, ao, a, A).reshape(2 * a), take(s.v_b, 0, ao, a, A)])
        else:
            qkv_w = take(take(s.qkv_w, 1, ao, a, A), 2, eo, e, E).reshape(3 * a, e)
            qkv_b = take(s.qkv_b, 1, ao, a, A).reshape(3 * a)
        return {
            "norm1_w": take(s.norm1_w, 0, eo, e, E), "norm1_b": take(s.norm1_b, 0, eo, e, E),
            "qkv_w": qkv_w, "qkv_b": qkv_b,
            "proj_w": take(take(s.proj_w, 0, eo, e, E), 1, ao, a, A), "proj_b": take(s.proj_b, 0, eo, e, E),
            "norm2_w": take(s.norm2_w, 0, eo, e, E), "norm2_b": take(s.norm2_b, 0, eo, e, E),
            "fc1_w": take(take(s.fc1_w, 0, mo, m, M), 1, eo, e, E), "fc1_b": take(s.fc1_b, 0, mo, m, M),
            "fc2_w": take(take(s.fc2_w, 0, eo, e, E), 1, mo, m, M), "fc2_b": take(s.fc2_b, 0, eo, e, E),
        }

    def head_weights(self, e: int, off: Offsets) -> dict[str, torch.Tensor]:
        E, eo = self.space.E, off["embed"]
        return {"norm_w": take(self.norm_w, 0, eo, e, E), "norm_b": take(self.norm_b, 0, eo, e, E),
                "head_w": take(self.head_w, 1, eo, e, E), "head_b": self.head_b}

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, arch: dict[str, Any], view: str | Offsets = "left") -> torch.Tensor:
        """Logits [B, classes] of subnet `arch` (a validated architecture) on images x [B, C, R, R]."""
        off = self.offsets(arch, view)
        e, fused = arch["embed"], bool(self.space.options["fused"])
        w = self.embed_weights(arch, off)
        t = patch_tokens(x, w["conv_w"], w["conv_b"], w["cls"], w["pos"], arch["patch"])
        for slot, block in self.active(arch):
            w = self.block_weights(slot, block, e, off)
            h = F.layer_norm(t, (e,), w["norm1_w"], w["norm1_b"], 1e-5)
            t = t + attention(h, w["qkv_w"], w["qkv_b"], w["proj_w"], w["proj_b"], block["heads"], fused)
            h = F.layer_norm(t, (e,), w["norm2_w"], w["norm2_b"], 1e-5)
            t = t + mlp(h, w["fc1_w"], w["fc1_b"], w["fc2_w"], w["fc2_b"])
        w = self.head_weights(e, off)
        c = F.layer_norm(t[:, 0], (e,), w["norm_w"], w["norm_b"], 1e-5)
        return F.linear(c, w["head_w"], w["head_b"])

    @torch.no_grad()
    def subnet(self, arch: Any, view: str | Offsets = "left") -> VisionTransformer:
        """A standalone network holding a copy of `arch`'s inherited weights (same logits as `forward`)."""
        arch = self.space.validate(arch)
        net = self.space.build(arch).to(self.head_w.device)
        off = self.offsets(arch, view)
        e = arch["embed"]
        w = self.embed_weights(arch, off)
        net.patch_embed.weight.copy_(w["conv_w"])
        net.patch_embed.bias.copy_(w["conv_b"])
        net.cls_token.copy_(w["cls"])
        net.pos_embed.copy_(w["pos"])
        for blk, (slot, block) in zip(net.blocks, self.active(arch)):
            w = self.block_weights(slot, block, e, off)
            for mod, key in ((blk.norm1, "norm1"), (blk.qkv, "qkv"), (blk.proj, "proj"), (blk.norm2, "norm2"),
                             (blk.fc1, "fc1"), (blk.fc2, "fc2")):
                mod.weight.copy_(w[key + "_w"])
                mod.bias.copy_(w[key + "_b"])
        w = self.head_weights(e, off)
        net.norm.weight.copy_(w["norm_w"])
        net.norm.bias.copy_(w["norm_b"])
        net.head.weight.copy_(w["head_w"])
        net.head.bias.copy_(w["head_b"])
        return net


class _Slot(nn.Module):
    """One block slot's tensors at full size. `heads` given: private Q/K per head count ([2, A, E] each)
    plus a shared V; None: one shared Q/K/V tensor [3, A, E] (AutoFormer)."""

    def __init__(self, E: int, A: int, M: int, heads: list[int] | None) -> None:
        super().__init__()
        self.private = heads is not None
        lin = lambda o, i: nn.Linear(i, o)  # noqa: E731  (default PyTorch init for each shape)
        if self.private:
            self.qk_w = nn.ParameterDict()
            self.qk_b = nn.ParameterDict()
            for h in heads:
                q, k = lin(A, E), lin(A, E)
                self.qk_w[str(h)] = nn.Parameter(torch.stack([q.weight.detach(), k.weight.detach()]))
                self.qk_b[str(h)] = no_weight_decay(nn.Parameter(torch.stack([q.bias.detach(), k.bias.detach()])))
            v = lin(A, E)
            self.v_w = nn.Parameter(v.weight.detach().clone())
            self.v_b = nn.Parameter(v.bias.detach().clone())
        else:
            qkv = [lin(A, E) for _ in range(3)]
            self.qkv_w = nn.Parameter(torch.stack([l.weight.detach() for l in qkv]))
            self.qkv_b = no_weight_decay(nn.Parameter(torch.stack([l.bias.detach() for l in qkv])))
        proj, fc1, fc2 = lin(E, A), lin(M, E), lin(E, M)
        self.proj_w = nn.Parameter(proj.weight.detach().clone())
        self.proj_b = nn.Parameter(proj.bias.detach().clone())
        self.fc1_w = nn.Parameter(fc1.weight.detach().clone())
        self.fc1_b = nn.Parameter(fc1.bias.detach().clone())
        self.fc2_w = nn.Parameter(fc2.weight.detach().clone())
        self.fc2_b = nn.Parameter(fc2.bias.detach().clone())
        self.norm1_w = nn.Parameter(torch.ones(E))
        self.norm1_b = nn.Parameter(torch.zeros(E))
        self.norm2_w = nn.Parameter(torch.ones(E))
        self.norm2_b = nn.Parameter(torch.zeros(E))


def count_paths(space: ViTSpace, archs: list[Any]) -> dict[int, int]:
    """Distinct weight paths (slot tuples) among `archs`, per depth (number of active blocks)."""
    paths: dict[int, set[tuple[int, ...]]] = {}
    for a in archs:
        p = space.weight_path(a)
        paths.setdefault(len(p), set()).add(p)
    return {d: len(s) for d, s in sorted(paths.items())}


def all_paths(depth: int, d: int) -> int:
    """C(depth, d): weight paths of d blocks without identity shifting."""
    return math.comb(depth, d)


__all__ = ["ViTSpace", "SuperTransformer", "take", "window", "count_paths", "all_paths"]
