"""Data: in-memory datasets, deterministic splits and a vectorised augmenting loader."""
from .datasets import (
    ImageDataset, SearchData, download_idx, final_split, load_dataset, search_split, split_indices,
)
from .idx import read_idx
from .loader import Loader, cutout, random_crop, random_hflip

__all__ = ["ImageDataset", "SearchData", "Loader", "load_dataset", "search_split", "final_split", "split_indices",
           "read_idx", "download_idx", "random_crop", "random_hflip", "cutout"]
