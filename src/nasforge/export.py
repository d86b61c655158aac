"""ONNX export through torch.onnx, verified by running the file in onnxruntime."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .errors import UserError


class PixelInput(nn.Module):
    """`model` behind its input normalisation: takes pixel values 0..255 ([N, C, H, W], float32 or uint8)
    and feeds ``(x / 255 - mean) / std`` (mean/std per channel in 0..1 units, as the loaders use)."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        c = len(mean)
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1)))
        self.register_buffer("shift", torch.tensor(mean, dtype=torch.float32).view(1, c, 1, 1)
                             / torch.tensor(std, dtype=torch.float32).view(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.float() * self.scale - self.shift)


def export_onnx(model: nn.Module, example: torch.Tensor, out: str | Path, opset: int = 17,
                atol: float = 1e-4, mean: list[float] | None = None, std: list[float] | None = None) -> dict[str, Any]:
    """Write `model` to `out` with a dynamic batch axis; return the max |logit difference| on `example`.

    With `mean` and `std` (the training normalisation, 0..1 units) the normalisation is folded into the graph:
    the ONNX input ``images`` is then float32 pixel values 0..255 ([N, C, H, W]; cast uint8 images to float),
    `example` must be such pixels, and mean/std/input are recorded in the file's metadata.
    The model and `example` are moved to the CPU first (ONNX export traces on the host; the file is
    device-free and onnxruntime checks it on the CPU), so a model trained on a GPU exports as is.
    Raises UserError when onnx/onnxruntime are missing or the file disagrees with PyTorch beyond `atol`.
    """
    if mean is not None and std is not None:
        model = PixelInput(model, list(mean), list(std))
        example = example.float()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    host = torch.device("cpu")  # host: ONNX export and the onnxruntime check run on the CPU
    model = model.to(host).float()
    example = example.to(host).float()
    model.eval()
    with torch.no_grad():
        expected = model(example).cpu().numpy()
    # torch.onnx prints diagnostics on stdout; keep the CLI's output to the one result line
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(model, (example,), str(out), input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        raise UserError(f"ONNX verification needs onnx and onnxruntime ({e})") from None
    meta: dict[str, str] = {}
    if isinstance(model, PixelInput):
        meta = {"input": "float32 [N, C, H, W] pixel values 0..255 (normalisation inside the graph)",
                "mean": json.dumps([float(v) for v in mean]), "std": json.dumps([float(v) for v in std])}
        proto = onnx.load(str(out))
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(out))
    onnx.checker.check_model(str(out))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"images": example.cpu().numpy()})[0]
    diff = float(np.abs(got - expected).max())
    agree = float((got.argmax(1) == expected.argmax(1)).mean())
    if diff > atol:
        raise UserError(f"exported model disagrees with PyTorch: max |logit diff| {diff:.2e} > {atol:.0e}")
    return {"onnx_file": str(out), "max_abs_diff": diff, "argmax_agreement": agree, "opset": opset,
            "bytes": out.stat().st_size, **({"input": meta["input"], "mean": json.loads(meta["mean"]),
                                              "std": json.loads(meta["std"])} if meta else {})}
