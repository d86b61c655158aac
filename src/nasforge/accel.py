"""Accelerators and numeric precision: which device a run uses, autocast, gradient scaling, device RNG.

Every command takes a device string (``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``), a precision
(``auto`` | ``fp32`` | ``bf16`` | ``fp16``) and a memory format (``auto`` | ``channels_last`` | ``contiguous``).
``auto`` resolves per device and network kind (:func:`resolve_fast_path`) from what the network's space declares
pays (:class:`FastPath`, ``SearchSpace.fast_path``) and whether the device runs bf16 natively
(:func:`native_bf16`); a run records the resolved choice and a resume reuses it. :func:`resolve_device` turns the string into a ``torch.device`` and fails
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
import torch.nn as nn

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
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
    if precision == "auto":  # resolves to bf16 only where the device supports it (resolve_fast_path)
        return precision
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision bf16 is not supported on {torch.cuda.get_device_name(device)} "
                          "(needs compute capability >= 8.0); use fp16 or fp32")
    return precision


def check_memory_format(memory_format: str | None) -> str | None:
    """Validate a memory-format name (None: leave each builder's own format, runs from before the option).

    Raises:
        ConfigError: an unknown name.
    """
    if memory_format is not None and memory_format not in MEMORY_FORMATS:
        raise ConfigError(f"unknown memory format '{memory_format}'; choose from: {', '.join(MEMORY_FORMATS)}")
    return memory_format


# ---------------------------------------------------------------------------------------------
# precision and memory format "auto": what the space declares pays, and what the device runs natively
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FastPath:
    """What pays on one kind of network (a supernet or a standalone network), as its space declares it.

    ``bf16``: bf16 autocast is faster where the device runs bf16 natively (dense convs and GEMMs that AMX /
    tensor cores take); False where depthwise or grouped convs dominate (oneDNN's bf16 backward of those is
    slower than fp32 on AMX CPUs). ``channels_last``: NHWC weights and activations are faster (oneDNN's convs,
    batch norm and pooling at small channel counts). ``why``: one line naming the measurement behind it.
    """

    bf16: bool = False
    channels_last: bool = False
    why: str = "not measured: the previous path (fp32, contiguous)"


#: network kinds a space declares a FastPath for
NETWORK_KINDS = ("supernet", "network")


def cpu_native_bf16() -> bool:
    """Whether this CPU runs bf16 natively (AVX512-BF16 or AMX-BF16): torch's own probe where it has one,
    else the flags of /proc/cpuinfo. False when neither can tell."""
    probe = getattr(getattr(torch, "_C", None), "_cpu", None)
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(probe, name, None)
        try:
            if fn is not None and fn():
                return True
        except Exception:  # a torch build without the probe's backend: fall back to the flags
            pass
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return bool(re.search(r"\b(amx_bf16|avx512_bf16)\b", flags))


def native_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 kernels natively: CPU with AVX512-BF16/AMX (:func:`cpu_native_bf16`), CUDA
    with compute capability >= 8.0; never MPS (bf16 there is emulated or refused)."""
    if device.type == "cpu":
        return cpu_native_bf16()
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return False


def resolve_fast_path(precision: str, memory_format: str | None, device: torch.device,
                      declared: FastPath) -> dict[str, Any]:
    """The precision and memory format a network of the `declared` kind trains in on `device`.

    ``auto`` precision: bf16 where `declared.bf16` and the device runs bf16 natively (on CUDA every network
    that supports it: tensor cores take depthwise convs too), else fp32. ``auto`` memory format:
    channels_last where `declared.channels_last` on CPU or CUDA, else contiguous. Explicit values pass
    through. Returns ``{"precision", "memory_format", "why"}``.

    Raises:
        ConfigError: unknown names, or an explicit bf16 on a CUDA device without bf16.
    """
    check_precision(precision, device)
    check_memory_format(memory_format)
    why = []
    if precision == "auto":
        native = native_bf16(device)
        use = native and (declared.bf16 or device.type == "cuda")
        precision = "bf16" if use else "fp32"
        why.append(f"bf16 native on {device.type}: {'yes' if native else 'no'}")
    if memory_format == "auto":
        memory_format = "channels_last" if declared.channels_last and device.type in ("cpu", "cuda") else "contiguous"
    if why:
        why.append(declared.why)
    return {"precision": precision, "memory_format": memory_format, "why": "; ".join(why)}


def _channels_last_output(module: nn.Module, args: Any, out: Any) -> Any:
    # after the stem: with 1-channel input, NCHW and NHWC strides coincide, so the stem's output would stay NCHW
    # and every later activation with it; converting here makes the whole network run NHWC
    if isinstance(out, torch.Tensor) and out.dim() == 4:
        return out.contiguous(memory_format=torch.channels_last)
    return out


def _channels_last_input(module: nn.Module, args: tuple) -> tuple:
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


def _stem_of(model: nn.Module) -> nn.Module | None:
    """The module whose output is the network's first feature map: ``model.stem``, else the first conv."""
    stem = getattr(model, "stem", None)
    if isinstance(stem, nn.Module):
        return stem
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


#: attributes that hold a network's sequence of blocks (layer-wise networks and their supernet, NB201 stages)
_BLOCK_LISTS = ("layers", "mixed")


def _modules_in(container: Any) -> list[nn.Module]:
    return list(container) if isinstance(container, (nn.Sequential, nn.ModuleList)) else []


def apply_memory_format(model: nn.Module, memory_format: str | None) -> nn.Module:
    """Put `model` (in place) in `memory_format`: ``channels_last`` stores every 4-D weight NHWC and makes the
    input, the stem's output and the output of every block of ``model.layers`` (where a network has them) NHWC
    (forward hooks), so activations are NHWC at any input channel count;
    ``contiguous`` stores every weight NCHW and removes those hooks; None leaves the model as built.
    Values are the same up to the kernels' summation order. Returns `model`."""
    check_memory_format(memory_format)
    if memory_format is None:
        return model
    if memory_format == "auto":
        raise ConfigError("memory format 'auto' must be resolved (nasforge.accel.resolve_fast_path) first")
    for m in model.modules():  # drop hooks of an earlier call
        for hooks, fn in ((m._forward_hooks, _channels_last_output), (m._forward_pre_hooks, _channels_last_input)):
            for key in [k for k, h in hooks.items() if h is fn]:
                del hooks[key]
    if memory_format == "channels_last":
        model.to(memory_format=torch.channels_last)
        model.register_forward_pre_hook(_channels_last_input)
        stem = _stem_of(model)
        # the stem's output, and every block's (ops that reshape, e.g. a channel shuffle, return NCHW)
        blocks = [b for name in _BLOCK_LISTS for b in _modules_in(getattr(model, name, None))]
        for m in [stem, *blocks]:
            if m is not None:
                m.register_forward_hook(_channels_last_output)
    else:
        model.to(memory_format=torch.contiguous_format)
    model.memory_format = memory_format
    return model


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
        if self.precision == "auto":
            raise ConfigError("precision 'auto' must be resolved (nasforge.accel.resolve_fast_path) before training")
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

