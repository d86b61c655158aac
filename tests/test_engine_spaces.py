"""A one-shot method meets a space whose supernet it cannot train (issue 19): preflight refuses the pair with
one line taken from what the space declares (`SearchSpace.supernet_kind` / `supernet_hint`), exit 2, before any
data is read or a run directory exists - instead of a traceback after an epoch."""
from __future__ import annotations

import pytest


@pytest.mark.parametrize("method", ["darts", "single-darts", "manas", "manas-ls", "random-ws"])
@pytest.mark.parametrize("space", ["mobile", "fbnet"])
def test_cell_methods_refuse_single_path_spaces(method, space, run_cli, tmp_path):
    code, out, err = run_cli("search", "--method", method, "--space", space, "--epochs", "1", "--dataset",
                             "synthetic", "--subset", "64", "--out", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"strategy '{method}' trains a cell supernet" in err and "single-path" in err and "hurricane" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("method,space,kind", [("hurricane", "nb201", "cell"), ("vitas", "darts", "cell"),
                                               ("darts", "vit", "super-transformer"), ("manas", "macro", None),
                                               ("bats", "mobile", "single-path")])
def test_every_one_shot_method_names_the_supernet_it_needs(method, space, kind, run_cli, tmp_path):
    code, out, err = run_cli("search", "--method", method, "--space", space, "--epochs", "1", "--dataset",
                             "synthetic", "--subset", "64", "--out", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())
