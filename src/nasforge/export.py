"""ONNX export through torch.onnx, verified by running the file in onnxruntime."""
from __future__ import annotations

import io
import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .errors import UserError


def export_onnx(model: nn.Module, example: torch.Tensor, out: str | Path, opset: int = 17,
                atol: float = 1e-4) -> dict[str, Any]:
    """Write `model` to `out` with a dynamic batch axis; return the max |logit difference| on `example`.

    The model and `example` are moved to the CPU first (ONNX export traces on the host; the file is
    device-free and onnxruntime checks it on the CPU), so a model trained on a GPU exports as is.
    """
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
    onnx.checker.check_model(str(out))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"images": example.cpu().numpy()})[0]
    diff = float(np.abs(got - expected).max())
    agree = float((got.argmax(1) == expected.argmax(1)).mean())
    if diff > atol:
        raise UserError(f"exported model disagrees with PyTorch: max |logit diff| {diff:.2e} > {atol:.0e}")
    return {"onnx_file": str(out), "max_abs_diff": diff, "argmax_agreement": agree, "opset": opset,
            "bytes": out.stat().st_size}
