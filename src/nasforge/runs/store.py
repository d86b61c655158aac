"""Run directories: resolved config, metrics as JSON lines, atomic checkpoints, final result.

Layout of a run directory::

    config.json        the resolved configuration (enough to resume)
    metrics.jsonl      one JSON object per logged event (epoch, trial, ...)
    checkpoint.pt      the latest checkpoint (written to a temp file, then renamed)
    result.json        written once at the end: architecture, metrics, cost

Under data parallelism (torchrun) only rank 0 writes: every writing method is a no-op on other ranks.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import distributed
from ..errors import UserError
from ..utils import atomic_torch_save, atomic_write_json, to_jsonable


# ---------------------------------------------------------------------------------------------
# reading torch files without running their pickles
# ---------------------------------------------------------------------------------------------
def _numpy_globals() -> list[Any]:
    """What a numpy array inside a checkpoint needs beyond torch's weights-only defaults: the array
    constructor (under its numpy-2 and numpy-1 module names), the array and dtype types, the numeric
    dtype classes (booleans, integers, floats: never object, string or record dtypes) and `bytes` (an empty
    array's buffer is pickled as ``bytes()``). MANAS' agent arrays and loss history are such arrays;
    nothing here can call anything but these constructors."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray

    numeric = [type(np.dtype(t)) for t in ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")]
    # under both module names: files written with numpy 1 name numpy.core, with numpy 2 numpy._core
    return [(multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
            (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype, bytes, *numeric]


#: the object a weights-only load refused, as torch words it ("GLOBAL io.open" / "got <class 'x.Y'>")
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)|but got <class '([\w.]+)'>")


def _refusal(what: str, p: Path, name: str) -> UserError:
    return UserError(f"{what} {p} holds an object nasforge never writes{name}; refusing to load it, since "
                     "loading it could run code (a file of another program, or a crafted one)")


def check_torch_file(path: str | Path, what: str = "file") -> None:
    """Refuse, before any work, a torch file whose pickle names a function or class outside the allowlist
    of `load_torch_file`. Reads only the pickle (not the tensor data), so it is cheap; `load_torch_file`
    stays the real guard (it also refuses objects this scan cannot see, such as an object dtype).

    Raises:
        UserError: (one line) the file names something nasforge never writes, or is unreadable.
    """
    p = Path(path)
    if not p.is_file():
        return
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(p)
    except Exception as e:
        raise UserError(f"{what} {p} is unreadable ({type(e).__name__})") from None
    if unsafe:
        raise _refusal(what, p, f" ({unsafe[0]})")


def load_torch_file(path: str | Path, what: str = "file") -> Any:
    """Read a torch file nasforge wrote (a checkpoint or a model file) onto the CPU, without executing it.

    `torch.load(weights_only=True)` admits only tensors, containers, numbers, strings and the few numpy
    constructors of `_numpy_globals` (an allowlist used for this call only). A file whose pickle names
    anything else (a crafted file that would run code, e.g. create a file) is refused before that object
    is built. Tensors come back on the CPU whatever device wrote them.

    Raises:
        UserError: (one line) the file is missing, corrupt, or holds objects nasforge never writes.
    """
    p = Path(path)
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(p, map_location="cpu", weights_only=True)  # host: device-independent files
    except FileNotFoundError:
        raise UserError(f"{what} {p} not found") from None
    except pickle.UnpicklingError as e:
        m = _UNSUPPORTED.search(str(e))
        raise _refusal(what, p, f" ({m.group(1) or m.group(2)})" if m else "") from None
    except Exception as e:  # corrupt file: say so rather than crash deep inside torch
        raise UserError(f"{what} {p} is unreadable ({type(e).__name__})") from None


class RunDir:
    CONFIG = "config.json"
    METRICS = "metrics.jsonl"
    CHECKPOINT = "checkpoint.pt"
    RESULT = "result.json"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        #: called after every checkpoint (the API updates cost.json there)
        self.on_checkpoint: "callable | None" = None

    # -- creation -------------------------------------------------------------------------
    @staticmethod
    def check_name(root: str | Path, name: str) -> Path:
        """The path of a new run named `name` under `root`. Raises UserError when the name is not a plain
        folder name (``../x`` would write outside `root`) or a run of that name exists (an explicit name is
        never silently changed to ``NAME-2``: resume that run, or choose another name)."""
        if (not name.strip() or name in (".", "..") or "/" in name or (os.sep != "/" and os.sep in name)
                or name != name.strip() or not name.isprintable()):  # " " or "x\n": a folder no one can type
            raise UserError(f"--name must be a plain folder name (no '/', not '.' or '..', no surrounding spaces "
                            f"or control characters), got {name!r}")
        path = Path(root) / name
        if path.exists():
            command = None
            try:
                command = json.loads((path / RunDir.CONFIG).read_text()).get("command")
            except (OSError, ValueError, AttributeError):
                pass
            if command is None:
                hint = "it is not a nasforge run"
            elif (path / RunDir.RESULT).is_file():
                hint = f"a finished {command} run"
            else:
                hint = f"an unfinished {command} run; resume it with: nasforge {command} --resume {path}"
            raise UserError(f"{path} already exists ({hint}); choose another --name")
        return path

    @classmethod
    def create(cls, root: str | Path, command: str, config: dict[str, Any], name: str | None = None) -> "RunDir":
        """A new run directory: ``root/name`` (refused if it exists, see :meth:`check_name`), or
        ``root/<command>-<time>`` (``-2``, ``-3``... when two runs start in the same second)."""
        root = Path(root)
        if name is not None:
            path = cls.check_name(root, name)
        else:
            base = f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"
            path = root / base
            i = 1
            while path.exists():
                i += 1
                path = root / f"{base}-{i}"
        path.mkdir(parents=True)
        run = cls(path)
        atomic_write_json(path / cls.CONFIG, to_jsonable({"command": command, **config}))
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """Open an existing run to resume it. Raises UserError (one line) for a path that does not exist, a file,
        or a folder without config.json."""
        path = Path(path)
        if not (path / cls.CONFIG).is_file():
            why = ("it does not exist" if not path.exists() else "a file, not a folder" if not path.is_dir()
                   else f"no {cls.CONFIG}")
            raise UserError(f"{path} is not a nasforge run directory ({why})")
        return cls(path)

    # -- contents -------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / self.CONFIG).read_text())
        except (OSError, ValueError) as e:  # ValueError: not JSON, or not UTF-8 text
            raise UserError(f"cannot read {self.path / self.CONFIG}: {e}") from None

    def log(self, **record: Any) -> None:
        if not distributed.is_main():
            return
        from .. import progress

        progress.line(record, self.path)  # progress lines (not a terminal) and evolution counts
        record = {"time": round(time.time(), 3), **record}
        with open(self.path / self.METRICS, "a") as f:
            f.write(json.dumps(to_jsonable(record)) + "\n")

    def metrics(self) -> list[dict[str, Any]]:
        p = self.path / self.METRICS
        if not p.exists():
            return []
        out = []
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a line cut short by a crash; everything before it is intact
        return out

    def truncate_metrics(self, keep: "callable") -> None:
        """On resume, drop records logged after the checkpoint that is being resumed from."""
        if not distributed.is_main():
            return
        kept = [m for m in self.metrics() if keep(m)]
        tmp = "".join(json.dumps(m) + "\n" for m in kept)
        from ..utils import atomic_write_bytes

        atomic_write_bytes(self.path / self.METRICS, tmp.encode())

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        if distributed.is_main():
            atomic_torch_save(state, self.path / self.CHECKPOINT)
        if self.on_checkpoint is not None:
            self.on_checkpoint()

    def has_checkpoint(self) -> bool:
        return (self.path / self.CHECKPOINT).is_file()

    def check_checkpoint(self) -> None:
        """Refuse a checkpoint that names objects nasforge never writes, cheaply (before data loads).
        Raises UserError (one line); a missing checkpoint is fine."""
        try:
            check_torch_file(self.path / self.CHECKPOINT, "checkpoint")
        except UserError as e:
            if "unreadable" in str(e):
                raise UserError(f"{e}; delete it to restart the run") from None
            raise

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint (tensors on the CPU; the caller moves them), or None when there is none.
        Raises UserError for a corrupt checkpoint or one holding objects nasforge never writes."""
        p = self.path / self.CHECKPOINT
        if not p.is_file():
            return None
        try:
            return load_torch_file(p, "checkpoint")
        except UserError as e:
            if "unreadable" in str(e):
                raise UserError(f"{e}; delete it to restart the run") from None
            raise

    def write_result(self, result: dict[str, Any]) -> None:
        self.write_json(self.RESULT, to_jsonable(result))

    def write_json(self, name: str, obj: Any) -> None:
        """Atomically write `obj` as JSON to the file `name` of the run (rank 0 only)."""
        if distributed.is_main():
            atomic_write_json(self.path / name, obj)

    def save_torch(self, name: str, obj: Any) -> None:
        """Atomically torch.save `obj` to the file `name` of the run (rank 0 only)."""
        if distributed.is_main():
            atomic_torch_save(obj, self.path / name)

    def result(self) -> dict[str, Any]:
        p = self.path / self.RESULT
        if not p.is_file():
            try:
                command = self.config().get("command") or "search"
            except (UserError, AttributeError):  # an unreadable config: the generic hint
                command = "search|train"
            raise UserError(f"{self.path} has no {self.RESULT}: the run has not finished; resume it with: "
                            f"nasforge {command} --resume {self.path}")
        return json.loads(p.read_text())

    def file(self, name: str) -> Path:
        return self.path / name
