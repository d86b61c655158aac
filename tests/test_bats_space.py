"""The `bats` space and the naive binary DARTS option of the `darts` space."""
import pytest
import torch

from nasforge.errors import ConfigError, UserError
from nasforge.hardware.binary import binary_cost
from nasforge.ops import Identity
from nasforge.ops.bats import BatsConv, BatsFactorizedReduce, BatsPreprocess, NaiveBinaryDilConv
from nasforge.ops.binary import BinaryConv2d, check_binary_weights, is_binary
from nasforge.spaces.bats import BATS_THIRD_PARTY, BatsSpace
from nasforge.spaces.darts import DARTS_V2, DartsSpace


def test_identity_shortcut_only_at_stride_one():
    torch.manual_seed(0)
    op1, op2 = BatsConv(8, 3, 1, 1, groups=4), BatsConv(8, 3, 2, 1, groups=4)
    assert op1.shortcut and not op2.shortcut
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        body = op1.shuffle(op1.act(op1.conv(op1.bn(x))))
        assert torch.allclose(op1(x), x + body)
        assert op2(x).shape == (2, 8, 3, 3)
        assert torch.allclose(op2(x), op2.shuffle(op2.act(op2.conv(op2.bn(x)))))
    assert BatsPreprocess(8, 8).shortcut and not BatsPreprocess(12, 8).shortcut


def test_bats_op_internals_and_group_count():
    op = BatsConv(12, 5, 1, 2, groups=4)
    assert isinstance(op.conv, BinaryConv2d) and op.conv.groups == 4 and op.conv.dilation == (2, 2)
    assert op.conv.padding == (4, 4) and op.conv.weight.shape == (12, 3, 5, 5)
    dense = BatsConv(12, 5, 1, 2, groups=1)
    assert dense.conv.weight.numel() == 4 * op.conv.weight.numel()


def test_third_party_genotype_builds_runs_and_is_binary():
    space = BatsSpace(C=8, layers=3, groups=4)
    arch = space.validate(BATS_THIRD_PARTY)
    assert arch["normal"][0] == ["group_conv_5x5", 0] and arch["reduce"][0] == ["max_pool_3x3", 0]
    net = space.build(BATS_THIRD_PARTY, auxiliary=True, layers=4)
    net.train()
    from nasforge.ops.heads import forward_with_aux

    logits, aux = forward_with_aux(net, torch.randn(2, 1, 28, 28))
    assert logits.shape == aux.shape == (2, 10)
    assert is_binary(net) and len(check_binary_weights(net)) > 0
    # stem, 1x1 preprocessing and classifier stay real by default; binarize_1x1 makes the 1x1s binary
    pre = [m for m in net.modules() if isinstance(m, (BatsPreprocess, BatsFactorizedReduce))]
    assert pre and not any(isinstance(m, BinaryConv2d) for p in pre for m in p.modules())
    net_b = BatsSpace(C=8, layers=3, binarize_1x1=True).build(BATS_THIRD_PARTY, layers=4)
    c_real, c_bin = binary_cost(net, torch.zeros(1, 1, 28, 28)), binary_cost(net_b, torch.zeros(1, 1, 28, 28))
    assert c_bin["bops"] > c_real["bops"] and c_bin["flops"] < c_real["flops"]
    assert not isinstance(net.stem[0], BinaryConv2d)


def test_groups_must_divide_channels():
    with pytest.raises(ConfigError, match="groups G=5 must divide the channel count C=12"):
        BatsSpace(C=12, groups=5)
    with pytest.raises(ConfigError, match="must divide"):
        BatsSpace(C=12, groups=4).build(BATS_THIRD_PARTY, C=10)
    with pytest.raises(UserError, match="unknown op 'sep_conv_7x7'"):
        BatsSpace().validate({"normal": [["sep_conv_7x7", 0]] * 8, "reduce": [["skip_connect", 0]] * 8})


def test_drop_path_skips_identity_ops_only():
    space = BatsSpace(C=8, layers=3)
    arch = {"normal": [["skip_connect", 0], ["group_conv_3x3", 1]] * 4, "reduce": BATS_THIRD_PARTY["reduce"]}
    net = space.build(arch)
    net.train()
    net.drop_path_prob = 0.999999
    torch.manual_seed(0)
    cell = net.cells[0]  # normal cell: node sums skip(s0) + conv(s1)
    s = torch.randn(4, 24, 28, 28)
    out = cell(s, s, drop_prob=0.999999)
    pre0 = cell.preprocess0(s)
    # every conv path is dropped (scaled by 1/keep it would explode; with all dropped it is 0): node = skip input
    assert torch.allclose(out[:, :8], pre0)
    assert isinstance(cell.ops[0], Identity)


def test_supernet_of_bats_space_has_the_bats_ops_and_inherits_a_subnet():
    space = BatsSpace(C=8, layers=3)
    sn = space.supernet()
    assert sn.op_names == space.op_names and "group_conv_3x3" in sn.op_names and sn.alphas["normal"].shape == (14, 8)
    x = torch.randn(2, 1, 28, 28)
    assert sn(x).shape == (2, 10)
    arch = sn.derive()
    path = sn.arch_to_path(arch)
    def nodes(a):  # the pairs of each node, order within a node aside
        return {g: [sorted(map(tuple, a[g][k:k + 2])) for k in range(0, 8, 2)] for g in ("normal", "reduce")}

    assert nodes(sn.path_to_arch(path)) == nodes(space.validate(arch))
    sn.set_path(path)
    assert sn(x).shape == (2, 10)


def test_naive_binary_darts_option():
    space = DartsSpace(C=8, layers=3, binary="naive")
    assert space.is_binary and not DartsSpace().is_binary
    net = space.build(DARTS_V2)
    assert any(isinstance(m, NaiveBinaryDilConv) for m in net.modules())
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    real = DartsSpace(C=8, layers=3).build(DARTS_V2)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in real.parameters())
    assert binary_cost(net, torch.zeros(1, 1, 28, 28))["bops"] > 0
    with pytest.raises(ConfigError, match="binary="):
        DartsSpace(binary="xnor")


@pytest.mark.parametrize("name", ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"])
@pytest.mark.parametrize("train", [True, False])
def test_naive_binary_darts_ops_depend_on_their_input(name, train):
    """Issue 21 fix 1: ReLU -> sign with sign(0) = +1 made every naive conv see a constant +1 map, so two
    unrelated inputs gave identical outputs and the input gradient was ~0 (a dead baseline for B1)."""
    from nasforge.ops.bats import NAIVE_BINARY_DARTS_OPS
    torch.manual_seed(0)
    op = NAIVE_BINARY_DARTS_OPS[name](8, 1, True)
    op.train(train)
    x1, x2 = torch.randn(4, 8, 14, 14), torch.randn(4, 8, 14, 14)
    with torch.no_grad():
        y1, y2 = op(x1), op(x2)
    assert (y1 - y2).abs().max().item() > 0.1
    # the interior is not spatially constant either
    assert y1[:, :, 4:10, 4:10].std(dim=(2, 3)).mean().item() > 0.1
    x = x1.clone().requires_grad_(True)
    (op(x) * torch.randn_like(y1)).sum().backward()
    assert x.grad.norm().item() > 1e-2


def test_naive_binary_sign_convention_per_conv():
    """The conv after the ReLU binarizes with sign(0) = -1 (bit = x > 0); the pointwise conv with +1."""
    from nasforge.ops.binary import BinaryConv2d
    op = NaiveBinaryDilConv(4, 4, 3, 1, 2, 2)
    convs = [m for m in op.modules() if isinstance(m, BinaryConv2d)]
    assert [c.sign_zero for c in convs] == [-1, 1]
