"""Every one-shot method honours --precision (issue 19): its training steps run the supernet's convolutions
and matrix products in the requested dtype. A torch-function mode records the dtype every conv / linear /
matmul result has while the method's `step` runs; a method that trained outside the engine's autocast (as
hurricane and vitas did before the engine) records only float32 under bf16 and fails."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from nasforge import api
from nasforge.building import import_components
from nasforge.registry import STRATEGIES
from test_engine_dp import configs
from test_hurricane import fake_cache  # noqa: F401  (fixture)

WATCHED = {F.linear, F.conv2d, torch.conv2d, torch.matmul, torch.bmm, torch.Tensor.matmul, torch.Tensor.__matmul__}


class _Dtypes(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.in_step = False
        self.seen: set[torch.dtype] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.in_step and func in WATCHED and isinstance(out, torch.Tensor):
            self.seen.add(out.dtype)
        return out


def _search_dtypes(method: str, precision: str, lut: str, tmp_path, monkeypatch) -> set[torch.dtype]:
    import_components()
    cls = STRATEGIES.get(method)
    mode = _Dtypes()
    original = cls.step

    def step(self, *args, **kwargs):
        mode.in_step = True
        try:
            return original(self, *args, **kwargs)
        finally:
            mode.in_step = False

    monkeypatch.setattr(cls, "step", step)
    cfg = {**configs(method, lut)["plain"], "precision": precision}
    cfg["hparams"] = {**cfg["hparams"], **({"hessian_every": 0} if "hessian_every" in cfg["hparams"] else {})}
    with mode:
        api.search(cfg, run_root=tmp_path / precision)
    return mode.seen


@pytest.mark.parametrize("method", ["darts", "single-darts", "manas", "manas-ls", "random-ws", "bats", "hurricane",
                                    "vitas"])
def test_training_steps_compute_in_the_requested_precision(method, tmp_path, monkeypatch, fake_cache):
    if not torch.backends.mkldnn.is_available():  # CPU bf16 autocast of conv/linear needs oneDNN
        pytest.skip("no oneDNN: CPU autocast has no bf16 kernels here")
    bf16 = _search_dtypes(method, "bf16", str(fake_cache), tmp_path, monkeypatch)
    assert torch.bfloat16 in bf16, bf16
    fp32 = _search_dtypes(method, "fp32", str(fake_cache), tmp_path, monkeypatch)
    assert fp32 == {torch.float32}, fp32


def test_weight_optimisers_use_the_multi_tensor_update_with_the_loop_s_values_bit_for_bit():
    """Issue 20: the engine's SGD / Adam / AdamW run foreach (faster on the CPU too) and give exactly what the
    per-tensor loop gives, gradient clipping included, so runs stay bit-identical to before."""
    import torch.nn as nn

    from nasforge.engine.oneshot import OptimizerRecipe

    for recipe in (OptimizerRecipe("sgd", lr=0.025, momentum=0.9, nesterov=True, weight_decay=3e-4),
                   OptimizerRecipe("adam", lr=1e-3, weight_decay=1e-5), OptimizerRecipe("adamw", lr=1e-3)):
        ends = []
        for foreach in (True, False):
            torch.manual_seed(0)
            model = nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 3))
            opt, _ = recipe.build(model, list(model.parameters()), 1, 1)
            assert all(g["foreach"] is True for g in opt.param_groups)
            for g in opt.param_groups:
                g["foreach"] = foreach
            for k in range(4):
                torch.manual_seed(k)
                opt.zero_grad(set_to_none=True)
                model(torch.randn(5, 8)).square().sum().backward()
                nn.utils.clip_grad_norm_(model.parameters(), 0.5, foreach=foreach)
                opt.step()
            ends.append([p.detach().clone() for p in model.parameters()])
        assert all(torch.equal(a, b) for a, b in zip(*ends)), recipe.kind
