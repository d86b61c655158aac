"""Small shared helpers: seeding, thread control, cost measurement, atomic file writes."""
from __future__ import annotations

import json
import os
import random
import resource
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; make CPU kernels deterministic."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic mode also fills every fresh tensor with NaN (a debugging aid for kernels that read
    # uninitialised memory); results do not depend on it, and it costs ~20% of a small transformer's step
    torch.utils.deterministic.fill_uninitialized_memory = False


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_threads(n: int | None, check: bool = True) -> None:
    """torch's intra-op thread count (None/0: torch's default). `check`: more threads than the cores this
    process may use is refused (they only contend, and a huge count ends in a MemoryError while torch starts
    them); off where the threads are for other machines (a Ray cluster's workers). Raises ConfigError."""
    if n:
        if check and n > usable_cores():
            from .errors import ConfigError

            raise ConfigError(f"--threads {n} exceeds the {usable_cores()} CPU core(s) this process may use; "
                              f"use --threads {usable_cores()} or fewer")
        torch.set_num_threads(n)


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask (os.umask can only be read by setting it; the lock keeps threads from seeing 0)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextmanager
def _replacing(path: str | Path) -> Iterator[tuple[int, str]]:
    """(fd, name) of a fresh temporary file beside `path` that replaces `path` when the block ends without an
    error, and is removed when it raises: a crash never leaves a half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:  # mkstemp inside the try: an interrupt landing right after it must not leave the file behind
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        # mkstemp creates 0600; the file gets the mode an ordinary open() would give (0666 minus the umask),
        # so results and reports on a shared file system are as readable as metrics.jsonl
        os.chmod(tmp, 0o666 & ~current_umask())
        yield fd, tmp
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write (flushed to disk) then rename, so a crash never leaves a half-written file behind."""
    with _replacing(path) as (fd, _), os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save `obj` to a temporary file, then rename it to `path` (atomic checkpoints)."""
    with _replacing(path) as (fd, tmp):
        os.close(fd)
        torch.save(obj, tmp)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default))


@dataclass
class Cost:
    """CPU seconds, wall seconds and peak RSS of a piece of work."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3), "peak_rss_mb": round(self.peak_rss_mb, 1)}


def peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class CostMeter:
    """Running cost of a piece of work; `offset` carries cost already spent before a resume."""

    def __init__(self, offset: Cost | None = None) -> None:
        self.offset = offset or Cost()
        self._w0, self._c0 = time.perf_counter(), time.process_time()

    def now(self) -> Cost:
        return Cost(wall_s=time.perf_counter() - self._w0 + self.offset.wall_s,
                    cpu_s=time.process_time() - self._c0 + self.offset.cpu_s,
                    peak_rss_mb=max(peak_rss_mb(), self.offset.peak_rss_mb))


def check_writable(path: str | Path, flag: str, *, directory: bool = False) -> Path:
    """Check, before any work starts, that `path` can be written: a folder (``directory=True``: it may not exist
    yet; the nearest existing folder above it must be writable) or a file (not a folder, and its folder, or
    the nearest existing one above, writable: files are written beside and renamed). Leaves nothing behind
    (a probe file is created and removed).

    `flag` names the option in the message (e.g. ``--out``). Returns the path. Raises ConfigError (one line)."""
    from .errors import ConfigError

    p = Path(path).expanduser()
    if p.exists():
        if directory and not p.is_dir():
            raise ConfigError(f"{flag} {path} is a file, not a folder")
        if not directory and p.is_dir():
            raise ConfigError(f"{flag} {path} is a folder; give a file name")
    parent = p if (directory and p.exists()) else p.parent
    anc = parent.absolute()
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise ConfigError(f"{flag} {path}: {anc} is not a folder")
    try:  # a real probe: permissions, read-only mounts and pseudo file systems (/proc) all show here
        fd, probe = tempfile.mkstemp(dir=anc, prefix=".nasforge-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"{flag} {path}: cannot write in {anc} ({e.strerror.lower()})") from None
    return p
