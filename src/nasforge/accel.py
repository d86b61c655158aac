"""Accelerators and numeric precision: which device a run uses, autocast, gradient scaling, device RNG.

Every command takes a device string (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``) and a precision
(``fp32`` | ``bf16`` | ``fp16``). :func:`resolve_device` turns the string into a ``torch.device`` and fails
with one line (a ``ConfigError``, exit 2) when the device is not there, so the CLI can refuse before a run
directory exists. :class:`Precision` bundles the autocast context and the gradient scaler (fp16 only) that
the training engine and the one-shot search loop share.

Supported combinations (autocast dtypes as PyTorch implements them):

============  ======  ==================================================================
device        fp32    bf16 / fp16
============  ======  ==================================================================
cpu           yes     bf16 yes (slow without AVX-512-BF16/AMX); fp16 yes (slow, scaled)
cuda          yes     bf16 on compute capability >= 8.0 (Ampere+); fp16 everywhere (scaled)
mps           yes     fp16 yes; bf16 needs macOS 14+ (PyTorch refuses otherwise)
============  ======  ==================================================================

Parameters (weights and architecture parameters alike) always stay fp32: autocast only runs eligible
ops (convolutions, matmuls) in the lower precision, and fp16 gradients are scaled to avoid underflow.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Any

import torch

from .errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_SPEC = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Device strings usable on this machine, e.g. ``["cpu", "cuda:0", "cuda:1"]``."""
    out = ["cpu"] + [f"cuda:{i}" for i in range(_cuda_count())]
    if _mps_available():
        out.append("mps")
    return out


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` a run uses.

    ``auto`` (or None) picks CUDA if available (``cuda:LOCAL_RANK`` under torchrun, else ``cuda:0``), else
    MPS, else CPU. ``cuda`` means the current CUDA device (``cuda:LOCAL_RANK`` under torchrun).

    Raises:
        ConfigError: unknown spelling, or a device this machine does not have (``cuda`` without CUDA,
            ``cuda:7`` on a machine with fewer GPUs, ``mps`` off Apple silicon).
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    spec = "auto" if spec is None else str(spec).strip().lower()
    if not _SPEC.match(spec):
        raise ConfigError(f"unknown device '{spec}'; choose from: auto, cpu, cuda, cuda:N, mps")
    n_cuda = _cuda_count()
    if spec == "auto":
        if n_cuda:
            return torch.device("cuda", _local_rank() % n_cuda)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise ConfigError("device 'mps' is not available on this machine (needs Apple silicon and a PyTorch "
                              f"build with MPS); available: {', '.join(available_devices())}")
        return torch.device("mps")
    if not n_cuda:
        raise ConfigError(f"device '{spec}' is not available: this PyTorch build or machine has no CUDA "
                          f"(torch {torch.__version__}); available: {', '.join(available_devices())}")
    index = int(spec.split(":")[1]) if ":" in spec else _local_rank() % n_cuda
    if index >= n_cuda:
        raise ConfigError(f"device '{spec}' is not available: this machine has {n_cuda} CUDA device(s) "
                          f"(cuda:0..cuda:{n_cuda - 1})")
    return torch.device("cuda", index)


def _local_rank() -> int:
    import os

    try:
        return int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        return 0


def check_precision(precision: str, device: torch.device) -> str:
    """Validate a precision name for `device`; returns it.

    Raises:
        ConfigError: unknown name, or bf16 on a CUDA device without bf16 support.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision '{precision}'; choose from: {', '.join(PRECISIONS)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision bf16 is not supported on {torch.cuda.get_device_name(device)} "
                          "(needs compute capability >= 8.0); use fp16 or fp32")
    return precision


def collective_device(backend: str) -> torch.device:
    """Where small tensors for collectives live: the current CUDA device for nccl, the CPU for gloo."""
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def setup_device(device: torch.device) -> None:
    """Make `device` the current device of its backend (CUDA), so kernels and NCCL use the right GPU."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


@dataclass
class Precision:
    """Autocast + gradient scaling for one device and precision.

    Use ``with prec.autocast(): loss = ...``; ``prec.scale(loss).backward()``; then ``prec.step(opt)`` for
    every optimiser (unscaling first when fp16) and ``prec.update()`` once per iteration. With fp32 and bf16
    the scaler is disabled and these calls reduce to plain ``backward`` / ``opt.step()``.
    """

    device: torch.device
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_precision(self.precision, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES.get(self.precision, torch.float32)

    @property
    def enabled(self) -> bool:
        return self.precision != "fp32"

    def autocast(self) -> contextlib.AbstractContextManager:
        """Forward passes under this context run eligible ops in bf16/fp16; a no-op for fp32."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to call backward / autograd.grad on (multiplied by the loss scale under fp16)."""
        return self.scaler.scale(loss)

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients held by `optimizer`'s parameters by the loss scale (before clipping)."""
        if self.scaler.is_enabled():
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step(), skipped under fp16 when a gradient is inf/NaN (the scale then shrinks)."""
        if self.scaler.is_enabled():
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Adjust the loss scale once per iteration (fp16 only)."""
        if self.scaler.is_enabled():
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler.is_enabled() else {}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)


# ---------------------------------------------------------------------------------------------
# RNG state for checkpoints: the CPU generator always, the device's generator where it has one
# ---------------------------------------------------------------------------------------------
def rng_state(device: torch.device) -> dict[str, Any]:
    """The RNG state a checkpoint stores: ``{"cpu": ByteTensor, "device": str, "cuda"|"mps": ByteTensor}``."""
    out: dict[str, Any] = {"cpu": torch.get_rng_state(), "device": str(device)}
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        out["mps"] = torch.mps.get_rng_state()
    return out


def set_rng_state(state: Any, device: torch.device) -> None:
    """Restore :func:`rng_state` output (or a bare CPU ByteTensor, the old checkpoint format).

    A device generator state is restored only on a device of the same type; resuming a CUDA run on a CPU
    (or the reverse) restores the CPU generator and leaves the new device's generator seeded as it is.
    """
    if isinstance(state, torch.Tensor):
        torch.set_rng_state(state.cpu())
        return
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    elif device.type == "mps" and "mps" in state:
        torch.mps.set_rng_state(state["mps"].cpu())


def seed_device(seed: int, device: torch.device) -> None:
    """Seed the device generator (CUDA/MPS); torch.manual_seed already covers every CUDA device."""
    if device.type == "mps":
        torch.mps.manual_seed(seed)


def to_device(batch: Any, device: torch.device, non_blocking: bool = True) -> Any:
    """Move a tensor, or a tuple/list/dict of tensors, to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking and device.type == "cuda")
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device, non_blocking) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device, non_blocking) for k, v in batch.items()}
    return batch


def peak_memory_mb(device: torch.device) -> float | None:
    """Peak allocated accelerator memory (MiB) since the last reset; None on CPU/MPS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None

