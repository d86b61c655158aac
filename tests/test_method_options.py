"""The options of the BATS, HURRICANE and ViTAS strategies and of the bats, mobile, fbnet and vit spaces are
declared (nasforge.options.Opt: types, ranges, choices, null), so a bad value of each kind is one line, exit 2,
before any data loads and before a run directory exists; `nasforge list NAME` shows the declarations."""
from __future__ import annotations

import pytest

from nasforge.cli import main

BATS = ["search", "--space", "bats", "--method", "bats", "--epochs", "1"]
HURRICANE = ["search", "--space", "mobile", "--method", "hurricane", "--epochs", "2"]
FBNET = ["search", "--space", "fbnet", "--method", "hurricane", "--epochs", "2"]
VITAS = ["search", "--space", "vit", "--method", "vitas", "--epochs", "1"]


def _set(*kv: str) -> list[str]:
    return [a for x in kv for a in ("--set", x)]


def _opt(*kv: str) -> list[str]:
    return [a for x in kv for a in ("--space-opt", x)]


@pytest.mark.parametrize("args,needle", [
    # -- strategy bats: range, choices, type, boolean --
    (BATS + _set("temperature=0"), "strategy 'bats' hyperparameter temperature must be a number > 0; got 0"),
    (BATS + _set("temperature_min=-1"), "temperature_min must be a number > 0; got -1"),
    (BATS + _set("search_weight_bits=8"), "search_weight_bits must be one of 32, 1; got 8"),
    (BATS + _set("kd_lambda=-0.5"), "kd_lambda must be a number >= 0; got -0.5"),
    (BATS + _set("kd_tau=abc"), "kd_tau must be a number; got 'abc'"),
    (BATS + _set("anneal=maybe"), "anneal must be true or false; got 'maybe'"),
    (BATS + _set("gap_batches=0"), "gap_batches must be an integer >= 1; got 0"),
    (BATS + _set("w_optimizer=lamb"), "w_optimizer must be one of sgd, adam; got 'lamb'"),
    # -- space bats --
    (BATS + _opt("groups=0"), "space 'bats' option groups must be an integer >= 1; got 0"),
    (BATS + _opt("C=4.5"), "space 'bats' option C must be an integer; got 4.5"),
    (BATS + _opt("C=12", "groups=5"), "groups G=5 must divide the channel count C=12"),
    (BATS + _opt("binarize_1x1=2"), "binarize_1x1 must be true or false; got 2"),
    # a supernet whose normal alphas no forward pass uses (issue 9: "a darts search with layers=2 crashes")
    (BATS + _opt("layers=2"), "space 'bats' with layers=2 has no normal cell"),
    (["search", "--space", "darts", "--method", "darts", "--epochs", "1", "--space-opt", "layers=2"],
     "strategy 'darts' learns every alpha by gradient, but space 'darts' with layers=2 has no normal cell"),
    # -- strategy hurricane --
    (HURRICANE + _set("split=1.5"), "strategy 'hurricane' hyperparameter split must be a number in (0, 1); got 1.5"),
    (HURRICANE + _set("crossover_prob=2"), "crossover_prob must be a number in [0, 1]; got 2"),
    (HURRICANE + _set("latency_frac=0"), "latency_frac must be a number in (0, 1]; got 0"),
    (HURRICANE + _set("latency_ms=-3"), "latency_ms must be a number > 0; got -3"),
    (HURRICANE + _set("population=1"), "population must be an integer >= 2; got 1"),
    (HURRICANE + _set("top_k=2.5"), "top_k must be an integer; got 2.5"),
    (HURRICANE + _set("order=sideways"), "order must be one of late_first, early_first, joint; got 'sideways'"),
    (HURRICANE + _set("latency_metric=fast"), "latency_metric must be one of raw, calibrated; got 'fast'"),
    (HURRICANE + _set("target=nosuch"), "hyperparameter target must be one of local-cpu-1t, local-cpu-2t-b32"),
    (HURRICANE + _set("stage_epochs=[0, 1]"), "stage_epochs[0] must be an integer >= 1; got 0"),
    (HURRICANE + _set("stage_epochs=[3]"), "stage_epochs must be a list of 2 integers >= 1 for order late_first"),
    (HURRICANE + _set("population=4", "sample_size=5"), "sample_size (5) cannot exceed population (4)"),
    (["search", "--space", "mobile", "--method", "hurricane", "--epochs", "1"],
     "two-stage hurricane needs at least 2 epochs (or set stage_epochs)"),
    # -- space mobile --
    (HURRICANE + _opt("stem=0"), "space 'mobile' option stem must be an integer >= 1; got 0"),
    (HURRICANE + _opt("strides=[1, 3]", "widths=[8, 8]"), "space 'mobile' option strides[1] must be one of 1, 2; "
                                                          "got 3"),
    (HURRICANE + _opt("widths=[8, 0]", "strides=[1, 1]"), "widths[1] must be an integer >= 1; got 0"),
    (HURRICANE + _opt("widths=[]", "strides=[]"), "widths must list at least one searchable layer"),
    (HURRICANE + _opt("skip=perhaps"), "skip must be true or false; got 'perhaps'"),
    # -- space fbnet --
    (FBNET + _opt("width=5"), "space 'fbnet' option width must be a number in (0, 4]; got 5"),
    (FBNET + _opt("head=0"), "space 'fbnet' option head must be an integer >= 1; got 0"),
    # -- strategy vitas --
    (VITAS + _set("budget=0"), "strategy 'vitas' hyperparameter budget must be a number in (0, 1]; got 0"),
    (VITAS + _set("p_identity=1"), "p_identity must be a number in [0, 1); got 1"),
    (VITAS + _set("calib_step=1"), "calib_step must be a number in (0, 1); got 1"),
    (VITAS + _set("label_smoothing=1"), "label_smoothing must be a number in [0, 1); got 1"),
    (VITAS + _set("flops_min=abc"), "flops_min must be a number; got 'abc'"),
    (VITAS + _set("flops_max=-1"), "flops_max must be a number >= 0; got -1"),
    (VITAS + _set("selection=best"), "selection must be one of evolution, random; got 'best'"),
    (VITAS + _set("sampling=greedy"), "sampling must be one of calibrated, uniform; got 'greedy'"),
    (VITAS + _set("eval_images=0"), "eval_images must be an integer >= 1; got 0"),
    (VITAS + _set("hflip=2"), "hflip must be true or false; got 2"),
    # -- space vit --
    (VITAS + _opt("share=diagonal"), "space 'vit' option share must be one of leading, bilateral, cyclic; got "
                                     "'diagonal'"),
    (VITAS + _opt("style=deit"), "style must be one of vitas, autoformer; got 'deit'"),
    (VITAS + _opt("depth=0"), "space 'vit' option depth must be an integer >= 1; got 0"),
    (VITAS + _opt("embed_ratios=[0.5, 1.5]"), "embed_ratios[1] must be a number in (0, 1]; got 1.5"),
    (VITAS + _opt("patch_sizes=[0]"), "patch_sizes[0] must be an integer >= 1; got 0"),
    (VITAS + _opt("heads=[]"), "space 'vit' option heads must be a non-empty list"),
    (VITAS + _opt("private_qk=maybe"), "private_qk must be true or false; got 'maybe'"),
])
def test_bad_method_options_are_one_line_before_a_run_dir(capsys, tmp_path, args, needle):
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as e:
        main([*args, "--dataset", "synthetic", "--quiet", "--out", str(runs)])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not runs.exists()


@pytest.mark.parametrize("name,needles", [
    ("bats", ["strategy bats", "search_weight_bits one of 32, 1, default 32", "temperature a number > 0, default 0.2",
              "space bats", "groups an integer >= 1, default 4"]),
    ("hurricane", ["order one of late_first, early_first, joint, default 'late_first'",
                   "split a number in (0, 1), default 0.5", "target one of local-cpu-1t",
                   "stage_epochs a list of integers >= 1 (or null), default null"]),
    ("vitas", ["budget a number in (0, 1], default 0.2", "selection one of evolution, random",
               "p_identity a number in [0, 1) (or null), default null"]),
    ("vit", ["share one of leading, bilateral, cyclic (or null), default null", "depth an integer >= 1, default 6"]),
    ("mobile", ["strides a list of integers, each one of 1, 2", "head an integer >= 1, default 128"]),
    ("fbnet", ["width a number in (0, 4], default 1.0"]),
])
def test_list_shows_the_declarations(capsys, name, needles):
    main(["list", name])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long descriptions
    for needle in needles:
        assert needle in out, (needle, out)
