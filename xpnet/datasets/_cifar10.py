"""The CIFAR-10 python release: where its files are named, and reading them (batches through the restricted unpickler
of ``_safe_pickle``, so a tampered batch file cannot run code; every damaged or wrong file is a ValueError naming it).
"""

from __future__ import annotations

import io
import os
import pickle
import reprlib

import numpy as np

from . import _safe_pickle

__all__ = ["load_CIFAR_batch", "load_CIFAR10"]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ENV = "XPNET_CIFAR10_DIR"
CACHE_ENV = "XPNET_CACHE_DIR"
CIFAR10_FOLDER = "cifar-10-batches-py"
# Where CS231n's get_datasets.sh unpacks the data, relative to the assignment folder a notebook runs in.
CS231N_DIR = os.path.join("cs231n", "datasets", CIFAR10_FOLDER)
CIFAR10_BATCHES = tuple(f"data_batch_{b}" for b in range(1, 6)) + ("test_batch",)
# The official archive unpacks to 186.2 MB (six batches of 31.04 MB, batches.meta, readme.html); a download that
# would unpack to more is refused, member by member, before anything is written (a gzip bomb, a sparse member).
CIFAR10_UNPACKED_MAX = 192 << 20
# The largest batch file read: the official ones are 31 MB; re-pickled copies of the 10000 images are larger (Python
# 3 at protocol 2 stores bytes as UTF-8 text, up to 62 MB; int64 pixels take 246 MB). Checked before reading, so
# a huge or sparse file is a ValueError naming it, not a MemoryError.
_BATCH_MAX_BYTES = 256 << 20
CLI = "python -m xpnet.data_utils download-cifar10"
CIFAR10_HOWTO = (
    f"get it with get_CIFAR10_data(download=True) or `{CLI} [DIR]`, or download {CIFAR10_URL} and extract it "
    f"(tar -xzf cifar-10-python.tar.gz gives {CIFAR10_FOLDER}/), then pass cifar10_dir=... or set the environment "
    f"variable {CIFAR10_ENV}"
)


def load_CIFAR_batch(filename):
    """Load one CIFAR-10 batch file (``data_batch_1`` ... ``data_batch_5``, ``test_batch``).

    The file is a pickle, read by a restricted unpickler that builds only what the format holds: dicts, lists,
    bytes, str, ints and plain integer or float NumPy arrays. Any other global (``os.system``...) is refused by
    name before it is called, so a tampered folder cannot run code. The official files are protocol-2 pickles
    written by Python 2; Python 3 copies (any protocol from 2 on, bytes or str keys) load too.

    Parameters
    ----------
    filename : str or os.PathLike
        The batch file.

    Returns
    -------
    X : numpy.ndarray of shape (N, 32, 32, 3)
        Float64 pixel values 0..255 (N = 10000 in the real files).
    y : int64 array of shape (N,), labels 0..9

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Naming the file: it is empty, larger than 256 MiB (checked before reading it), not a pickle, truncated or
        damaged, names a global the format does not use, or is not a CIFAR-10 batch (``'data'`` not integer pixel
        values 0..255 of shape (N, 3072), ``'labels'`` not N integers in [0, 10)).
    """
    filename = as_path("filename", filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"CIFAR-10 batch file {filename!r} does not exist; {CIFAR10_HOWTO}")
    data, y = read_batch(filename)
    # Each row stores the red plane, then green, then blue, each 32x32 row-major.
    X = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64)
    return X, y


def read_batch(filename):
    """The checked ``data`` (integer array (N, 3072)) and ``labels`` (int64 (N,)) of an existing batch file."""
    with open(filename, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > _BATCH_MAX_BYTES:
            raise _too_large(filename, size)
        raw = f.read(_BATCH_MAX_BYTES + 1)  # bounded: the file may have grown since
    if len(raw) > _BATCH_MAX_BYTES:
        raise _too_large(filename, len(raw))
    batch = _unpickle_batch(raw, filename)
    data = _batch_data(_entry(batch, "data", filename), filename)
    y = _batch_labels(_entry(batch, "labels", filename), filename)
    if y.shape[0] != data.shape[0]:
        raise ValueError(f"{filename!r}: expected {data.shape[0]} labels to match 'data', got {y.shape[0]}")
    return data, y


def _too_large(filename, size):
    return ValueError(
        f"{filename!r} is {size} bytes, more than any CIFAR-10 batch (the official ones are about 31 MB; xpnet reads "
        f"batch files up to {_BATCH_MAX_BYTES} bytes): it is damaged or not a batch; {CIFAR10_HOWTO}"
    )


def _entry(batch, key, filename):
    """``batch[key]``: the official Python 2 pickles give str keys under latin1, re-pickled copies bytes keys."""
    if isinstance(batch, dict):
        for k in (key, key.encode()):
            if k in batch:
                return batch[k]
    keys = sorted(map(reprlib.repr, batch)) if isinstance(batch, dict) else type(batch).__name__
    raise ValueError(f"{filename!r} is not a CIFAR-10 batch: expected a dict with a {key!r} entry, got {keys}")


def _batch_data(data, filename):
    data = _built_array(data, "data", filename)
    if not isinstance(data, np.ndarray):
        raise ValueError(f"{filename!r}: 'data' must be a NumPy array of shape (N, 3072), got {type(data).__name__}")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{filename!r}: 'data' must have shape (N, 3072), got {data.shape}")
    if data.dtype.kind not in "iu":
        raise ValueError(
            f"{filename!r}: 'data' must hold integer pixel values 0..255 (uint8 in the official files), "
            f"got {data.dtype}"
        )
    if data.dtype != np.uint8 and data.size:
        low, high = data.min(), data.max()
        if low < 0 or high > 255:
            raise ValueError(f"{filename!r}: 'data' must hold pixel values 0..255, got {int(low if low < 0 else high)}")
    return data


def _batch_labels(labels, filename):
    """The labels as an int64 array, refusing anything but integers in [0, 10): floats are never truncated."""
    labels = _built_array(labels, "labels", filename)
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            raise ValueError(
                f"{filename!r}: 'labels' must be a list of integers or an integer array, got a {labels.dtype} array"
            )
        if labels.ndim != 1:
            raise ValueError(f"{filename!r}: 'labels' must be one-dimensional, got shape {labels.shape}")
        bad = np.flatnonzero((labels < 0) | (labels >= 10))
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{filename!r}: labels must be integers in [0, 10), got {int(labels[i])} at index {i}")
        return labels.astype(np.int64)
    if not isinstance(labels, list):
        raise ValueError(
            f"{filename!r}: 'labels' must be a list of integers or an integer array, got {type(labels).__name__}"
        )
    for i, v in enumerate(labels):
        # bool is an int subclass; NumPy ints come from re-pickled copies (numpy.core.multiarray.scalar).
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < 10:
            shown = int(v) if isinstance(v, np.integer) else reprlib.repr(v)
            raise ValueError(f"{filename!r}: labels must be integers in [0, 10), got {shown} at index {i}")
    return np.array(labels, dtype=np.int64)


def _built_array(value, key, filename):
    if isinstance(value, _safe_pickle.PickledArray):
        if value.array is None:
            raise ValueError(f"{filename!r}: {key!r} is a NumPy array without its data (the pickle never sets it)")
        return value.array
    return value


def _unpickle_batch(raw, filename):
    """Unpickle a batch file's bytes with the restricted unpickler; every failure is a ValueError naming the file."""
    if raw[:1] != pickle.PROTO:
        if not raw:
            what = "is empty"
        elif raw[:2] == b"\x1f\x8b":
            what = "is gzip-compressed: give the batch files extracted from the archive"
        else:
            what = (
                f"is not a pickle of protocol 2 or later (first bytes {raw[:8]!r}; the official batches start "
                f"with {pickle.PROTO + bytes([2])!r})"
            )
        raise ValueError(f"{filename!r} {what}; {CIFAR10_HOWTO}")
    try:
        return _safe_pickle.BatchUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as err:  # damaged bytes can make a pickle interpreter raise nearly anything
        # Diagnosed on the opcode stream: the unpickler reads protocol-4 frames whole, so where it stopped says
        # little, and a file cut inside a GLOBAL line names only the start of a real global.
        truncated, damage = _safe_pickle.scan_opcodes(raw)
        if truncated:
            raise ValueError(
                f"{filename!r} is truncated or damaged: its {len(raw)} bytes end before the pickle does; "
                f"download and extract it again"
            ) from err
        if isinstance(err, _safe_pickle.Refused):
            raise ValueError(f"{filename!r}: {err}") from None
        raise ValueError(f"{filename!r} is damaged: {damage or f'{type(err).__name__}: {str(err)[:200]}'}") from err


def load_CIFAR10(ROOT):
    """Load the whole CIFAR-10 python release from folder ``ROOT`` (``cifar-10-batches-py``).

    Parameters
    ----------
    ROOT : str or os.PathLike
        The folder holding ``data_batch_1`` ... ``data_batch_5`` and ``test_batch`` (CS231n's argument name).

    Returns
    -------
    X_train : numpy.ndarray of shape (50000, 32, 32, 3), float64
    y_train : numpy.ndarray of shape (50000,), int64
    X_test : numpy.ndarray of shape (10000, 32, 32, 3), float64
    y_test : numpy.ndarray of shape (10000,), int64
    """
    root = as_path("ROOT", ROOT)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"CIFAR-10 directory {root!r} does not exist; {CIFAR10_HOWTO}")
    inside = nested(root)
    if inside:
        raise FileNotFoundError(f"{root!r} {inside}")
    X_train, y_train, X_test, y_test = read_release(root)
    to_nhwc = (0, 2, 3, 1)
    return X_train.transpose(to_nhwc).astype(np.float64), y_train, X_test.transpose(to_nhwc).astype(np.float64), y_test


def read_release(root):
    """The training and test pixels as stored, integer (N, 3, 32, 32) (channels-first already: each row of a batch
    holds the red plane, then green, then blue), and their int64 labels; ``root`` is an existing folder."""
    for name in [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CIFAR-10 batch file {path!r} does not exist; {CIFAR10_HOWTO}")
    batches = [read_batch(os.path.join(root, f"data_batch_{b}")) for b in range(1, 6)]
    X_train = np.concatenate([data for data, _ in batches]).reshape(-1, 3, 32, 32)
    y_train = np.concatenate([y for _, y in batches])
    X_test, y_test = read_batch(os.path.join(root, "test_batch"))
    return X_train, y_train, X_test.reshape(-1, 3, 32, 32), y_test


def nested(folder):
    """What to say when ``folder`` holds the archive's folder instead of the batches, else ``''``."""
    inner = os.path.join(folder, CIFAR10_FOLDER)
    if not os.path.exists(os.path.join(folder, "data_batch_1")) and os.path.isdir(inner):
        return f"holds no data_batch_1; give the folder inside it instead: {inner!r}"
    return ""


def as_path(name, value):
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    return os.fsdecode(value)
