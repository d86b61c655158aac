import gzip
import struct

import numpy as np
import pytest
import torch

from nasforge.data import Loader, load_dataset, read_idx, search_split, split_indices
from nasforge.data.datasets import ImageDataset, _load_idx_dataset
from nasforge.data.loader import cutout, random_crop, random_hflip
from nasforge.errors import ConfigError, DataError, UserError


def write_idx(path, array: np.ndarray, gz: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def make_idx_dataset(folder, n_train=40, n_test=10):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        # every class in every split, in random order (a split that lacks a class is refused)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.permutation(np.arange(n) % 10))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x", a, gz=gz)
    assert np.array_equal(read_idx(tmp_path / "x"), a)


def test_truncated_idx_names_file(tmp_path):
    a = np.zeros((5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "x", a, gz=False)
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-100])
    with pytest.raises(DataError, match=r"x.*expected 3920 data bytes.*found 3820"):
        read_idx(tmp_path / "x")


def test_corrupt_gzip_and_bad_magic(tmp_path):
    (tmp_path / "a.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(DataError, match="a.gz"):
        read_idx(tmp_path / "a.gz")
    (tmp_path / "b").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(tmp_path / "b")


def test_idx_dataset_from_explicit_root(tmp_path):
    make_idx_dataset(tmp_path)
    train, test = _load_idx_dataset("fashion-mnist", tmp_path, False)
    assert train.images.shape == (40, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.shape == (10,) and train.num_classes == 10


def test_missing_dataset_message(tmp_path, monkeypatch):
    monkeypatch.delenv("NASFORGE_DATA", raising=False)
    with pytest.raises(DataError, match=r"dataset 'mnist' not found.*--download"):
        load_dataset("mnist", tmp_path / "nowhere")


def test_unknown_dataset_lists_choices():
    with pytest.raises(ConfigError, match="choose from: .*fashion-mnist"):
        load_dataset("imagenet-1k")


def test_search_split_is_deterministic_and_disjoint(tiny_data):
    train, _ = tiny_data
    a1, b1 = search_split(train, seed=3, subset=200)
    a2, b2 = search_split(train, seed=3, subset=200)
    assert torch.equal(a1.images, a2.images) and torch.equal(b1.labels, b2.labels)
    assert len(a1) == len(b1) == 100
    idx = split_indices(len(train), 3, 200)
    assert len(set(idx[:100].tolist()) & set(idx[100:].tolist())) == 0
    a3, _ = search_split(train, seed=4, subset=200)
    assert not torch.equal(a1.images, a3.images)
    # an uneven split (PNAS tier B: 5k/2k) keeps the same order, only the cut moves
    c, d = search_split(train, seed=3, subset=200, train_portion=0.75)
    assert (len(c), len(d)) == (150, 50) and torch.equal(c.images[:100], a1.images)
    with pytest.raises(DataError, match="train_portion"):
        search_split(train, seed=3, subset=200, train_portion=1.0)


def test_augmentation_shapes_and_ranges():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (16, 3, 12, 12), dtype=torch.uint8)
    y = random_crop(x, 2, g)
    assert y.shape == x.shape and y.dtype == torch.uint8
    # a crop moves pixels but never invents values: every row of y is a shifted row of x or zero padding
    assert set(y.unique().tolist()) <= set(x.unique().tolist()) | {0}
    f = random_hflip(x, g)
    assert all(torch.equal(f[i], x[i]) or torch.equal(f[i], x[i].flip(2)) for i in range(16))
    z = cutout(torch.ones(16, 1, 12, 12), 4, g)
    zeroed = (z == 0).sum(dim=(1, 2, 3))
    assert (zeroed <= 16).all() and (zeroed > 0).all()


def test_loader_normalises_and_is_deterministic(tiny_data):
    train, _ = tiny_data
    l1 = Loader(train, 64, shuffle=True, seed=1, crop_padding=2, hflip=True, cutout=8)
    l2 = Loader(train, 64, shuffle=True, seed=1, crop_padding=2, hflip=True, cutout=8)
    b1 = list(l1)
    b2 = list(l2)
    assert len(b1) == 8 and b1[0][0].shape == (64, 1, 28, 28) and b1[0][0].dtype == torch.float32
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(b1, b2))
    plain = torch.cat([x for x, _ in Loader(train, 128)])
    assert abs(plain.mean().item()) < 0.05 and abs(plain.std().item() - 1) < 0.05
    l1.set_epoch(5)
    l2.set_epoch(6)
    assert not torch.equal(next(iter(l1))[1], next(iter(l2))[1])


def test_loader_rejects_bad_batch(tiny_data):
    with pytest.raises(ConfigError, match="batch size"):
        Loader(tiny_data[0], 0)


def test_imagedataset_validates_shapes():
    with pytest.raises(DataError, match="uint8"):
        ImageDataset(torch.zeros(2, 28, 28), torch.zeros(2, dtype=torch.long), 10)
    with pytest.raises(UserError, match="2 images but 3 labels"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), 10)


def test_real_fashion_mnist(fmnist_available):
    train, test = load_dataset("fashion-mnist")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
