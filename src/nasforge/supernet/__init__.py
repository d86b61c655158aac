"""Weight-sharing machinery shared by every one-shot method: mixed ops and the supernet interface."""
from .base import Supernet, entropy, path_size
from .mixed import MixedOp

__all__ = ["Supernet", "MixedOp", "entropy", "path_size"]
