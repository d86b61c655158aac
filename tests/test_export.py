import random

import onnxruntime as ort
import torch

from nasforge.export import export_onnx
from nasforge.models import BaselineCNN
from nasforge.spaces.nb201 import NB201Space


def test_onnx_export_matches_pytorch_on_other_batch_sizes(tmp_path):
    torch.manual_seed(0)
    model = BaselineCNN(1, 10, width=8)
    res = export_onnx(model, torch.randn(4, 1, 28, 28), tmp_path / "m.onnx")
    assert res["max_abs_diff"] < 1e-4
    x = torch.randn(9, 1, 28, 28)  # the batch axis is dynamic
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"images": x.numpy()})[0]
    with torch.no_grad():
        assert abs(got - model.eval()(x).numpy()).max() < 1e-4


def test_searched_cell_exports(tmp_path):
    sp = NB201Space(C=4, N=1)
    net = sp.build(sp.sample(random.Random(3)))
    assert export_onnx(net, torch.randn(2, 1, 28, 28), tmp_path / "c.onnx")["max_abs_diff"] < 1e-4
