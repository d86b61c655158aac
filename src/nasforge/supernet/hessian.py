"""Dominant eigenvalue of the Hessian of a loss w.r.t. architecture parameters (collapse early warning).

RobustDARTS (Zela et al. 2020) showed the dominant eigenvalue of the validation-loss Hessian w.r.t. alpha
grows as DARTS drifts to parameter-free cells. Power iteration needs only Hessian-vector products.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..ops.attention import second_order


def hessian_vector_product(grads: Sequence[torch.Tensor], params: Sequence[torch.Tensor],
                           vec: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    dot = sum((g * v).sum() for g, v in zip(grads, vec))
    return list(torch.autograd.grad(dot, params, retain_graph=True))


def dominant_eigenvalue(loss_fn: Callable[[], torch.Tensor], params: Sequence[torch.Tensor], iters: int = 20,
                        tol: float = 1e-4, generator: torch.Generator | None = None) -> float:
    """Largest-magnitude eigenvalue of d^2 loss / d params^2 by power iteration on HVPs. Parameters the loss
    does not depend on (e.g. the `normal` alphas of a DARTS supernet without normal cells) are left out."""
    params = list(params)
    with second_order():  # the loss is differentiated twice: no fused attention (no double backward)
        loss = loss_fn()
        used = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    params, grads = [p for p, g in zip(params, used) if g is not None], [g for g in used if g is not None]
    # drawn on the generator's device (CPU by default) so the probe is the same on every device, then moved
    vec = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]  # host: see above
    norm = torch.sqrt(sum((v * v).sum() for v in vec))
    vec = [v / norm for v in vec]
    eig = 0.0
    for _ in range(iters):
        hv = hessian_vector_product(grads, params, vec)
        new_eig = float(sum((h * v).sum() for h, v in zip(hv, vec)))
        norm = torch.sqrt(sum((h * h).sum() for h in hv))
        if norm == 0:
            return 0.0
        vec = [h / norm for h in hv]
        if abs(new_eig - eig) <= tol * max(1.0, abs(eig)):
            eig = new_eig
            break
        eig = new_eig
    return eig
