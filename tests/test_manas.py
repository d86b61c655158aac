"""MANAS, MANAS-LS and random-ws as one-shot strategies (spec §4): sampled-path training, agents per edge,
derivation, exact resume, CLI, plots."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nasforge import api
from nasforge.cli import main as cli_main
from nasforge.data import SearchData
from nasforge.data.datasets import synthetic
from nasforge.errors import ConfigError, UserError
from nasforge.report import plot_alpha_trajectories, plot_policies
from nasforge.spaces.darts import DartsSpace, darts_top2_excluding_none
from nasforge.spaces.nb201 import NB201Space
from nasforge.engine.bandits import default_eta
from nasforge.engine.base import Budget, SearchContext
from nasforge.strategies.manas import MANAS, MANASLS, arch_to_path, normalised_loss, path_to_arch
from nasforge.strategies.random_ws import RandomWS
from nasforge.supernet import MixedOp

NB201 = {"space": "nb201", "space_options": {"C": 4, "N": 1}, "dataset": "synthetic", "subset": 256,
         "batch_size": 32}
DARTS = {"space": "darts", "space_options": {"C": 4, "layers": 2}, "dataset": "synthetic",
         "subset": 64, "batch_size": 32}


def _space(name: str, **options):
    if name == "nb201":
        return NB201Space(in_channels=1, num_classes=10, resolution=28, **{"C": 4, "N": 1, **options})
    # C * stem_multiplier stays above 4: torch 2.13's channels_last 1x1 stride-2 conv backward corrupts the
    # heap with <= 4 input channels (see docs/manas.md)
    return DartsSpace(in_channels=1, num_classes=10, resolution=28, **{"C": 4, "layers": 2, **options})


def _setup(strategy, space, epochs: int = 2, seed: int = 0):
    """A strategy wired to a supernet as OneShotStrategy.search does, without running the loop."""
    train, _ = synthetic(n_train=128, n_test=8)
    data = SearchData(train.subset(torch.arange(64)), train.subset(torch.arange(64, 128)), batch_size=16)
    ctx = SearchContext(space=space, budget=Budget(epochs=epochs), seed=seed, data=data)
    torch.manual_seed(seed)
    supernet = space.supernet()
    strategy._make_weight_optimizer(supernet, ctx, epochs)
    strategy.setup(supernet, ctx)
    return supernet, ctx


def _batches(ctx):
    tr, va = ctx.data.loaders(0)
    return next(iter(tr)), next(iter(va))


# -- sampled-path training ----------------------------------------------------------------------------
@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_sampled_step_touches_only_sampled_ops(space_name):
    strategy = MANAS()
    supernet, ctx = _setup(strategy, _space(space_name))
    mixed = [m for m in supernet.modules() if isinstance(m, MixedOp)]
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    batch, val = _batches(ctx)
    strategy.w_opt.zero_grad(set_to_none=True)
    strategy.step(supernet, batch, val, ctx)
    path = strategy.path_to_actions(supernet.path)
    # MixedOps appear in module order = group order of the flattened agents, for these supernets:
    # nb201 has one cell per stage sharing the group `cell`; darts has one group per cell type.
    edge_ops = _ops_per_agent(supernet, mixed, strategy)
    names = {id(p): n for n, p in supernet.named_parameters()}
    buffer_names = {id(b): n for n, b in supernet.named_buffers()}
    n_trained = n_sampled = 0
    for agent, ops in edge_ops.items():
        for k, op_modules in enumerate(ops):
            for op in op_modules:
                sampled = k == path[agent]
                for p in op.parameters():
                    name = names[id(p)]
                    if sampled:
                        assert p.grad is not None, name
                        n_sampled += 1
                        n_trained += int(not torch.equal(p.detach(), before[name]))
                    else:
                        assert p.grad is None, f"unsampled {name} got a gradient"
                        assert torch.equal(p.detach(), before[name]), f"unsampled {name} changed"
                for b in op.buffers():
                    if not sampled:
                        key = buffer_names[id(b)]
                        assert torch.equal(b, before[key]), f"unsampled buffer {key} changed"
    assert n_trained == n_sampled  # every parameter of a sampled op moved
    assert all(a.grad is None for a in supernet.arch_parameters())


def _ops_per_agent(supernet, mixed, strategy):
    """agent index -> list over ops of the op modules of every copy of that edge."""
    out: dict[int, list[list]] = {}
    if not supernet.prunes_inputs:  # nb201: one shared 6-edge cell
        for n, m in enumerate(mixed):
            e = n % 6
            out.setdefault(e, [[] for _ in m.ops])
            for k, op in enumerate(m.ops):
                out[e][k].append(op)
        return out
    offsets = dict(zip(strategy.groups, strategy.bounds[:-1]))
    for cell, g in zip(supernet.cells, supernet.cell_groups):
        for e, m in enumerate(cell.edges):
            agent = int(offsets[g]) + e
            out.setdefault(agent, [[] for _ in m.ops])
            for k, op in enumerate(m.ops):
                out[agent][k].append(op)
    return out


def test_sampled_forward_runs_one_op_per_edge():
    space = _space("nb201", N=2)
    strategy = MANAS()
    supernet, ctx = _setup(strategy, space)
    calls = []
    for m in supernet.modules():
        if isinstance(m, MixedOp):
            for op in m.ops:
                op.register_forward_hook(lambda *_: calls.append(1))
    actions = strategy.agents.sample(strategy.rng)
    supernet.set_path(strategy.actions_to_path(actions))
    supernet(torch.randn(2, 1, 28, 28))
    assert len(calls) == 6 * 2 * 3  # 6 edges x N=2 cells x 3 stages, `none` included (it is an op module)


# -- agents wiring -------------------------------------------------------------------------------------------
def test_one_agent_per_edge_of_every_group_and_paths_round_trip():
    strategy = MANAS()
    supernet, _ = _setup(strategy, _space("darts", unique_cells=True, layers=3))
    assert strategy.groups == ["cell0", "cell1", "cell2"]
    assert strategy.agents.n_agents == 3 * 14 and strategy.agents.n_arms == 8
    a = strategy.agents.sample(strategy.rng)
    path = strategy.actions_to_path(a)
    assert [len(path[g]) for g in strategy.groups] == [14, 14, 14]
    np.testing.assert_array_equal(strategy.path_to_actions(path), a)


def test_eta_defaults_to_horizon_formula_and_can_be_set():
    strategy = MANAS()
    _, ctx = _setup(strategy, _space("nb201"), epochs=3)
    steps = len(ctx.data.loaders(0)[0])
    assert strategy.horizon == 3 * steps
    assert strategy.agents.eta == pytest.approx(default_eta(5, 3 * steps))
    fixed = MANAS(eta=0.05, gamma=0.01)
    _setup(fixed, _space("nb201"))
    assert (fixed.agents.eta, fixed.agents.gamma) == (0.05, 0.01)


def test_normalised_loss_in_unit_interval():
    y = torch.tensor([0, 1, 2, 3])
    uniform = torch.zeros(4, 10)
    assert normalised_loss(uniform, y, "ce") == pytest.approx(1.0)  # CE = ln(10)
    confident = torch.full((4, 10), -20.0)
    confident[torch.arange(4), y] = 20.0
    assert normalised_loss(confident, y, "ce") == pytest.approx(0.0, abs=1e-6)
    wrong = torch.full((4, 10), -20.0)
    wrong[:, 9] = 20.0
    assert normalised_loss(wrong, y, "ce") == 1.0  # clipped
    assert normalised_loss(confident, y, "error") == 0.0 and normalised_loss(wrong, y, "error") == 1.0


def test_agents_learn_from_step_feedback():
    strategy = MANASLS(warmup=0)
    supernet, ctx = _setup(strategy, _space("nb201"))
    batch, val = _batches(ctx)
    for _ in range(3):
        strategy.step(supernet, batch, val, ctx)
    assert strategy.agents.t == 3 and len(strategy.loss_history) == 3
    assert all(0.0 <= v <= 1.0 for v in strategy.loss_history)
    assert not np.allclose(strategy.policies(), 1 / 5)  # Zipf by credit rank after the first refit


# -- derivation --------------------------------------------------------------------------------------------------
def test_darts_top2_rule_applies_to_log_policy():
    strategy = MANAS()
    supernet, ctx = _setup(strategy, _space("darts"))
    rng = np.random.default_rng(0)
    strategy.agents.cum_loss = rng.uniform(0, 50, size=strategy.agents.cum_loss.shape)
    arch = strategy.derive(supernet, ctx)
    logp = strategy.by_group(np.log(strategy.policies()))
    assert arch["normal"] == darts_top2_excluding_none(torch.from_numpy(logp["normal"]))
    assert arch["reduce"] == darts_top2_excluding_none(torch.from_numpy(logp["reduce"]))
    # without the rule: the greedy op on every one of the 14 edges
    full = MANAS(top2=False)
    supernet2, ctx2 = _setup(full, _space("darts"))
    full.agents.cum_loss = strategy.agents.cum_loss.copy()
    arch2 = full.derive(supernet2, ctx2)
    greedy = strategy.by_group(strategy.agents.best())["normal"]
    assert [op for op, _ in arch2["normal"]] == [supernet.op_names[k] for k in greedy]


def test_final_sample_with_top2_keeps_the_sampled_ops():
    strategy = MANAS(final="sample")
    supernet, ctx = _setup(strategy, _space("darts"))
    strategy.agents.cum_loss = np.random.default_rng(3).uniform(0, 30, size=strategy.agents.cum_loss.shape)
    arch = strategy.derive(supernet, ctx)
    from nasforge.engine.paths import _DERIVE_STREAM

    sampled = strategy.agents.sample(np.random.default_rng([0, _DERIVE_STREAM, strategy.agents.t]))
    edges = _edges()
    names = supernet.op_names
    for g in ("normal", "reduce"):
        ops = strategy.by_group(sampled)[g]
        for k, (op, i) in enumerate(arch[g]):
            e = edges.index((i, k // 2 + 2))
            if names[ops[e]] != "none":
                assert op == names[ops[e]]
        for j in range(2, 6):  # a node keeps its real sampled inputs first
            real = sum(names[ops[edges.index((i, j))]] != "none" for i in range(j))
            kept = [i for op, i in arch[g][2 * (j - 2): 2 * (j - 1)]]
            assert sum(names[ops[edges.index((i, j))]] != "none" for i in kept) == min(2, real)


def test_final_sample_is_reproducible_and_top2_is_darts_only():
    strategy = MANAS(final="sample")
    supernet, ctx = _setup(strategy, _space("nb201"))
    assert strategy.derive(supernet, ctx) == strategy.derive(supernet, ctx)
    with pytest.raises(ConfigError, match="top2"):
        _setup(MANAS(top2=True), _space("nb201"))
    with pytest.raises(ConfigError, match="final"):
        MANAS(final="best")


@pytest.mark.parametrize("space_name,options", [("nb201", {}), ("darts", {}), ("darts", {"unique_cells": True})])
def test_arch_to_path_inverts_path_to_arch(space_name, options):
    space = _space(space_name, **options)
    strategy = RandomWS()
    supernet, _ = _setup(strategy, space)
    rng = np.random.default_rng(1)
    for _ in range(5):
        path = strategy.actions_to_path(strategy.sample_candidate(rng))
        arch = space.validate(path_to_arch(supernet, path, top2=strategy.top2))
        back = arch_to_path(supernet, arch)
        assert all(torch.equal(back[g], path[g]) for g in path)


def test_random_ws_darts_candidates_are_genotypes_and_selection_is_pure():
    strategy = RandomWS(candidates=6, top_k=2, rerank_batches=2)
    supernet, ctx = _setup(strategy, _space("darts"))
    rng = np.random.default_rng(0)
    for _ in range(5):
        for g, cell in strategy.by_group(strategy.sample_candidate(rng)).items():
            real = [(i, j) for (i, j), k in zip(_edges(), cell) if k != 0]
            assert sorted(j for _, j in real) == [2, 2, 3, 3, 4, 4, 5, 5]  # two real inputs per node
    supernet.train()
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    first = strategy.select(supernet, ctx)
    assert all(torch.equal(v, before[k]) for k, v in supernet.state_dict().items())  # BN buffers restored
    assert supernet.path is None and supernet.training
    again = strategy.select(supernet, ctx)
    assert first["arch"] == again["arch"] and first["val_loss"] == again["val_loss"]
    assert first["evaluated"] == 6


def _edges():
    from nasforge.spaces.darts import cell_edges

    return cell_edges(4)


# -- whole searches: exact resume, CLI -----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["manas", "manas-ls", "random-ws"])
def test_interrupted_search_resumes_bit_exactly(tmp_path, crash, same_supernet, method):
    cfg = {**NB201, "method": method, "budget": {"epochs": 2}}
    ref = api.search(cfg, run_root=tmp_path / "a")
    # the process dies right after epoch 1 was saved
    with crash(SearchContext, "checkpoint", at=1) as died, pytest.raises(died):
        api.search(cfg, run_root=tmp_path / "b", run_name="r")
    resumed = api.search(resume=tmp_path / "b" / "r")
    assert resumed["arch"] == ref["arch"]
    ck_ref, ck = same_supernet(ref["run_dir"], tmp_path / "b" / "r")
    assert ck["epoch"] == ck_ref["epoch"] == 2
    a_ref, a = ck_ref["strategy"]["agents"], ck["strategy"]["agents"]
    assert a["t"] == a_ref["t"] == (0 if method == "random-ws" else 2 * 4)  # uniform agents get no feedback
    assert ck["strategy"]["steps_done"] == 2 * 4
    for name, arr in a_ref["arrays"].items():
        np.testing.assert_array_equal(a["arrays"][name], arr)
    np.testing.assert_array_equal(ck["strategy"]["loss_history"], ck_ref["strategy"]["loss_history"])
    assert ck["strategy"]["rng"] == ck_ref["strategy"]["rng"]
    if method != "random-ws":
        assert resumed["search"]["metrics"]["policies"] == ref["search"]["metrics"]["policies"]
        assert len(ck["strategy"]["loss_history"]) == 8
    lines = (tmp_path / "b" / "r" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(l) for l in lines if '"event": "epoch"' in l]
    assert [r["epoch"] for r in records] == [1, 2]
    if method == "random-ws":  # the architecture is chosen once, at the end (select_every=0)
        assert [r["selected_at_step"] for r in records] == [None, 8]
        assert records[-1]["arch"] == resumed["arch"]


def test_search_logs_policy_diagnostics_and_writes_plots(tmp_path, tables_dir):
    res = api.search({**NB201, "method": "manas", "budget": {"epochs": 2}, "tables": str(tables_dir)},
                     run_root=tmp_path)
    run = tmp_path / res["run_dir"].split("/")[-1]
    epochs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [e for e in epochs if e.get("event") == "epoch"]
    for e in epochs:
        probs = np.array(e["alpha_softmax"]["cell"])
        np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
        np.testing.assert_allclose(e["policy_best_prob"]["cell"], probs.max(1), atol=1e-6)
        assert all(0 <= h <= math.log(5) + 1e-6 for h in e["edge_entropy"]["cell"])
        assert 0.0 <= e["agent_loss"] <= 1.0 and "cifar10_test_200" in e["table"]
        assert 0.0 <= e["derived_val_accuracy_batch_stats"] <= 1.0
    final = np.array(res["search"]["metrics"]["policies"]["cell"])
    np.testing.assert_allclose(final, np.array(epochs[-1]["alpha_softmax"]["cell"]), atol=1e-6)
    for name in ("policies.png", "policy_trajectories.png", "policy_concentration.png", "agent_loss.png"):
        assert (run / name).stat().st_size > 1000


@pytest.mark.parametrize("method,base", [("manas", NB201), ("manas-ls", NB201), ("manas", DARTS),
                                         ("manas-ls", DARTS)])
def test_cli_search_and_resume(tmp_path, crash, method, base):
    args = ["search", "--method", method, "--space", base["space"], "--dataset", "synthetic",
            "--subset", str(base["subset"]), "--batch-size", str(base["batch_size"]), "--epochs", "2",
            "--out", str(tmp_path), "--name", "r", "--quiet"]
    for k, v in base["space_options"].items():
        args += ["--space-opt", f"{k}={v}"]
    with crash(SearchContext, "checkpoint", at=1) as died, pytest.raises(died):
        cli_main(args)
    assert torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=False)["epoch"] == 1
    assert not (tmp_path / "r" / "result.json").exists()
    cli_main(["search", "--resume", str(tmp_path / "r"), "--quiet"])
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["method"] == method and result["search"]["metrics"]["epochs_run"] == 2


def test_bad_hyperparameters_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="val_loss must be one of ce, error"):
        api.search({**NB201, "method": "manas", "budget": {"epochs": 1}, "hparams": {"val_loss": "mse"}},
                   run_root=tmp_path)
    assert not list(tmp_path.iterdir())  # rejected before a run directory was created
    with pytest.raises(UserError, match="valid: .*eta"):
        MANAS(temperature=2)
    with pytest.raises(UserError, match="candidates"):
        RandomWS(candidates=0)
    with pytest.raises(UserError, match="Hessian"):
        MANASLS(hessian_every=1)


# -- plots ---------------------------------------------------------------------------------------------------------
def test_plots_write_files_and_reject_bad_input(tmp_path):
    history = [{"epoch": e, "alpha_softmax": {"normal": [[0.5, 0.5], [0.9, 0.1]], "reduce": [[0.2, 0.8]] * 2}}
               for e in (1, 2, 3)]
    out = plot_alpha_trajectories(history, tmp_path / "a.png", ["x", "y"])
    assert out.stat().st_size > 1000
    assert plot_policies({"cell": np.full((3, 4), 0.25)}, None, tmp_path / "p.png").is_file()
    with pytest.raises(UserError, match="alpha_softmax"):
        plot_alpha_trajectories([{"epoch": 1}], tmp_path / "b.png")
    with pytest.raises(UserError, match="op names"):
        plot_alpha_trajectories(history, tmp_path / "c.png", ["x", "y", "z"])
