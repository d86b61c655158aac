"""Zero-cost proxies (training-free scores of architectures): measures, rank ensemble, scoring protocol."""
from .ensemble import DEFAULT_MEMBERS, normalised_ranks, percentile_aggregate, rank_aggregate
from .measures import PROXIES, Proxy, ProxyBatch, get_proxy, nwot_kernel
from .score import Protocol, make_batch, score_arch, score_archs

__all__ = ["DEFAULT_MEMBERS", "PROXIES", "Protocol", "Proxy", "ProxyBatch", "get_proxy", "make_batch",
           "normalised_ranks", "nwot_kernel", "percentile_aggregate", "rank_aggregate", "score_arch", "score_archs"]
