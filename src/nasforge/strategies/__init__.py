"""Search strategies, one module per method; each registers itself in nasforge.registry.STRATEGIES. The
machinery they share (the strategy interface, the supernet engine, path sampling, selection and scoring, the
multi-trial loop and the evolution engine) lives in `nasforge.engine`. The imports below are the registration
list: a new method's module is added here."""
from . import (bats, darts, evolution, hurricane, manas, pnas, random_search, random_ws,  # noqa: F401
               vitas)
