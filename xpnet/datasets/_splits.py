"""CS231n's data dict: splitting, casting and mean-subtracting a data set, and the checks of those arguments."""

from __future__ import annotations

import numpy as np

from .._validation import check_flag, check_int
from . import _cifar10_source
from ._cifar10 import read_release

__all__ = ["get_CIFAR10_data"]


def check_float_dtype(dtype):
    """``np.dtype(dtype)`` if floating: casting 0..255 pixels (or 0..1 digits) to an integer dtype truncates them."""
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError):
        resolved = None
    if resolved is None or resolved.kind != "f":
        raise TypeError(f"dtype must be a floating NumPy dtype (np.float32 or np.float64), got {dtype!r}")
    return resolved


def finish(X_train, y_train, X_val, y_val, X_test, y_test, *, subtract_mean, dtype):
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
    num_training : int, default 49000
        Size of the training set (>= 1; ``num_training + num_validation`` at most 50000).
    num_validation : int, default 1000
        Size of the validation set (>= 0).
    num_test : int, default 1000
        Size of the test set (>= 0, at most 10000).
    subtract_mean : bool, default True
        Subtract the training subset's mean image from all three sets.
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
    dict
        ``X_train`` (num_training, 3, 32, 32), ``y_train`` (num_training,), and likewise ``X_val``, ``y_val``,
        ``X_test``, ``y_test``; NumPy arrays, labels int64.

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
    num_training = check_int(num_training, "num_training", low=1)
    num_validation = check_int(num_validation, "num_validation", low=0)
    num_test = check_int(num_test, "num_test", low=0)
    subtract_mean = check_flag(subtract_mean, "subtract_mean")
    download = check_flag(download, "download")
    dtype = check_float_dtype(dtype)
    folder, source, absent = _cifar10_source.find_CIFAR10(cifar10_dir)
    if absent and download:
        _cifar10_source.fetch_CIFAR10(folder)
    elif absent:
        raise FileNotFoundError(_cifar10_source.not_found(folder, source, absent))
    # Read as stored (uint8, channels-first) and converted once at the end: float64 copies of all 60000 images in
    # between would triple the peak memory (~2.8 GB) and the time.
    X_train, y_train, X_test, y_test = read_release(folder)
    if num_training + num_validation > X_train.shape[0]:
        raise ValueError(
            f"num_training + num_validation must be at most {X_train.shape[0]} (the training images in "
            f"{folder!r}), got {num_training} + {num_validation}"
        )
    if num_test > X_test.shape[0]:
        raise ValueError(f"num_test must be at most {X_test.shape[0]}, got {num_test}")
    val = slice(num_training, num_training + num_validation)
    return finish(
        X_train[:num_training],
        y_train[:num_training],
        X_train[val],
        y_train[val],
        X_test[:num_test],
        y_test[:num_test],
        subtract_mean=subtract_mean,
        dtype=dtype,
    )
