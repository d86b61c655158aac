"""Search spaces, one module per space; each registers itself in nasforge.registry.SPACES. The imports below
are the registration list: a new space module is added here."""
from . import bats, darts, fbnet, macro, mobile, nb201, pnas, vit  # noqa: F401  (registration list)
from .base import Arch, SearchSpace

__all__ = ["Arch", "SearchSpace"]
