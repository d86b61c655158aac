"""The BATS binary cell space (Bulat, Martinez, Tzimiropoulos, "BATS: Binary ArchitecTure Search", ECCV 2020).

The DARTS macro skeleton (two input nodes, four intermediate nodes, 14 edges, reductions at L//3 and 2L//3,
concatenation of the four nodes; :mod:`nasforge.spaces.darts`) filled with the binary-oriented op set of
:mod:`nasforge.ops.bats`: ``none``, ``max_pool_3x3``, ``avg_pool_3x3``, ``skip_connect``, ``group_conv_3x3``,
``group_conv_5x5``, ``dil_group_conv_3x3``, ``dil_group_conv_5x5`` (binary grouped convs with G groups).
Architectures are DARTS genotypes over these op names (the third-party spellings ``gconv5x5``,
``dil_gconv3x3``, ``max_pool``, ... and the library's DARTS names are accepted and canonicalised).

Options (besides DARTS' C, layers, nodes, stem_multiplier, unique_cells): ``groups`` (G, must divide C),
``shuffle_groups`` (channel shuffle after every grouped conv, 4), ``binarize_1x1`` (binarize the 1x1 convs of
preprocessing and FactorizedReduce; default False, real as is standard), ``center_weights``,
``learned_scale`` (see :class:`nasforge.ops.binary.BinaryConv2d`). Networks are built fully binary
(1-bit activations and weights); training recipes and the ``bats`` strategy switch that with
:func:`nasforge.ops.binary.set_binarization`.
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..options import Opt
from ..ops.bats import BATS_ALIASES, bats_ops, bats_preprocess, bats_stem
from ..registry import SPACES
from .darts import CellOps, DartsSpace
import torch.nn as nn

#: the BATS cell as transcribed by a third party (lswzjuer/nas-pruning-quantize, ``binary_genotypes.py``,
#: genotype "BATS"); its fidelity to the paper's figure is unverified (spec 2.2).
BATS_THIRD_PARTY: dict[str, list] = {
    "normal": [["gconv5x5", 0], ["dil_gconv5x5", 1], ["max_pool", 0], ["max_pool", 2], ["gconv5x5", 0],
               ["dil_gconv5x5", 2], ["gconv3x3", 0], ["dil_gconv5x5", 1]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool", 0], ["gconv3x3", 1], ["gconv5x5", 0], ["avg_pool", 1], ["gconv5x5", 1],
               ["max_pool", 3], ["gconv5x5", 0], ["gconv5x5", 1]],
    "reduce_concat": [2, 3, 4, 5],
}

_BINARY_OPTIONS = ("groups", "shuffle_groups", "binarize_1x1", "center_weights", "learned_scale")


def _canonical_ops(entries: Any) -> Any:
    if not isinstance(entries, list):
        return entries
    return [[BATS_ALIASES.get(e[0], e[0]), *e[1:]] if isinstance(e, (list, tuple)) and e and isinstance(e[0], str)
            else e for e in entries]


@SPACES.register("bats", help="BATS binary cells: DARTS skeleton, binary grouped/dilated convs (groups=G), "
                              "real stem/1x1/classifier; arch = genotype")
class BatsSpace(DartsSpace):
    """The BATS space; see the module docstring. Raises ConfigError (before any work) when G or the shuffle
    groups do not divide C."""

    name = "bats"
    defaults = {"C": Opt(12, ">=1"), "layers": Opt(5, ">=1", help="cells (reductions at 1/3 and 2/3)"),
                "nodes": Opt(4, ">=1"), "stem_multiplier": Opt(3, ">=1"), "unique_cells": False,
                "groups": Opt(4, ">=1", help="G of the grouped convs; must divide C"),
                "shuffle_groups": Opt(4, ">=1", help="channel-shuffle groups; must divide C"),
                "binarize_1x1": False, "center_weights": False, "learned_scale": False,
                "fused": DartsSpace.defaults["fused"]}
    build_options = DartsSpace.build_options + _BINARY_OPTIONS

    def __init__(self, in_channels: int = 1, num_classes: int = 10, resolution: int = 28, **options: Any) -> None:
        super().__init__(in_channels, num_classes, resolution, **options)
        self._check(self.options)

    @staticmethod
    def _check(opts: dict[str, Any]) -> None:
        """What the declaration cannot say: G and the shuffle groups must divide C (each is an integer >= 1)."""
        C, G, S = opts["C"], opts["groups"], opts["shuffle_groups"]
        if C % G:
            raise ConfigError(f"space 'bats': groups G={G} must divide the channel count C={C} "
                              f"(choose G from {[g for g in range(1, C + 1) if C % g == 0]})")
        if C % S:
            raise ConfigError(f"space 'bats': shuffle_groups={S} must divide the channel count C={C}")

    @property
    def is_binary(self) -> bool:
        return True

    def cell_ops(self, **overrides: Any) -> CellOps:
        opts = {k: self._option(overrides, k) for k in ("C",) + _BINARY_OPTIONS}  # checked overrides
        self._check(opts)
        kw = {"center_weights": bool(opts["center_weights"]), "learned_scale": bool(opts["learned_scale"])}
        return CellOps(bats_ops(int(opts["groups"]), int(opts["shuffle_groups"]), bool(opts["binarize_1x1"]), **kw),
                       preprocess=bats_preprocess(bool(opts["binarize_1x1"]), **kw), stem=bats_stem,
                       aux_activation=lambda: nn.PReLU())

    def validate(self, arch: Any) -> dict[str, Any]:
        """Canonical genotype; accepts the BATS op aliases (``gconv5x5``, ``dil_gconv3x3``, ``max_pool``, ...)."""
        if isinstance(arch, dict):
            arch = {k: (_canonical_ops(v) if k in ("normal", "reduce") else v) for k, v in arch.items()}
            if isinstance(arch.get("cells"), list):
                arch["cells"] = [{**c, "ops": _canonical_ops(c.get("ops"))} if isinstance(c, dict) else c
                                 for c in arch["cells"]]
        return super().validate(arch)
