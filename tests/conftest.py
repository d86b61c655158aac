"""Shared fixtures: real benchmark tables and Fashion-MNIST when present, tiny synthetic data otherwise."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from nasforge.data.datasets import DEBIAN_FASHION_MNIST, synthetic

REPO = Path(__file__).resolve().parents[1]
# beside the checkout (as on main), or where $NASFORGE_TABLES points (a worktree elsewhere)
TABLES = Path(os.environ.get("NASFORGE_TABLES") or REPO / ".." / "shared" / "data" / "benchmarks").resolve()


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
