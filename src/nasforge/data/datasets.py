"""Datasets held in memory as uint8 tensors, and the deterministic splits every run uses.

Formats: IDX (Fashion-MNIST, MNIST), CIFAR-10/100 python pickles, and a folder of images per class.
A dataset is looked up at an explicit root, then `$NASFORGE_DATA/<name>`, then Debian's install location.
"""
from __future__ import annotations

import os
import pickle
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import DataError
from ..registry import DATASETS
from .idx import read_idx
from .images import ImageDataset
from .loader import Loader


@dataclass
class SearchData:
    """The two halves a search sees: weights train on `train`, bi-level methods fit alphas on `val`.

    Loaders produce batches on `device`; under data parallelism (`world_size` > 1) each rank gets its shard
    of every global batch of `batch_size` images."""

    train: ImageDataset
    val: ImageDataset
    batch_size: int = 64
    augment: dict | None = None
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    device: Any = None  # torch.device; None = where the dataset lives (CPU)
    rank: int = 0
    world_size: int = 1

    def loader(self, data: ImageDataset, seed: int, *, shuffle: bool = True, augment: bool = True):
        """A Loader over `data` with this search's batch size, normalisation, device and shard."""
        aug = (self.augment or {}) if augment else {}
        # drop_single: a last batch of one image cannot be batch-normalised on 1x1 maps (see Loader)
        return Loader(data, self.batch_size, shuffle=shuffle, seed=seed, drop_single=True, mean=self.mean,
                      std=self.std, device=self.device, rank=self.rank, world_size=self.world_size, **aug)

    def loaders(self, seed: int):
        """(search-train loader, search-val loader), both shuffled and augmented as configured."""
        return self.loader(self.train, seed), self.loader(self.val, seed + 7919)


# ---------------------------------------------------------------------------------------------
# locating files
# ---------------------------------------------------------------------------------------------
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_URLS = {
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}
_HOW_TO = {
    "fashion-mnist": "install Debian's package (apt-get install dataset-fashion-mnist), set NASFORGE_DATA to a folder "
                     "holding fashion-mnist/, pass --data-root, or use --download",
    "mnist": "set NASFORGE_DATA to a folder holding mnist/, pass --data-root, or use --download",
    "cifar10": "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extract it and pass "
               "--data-root pointing at cifar-10-batches-py",
    "cifar100": "download cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extract it and "
                "pass --data-root pointing at cifar-100-python",
}


def _candidates(name: str, root: str | Path | None) -> list[Path]:
    """Where a dataset is looked for: an explicit root is authoritative (only it, and root/<name>); without
    one, $NASFORGE_DATA then Debian's install location."""
    if root is not None:
        return [Path(root), Path(root) / name]
    out: list[Path] = []
    env = os.environ.get("NASFORGE_DATA")
    if env:
        out += [Path(env) / name, Path(env)]
    if name == "fashion-mnist":
        out.append(DEBIAN_FASHION_MNIST)
    return out


def _find_idx(folder: Path, stem: str) -> Path | None:
    for suffix in (".gz", ""):
        p = folder / (stem + suffix)
        if p.is_file():
            return p
    return None


def _locate_idx_folder(name: str, root: str | Path | None) -> Path:
    searched = _candidates(name, root)
    for folder in searched:
        if all(_find_idx(folder, s) for pair in _IDX_FILES.values() for s in pair):
            return folder
    where = ", ".join(str(p) for p in searched) or "(no location configured)"
    raise DataError(f"dataset '{name}' not found (looked in {where}); {_HOW_TO[name]}")


def download_idx(name: str, dest: str | Path) -> Path:
    """Fetch the four IDX files of Fashion-MNIST or MNIST from their official mirrors."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for pair in _IDX_FILES.values():
        for stem in pair:
            target = dest / f"{stem}.gz"
            if target.is_file():
                continue
            url = _URLS[name] + f"{stem}.gz"
            try:
                with urllib.request.urlopen(url, timeout=30) as r:
                    data = r.read()
            except OSError as e:
                raise DataError(f"cannot download {url} ({e}); {_HOW_TO[name]}") from None
            tmp = target.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(target)
    return dest


def _load_idx_dataset(name: str, root: str | Path | None, download: bool) -> tuple[ImageDataset, ImageDataset]:
    try:
        folder = _locate_idx_folder(name, root)
    except DataError:
        if not download:
            raise
        target = Path(root) if root else Path(os.environ.get("NASFORGE_DATA", "data")) / name
        folder = download_idx(name, target)
    out = []
    for split, (img_stem, lbl_stem) in _IDX_FILES.items():
        images = read_idx(_find_idx(folder, img_stem))  # type: ignore[arg-type]
        labels = read_idx(_find_idx(folder, lbl_stem))  # type: ignore[arg-type]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
        if labels.max() >= 10:
            raise DataError(f"{folder}: label {int(labels.max())} out of range 0..9")
        out.append(ImageDataset(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),  # host: datasets load into host memory
                                10, name))
    return out[0], out[1]


@DATASETS.register("fashion-mnist", help="Zalando Fashion-MNIST, 28x28 grey, 10 classes (IDX)")
def fashion_mnist(root: str | Path | None = None, download: bool = False) -> tuple[ImageDataset, ImageDataset]:
    return _load_idx_dataset("fashion-mnist", root, download)


@DATASETS.register("mnist", help="MNIST digits, 28x28 grey, 10 classes (IDX)")
def mnist(root: str | Path | None = None, download: bool = False) -> tuple[ImageDataset, ImageDataset]:
    return _load_idx_dataset("mnist", root, download)


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR python batch holds: dicts, lists, bytes, numbers and numpy uint8/int arrays.
    Any other global (a crafted file's `os.system`, `open`, ...) is refused before it is looked up, so
    reading a data folder never runs code from it."""

    #: (module, name) pairs a batch pickled by Python 2 (the official files) or 3 may name
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch never holds")
        if module.startswith("numpy.core"):  # numpy 2 moved numpy.core to numpy._core
            module = "numpy._core" + module[len("numpy.core"):]
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    """One CIFAR python batch, through a restricted unpickler (never runs code). Raises DataError."""
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"missing file {path}") from None
    except pickle.UnpicklingError as e:
        raise DataError(f"refusing {path}: {e} (not a CIFAR python batch; unpickling it could run code)") from None
    except Exception as e:
        raise DataError(f"corrupt file {path}: {type(e).__name__}: {e}") from None
    if not isinstance(d, dict):
        raise DataError(f"corrupt file {path}: a CIFAR batch is a dict, got {type(d).__name__}")
    return d


def _cifar(name: str, folder_name: str, train_files: list[str], test_files: list[str], label_key: bytes,
           num_classes: int, root: str | Path | None) -> tuple[ImageDataset, ImageDataset]:
    for folder in _candidates(name, root) + ([Path(root) / folder_name] if root else []):
        if all((folder / f).is_file() for f in train_files + test_files):
            break
    else:
        raise DataError(f"dataset '{name}' not found (looked for {train_files[0]} in "
                        f"{', '.join(str(p) for p in _candidates(name, root)) or 'no location'}); {_HOW_TO[name]}")
    out = []
    for files in (train_files, test_files):
        xs, ys = [], []
        for f in files:
            d = _unpickle(folder / f)
            try:
                x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                y = np.asarray(d[label_key], dtype=np.int64)
            except (KeyError, ValueError) as e:
                raise DataError(f"corrupt file {folder / f}: {e}") from None
            xs.append(x)
            ys.append(y)
        out.append(ImageDataset(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)),  # host: datasets load into host memory
                                num_classes, name))
    return out[0], out[1]


@DATASETS.register("cifar10", help="CIFAR-10 python pickle batches (cifar-10-batches-py)")
def cifar10(root: str | Path | None = None, download: bool = False) -> tuple[ImageDataset, ImageDataset]:
    return _cifar("cifar10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                  b"labels", 10, root)


@DATASETS.register("cifar100", help="CIFAR-100 python pickles (cifar-100-python), fine labels")
def cifar100(root: str | Path | None = None, download: bool = False) -> tuple[ImageDataset, ImageDataset]:
    return _cifar("cifar100", "cifar-100-python", ["train"], ["test"], b"fine_labels", 100, root)


@DATASETS.register("image-folder", help="root/{train,test}/<class>/<image>; needs Pillow; resized to 32x32")
def image_folder(root: str | Path | None = None, download: bool = False, resolution: int = 32) -> tuple[ImageDataset, ImageDataset]:
    if root is None:
        raise DataError("dataset 'image-folder' needs --data-root pointing at a folder with train/ and test/ subfolders")
    try:
        from PIL import Image
    except ImportError:
        raise DataError("dataset 'image-folder' needs Pillow: pip install 'nasforge[images]'") from None
    root = Path(root)
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir()) if (root / "train").is_dir() else []
    if not classes:
        raise DataError(f"{root}/train has no class folders; expected root/train/<class>/<image files>")
    out = []
    for split in ("train", "test"):
        xs, ys = [], []
        for label, cls in enumerate(classes):
            for f in sorted((root / split / cls).glob("*")):
                try:
                    with Image.open(f) as im:
                        im = im.convert("RGB").resize((resolution, resolution))
                        xs.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
                except OSError as e:
                    raise DataError(f"unreadable image {f}: {e}") from None
                ys.append(label)
        if not xs:
            raise DataError(f"{root / split} holds no images")
        out.append(ImageDataset(torch.from_numpy(np.stack(xs)), torch.tensor(ys), len(classes), "image-folder",  # host: datasets load into host memory
                                tuple(classes)))
    return out[0], out[1]


@DATASETS.register("synthetic", help="random gratings, 1x28x28, 10 classes (smoke tests; no files needed)")
def synthetic(root: str | Path | None = None, download: bool = False, n_train: int = 2000, n_test: int = 500,
              channels: int = 1, resolution: int = 28, num_classes: int = 10) -> tuple[ImageDataset, ImageDataset]:
    """Class k is a noisy sinusoidal grating with one of 5 orientations and 2 frequencies at a random phase:
    local texture, not position, carries the label, so small CNNs with global pooling learn it in a few steps."""
    g = torch.Generator().manual_seed(1234)  # host: datasets load into host memory
    yy, xx = torch.meshgrid(torch.arange(resolution, dtype=torch.float32),  # host: datasets load into host memory
                            torch.arange(resolution, dtype=torch.float32), indexing="ij")  # host: datasets load into host memory

    def make(n: int) -> ImageDataset:
        y = torch.randint(0, num_classes, (n,), generator=g)  # host: datasets load into host memory
        theta = (y % 5).float() * (torch.pi / 5)
        freq = torch.where(y // 5 % 2 == 0, 1 / 3.0, 1 / 7.0) * 2 * torch.pi
        phase = torch.rand(n, generator=g) * 2 * torch.pi  # host: datasets load into host memory
        wave = torch.sin(freq.view(-1, 1, 1) * (xx * theta.cos().view(-1, 1, 1) + yy * theta.sin().view(-1, 1, 1))
                         + phase.view(-1, 1, 1))
        img = 128 + 90 * wave.unsqueeze(1) + 30 * torch.randn(n, channels, resolution, resolution, generator=g)  # host: datasets load into host memory
        return ImageDataset(img.clamp(0, 255).to(torch.uint8), y, num_classes, "synthetic")

    return make(n_train), make(n_test)


def load_dataset(name: str, root: str | Path | None = None, download: bool = False) -> tuple[ImageDataset, ImageDataset]:
    """(train, test) for a registered dataset name."""
    loader: Callable = DATASETS.get(name)
    return loader(root=root, download=download)


def split_indices(n: int, seed: int, subset: int | None = None) -> torch.Tensor:
    """A fixed permutation of range(n), cut to `subset`; the same seed always gives the same indices."""
    if subset is not None and not (2 <= subset):
        raise DataError(f"subset must be at least 2 images, got {subset}")
    if subset is not None and subset > n:  # never silently capped
        raise DataError(f"subset {subset} is larger than the data set ({n} images)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # host: datasets load into host memory
    return perm[: min(subset, n)] if subset else perm


def check_train_portion(train_portion: Any) -> float:
    """The search-train share of a search split, which must lie strictly between 0 and 1."""
    if isinstance(train_portion, bool) or not isinstance(train_portion, (int, float)) or not 0.0 < train_portion < 1.0:
        raise DataError(f"train_portion (the search-train share of the subset) must be in (0, 1), got {train_portion!r}")
    return float(train_portion)


def search_split(train: ImageDataset, seed: int = 0, subset: int | None = None,
                 train_portion: float = 0.5) -> tuple[ImageDataset, ImageDataset]:
    """Split the training set into search-train and search-val (DARTS' train_portion=0.5)."""
    check_train_portion(train_portion)
    idx = split_indices(len(train), seed, subset)
    cut = int(len(idx) * train_portion)
    return train.subset(idx[:cut]), train.subset(idx[cut:])


def final_split(train: ImageDataset, test: ImageDataset, seed: int = 0, subset: int | None = None,
                test_subset: int | None = None) -> tuple[ImageDataset, ImageDataset]:
    """For final evaluation: the full (or subset of the) training set and the official test set."""
    tr = train.subset(split_indices(len(train), seed, subset)) if subset else train
    te = test.subset(split_indices(len(test), seed, test_subset)) if test_subset else test
    return tr, te
