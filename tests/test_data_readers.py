"""Dataset readers never silently drop, merge or relabel data (issue 24): each reader checks what it read
against what the files and the split promise, and refuses with one line naming the file or folder (or warns
where its docstring says so). Every reader is fed inputs that disagree with themselves."""
from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest

from nasforge.data import load_dataset
from nasforge.errors import ConfigError, DataError

PIL = pytest.importorskip("PIL.Image")


# -- IDX (Fashion-MNIST, MNIST) ----------------------------------------------------------------------------------
def _idx(path, arr: np.ndarray, code: int = 0x08, gz: bool = True, count: int | None = None) -> None:
    dims = list(arr.shape)
    if count is not None:
        dims[0] = count
    raw = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in dims) + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def _idx_folder(tmp_path, n=(20, 10), size=(28, 28), labels=None, **over):
    """A complete IDX folder: every class present in both splits unless `labels` or `over` say otherwise."""
    folder = tmp_path / "idx"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    files = {}
    for split, (img, lbl), count in (("train", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), n[0]),
                                     ("test", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), n[1])):
        y = (labels or {}).get(split, np.arange(count) % 10).astype(np.uint8)
        x = rng.integers(0, 256, (count, *size), dtype=np.uint8)
        files[img], files[lbl] = x, y
    for name, arr in files.items():
        spec = over.get(name, {})
        _idx(folder / (name + ".gz"), spec.get("arr", arr), spec.get("code", 0x08), count=spec.get("count"))
    return folder, files


def test_idx_reads_exactly_what_the_files_hold(tmp_path):
    folder, files = _idx_folder(tmp_path)
    train, test = load_dataset("mnist", folder)
    assert len(train) == 20 and len(test) == 10
    assert (train.images[:, 0].numpy() == files["train-images-idx3-ubyte"]).all()
    assert (train.labels.numpy() == files["train-labels-idx1-ubyte"]).all()  # no relabelling


@pytest.mark.parametrize("case,over,match", [
    ("header count above the bytes", {"train-images-idx3-ubyte": {"count": 21}},
     r"train-images-idx3-ubyte.gz: expected .* data bytes"),
    ("more images than labels", {"t10k-labels-idx1-ubyte": {"arr": np.arange(9, dtype=np.uint8) % 9}},
     r"t10k-images-idx3-ubyte.gz holds 10 images but .*t10k-labels-idx1-ubyte.gz holds 9 labels"),
    ("labels stored as int32", {"train-labels-idx1-ubyte": {"arr": (np.arange(20) % 10).astype(">i4"), "code": 0x0C}},
     r"train-labels-idx1-ubyte.gz: expected uint8 labels"),
    ("a label beyond the classes", {"train-labels-idx1-ubyte": {"arr": np.r_[np.arange(19) % 10, 10].astype(np.uint8)}},
     r"train-labels-idx1-ubyte.gz: label 10 outside 0..9"),
    ("a class never used", {"t10k-labels-idx1-ubyte": {"arr": (np.arange(10) % 9).astype(np.uint8)}},
     r"t10k-labels-idx1-ubyte.gz: test labels never use class\(es\) 9 of 10"),
    ("test images of another size", {"t10k-images-idx3-ubyte": {"arr": np.zeros((10, 32, 32), np.uint8)}},
     r"t10k-images-idx3-ubyte.gz: test images are 32x32 but the training images are 28x28"),
])
def test_idx_that_disagrees_with_itself_is_refused(tmp_path, case, over, match):
    folder, _ = _idx_folder(tmp_path, **over)
    with pytest.raises(DataError, match=match):
        load_dataset("fashion-mnist", folder)


# -- CIFAR python batches ----------------------------------------------------------------------------------------
def _batch(n: int, labels=None, key=b"labels", seed=0, **extra):
    rng = np.random.default_rng(seed)
    d = {b"batch_label": b"batch", key: [int(v) for v in (labels if labels is not None else np.arange(n) % 10)],
         b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"f%d.png" % i for i in range(n)]}
    d.update(extra)
    return d


def _cifar10(tmp_path, batches=None, test=None, meta=None):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = batches or [_batch(10, seed=i) for i in range(5)]
    for i, b in enumerate(batches, 1):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(b, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(test or _batch(10, seed=9), protocol=2))
    if meta is not None:
        (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def test_cifar10_reads_exactly_what_the_batches_hold(tmp_path):
    batches = [_batch(10, seed=i) for i in range(5)]
    folder = _cifar10(tmp_path, batches, meta={b"label_names": [b"c%d" % i for i in range(10)]})
    train, test = load_dataset("cifar10", folder)
    assert len(train) == 50 and len(test) == 10
    assert (train.images[:10].reshape(10, -1).numpy() == batches[0][b"data"]).all()
    assert train.labels.tolist() == [l for b in batches for l in b[b"labels"]]


@pytest.mark.parametrize("case,batch,match", [
    ("rows and labels differ", _batch(10, labels=list(range(10)) + [1]), r"data_batch_2: 10 images but 11 labels"),
    ("rows of the wrong width", {**_batch(10), b"data": np.zeros((10, 3000), np.uint8)}, r"data_batch_2: data must be uint8 rows of 3072"),
    ("float pixels", {**_batch(10), b"data": np.zeros((10, 3072), np.float32)}, r"data_batch_2: data must be uint8"),
    ("file names and rows differ", {**_batch(10), b"filenames": [b"a"] * 9}, r"data_batch_2: 10 images but 9 filenames"),
    ("a label beyond the classes", _batch(10, labels=[0] * 9 + [10]), r"data_batch_2: label 10 outside 0..9"),
    ("no labels key", {b"data": np.zeros((10, 3072), np.uint8)}, r"data_batch_2: a CIFAR batch needs the keys data and labels"),
])
def test_cifar_batch_that_disagrees_with_itself_is_refused(tmp_path, case, batch, match):
    batches = [_batch(10, seed=i) for i in range(5)]
    batches[1] = batch
    with pytest.raises(DataError, match=match):
        load_dataset("cifar10", _cifar10(tmp_path, batches))


def test_cifar_split_missing_a_class_copied_batch_or_foreign_meta_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"test_batch: test labels never use class\(es\) 3 of 10"):
        load_dataset("cifar10", _cifar10(tmp_path / "a", test=_batch(10, labels=[0, 1, 2, 4, 5, 6, 7, 8, 9, 0], seed=9)))
    batches = [_batch(10, seed=i) for i in range(5)]
    batches[3] = dict(batches[0])  # a copied batch: the same images would be trained on twice
    with pytest.raises(DataError, match=r"data_batch_4 holds the same images as .*data_batch_1"):
        load_dataset("cifar10", _cifar10(tmp_path / "b", batches))
    meta = {b"label_names": [b"c%d" % i for i in range(100)]}
    with pytest.raises(DataError, match=r"batches.meta: 100 label_names, but cifar10 has 10 classes"):
        load_dataset("cifar10", _cifar10(tmp_path / "c", meta=meta))


def test_cifar100_checks_fine_and_coarse_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()

    def write(train_extra=None, test_labels=None):
        tr = _batch(200, labels=np.arange(200) % 100, key=b"fine_labels", coarse_labels=[int(v) for v in np.arange(200) % 20])
        tr.update(train_extra or {})
        te = _batch(100, labels=test_labels if test_labels is not None else np.arange(100), key=b"fine_labels", seed=3,
                    coarse_labels=[0] * 100)
        (folder / "train").write_bytes(pickle.dumps(tr, protocol=2))
        (folder / "test").write_bytes(pickle.dumps(te, protocol=2))

    write()
    train, test = load_dataset("cifar100", folder)
    assert len(train) == 200 and train.num_classes == 100 and test.labels.tolist() == list(range(100))
    write({b"coarse_labels": [0] * 199})
    with pytest.raises(DataError, match=r"train: 200 images but 199 coarse_labels"):
        load_dataset("cifar100", folder)
    write(test_labels=np.arange(100) % 50)
    with pytest.raises(DataError, match=r"test: test labels never use class\(es\) 50, 51"):
        load_dataset("cifar100", folder)


# -- image folders -------------------------------------------------------------------------------------------------
def _png(path, size=(8, 8), mode="L", value=0, seed=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed if seed is not None else abs(hash(str(path))) % 2**32)
    shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], len(mode))
    PIL.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)


def _folder(tmp_path, classes=("a", "b"), n=(3, 2), **kw):
    root = tmp_path / "imgs"
    for split, count in zip(("train", "test"), n):
        for c in classes:
            for i in range(count):
                _png(root / split / c / f"{i}.png", **kw)
    return root


def test_image_folder_keeps_the_images_own_size_channels_and_labels(tmp_path):
    root = _folder(tmp_path, classes=("cat", "dog", "eel"), size=(20, 20))
    train, test = load_dataset("image-folder", root)
    assert tuple(train.images.shape) == (9, 1, 20, 20) and len(test) == 6  # grey 20x20: kept as is
    assert train.classes == ("cat", "dog", "eel") and train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    want = np.asarray(PIL.open(root / "train" / "dog" / "1.png"))
    assert (train.images[4, 0].numpy() == want).all()
    train, _ = load_dataset("image-folder", root, options={"resolution": 40, "channels": 3})
    assert tuple(train.images.shape) == (9, 3, 40, 40)


def test_image_folder_mixed_grey_and_colour_becomes_rgb(tmp_path):
    root = _folder(tmp_path)
    _png(root / "train" / "a" / "rgb.png", mode="RGB")
    train, _ = load_dataset("image-folder", root)
    assert train.in_channels == 3 and len(train) == 7


@pytest.mark.parametrize("case,make,match", [
    ("an image outside a class folder", lambda r: _png(r / "train" / "stray.png"), r"train/stray.png is not in a class folder"),
    ("a test class train lacks", lambda r: _png(r / "test" / "zebra" / "0.png"), r"test/zebra is a class that .*train does not have"),
    ("a train class without images", lambda r: (r / "train" / "c").mkdir(), r"train/c holds no images"),
    ("a nested folder", lambda r: _png(r / "train" / "a" / "more" / "0.png"), r"train/a/more is a folder inside a class folder"),
    ("one image under two classes", lambda r: (r / "train" / "b" / "copy.png").write_bytes((r / "train" / "a" / "0.png").read_bytes()),
     r"train/b/copy.png is the same image as .*train/a/0.png but labelled 'b', not 'a'"),
    ("an unreadable file", lambda r: (r / "test" / "b" / "notes.txt").write_text("hello"), r"unreadable image .*test/b/notes.txt"),
    ("a truncated image", lambda r: (r / "train" / "a" / "cut.png").write_bytes((r / "train" / "a" / "0.png").read_bytes()[:60]),
     r"unreadable image .*train/a/cut.png"),
    ("images of different sizes", lambda r: _png(r / "test" / "a" / "big.png", size=(9, 9)),
     r"test/a/big.png is 9x9 but .*is 8x8: images of different sizes; set the dataset option resolution"),
])
def test_image_folder_that_disagrees_with_itself_is_refused(tmp_path, case, make, match):
    root = _folder(tmp_path)
    make(root)
    with pytest.raises(DataError, match=match):
        load_dataset("image-folder", root)


def test_image_folder_non_square_or_one_class_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"is 10x8, not square; set the dataset option resolution"):
        load_dataset("image-folder", _folder(tmp_path / "a", size=(10, 8)))
    train, _ = load_dataset("image-folder", _folder(tmp_path / "b", size=(10, 8)), options={"resolution": 12})
    assert train.resolution == 12
    with pytest.raises(DataError, match=r"has 1 class folder\(s\)"):
        load_dataset("image-folder", _folder(tmp_path / "c", classes=("only",)))


def test_image_folder_warns_where_it_says_it_will(tmp_path, capsys):
    root = _folder(tmp_path, classes=("a", "b", "c"))
    (root / "train" / "a" / ".DS_Store").write_bytes(b"\0junk")  # hidden: skipped, with a word
    for f in (root / "test" / "c").iterdir():  # class c has no test images
        f.unlink()
    (root / "train" / "a" / "again.png").write_bytes((root / "train" / "a" / "1.png").read_bytes())
    (root / "test" / "b" / "leak.png").write_bytes((root / "train" / "b" / "0.png").read_bytes())
    _png(root / "train" / "b" / "alpha.png", mode="LA")
    train, test = load_dataset("image-folder", root)
    err = capsys.readouterr().err
    assert len(train) == 3 * 3 + 2 and len(test) == 2 + 3  # nothing dropped but the hidden file
    for text in ("skipped 1 hidden file(s)", "class(es) c of", "have no test images",
                 "1 image(s) repeated within a split", "1 test image(s) also in train",
                 "dropped the alpha channel of 1 image(s)"):
        assert text in err, (text, err)
    assert all(line.startswith("warning: image-folder") for line in err.strip().splitlines())


# -- synthetic ---------------------------------------------------------------------------------------------------
def test_synthetic_gives_the_shape_and_classes_asked_for():
    train, test = load_dataset("synthetic", options={"channels": 3, "resolution": 20, "num_classes": 100,
                                                     "n_train": 3000, "n_test": 10})
    assert tuple(train.images.shape) == (3000, 3, 20, 20) and len(test) == 10 and train.num_classes == 100
    assert sorted(set(train.labels.tolist())) == list(range(100))
    with pytest.raises(ConfigError, match="num_classes"):
        load_dataset("synthetic", options={"num_classes": 1})
    with pytest.raises(ConfigError, match="unknown option"):
        load_dataset("synthetic", options={"classes": 3})


def test_synthetic_classes_beyond_ten_are_not_copies_of_the_first_ten():
    """Class k and k+10 must differ (not the same grating under two labels): the dominant spatial frequency
    of each class's mean power spectrum (phase-free) differs between them."""
    train, _ = load_dataset("synthetic", options={"num_classes": 20, "n_train": 2000, "n_test": 1})
    x = train.images[:, 0].float().numpy() - 128
    power = np.abs(np.fft.fft2(x)) ** 2
    power[:, 0, 0] = 0
    y = train.labels.numpy()
    peak = [int(power[y == k].mean(0).argmax()) for k in range(20)]
    assert all(peak[k] != peak[k + 10] for k in range(10)), peak
