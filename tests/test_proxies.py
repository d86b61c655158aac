"""Zero-cost proxies: each measure on a hand-checkable network, the rank ensemble, determinism across
processes, every space at toy size, the `proxy` estimator, evolution's pre-screen and `nasforge proxy score`."""
from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nasforge
from nasforge.building import import_components
from nasforge.errors import ConfigError
from nasforge.proxies import (PROXIES, Protocol, ProxyBatch, get_proxy, make_batch, normalised_ranks,
                              nwot_kernel, percentile_aggregate, rank_aggregate, score_arch, score_archs)
from nasforge.registry import SPACES

import_components()
SRC = str(Path(nasforge.__file__).resolve().parents[1])


def _linear(w: list[list[float]]) -> nn.Linear:
    lin = nn.Linear(len(w[0]), len(w), bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w))
    return lin


def _batch(x, y=None) -> ProxyBatch:
    x = torch.as_tensor(x, dtype=torch.float32)
    return ProxyBatch(x, torch.zeros(len(x), dtype=torch.long) if y is None else torch.as_tensor(y))


# -- each measure on a network whose value is known by hand -----------------------------------------------------
def test_synflow_of_a_linear_chain_is_depth_times_the_absolute_path_sum():
    """R = 1^T |W2| |W1| 1 is linear in each layer's weights, so sum theta dR/dtheta = R per layer: the
    score is L * R. Signs of the weights must not matter, and the model must be left unchanged."""
    W1 = [[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]
    W2 = [[2.0, -1.0], [-0.5, 4.0]]
    net = nn.Sequential(_linear(W1), _linear(W2))
    before = [p.detach().clone() for p in net.parameters()]
    R = np.ones(2) @ np.abs(W2) @ np.abs(W1) @ np.ones(3)
    assert get_proxy("synflow").fn(net, _batch(torch.randn(4, 3))) == pytest.approx(2 * R, rel=1e-12)
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))


def test_synflow_ignores_batchnorm_and_data():
    """Published protocol: the network without BN; the score does not depend on the batch's values."""
    lin = _linear([[1.0, -2.0], [3.0, 0.5]])
    with_bn = nn.Sequential(lin, nn.BatchNorm1d(2), _linear([[1.0, 1.0]]))
    without = nn.Sequential(_linear([[1.0, -2.0], [3.0, 0.5]]), _linear([[1.0, 1.0]]))
    a = get_proxy("synflow").fn(with_bn, _batch(torch.randn(4, 2)))
    b = get_proxy("synflow").fn(without, _batch(torch.randn(4, 2) * 100))
    assert a == pytest.approx(b) == pytest.approx(2 * 6.5)  # |W1| 1 = (3, 3.5); |W2| = (1, 1): L * R = 2 * 6.5


def test_nwot_kernel_counts_shared_codes_and_identical_inputs_are_singular():
    net = nn.Sequential(_linear([[1.0, 0.0], [0.0, 1.0]]), nn.ReLU())
    K, units = nwot_kernel(net, torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    assert units == 2 and K.tolist() == [[2.0, 0.0], [0.0, 2.0]]  # codes (1,0) and (0,1): no unit shared
    assert get_proxy("nwot").fn(net, _batch([[1.0, -1.0], [-1.0, 1.0]])) == pytest.approx(math.log(4.0))
    K, _ = nwot_kernel(net, torch.tensor([[1.0, -1.0], [1.0, -1.0]]))
    assert K.tolist() == [[2.0, 2.0], [2.0, 2.0]]
    assert get_proxy("nwot").fn(net, _batch([[1.0, -1.0], [1.0, -1.0]])) == float("-inf")
    # one unit differs: K = [[2, 1], [1, 2]], det 3
    assert get_proxy("nwot").fn(net, _batch([[1.0, -1.0], [1.0, 1.0]])) == pytest.approx(math.log(3.0))


def test_nwot_sees_functional_and_inplace_activations():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = _linear([[1.0, 0.0], [0.0, 1.0]])

        def forward(self, x):
            return F.relu(self.lin(x), inplace=True) + F.gelu(x)

    K, units = nwot_kernel(Functional(), torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    assert units == 4 and K.tolist() == [[4.0, 0.0], [0.0, 4.0]]
    with pytest.raises(ConfigError, match="rectifier"):
        get_proxy("nwot").fn(nn.Sequential(_linear([[1.0, 1.0]])), _batch([[1.0, 0.0], [0.0, 1.0]]))


def test_jacob_cov_closed_form_for_a_linear_model_and_minus_inf_when_output_ignores_input():
    """f(x) = W x: every image has the same Jacobian W^T 1, so corrcoef is the all-ones B x B matrix with
    eigenvalues B and 0 (B - 1 times)."""
    B, k = 4, 1e-5
    net = nn.Sequential(_linear([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]]))
    got = get_proxy("jacob_cov").fn(net, _batch(torch.randn(B, 3)))
    want = -((math.log(B + k) + 1 / (B + k)) + (B - 1) * (math.log(k) + 1 / k))
    assert got == pytest.approx(want, rel=1e-6)

    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(2, 3))

        def forward(self, x):
            return (x * 0) @ self.w.t() + self.w.sum()

    assert get_proxy("jacob_cov").fn(Constant(), _batch(torch.randn(B, 3))) == float("-inf")


def test_snip_of_one_linear_layer_matches_the_hand_gradient():
    W = np.array([[1.0, -2.0], [0.5, 1.5], [-1.0, 0.0]])
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    y = np.array([2, 0])
    logits = x @ W.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    G = (p - np.eye(3)[y]).T @ x / len(x)  # dL/dW of the mean cross-entropy
    got = get_proxy("snip").fn(nn.Sequential(_linear(W.tolist())), _batch(x, y))
    assert got == pytest.approx(np.abs(W * G).sum(), rel=1e-5)


def test_grasp_matches_an_explicit_hessian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Tanh(), nn.Linear(4, 2, bias=False))
    batch = _batch(torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1]))
    got = get_proxy("grasp").fn(net, batch)
    w1, w2 = [p.detach() for p in net.parameters()]
    theta = torch.cat([w1.flatten(), w2.flatten()]).double()

    def loss(t):
        a, b = t[:12].view(4, 3), t[12:].view(2, 4)
        return F.cross_entropy(torch.tanh(batch.x.double() @ a.t()) @ b.t(), batch.y)

    H = torch.autograd.functional.hessian(loss, theta)
    g = torch.autograd.functional.jacobian(loss, theta)
    assert got == pytest.approx(float(-(theta * (H @ g)).sum()), rel=1e-4, abs=1e-7)


def test_zen_finds_the_feature_map_before_global_pooling():
    """The pre-GAP map is found whether pooling is a module, a function or a mean over H and W; the
    score is deterministic for a seed and moves with it."""
    conv = nn.Conv2d(1, 3, 1, bias=False)

    class MeanPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = conv, nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(self.conv(x).mean(dim=(2, 3)))

    pooled = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    batch = ProxyBatch(torch.zeros(4, 1, 5, 5), torch.zeros(4, dtype=torch.long), seed=3)
    a, b = get_proxy("zen").fn(pooled, batch), get_proxy("zen").fn(MeanPool(), batch)
    assert a == pytest.approx(b) and math.isfinite(a)
    assert get_proxy("zen").fn(pooled, ProxyBatch(batch.x, batch.y, seed=4)) != a
    # without BN, a 1x1 conv with N(0, 1) weights: E||w * 0.01 eps||_1 is ~0.01 * 25 pixels * 3 ch * 0.8^2
    assert -4 < a < 2


def test_baselines_params_flops_kernel_area_are_exact():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.Flatten(), nn.Linear(8, 3))
    batch = _batch(torch.randn(2, 1, 4, 4))
    assert get_proxy("params").fn(net, batch) == 18 + 8 * 3 + 3
    assert get_proxy("flops").fn(net, batch) == 2 * (2 * 2 * 2 * 9) + 2 * 8 * 3  # one image, MAC = 2 FLOPs
    assert get_proxy("kernel_area").fn(net, batch) == 9


def test_kernel_area_on_nb201_is_the_free_3x3_9_1x1_1_count():
    """15 cells (N = 5): one 3x3 edge instead of a 1x1 adds 15 * (9 - 1); skip/pool/none add nothing."""
    space = SPACES.get("nb201")(C=4, N=5)
    base = "|none~0|+|none~0|none~1|+|none~0|none~1|{}~2|"
    protocol = Protocol(proxies=["kernel_area"], data="gaussian", batch_size=2)
    batch = make_batch(space, protocol, None)
    val = {op: score_arch(space, base.format(op), protocol, batch)["scores"]["kernel_area"]
           for op in ("nor_conv_3x3", "nor_conv_1x1", "skip_connect", "none")}
    assert val["nor_conv_3x3"] - val["nor_conv_1x1"] == 15 * 8
    assert val["nor_conv_1x1"] - val["none"] == 15 * 1 and val["skip_connect"] == val["none"]


# -- ensemble ---------------------------------------------------------------------------------------------------
def test_normalised_ranks_ties_and_degenerate_values():
    assert normalised_ranks([3.0, 1.0, 2.0]).tolist() == [1.0, 0.0, 0.5]
    assert normalised_ranks([1.0, 1.0, 5.0]).tolist() == [0.25, 0.25, 1.0]
    assert normalised_ranks([float("-inf"), None, float("nan"), 0.0])[3] == 1.0
    agg = rank_aggregate({"a": [1, 2, 3], "b": [3, 2, 1], "c": [1, 2, 3]}, ["a", "b", "c"])
    assert agg.tolist() == pytest.approx([1 / 3, 0.5, 2 / 3])
    assert percentile_aggregate({"a": 2.0, "b": 10.0}, {"a": [1, 2, 3, 4], "b": [0, 1]}, ["a", "b"]) == \
        pytest.approx((0.375 + 1.0) / 2)


# -- protocol, determinism, every space ---------------------------------------------------------------------------
def test_bad_protocol_is_one_config_error():
    for kw, msg in (({"proxies": ["nope"]}, "unknown proxy 'nope'"), ({"proxies": []}, "at least one"),
                    ({"proxies": ["nwot"], "batch_size": 1}, "batch_size"),
                    ({"proxies": ["nwot"], "binary": "x"}, "binary"), ({"proxies": ["nwot"], "data": "x"}, "inputs")):
        with pytest.raises(ConfigError, match=msg):
            Protocol(**kw).check()


_CELL = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|avg_pool_3x3~1|nor_conv_3x3~2|"
_CHILD = """
import json, sys, torch
torch.set_num_threads(1)
from nasforge.building import import_components; import_components()
from nasforge.data import load_dataset
from nasforge.proxies import Protocol, score_archs
from nasforge.registry import SPACES
p = Protocol(proxies=["synflow", "snip", "grasp", "jacob_cov", "nwot", "zen"], batch_size=8, seed=int(sys.argv[1]))
res = score_archs(SPACES.get("nb201")(C=4, N=1), [sys.argv[2]], p, load_dataset("synthetic")[0])
print(json.dumps([r["scores"] for r in res]))
"""


def _scores(seed: int) -> list:
    from nasforge.data import load_dataset

    p = Protocol(proxies=["synflow", "snip", "grasp", "jacob_cov", "nwot", "zen"], batch_size=8, seed=seed)
    res = score_archs(SPACES.get("nb201")(C=4, N=1), [_CELL], p, load_dataset("synthetic")[0])
    return json.loads(json.dumps([r["scores"] for r in res]))


def test_scores_are_identical_across_processes_for_a_seed():
    out = subprocess.run([sys.executable, "-c", _CHILD, "0", _CELL], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"})
    here = _scores(0)
    assert json.loads(out.stdout) == here == _scores(0)
    other = _scores(1)
    assert here[0]["nwot"] != other[0]["nwot"] and here[0]["synflow"] != other[0]["synflow"]  # batch and weights


#: toy scales of every space that builds a network
TOY = {"nb201": {"C": 2, "N": 1}, "darts": {"C": 2, "layers": 3}, "pnas": {"C": 2, "N": 1, "blocks": 2},
       "macro": {"C": 4, "head": 8}, "mobile": {"stem": 4, "widths": [4, 8], "strides": [1, 2], "head": 8},
       "fbnet": {"width": 0.25, "head": 16}, "bats": {"C": 4, "layers": 3, "groups": 1, "shuffle_groups": 2},
       "vit": {"patch_sizes": [7], "embed_dim": 8, "depth": 2, "heads": [1, 2], "qkv_dim": 8, "mlp_dim": 8}}


def test_every_space_that_builds_a_network_has_a_toy_scale_here():
    assert set(TOY) == set(SPACES.names())


@pytest.mark.parametrize("name", sorted(TOY))
def test_every_proxy_on_every_space(name):
    space = SPACES.get(name)(**TOY[name])
    arch = space.validate(space.sample(random.Random(0)))
    protocol = Protocol(proxies=sorted(PROXIES), batch_size=4, data="gaussian").check()
    batch = make_batch(space, protocol, None)
    res = score_arch(space, arch, protocol, batch)
    assert set(res["scores"]) == set(PROXIES)
    for p, v in res["scores"].items():
        assert not math.isnan(v), (name, p)
    assert res["scores"]["params"] > 0 and res["scores"]["synflow"] >= 0
    if name != "vit":
        assert res["scores"]["kernel_area"] > 0


def test_binary_networks_score_their_real_twin_or_binarized():
    from nasforge.ops.binary import binarization_state

    space = SPACES.get("bats")(**TOY["bats"])
    arch = space.validate(space.sample(random.Random(1)))
    real = Protocol(proxies=["snip", "nwot"], batch_size=4, data="gaussian")
    binz = Protocol(proxies=["snip", "nwot"], batch_size=4, data="gaussian", binary="binarized")
    batch = make_batch(space, real, None)
    a, b = score_arch(space, arch, real, batch), score_arch(space, arch, binz, batch)
    assert a["scores"] != b["scores"] and all(math.isfinite(v) for v in a["scores"].values())
    assert binarization_state(space.build(arch)) is not None  # the space really is binary


def test_make_batch_resizes_and_repeats_a_grey_dataset(tiny_data):
    space = SPACES.get("nb201")(in_channels=3, num_classes=100, resolution=32, C=2, N=1)
    b = make_batch(space, Protocol(proxies=["nwot"], batch_size=6, seed=2), tiny_data[0])
    assert b.x.shape == (6, 3, 32, 32) and torch.equal(b.x[:, 0], b.x[:, 2]) and b.y.max() < 10
    with pytest.raises(ConfigError, match="exceeds"):
        make_batch(space, Protocol(proxies=["nwot"], batch_size=10_000), tiny_data[0])


# -- estimator, training-free search, evolution pre-screen, CLI ------------------------------------------------
BASE = {"space": "nb201", "space_options": {"C": 2, "N": 1}, "dataset": "synthetic", "subset": 64, "threads": 1}


def test_training_free_search_keeps_the_best_by_proxy(tmp_path):
    res = nasforge.search({**BASE, "method": "random", "estimator": "proxy", "budget": {"trials": 5},
                           "estimator_options": {"proxy": "synflow", "batch_size": 4}}, run_root=tmp_path)
    hist = res["search"]["history"]
    best = max((h for h in hist if h["score"] is not None), key=lambda h: h["score"])
    assert res["arch"] == best["arch"] and len(hist) == 5
    from nasforge.estimators.proxy import run_trial  # the trial result records the protocol
    from nasforge.registry import SPACES as S

    space = S.get("nb201")(C=2, N=1)
    spec = {"space": space.config, "arch": res["arch"], "options": {"proxy": "synflow", "batch_size": 4},
            "data": {"dataset": "synthetic"}}
    out = run_trial(spec)
    assert out["score"] == pytest.approx(best["score"]) and out["protocol"]["batch_size"] == 4
    assert out["protocol"]["seed"] == 0 and out["protocol"]["dataset"] == "synthetic"


def test_proxy_ensemble_estimator_scores_against_a_reference_sample():
    from nasforge.estimators.proxy import run_trial

    space = SPACES.get("nb201")(C=2, N=1)
    spec = {"space": space.config, "arch": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|"
            "nor_conv_3x3~1|nor_conv_3x3~2|", "options": {"proxy": "ensemble", "reference": 4, "batch_size": 4,
                                                       "inputs": "gaussian"}, "data": {}}
    out = run_trial(spec)
    assert 0.0 <= out["score"] <= 1.0 and set(out["scores"]) == {"synflow", "nwot", "jacob_cov"}
    dead = dict(spec, arch="|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    out = run_trial(dead)
    assert out["score"] is None and out["degenerate"] is True


def test_evolution_prescreen_is_deterministic_and_sends_the_proxy_best(tmp_path):
    cfg = {**BASE, "method": "evolution", "estimator": "proxy", "budget": {"trials": 6},
           "hparams": {"population": 3, "sample_size": 2, "prescreen": 3, "prescreen_proxy": "kernel_area"},
           "estimator_options": {"proxy": "synflow", "batch_size": 4}}
    a = nasforge.search(cfg, run_root=tmp_path / "a")
    b = nasforge.search(cfg, run_root=tmp_path / "b")
    assert a["arch"] == b["arch"] and [h["arch"] for h in a["search"]["history"]] == \
        [h["arch"] for h in b["search"]["history"]]
    m = a["search"]["metrics"]["prescreen"]
    assert m == {"k": 3, "proxy": "kernel_area", "candidates_scored": 18}
    # each evaluated cell beat the two other candidates of its slot by kernel area: evaluated cells have
    # more conv area on average than random ones
    space = SPACES.get("nb201")(C=2, N=1)

    def area(arch: str) -> int:
        return sum({"nor_conv_3x3": 9, "nor_conv_1x1": 1}.get(t.split("~")[0], 0) for t in arch.split("|") if "~" in t)

    rng = random.Random(0)
    rand = np.mean([area(space.sample(rng)) for _ in range(300)])
    assert np.mean([area(h["arch"]) for h in a["search"]["history"]]) > rand


def test_bad_estimator_options_fail_before_the_run(tmp_path, run_cli):
    code, _, err = run_cli("search", "--space", "nb201", "--method", "random", "--estimator", "proxy",
                           "--trials", "2", "--dataset", "synthetic", "--estimator-opt", "proxy=nope",
                           "--out", str(tmp_path))
    assert code == 2 and "estimator 'proxy'" in err and "nope" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
    code, _, err = run_cli("search", "--space", "nb201", "--method", "evolution", "--estimator", "proxy",
                           "--trials", "2", "--dataset", "synthetic", "--set", "prescreen_proxy=nope",
                           "--out", str(tmp_path))
    assert code == 2 and "prescreen_proxy" in err


def test_cli_proxy_score_end_to_end(tmp_path, cli_ok, run_cli):
    out = tmp_path / "scores.json"
    text = cli_ok("proxy", "score", "--space", "nb201", "--sample", "3", "--space-opt", "C=2", "--space-opt", "N=1",
                  "--proxy", "synflow", "--proxy", "ensemble", "--dataset", "synthetic", "--batch-size", "4",
                  "--device", "cpu", "--out", str(out))
    res = json.loads(out.read_text())
    assert json.loads(text)["results"] == res["results"] and len(res["results"]) == 3
    assert res["protocol"]["batch_size"] == 4 and res["protocol"]["ensemble_members"] == ["synflow", "nwot", "jacob_cov"]
    ens = sorted(r["scores"]["ensemble"] for r in res["results"])
    assert ens[0] < ens[-1] and all(0 <= e <= 1 for e in ens)
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps({"space": "nb201", "space_config": {"C": 2, "N": 1}, "arch": res["results"][0]["arch"]}))
    again = json.loads(cli_ok("proxy", "score", str(arch_file), "--proxy", "synflow", "--dataset", "synthetic",
                              "--batch-size", "4", "--space-opt", "C=2", "--space-opt", "N=1"))
    assert again["results"][0]["scores"]["synflow"] == pytest.approx(res["results"][0]["scores"]["synflow"])
    for args, msg in ((["--proxy", "nope"], "unknown proxy 'nope'"), (["--batch-size", "1"], "batch_size"),
                      (["--space-opt", "X=1"], "unknown option"), (["--inputs", "x"], "inputs")):
        code, _, err = run_cli("proxy", "score", "--space", "nb201", "--sample", "2", "--dataset", "synthetic", *args)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli("proxy", "score", str(tmp_path / "missing.json"))
    assert code == 2 and "missing.json" in err


def test_evolution_prescreen_resumes_exactly_after_a_crash(tmp_path, crash):
    from nasforge.strategies.evolution import Evolution

    cfg = {**BASE, "method": "evolution", "estimator": "proxy", "budget": {"trials": 6},
           "hparams": {"population": 3, "sample_size": 2, "prescreen": 2, "prescreen_proxy": "synflow"},
           "estimator_options": {"proxy": "kernel_area", "batch_size": 4}}
    whole = nasforge.search(cfg, run_root=tmp_path / "whole")
    with crash(Evolution, "_proxy_score", 9) as died:  # inside round 2 (rounds: 3 random slots, then 1 child each)
        with pytest.raises(died):
            nasforge.search(cfg, run_root=tmp_path / "cut")
    run = next((tmp_path / "cut").iterdir())
    resumed = nasforge.search(resume=run)
    assert [h["arch"] for h in resumed["search"]["history"]] == [h["arch"] for h in whole["search"]["history"]]
    assert resumed["arch"] == whole["arch"]
    assert resumed["search"]["metrics"]["prescreen"] == whole["search"]["metrics"]["prescreen"]


def test_scoring_leaves_the_callers_random_streams_alone():
    space = SPACES.get("nb201")(C=2, N=1)
    protocol = Protocol(proxies=["synflow"], batch_size=2, data="gaussian", seed=5)
    batch = make_batch(space, protocol, None)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    want = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    score_arch(space, space.sample(random.Random(0)), protocol, batch)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == want
