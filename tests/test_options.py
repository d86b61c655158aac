"""Typed option declarations (nasforge.options) and the up-front checks of every input (issue 9, item 6)."""
from __future__ import annotations

import pytest

from nasforge import config as cfgmod
from nasforge import options
from nasforge.building import import_components
from nasforge.errors import ConfigError
from nasforge.options import Opt
from nasforge.registry import SPACES, STRATEGIES
from nasforge.training import TrainConfig

import_components()


# -- the mechanism --------------------------------------------------------------------------------------
DECL = {"lr": Opt(0.05, ">0"), "order": Opt(1, choices=(1, 2)), "n": 3, "flag": False, "name": "x",
        "betas": Opt((0.5, 0.9), "[0, 1)"), "K": Opt(None, ">=1", type=int), "clip": Opt(5.0, ">0", nullable=True),
        "section": {"a": Opt(0, ">=0"), "b": True}, "free": Opt({}, type=dict), "anything": None}


def test_defaults_are_plain_values():
    d = options.defaults(DECL)
    assert d == {"lr": 0.05, "order": 1, "n": 3, "flag": False, "name": "x", "betas": [0.5, 0.9], "K": None,
                 "clip": 5.0, "section": {"a": 0, "b": True}, "free": {}, "anything": None}


@pytest.mark.parametrize("given,expected", [
    ({"lr": "1e-3"}, ("lr", 1e-3)), ({"lr": 2}, ("lr", 2.0)), ({"n": "1e2"}, ("n", 100)), ({"n": 4.0}, ("n", 4)),
    ({"flag": "true"}, ("flag", True)), ({"order": "2"}, ("order", 2)), ({"K": None}, ("K", None)),
    ({"K": "7"}, ("K", 7)), ({"clip": None}, ("clip", None)), ({"betas": ["0.1", 0.2]}, ("betas", [0.1, 0.2])),
    ({"anything": [1, "a"]}, ("anything", [1, "a"])), ({"free": {"z": 1}}, ("free", {"z": 1})),
])
def test_values_are_converted(given, expected):
    out = options.resolve(DECL, given, "test")
    key, value = expected
    assert out[key] == value and type(out[key]) is type(value)


@pytest.mark.parametrize("given,needle", [
    ({"lr": "abc"}, "test option lr must be a number; got 'abc'"),
    ({"lr": 0}, "test option lr must be a number > 0; got 0"),
    ({"lr": float("nan")}, "lr must be a finite number"),
    ({"lr": True}, "lr must be a number; got true"),
    ({"n": 4.5}, "n must be an integer; got 4.5"),
    ({"n": "abc"}, "n must be an integer; got 'abc'"),
    ({"order": 3}, "order must be one of 1, 2; got 3"),
    ({"flag": "maybe"}, "flag must be true or false"),
    ({"name": 3}, "name must be a string; got 3"),
    ({"betas": [0.5]}, "betas must be a list of 2 values"),
    ({"betas": [0.5, 1.0]}, "betas[1] must be a number in [0, 1); got 1.0"),
    ({"K": 0}, "K must be an integer >= 1; got 0"),
    ({"lr": None}, "lr must be a number; got null"),
    ({"section": 5}, "section must be a mapping with keys a, b; got 5"),
    ({"section": {"bogus": 1}}, "unknown option(s) ['section.bogus'] for test; valid: section.a, section.b"),
    ({"section": {"a": -1}}, "test option section.a must be an integer >= 0; got -1"),
    ({"free": [1, 2]}, "free must be a mapping"),
    ({"typo": 1}, "unknown option(s) ['typo'] for test; valid: K, anything, betas"),
])
def test_bad_values_give_one_line(given, needle):
    with pytest.raises(ConfigError) as e:
        options.resolve(DECL, given, "test")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_describe_lists_type_range_and_default():
    rows = dict(options.describe(DECL))
    assert rows["lr"] == "a number > 0, default 0.05"
    assert rows["K"] == "an integer >= 1 (or null), default null"
    assert rows["order"] == "one of 1, 2, default 1"
    assert rows["section.a"] == "an integer >= 0, default 0"


def test_bad_declaration_is_a_programming_error():
    with pytest.raises(ValueError):
        Opt(1, "between 0 and 1")


# -- every declared option set is well-formed and its defaults pass its own checks -------------------------
@pytest.mark.parametrize("kind,name", [("strategy", n) for n in STRATEGIES.names()] +
                         [("space", n) for n in SPACES.names()])
def test_registered_defaults_pass_their_own_checks(kind, name):
    cls = (STRATEGIES if kind == "strategy" else SPACES).get(name)
    assert options.resolve(cls.defaults, options.defaults(cls.defaults), name) == options.defaults(cls.defaults)
    assert all(isinstance(text, str) and "default" in text for _, text in options.describe(cls.defaults))


def test_training_options_are_declared():
    decl = TrainConfig.declaration()
    assert decl["lr"].describe() == "a number > 0, default 0.05"
    assert TrainConfig.from_dict({"lr": "1e-3", "epochs": "2"}).lr == 1e-3
    with pytest.raises(ConfigError, match="training option grad_clip must be a number > 0"):
        TrainConfig.from_dict({"grad_clip": -1})


# -- the cases, through the real strategies, spaces and config ------------------------------------
def test_set_values_are_typed_against_strategy_defaults():
    hp = cfgmod.parse_assignments(["arch_lr=1e-3", "order=2", "w_lr=2.5E-2"])
    s = STRATEGIES.get("darts")(**hp)
    assert s.hp["arch_lr"] == 1e-3 and isinstance(s.hp["arch_lr"], float)
    assert s.hp["order"] == 2 and s.hp["w_lr"] == 0.025
    with pytest.raises(ConfigError, match="order must be one of 1, 2; got 3"):
        STRATEGIES.get("darts")(order=3)
    with pytest.raises(ConfigError, match="w_lr must be a number; got 'abc'"):
        STRATEGIES.get("darts")(w_lr="abc")


@pytest.mark.parametrize("opts,needle", [({"C": 0}, "C must be an integer >= 1; got 0"),
                                         ({"C": -1}, "C must be an integer >= 1; got -1"),
                                         ({"N": 0}, "N must be an integer >= 1; got 0"),
                                         ({"C": 4.5}, "C must be an integer; got 4.5"),
                                         ({"c": 16}, "unknown option(s) ['c'] for space 'nb201'")])
def test_space_options_are_checked(opts, needle):
    with pytest.raises(ConfigError) as e:
        SPACES.get("nb201")(**opts)
    assert needle in str(e.value)


def test_build_overrides_are_checked():
    space = SPACES.get("nb201")(C=4, N=1)
    with pytest.raises(ConfigError, match="C must be an integer >= 1; got 0"):
        space.build("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|", C=0)


@pytest.mark.parametrize("layer,needle", [
    ({"budget": 5}, "budget must be a mapping with keys clock, epochs, seconds, trials; got 5"),
    ({"hparams": [1, 2]}, "hparams must be a mapping"),
    ({"augment": {"bogus": 1}}, "unknown config key(s) ['augment.bogus']"),
    ({"subset": 0}, "subset must be an integer >= 1; got 0"),
    ({"threads": 0}, "threads must be an integer >= 1; got 0"),
    ({"seed": "x"}, "seed must be an integer; got 'x'"),
])
def test_config_shape_is_checked(layer, needle):
    with pytest.raises(ConfigError) as e:
        cfgmod.resolve(cfgmod.SEARCH_DEFAULTS, layer)
    assert needle in str(e.value)


def test_config_layers_merge_without_resetting_sections():
    cfg = cfgmod.resolve(cfgmod.SEARCH_DEFAULTS, {"budget": {"epochs": 5}}, {"budget": {"seconds": "30"}})
    assert cfg["budget"] == {"epochs": 5, "trials": None, "seconds": 30.0, "clock": "wall"}


@pytest.mark.parametrize("args,needle", [
    (["search", "--method", "darts", "--epochs", "1", "--set", "arch_lr=1e-3", "--set", "w_lr=abc"],
     "strategy 'darts' hyperparameter w_lr must be a number; got 'abc'"),
    (["search", "--method", "darts", "--epochs", "1", "--set", "order=3"], "order must be one of 1, 2; got 3"),
    (["search", "--epochs", "1", "--space-opt", "C=0"], "space 'nb201' option C must be an integer >= 1; got 0"),
    (["search", "--epochs", "1", "--space-opt", "C=4.5"], "C must be an integer; got 4.5"),
    (["search", "--epochs", "1", "--space-opt", "N=0"], "N must be an integer >= 1; got 0"),
    (["search", "--epochs", "1", "--retrain-epochs", "1", "--retrain-opt", "c=16"], "unknown option(s) ['c']"),
    (["search", "--epochs", "1", "--retrain-epochs", "0"], "epochs must be an integer >= 1; got 0"),
    (["search", "--epochs", "1", "--threads", "0"], "threads must be an integer >= 1; got 0"),
    (["search", "--epochs", "1", "--threads", "-2"], "threads must be an integer >= 1; got -2"),
])
def test_cli_rejects_bad_options_before_a_run_dir(run_cli, tmp_path, args, needle):
    runs = tmp_path / "runs"
    code, _, err = run_cli(*args, "--out", str(runs))
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("yaml_text,needle", [("budget: 5\n", "budget must be a mapping"),
                                              ("hparams: [1, 2]\n", "hparams must be a mapping"),
                                              ("augment: {bogus: 1}\n", "['augment.bogus']")])
def test_cli_rejects_misshapen_yaml(run_cli, tmp_path, yaml_text, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    code, _, err = run_cli("search", "--config", str(cfg), "--out", str(tmp_path / "runs"))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_list_shows_declared_options(cli_ok, run_cli):
    out = cli_ok("list", "darts")
    assert "strategy darts" in out and "order" in out and "one of 1, 2" in out
    assert "space darts" in out and "an integer >= 1, default 16" in out
    assert run_cli("list", "nope")[0] == 2
