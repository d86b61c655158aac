"""The `vit` super-transformer space and the `vitas` strategy: weight slicing, private Q/K gradients, standalone
subnets, the MAC convention, identity calibration and shifting, evolution inside the window, exact resume, CLI."""
from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch

from nasforge import api
from nasforge.data.augment import cutmix, random_erasing, soft_cross_entropy, soft_targets
from nasforge.errors import ConfigError, UserError
from nasforge.hardware.flops import model_cost
from nasforge.spaces.vit import ViTSpace, all_paths, count_paths, take, window
from nasforge.engine.base import SearchContext
from nasforge.strategies.vitas import ViTAS, calibrate_identity


SMALL = {"embed_dim": 16, "qkv_dim": 16, "mlp_dim": 32, "depth": 3}
VIT = {"space": "vit", "method": "vitas", "dataset": "synthetic", "subset": 192, "batch_size": 32, "seed": 3,
       "space_options": SMALL, "budget": {"epochs": 2},
       "hparams": {"budget": 0.3, "window_low": 0.5, "candidates": 6, "population": 3, "sample_size": 2,
                   "eval_images": 64, "eval_batch": 32, "checkpoint_every": 2}}


# -- slicing ---------------------------------------------------------------------------------------------------
def test_leading_and_right_slices_are_views_and_cyclic_windows_wrap():
    t = torch.arange(8.0 * 6).view(8, 6)
    left = take(t, 0, 0, 3, 8)
    right = take(t, 0, 8 - 3, 3, 8)
    for v, rows in ((left, [0, 1, 2]), (right, [5, 6, 7])):
        assert v.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()  # a view, not a copy
        assert torch.equal(v, t[rows])
    assert window(6, 4, 8) == [6, 7, 0, 1]
    assert torch.equal(take(t, 0, 6, 4, 8), t[[6, 7, 0, 1]])
    mid = take(t, 0, 2, 4, 8)  # no wrap: still a view
    assert window(2, 4, 8) == [2, 3, 4, 5] and mid.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()


@pytest.mark.parametrize("share,expect", [("leading", "left"), ("bilateral", "right")])
def test_supernet_weights_are_slices_of_one_tensor(share, expect):
    sp = ViTSpace(share=share, **SMALL)
    sn = sp.supernet()
    arch = {"patch": 4, "embed": 8, "blocks": [{"heads": 2, "attn": 8, "mlp": 16}, None, None]}
    off = sn.offsets(arch, expect)
    w = sn.block_weights(0, arch["blocks"][0], 8, off)
    s = sn.slots[0]
    idx_e = window(off["embed"], 8, 16)
    idx_m = window(off["mlp"][0], 16, 32)
    assert idx_e == (list(range(8)) if expect == "left" else list(range(8, 16)))
    assert torch.equal(w["fc1_w"], s.fc1_w[idx_m][:, idx_e])
    assert w["fc1_w"].untyped_storage().data_ptr() == s.fc1_w.untyped_storage().data_ptr()
    assert torch.equal(w["norm1_w"], s.norm1_w[idx_e])
    idx_a = window(off["attn"][0], 8, 16)
    assert torch.equal(w["qkv_w"][16:], s.v_w[idx_a][:, idx_e])  # V rows follow Q and K
    assert torch.equal(w["qkv_w"][:8], s.qk_w["2"][0][idx_a][:, idx_e])
    cyc = {"embed": 12, "attn": {0: 12}, "mlp": {0: 24}}
    wc = sn.embed_weights(arch, cyc)
    assert torch.equal(wc["pos"], sn.pos_embed["4"][..., [12, 13, 14, 15, 0, 1, 2, 3]])


def test_cyclic_offsets_are_group_multiples_and_usage_is_even():
    sp = ViTSpace(share="cyclic")
    sn = sp.supernet()
    g = torch.Generator().manual_seed(0)
    rng = random.Random(0)
    use = np.zeros(sp.E)
    for _ in range(2000):
        a = sp.sample(rng)
        off = sn.sample_offsets(a, g)
        assert off["embed"] % sp.units["embed"] == 0
        use[window(off["embed"], a["embed"], sp.E)] += 1
    groups = use.reshape(4, -1).sum(1)
    assert groups.std() / groups.mean() < 0.05


# -- private Q/K --------------------------------------------------------------------------------------------------
def test_private_qk_receive_gradients_only_when_their_head_count_is_sampled():
    sp = ViTSpace(**SMALL)
    sn = sp.supernet()
    arch = {"patch": 7, "embed": 16, "blocks": [{"heads": 2, "attn": 8, "mlp": 16}, None, {"heads": 4, "attn": 16, "mlp": 32}]}
    sn(torch.randn(4, 1, 28, 28), arch, "left").sum().backward()
    s0, s2 = sn.slots[0], sn.slots[2]
    assert s0.qk_w["2"].grad is not None and s0.qk_w["2"].grad.abs().sum() > 0
    assert s0.qk_w["1"].grad is None and s0.qk_w["4"].grad is None
    assert s2.qk_w["4"].grad is not None and s2.qk_w["2"].grad is None
    assert sn.slots[1].v_w.grad is None  # the identity slot is untouched
    assert sn.patch_w["4"].grad is None and sn.cls_token["4"].grad is None  # other patch size: private, unused
    assert s0.v_w.grad is not None
    # leading view: only the leading rows of the private Q/K tensor get gradient
    assert s0.qk_w["2"].grad[:, 8:].abs().sum() == 0


def test_autoformer_mode_shares_qkv_and_class_token():
    sp = ViTSpace(style="autoformer", **SMALL)
    sn = sp.supernet()
    assert sp.share == "leading" and not sp.private_qk and not sp.private_tokens
    assert isinstance(sn.cls_token, torch.nn.Parameter) and hasattr(sn.slots[0], "qkv_w")
    arch = {"patch": 4, "embed": 8, "blocks": [{"heads": 1, "attn": 8, "mlp": 8}, None, None]}
    sn(torch.randn(2, 1, 28, 28), arch).sum().backward()
    assert sn.slots[0].qkv_w.grad[:, 8:].abs().sum() == 0 and sn.slots[0].qkv_w.grad[:, :8].abs().sum() > 0


# -- standalone subnet ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opts", [{}, {"style": "autoformer"}, {"share": "cyclic", "identity_shift": True}])
def test_standalone_subnet_gives_the_supernet_logits(opts):
    sp = ViTSpace(**opts)
    sn = sp.supernet().eval()
    rng = random.Random(1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 1, 28, 28)
    for _ in range(4):
        a = sp.sample(rng)
        for view in ("left", "right", sn.sample_offsets(a, g)):
            net = sn.subnet(a, view).eval()
            ref = sn(x, a, view)
            out = net(x)
            assert torch.allclose(out, ref, atol=1e-5, rtol=0), (out - ref).abs().max()
            assert sum(p.numel() for p in net.parameters()) == sp.params(a)


# -- MACs ------------------------------------------------------------------------------------------------------------
def test_macs_of_a_one_block_subnet_equal_a_hand_count():
    sp = ViTSpace()
    arch = {"patch": 7, "embed": 16, "blocks": [{"heads": 2, "attn": 16, "mlp": 32}] + [None] * 5}
    T, N = 16, 17  # (28/7)^2 patches + the class token
    hand = (T * 7 * 7 * 1 * 16            # patch conv
            + N * 16 * 3 * 16             # Q, K, V
            + 2 * N * N * 16              # QK^T and attention x V
            + N * 16 * 16                 # output projection
            + 2 * N * 16 * 32             # MLP
            + 16 * 10)                    # classifier on the class token
    assert hand == 56768
    assert sp.macs(arch) == hand
    assert model_cost(sp.build(arch), torch.zeros(1, 1, 28, 28)).macs == hand  # torch's counter agrees


def test_macs_match_torch_counter_for_random_subnets():
    sp = ViTSpace()
    rng = random.Random(2)
    for _ in range(3):
        a = sp.sample(rng)
        assert model_cost(sp.build(a), torch.zeros(2, 1, 28, 28)).macs == 2 * sp.macs(a)


# -- calibration, identity shifting ------------------------------------------------------------------------------------
def test_calibration_lands_in_the_window_and_p_falls_as_budget_grows():
    sp = ViTSpace()
    top = sp.macs(sp.extreme_archs()[1])
    ps = []
    for B in (0.1, 0.15, 0.2):
        lo, hi = 0.9 * B * top, B * top
        p, mean, trace = calibrate_identity(sp, lo, hi, samples=1000)
        assert 0 < p < 1 and lo <= mean <= hi and trace[-1] == (p, mean)
        rng = random.Random(99)
        fresh = np.mean([sp.macs(sp.sample(rng, p_identity=p)) for _ in range(1000)])
        assert lo * 0.97 <= fresh <= hi * 1.03  # fresh samples: inside up to sampling noise
        ps.append(p)
    assert ps[0] >= ps[1] >= ps[2]
    with pytest.raises(ConfigError, match="left \\(0, 1\\)"):
        calibrate_identity(sp, 0.6 * top, 0.7 * top, samples=200)  # above what p -> 0 reaches


def test_identity_shift_gives_one_path_per_depth():
    rng = random.Random(0)
    shifted, v1 = ViTSpace(identity_shift=True), ViTSpace()
    archs = [v1.sample(rng, p_identity=0.5) for _ in range(4000)]
    assert count_paths(shifted, archs) == {d: 1 for d in range(7)}
    assert count_paths(v1, archs) == {d: all_paths(6, d) for d in range(7)}
    a = shifted.validate({"patch": 4, "embed": 16, "blocks": [None, {"heads": 1, "attn": 16, "mlp": 32}] + [None] * 4})
    assert a["blocks"][0] is not None and shifted.weight_path(a) == (0,)


# -- options and windows -------------------------------------------------------------------------------------------------
def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="do not divide attention width"):
        ViTSpace(heads=[1, 2, 3])
    with pytest.raises(ConfigError, match="does not divide the 32-pixel input"):
        ViTSpace(resolution=32, patch_sizes=[4, 7])  # by default the patch sizes are derived from the input
    with pytest.raises(ConfigError, match="share must be one of"):
        ViTSpace(share="diagonal")
    with pytest.raises(UserError, match="heads 3 is not one of"):
        ViTSpace().validate({"patch": 4, "embed": 16, "blocks": [{"heads": 3, "attn": 16, "mlp": 32}] + [None] * 5})
    sp = ViTSpace()
    top = sp.macs(sp.extreme_archs()[1])
    with pytest.raises(ConfigError, match="above the largest subnet"):
        ViTAS(flops_min=top + 1, flops_max=top + 2).prepare(sp)
    with pytest.raises(ConfigError, match="below the smallest subnet"):
        ViTAS(flops_min=1, flops_max=10).prepare(sp)


def test_mutation_and_crossover_stay_valid():
    sp = ViTSpace(identity_shift=True)
    rng = random.Random(5)
    a, b = sp.sample(rng), sp.sample(rng)
    for _ in range(200):
        c = sp.mutate(a, rng)
        assert sp.validate(c) == c and c != a
        d = sp.crossover(a, b, rng)
        assert sp.validate(d) == d
        a = c


def test_warmup_cosine_schedule():
    """ViTAS's recipe on the engine: AdamW, linear warm-up over one epoch of steps, then per-step cosine to lr_min;
    no weight decay on norms, biases, tokens, position tables and stacked Q/K biases (by kind, not name)."""
    from nasforge.engine.oneshot import OptimizerRecipe

    sn = ViTSpace(**SMALL).supernet()
    params = [p for p in sn.parameters() if p.requires_grad]
    recipe = OptimizerRecipe("adamw", lr=1.0, lr_min=0.01, weight_decay=0.05, per="step", warmup=1, by_kind=True)
    opt, sched = recipe.build(sn, params, epochs=10, steps_per_epoch=10)
    lrs = []
    for _ in range(101):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.01 + 0.99 * 0.5) and lrs[100] == pytest.approx(0.01)
    decay, rest = opt.param_groups
    assert decay["weight_decay"] == 0.05 and rest["weight_decay"] == 0.0
    assert len(decay["params"]) + len(rest["params"]) == len(params)
    assert all(p.ndim >= 2 for p in decay["params"])
    no_decay = {id(p) for p in rest["params"]}
    for name, p in sn.named_parameters():  # tokens, position tables and stacked Q/K biases are 2-D or more
        if any(k in name for k in ("cls_token", "pos_embed", "qk_b")):
            assert id(p) in no_decay, name


# -- augmentation -------------------------------------------------------------------------------------------------------
def test_cutmix_pastes_a_box_and_mixes_targets_by_area():
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 8, 8).clone()
    y = torch.tensor([0, 1, 2, 3])
    rng = np.random.default_rng(0)
    for _ in range(20):
        out, t, lam = cutmix(x, y, 4, rng, alpha=1.0, prob=1.0, smoothing=0.1)
        pasted = (out != x).float().mean().item()  # image i gets pixels of image 3 - i (all values differ)
        assert pasted == pytest.approx(1 - lam, abs=1e-6)
        assert torch.allclose(t.sum(1), torch.ones(4))
        base = soft_targets(y, 4, 0.1)
        assert torch.allclose(t, lam * base + (1 - lam) * base.flip(0))
    out, t, lam = cutmix(x, y, 4, rng, alpha=1.0, prob=0.0)
    assert lam == 1.0 and torch.equal(out, x) and torch.equal(t, soft_targets(y, 4))
    assert soft_cross_entropy(torch.zeros(2, 4), torch.full((2, 4), 0.25)).item() == pytest.approx(math.log(4))


def test_random_erasing_touches_about_p_of_the_images():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(2000, 1, 28, 28)
    out = random_erasing(x, 0.25, g)
    changed = (out != 0).flatten(1).any(1).float().mean().item()
    assert 0.21 < changed < 0.29
    area = (out != 0).flatten(1).float().mean(1)
    assert area.max() <= 1 / 3 + 0.05


# -- the strategy ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [{}, {"selection": "random"}, {"evolution_init": "uniform", "sampling": "uniform"}])
def test_evolution_never_evaluates_an_out_of_window_candidate(monkeypatch, flags):
    sp = ViTSpace(**SMALL)
    top = sp.macs(sp.extreme_archs()[1])
    strat = ViTAS(flops_min=0.2 * top, flops_max=0.35 * top, candidates=30, population=6, sample_size=3, **flags)
    prep = strat.prepare(sp)
    assert (prep["p_identity"] is None) == (flags.get("sampling") == "uniform")  # uniform: no calibration
    strat.device = torch.device("cpu")
    seen = []

    def fake_score(supernet, space, arch, batches):
        seen.append(space.macs(arch))
        return float(space.macs(arch))  # fitness: prefer big ones inside the window

    monkeypatch.setattr(strat, "score", fake_score)
    monkeypatch.setattr(strat, "save_selection", lambda ctx, state: None)  # no run: nothing to checkpoint
    strat._seq, strat.held_out = 0, []
    ctx = SearchContext(space=sp, budget=None, seed=0)
    strat.end_phase(sp.supernet(), 0, ctx, None)  # the engine's selection phase in the MACs window
    best = strat.derive(None, ctx)
    assert len(seen) == 30 and all(0.2 * top <= f <= 0.35 * top for f in seen)
    assert sp.macs(best) == max(seen) and len(strat.records) == 30


def test_eval_batches_are_made_on_the_search_device(monkeypatch, tiny_data):
    """ViTAS scores candidates on fixed held-out batches; the loader that makes them is given ctx.device."""
    import nasforge.data.loader as loader_mod
    from nasforge.data.datasets import SearchData

    devices = []

    class Recording(loader_mod.Loader):
        def __init__(self, *args, **kwargs):
            devices.append(kwargs.get("device"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(loader_mod, "Loader", Recording)
    train, test = tiny_data
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx = SearchContext(space=ViTSpace(**SMALL), budget=None, data=SearchData(train, test, 32), device=device)
    batches = ViTAS(eval_images=80, eval_batch=32).eval_batches(ctx)
    assert devices == [device]
    assert [len(y) for _, y in batches] == [32, 32, 16]
    assert all(x.device.type == device.type and y.device.type == device.type for x, y in batches)


def test_vitas_search_resumes_exactly(tmp_path, crash, same_supernet):
    ref = api.search(VIT, run_root=tmp_path / "a")
    with crash(SearchContext, "checkpoint", at=(1, 3)) as died:  # after epoch 1, and again inside the evolution
        with pytest.raises(died):
            api.search(VIT, run_root=tmp_path / "b", run_name="r")
        with pytest.raises(died):
            api.search(resume=tmp_path / "b" / "r")
    resumed = api.search(resume=tmp_path / "b" / "r")
    assert resumed["arch"] == ref["arch"]
    same_supernet(ref["run_dir"], tmp_path / "b" / "r")
    evo_ref = json.loads((tmp_path / "a" / ref["run_dir"].split("/")[-1] / "evolution.json").read_text())
    evo = json.loads((tmp_path / "b" / "r" / "evolution.json").read_text())
    assert evo["candidates"] == evo_ref["candidates"] and len(evo["candidates"]) == 6
    m = resumed["search"]["metrics"]
    assert 0 < m["p_identity"] < 1 and m["flops_min"] <= m["macs"] <= m["flops_max"]


# -- command line -----------------------------------------------------------------------------------------------------------
def test_cli_search_train_export(tmp_path, cli_ok):
    out = cli_ok("search", "--space", "vit", "--method", "vitas", "--dataset", "synthetic", "--epochs", "1",
                 "--subset", "128", "--batch-size", "32", "--space-opt", "embed_dim=16", "--space-opt", "qkv_dim=16",
                 "--space-opt", "mlp_dim=32", "--space-opt", "depth=2", "--set", "budget=0.4", "--set", "window_low=0.3",
                 "--set", "candidates=3", "--set", "population=2", "--set", "sample_size=1", "--set", "eval_images=32",
                 "--out", str(tmp_path), "--quiet")
    res = json.loads(out)
    assert res["space"] == "vit"
    out = cli_ok("train", "--arch", res["arch_file"], "--dataset", "synthetic", "--epochs", "1", "--subset", "64",
                 "--test-subset", "32", "--optimizer", "adamw", "--lr", "0.001", "--out", str(tmp_path), "--quiet")
    trained = json.loads(out)
    assert 0 <= trained["test_accuracy"] <= 1
    out = cli_ok("export", trained["run_dir"], "--out", str(tmp_path / "m.onnx"))
    assert (tmp_path / "m.onnx").exists() and json.loads(out)["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("extra,needle", [
    (["--set", "flops_min=1e9", "--set", "flops_max=2e9"], "above the largest subnet"),
    (["--set", "flops_min=1", "--set", "flops_max=100"], "below the smallest subnet"),
    (["--space-opt", "heads=[1,2,3]"], "do not divide attention width"),
    (["--set", "budget=0.9"], "calibration cannot reach"),
    (["--method", "random-ws"], "searched with --method vitas"),
])
def test_cli_impossible_windows_and_bad_heads_exit_2_before_a_run_dir(tmp_path, run_cli, extra, needle):
    code, out, err = run_cli("search", "--space", "vit", "--method", "vitas", "--dataset", "synthetic",
                             "--epochs", "1", "--out", str(tmp_path), *extra)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_deit_recipe_options_of_the_training_engine():
    from nasforge.training import TrainConfig, make_optimizer, no_decay_groups

    net = ViTSpace(**SMALL).build({"patch": 7, "embed": 16, "blocks": [{"heads": 1, "attn": 8, "mlp": 16}, None, None]})
    decay, free = no_decay_groups(net, 0.05)
    names = {id(p): n for n, p in net.named_parameters()}
    assert {names[id(p)] for p in free["params"]} >= {"cls_token", "pos_embed", "norm.weight", "head.bias"}
    assert all(p.ndim >= 2 for p in decay["params"]) and free["weight_decay"] == 0.0
    cfg = TrainConfig(epochs=10, optimizer="adamw", lr=1e-3, lr_min=0.0, warmup_epochs=2, decay_norms=False)
    opt, sched = make_optimizer(no_decay_groups(net, 0.05), cfg, 1)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3 / 3) and lrs[1] == pytest.approx(2e-3 / 3) and lrs[2] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:])) and lrs[-1] < 1e-4
    with pytest.raises(ConfigError, match="warmup_epochs"):
        TrainConfig(epochs=3, warmup_epochs=3)


# -- attention kernel (issue 20) --------------------------------------------------------------------------------
def _explicit_attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """The formulation nasforge used before issue 20: softmax(Q K^T d^-1/2) V with explicit products."""
    B, N, three_a = qkv.shape
    a = three_a // 3
    d = a // heads
    q, k, v = qkv.view(B, N, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
    o = torch.softmax((q @ k.transpose(-2, -1)) * d ** -0.5, dim=-1) @ v
    return o.transpose(1, 2).reshape(B, N, a)


@pytest.mark.parametrize("B,N,a,heads", [(4, 50, 64, 4), (3, 17, 16, 1), (2, 65, 48, 2)])
def test_fp32_attention_runs_fused_sdpa_with_the_explicit_values_and_gradients(B, N, a, heads):
    from nasforge.ops.attention import attend

    torch.manual_seed(0)
    qkv = torch.randn(B, N, 3 * a, dtype=torch.float64, requires_grad=True)
    g = torch.randn(B, N, a, dtype=torch.float64)
    ref = _explicit_attention(qkv, heads)
    ref_grad, = torch.autograd.grad(ref, qkv, g)
    x = qkv.detach().float().requires_grad_()
    out = attend(x, heads)
    grad, = torch.autograd.grad(out, x, g.float())
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), ref, atol=1e-5) and torch.allclose(grad.double(), ref_grad, atol=1e-5)


def test_bf16_and_unfused_attention_keep_the_explicit_products_bit_for_bit():
    from nasforge.ops.attention import attend

    torch.manual_seed(0)
    qkv = torch.randn(2, 17, 48)
    assert torch.equal(attend(qkv.bfloat16(), 2), _explicit_attention(qkv.bfloat16(), 2))
    assert torch.equal(attend(qkv, 2, fused=False), _explicit_attention(qkv, 2))


def test_fused_option_gives_the_previous_supernet_within_rounding_and_reaches_standalone_nets():
    """The whole super-transformer (both bilateral views) with fused=true against fused=false (the explicit
    attention of before issue 20): same logits and gradients within float rounding."""
    runs = []
    for fused in (True, False):
        torch.manual_seed(0)
        space = ViTSpace(**SMALL, heads=[1, 2], fused=fused)
        net = space.supernet()
        arch = space.sample(random.Random(1), p_identity=0.0)
        assert all(b.fused == fused for b in space.build(arch).blocks)
        x = torch.randn(6, 1, 28, 28)
        logits = net(x, arch, "left") + net(x, arch, "right")
        logits.square().sum().backward()
        runs.append((logits.detach(), {n: p.grad for n, p in net.named_parameters() if p.grad is not None}))
    (l0, g0), (l1, g1) = runs
    assert torch.allclose(l0, l1, atol=1e-5) and g0.keys() == g1.keys()
    assert all(torch.allclose(g0[n], g1[n], atol=1e-4, rtol=1e-4) for n in g0)


def test_second_order_gradients_run_through_the_explicit_attention():
    """The fused kernel has no double backward; forwards differentiated twice (GraSP, Hessian eigenvalue)
    run inside second_order(), which switches it off."""
    from nasforge.ops.attention import attend, second_order

    qkv = torch.randn(2, 17, 48, requires_grad=True)
    with pytest.raises(RuntimeError, match="derivative"):
        g, = torch.autograd.grad(attend(qkv, 2).square().sum(), qkv, create_graph=True)
        torch.autograd.grad(g.sum(), qkv)
    with second_order():
        g, = torch.autograd.grad(attend(qkv, 2).square().sum(), qkv, create_graph=True)
    hg, = torch.autograd.grad(g.sum(), qkv)
    assert torch.isfinite(hg).all()
