"""--precision auto / --memory-format auto (issue 20): resolved per device and network kind from what the space
declares pays and whether the CPU runs bf16 natively (mocked here both ways), recorded in the run and reused by a
resume even where auto would now pick differently; channels_last that really reaches the activations with
1-channel input; bad values refused with one line; bf16 logits close to fp32."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from nasforge import accel, api
from nasforge.accel import FastPath, apply_memory_format, resolve_fast_path
from nasforge.models import BaselineCNN
from nasforge.runs.journal import TrialJournal
from nasforge.spaces.darts import DartsSpace
from nasforge.spaces.macro import MacroSpace
from nasforge.spaces.mobile import MobileSpace
from nasforge.spaces.nb201 import NB201Space
from nasforge.spaces.pnas import PNASSpace
from nasforge.spaces.vit import ViTSpace

CPU = torch.device("cpu")
CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@pytest.fixture(params=[True, False], ids=["native-bf16", "no-bf16"])
def native(request, monkeypatch):
    monkeypatch.setattr(accel, "cpu_native_bf16", lambda: request.param)
    return request.param


def _auto(declared: FastPath) -> tuple[str, str]:
    r = resolve_fast_path("auto", "auto", CPU, declared)
    return r["precision"], r["memory_format"]


@pytest.mark.parametrize("space, kind, bf16_pays, cl", [
    (NB201Space(C=4, N=1), "supernet", True, "channels_last"),
    (NB201Space(C=4, N=1), "network", True, "channels_last"),
    (DartsSpace(C=4, layers=2), "supernet", False, "channels_last"),
    (DartsSpace(C=4, layers=2), "network", False, "channels_last"),
    (MobileSpace(), "supernet", False, "channels_last"),
    (MobileSpace(), "network", False, "channels_last"),
    (ViTSpace(), "supernet", False, "contiguous"),  # the tiny default: bf16 0.98x
    (ViTSpace(embed_ratios=[0.75, 1.0], qkv_dim=256, attn_ratios=[0.25, 0.5, 1.0], mlp_dim=192,
              mlp_ratios=[0.5, 1.0]), "supernet", True, "contiguous"),  # AutoFormer widths
    (ViTSpace(mlp_dim=192), "network", False, "contiguous"),  # narrow embeddings still sampled: 0.99x
    (PNASSpace(C=4, N=1, blocks=2), "network", False, "channels_last"),  # max pools: NCHW 4.5-9x slower
    (MacroSpace(), "network", False, "contiguous"),  # undeclared: the previous path
], ids=lambda v: getattr(v, "name", str(v)))
def test_auto_resolves_from_the_space_declaration_and_the_cpu(space, kind, bf16_pays, cl, native):
    precision, fmt = _auto(space.fast_path(kind))
    assert precision == ("bf16" if bf16_pays and native else "fp32")
    assert fmt == cl


def test_fixed_models_declare_too_and_explicit_values_pass_through(native):
    assert _auto(BaselineCNN.fast_path) == ("bf16" if native else "fp32", "channels_last")
    r = resolve_fast_path("fp32", "contiguous", CPU, BaselineCNN.fast_path)
    assert (r["precision"], r["memory_format"]) == ("fp32", "contiguous")
    r = resolve_fast_path("bf16", "auto", CPU, DartsSpace.fast_paths["supernet"])  # a user's choice wins
    assert (r["precision"], r["memory_format"]) == ("bf16", "channels_last")


def test_cpu_capability_is_read_from_the_flags_when_torch_cannot_tell(monkeypatch, tmp_path):
    monkeypatch.setattr(torch._C, "_cpu", None, raising=False)
    flags = tmp_path / "cpuinfo"
    real_open = open

    def fake_open(path, *a, **k):
        return real_open(flags if path == "/proc/cpuinfo" else path, *a, **k)

    monkeypatch.setattr("builtins.open", fake_open)
    flags.write_text("flags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    assert accel.cpu_native_bf16() is True
    flags.write_text("flags\t\t: fpu sse avx2 avx512f\n")
    assert accel.cpu_native_bf16() is False


def _nhwc(t: torch.Tensor) -> bool | None:
    """Whether `t` is laid out channels-last (channels vary fastest; a channel slice of an NHWC tensor counts, as
    oneDNN reads it so); None where both layouts coincide (one channel, or 1x1 maps)."""
    if t.shape[1] == 1 or t.shape[2] * t.shape[3] == 1:
        return None
    return t.stride(1) < t.stride(3)


def _conv_inputs_channels_last(net: nn.Module, x: torch.Tensor) -> list[bool]:
    """For every conv after the first (unambiguous inputs only): whether its input is laid out channels-last."""
    seen: list[bool] = []
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)][1:]
    hooks = [c.register_forward_pre_hook(lambda m, a: seen.append(_nhwc(a[0]))) for c in convs]
    try:
        net(x)
    finally:
        for h in hooks:
            h.remove()
    return [s for s in seen if s is not None]


@pytest.mark.parametrize("make", [
    lambda: NB201Space(C=4, N=1).build(CELL), lambda: NB201Space(C=4, N=1).supernet(),
    lambda: DartsSpace(C=4, layers=2).build(DartsSpace(C=4, layers=2).sample(__import__("random").Random(0))),
    lambda: DartsSpace(C=4, layers=2).supernet(), lambda: MobileSpace().build(MobileSpace().sample(
        __import__("random").Random(0))), lambda: BaselineCNN(1, 10, width=8),
    lambda: PNASSpace(C=4, N=1, blocks=2).build(PNASSpace(C=4, N=1, blocks=2).sample(__import__("random").Random(0))),
], ids=["nb201-network", "nb201-supernet", "darts-network", "darts-supernet", "mobile-network", "baseline",
        "pnas-network"])
def test_channels_last_reaches_the_activations_with_one_channel_input(make):
    net = make().eval()
    x = torch.randn(2, 1, 28, 28)
    apply_memory_format(net, "channels_last")
    inside = _conv_inputs_channels_last(net, x)
    assert inside and all(inside), inside
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.dim() == 4)
    apply_memory_format(net, "contiguous")
    assert not any(_conv_inputs_channels_last(net, x))
    assert all(p.is_contiguous() for p in net.parameters())


def test_bf16_channels_last_logits_stay_close_to_fp32():
    torch.manual_seed(0)
    net = NB201Space(C=8, N=1).build(CELL).eval()
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        ref = net(x)
        apply_memory_format(net, "channels_last")
        same = net(x)
        with accel.Precision(CPU, "bf16").autocast():
            low = net(x).float()
    assert torch.allclose(same, ref, atol=1e-5, rtol=1e-4)  # the format changes the layout, not the values
    assert (low - ref).abs().max() <= 0.05 * ref.abs().max()  # bf16 keeps ~3 significant digits
    assert (low.argmax(1) == ref.argmax(1)).float().mean() >= 0.75
    assert all(p.dtype == torch.float32 for p in net.parameters())  # weights stay fp32


TRAIN = {"arch": "baseline", "dataset": "synthetic", "subset": 96, "test_subset": 32,
         "train": {"epochs": 2, "batch_size": 32}}


def test_the_resolved_choice_is_recorded_and_a_resume_reuses_it(tmp_path, crash, monkeypatch):
    from nasforge.training import engine

    monkeypatch.setattr(accel, "cpu_native_bf16", lambda: True)
    ref = api.train(TRAIN, run_root=tmp_path, run_name="ref")
    assert (ref["precision"], ref["memory_format"]) == ("bf16", "channels_last")
    stored = json.load(open(f"{ref['run_dir']}/config.json"))
    assert stored["precision"] == "auto" and stored["fast_path"]["network"]["precision"] == "bf16"
    with crash(engine, "evaluate", at=2, exc=KeyboardInterrupt, before=True), pytest.raises(KeyboardInterrupt):
        api.train(TRAIN, run_root=tmp_path, run_name="cut")
    monkeypatch.setattr(accel, "cpu_native_bf16", lambda: False)  # a machine where auto would pick fp32
    assert api.train(TRAIN, run_root=tmp_path, run_name="fresh")["precision"] == "fp32"
    resumed = api.train(resume=tmp_path / "cut")
    assert resumed["precision"] == "bf16"
    assert resumed["history"] == [{**h, "images_per_s": g["images_per_s"], "epoch_s": g["epoch_s"]}
                                  for h, g in zip(ref["history"], resumed["history"])]
    a = torch.load(f"{ref['run_dir']}/model.pt")["model"]
    b = torch.load(tmp_path / "cut" / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a re-run from the recorded config (a new run) takes the recorded choice too
    rerun = api.train({k: v for k, v in stored.items() if k not in ("command", "arch_from")},
                      run_root=tmp_path, run_name="rerun")
    assert rerun["precision"] == "bf16" and rerun["test_accuracy"] == ref["test_accuracy"]


def test_search_records_both_network_kinds_and_retraining_uses_the_network_choice(tmp_path, monkeypatch):
    monkeypatch.setattr(accel, "cpu_native_bf16", lambda: True)
    res = api.search({"space": "darts", "space_options": {"C": 2, "layers": 2}, "method": "random-ws",
                      "dataset": "synthetic", "subset": 64, "batch_size": 32, "budget": {"epochs": 1},
                      "hparams": {"candidates": 2, "eval_batches": 1, "rerank_batches": 1, "top_k": 1},
                      "retrain": {"epochs": 1, "batch_size": 32}, "retrain_subset": 64, "test_subset": 32},
                     run_root=tmp_path)
    fp = json.load(open(f"{res['run_dir']}/config.json"))["fast_path"]
    assert fp["supernet"]["precision"] == fp["network"]["precision"] == "fp32"  # depthwise: bf16 loses
    assert fp["supernet"]["memory_format"] == "channels_last"
    assert res["fast_path"] == fp and res["retrain"]["memory_format"] == "channels_last"


def test_compile_probe_is_skipped_in_short_runs_and_recorded(tmp_path):
    res = api.train({**TRAIN, "compile": "probe"}, run_root=tmp_path, run_name="p")
    assert res["compile"]["on"] is False and "not probed" in res["compile"]["why"]
    assert json.load(open(f"{res['run_dir']}/config.json"))["fast_path"]["network"]["compile"] == res["compile"]


@pytest.mark.parametrize("args, message", [
    (("--precision", "bf17"), "precision must be one of auto, fp32, bf16, fp16; got 'bf17'"),
    (("--memory-format", "x"), "memory_format"),
    (("--compile", "maybe"), "compile"),
])
def test_bad_values_are_refused_with_one_line(args, message, run_cli, tmp_path):
    code, _, err = run_cli("train", "--arch", "baseline", "--dataset", "synthetic", "--epochs", "1",
                           "--out", str(tmp_path), *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())
    if args[0] != "--compile":  # a train-only option
        code, _, err = run_cli("search", "--space", "nb201", "--method", "darts", "--dataset", "synthetic",
                               "--epochs", "1", "--out", str(tmp_path), *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_precision_auto_must_be_resolved_before_training():
    with pytest.raises(Exception, match="resolved"):
        accel.Precision(CPU, "auto")


def test_a_run_from_before_the_option_resumes_in_its_builders_format(tmp_path, crash):
    """Stored configs without memory_format / fast_path (older runs) resume with each network as built."""
    from nasforge.training import engine

    cfg = {**TRAIN, "arch": {"space": "darts", "space_config": {"C": 2, "layers": 2},
                             "arch": DartsSpace(C=2, layers=2).sample(__import__("random").Random(0))},
           "precision": "fp32"}
    with crash(engine, "evaluate", at=1, exc=KeyboardInterrupt, before=True), pytest.raises(KeyboardInterrupt):
        api.train(cfg, run_root=tmp_path, run_name="old")
    stored = json.load(open(tmp_path / "old" / "config.json"))
    for key in ("memory_format", "fast_path", "compile"):
        stored.pop(key)
    (tmp_path / "old" / "config.json").write_text(json.dumps(stored))
    res = api.train(resume=tmp_path / "old")
    assert res["precision"] == "fp32" and res["memory_format"] is None


@pytest.mark.parametrize("eager, compiled, compile_s, on", [
    (0.30, 0.20, 60.0, True),     # 1.5x, saves 0.1 s x 3,120 steps = 312 s > 60 s
    (0.30, 0.26, 60.0, False),    # 1.15x: under the 1.2x bar
    (0.30, 0.24, 400.0, False),   # 1.25x, but saves 187 s < 400 s of compilation
])
def test_compile_probe_decides_by_speedup_and_amortisation(eager, compiled, compile_s, on, monkeypatch, tiny_data):
    from nasforge.training import TrainConfig, compiled as probe

    monkeypatch.setattr(probe, "_time_steps", lambda *a, **k: (eager, compiled, compile_s))
    train, _ = tiny_data
    cfg = TrainConfig(epochs=195, batch_size=32)  # 512 // 32 = 16 steps per epoch: 3,120 planned steps
    out = probe.probe_compile(BaselineCNN(1, 10, width=8), train, cfg, CPU, "fp32", "contiguous")
    assert out["on"] is on and out["planned_steps"] == 3120 and "probe" in out["why"]


def test_a_search_records_the_precision_that_actually_ran(tmp_path, tables_dir, monkeypatch, cli_ok):
    """The supernet's precision is recorded only where a supernet trained: scratch trials record the network
    precision they trained in, a proxy fp32, a table lookup "n/a"; the printed summary and compare agree."""
    monkeypatch.setattr(accel, "cpu_native_bf16", lambda: True)  # auto: bf16 where a space says it pays
    monkeypatch.setattr(NB201Space, "fast_paths", {"supernet": NB201Space.fast_paths["supernet"],
                                                   "network": FastPath(False, True, "test: bf16 does not pay")})
    base = {"space": "nb201", "space_options": {"C": 4, "N": 1}, "method": "random", "budget": {"trials": 2},
            "threads": 1, "tables": str(tables_dir)}
    runs = {"scratch": {"estimator": "scratch", "dataset": "synthetic", "subset": 64,
                        "estimator_options": {"train": {"epochs": 1, "batch_size": 32}}},
            "proxy": {"estimator": "proxy", "estimator_options": {"inputs": "gaussian", "batch_size": 8}},
            "table": {"estimator": "table"}}
    got = {}
    for name, extra in runs.items():
        res = api.search({**base, **extra}, run_root=tmp_path, run_name=name)
        assert res["fast_path"]["supernet"]["precision"] == "bf16"  # what auto resolved, though no supernet ran
        got[name] = res["precision"]
    assert got == {"scratch": "fp32", "proxy": "fp32", "table": "n/a"}
    with TrialJournal(tmp_path / "scratch") as j:  # the trials trained in fp32 (a spec names only other precisions)
        assert len(j.all()) == 2 and not any("precision" in t.spec for t in j.all())
    one_shot = api.search({**base, "method": "random-ws", "budget": {"epochs": 1}, "dataset": "synthetic",
                           "subset": 64, "batch_size": 32, "tables": None,
                           "hparams": {"candidates": 2, "eval_batches": 1, "rerank_batches": 1, "top_k": 1}},
                          run_root=tmp_path, run_name="one-shot")
    assert one_shot["precision"] == "bf16"  # the supernet trained in it
    printed = json.loads(cli_ok("search", "--resume", str(tmp_path / "table")))
    assert printed["precision"] == "n/a"
    rows = {r["run"]: r["precision"] for r in api.compare([tmp_path / n for n in (*runs, "one-shot")],
                                                          out=tmp_path / "c.html")["runs"]}
    assert rows == {**got, "one-shot": "bf16"}
