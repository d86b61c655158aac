import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasforge import api
from nasforge.errors import ConfigError
from nasforge.supernet import Supernet
from nasforge.supernet.hessian import dominant_eigenvalue
from nasforge.strategies.darts import DARTS, SingleDARTS


class TinySupernet(Supernet):
    """Two candidate ops (linear, tanh-linear) on one edge, double precision: small enough for numerics."""

    op_names = ["lin", "tanh"]

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(3, 3).double()
        self.b = nn.Linear(3, 3).double()
        self.head = nn.Linear(3, 2).double()
        self.alphas["cell"] = nn.Parameter(torch.tensor([[0.3, -0.2]], dtype=torch.float64))

    def forward(self, x):
        w = self.op_weights()["cell"][0]
        return self.head(w[0] * self.a(x) + w[1] * torch.tanh(self.b(x)))


def test_second_order_gradient_matches_numerical_unrolled_objective():
    torch.manual_seed(1)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
    xv, yv = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
    net = TinySupernet()
    strat = DARTS(order=2, w_momentum=0.0, w_weight_decay=0.0)
    strat.w_params = net.weight_parameters()
    strat.w_opt = torch.optim.SGD(strat.w_params, lr=0.1, momentum=0.0, weight_decay=0.0)
    strat.alphas = net.arch_parameters()
    strat.unrolled_alpha_grad(net, x, y, xv, yv)
    analytic = net.alphas["cell"].grad.clone()

    def unrolled_objective(alpha):
        with torch.no_grad():
            net.alphas["cell"].copy_(alpha)
        w = net.weight_parameters()
        g = torch.autograd.grad(F.cross_entropy(net(x), y), w)
        saved = [p.detach().clone() for p in w]
        with torch.no_grad():
            for p, gi in zip(w, g):
                p.sub_(0.1 * gi)
            val = F.cross_entropy(net(xv), yv).item()
            for p, s in zip(w, saved):
                p.copy_(s)
        return val

    alpha0 = net.alphas["cell"].detach().clone()
    numeric = torch.zeros_like(alpha0)
    h = 1e-5
    for j in range(alpha0.shape[1]):
        e = torch.zeros_like(alpha0)
        e[0, j] = h
        numeric[0, j] = (unrolled_objective(alpha0 + e) - unrolled_objective(alpha0 - e)) / (2 * h)
    assert torch.allclose(analytic, numeric, rtol=2e-3, atol=1e-6), (analytic, numeric)
    # and it differs from the first-order gradient (the correction term matters)
    with torch.no_grad():
        net.alphas["cell"].copy_(alpha0)
    first = torch.autograd.grad(F.cross_entropy(net(xv), yv), net.arch_parameters())[0]
    assert not torch.allclose(first, analytic, atol=1e-6)


def test_hessian_eigenvalue_of_known_quadratic():
    A = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 0.0], [0.0, 0.0, -7.0]], dtype=torch.float64)
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    eig = dominant_eigenvalue(lambda: 0.5 * p @ A @ p + p.sum(), [p], iters=200, tol=1e-10,
                              generator=torch.Generator().manual_seed(0))
    assert abs(eig - (-7.0)) < 1e-6  # largest magnitude
    B = torch.diag(torch.tensor([5.0, 2.0, 1.0], dtype=torch.float64))
    eig = dominant_eigenvalue(lambda: 0.5 * p @ B @ p, [p], iters=200, tol=1e-10,
                              generator=torch.Generator().manual_seed(0))
    assert abs(eig - 5.0) < 1e-6


def test_single_level_updates_both_from_one_batch():
    net = TinySupernet()
    strat = SingleDARTS()
    strat.w_params = net.weight_parameters()
    strat.w_opt = torch.optim.SGD(strat.w_params, lr=0.1)
    strat.setup(net, None)
    before_a = net.alphas["cell"].detach().clone()
    before_w = net.head.weight.detach().clone()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
    strat.step(net, (x, y), None, None)
    assert not torch.equal(before_a, net.alphas["cell"]) and not torch.equal(before_w, net.head.weight)


def test_unknown_hyperparameter_lists_valid():
    with pytest.raises(ConfigError, match="valid: .*arch_lr"):
        SingleDARTS(arch_learning_rate=1)
    with pytest.raises(ConfigError, match="alpha_batch"):
        SingleDARTS(alpha_batch="third").setup(TinySupernet(), None)


BASE = {"space": "nb201", "space_options": {"C": 4, "N": 1}, "dataset": "synthetic", "subset": 256,
        "batch_size": 32, "budget": {"epochs": 2}, "hparams": {"hessian_iters": 3}}


@pytest.mark.parametrize("method,hp", [("darts", {"order": 1}), ("darts", {"order": 2}), ("single-darts", {}),
                                       ("single-darts", {"alpha_batch": "other"})])
def test_search_end_to_end_logs_diagnostics(tmp_path, method, hp, tables_dir):
    cfg = {**BASE, "method": method, "hparams": {**BASE["hparams"], **hp}, "tables": str(tables_dir)}
    res = api.search(cfg, run_root=tmp_path)
    assert res["arch"].startswith("|") and "cifar10_test_200" in res["table"]
    epochs = [m for m in json.loads("[" + ",".join((tmp_path / res["run_dir"].split("/")[-1] / "metrics.jsonl")
                                                    .read_text().splitlines()) + "]") if m.get("event") == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for e in epochs:
        assert len(e["alpha_softmax"]["cell"]) == 6 and len(e["edge_entropy"]["cell"]) == 6
        assert abs(sum(e["alpha_softmax"]["cell"][0]) - 1) < 1e-5
        assert 0 <= e["parameter_free_ops"] <= 6
        assert isinstance(e["hessian_eigenvalue"], float)
        assert "cifar10_test_200" in e["table"]


def test_search_is_deterministic_and_resumes_exactly(tmp_path, crash, same_supernet):
    cfg = {**BASE, "method": "single-darts", "budget": {"epochs": 3}, "hparams": {"hessian_every": 0}}
    ref = api.search(cfg, run_root=tmp_path / "a")
    again = api.search(cfg, run_root=tmp_path / "b")
    same_supernet(ref["run_dir"], again["run_dir"])  # alphas and weights

    from nasforge.engine.oneshot import OneShotStrategy

    # dies right after epoch 2's diagnostics, before its checkpoint
    with crash(OneShotStrategy, "_diagnostics", at=2, exc=KeyboardInterrupt), pytest.raises(KeyboardInterrupt):
        api.search(cfg, run_root=tmp_path / "c", run_name="r")
    resumed = api.search(resume=tmp_path / "c" / "r")
    _, ck = same_supernet(ref["run_dir"], tmp_path / "c" / "r")
    assert "alphas.cell" in ck["supernet"]
    assert resumed["arch"] == ref["arch"]
    lines = (tmp_path / "c" / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines if '"event": "epoch"' in l] == [1, 2, 3]


def test_one_shot_needs_epochs_and_weight_sharing(tmp_path):
    with pytest.raises(ConfigError, match="epoch budget"):
        api.search({**BASE, "method": "darts", "budget": {}}, run_root=tmp_path)


@pytest.mark.parametrize("method,hp", [("darts", {"order": 1}), ("darts", {"order": 2}), ("single-darts", {}),
                                       ("bats", {})])
def test_shallow_supernets_search_their_reduction_cells_only(method, hp):
    """layers < 3 makes every cell a reduction cell: the `normal` alphas take no part in the loss. A search
    refuses such a space up front (preflight, test_method_options); the steps themselves, used directly, must
    not crash: the unused alphas get no gradient and stay as initialised while the `reduce` alphas move, and
    the Hessian diagnostic skips them."""
    from nasforge.data.datasets import SearchData, synthetic
    from nasforge.spaces.bats import BatsSpace
    from nasforge.spaces.darts import DartsSpace
    from nasforge.engine.base import Budget, SearchContext
    from nasforge.strategies.bats import BATS

    if method == "bats":
        space, strat = BatsSpace(C=2, layers=2, groups=1, shuffle_groups=2), BATS(**hp)
    else:
        space, strat = DartsSpace(C=2, layers=2), (DARTS if method == "darts" else SingleDARTS)(**hp)
    torch.manual_seed(0)
    train, _ = synthetic(n_train=32, n_test=8)
    ctx = SearchContext(space=space, budget=Budget(epochs=1), data=SearchData(train, train, 16))
    sn = space.supernet()
    assert set(sn.cell_groups) == {"reduce"} and set(sn.alphas) == {"normal", "reduce"}
    strat._make_weight_optimizer(sn, ctx, 1)
    strat.setup(sn, ctx)
    before = {g: a.detach().clone() for g, a in sn.alphas.items()}
    x, y = next(iter(ctx.data.loaders(0)[0]))
    stats = strat.step(sn, (x, y), (x, y), ctx)
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert sn.alphas["normal"].grad is None and torch.equal(sn.alphas["normal"], before["normal"])
    assert not torch.equal(sn.alphas["reduce"], before["reduce"])
    eig = dominant_eigenvalue(lambda: F.cross_entropy(sn(x), y), sn.arch_parameters(), iters=3,
                              generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(torch.tensor(eig)) and eig != 0.0


@pytest.mark.parametrize("cls,hp", [(SingleDARTS, {}), (SingleDARTS, {"alpha_batch": "other"}), (DARTS, {})])
def test_arch_warmup_steps_the_weights_alone_until_its_epoch(cls, hp):
    net = TinySupernet()
    strat = cls(arch_warmup=1, arch_lr=0.1, **hp)
    strat.w_params = net.weight_parameters()
    strat.w_opt = torch.optim.SGD(strat.w_params, lr=0.1)
    strat.setup(net, None)
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 2, (8,))
    a0, w0 = net.alphas["cell"].detach().clone(), net.head.weight.detach().clone()
    strat.on_epoch_start(net, 0, 2, None)  # the warm-up epoch
    strat.step(net, (x, y), (x, y), None)
    assert torch.equal(a0, net.alphas["cell"]) and not torch.equal(w0, net.head.weight)
    strat.on_epoch_start(net, 1, 2, None)
    strat.step(net, (x, y), (x, y), None)
    assert not torch.equal(a0, net.alphas["cell"])


def test_arch_warmup_in_a_search_and_its_preflight(tmp_path):
    """Epoch 1 of a search with arch_warmup=1 ends with the initial alphas whatever arch_lr is; epoch 2 moves them.
    A warm-up as long as the search is refused before a run directory exists."""
    cfg = {**BASE, "method": "single-darts", "hparams": {"hessian_every": 0, "arch_warmup": 1}}
    runs = [api.search({**cfg, "hparams": {**cfg["hparams"], "arch_lr": lr}}, run_root=tmp_path / str(lr))
            for lr in (0.01, 0.1)]
    (a1, a2), (b1, b2) = ([h["alpha_softmax"] for h in r["search"]["history"]] for r in runs)
    assert a1 == b1 and a2 != b2
    with pytest.raises(ConfigError, match="arch_warmup=2 warms the weights up for the whole 2-epoch search"):
        api.search({**cfg, "hparams": {"arch_warmup": 2}}, run_root=tmp_path / "refused")
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
