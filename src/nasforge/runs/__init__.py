from .store import RunDir

__all__ = ["RunDir"]
