"""ONNX export through torch.onnx, verified by running the file in onnxruntime."""
from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .errors import UserError
from .utils import current_umask


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


def opset_range() -> tuple[int, int]:
    """(lowest, highest) ONNX opset this torch's exporter writes (its own constants; 7..23 for torch 2.x)."""
    from torch.onnx import _constants

    return int(_constants.ONNX_MIN_OPSET), int(_constants.ONNX_MAX_OPSET)


def check_opset(opset: int) -> None:
    """Raises ConfigError (one line) for an opset outside :func:`opset_range`."""
    from .errors import ConfigError

    lo, hi = opset_range()
    if isinstance(opset, bool) or not isinstance(opset, int) or not lo <= opset <= hi:
        raise ConfigError(f"--opset must be an integer from {lo} to {hi} (torch {torch.__version__}); got {opset!r}")


def export_onnx(model: nn.Module, example: torch.Tensor, out: str | Path, opset: int = 17,
                atol: float = 1e-4, mean: list[float] | None = None, std: list[float] | None = None) -> dict[str, Any]:
    """Write `model` to `out` with a dynamic batch axis; return the max |logit difference| on `example`.

    With `mean` and `std` (the training normalisation, 0..1 units) the normalisation is folded into the graph:
    the ONNX input ``images`` is then float32 pixel values 0..255 ([N, C, H, W]; cast uint8 images to float),
    `example` must be such pixels, and mean/std/input are recorded in the file's metadata.
    A binary network (holding :class:`~nasforge.ops.binary.BinaryConv2d`) is exported with its binarized
    weights folded in (the file stores the +/-alpha_c tensors, activations are binarized by a comparison in
    the graph); every folded weight tensor is checked to take exactly two values (+/-alpha_c) per output
    channel, in PyTorch and again in the ONNX file's initializers (``binary_weight_tensors`` /
    ``binary_weight_tensors_in_onnx`` in the result).
    The model and `example` are moved to the CPU first (ONNX export traces on the host; the file is
    device-free and onnxruntime checks it on the CPU), so a model trained on a GPU exports as is.
    Raises UserError when onnx/onnxruntime are missing, a binary check fails, or the file disagrees with
    PyTorch beyond `atol`.
    """
    from .ops.binary import binary_convs, check_binary_weights, fold_binary_weights, is_binary

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    binary = is_binary(model)
    checked: dict[str, int] = {}
    if binary:
        model = fold_binary_weights(model)
        try:
            checked = check_binary_weights(model)
        except ValueError as e:
            raise UserError(f"binary weights are not two-valued: {e}") from None
    if mean is not None and std is not None:
        model = PixelInput(model, list(mean), list(std))
        example = example.float()
    host = torch.device("cpu")  # host: ONNX export and the onnxruntime check run on the CPU
    model = model.to(host).float()
    example = example.to(host).float()
    model.eval()
    with torch.no_grad():
        expected = model(example).cpu().numpy()
    check_opset(opset)
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        raise UserError(f"ONNX verification needs onnx and onnxruntime ({e})") from None
    # written beside `out` and renamed at the end: a failed export or check leaves no half-checked file
    final, out = out, out.with_name(f".{out.name}.partial")
    try:
        _export_checked(model, example, out, opset, onnx)
        res = _verify(model, example, expected, out, final, opset, atol, mean, std, binary, checked, onnx, ort)
        os.chmod(out, 0o666 & ~current_umask())
        os.replace(out, final)
    finally:
        if out.exists():
            out.unlink()
    return res


def _export_checked(model: nn.Module, example: torch.Tensor, out: Path, opset: int, onnx) -> None:
    """torch.onnx.export, then onnx's checker; an opset that cannot express the model is one UserError line."""
    try:
        # torch.onnx prints diagnostics on stdout, and warns that it cannot fold the constants of a Slice with
        # dynamic axes (the graph is still right; the check below compares it with PyTorch): one result line
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Constant folding.*")
            torch.onnx.export(model, (example,), str(out), input_names=["images"], output_names=["logits"],
                              dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                              dynamo=False)
        onnx.checker.check_model(str(out))
    except (RuntimeError, ValueError, onnx.checker.ValidationError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"ONNX opset {opset} cannot express this model ({first[:160]}); the default opset 17 "
                        "works for every nasforge space") from None


def _verify(model, example, expected, out: Path, final: Path, opset: int, atol: float, mean, std, binary: bool,
            checked: dict[str, int], onnx, ort) -> dict[str, Any]:
    """Metadata, the onnx checker, the binary-weight check and onnxruntime against PyTorch's `expected`
    logits on the exported file `out` (renamed to `final` by the caller). Raises UserError."""
    from .ops.binary import binary_convs

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
    in_onnx = 0
    if binary:
        from onnx import numpy_helper

        inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer}
        inner, prefix = (model.model, "model.") if isinstance(model, PixelInput) else (model, "")
        for name, m in binary_convs(inner):
            w = inits.get(f"{prefix}{name}.weight")
            if w is None or name not in checked:
                continue
            for c, row in enumerate(w.reshape(w.shape[0], -1)):
                vals = np.unique(row)
                if len(vals) > 2 or (len(vals) == 2 and not np.isclose(vals[0], -vals[1])):
                    raise UserError(f"ONNX initializer {name}.weight: output channel {c} holds {len(vals)} values")
            in_onnx += 1
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"images": example.cpu().numpy()})[0]
    diff = float(np.abs(got - expected).max())
    agree = float((got.argmax(1) == expected.argmax(1)).mean())
    if diff > atol:
        raise UserError(f"exported model disagrees with PyTorch: max |logit diff| {diff:.2e} > {atol:.0e}")
    res = {"onnx_file": str(final), "max_abs_diff": diff, "argmax_agreement": agree, "opset": opset,
           "bytes": out.stat().st_size}
    if meta:
        res.update(input=meta["input"], mean=json.loads(meta["mean"]), std=json.loads(meta["std"]))
    if binary:
        res.update(binary_weight_tensors=len(checked), binary_weight_tensors_in_onnx=in_onnx)
    return res
