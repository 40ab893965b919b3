"""The 1797 8x8 handwritten digits shipped with xpnet (``digits.npz`` in this package), as arrays or CS231n's dict."""

from __future__ import annotations

from importlib import resources

import numpy as np

from .._random import check_seed
from .._validation import check_flag, check_int
from ._splits import check_float_dtype, finish

__all__ = ["load_digits", "get_digits_data"]


def load_digits():
    """The 1797 handwritten digits shipped with xpnet (scikit-learn's copy of the UCI set, CC BY 4.0).

    Returns
    -------
    images : uint8 array of shape (1797, 8, 8), values 0..16
    labels : int64 array of shape (1797,), values 0..9
    """
    with (resources.files(__package__) / "digits.npz").open("rb") as f:
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
    num_validation, num_test : int, default 200
        Sizes of the validation and test sets (>= 0).
    subtract_mean : bool, default True
        Subtract the training mean image from all three sets.
    seed : None, int or numpy.random.Generator, default 0
        An int >= 0, or a NumPy ``SeedSequence``, ``BitGenerator`` or ``Generator``, for the shuffle.
    num_training : int, optional
        Size of the training set (>= 1; default: every image left).
    dtype : NumPy floating dtype, default numpy.float32
        Of the images (integer dtypes are refused: they would truncate the [0, 1] pixels to 0 and 1).

    Returns
    -------
    dict
        ``X_train`` (num_training, 1, 8, 8) ``dtype``, ``y_train`` (num_training,) int64, and likewise ``X_val``,
        ``y_val``, ``X_test``, ``y_test``; NumPy arrays.

    Raises
    ------
    TypeError, ValueError
        Naming the argument.
    """
    num_validation = check_int(num_validation, "num_validation", low=0)
    num_test = check_int(num_test, "num_test", low=0)
    if num_training is not None:
        num_training = check_int(num_training, "num_training", low=1)
    subtract_mean = check_flag(subtract_mean, "subtract_mean")
    seed = check_seed(seed, generator=True)
    dtype = check_float_dtype(dtype)
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
    return finish(X[train], y[train], X[val], y[val], X[test], y[test], subtract_mean=subtract_mean, dtype=dtype)
