"""Zero-cost proxies: scores of an untrained network that rank architectures without training them.

Every measure has the signature ``fn(model, batch) -> float`` (higher = predicted better) and follows the
paper and its reference code:

* ``synflow``   Tanaka et al., NeurIPS 2020 (SynFlow), as a NAS proxy by Abdelfattah et al., ICLR 2021:
  sum over weights of |theta * dR/dtheta| with R = sum of the outputs of the network whose parameters are
  replaced by their absolute values, on one all-ones input, in float64. Data-free. BatchNorm layers are
  removed (the published protocol builds the network with ``bn=False``; with |theta| and a constant input
  BN would only rescale); dropout is off (eval mode). Layer norms (ViT) stay: they are defined on one input.
* ``snip``      Lee et al., ICLR 2019 (SNIP): sum |theta * dL/dtheta| for the cross-entropy L of one batch.
* ``grasp``     Wang et al., ICLR 2020 (GraSP): sum -theta * (H g), g = dL/dtheta, H the Hessian of L, via
  one Hessian-vector product (temperature 1 as in Abdelfattah et al.'s code).
* ``jacob_cov`` Mellor et al. 2020 (NASWOT v1) as used by Abdelfattah et al.: the per-image input gradients
  J [B, D] of the summed logits; with eigenvalues v of corrcoef(J), score = -sum(log(v + k) + 1/(v + k)),
  k = 1e-5.
* ``nwot``      Mellor et al., ICML 2021 (NASWOT): each image's binary code c = 1[pre-activation > 0] over all
  rectifier units; K = c c^T + (1 - c)(1 - c)^T summed over layers (= units minus Hamming distance);
  score = log|det K|. Identical codes make K singular: -inf.
* ``zen``       Lin et al., ICCV 2021 (Zen-NAS): with Gaussian N(0, 1) weights and inputs x, eps,
  log E_b ||f(x) - f(x + 0.01 eps)||_1 + sum over BatchNorms of log sqrt(mean channel variance), f the
  feature map before global average pooling (networks without one: the input of the last linear layer,
  e.g. ViT's class token).
* ``params``, ``flops`` baselines: trainable parameters of the inference network; forward FLOPs of one image
  (multiply-add = 2, :mod:`nasforge.hardware.flops`).
* ``kernel_area`` the free baseline: sum over convolutions of the kernel's spatial area kh*kw. On NB201 it
  is 15 x (9 * #3x3 + 1 * #1x1 edges) plus a constant (stem, reductions), i.e. the "3x3 = 9, 1x1 = 1"
  count of the cell.

Which weights count (synflow, snip, grasp): every parameter with two or more dimensions - convolution
kernels and linear matrices (including functional ones, as in the ViT), as the reference code's
conv + linear layers; biases and normalisation affine parameters do not.

Rectifier units (nwot) are found at the function level (``F.relu``, ``gelu``, ``relu6``, ``hardswish``,
``leaky_relu``, ``prelu``, ``silu``, ``elu``, ``hardtanh``), so functional activations (the ViT's GELU) count
too; the code of a unit is the sign of its input, its linear region for ReLU-like functions.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import ConfigError, choices_message
from ..ops.attention import second_order


@dataclass
class ProxyBatch:
    """What a measure sees: normalised images ``x`` [B, C, H, W] and labels ``y`` [B] (int64) on the
    model's device, and ``seed`` for any random draw a measure makes itself (zen)."""

    x: torch.Tensor
    y: torch.Tensor
    seed: int = 0


@dataclass(frozen=True)
class Proxy:
    name: str
    fn: Callable[[nn.Module, ProxyBatch], float]
    uses_data: bool  # reads batch.x / batch.y (False: only its shape)
    paper: str


PROXIES: dict[str, Proxy] = {}


def _register(name: str, uses_data: bool, paper: str):
    def add(fn):
        PROXIES[name] = Proxy(name, fn, uses_data, paper)
        return fn
    return add


def get_proxy(name: str) -> Proxy:
    """The proxy `name`. Raises ConfigError (one line listing the valid names) for an unknown one."""
    try:
        return PROXIES[name]
    except KeyError:
        raise ConfigError(choices_message("proxy", str(name), list(PROXIES))) from None


def weight_params(model: nn.Module) -> list[nn.Parameter]:
    """Parameters with >= 2 dimensions (conv kernels, linear matrices) that require gradients."""
    return [p for p in model.parameters() if p.dim() >= 2 and p.requires_grad]


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out[0] if isinstance(out, (tuple, list)) else out


# ------------------------------------------------------------------------------------------------
# gradient-based: synflow, snip, grasp, jacob_cov
# ------------------------------------------------------------------------------------------------
def _without_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` with every BatchNorm replaced by the identity."""
    net = copy.deepcopy(model)
    for name, mod in list(net.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(mod, child_name, nn.Identity())
    return net


@_register("synflow", uses_data=False, paper="Tanaka et al. 2020; Abdelfattah et al. 2021")
def synflow(model: nn.Module, batch: ProxyBatch) -> float:
    """SynFlow: sum |theta * dR/dtheta|, R = sum(f_|theta|(1)); float64, no BatchNorm, eval mode."""
    net = _without_batchnorm(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones((1, *batch.x.shape[1:]), dtype=torch.float64, device=batch.x.device)
    weights = weight_params(net)
    return _saliency(weights, torch.autograd.grad(_logits(net, ones).sum(), weights, allow_unused=True))


def _saliency(weights: list[torch.Tensor], grads: tuple[torch.Tensor | None, ...]) -> float:
    """sum |theta * g| over the weights that got a gradient (SynFlow's and SNIP's score)."""
    return float(sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None))


def _loss_grads(model: nn.Module, batch: ProxyBatch) -> tuple[list[torch.Tensor], tuple[torch.Tensor | None, ...]]:
    """(weights, dL/dweights) of the batch's cross-entropy in train mode (None: a weight the loss does not use)."""
    model.train()
    weights = weight_params(model)
    loss = F.cross_entropy(_logits(model, batch.x), batch.y)
    return weights, torch.autograd.grad(loss, weights, allow_unused=True)


@_register("snip", uses_data=True, paper="Lee et al. 2019 (SNIP)")
def snip(model: nn.Module, batch: ProxyBatch) -> float:
    """SNIP connection sensitivity: sum |theta * dL/dtheta| (cross-entropy of the batch, train mode)."""
    return _saliency(*_loss_grads(model, batch))


@_register("grasp", uses_data=True, paper="Wang et al. 2020 (GraSP)")
def grasp(model: nn.Module, batch: ProxyBatch) -> float:
    """GraSP: sum -theta * (H g) with g = dL/dtheta (one Hessian-vector product; train mode)."""
    weights, g = _loss_grads(model, batch)
    used = [i for i, gi in enumerate(g) if gi is not None]
    if not used:
        return 0.0
    g_const = [g[i].detach() for i in used]
    with second_order():  # differentiated twice: no fused attention (it has no double backward)
        loss = F.cross_entropy(_logits(model, batch.x), batch.y)
        g_graph = torch.autograd.grad(loss, [weights[i] for i in used], create_graph=True)
        z = sum((a * b).sum() for a, b in zip(g_graph, g_const))
        hg = torch.autograd.grad(z, [weights[i] for i in used], allow_unused=True)
    return float(sum(float((-weights[i].detach() * h).sum()) for i, h in zip(used, hg) if h is not None))


@_register("jacob_cov", uses_data=True, paper="Mellor et al. 2020 (NASWOT v1); Abdelfattah et al. 2021")
def jacob_cov(model: nn.Module, batch: ProxyBatch, k: float = 1e-5) -> float:
    """-sum(log(v + k) + 1/(v + k)) over the eigenvalues v of the correlation matrix of the per-image input
    Jacobians of the summed logits; -inf when a Jacobian row is constant (the output ignores the input)."""
    model.train()
    x = batch.x.detach().clone().requires_grad_(True)
    (jac,) = torch.autograd.grad(_logits(model, x).sum(), [x], allow_unused=True)
    if jac is None:
        return float("-inf")
    J = jac.reshape(len(x), -1).detach().cpu().double().numpy()  # host: a B x B eigenproblem
    if np.any(J.std(axis=1) == 0):
        return float("-inf")
    v = np.linalg.eigvalsh(np.corrcoef(J))
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


# ------------------------------------------------------------------------------------------------
# activation-based: nwot, zen (function-level probes, so functional layers count)
# ------------------------------------------------------------------------------------------------
_RECTIFIERS = {F.relu, F.relu_, torch.relu, torch.relu_, F.gelu, F.relu6, F.hardswish, F.leaky_relu, F.prelu,
               F.silu, F.elu, F.hardtanh, torch.Tensor.relu, torch.Tensor.relu_}


class _Probe(TorchFunctionMode):
    """Sees every torch function call of a forward pass; subclasses record what they need."""

    def on_call(self, func: Any, args: tuple, kwargs: dict) -> None:  # pragma: no cover - overridden
        pass

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.on_call(func, args, kwargs)  # before the call: an in-place activation overwrites its input
        return func(*args, **kwargs)


class _CodeProbe(_Probe):
    def __init__(self) -> None:
        super().__init__()
        self.K: torch.Tensor | None = None
        self.units = 0

    def on_call(self, func, args, kwargs) -> None:
        if func in _RECTIFIERS and args and isinstance(args[0], torch.Tensor):
            x = args[0]
            c = (x.detach().reshape(len(x), -1) > 0).double()
            k = c @ c.t() + (1 - c) @ (1 - c).t()
            self.K = k if self.K is None else self.K + k
            self.units += c.shape[1]


def nwot_kernel(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor | None, int]:
    """NASWOT's kernel K [B, B] (float64: entry i, j = number of units where images i and j share the same
    code) and the number of units; (None, 0) if the network has no rectifier."""
    probe = _CodeProbe()
    with torch.no_grad(), probe:
        _logits(model, x)
    return probe.K, probe.units


@_register("nwot", uses_data=True, paper="Mellor et al. 2021 (NASWOT)")
def nwot(model: nn.Module, batch: ProxyBatch) -> float:
    """log|det K| of NASWOT's kernel (train mode, as the reference code); -inf if K is singular."""
    model.train()
    K, units = nwot_kernel(model, batch.x)
    if K is None:
        raise ConfigError("nwot needs rectifier units (relu, gelu, ...); this network has none")
    sign, logdet = torch.linalg.slogdet(K.cpu())  # host: a B x B determinant
    return float(logdet) if float(sign) != 0 else float("-inf")


_GLOBAL_MEAN = {torch.Tensor.mean, torch.mean}


class _ZenProbe(_Probe):
    def __init__(self) -> None:
        super().__init__()
        self.pre_gap: torch.Tensor | None = None
        self.last_linear_in: torch.Tensor | None = None
        self.bn_log_std = 0.0

    def on_call(self, func, args, kwargs) -> None:
        if not args or not isinstance(args[0], torch.Tensor):
            return
        x = args[0]
        if func is F.adaptive_avg_pool2d:
            size = args[1] if len(args) > 1 else kwargs.get("output_size")
            if size in (1, (1, 1), [1, 1]):
                self.pre_gap = x
        elif func in (F.avg_pool2d,) and x.dim() == 4:
            ks = args[1] if len(args) > 1 else kwargs.get("kernel_size")
            if ks in (x.shape[-1], (x.shape[-2], x.shape[-1])):
                self.pre_gap = x
        elif func in _GLOBAL_MEAN and x.dim() == 4:
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            if dim is not None and sorted(d % 4 for d in (dim if isinstance(dim, (tuple, list)) else [dim])) == [2, 3]:
                self.pre_gap = x
        elif func is F.linear:
            self.last_linear_in = x
        elif func is F.batch_norm:
            dims = [d for d in range(x.dim()) if d != 1]
            var = x.detach().double().var(dim=dims, unbiased=False).mean()
            self.bn_log_std += 0.5 * math.log(max(float(var), 1e-300))


@_register("zen", uses_data=False, paper="Lin et al. 2021 (Zen-NAS)")
def zen(model: nn.Module, batch: ProxyBatch, mixup: float = 1e-2) -> float:
    """Zen-score: log E||f(x) - f(x + mixup * eps)|| + sum log sigma_BN (Gaussian weights and inputs)."""
    net = copy.deepcopy(model).train()
    gen = torch.Generator().manual_seed(batch.seed)  # host: the same draws on every device
    _gaussian_init_seeded(net, gen)
    shape = tuple(batch.x.shape)
    x = torch.randn(shape, generator=gen).to(batch.x.device)  # host: seeded draws, the same on every device
    eps = torch.randn(shape, generator=gen).to(batch.x.device)  # host: seeded draws, the same on every device
    feats = []
    bn = 0.0
    for inp in (x, x + mixup * eps):
        probe = _ZenProbe()
        with torch.no_grad(), probe:
            out = _logits(net, inp)
        f = probe.pre_gap if probe.pre_gap is not None else probe.last_linear_in
        feats.append(out if f is None else f)
        if inp is x:
            bn = probe.bn_log_std
    delta = (feats[0] - feats[1]).abs().reshape(shape[0], -1).sum(1).mean()
    d = float(delta)
    return (math.log(d) if d > 0 else float("-inf")) + bn


def _gaussian_init_seeded(model: nn.Module, gen: torch.Generator) -> None:
    """Zen-NAS' initialisation: weights N(0, 1) (drawn from `gen`), biases 0, normalisation scale 1, shift 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device))  # host: seeded draws
            elif name.endswith("bias"):
                p.zero_()  # host: seeded draws, the same on every device


# ------------------------------------------------------------------------------------------------
# baselines: params, flops, kernel_area
# ------------------------------------------------------------------------------------------------
@_register("params", uses_data=False, paper="baseline: trainable parameters")
def params(model: nn.Module, batch: ProxyBatch) -> float:
    from ..ops.heads import param_counts

    return float(param_counts(model)["params"])


@_register("flops", uses_data=False, paper="baseline: forward FLOPs of one image")
def flops(model: nn.Module, batch: ProxyBatch) -> float:
    from ..hardware.flops import count_flops

    return float(count_flops(model, batch.x[:1]))


@_register("kernel_area", uses_data=False, paper="baseline: sum of conv kernel areas (NB201: 3x3 = 9, 1x1 = 1)")
def kernel_area(model: nn.Module, batch: ProxyBatch) -> float:
    return float(sum(m.kernel_size[0] * m.kernel_size[1] for m in model.modules() if isinstance(m, nn.Conv2d)))
