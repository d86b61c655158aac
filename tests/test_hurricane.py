"""HURRICANE: layer-wise spaces, latency LUTs (measured, cached, fitted), candidate selection, the strategy."""
from __future__ import annotations

import json
import random
import zlib

import numpy as np
import pytest
import torch

from nasforge import api
from nasforge.errors import UserError
from nasforge.hardware import lut as lutmod
from nasforge.hardware.devices import LOCAL_DEVICES, LocalDevice
from nasforge.hardware.lut import CorruptCache, LatencyCache, build_local_lut, entry_key
from nasforge.hardware.pareto import pareto_front
from nasforge.errors import ConfigError
from nasforge.hardware.lut import LayerLatencyTable
from nasforge.hardware.selection import (
    budget_bounds, default_budget, dominated_pairs, jaccard, layer_flops, select_candidates,
)
from nasforge.hardware.tablefit import fit_layer_table
from nasforge.ops.mobile import FBNET_OP_NAMES, MOBILE_OPS
from nasforge.spaces.fbnet import FBNetSpace
from nasforge.spaces.mobile import MobileSpace
from nasforge.engine.base import SearchContext
from nasforge.strategies.hurricane import Hurricane

TINY = {"widths": [8, 8, 16, 16], "strides": [1, 2, 1, 2], "stem": 8, "head": 16}


def fake_measure(module, shape, device, **kw):
    """A deterministic stand-in for timing: ms from the op's parameter count and shape (no clock)."""
    n = sum(p.numel() for p in module.parameters())
    h = zlib.crc32(f"{type(module).__name__}{n}{tuple(shape)}{device.name}".encode()) % 1000
    return {"ms": 0.01 + n * 1e-5 + h * 1e-6, "iqr_ms": 0.0, "min_ms": 0.01}


@pytest.fixture
def fake_cache(tmp_path):
    """A LUT cache file for the tiny mobile space on local-cpu-1t, filled by fake_measure."""
    path = tmp_path / "lut.json"
    space = MobileSpace(**TINY)
    cache = LatencyCache(path, "local-cpu-1t")
    build_local_lut(space, "local-cpu-1t", cache, measure_fn=fake_measure)
    # a fixed stand-in for the end-to-end calibration (whole networks 1.5x their summed ops), so searches on
    # this cache constrain deterministic numbers instead of measuring networks (hardware.cost calibrates
    # a local LUT that has no calibration)
    from nasforge.hardware.cost import CALIBRATION_NETWORKS
    from nasforge.hardware.lut import space_key

    cache.data["calibrations"][space_key(space)] = {"a": 1.5, "b": 0.0, "n": CALIBRATION_NETWORKS}
    cache.save()
    return path


# ---------------------------------------------------------------------------------------------------------
# spaces
# ---------------------------------------------------------------------------------------------------------
def test_mobile_pool_has_32_candidates_and_skip_only_where_identity():
    assert len(MOBILE_OPS) == 32
    fams = [p["family"] for p in MOBILE_OPS.values()]
    assert fams.count("mbconv") == 24 and fams.count("shuffle") == 6 and fams.count("xception") == 2
    space = MobileSpace()
    for spec, choices in zip(space.layer_specs(), space.layer_choices()):
        assert ("skip" in choices) == (spec.stride == 1 and spec.C_in == spec.C_out)
        assert len(choices) in (32, 33)
    rng = random.Random(0)
    x = torch.randn(2, 1, 28, 28)
    for op in space.pool():  # every candidate builds and runs in every layer that allows it
        arch = [op if op in c else c[0] for c in space.layer_choices()]
        assert space.build(arch)(x).shape == (2, 10)
    with pytest.raises(UserError, match="does not fit"):
        space.validate(["skip"] * 8)  # skip at the stride-2 layers
    with pytest.raises(UserError, match="unknown 'mobile' op"):
        space.validate(["k3_e6"] * 8)  # an fbnet op: an architecture of another space
    assert space.validate(space.mutate(space.sample(rng), rng))


def test_fbnet_space_matches_the_help_encoding():
    space = FBNetSpace()
    assert space.num_layers == 22 and space.pool() == list(FBNET_OP_NAMES)
    specs = space.layer_specs()
    assert [s.C_out for s in specs][:6] == [16, 24, 24, 24, 24, 32] and specs[-1].C_out == 352
    assert sum(s.stride == 2 for s in specs) == 4  # + the stem: 224 -> 7
    arch = space.validate("k5_e6 skip k3_e1_g2 skip k5_e1 skip skip skip k5_e6 k5_e1 k3_e1_g2 k5_e1 k5_e6 k3_e6 "
                          "k3_e3 k5_e6 k3_e6 k3_e3 k5_e1 k3_e3 k5_e1 k5_e1_g2")
    assert space.encode(arch) == [7, 8, 1, 8, 4, 8, 8, 8, 7, 4, 1, 4, 7, 3, 2, 7, 3, 2, 4, 2, 4, 5]  # row 0 of HELP
    assert space.validate(space.encode(arch)) == arch
    small = FBNetSpace(width=0.25, stem_stride=1)
    assert small.build(arch)(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def test_fbnet_encoding_matches_every_row_of_the_help_table(tables_dir):
    from nasforge.tables.latency import LatencyTable
    from nasforge.tables.files import read_csv_rows

    space = FBNetSpace()
    header, rows = read_csv_rows(tables_dir / "fbnet" / "fbnet_device_latency_ms.csv")
    table = LatencyTable.load(tables_dir, space="fbnet")
    assert len(rows) == 5000
    for i, row in enumerate(rows):
        names = row[2].split()
        assert space.encode(names) == [int(x) for x in row[1].split()]
        assert space.validate([int(x) for x in row[1].split()]) == names
        assert list(table.arch_of(i)) == names


def test_single_path_supernet_step_touches_only_sampled_ops():
    space = MobileSpace(**TINY)
    cands = [c[:3] for c in space.layer_choices()]
    net = space.supernet(candidates=cands)
    path = {"layers": torch.tensor([0, 1, 2, 1])}
    net.set_path(path)
    torch.nn.functional.cross_entropy(net(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3])).backward()
    for layer, (mixed, k) in enumerate(zip(net.mixed, path["layers"].tolist())):
        for j, op in enumerate(mixed.ops):
            grads = [p.grad for p in op.parameters()]
            if j == k:
                assert all(g is not None for g in grads), (layer, j)
            else:
                assert all(g is None for g in grads), (layer, j)
    assert net.path_to_arch(path) == [c[i] for c, i in zip(cands, [0, 1, 2, 1])]
    net.set_path(None)
    with pytest.raises(RuntimeError, match="path"):
        net(torch.randn(1, 1, 28, 28))


# ---------------------------------------------------------------------------------------------------------
# latency tables
# ---------------------------------------------------------------------------------------------------------
def test_lut_lookup_equals_the_sum_it_claims(fake_cache):
    space = MobileSpace(**TINY)
    lut = build_local_lut(space, "local-cpu-1t", LatencyCache(fake_cache, "local-cpu-1t"), measure_fn=fake_measure)
    assert lut.meta["measured_now"] == 0  # all from the cache
    dev = LOCAL_DEVICES["local-cpu-1t"]
    entries = json.loads(fake_cache.read_text())["entries"]
    arch = space.sample(random.Random(3))
    total = 0.0
    for op, spec in zip(arch, space.layer_specs()):
        total += entries[entry_key(dev, "op", op, (spec.C_in, spec.resolution, spec.resolution), spec.C_out,
                                   spec.stride)]["ms"]
        assert lut.layer_latency(space.layer_specs().index(spec), op) > 0
    assert lut.predict(arch) == pytest.approx(lut.fixed + total, rel=1e-12)
    assert lut.fixed > 0
    lo, hi = lut.bounds()
    assert lo <= lut.predict(arch) <= hi
    lut.calibration = {"a": 2.0, "b": 1.0}
    assert lut.calibrated(arch) == pytest.approx(2 * lut.predict(arch) + 1)


def test_real_timing_of_one_op_is_positive_and_median_based():
    dev = LOCAL_DEVICES["local-cpu-1t"]
    res = lutmod.measure(torch.nn.Conv2d(4, 4, 3, padding=1), (4, 8, 8), dev, warmup=1, repeats=3, number=2)
    assert res["ms"] > 0 and res["min_ms"] <= res["ms"]
    ort = lutmod.measure(torch.nn.Conv2d(4, 4, 3, padding=1), (4, 8, 8), LOCAL_DEVICES["local-ort-1t"], warmup=1,
                         repeats=3, number=2)
    assert ort["ms"] > 0


def test_cache_keys_change_with_threads_batch_and_library_version(monkeypatch):
    base = LocalDevice("d", "torch", 1, 1)
    k = entry_key(base, "op", "mb_k3_e3", (8, 14, 14), 8, 1)
    assert k != entry_key(LocalDevice("d", "torch", 2, 1), "op", "mb_k3_e3", (8, 14, 14), 8, 1)
    assert k != entry_key(LocalDevice("d", "torch", 1, 32), "op", "mb_k3_e3", (8, 14, 14), 8, 1)
    assert k != entry_key(LocalDevice("d", "torch", 1, 1, True), "op", "mb_k3_e3", (8, 14, 14), 8, 1)
    assert k != entry_key(base, "op", "mb_k3_e3", (8, 7, 7), 8, 1)
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert k != entry_key(base, "op", "mb_k3_e3", (8, 14, 14), 8, 1)


def test_corrupt_cache_is_rebuilt_not_trusted(tmp_path, fake_cache, capsys):
    data = json.loads(fake_cache.read_text())
    first = next(iter(data["entries"]))
    data["entries"][first]["ms"] = -1.0  # an impossible timing
    fake_cache.write_text(json.dumps(data))
    with pytest.raises(CorruptCache, match="invalid entry"):
        LatencyCache(fake_cache, "local-cpu-1t", strict=True)
    c = LatencyCache(fake_cache, "local-cpu-1t")
    assert c.rebuilt_from_corrupt and len(c) == 0
    assert (tmp_path / "lut.json.corrupt").exists() and not fake_cache.exists()
    assert "rebuilding" in capsys.readouterr().err
    fake_cache.write_text("{not json")
    assert LatencyCache(fake_cache, "local-cpu-1t").rebuilt_from_corrupt


def test_fitted_table_reproduces_a_synthetic_additive_device_exactly():
    rng = np.random.default_rng(0)
    true = rng.uniform(0.1, 3.0, size=(22, 9))
    archs = rng.integers(0, 9, size=(1500, 22))
    lat = 5.0 + true[np.arange(22), archs].sum(1)  # a constant (stem + head) plus per-layer costs
    table, report = fit_layer_table(archs, lat, FBNET_OP_NAMES, "synthetic", n_fit=1000, seed=1)
    assert report["n_heldout"] == 500
    assert report["heldout_within_10pct"] == 1.0 and report["heldout_median_abs_pct_error"] < 1e-8
    for a, y in zip(archs[:50], lat[:50]):
        assert table.predict([FBNET_OP_NAMES[i] for i in a]) == pytest.approx(y, rel=1e-9)
    # differences between ops of a layer are identifiable, and recovered
    assert table.entries[3]["k5_e6"] - table.entries[3]["skip"] == pytest.approx(true[3, 7] - true[3, 8], abs=1e-8)
    noisy = lat * rng.uniform(0.7, 1.3, size=len(lat))  # a non-additive device is reported as such
    assert fit_layer_table(archs, noisy, FBNET_OP_NAMES, "noisy", n_fit=1000)[1]["heldout_within_10pct"] < 0.6


def test_candidate_selection_keeps_at_most_k_nondominated_ops_and_the_fastest(fake_cache):
    space = MobileSpace(**TINY)
    lut = build_local_lut(space, "local-cpu-1t", LatencyCache(fake_cache, "local-cpu-1t"), measure_fn=fake_measure)
    flops = layer_flops(space)
    sel = select_candidates(space, lut, k=4, flops=flops)
    assert all(1 <= len(c) <= 4 for c in sel["candidates"])
    assert dominated_pairs(sel["candidates"], lut, flops) == []
    for i, c in enumerate(sel["candidates"]):  # the layer's fastest op is always kept: any budget stays reachable
        assert min(lut.entries[i][o] for o in c) == min(lut.entries[i].values())
    assert lut.bounds(sel["candidates"])[0] == pytest.approx(lut.bounds()[0])
    assert jaccard(sel["candidates"], sel["candidates"]) == [1.0] * 4
    with pytest.raises(ConfigError, match="top_k"):
        select_candidates(space, lut, k=0, flops=flops)


def _overhead_lut(space, flops):
    """A device like a 1-thread CPU at batch 1: per-call overhead dominates, h-swish twins 40 % and SE twins
    35 % slower than their base op (FLOPs equal / +1-2 %): the case where FLOPs/latency kept dominated twins."""
    entries = []
    for i, names in enumerate(space.layer_choices()):
        row = {}
        for o in names:
            base = 0.5 + 1e-7 * flops[i][o]
            row[o] = base * (1.4 if o.endswith("_hs") else 1.0) * (1.35 if "_se" in o else 1.0)
        entries.append(row)
    return LayerLatencyTable("synthetic-cpu", entries, 0.1)


def test_no_kept_candidate_is_dominated_by_another_kept_candidate():
    """Issue 21 fix 2a: FLOPs/latency ranked the heaviest ops first and kept k7_e6 with its h-swish and SE twins,
    which have (almost) the same FLOPs and are much slower."""
    space = MobileSpace(**TINY)
    flops = layer_flops(space)
    lut = _overhead_lut(space, flops)
    sel = select_candidates(space, lut, k=4, flops=flops)
    assert dominated_pairs(sel["candidates"], lut, flops) == []
    for i, c in enumerate(sel["candidates"]):
        for a in c:
            for b in c:  # a kept op slower than another kept op has > 1/(1 - 3 %) times its FLOPs
                if lut.entries[i][a] > lut.entries[i][b]:
                    assert flops[i][a] > flops[i][b] / 0.97
        assert not any(o.endswith("_hs") for o in c)  # never worth it here: same FLOPs, 40 % slower


def test_selection_uses_only_what_a_whole_network_fit_determines():
    """Issue 21 fix 2b: a per-(layer, op) table fitted from end-to-end latencies fixes only within-layer
    differences; a per-layer offset changes no prediction, and must change no selected set."""
    rng = np.random.default_rng(3)
    L, k = 22, len(FBNET_OP_NAMES)
    true = rng.uniform(0.05, 2.0, size=(L, k)) * rng.uniform(0.2, 5.0, size=(L, 1))
    archs = rng.integers(0, k, size=(1200, L))
    lat = true[np.arange(L), archs].sum(axis=1)
    table, _ = fit_layer_table(archs, lat, FBNET_OP_NAMES, "synthetic", n_fit=1000, seed=0)
    flops = [{o: int(f) for o, f in zip(FBNET_OP_NAMES, rng.integers(1_000, 5_000_000, size=k))} for _ in range(L)]

    class Space:  # the fbnet layer choices, without building a network
        def layer_choices(self):
            return [list(FBNET_OP_NAMES)] * L

    c = rng.normal(0.0, 1.5, size=L)
    c -= c.mean()  # zero sum: the same predictions
    shifted = LayerLatencyTable("shifted", [{o: v + c[i] for o, v in row.items()} for i, row in enumerate(table.entries)],
                                table.fixed)
    arch = [FBNET_OP_NAMES[i] for i in archs[0]]
    assert shifted.predict(arch) == pytest.approx(table.predict(arch), abs=1e-9)
    for kk in (1, 3, 4):
        a = select_candidates(Space(), table, k=kk, flops=flops)["candidates"]
        b = select_candidates(Space(), shifted, k=kk, flops=flops)["candidates"]
        assert a == b


def test_default_budget_comes_from_the_space_searched_in_the_constraints_units(fake_cache):
    """Issue 21 fixes 2c and 2f: 0.6 x the slowest network of the whole space never binds on a selected space;
    the budget and the latencies it is compared with are in one unit (raw or calibrated)."""
    space = MobileSpace(**TINY)
    lut = build_local_lut(space, "local-cpu-1t", LatencyCache(fake_cache, "local-cpu-1t"), measure_fn=fake_measure)
    cands = select_candidates(space, lut, k=2)["candidates"]
    T = default_budget(lut, cands, 0.6)
    lo, hi = lut.bounds(cands)
    assert T == pytest.approx(lo + 0.6 * (hi - lo)) and T < lut.bounds()[0] + 0.6 * (lut.bounds()[1] - lut.bounds()[0])
    lut.calibration = {"a": 2.0, "b": 1.0}
    Tc = default_budget(lut, cands, 0.6, "calibrated")
    assert Tc == pytest.approx(2.0 * (lo + 0.6 * (hi - lo)) + 1.0)
    assert budget_bounds(lut, cands, "calibrated")[0] == pytest.approx(2.0 * lut.bounds(cands)[0] + 1.0)
    assert default_budget(lut, cands, 0.6, "raw") == pytest.approx(T)
    with pytest.raises(ConfigError, match="latency_metric"):
        budget_bounds(lut, cands, "ms")


def test_default_budget_binds_in_a_search(tmp_path, fake_cache):
    res = api.search(_cfg(fake_cache, top_k=3), run_root=tmp_path)
    m = res["search"]["metrics"]
    run = tmp_path / res["run_dir"].split("/")[-1]
    lut = LayerLatencyTable.from_dict(json.loads((run / "lut_local-cpu-1t.json").read_text()))
    lo, hi = lut.bounds(m["candidates"])
    assert m["budget_ms"] == pytest.approx(lo + 0.6 * (hi - lo))
    assert lo <= m["budget_ms"] < hi  # feasible, and some network of the searched space is over it


@pytest.mark.parametrize("frac", [0.05, 0.6, 1.0])
def test_default_budget_is_always_feasible(fake_cache, frac):
    """A budget of frac x the slowest network fell below the fastest one on a real LUT (2.04 < 2.25 ms): the
    search then had no feasible network. Between the fastest and the slowest it always has one."""
    space = MobileSpace(**TINY)
    lut = build_local_lut(space, "local-cpu-1t", LatencyCache(fake_cache, "local-cpu-1t"), measure_fn=fake_measure)
    cands = select_candidates(space, lut, k=2)["candidates"]
    lut.fixed += 100.0  # a large fixed cost (stem, head, framework overhead), as on the measured device
    lo, hi = lut.bounds(cands)
    assert frac * hi < lo or frac == 1.0  # the previous rule's budget: below every network
    assert lo <= default_budget(lut, cands, frac) <= hi


def test_pareto_front():
    pts = [{"accuracy": a, "latency_ms": l} for a, l in [(0.5, 1), (0.6, 2), (0.55, 3), (0.7, 4), (0.4, 0.5)]]
    assert pareto_front(pts) == [4, 0, 1, 3]


# ---------------------------------------------------------------------------------------------------------
# the strategy
# ---------------------------------------------------------------------------------------------------------
def _cfg(cache, **hp):
    return {"space": "mobile", "method": "hurricane", "dataset": "synthetic", "subset": 256, "batch_size": 32,
            "budget": {"epochs": 2}, "space_options": dict(TINY),
            "hparams": {"population": 4, "sample_size": 2, "evaluations": 6, "bn_batches": 2, "eval_batches": 2,
                        "lut_cache": str(cache), **hp}}


def test_evolution_never_evaluates_a_candidate_over_the_constraint(tmp_path, fake_cache):
    res = api.search(_cfg(fake_cache, latency_frac=0.45, top_k=6), run_root=tmp_path)
    m = res["search"]["metrics"]
    run = tmp_path / res["run_dir"].split("/")[-1]
    cands = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(l).get("event") == "candidate"]
    assert len(cands) == m["evaluated"] and 6 < m["evaluated"] <= 12  # at most 6 per stage
    assert all(c["latency_ms"] <= m["budget_ms"] for c in cands)
    assert m["evaluated_over_budget"] == 0 and m["violations_rejected"] > 0
    assert m["latency_ms"] <= m["budget_ms"]
    pareto = json.loads((run / "pareto_local-cpu-1t.json").read_text())
    assert len(pareto["points"]) == m["evaluated"] and pareto["front"] and (run / "pareto_local-cpu-1t.png").exists()
    sel = json.loads((run / "candidates_local-cpu-1t.json").read_text())
    assert sel["candidates"] == m["candidates"] and all(1 <= len(c) <= 6 for c in sel["candidates"])
    assert [s["searched_layers"] for s in m["stages"]] == [[2, 3], [0, 1]]  # late layers first
    assert all(res["arch"][i] == m["stages"][0]["best_arch"][i] for i in (2, 3))  # stage 2 kept stage 1's choice


@pytest.mark.parametrize("crash_at", [1, 3])  # after supernet epoch 1; inside stage 1's evolution
def test_hurricane_resumes_exactly(tmp_path, fake_cache, crash, same_supernet, crash_at):
    cfg = _cfg(fake_cache)
    ref = api.search(cfg, run_root=tmp_path / "a")
    with crash(SearchContext, "checkpoint", at=crash_at) as died, pytest.raises(died):
        api.search(cfg, run_root=tmp_path / "b", run_name="r")
    resumed = api.search(resume=tmp_path / "b" / "r")
    assert resumed["arch"] == ref["arch"]
    ck_ref, ck = same_supernet(ref["run_dir"], tmp_path / "b" / "r")
    assert ck["strategy"]["evaluated"] == ck_ref["strategy"]["evaluated"] and ck_ref["strategy"]["evaluated"]
    keep = ("event", "phase", "stage", "epoch", "arch", "fitness", "latency_ms", "train_loss", "seq")
    lines = lambda p: [{k: r.get(k) for k in keep} for r in map(json.loads, p.read_text().splitlines())]
    assert lines(tmp_path / "b" / "r" / "metrics.jsonl") == lines(tmp_path / "a" / ref["run_dir"].split("/")[-1] /
                                                                   "metrics.jsonl")


def test_table_mode_on_nb201_is_exact_and_constrained(tmp_path, tables_dir):
    cfg = {"space": "nb201", "method": "hurricane", "estimator": "table", "tables": str(tables_dir),
           "budget": {"trials": 60}, "hparams": {"target": "pixel3", "latency_frac": 0.3}}
    res = api.search(cfg, run_root=tmp_path)
    m = res["search"]["metrics"]
    from nasforge.tables.latency import LatencyTable

    lat = LatencyTable.load(tables_dir, space="nb201")
    col = lat.column("pixel3")
    assert m["budget_ms"] == pytest.approx(col.min() + 0.3 * (col.max() - col.min()))
    assert lat.latency(res["arch"], "pixel3") <= m["budget_ms"]
    assert m["evaluated_over_budget"] == 0 and m["violations_rejected"] > 0 and m["trials"] == 60
    again = api.search(cfg, run_root=tmp_path / "again")
    assert again["arch"] == res["arch"]


def space_opts(options: dict) -> list[str]:
    """`--space-opt key=<JSON value>` flags for a dict of space options."""
    return [flag for k, v in options.items() for flag in ("--space-opt", f"{k}={json.dumps(v)}")]


def test_bad_inputs_one_line_exit_2_before_a_run_dir(tmp_path, fake_cache, run_cli):
    base = ["search", "--method", "hurricane", "--space", "mobile", "--dataset", "synthetic", "--subset", "64",
            "--epochs", "2", "--out", str(tmp_path / "runs"), "--quiet", *space_opts(TINY)]
    cases = [
        (["--set", "target=nosuch"], "hyperparameter target must be one of local-cpu-1t, "),
        (["--set", f"lut_cache={fake_cache}", "--set", "latency_ms=0.001"], "below the fastest possible"),
        (["--set", "target=pixel3"], "not 'mobile'"),
        (["--set", "order=sideways"], "order must be one of late_first, early_first, joint; got 'sideways'"),
    ]
    for extra, msg in cases:
        code, _, err = run_cli(*base, *extra)
        err = err.strip()
        assert code == 2 and msg in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()
    # an architecture of another space, and a corrupt cache, in `nasforge latency`
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"space": "fbnet", "arch": ["skip"] * 22}))
    code, _, err = run_cli("latency", "predict", str(arch), "--device", "local-cpu-1t", "--space", "mobile")
    assert code == 2 and "not 'mobile'" in err
    arch.write_text(json.dumps({"space": "mobile", "arch": ["k3_e6"] * 8}))
    code, _, err = run_cli("latency", "predict", str(arch), "--device", "local-cpu-1t")
    assert code == 2 and "unknown 'mobile' op" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code, _, err = run_cli("latency", "show", "--device", "local-cpu-1t", "--cache", str(bad))
    err = err.strip()
    assert code == 2 and "not valid JSON" in err and len(err.splitlines()) == 1


def test_latency_cli_show_and_predict_from_a_cache(tmp_path, fake_cache, cli_ok):
    shown = json.loads(cli_ok("latency", "show", "--device", "local-cpu-1t", "--cache", str(fake_cache), "--json",
                              *space_opts(TINY)))
    assert len(shown["layers"]) == 4 and shown["fixed_ms"] > 0
    space = MobileSpace(**TINY)
    arch = space.sample(random.Random(1))
    f = tmp_path / "arch.json"
    f.write_text(json.dumps({"space": "mobile", "space_config": space.config, "arch": arch}))
    got = json.loads(cli_ok("latency", "predict", str(f), "--device", "local-cpu-1t", "--cache", str(fake_cache)))
    expect = shown["fixed_ms"] + sum(layer["ms"][op] for layer, op in zip(shown["layers"], arch))
    assert got["lut_raw_ms"] == pytest.approx(expect)


def test_timing_options_with_a_table_device_are_refused_not_ignored(tmp_path, run_cli):
    """A table device (HELP's pixel3) times nothing: `--measure` on an NB201 cell returned the table value
    without a word, and --repeats/--warmup/--number/--calibrate/--cache were dropped; now one line, exit 2,
    before any table is read."""
    cell = tmp_path / "cell.json"
    cell.write_text(json.dumps({"space": "nb201", "arch": "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+"
                                                         "|skip_connect~0|none~1|avg_pool_3x3~2|"}))
    net = tmp_path / "fbnet.json"
    net.write_text(json.dumps({"space": "fbnet", "arch": ["skip"] * 22}))
    cases = [
        (["predict", str(cell), "--measure"], "--measure: only for networks timed here"),
        (["predict", str(net), "--repeats", "3"], "--repeats: only for networks timed here"),
        (["build", "--space", "fbnet", "--calibrate", "5"], "--calibrate: only for networks timed here"),
        (["build", "--space", "fbnet", "--warmup", "1", "--cache", str(tmp_path / "c.json")], "--warmup, --cache:"),
    ]
    for args, msg in cases:
        code, _, err = run_cli("latency", *args, "--device", "pixel3", "--tables", str(tmp_path / "none"))
        err = err.strip()
        assert code == 2 and msg in err and "'pixel3' is a table device" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "c.json").exists()


def test_hparam_validation():
    with pytest.raises(UserError, match="split"):
        Hurricane(split=1.5)
    with pytest.raises(UserError, match="stage_epochs"):
        Hurricane(stage_epochs=[3])
    with pytest.raises(UserError, match="latency_frac"):
        Hurricane(latency_frac=0)


def test_a_budget_at_the_fastest_network_still_finishes(tmp_path, fake_cache):
    """Only the fastest network fits: each stage scores its (feasible) starting point instead of failing."""
    space = MobileSpace(**TINY)
    lut = build_local_lut(space, "local-cpu-1t", LatencyCache(fake_cache, "local-cpu-1t"), measure_fn=fake_measure)
    lo, _ = lut.calibrated_table().bounds()  # the default latency metric: calibrated
    res = api.search({**_cfg(fake_cache, latency_ms=lo * 1.000001), "budget": {"epochs": 2}}, run_root=tmp_path)
    m = res["search"]["metrics"]
    assert m["evaluated"] == 2 and m["evaluated_over_budget"] == 0  # one per stage
    assert res["arch"] == [min(e, key=e.get) for e in lut.entries]


def test_calibration_never_predicts_a_non_positive_latency(tmp_path, monkeypatch):
    """A line fitted to random networks can cross zero below them: on FBNet x ORT (issue 21's headline) the
    calibrated LUT predicted -0.006 ms for a net of skips. The fit falls back to the ratio fit then, and a
    cached calibration that does so is refitted."""
    from nasforge.hardware import lut as lutmod
    from nasforge.hardware.cost import latency_model
    from nasforge.hardware.lut import (LatencyCache, LayerLatencyTable, build_local_lut, calibration_keeps_positive,
                                       fit_calibration)
    from nasforge.spaces.layerwise import LayerwiseNetwork
    from nasforge.spaces.mobile import MobileSpace

    # measured = 2 raw - 15 over raw 10..12: the line predicts -5 ms at raw 5
    assert fit_calibration([10, 11, 12], [5, 7, 9]) == pytest.approx({"a": 2.0, "b": -15.0})
    cal = fit_calibration([10, 11, 12], [5, 7, 9], fastest_raw=5.0)
    assert cal["b"] == 0.0 and cal["a"] > 0 and cal["fit"] == "ratio"
    assert fit_calibration([10, 11, 12], [5, 7, 9], fastest_raw=8.0)["b"] == pytest.approx(-15.0)  # 1 ms: kept
    t = LayerLatencyTable("local-cpu-1t", [{"x": 1.0, "y": 4.0}, {"x": 1.0, "y": 4.0}], 0.5, None)
    assert not calibration_keeps_positive(t, {"a": 2.0, "b": -6.0}) and calibration_keeps_positive(t, {"a": 2.0, "b": -4.0})

    space = MobileSpace(**TINY)
    cache_path = tmp_path / "lut.json"
    raw = build_local_lut(space, "local-cpu-1t", LatencyCache(cache_path, "local-cpu-1t"), measure_fn=fake_measure)
    lo, hi = raw.bounds()

    def on_device(module, shape, dev, **kw):  # whole networks: a steep line with a large negative intercept
        if isinstance(module, LayerwiseNetwork):
            return {"ms": 3.0 * raw.predict(module.arch) - 2.9 * lo - 0.1 * (hi - lo) - 1e-3, "iqr_ms": 0.0,
                    "min_ms": 0.0}
        return fake_measure(module, shape, dev)

    monkeypatch.setattr(lutmod, "measure", on_device)
    # a cache written before the check: a calibration that predicts <= 0 ms for the fastest network
    cache = LatencyCache(cache_path, "local-cpu-1t")
    cache.data["calibrations"][lutmod.space_key(space)] = {"a": 3.0, "b": -3.0 * lo - 1.0, "n": 10}
    cache.save()
    model = latency_model("local-cpu-1t", space, cache_path=cache_path, calibration_networks=10)
    fastest = [min(e, key=e.get) for e in raw.entries]
    assert model.predict(fastest) > 0
    assert model.applied["b"] != -3.0 * lo - 1.0  # refitted, not the cached one
    rng = __import__("random").Random(0)
    assert all(model.predict([rng.choice(list(e)) for e in raw.entries]) > 0 for _ in range(200))
