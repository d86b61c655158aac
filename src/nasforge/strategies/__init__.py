"""Search strategies, one module per method; each registers itself in nasforge.registry.STRATEGIES."""
from .base import Budget, SearchContext, SearchResult, Strategy

__all__ = ["Budget", "SearchContext", "SearchResult", "Strategy"]
