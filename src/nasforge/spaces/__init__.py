"""Search spaces, one module per space; each registers itself in nasforge.registry.SPACES."""
from .base import Arch, SearchSpace

__all__ = ["Arch", "SearchSpace"]
