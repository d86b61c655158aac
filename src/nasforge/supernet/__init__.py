"""Weight-sharing machinery shared by every one-shot method: mixed ops and the supernet interface."""
from .base import DERIVATION_RULES, Supernet, entropy, path_size
from .mixed import MixedOp

__all__ = ["DERIVATION_RULES", "Supernet", "MixedOp", "entropy", "path_size"]
