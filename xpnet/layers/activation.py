"""Rectified linear unit."""

from __future__ import annotations

from .._backend import device
from ._checks import as_common_dtype, float_namespace

__all__ = ["relu_forward", "relu_backward"]


def relu_forward(x):
    """ReLU forward pass, ``max(x, 0)`` elementwise; NaN stays NaN, as with torch and CS231n's ``np.maximum``.

    Parameters
    ----------
    x : array
        Real, of any shape (integer and bool arrays are promoted to the default float, as NumPy does).

    Returns
    -------
    out : array
        Of x's shape and floating dtype.
    cache : object
        Opaque, for :func:`relu_backward`.
    """
    xp = float_namespace(x=x)
    x = as_common_dtype(x, xp=xp)
    # maximum, not where(x > 0, x, 0): where turns NaN into 0 (NaN > 0 is False), and on NumPy it is ~10x slower.
    # The zero is a 0-d array of x's dtype: a Python 0.0 goes through array-api-compat's scalar promotion, whose
    # torch.result_type call torch.compile cannot trace.
    out = xp.maximum(x, xp.zeros((), dtype=x.dtype, device=device(x)))
    # The output, not the input, is kept: out > 0 exactly where x > 0, and the next layer (an affine layer in every
    # CS231n network) keeps out alive anyway, so the cache costs no memory of its own.
    return out, out


def relu_backward(dout, cache):
    """ReLU backward pass, as torch's: the gradient is zeroed where the output is <= 0 and passed on elsewhere,
    NaN positions included (a NaN input passes its gradient, and a NaN in dout stays NaN where it passes).

    Parameters
    ----------
    dout : array
        Upstream gradient, of the forward input's shape.
    cache : object
        From :func:`relu_forward` (the input x itself works too, as in CS231n).

    Returns
    -------
    dx : array
        Of dout's shape, in the common dtype of dout and the cache.
    """
    xp = float_namespace(dout=dout, cache=cache)
    if tuple(dout.shape) != tuple(cache.shape):
        raise ValueError(f"dout must have the forward output's shape {tuple(cache.shape)}, got {tuple(dout.shape)}")
    dout = as_common_dtype(dout, cache, xp=xp)  # the cache is only compared, so it is never cast
    return xp.where(cache <= 0, 0.0, dout)
