"""`mobile`: the HURRICANE candidate pool on a configurable FBNet/SPOS-like macro-architecture.

Pool (``ops="hurricane"``, the default; spec 2.2): 32 candidates — MBConv k in {3,5,7} x e in {3,6} x SE
{off,on} x {ReLU, h-swish} (``mb_k3_e6_se_hs``, ...), ShuffleNetV2 k in {3,5,7} x SE (``shuffle_k5_se``), and
Shuffle-Xception x SE (``xception``, ``xception_se``) — plus ``skip`` in layers where it is a true identity
(``skip=True``). ``ops="baseline"`` is the fixed FBNet-like 4-op set (MBConv k3e3, k3e6, k5e3, k5e6; ReLU, no
SE); an explicit list picks any subset.

Macro (defaults = the Fashion-MNIST setting of spec 2.6): 3x3 stem with stride ``stem_stride`` to ``stem``
channels; searchable layers with output ``widths`` and ``strides``; head 1x1 conv to ``head`` channels,
global pool, linear. An architecture is a list of one op name per layer.
(HURRICANE: Zhang et al., "Fast Hardware-Aware Neural Architecture Search", CVPR-W 2020.)
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from ..errors import ConfigError, choices_message
from ..options import Opt
from ..ops.mobile import BASELINE_OPS, MOBILE_OPS, make_mobile_op, mobile_op_available
from ..registry import SPACES
from .layerwise import LayerSpec, LayerwiseSpace

POOLS = {"hurricane": tuple(MOBILE_OPS), "baseline": BASELINE_OPS}


@SPACES.register("mobile", help="HURRICANE layer-wise space: 32 MBConv/ShuffleNetV2/Xception candidates (+skip) "
                                "per layer on an FBNet/SPOS-like macro; arch = list of op names")
class MobileSpace(LayerwiseSpace):
    """Options: stem, stem_stride, widths, strides, head, ops ('hurricane' | 'baseline' | list), skip, fused."""

    name = "mobile"
    defaults = {"stem": Opt(16, ">=1", help="stem channels"), "stem_stride": Opt(2, ">=1"),
                "widths": Opt([16, 16, 24, 24, 40, 40, 80, 80], ">=1", help="output channels per searchable layer"),
                "strides": Opt([1, 1, 2, 1, 2, 1, 1, 1], choices=(1, 2), help="stride per searchable layer"),
                "head": Opt(128, ">=1", help="head channels"),
                "ops": Opt("hurricane", type=None, help="'hurricane', 'baseline' or a list of op names"),
                "skip": Opt(True, help="skip (identity) as a candidate where shapes allow"),
                "fused": Opt(True, help="depthwise convs with the fast CPU weight gradient (false: plain "
                                        "nn.Conv2d, bit-identical to before issue 20)")}

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        o = self.options
        widths, strides = o["widths"], o["strides"]  # integers >= 1 and strides in {1, 2}: the declaration
        if not widths:
            raise ConfigError("space 'mobile' option widths must list at least one searchable layer; got []")
        if len(widths) != len(strides):
            raise ConfigError(f"mobile options widths ({len(widths)}) and strides ({len(strides)}) must have one "
                              "entry per searchable layer")
        ops = o["ops"]
        if isinstance(ops, str):
            if ops not in POOLS:
                raise ConfigError(choices_message("mobile op pool", ops, list(POOLS)) + " (or a list of op names)")
            ops = list(POOLS[ops])
        elif not isinstance(ops, (list, tuple)) or not ops:
            raise ConfigError(f"mobile option ops must be 'hurricane', 'baseline' or a list of op names, got {ops!r}")
        for op in ops:
            if op not in MOBILE_OPS:
                raise ConfigError(choices_message("mobile op", str(op), list(MOBILE_OPS)))
        self._pool = list(dict.fromkeys(ops)) + (["skip"] if o["skip"] else [])
        specs, c, r = [], o["stem"], -(-self.resolution // o["stem_stride"])
        for w, s in zip(widths, strides):
            specs.append(LayerSpec(c, w, s, r))
            c, r = w, -(-r // s)
        self._specs = specs
        for i, spec in enumerate(specs):
            if not any(self.available(op, spec) for op in self._pool):
                raise ConfigError(f"mobile layer {i} ({spec.as_dict()}) has no op that fits its shapes in the pool")

    def layer_specs(self) -> list[LayerSpec]:
        return list(self._specs)

    def pool(self) -> list[str]:
        return list(self._pool)

    def available(self, name: str, spec: LayerSpec) -> bool:
        return mobile_op_available(name, spec.C_in, spec.C_out, spec.stride)

    def make_op(self, name: str, C_in: int, C_out: int, stride: int) -> nn.Module:
        return make_mobile_op(name, C_in, C_out, stride)

    def stem_spec(self) -> tuple[int, int]:
        return self.options["stem"], self.options["stem_stride"]

    def head_channels(self) -> int:
        return self.options["head"]
