"""Search strategies, one module per method; each registers itself in nasforge.registry.STRATEGIES. The
machinery they share (the strategy interface, the supernet engine, path sampling, selection and scoring, the
multi-trial loop, the evolution, NSGA-II and multi-fidelity engines) lives in `nasforge.engine`. The imports
below are the registration list: a new method's module is added here."""
from . import (asha, bananas, bats, darts, evolution, hurricane, hyperband, local_search, manas,  # noqa: F401
               nsga2, pnas, random_search, random_ws, sh, vitas)
