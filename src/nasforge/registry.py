"""Name -> factory registries for spaces, strategies, datasets and estimators (timm style)."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import ConfigError, choices_message

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._entries[name] = obj
            self._help[name] = help or (getattr(obj, "__doc__", "") or "").strip().split("\n")[0]
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(choices_message(self.kind, name, self.names())) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> Iterator[tuple[str, str]]:
        for name in self.names():
            yield name, self._help[name]


def import_all() -> None:
    """Import every space, strategy and estimator module (and the executors) so their registrations run.
    Called by the API and by trial functions, which may run in a fresh process (a Ray worker)."""
    import importlib
    import pkgutil

    for pkg in ("spaces", "strategies", "estimators"):
        mod = importlib.import_module(f"nasforge.{pkg}")
        for info in pkgutil.iter_modules(mod.__path__):
            importlib.import_module(f"nasforge.{pkg}.{info.name}")
    importlib.import_module("nasforge.runs.executors")


SPACES: Registry = Registry("search space")
STRATEGIES: Registry = Registry("strategy")
DATASETS: Registry = Registry("dataset")
ESTIMATORS: Registry = Registry("estimator")
EXECUTORS: Registry = Registry("executor")
