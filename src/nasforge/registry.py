"""Name -> factory registries for spaces, strategies, datasets, estimators and executors (timm style).

This module imports nothing of nasforge's components: each component module registers itself when it is
imported, and each component package lists its modules explicitly in its ``__init__`` (the registration
list: ``nasforge.spaces``, ``nasforge.strategies``, ``nasforge.estimators``); ``nasforge.building.
import_components`` imports those packages and the executors."""
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


SPACES: Registry = Registry("search space")
STRATEGIES: Registry = Registry("strategy")
DATASETS: Registry = Registry("dataset")
ESTIMATORS: Registry = Registry("estimator")
EXECUTORS: Registry = Registry("executor")
