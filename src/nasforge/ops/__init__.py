"""Building blocks shared by the cell search spaces.

Every candidate op is built by a factory with the same signature ``(C, stride, affine) -> nn.Module``
so that a space is just an ordered mapping ``name -> factory`` (see DARTS_OPS, NB201_OPS, PNAS_OPS).
"""
from .cnn import (
    DARTS_OPS,
    NB201_OPS,
    PNAS_OPS,
    DilConv,
    FactorizedReduce,
    Identity,
    Pool,
    ReLUConvBN,
    ResNetBasicBlock,
    SepConv,
    Zero,
    Conv1x7x7x1,
    drop_path,
    is_parameter_free,
)

__all__ = [
    "DARTS_OPS", "NB201_OPS", "PNAS_OPS", "DilConv", "FactorizedReduce", "Identity", "Pool", "ReLUConvBN",
    "ResNetBasicBlock", "SepConv", "Zero", "Conv1x7x7x1", "drop_path", "is_parameter_free",
]
