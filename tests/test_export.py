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


def test_binary_bats_network_exports_with_two_valued_weights(tmp_path):
    from nasforge.ops.binary import check_binary_weights
    from nasforge.spaces.bats import BATS_THIRD_PARTY, BatsSpace

    torch.manual_seed(0)
    net = BatsSpace(C=8, layers=3, groups=4, binarize_1x1=True).build(BATS_THIRD_PARTY)
    net.train()
    with torch.no_grad():  # give BN non-trivial running statistics
        for _ in range(3):
            net(torch.randn(8, 1, 28, 28))
    res = export_onnx(net, torch.randn(4, 1, 28, 28), tmp_path / "b.onnx")
    assert res["max_abs_diff"] < 1e-4 and res["argmax_agreement"] == 1.0
    n_binary = len(check_binary_weights(net))
    assert res["binary_weight_tensors"] == n_binary > 10
    assert res["binary_weight_tensors_in_onnx"] == n_binary  # the stored initializers are +/-alpha per channel
    x = torch.randn(16, 1, 28, 28)
    sess = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        assert abs(sess.run(["logits"], {"images": x.numpy()})[0] - net.eval()(x).numpy()).max() < 1e-4
