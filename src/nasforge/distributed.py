"""Data parallelism on torch.distributed: process group, gradient averaging, synchronised BatchNorm.

``torchrun --nproc-per-node N -m nasforge search ...`` (or ``nasforge search --nproc N``, which starts the
same thing through ``torch.distributed.run``) runs N processes. Each process builds the same supernet or
network from the same seed, sees its shard of every global batch (``nasforge.data.loader``), and after
every backward pass the gradients of the weights **and** of the architecture parameters are averaged over
the processes with one ``all_reduce`` per parameter list (:func:`average_grads`). Every process then takes
the same optimiser step from the same state, so weights, alphas, agent states and the derived
architecture are bit-identical on every rank; sampled-path methods draw their paths from generators seeded
identically on every rank, so every rank trains the same path. BatchNorm running statistics are
broadcast from rank 0 after each step (as DistributedDataParallel's ``broadcast_buffers`` does), or, with
``sync_bn``, computed over the global batch by :class:`SyncBatchNorm` (which, unlike
``torch.nn.SyncBatchNorm``, also runs on CPU with gloo). Only rank 0 writes the run directory.

Why not wrap the model in ``torch.nn.parallel.DistributedDataParallel``: DDP averages gradients from hooks
that fire during ``loss.backward()``; bi-level DARTS takes the architecture gradient with
``torch.autograd.grad`` and the unrolled (second-order) gradient with several such calls, which those hooks
never see, and sampled paths leave most parameters unused in a step. Averaging explicitly after each
backward is the same reduction DDP performs (without overlapping it with the backward pass) and covers
every case with one mechanism.

Backends: ``gloo`` on CPU, ``nccl`` on CUDA (each process on ``cuda:LOCAL_RANK``).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta
from typing import Iterable, Iterator, Sequence

import torch
import torch.distributed as dist
import torch.nn as nn

from .errors import ConfigError


def launched() -> bool:
    """True when this process was started by torchrun / torch.distributed.run with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """True in the process that writes files and logs (rank 0, or the only process)."""
    return rank() == 0


def init(device: torch.device, timeout_s: float = 1800.0) -> bool:
    """Join the process group torchrun described in the environment (idempotent). Returns True if data
    parallel is on.

    Raises:
        ConfigError: torchrun environment without torch.distributed, or MPS (no collective backend).
    """
    if not launched():
        return False
    if dist.is_initialized():
        return True
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run a single process")
    if device.type == "mps":
        raise ConfigError("data parallel runs need gloo (CPU) or nccl (CUDA); MPS has no collective backend")
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s), **kwargs)
    return True


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


# ---------------------------------------------------------------------------------------------
# collectives on tensors and numbers
# ---------------------------------------------------------------------------------------------
def average_grads(params: Iterable[torch.Tensor]) -> None:
    """Replace every ``p.grad`` by its mean over the processes (one flattened all_reduce per dtype/device).

    Parameters whose gradient is None (ops not on a sampled path) are skipped; every rank runs the same
    path, so every rank skips the same ones. A no-op without data parallelism.
    """
    if not active():
        return
    grads = [p.grad for p in params if p.grad is not None]
    average_(grads)


def average_(tensors: Sequence[torch.Tensor]) -> None:
    """In place: each tensor becomes its mean over the processes."""
    if not active() or not tensors:
        return
    n = dist.get_world_size()
    buckets: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        buckets.setdefault((t.dtype, t.device), []).append(t)
    for group in buckets.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat)
        flat.div_(n)
        offset = 0
        for t in group:
            k = t.numel()
            t.copy_(flat[offset: offset + k].view_as(t))
            offset += k


def sum_floats(*values: float, device: torch.device | None = None) -> list[float]:
    """Sum plain numbers over the processes (metrics: loss sums, correct counts, image counts)."""
    if not active():
        return [float(v) for v in values]
    dev = device if device is not None else _collective_device()
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def broadcast_bool(flag: bool) -> bool:
    """Rank 0's value of `flag` on every rank (e.g. a wall-clock stop decision that must be collective)."""
    if not active():
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_collective_device())
    dist.broadcast(t, 0)
    return bool(t.item())


def broadcast_object(obj):
    """Rank 0's picklable `obj` on every rank (e.g. the run directory rank 0 created)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, 0)
    return box[0]


def all_gather_object(obj) -> list:
    """Every rank's picklable `obj`, in rank order (``[obj]`` without data parallelism)."""
    if not active():
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_batch(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch from every rank's shard (rows concatenated in rank order, which is the one-process
    batch because shards are contiguous), on every rank; (x, y) unchanged without data parallelism. For
    diagnostics that must be computed identically on every rank."""
    if not active():
        return x, y
    parts = all_gather_object((x.detach().cpu(), y.detach().cpu()))  # host: pickled for shards of any size
    return (torch.cat([p[0] for p in parts]).to(x.device), torch.cat([p[1] for p in parts]).to(y.device))


_LOCAL_BN = [False]  # True inside local_batchnorm(): SyncBatchNorm normalises with this process's batch only


@contextmanager
def local_batchnorm() -> Iterator[None]:
    """SyncBatchNorm layers use this process's batch statistics (no collective) inside the block: for
    computations every rank runs on the same data (e.g. a Hessian diagnostic on the gathered global batch),
    which need no reduction and must not put an all_reduce into a double-backward graph."""
    _LOCAL_BN[0] = True
    try:
        yield
    finally:
        _LOCAL_BN[0] = False


def state_digest(module: nn.Module, *extra: object) -> str:
    """SHA-256 of a module's state (every parameter and buffer, bit for bit) and of `extra` (nested dicts,
    lists, tensors, numpy arrays, numbers, strings: e.g. optimiser or agent states)."""
    import hashlib

    h = hashlib.sha256()
    _feed(h, module.state_dict())
    for e in extra:
        _feed(h, e)
    return h.hexdigest()


def _feed(h, obj: object) -> None:
    import numpy as np

    if isinstance(obj, torch.Tensor):
        h.update(f"T{obj.dtype}{tuple(obj.shape)}".encode())
        h.update(obj.detach().contiguous().view(-1).view(torch.uint8).cpu().numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(f"N{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, dict):
        for k in obj:  # insertion order: the same code builds the same dict on every rank
            h.update(f"K{k!r}".encode())
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _feed(h, v)
    else:
        h.update(repr(obj).encode())


def consistency(module: nn.Module, arch: object, *extra: object) -> dict:
    """Under data parallelism: do all ranks hold the same state and architecture? Returns
    ``{"world_size", "ranks_identical", "arch_identical", "digests"}`` (the same on every rank)."""
    digests = all_gather_object(state_digest(module, *extra))
    archs = all_gather_object(arch)
    return {"world_size": world_size(), "ranks_identical": len(set(digests)) == 1,
            "arch_identical": all(a == archs[0] for a in archs), "digests": [d[:16] for d in digests]}


def broadcast_module(module: nn.Module, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters (unless `buffers_only`) and buffers to every rank."""
    if not active():
        return
    tensors = [] if buffers_only else [p.data for p in module.parameters()]
    tensors += [b for b in module.buffers()]
    for t in tensors:
        dist.broadcast(t, 0)


def _collective_device() -> torch.device:
    from .accel import collective_device

    return collective_device(dist.get_backend())


# ---------------------------------------------------------------------------------------------
# synchronised BatchNorm (also on CPU / gloo)
# ---------------------------------------------------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """Sum over processes, differentiable: the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # through this Function again, not a bare dist.all_reduce: a double backward (create_graph, e.g. a
        # Hessian-vector product through SyncBatchNorm) then differentiates it too, instead of PyTorch warning
        # "c10d::allreduce_: an autograd kernel was not registered" and dropping the other ranks' terms.
        # Without create_graph, backward runs without grad mode and this is the plain all_reduce.
        return _AllReduceSum.apply(grad)


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of `x` over the processes (the identity without data parallelism)."""
    return _AllReduceSum.apply(x) if active() else x


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training-mode statistics are those of the global batch (all processes).

    Mean and variance come from one differentiable all_reduce of (sum, sum of squares, count) per layer,
    so the gradient flows through the other processes' contributions exactly as in one process holding
    the whole batch. Evaluation mode and single-process runs use the ordinary running statistics.
    Input: [N, C, *] (any number of spatial dimensions).
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()) or _LOCAL_BN[0]:
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.full((1,), float(x.numel() // x.shape[1]), dtype=torch.float32, device=x.device)
        stats = torch.cat([xf.sum(dims), (xf * xf).sum(dims), count])
        stats = all_reduce_sum(stats)
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c: 2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * n.detach() / (n.detach() - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - m).add_(mean.detach().to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of `module` by :class:`SyncBatchNorm` with the same state (in place
    for children; returns the converted root)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNorm):
        new = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, device=_param_device(module))
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_sync_batchnorm(child))
    return module


def _param_device(module: nn.Module) -> torch.device | None:
    for t in list(module.parameters()) + list(module.buffers()):
        return t.device
    return None


# ---------------------------------------------------------------------------------------------
# launching through torch.distributed.run (the --nproc convenience)
# ---------------------------------------------------------------------------------------------
def relaunch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m torch.distributed.run --standalone --nproc-per-node nproc -m nasforge argv`` and
    return its exit code (the CLI's ``--nproc``; the command line minus ``--nproc``)."""
    import subprocess
    import sys

    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "nasforge", *argv]
    return subprocess.call(cmd)


__all__ = ["active", "all_gather_object", "all_reduce_sum", "consistency", "state_digest", "average_", "average_grads", "barrier", "broadcast_bool", "broadcast_module", "broadcast_object",
           "convert_sync_batchnorm", "init", "is_main", "launched", "rank", "relaunch", "shutdown",
           "SyncBatchNorm", "sum_floats", "world_size"]

