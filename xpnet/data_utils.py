"""Data sets as CS231n prepares them: CIFAR-10 from its python pickles, and the small digits set shipped with xpnet.

Everything here returns NumPy arrays on the host; the Solver moves them to the model's backend once.
"""

from __future__ import annotations

import os
import pickle
from importlib import resources

import numpy as np

__all__ = ["load_CIFAR_batch", "load_CIFAR10", "get_CIFAR10_data", "load_digits", "get_digits_data"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ENV = "XPNET_CIFAR10_DIR"
_CIFAR10_HOWTO = (
    f"download {CIFAR10_URL}, extract it (tar -xzf cifar-10-python.tar.gz gives cifar-10-batches-py/), "
    f"then pass cifar10_dir=... or set the environment variable {CIFAR10_ENV}"
)


def load_CIFAR_batch(filename):
    """Load one CIFAR-10 batch file (``data_batch_1`` ... ``data_batch_5``, ``test_batch``).

    Returns
    -------
    X : float64 array of shape (N, 32, 32, 3), pixel values 0..255 (N = 10000 in the real files)
    y : int64 array of shape (N,), labels 0..9
    """
    filename = os.fspath(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"CIFAR-10 batch file {filename!r} does not exist; {_CIFAR10_HOWTO}")
    with open(filename, "rb") as f:
        # latin1 decodes the Python 2 pickles of the official release without touching the uint8 payload.
        batch = pickle.load(f, encoding="latin1")
    data, labels = np.asarray(_entry(batch, "data", filename)), _entry(batch, "labels", filename)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{filename!r}: 'data' must have shape (N, 3072), got {data.shape}")
    y = np.asarray(labels, dtype=np.int64)
    if y.shape != (data.shape[0],):
        raise ValueError(f"{filename!r}: expected {data.shape[0]} labels to match 'data', got shape {y.shape}")
    # Each row stores the red plane, then green, then blue, each 32x32 row-major.
    X = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64)
    return X, y


def _entry(batch, key, filename):
    """``batch[key]``: the official Python 2 pickles give str keys under latin1, re-pickled copies bytes keys."""
    if isinstance(batch, dict):
        for k in (key, key.encode()):
            if k in batch:
                return batch[k]
    keys = sorted(map(repr, batch)) if isinstance(batch, dict) else type(batch).__name__
    raise ValueError(f"{filename!r} is not a CIFAR-10 batch: expected a dict with a {key!r} entry, got {keys}")


def load_CIFAR10(ROOT):
    """Load the whole CIFAR-10 python release from folder ``ROOT`` (``cifar-10-batches-py``).

    Returns
    -------
    X_train : (50000, 32, 32, 3) float64,  y_train : (50000,) int64
    X_test : (10000, 32, 32, 3) float64,   y_test : (10000,) int64
    """
    root = os.fspath(ROOT)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"CIFAR-10 directory {root!r} does not exist; {_CIFAR10_HOWTO}")
    inner = os.path.join(root, "cifar-10-batches-py")
    if not os.path.exists(os.path.join(root, "data_batch_1")) and os.path.isdir(inner):
        raise FileNotFoundError(f"{root!r} holds no data_batch_1; give the folder inside it instead: {inner!r}")
    batches = [load_CIFAR_batch(os.path.join(root, f"data_batch_{b}")) for b in range(1, 6)]
    X_train = np.concatenate([X for X, _ in batches])
    y_train = np.concatenate([y for _, y in batches])
    X_test, y_test = load_CIFAR_batch(os.path.join(root, "test_batch"))
    return X_train, y_train, X_test, y_test


def _check_count(name, value, *, low=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        what = "a non-negative integer" if low == 0 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def _finish(X_train, y_train, X_val, y_val, X_test, y_test, *, subtract_mean, dtype):
    """Cast, subtract the training mean image and return CS231n's data dict."""
    # Contiguous copies: the channels-first transpose is otherwise a strided view of the channels-last data.
    X_train, X_val, X_test = (np.ascontiguousarray(X, dtype=dtype) for X in (X_train, X_val, X_test))
    if subtract_mean:
        mean_image = np.mean(X_train, axis=0)
        X_train, X_val, X_test = X_train - mean_image, X_val - mean_image, X_test - mean_image
    return {
        "X_train": X_train,
        "y_train": y_train,
        "X_val": X_val,
        "y_val": y_val,
        "X_test": X_test,
        "y_test": y_test,
    }


def get_CIFAR10_data(
    num_training=49000, num_validation=1000, num_test=1000, subtract_mean=True, *, cifar10_dir=None, dtype=np.float64
):
    """CIFAR-10 split and preprocessed as in CS231n.

    Training images are the first ``num_training`` of the 50000, validation the next ``num_validation``, test the
    first ``num_test`` of the test batch. With ``subtract_mean`` the mean image of the training subset is subtracted
    from all three. Images are transposed to channels-first.

    Parameters
    ----------
    cifar10_dir : folder holding ``data_batch_1`` ... ``test_batch``; defaults to the environment variable
        ``XPNET_CIFAR10_DIR``.
    dtype : float dtype of the images (CS231n uses float64; float32 halves the 600 MB).

    Returns
    -------
    dict with ``X_train`` (num_training, 3, 32, 32), ``y_train`` (num_training,), and likewise ``X_val``,
    ``y_val``, ``X_test``, ``y_test``; NumPy arrays, labels int64.
    """
    if cifar10_dir is None:
        cifar10_dir = os.environ.get(CIFAR10_ENV) or None
    if cifar10_dir is None:
        raise FileNotFoundError(
            f"no CIFAR-10 directory given: cifar10_dir is None and {CIFAR10_ENV} is not set; {_CIFAR10_HOWTO}"
        )
    num_training = _check_count("num_training", num_training, low=1)
    num_validation = _check_count("num_validation", num_validation)
    num_test = _check_count("num_test", num_test)
    X_train, y_train, X_test, y_test = load_CIFAR10(cifar10_dir)
    if num_training + num_validation > X_train.shape[0]:
        raise ValueError(
            f"num_training + num_validation must be at most {X_train.shape[0]} (the training images in "
            f"{os.fspath(cifar10_dir)!r}), got {num_training} + {num_validation}"
        )
    if num_test > X_test.shape[0]:
        raise ValueError(f"num_test must be at most {X_test.shape[0]}, got {num_test}")
    val = slice(num_training, num_training + num_validation)
    to_nchw = (0, 3, 1, 2)
    return _finish(
        X_train[:num_training].transpose(to_nchw),
        y_train[:num_training],
        X_train[val].transpose(to_nchw),
        y_train[val],
        X_test[:num_test].transpose(to_nchw),
        y_test[:num_test],
        subtract_mean=subtract_mean,
        dtype=dtype,
    )


def load_digits():
    """The 1797 handwritten digits shipped with xpnet (scikit-learn's copy of the UCI set, CC BY 4.0).

    Returns
    -------
    images : uint8 array of shape (1797, 8, 8), values 0..16
    labels : int64 array of shape (1797,), values 0..9
    """
    with (resources.files(__package__) / "datasets" / "digits.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as data:
            return data["images"], data["labels"]


def get_digits_data(
    num_validation=200, num_test=200, subtract_mean=True, seed=0, *, num_training=None, dtype=np.float32
):
    """The shipped 8x8 digits in CS231n's data dict form: a small data set that trains to >95% in seconds.

    The 1797 images are shuffled with ``numpy.random.default_rng(seed)``, then split into validation, test and
    training sets (training takes the rest, or the first ``num_training`` of the rest). Pixels are scaled from
    0..16 to [0, 1]; with ``subtract_mean`` the training mean image is then subtracted from all three sets.

    Returns
    -------
    dict with ``X_train`` (num_training, 1, 8, 8) ``dtype``, ``y_train`` (num_training,) int64, and likewise
    ``X_val``, ``y_val``, ``X_test``, ``y_test``; NumPy arrays.
    """
    images, labels = load_digits()
    n = images.shape[0]
    num_validation = _check_count("num_validation", num_validation)
    num_test = _check_count("num_test", num_test)
    rest = n - num_validation - num_test
    if rest < 1:
        raise ValueError(
            f"num_validation + num_test must leave training images out of {n}, got {num_validation} + {num_test}"
        )
    if num_training is not None:
        num_training = _check_count("num_training", num_training, low=1)
        if num_training > rest:
            raise ValueError(
                f"num_training must be at most {rest} (the {n} digits less validation and test), got {num_training}"
            )
        rest = num_training
    order = np.random.default_rng(seed).permutation(n)
    X = images[order].reshape(n, 1, 8, 8) / 16.0
    y = labels[order]
    val, test = slice(0, num_validation), slice(num_validation, num_validation + num_test)
    train = slice(num_validation + num_test, num_validation + num_test + rest)
    return _finish(X[train], y[train], X[val], y[val], X[test], y[test], subtract_mean=subtract_mean, dtype=dtype)
