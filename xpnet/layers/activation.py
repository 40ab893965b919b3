"""Rectified linear unit."""

from __future__ import annotations

from .._backend import namespace

__all__ = ["relu_forward", "relu_backward"]


def relu_forward(x):
    """ReLU forward pass, ``max(x, 0)`` elementwise.

    Parameters
    ----------
    x : array of any shape.

    Returns
    -------
    out : array of x's shape and dtype.
    cache : opaque, for :func:`relu_backward`.
    """
    xp = namespace(x)
    out = xp.where(x > 0, x, 0.0)
    # The output, not the input, is kept: out > 0 exactly where x > 0, and the next layer (an affine layer in every
    # CS231n network) keeps out alive anyway, so the cache costs no memory of its own.
    return out, out


def relu_backward(dout, cache):
    """ReLU backward pass.

    Parameters
    ----------
    dout : upstream gradient, of the forward input's shape.
    cache : from :func:`relu_forward` (the input x itself works too, as in CS231n).

    Returns
    -------
    dx : array of dout's shape.
    """
    xp = namespace(dout, cache)
    if tuple(dout.shape) != tuple(cache.shape):
        raise ValueError(f"dout must have the forward output's shape {tuple(cache.shape)}, got {tuple(dout.shape)}")
    return xp.where(cache > 0, dout, 0.0)
