"""`fbnet`: the FBNet space exactly as the HELP latency table encodes it (Wu et al., CVPR 2019; Lee et al.,
NeurIPS 2021).

22 searchable layers, each one of 9 ops in the order of the table's ``op_idx_list``: k3_e1, k3_e1_g2, k3_e3,
k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip (``k`` kernel, ``e`` expansion, ``g2`` grouped 1x1 convs with a
channel shuffle; ``skip`` is an identity, or a strided 1x1 conv + BN where the shape changes). The macro is
FBNet's: stem 3x3/2 to 16; stages (channels, layers, stride) = (16,1,1), (24,4,2), (32,4,2), (64,4,2),
(112,4,1), (184,4,2), (352,1,1); head 1x1 to 1984, pool, linear. ``width`` scales every channel count (and
the head) for small-data training; the encoding (and so the measured latencies of the 27 HELP device
settings, which were taken at full width and 224x224) does not change with it.

An architecture is a list of 22 op names; a space-separated string or 22 indices (the table's op_idx_list)
are accepted and converted.
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from ..errors import UserError
from ..options import Opt
from ..ops.mobile import FBNET_OP_NAMES, make_fbnet_op
from ..registry import SPACES
from .layerwise import LayerSpec, LayerwiseSpace

#: (output channels, layers, stride of the first layer) per stage, FBNet's ImageNet macro
FBNET_STAGES: tuple[tuple[int, int, int], ...] = ((16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 2), (112, 4, 1),
                                                   (184, 4, 2), (352, 1, 1))
FBNET_NUM_LAYERS = sum(n for _, n, _ in FBNET_STAGES)  # 22


def _scale(c: int, width: float) -> int:
    return max(8, int(round(c * width / 8)) * 8) if width != 1.0 else c


@SPACES.register("fbnet", help="FBNet space as encoded by the HELP latency table: 22 layers x 9 ops "
                               "(k3/k5, e1/e3/e6, g2, skip); latencies known on 27 devices")
class FBNetSpace(LayerwiseSpace):
    """Options: width (channel multiplier, default 1.0), stem_stride (2; FBNet's), head (1984), fused (true)."""

    name = "fbnet"
    latency_table = "fbnet"  # HELP measured 5,000 architectures on 27 devices (nasforge.hardware.tablefit)
    defaults = {"width": Opt(1.0, "(0, 4]", help="channel multiplier (the table's encoding does not change)"),
                "stem_stride": Opt(2, ">=1"), "head": Opt(1984, ">=1"),
                "fused": Opt(True, help="depthwise convs with the fast CPU weight gradient (false: plain "
                                        "nn.Conv2d, bit-identical to before issue 20)")}

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        c, r = _scale(16, self.options["width"]), -(-self.resolution // self.options["stem_stride"])
        specs = []
        for C, n, s in FBNET_STAGES:
            C = _scale(C, self.options["width"])
            for i in range(n):
                stride = s if i == 0 else 1
                specs.append(LayerSpec(c, C, stride, r))
                c, r = C, -(-r // stride)
        self._specs = specs

    def layer_specs(self) -> list[LayerSpec]:
        return list(self._specs)

    def pool(self) -> list[str]:
        return list(FBNET_OP_NAMES)

    def make_op(self, name: str, C_in: int, C_out: int, stride: int) -> nn.Module:
        return make_fbnet_op(name, C_in, C_out, stride)

    def stem_spec(self) -> tuple[int, int]:
        return _scale(16, self.options["width"]), self.options["stem_stride"]

    def head_channels(self) -> int:
        return _scale(self.options["head"], self.options["width"])

    def validate(self, arch: Any) -> list[str]:
        if isinstance(arch, (list, tuple)) and arch and all(isinstance(a, int) and not isinstance(a, bool) for a in arch):
            bad = [a for a in arch if not 0 <= a < len(FBNET_OP_NAMES)]
            if bad:
                raise UserError(f"fbnet op indices must be in 0..{len(FBNET_OP_NAMES) - 1}, got {bad}")
            arch = [FBNET_OP_NAMES[a] for a in arch]
        return super().validate(arch)

    def encode(self, arch: Any) -> list[int]:
        """The table's op_idx_list of an architecture (indices into FBNET_OP_NAMES)."""
        return [FBNET_OP_NAMES.index(o) for o in self.validate(arch)]
