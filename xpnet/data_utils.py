"""Data sets as CS231n prepares them: CIFAR-10 from its python pickles, and the small digits set shipped with xpnet.

Everything here returns NumPy arrays on the host; the Solver moves them to the model's backend once. CIFAR-10
batches are read by a restricted unpickler (``xpnet._safe_pickle``) that builds only what the format holds, so a
tampered batch file cannot run code; every damaged or wrong file is a ValueError naming it.

Where CIFAR-10 is looked for, first match wins (a set place is never skipped for a later one):

1. the ``cifar10_dir`` argument;
2. the environment variable ``XPNET_CIFAR10_DIR``;
3. the cache folder ``<cache>/cifar-10-batches-py``, where ``<cache>`` is ``$XPNET_CACHE_DIR`` if set, else
   ``$XDG_CACHE_HOME/xpnet`` if that is set to an absolute path, else ``~/.cache/xpnet``.

``get_CIFAR10_data(download=True)``, :func:`download_CIFAR10` and ``python -m xpnet.data_utils download-cifar10
[DIR]`` download the official archive into that folder (or DIR) when it is absent; see ``xpnet._download`` for
how the download is verified and unpacked.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import reprlib
import shlex
import sys
from importlib import resources

import numpy as np

from . import _download, _safe_pickle
from ._random import check_seed

__all__ = [
    "load_CIFAR_batch",
    "load_CIFAR10",
    "get_CIFAR10_data",
    "download_CIFAR10",
    "default_CIFAR10_dir",
    "load_digits",
    "get_digits_data",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ENV = "XPNET_CIFAR10_DIR"
CACHE_ENV = "XPNET_CACHE_DIR"
_CIFAR10_FOLDER = "cifar-10-batches-py"
# Where CS231n's get_datasets.sh unpacks the data, relative to the assignment folder a notebook runs in.
_CS231N_DIR = os.path.join("cs231n", "datasets", _CIFAR10_FOLDER)
_CIFAR10_BATCHES = tuple(f"data_batch_{b}" for b in range(1, 6)) + ("test_batch",)
# The official archive unpacks to 186.2 MB (six batches of 31.04 MB, batches.meta, readme.html); a download that
# would unpack to more is refused, member by member, before anything is written (a gzip bomb, a sparse member).
_CIFAR10_UNPACKED_MAX = 192 << 20
# The largest batch file read: the official ones are 31 MB; re-pickled copies of the 10000 images are larger (Python
# 3 at protocol 2 stores bytes as UTF-8 text, up to 62 MB; int64 pixels take 246 MB). Checked before reading, so
# a huge or sparse file is a ValueError naming it, not a MemoryError.
_BATCH_MAX_BYTES = 256 << 20
_CLI = "python -m xpnet.data_utils download-cifar10"
_CIFAR10_HOWTO = (
    f"get it with get_CIFAR10_data(download=True) or `{_CLI} [DIR]`, or download {CIFAR10_URL} and extract it "
    f"(tar -xzf cifar-10-python.tar.gz gives {_CIFAR10_FOLDER}/), then pass cifar10_dir=... or set the environment "
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

    Returns
    -------
    X : float64 array of shape (N, 32, 32, 3), pixel values 0..255 (N = 10000 in the real files)
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
    filename = _as_path("filename", filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"CIFAR-10 batch file {filename!r} does not exist; {_CIFAR10_HOWTO}")
    data, y = _read_batch(filename)
    # Each row stores the red plane, then green, then blue, each 32x32 row-major.
    X = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64)
    return X, y


def _read_batch(filename):
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
        f"batch files up to {_BATCH_MAX_BYTES} bytes): it is damaged or not a batch; {_CIFAR10_HOWTO}"
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


def load_CIFAR10(ROOT):
    """Load the whole CIFAR-10 python release from folder ``ROOT`` (``cifar-10-batches-py``).

    Returns
    -------
    X_train : (50000, 32, 32, 3) float64,  y_train : (50000,) int64
    X_test : (10000, 32, 32, 3) float64,   y_test : (10000,) int64
    """
    root = _as_path("ROOT", ROOT)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"CIFAR-10 directory {root!r} does not exist; {_CIFAR10_HOWTO}")
    nested = _nested(root)
    if nested:
        raise FileNotFoundError(f"{root!r} {nested}")
    X_train, y_train, X_test, y_test = _read_release(root)
    to_nhwc = (0, 2, 3, 1)
    return X_train.transpose(to_nhwc).astype(np.float64), y_train, X_test.transpose(to_nhwc).astype(np.float64), y_test


def _read_release(root):
    """The training and test pixels as stored, integer (N, 3, 32, 32) (channels-first already: each row of a batch
    holds the red plane, then green, then blue), and their int64 labels; ``root`` is an existing folder."""
    for name in [f"data_batch_{b}" for b in range(1, 6)] + ["test_batch"]:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"CIFAR-10 batch file {path!r} does not exist; {_CIFAR10_HOWTO}")
    batches = [_read_batch(os.path.join(root, f"data_batch_{b}")) for b in range(1, 6)]
    X_train = np.concatenate([data for data, _ in batches]).reshape(-1, 3, 32, 32)
    y_train = np.concatenate([y for _, y in batches])
    X_test, y_test = _read_batch(os.path.join(root, "test_batch"))
    return X_train, y_train, X_test.reshape(-1, 3, 32, 32), y_test


def _as_path(name, value):
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(value).__name__}")
    return os.fsdecode(value)


def _check_count(name, value, *, low=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        what = "a non-negative integer" if low == 0 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {what}, got {int(value)}")
    return int(value)


def _check_flag(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_float_dtype(dtype):
    """``np.dtype(dtype)`` if floating: casting 0..255 pixels (or 0..1 digits) to an integer dtype truncates them."""
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.kind != "f":
        raise TypeError(f"dtype must be a floating NumPy dtype (np.float32 or np.float64), got {dtype!r}")
    return resolved


def _finish(X_train, y_train, X_val, y_val, X_test, y_test, *, subtract_mean, dtype):
    """Cast, subtract the training mean image and return CS231n's data dict."""
    # Fresh contiguous copies in the final dtype (the inputs may be views of one array), so the mean is subtracted
    # in place without touching the caller's data.
    X_train, X_val, X_test = (np.array(X, dtype=dtype, order="C") for X in (X_train, X_val, X_test))
    if subtract_mean:
        mean_image = np.mean(X_train, axis=0)
        for X in (X_train, X_val, X_test):
            X -= mean_image
    return {
        "X_train": X_train,
        "y_train": y_train,
        "X_val": X_val,
        "y_val": y_val,
        "X_test": X_test,
        "y_test": y_test,
    }


def get_CIFAR10_data(
    num_training=49000,
    num_validation=1000,
    num_test=1000,
    subtract_mean=True,
    *,
    cifar10_dir=None,
    download=False,
    dtype=np.float64,
):
    """CIFAR-10 split and preprocessed as in CS231n.

    Training images are the first ``num_training`` of the 50000, validation the next ``num_validation``, test the
    first ``num_test`` of the test batch. With ``subtract_mean`` the mean image of the training subset is subtracted
    from all three. Images are transposed to channels-first.

    The data is read from ``cifar10_dir``, else from the folder named by the environment variable
    ``XPNET_CIFAR10_DIR``, else from the cache folder :func:`default_CIFAR10_dir` (``~/.cache/xpnet/
    cifar-10-batches-py`` unless ``XPNET_CACHE_DIR`` or ``XDG_CACHE_HOME`` say otherwise). The first of these that
    is set is the one read: a set variable is never skipped for the cache. When the cache folder holds no data,
    ``./cs231n/datasets/cifar-10-batches-py`` is read if it holds it: that is where CS231n's ``get_datasets.sh``
    puts the data, so a course notebook run from its assignment folder finds it.

    Parameters
    ----------
    num_training : int >= 1;  num_validation, num_test : int >= 0
        Split sizes; ``num_training + num_validation`` at most 50000, ``num_test`` at most 10000.
    subtract_mean : bool
    cifar10_dir : str or os.PathLike, optional
        Folder holding ``data_batch_1`` ... ``test_batch`` (the archive's ``cifar-10-batches-py``).
    download : bool
        If the folder does not hold the data, download the official archive (170 MB) and unpack it there
        (see :func:`download_CIFAR10`); a folder holding the data is read as it is, without any network access.
    dtype : floating NumPy dtype
        Of the images (CS231n uses float64; float32 halves the 600 MB). Integer dtypes are refused: they would
        truncate the mean-subtracted pixels.

    Returns
    -------
    dict with ``X_train`` (num_training, 3, 32, 32), ``y_train`` (num_training,), and likewise ``X_val``,
    ``y_val``, ``X_test``, ``y_test``; NumPy arrays, labels int64.

    Raises
    ------
    TypeError, ValueError
        Naming the argument, before any file is read; a ValueError naming the file for a damaged batch.
    FileNotFoundError
        The data is not there (and ``download`` is False): the message names the folder, how it was chosen, and
        every way to get the data.
    OSError, ValueError
        With ``download``: as :func:`download_CIFAR10`.
    """
    num_training = _check_count("num_training", num_training, low=1)
    num_validation = _check_count("num_validation", num_validation)
    num_test = _check_count("num_test", num_test)
    subtract_mean = _check_flag("subtract_mean", subtract_mean)
    download = _check_flag("download", download)
    dtype = _check_float_dtype(dtype)
    folder, source, absent = _find_CIFAR10(cifar10_dir)
    if absent and download:
        _download_CIFAR10(folder)
    elif absent:
        raise FileNotFoundError(_not_found(folder, source, absent))
    # Read as stored (uint8, channels-first) and converted once at the end: float64 copies of all 60000 images in
    # between would triple the peak memory (~2.8 GB) and the time.
    X_train, y_train, X_test, y_test = _read_release(folder)
    if num_training + num_validation > X_train.shape[0]:
        raise ValueError(
            f"num_training + num_validation must be at most {X_train.shape[0]} (the training images in "
            f"{folder!r}), got {num_training} + {num_validation}"
        )
    if num_test > X_test.shape[0]:
        raise ValueError(f"num_test must be at most {X_test.shape[0]}, got {num_test}")
    val = slice(num_training, num_training + num_validation)
    return _finish(
        X_train[:num_training],
        y_train[:num_training],
        X_train[val],
        y_train[val],
        X_test[:num_test],
        y_test[:num_test],
        subtract_mean=subtract_mean,
        dtype=dtype,
    )


def default_CIFAR10_dir():
    """The folder :func:`get_CIFAR10_data` reads when neither ``cifar10_dir`` nor ``XPNET_CIFAR10_DIR`` is given.

    It is ``<cache>/cifar-10-batches-py``, where ``<cache>`` is the environment variable ``XPNET_CACHE_DIR`` if set,
    else ``$XDG_CACHE_HOME/xpnet`` if ``XDG_CACHE_HOME`` is an absolute path (the XDG rule), else ``~/.cache/xpnet``.

    Returns
    -------
    str
        An absolute path; the folder may not exist.
    """
    cache = os.environ.get(CACHE_ENV)
    if not cache:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
        cache = os.path.join(base, "xpnet")
    return os.path.abspath(os.path.join(os.path.expanduser(cache), _CIFAR10_FOLDER))


def download_CIFAR10(cifar10_dir=None, *, progress=None, url=None, md5=None, timeout=60.0):
    """Download the official CIFAR-10 python archive and unpack its ``cifar-10-batches-py`` into ``cifar10_dir``.

    Nothing is downloaded if the folder already holds the six batches. Otherwise the archive (170 MB) is streamed
    to a temporary file beside the folder, its MD5 is verified, every member is checked (only regular files and
    folders inside ``cifar-10-batches-py/``), the batches are unpacked into a temporary folder and verified to load,
    and that folder is then renamed to ``cifar10_dir``: an interrupted download never leaves a folder that looks
    complete, and the next download removes what a killed one left. Details in ``xpnet._download``.

    Parameters
    ----------
    cifar10_dir : str or os.PathLike, optional
        The folder to fill (new or empty, or a symbolic link to such a folder; created with its parents). Defaults
        to where :func:`get_CIFAR10_data`
        looks: ``XPNET_CIFAR10_DIR``, else :func:`default_CIFAR10_dir`.
    progress : bool or None
        A tqdm progress bar on stderr (a widget in a notebook); None draws one in an interactive terminal or a
        Jupyter notebook with ipywidgets, and none when output goes to a file or a CI log.
    url : str, optional
        Where to get the archive (``https://``, ``http://`` or ``file://``); defaults to ``CIFAR10_URL``.
    md5 : str, optional
        The archive's MD5 as 32 hexadecimal digits; defaults to the official archive's, ``CIFAR10_MD5``.
    timeout : float
        Seconds without data from the server before giving up.

    Returns
    -------
    str
        The folder, absolute: pass it as ``cifar10_dir`` or set ``XPNET_CIFAR10_DIR`` to it, unless it is
        :func:`default_CIFAR10_dir`.

    Raises
    ------
    TypeError, ValueError
        Naming a bad argument, before anything is fetched.
    FileExistsError
        The folder exists and holds other files, or is a link to anything but a folder: nothing is fetched.
    OSError
        Naming the URL: HTTP error, failed connection, truncated transfer, or ``TimeoutError``; naming the file
        being written: no space left on the device (or another failed write).
    ValueError
        Naming the URL: the MD5 differs, or the archive holds an unsafe member (named: links, devices, sparse
        files...), more than the 192 MiB CIFAR-10 needs unpacked, or no valid batches.
    """
    folder, _ = _locate_CIFAR10(cifar10_dir)
    return _download_CIFAR10(folder, progress=progress, url=url, md5=md5, timeout=timeout)[0]


def _download_CIFAR10(folder, *, progress=None, url=None, md5=None, timeout=60.0):
    """``(folder, whether it was downloaded)``; the module's constants are read now, so tests can point them at a
    local server."""
    url = _download.check_url(CIFAR10_URL if url is None else url)
    md5 = _download.check_md5(CIFAR10_MD5 if md5 is None else md5)
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None (auto), got {progress!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    downloaded = _download.download_and_extract(
        url,
        md5,
        folder,
        member_root=_CIFAR10_FOLDER,
        expected_files=_CIFAR10_BATCHES,
        check=_check_unpacked,
        what="CIFAR-10",
        max_bytes=_CIFAR10_UNPACKED_MAX,
        progress=progress,
        timeout=float(timeout),
    )
    return os.path.abspath(folder), downloaded


def _check_unpacked(folder):
    """``ValueError`` unless ``folder`` holds the six batches and each of them loads."""
    for name in _CIFAR10_BATCHES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise ValueError(f"it lacks {_CIFAR10_FOLDER}/{name}")
        _read_batch(path)


def _locate_CIFAR10(cifar10_dir):
    """The folder to read and how it was chosen: the argument, else the environment variable, else the cache."""
    if cifar10_dir is not None:
        return _as_path("cifar10_dir", cifar10_dir), "from cifar10_dir"
    if os.environ.get(CIFAR10_ENV):
        return os.environ[CIFAR10_ENV], f"from {CIFAR10_ENV}"
    return default_CIFAR10_dir(), f"the default folder: cifar10_dir is not given and {CIFAR10_ENV} is not set"


def _find_CIFAR10(cifar10_dir):
    """``(folder, how it was chosen, why it holds no CIFAR-10 or '')`` for :func:`get_CIFAR10_data`.

    As :func:`_locate_CIFAR10`, and when that is the cache folder and it holds no data, CS231n's own place:
    ``cs231n/datasets/cifar-10-batches-py`` under the current folder, where the course's ``get_datasets.sh`` puts
    the data and a notebook run from the assignment folder finds it. A set argument or variable is never skipped.
    """
    folder, source = _locate_CIFAR10(cifar10_dir)
    absent = _cifar10_absent(folder)
    if absent and cifar10_dir is None and not os.environ.get(CIFAR10_ENV) and not _cifar10_absent(_CS231N_DIR):
        cache = f"the default folder {folder!r} holds no CIFAR-10"
        return os.path.abspath(_CS231N_DIR), f"CS231n's folder under the current one: {cache}", ""
    return folder, source, absent


def _nested(folder):
    """What to say when ``folder`` holds the archive's folder instead of the batches, else ``''``."""
    inner = os.path.join(folder, _CIFAR10_FOLDER)
    if not os.path.exists(os.path.join(folder, "data_batch_1")) and os.path.isdir(inner):
        return f"holds no data_batch_1; give the folder inside it instead: {inner!r}"
    return ""


def _cifar10_absent(folder):
    """Why ``folder`` does not hold CIFAR-10 (``''`` if it has every batch file)."""
    if not os.path.exists(folder):
        return "it does not exist"
    if not os.path.isdir(folder):
        return "it is a file, not a folder"
    nested = _nested(folder)
    if nested:
        return f"it {nested}"
    missing = [name for name in _CIFAR10_BATCHES if not os.path.isfile(os.path.join(folder, name))]
    return f"it lacks {', '.join(missing)}" if missing else ""


def _not_found(folder, source, absent):
    cache = os.path.join("~", ".cache", "xpnet")
    return (
        f"no CIFAR-10 in {folder!r} ({source}): {absent}. Get the data set (170 MB) in one of these ways:\n"
        f"  - get_CIFAR10_data(download=True) downloads it into that folder;\n"
        f"  - `{_CLI} [DIR]` does so from a shell (DIR defaults to that folder);\n"
        f"  - by hand: download {CIFAR10_URL}, run `tar -xzf cifar-10-python.tar.gz` and pass "
        f"cifar10_dir='.../{_CIFAR10_FOLDER}'.\n"
        f"Folders are looked for in this order: the cifar10_dir argument, the environment variable {CIFAR10_ENV}, "
        f"then <cache>/{_CIFAR10_FOLDER}, where <cache> is ${CACHE_ENV}, else $XDG_CACHE_HOME/xpnet, else {cache}, "
        f"then {os.path.join('.', _CS231N_DIR)} under the current folder (where CS231n's get_datasets.sh puts it)."
    )


def _shell_assignment(name, value):
    if os.name == "nt":
        return f"set {name}={value}   (cmd)   or   $env:{name} = '{value}'   (PowerShell)"
    return f"export {name}={shlex.quote(value)}"


def main(argv=None):
    """``python -m xpnet.data_utils download-cifar10 [DIR]``: download CIFAR-10; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m xpnet.data_utils", description="Data sets for xpnet.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cifar = commands.add_parser(
        "download-cifar10",
        help="download and unpack CIFAR-10 (170 MB)",
        description="Download the official CIFAR-10 python archive, verify its MD5 and unpack its batches into DIR. "
        "Nothing is downloaded if DIR already holds them.",
    )
    cifar.add_argument(
        "dir",
        nargs="?",
        metavar="DIR",
        help="the folder to fill with data_batch_1 ... test_batch, new or empty (default: $XPNET_CIFAR10_DIR if "
        f"set, else {default_CIFAR10_dir()})",
    )
    cifar.add_argument("--url", default=CIFAR10_URL, help="a mirror of the archive (default: %(default)s)")
    cifar.add_argument(
        "--md5", default=CIFAR10_MD5, help="the archive's expected MD5 (default: the official one, %(default)s)"
    )
    cifar.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    args = parser.parse_args(argv)
    try:
        md5 = _download.check_md5(args.md5, name="--md5")
        url = _download.check_url(args.url, name="--url")
    except ValueError as err:
        cifar.error(str(err))
    try:
        folder, _ = _locate_CIFAR10(args.dir)
        folder, downloaded = _download_CIFAR10(folder, progress=args.progress, url=url, md5=md5)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was kept", file=sys.stderr)
        return 130
    print(f"CIFAR-10 is in {folder!r}" if downloaded else f"CIFAR-10 is already in {folder!r}; nothing downloaded")
    if os.path.abspath(_locate_CIFAR10(None)[0]) != folder:
        print(
            "get_CIFAR10_data() finds it there once the environment variable is set: "
            f"{_shell_assignment(CIFAR10_ENV, folder)}   (or pass cifar10_dir={folder!r})"
        )
    return 0


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

    Parameters
    ----------
    num_validation, num_test : int >= 0;  num_training : int >= 1, optional
    subtract_mean : bool
    seed : None, int >= 0 or a NumPy SeedSequence/BitGenerator/Generator
    dtype : floating NumPy dtype (integer dtypes would truncate the [0, 1] pixels to 0 and 1)

    Returns
    -------
    dict with ``X_train`` (num_training, 1, 8, 8) ``dtype``, ``y_train`` (num_training,) int64, and likewise
    ``X_val``, ``y_val``, ``X_test``, ``y_test``; NumPy arrays.

    Raises
    ------
    TypeError, ValueError
        Naming the argument.
    """
    num_validation = _check_count("num_validation", num_validation)
    num_test = _check_count("num_test", num_test)
    if num_training is not None:
        num_training = _check_count("num_training", num_training, low=1)
    subtract_mean = _check_flag("subtract_mean", subtract_mean)
    seed = check_seed(seed, generator=True)
    dtype = _check_float_dtype(dtype)
    images, labels = load_digits()
    n = images.shape[0]
    rest = n - num_validation - num_test
    if rest < 1:
        raise ValueError(
            f"num_validation + num_test must leave training images out of {n}, got {num_validation} + {num_test}"
        )
    if num_training is not None:
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
        raise ValueError(f"{filename!r} {what}; {_CIFAR10_HOWTO}")
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


if __name__ == "__main__":
    sys.exit(main())
