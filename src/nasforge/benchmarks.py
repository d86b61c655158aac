"""Deprecated name of :mod:`nasforge.tables` (readers of published NAS benchmark tables).

The package was renamed so that it is not confused with the top-level ``benchmarks/`` folder of
performance scripts. ``import nasforge.benchmarks`` and ``from nasforge.benchmarks.nb201 import ...``
keep working: this module re-exports the public API and registers the submodules under the old name.
New code imports :mod:`nasforge.tables`.
"""
from __future__ import annotations

import sys

from . import tables as _tables
from .tables import *  # noqa: F401,F403 - the public API under its old name
from .tables import __all__  # noqa: F401
from .tables import latency, macro, nb201

for _sub in (latency, macro, nb201):
    sys.modules[f"{__name__}.{_sub.__name__.rsplit('.', 1)[1]}"] = _sub
__path__: list[str] = []  # a package to the import system, so `nasforge.benchmarks.nb201` resolves above
del _sub, _tables
