"""nasforge: neural architecture search methods side by side on the same spaces, data and budgets."""
from . import report  # noqa: F401  (callable: nasforge.report(run_dir) writes a run's HTML report)
from .api import build_model, compare, components, evaluate, export, load_arch, search, train
from .errors import ConfigError, DataError, UserError

__version__ = "0.1.0"
__all__ = ["search", "train", "evaluate", "export", "report", "compare", "load_arch", "build_model", "components",
           "UserError", "ConfigError", "DataError"]
