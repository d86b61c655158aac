"""Datasets held in memory as uint8 tensors, and the deterministic splits every run uses.

Formats: IDX (Fashion-MNIST, MNIST), CIFAR-10/100 python pickles, and a folder of images per class.
A dataset is looked up at an explicit root, then `$NASFORGE_DATA/<name>`, then Debian's install location.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import options
from ..errors import DataError
from ..options import Opt
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
        img_file, lbl_file = _find_idx(folder, img_stem), _find_idx(folder, lbl_stem)
        images, labels = read_idx(img_file), read_idx(lbl_file)  # type: ignore[arg-type]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{img_file}: expected uint8 images [N, H, W], found {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise DataError(f"{lbl_file}: expected uint8 labels [N], found {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise DataError(f"{img_file} holds {len(images)} images but {lbl_file} holds {len(labels)} labels "
                            "(files of different downloads?)")
        check_labels(labels, 10, lbl_file, split)
        if out and images.shape[1:] != tuple(out[0].images.shape[2:]):
            raise DataError(f"{img_file}: {split} images are {images.shape[1]}x{images.shape[2]} but the training "
                            f"images are {out[0].images.shape[2]}x{out[0].images.shape[3]}")
        out.append(ImageDataset(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),  # host: datasets load into host memory
                                10, name))
    return out[0], out[1]


def check_labels(labels: np.ndarray, num_classes: int, where: Any, split: str = "") -> None:
    """Labels must be integers in 0..num_classes-1 and every class must occur: a split of a fixed-class data
    set that lacks a class, or has a label beyond the last, is of another data set or corrupt.

    Raises:
        DataError: one line naming `where` (the file or folder) and the offending labels.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        raise DataError(f"{where}: no labels")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, found {labels.dtype}")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise DataError(f"{where}: label {lo if lo < 0 else hi} outside 0..{num_classes - 1} ({num_classes} classes): "
                        "the file is corrupt or of another dataset")
    missing = sorted(set(range(num_classes)) - set(np.unique(labels).tolist()))
    if missing:
        show = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise DataError(f"{where}: {split + ' ' if split else ''}labels never use class(es) {show} of {num_classes}: "
                        "the file is incomplete or of another dataset")


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

    #: (module, name) pairs a batch pickled by Python 2 (the official files) or 3 may name: numpy arrays
    #: (and numpy scalars, as a re-pickled batch's labels may be) and Python 3's protocol-2 bytes
    ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")} \
        | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

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


def _cifar_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, 3, 32, 32] uint8, labels [N] int64) of one CIFAR python batch, checked against itself:
    `data` is N rows of 3072 bytes, and the labels (and file names, coarse labels where present) number N."""
    d = _unpickle(path)
    if b"data" not in d or label_key not in d:
        raise DataError(f"corrupt file {path}: a CIFAR batch needs the keys data and {label_key.decode()}, "
                        f"found {', '.join(sorted(k.decode(errors='replace') if isinstance(k, bytes) else str(k) for k in d))}")
    data = d[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise DataError(f"corrupt file {path}: data must be uint8 rows of 3072 bytes (3x32x32), found "
                        f"{getattr(data, 'dtype', type(data).__name__)} {shape}")
    try:
        labels = np.asarray(d[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as e:
        raise DataError(f"corrupt file {path}: {label_key.decode()} are not integers ({e})") from None
    for key, n in [(label_key, labels.size)] + [(k, len(d[k])) for k in (b"filenames", b"coarse_labels") if k in d]:
        if n != len(data):
            raise DataError(f"corrupt file {path}: {len(data)} images but {n} {key.decode()}")
    if labels.ndim != 1:
        raise DataError(f"corrupt file {path}: {label_key.decode()} must be a list, found shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise DataError(f"{path}: label {bad} outside 0..{num_classes - 1} ({num_classes} classes): the file is "
                        "corrupt or of another dataset")
    return data.reshape(-1, 3, 32, 32), labels


def _cifar(name: str, folder_name: str, train_files: list[str], test_files: list[str], label_key: bytes,
           num_classes: int, root: str | Path | None, meta: tuple[str, bytes]) -> tuple[ImageDataset, ImageDataset]:
    for folder in _candidates(name, root) + ([Path(root) / folder_name] if root else []):
        if all((folder / f).is_file() for f in train_files + test_files):
            break
    else:
        where = ", ".join(str(p) for p in _candidates(name, root)) or "(no folder given: pass --data-root)"
        raise DataError(f"dataset '{name}' not found (looked for {', '.join(train_files + test_files)} in {where}); "
                        f"{_HOW_TO[name]}")
    meta_file, names_key = folder / meta[0], meta[1]
    if meta_file.is_file():  # the class names the files promise
        names = _unpickle(meta_file).get(names_key)
        if names is not None and len(names) != num_classes:
            raise DataError(f"{meta_file}: {len(names)} {names_key.decode()}, but {name} has {num_classes} classes "
                            "(a folder of another dataset?)")
    out, seen = [], {}
    for split, files in (("train", train_files), ("test", test_files)):
        xs, ys = [], []
        for f in files:
            x, y = _cifar_batch(folder / f, label_key, num_classes)
            xs.append(x)
            ys.append(y)
        for f, x in zip(files, xs):  # the same batch twice: trained on twice, or tested on its training data
            key = hashlib.sha256(x.tobytes()).hexdigest()
            if key in seen:
                raise DataError(f"{folder / f} holds the same images as {seen[key]}: a copied batch file")
            seen[key] = folder / f
        y = np.concatenate(ys)
        check_labels(y, num_classes, folder / files[0] if len(files) == 1 else folder, split)
        out.append(ImageDataset(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(y),  # host: datasets load into host memory
                                num_classes, name))
    return out[0], out[1]


@DATASETS.register("cifar10", help="CIFAR-10 python pickle batches (cifar-10-batches-py)")
def cifar10(root: str | Path | None = None, download: bool = False) -> tuple[ImageDataset, ImageDataset]:
    return _cifar("cifar10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                  b"labels", 10, root, ("batches.meta", b"label_names"))


@DATASETS.register("cifar100", help="CIFAR-100 python pickles (cifar-100-python), fine labels")
def cifar100(root: str | Path | None = None, download: bool = False) -> tuple[ImageDataset, ImageDataset]:
    return _cifar("cifar100", "cifar-100-python", ["train"], ["test"], b"fine_labels", 100, root,
                  ("meta", b"fine_label_names"))


#: options a dataset takes beyond root/download (config key `dataset_options`, CLI --data-opt KEY=VALUE)
DATASET_OPTIONS: dict[str, dict[str, Any]] = {
    "image-folder": {
        "resolution": Opt(None, ">=1", type=int, help="side in pixels every image is resized to; null: the "
                          "images' own size (all must share one square size)"),
        "channels": Opt(None, type=int, choices=(1, 3), help="1 (grey) or 3 (RGB); null: 1 if every image is "
                        "grey, else 3"),
    },
    "synthetic": {
        "n_train": Opt(2000, ">=1"), "n_test": Opt(500, ">=1"), "channels": Opt(1, ">=1"),
        "resolution": Opt(28, ">=4", help="side in pixels"), "num_classes": Opt(10, "[2, 1000]"),
    },
}

_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


@dataclass
class _Header:
    """What the first pass over an image folder keeps of each file: its size (w, h), mode and alpha."""

    size: tuple[int, int]
    mode: str
    alpha: bool


def _image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(image files, hidden files) of one class folder; a sub-folder is refused (its images would be lost)."""
    files, hidden = [], []
    for f in sorted(folder.iterdir()):
        if f.name.startswith("."):
            hidden.append(f)
        elif f.is_dir():
            raise DataError(f"{f} is a folder inside a class folder; images must sit directly in "
                            f"{folder} (nested folders are not read)")
        else:
            files.append(f)
    return files, hidden


def _class_folders(split_dir: Path) -> list[str]:
    if not split_dir.is_dir():
        raise DataError(f"{split_dir} is missing; expected root/train/<class>/<images> and root/test/<class>/<images>")
    stray = [p for p in split_dir.iterdir() if not p.is_dir() and not p.name.startswith(".")]
    if stray:
        raise DataError(f"{stray[0]} is not in a class folder; every image must be in {split_dir}/<class>/ "
                        f"({len(stray)} such file(s))")
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


@DATASETS.register("image-folder", help="root/{train,test}/<class>/<image>; needs Pillow; options resolution, channels")
def image_folder(root: str | Path | None = None, download: bool = False, resolution: int | None = None,
                 channels: int | None = None) -> tuple[ImageDataset, ImageDataset]:
    """A folder of images per class: ``root/train/<class>/*`` and ``root/test/<class>/*``; classes are the
    sorted train folder names (label k = the k-th name).

    Nothing is dropped, merged or relabelled silently. Refused (DataError, one line naming the file or
    folder): a missing split, an image outside a class folder, a nested folder, an unreadable file, a train
    class without images, a test class that train does not have, the same image (byte for byte) under two
    classes, and, without `resolution`, images of different or non-square sizes. Warned about (one line on
    stderr): hidden files (names starting with '.') that are skipped, a train class absent from test, images
    repeated within a class or appearing in both train and test, and alpha channels that are dropped.

    Args:
        resolution: side every image is resized to (bilinear); None keeps the images' own (common) size.
        channels: 1 or 3; None: 1 when every image is grey, else 3 (grey images are repeated to RGB).
    Returns:
        (train, test) ImageDatasets, uint8 [N, channels, side, side].
    """
    from .. import progress

    if root is None:
        raise DataError("dataset 'image-folder' needs --data-root pointing at a folder with train/ and test/ subfolders")
    try:
        from PIL import Image
    except ImportError:
        raise DataError("dataset 'image-folder' needs Pillow: pip install 'nasforge[images]'") from None
    root = Path(root)
    classes = _class_folders(root / "train")
    if len(classes) < 2:
        raise DataError(f"{root / 'train'} has {len(classes)} class folder(s); expected root/train/<class>/<images> "
                        "with at least 2 classes")
    test_classes = _class_folders(root / "test")
    extra = sorted(set(test_classes) - set(classes))
    if extra:
        raise DataError(f"{root / 'test' / extra[0]} is a class that {root / 'train'} does not have "
                        f"({len(extra)} such class(es)); its images would have no label")
    absent = [c for c in classes if c not in test_classes]

    seen: dict[str, tuple[Path, str, int]] = {}  # content hash -> (first file, split, label)
    hidden_files: list[Path] = []
    repeats: list[tuple[Path, Path]] = []
    leaks: list[tuple[Path, Path]] = []
    alpha = 0
    read: dict[str, list[tuple[Path, Any, int]]] = {"train": [], "test": []}
    for split in ("train", "test"):
        for label, cls in enumerate(classes):
            folder = root / split / cls
            if not folder.is_dir():
                continue
            files, hidden = _image_files(folder)
            hidden_files += hidden
            if not files and split == "train":
                raise DataError(f"{folder} holds no images: a class with no training images cannot be learnt")
            if not files:
                absent.append(cls)
            for f in files:
                try:  # the header only (size, mode): pixels are decoded once, in the second pass
                    raw = f.read_bytes()
                    with Image.open(f) as im:
                        img = _Header(im.size, im.mode, im.mode in ("RGBA", "LA", "PA")
                                      or (im.mode == "P" and "transparency" in im.info))
                except OSError as e:
                    raise DataError(f"unreadable image {f}: {e}") from None
                key = hashlib.sha256(raw).hexdigest()
                if key in seen:
                    first, first_split, first_label = seen[key]
                    if first_label != label:
                        raise DataError(f"{f} is the same image as {first} but labelled '{cls}', not "
                                        f"'{classes[first_label]}'; remove one of them")
                    (repeats if first_split == split else leaks).append((first, f))
                else:
                    seen[key] = (f, split, label)
                read[split].append((f, img, label))

    all_imgs = [r for split in read.values() for r in split]
    if channels is None:
        channels = 1 if all(img.mode in _GREY_MODES for _, img, _ in all_imgs) else 3
    if resolution is None:
        sizes = {img.size for _, img, _ in all_imgs}
        first = all_imgs[0]
        if len(sizes) > 1:
            other = next(r for r in all_imgs if r[1].size != first[1].size)
            raise DataError(f"{other[0]} is {other[1].size[0]}x{other[1].size[1]} but {first[0]} is "
                            f"{first[1].size[0]}x{first[1].size[1]}: images of different sizes; set the dataset "
                            "option resolution=N (--data-opt resolution=N) to resize them all")
        w, h = first[1].size
        if w != h:
            raise DataError(f"{first[0]} is {w}x{h}, not square; set the dataset option resolution=N "
                            "(--data-opt resolution=N) to resize the images to NxN")
        resolution = w
    out = []
    for split in ("train", "test"):
        xs, ys = [], []
        for f, head, label in read[split]:
            alpha += head.alpha
            try:
                with Image.open(f) as im:
                    img = im.convert("L" if channels == 1 else "RGB")
            except OSError as e:  # a header that reads but pixels that do not (a truncated file)
                raise DataError(f"unreadable image {f}: {e}") from None
            if img.size != (resolution, resolution):
                img = img.resize((resolution, resolution), Image.BILINEAR)
            a = np.asarray(img, dtype=np.uint8)
            xs.append(a[None] if channels == 1 else a.transpose(2, 0, 1))
            ys.append(label)
        if not xs:
            raise DataError(f"{root / split} holds no images")
        out.append(ImageDataset(torch.from_numpy(np.stack(xs)), torch.tensor(ys), len(classes), "image-folder",  # host: datasets load into host memory
                                tuple(classes)))
    for text, items in ((f"skipped {len(hidden_files)} hidden file(s) (names starting with '.'), e.g. "
                         f"{hidden_files[0] if hidden_files else ''}", hidden_files),
                        (f"class(es) {', '.join(sorted(set(absent)))} of {root / 'train'} have no test images",
                         absent),
                        (f"{len(repeats)} image(s) repeated within a split, e.g. {repeats[0][1] if repeats else ''} = "
                         f"{repeats[0][0] if repeats else ''}", repeats),
                        (f"{len(leaks)} test image(s) also in train, e.g. {leaks[0][1] if leaks else ''} = "
                         f"{leaks[0][0] if leaks else ''}: the test accuracy is optimistic", leaks),
                        (f"dropped the alpha channel of {alpha} image(s)", alpha)):
        if items:
            progress.warn(f"image-folder {root}: {text}")
    return out[0], out[1]


@DATASETS.register("synthetic", help="random gratings (no files needed; options n_train, n_test, channels, "
                                     "resolution, num_classes)")
def synthetic(root: str | Path | None = None, download: bool = False, n_train: int = 2000, n_test: int = 500,
              channels: int = 1, resolution: int = 28, num_classes: int = 10) -> tuple[ImageDataset, ImageDataset]:
    """Class k is a noisy sinusoidal grating with one of 5 orientations and 2 frequencies at a random phase
    (more than 10 classes: 10 orientations and a period growing by 1.5 px per 10 classes): local texture, not
    position, carries the label, so small CNNs with global pooling learn it in a few steps.

    Returns (train, test), uint8 [n, channels, resolution, resolution] with labels in 0..num_classes-1.
    Raises DataError for sizes out of range."""
    for key, v, lo in (("n_train", n_train, 1), ("n_test", n_test, 1), ("channels", channels, 1),
                       ("resolution", resolution, 4), ("num_classes", num_classes, 2)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise DataError(f"synthetic dataset option {key} must be an integer >= {lo}, got {v!r}")
    g = torch.Generator().manual_seed(1234)  # host: datasets load into host memory
    yy, xx = torch.meshgrid(torch.arange(resolution, dtype=torch.float32),  # host: datasets load into host memory
                            torch.arange(resolution, dtype=torch.float32), indexing="ij")  # host: datasets load into host memory

    def make(n: int) -> ImageDataset:
        y = torch.randint(0, num_classes, (n,), generator=g)  # host: datasets load into host memory
        if num_classes <= 10:  # the original 10 patterns (kept bit for bit)
            theta = (y % 5).float() * (torch.pi / 5)
            freq = torch.where(y // 5 % 2 == 0, 1 / 3.0, 1 / 7.0) * 2 * torch.pi
        else:  # every class its own (orientation, period) pair
            theta = (y % 10).float() * (torch.pi / 10)
            freq = 2 * torch.pi / (2.5 + 1.5 * (y // 10).float())
        phase = torch.rand(n, generator=g) * 2 * torch.pi  # host: datasets load into host memory
        wave = torch.sin(freq.view(-1, 1, 1) * (xx * theta.cos().view(-1, 1, 1) + yy * theta.sin().view(-1, 1, 1))
                         + phase.view(-1, 1, 1))
        img = 128 + 90 * wave.unsqueeze(1) + 30 * torch.randn(n, channels, resolution, resolution, generator=g)  # host: datasets load into host memory
        return ImageDataset(img.clamp(0, 255).to(torch.uint8), y, num_classes, "synthetic")

    return make(n_train), make(n_test)


def dataset_options(name: str, given: dict[str, Any] | None) -> dict[str, Any]:
    """The checked options of dataset `name` (only those given; the reader's defaults fill the rest).

    Raises:
        ConfigError: an unknown option (the valid ones are listed), a wrong type or a value out of range.
    """
    DATASETS.get(name)
    return options.resolve(DATASET_OPTIONS.get(name, {}), given or {}, f"dataset '{name}'", fill=False)


def stored_dataset_options(cfg: dict[str, Any]) -> dict[str, Any]:
    """The dataset options of a stored run config. Runs written before the key existed read image folders
    at 32x32 RGB (the reader's old fixed size), so their models are rebuilt on the same input."""
    if "dataset_options" in cfg:
        return dict(cfg["dataset_options"] or {})
    return {"resolution": 32, "channels": 3} if cfg.get("dataset") == "image-folder" else {}


def load_dataset(name: str, root: str | Path | None = None, download: bool = False,
                 options: dict[str, Any] | None = None) -> tuple[ImageDataset, ImageDataset]:
    """(train, test) for a registered dataset name, with its `options` (DATASET_OPTIONS; checked here).
    Raises ConfigError for an unknown dataset or option, DataError for missing or inconsistent files."""
    loader: Callable = DATASETS.get(name)
    return loader(root=root, download=download, **dataset_options(name, options))


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
