"""Data loaders: CIFAR-10 on tiny batch files in the official pickle format, and the shipped digits."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest

from xpnet.data_utils import (
    CIFAR10_URL,
    get_CIFAR10_data,
    get_digits_data,
    load_CIFAR10,
    load_CIFAR_batch,
    load_digits,
)

PER_BATCH = 20


class _Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (BINSTRING opcodes), as the official CIFAR-10 files were written.

    Loaded with ``encoding='latin1'`` these become ``str``: dict keys ``'data'``, and the array payload as text that
    NumPy decodes back to bytes, the exact path the real files take.
    """

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch = pickle._Pickler.dispatch.copy()
    dispatch[bytes] = save_py2_str


def _write_py2_batch(path, data, labels, name):
    batch = {
        b"batch_label": name.encode(),
        b"labels": [int(v) for v in labels],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(batch)


@pytest.fixture
def cifar(tmp_path):
    """A CIFAR-10 folder of 5 data batches and a test batch, PER_BATCH random images each, and the raw arrays."""
    rng = np.random.default_rng(0)
    raw = {}
    for name in [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=PER_BATCH)
        _write_py2_batch(tmp_path / name, data, labels, name)
        raw[name] = (data, labels)
    train_data = np.concatenate([raw[f"data_batch_{b}"][0] for b in range(1, 6)])
    train_labels = np.concatenate([raw[f"data_batch_{b}"][1] for b in range(1, 6)])
    return tmp_path, (train_data, train_labels), raw["test_batch"]


def test_load_CIFAR_batch_pixel_layout(cifar):
    root, _, (data, labels) = cifar
    X, y = load_CIFAR_batch(root / "test_batch")
    assert X.shape == (PER_BATCH, 32, 32, 3) and X.dtype == np.float64
    assert y.shape == (PER_BATCH,) and y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    # A row is the red 32x32 plane, then green, then blue.
    for i, r, c, ch in [(0, 0, 0, 0), (3, 5, 31, 1), (PER_BATCH - 1, 31, 7, 2)]:
        assert X[i, r, c, ch] == data[i, ch * 1024 + r * 32 + c]


def test_load_CIFAR_batch_accepts_bytes_keys(tmp_path):
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    with open(tmp_path / "b", "wb") as f:
        pickle.dump({b"data": data, b"labels": [1, 2]}, f)
    X, y = load_CIFAR_batch(tmp_path / "b")
    np.testing.assert_array_equal(X.transpose(0, 3, 1, 2).reshape(2, -1), data)
    np.testing.assert_array_equal(y, [1, 2])


def test_load_CIFAR_batch_rejects_bad_files(tmp_path):
    with open(tmp_path / "wrong_shape", "wb") as f:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"'data' must have shape \(N, 3072\), got \(2, 100\)"):
        load_CIFAR_batch(tmp_path / "wrong_shape")
    with open(tmp_path / "no_labels", "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8)}, f)
    with pytest.raises(ValueError, match="'labels' entry"):
        load_CIFAR_batch(tmp_path / "no_labels")


def test_load_CIFAR10_concatenates_batches_in_order(cifar):
    root, (train_data, train_labels), (test_data, test_labels) = cifar
    X_train, y_train, X_test, y_test = load_CIFAR10(root)
    assert X_train.shape == (5 * PER_BATCH, 32, 32, 3) and X_test.shape == (PER_BATCH, 32, 32, 3)
    np.testing.assert_array_equal(X_train.transpose(0, 3, 1, 2).reshape(-1, 3072), train_data)
    np.testing.assert_array_equal(y_train, train_labels)
    np.testing.assert_array_equal(X_test.transpose(0, 3, 1, 2).reshape(-1, 3072), test_data)
    np.testing.assert_array_equal(y_test, test_labels)


def test_get_CIFAR10_data_splits_and_nchw(cifar):
    root, (train_data, train_labels), (test_data, test_labels) = cifar
    data = get_CIFAR10_data(70, 20, 10, subtract_mean=False, cifar10_dir=root)
    nchw = train_data.reshape(-1, 3, 32, 32).astype(np.float64)
    expected = {
        "X_train": nchw[:70],
        "y_train": train_labels[:70],
        "X_val": nchw[70:90],
        "y_val": train_labels[70:90],
        "X_test": test_data.reshape(-1, 3, 32, 32)[:10].astype(np.float64),
        "y_test": test_labels[:10],
    }
    assert sorted(data) == sorted(expected)
    for key, value in expected.items():
        assert data[key].dtype == (np.float64 if key.startswith("X") else np.int64), key
        np.testing.assert_array_equal(data[key], value, err_msg=key)
    assert data["X_train"].flags.c_contiguous


def test_get_CIFAR10_data_subtracts_training_mean(cifar):
    root, (train_data, _), (test_data, _) = cifar
    data = get_CIFAR10_data(50, 30, 20, cifar10_dir=root, dtype=np.float32)
    nchw = train_data.reshape(-1, 3, 32, 32).astype(np.float64)
    mean = nchw[:50].mean(axis=0)
    assert data["X_train"].dtype == np.float32
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(data["X_val"], nchw[50:80] - mean, atol=1e-4)
    np.testing.assert_allclose(data["X_test"], test_data.reshape(-1, 3, 32, 32) - mean, atol=1e-4)


def test_get_CIFAR10_data_directory_from_env(cifar, monkeypatch, tmp_path_factory):
    root = cifar[0]
    monkeypatch.setenv("XPNET_CIFAR10_DIR", str(root))
    assert get_CIFAR10_data(10, 5, 5)["X_train"].shape == (10, 3, 32, 32)
    # The argument wins over the environment variable.
    monkeypatch.setenv("XPNET_CIFAR10_DIR", str(tmp_path_factory.mktemp("empty") / "nothing"))
    assert get_CIFAR10_data(10, 5, 5, cifar10_dir=root)["X_val"].shape == (5, 3, 32, 32)


def test_get_CIFAR10_data_missing_directory(tmp_path, monkeypatch):
    missing = tmp_path / "cifar-10-batches-py"
    with pytest.raises(FileNotFoundError) as info:
        get_CIFAR10_data(cifar10_dir=missing)
    for text in (str(missing), CIFAR10_URL, "XPNET_CIFAR10_DIR", "cifar10_dir"):
        assert text in str(info.value)
    missing.mkdir()
    with pytest.raises(FileNotFoundError, match="give the folder inside it instead"):
        get_CIFAR10_data(cifar10_dir=tmp_path)
    monkeypatch.delenv("XPNET_CIFAR10_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="XPNET_CIFAR10_DIR is not set"):
        get_CIFAR10_data()


def test_get_CIFAR10_data_rejects_counts_beyond_the_data(cifar):
    root = cifar[0]
    with pytest.raises(ValueError, match=r"num_training \+ num_validation must be at most 100.*got 90 \+ 20"):
        get_CIFAR10_data(90, 20, 5, cifar10_dir=root)
    with pytest.raises(ValueError, match="num_test must be at most 20, got 21"):
        get_CIFAR10_data(10, 10, 21, cifar10_dir=root)
    with pytest.raises(ValueError, match="num_validation must be a non-negative integer, got -1"):
        get_CIFAR10_data(10, -1, 5, cifar10_dir=root)
    with pytest.raises(ValueError, match="num_training must be an integer >= 1, got 0"):
        get_CIFAR10_data(0, 10, 5, cifar10_dir=root)


def test_digits_shapes_dtypes_and_labels():
    data = get_digits_data()
    sizes = {"train": 1797 - 400, "val": 200, "test": 200}
    for split, n in sizes.items():
        X, y = data[f"X_{split}"], data[f"y_{split}"]
        assert X.shape == (n, 1, 8, 8) and X.dtype == np.float32, split
        assert y.shape == (n,) and y.dtype == np.int64, split
        assert y.min() >= 0 and y.max() <= 9, split
    assert set(np.unique(data["y_train"])) == set(range(10))
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0.0, atol=1e-5)


def test_digits_splits_partition_the_shipped_images():
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    data = get_digits_data(300, 100, subtract_mean=False, seed=3)
    X = np.concatenate([data["X_train"], data["X_val"], data["X_test"]])
    y = np.concatenate([data["y_train"], data["y_val"], data["y_test"]])
    assert data["X_val"].shape[0] == 300 and data["X_test"].shape[0] == 100
    assert X.min() == 0.0 and X.max() == 1.0
    # Undo the /16 scaling: every shipped image (with its label) appears exactly once across the three splits.
    pairs = sorted(zip(map(bytes, (X * 16).round().astype(np.uint8).reshape(len(X), 64)), y.tolist()))
    originals = sorted(zip(map(bytes, images.reshape(-1, 64)), labels.tolist()))
    assert pairs == originals


def test_digits_mean_subtraction_uses_training_mean():
    raw = get_digits_data(subtract_mean=False, seed=1)
    centred = get_digits_data(seed=1)
    mean = raw["X_train"].mean(axis=0)
    for split in ("train", "val", "test"):
        np.testing.assert_allclose(centred[f"X_{split}"], raw[f"X_{split}"] - mean, atol=1e-6)
        np.testing.assert_array_equal(centred[f"y_{split}"], raw[f"y_{split}"])


def test_digits_seeded_shuffle_is_deterministic():
    a, b, c = get_digits_data(seed=7), get_digits_data(seed=7), get_digits_data(seed=8)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert not np.array_equal(a["y_train"], c["y_train"])


def test_digits_num_training_and_dtype():
    data = get_digits_data(100, 100, num_training=50, dtype=np.float64)
    assert data["X_train"].shape == (50, 1, 8, 8) and data["X_train"].dtype == np.float64
    with pytest.raises(ValueError, match="num_training must be at most 1597"):
        get_digits_data(100, 100, num_training=1598)
    with pytest.raises(ValueError, match="num_validation \\+ num_test must leave training images"):
        get_digits_data(1000, 797)
    with pytest.raises(ValueError, match="num_training must be an integer >= 1, got 0"):
        get_digits_data(num_training=0)
    with pytest.raises(ValueError, match="num_test must be a non-negative integer, got 2.5"):
        get_digits_data(10, 2.5)
