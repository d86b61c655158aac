"""Shared fixtures: real benchmark tables and Fashion-MNIST when present, tiny synthetic data otherwise."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from nasforge.data.datasets import DEBIAN_FASHION_MNIST, synthetic

REPO = Path(__file__).resolve().parents[1]
# beside the checkout (as on main), or where $NASFORGE_TABLES points (a worktree elsewhere)
TABLES = Path(os.environ.get("NASFORGE_TABLES") or REPO / ".." / "shared" / "data" / "benchmarks").resolve()


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="device for the tests that take the `device` fixture (tests/test_on_device.py): "
                          "cpu (default), cuda, cuda:N, mps; benchmarks/gpu_check.py runs them with cuda")


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    """The device named by pytest's --device option; the tests that take it skip when it is not available."""
    from nasforge.accel import resolve_device
    from nasforge.errors import ConfigError

    try:
        return resolve_device(request.config.getoption("--device"))
    except ConfigError as e:
        pytest.skip(str(e))


@pytest.fixture(autouse=True)
def _threads():
    # Tiny test tensors run fastest on one thread (no OpenMP hand-offs), and bit-exactness assertions
    # compare runs made in one process with one thread count.
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def tables_dir() -> Path:
    if not (TABLES / "nb201").is_dir():
        pytest.skip(f"benchmark tables not found at {TABLES}")
    return TABLES


@pytest.fixture(scope="session")
def fmnist_available() -> bool:
    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("Fashion-MNIST not installed (make data installs Debian's dataset-fashion-mnist)")
    return True


@pytest.fixture(scope="session")
def tiny_data():
    """(train, test) synthetic 1x28x28 datasets, learnable in a few steps."""
    return synthetic(n_train=512, n_test=128)


# -- the command line ------------------------------------------------------------------------------------------
@pytest.fixture
def run_cli(capsys):
    """`run_cli(*args) -> (exit code, stdout, stderr)` for a CLI call that must end in SystemExit."""
    from nasforge.cli import main

    def run(*args: str) -> tuple[int | str | None, str, str]:
        with pytest.raises(SystemExit) as e:
            main(list(args))
        captured = capsys.readouterr()
        return e.value.code, captured.out, captured.err

    return run


@pytest.fixture
def cli_ok(capsys):
    """`cli_ok(*args) -> stdout` for a CLI call that must succeed (typer exits 0 at the end of some commands, or
    returns); a failure's stderr is the assertion message."""
    from nasforge.cli import main

    def run(*args: str) -> str:
        try:
            main(list(args))
        except SystemExit as e:
            assert e.code in (0, None), capsys.readouterr().err
        return capsys.readouterr().out

    return run


# -- interrupted runs ----------------------------------------------------------------------------------------------
class SimulatedCrash(Exception):
    """The process 'dies' here: raised by a function that `crash` patched."""


@pytest.fixture
def crash():
    """`with crash(owner, name, at) as died:` makes `owner.name` (a method or module function) raise on its
    calls numbered `at` (an int or a collection of ints, counted from 1 across the whole block), after the
    original ran (`before=True`: instead of running it); `died` is the exception type raised (`exc`,
    SimulatedCrash by default). The original is restored when the block ends. Resume tests crash a run this
    way and check that `--resume` ends where an uninterrupted run ends."""

    @contextmanager
    def patch(owner, name: str, at, *, exc: type[BaseException] = SimulatedCrash, before: bool = False):
        original = getattr(owner, name)
        when = {at} if isinstance(at, int) else set(at)
        calls = 0

        def dying(*args, **kwargs):
            nonlocal calls
            calls += 1
            if before and calls in when:
                raise exc
            out = original(*args, **kwargs)
            if not before and calls in when:
                raise exc
            return out

        setattr(owner, name, dying)
        try:
            yield exc
        finally:
            setattr(owner, name, original)

    return patch


@pytest.fixture
def same_supernet():
    """`same_supernet(ref_run, run) -> (ref checkpoint, checkpoint)`: loads both run directories'
    checkpoint.pt and asserts that their supernets hold the same tensors, bit for bit."""

    def check(ref_run, run) -> tuple[dict, dict]:
        ck_ref = torch.load(Path(ref_run) / "checkpoint.pt", weights_only=False)
        ck = torch.load(Path(run) / "checkpoint.pt", weights_only=False)
        assert ck["supernet"].keys() == ck_ref["supernet"].keys()
        for k, v in ck_ref["supernet"].items():
            assert torch.equal(ck["supernet"][k], v), k
        return ck_ref, ck

    return check


@pytest.fixture
def relaunches(monkeypatch):
    """Calls of distributed.relaunch (stubbed: no processes start; it 'succeeds')."""
    from nasforge import distributed

    calls: list[tuple[int, list[str]]] = []
    monkeypatch.setattr(distributed, "relaunch", lambda n, argv: calls.append((n, list(argv))) or 0)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return calls
