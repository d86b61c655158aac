"""Parameter kinds an optimiser treats differently, declared where the parameter is made.

Weight decay belongs on weight matrices and kernels. Normalisation parameters, biases, class tokens,
position tables and stacked Q/K biases get none (DeiT / ViTAS ``util/weight_decay.py``). The kind is read
from what a parameter is (its owning module's type, its number of dimensions) or from a declaration made
where it is created (:func:`no_weight_decay`), never from its name.
"""
from __future__ import annotations

from typing import Any

import torch.nn as nn

NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


def no_weight_decay(p: nn.Parameter) -> nn.Parameter:
    """Declare `p` exempt from weight decay (a token, a position table, a stack of biases); returns `p`."""
    p.no_weight_decay = True  # type: ignore[attr-defined]
    return p


def decays(p: nn.Parameter, owner: nn.Module) -> bool:
    """Whether `p` (a parameter of `owner`, not of its children) takes weight decay: not for normalisation
    layers, 1-D parameters (biases, scales) or parameters declared with :func:`no_weight_decay`."""
    return not (isinstance(owner, NORMS) or p.ndim <= 1 or getattr(p, "no_weight_decay", False))


def groups_by_kind(model: nn.Module, weight_decay: float, params: list[nn.Parameter] | None = None
                   ) -> list[dict[str, Any]]:
    """Optimiser parameter groups ``[{decay, weight_decay}, {no decay, 0.0}]`` over `params` (default: every
    trainable parameter of `model`), in the model's parameter order."""
    keep = None if params is None else {id(p) for p in params}
    decay, rest, seen = [], [], set()
    for m in model.modules():
        for p in m.parameters(recurse=False):
            if id(p) in seen or not p.requires_grad or (keep is not None and id(p) not in keep):
                continue
            seen.add(id(p))
            (decay if decays(p, m) else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
