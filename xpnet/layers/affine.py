"""Fully connected (affine) layer: ``out = x.reshape(N, D) @ w + b``."""

from __future__ import annotations

import math
from typing import Any

from .._backend import Array
from .._validation import check_flag
from ._checks import float_namespace, promote

__all__ = ["affine_forward", "affine_backward"]


def affine_forward(x: Array, w: Array, b: Array) -> tuple[Array, Any]:
    """Affine layer forward pass.

    All three inputs are real; integer and bool arrays take the floats' dtype, as in NumPy, and mixed precisions
    promote as the Array API standard says (float32 with float64 gives float64) on every backend.

    Parameters
    ----------
    x : array of shape (N, d_1, ..., d_k)
        Each sample is flattened to D = d_1 * ... * d_k values.
    w : array of shape (D, M)
        Weights.
    b : array of shape (M,)
        Biases.

    Returns
    -------
    out : array of shape (N, M)
        In the common dtype of x, w and b.
    cache : object
        Opaque, for :func:`affine_backward`.
    """
    xp = float_namespace(x=x, w=w, b=b)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, d_1, ..., d_k) with at least 2 dimensions, got {tuple(x.shape)}")
    D = math.prod(x.shape[1:])
    if w.ndim != 2 or w.shape[0] != D:
        raise ValueError(
            f"w must have shape (D, M) with D={D} to match x of shape {tuple(x.shape)}, got {tuple(w.shape)}"
        )
    if tuple(b.shape) != (w.shape[1],):
        raise ValueError(
            f"b must have shape (M,) = ({w.shape[1]},) to match w of shape {tuple(w.shape)}, got {tuple(b.shape)}"
        )
    x, w, b = promote(x, w, b, xp=xp)
    out = xp.reshape(x, (x.shape[0], D)) @ w + b
    # b is not kept: db is the sum of dout and needs nothing from the forward pass.
    return out, (x, w)


def affine_backward(dout: Array, cache: Any, *, input_grad: bool = True) -> tuple[Array | None, Array, Array]:
    """Affine layer backward pass.

    Parameters
    ----------
    dout : array of shape (N, M)
        Upstream gradient.
    cache : object
        From :func:`affine_forward`.
    input_grad : bool, default True
        Keyword-only; False skips dx (None is returned in its place), for a first layer whose input needs no gradient:
        its ``dout @ w.T`` product costs as much as the forward pass (torch's autograd skips it too).

    Returns
    -------
    dx : array of shape (N, d_1, ..., d_k), or None
        The gradient for x, of x's shape (all gradients in the common dtype of dout and the cache).
    dw : array of shape (D, M)
    db : array of shape (M,)
    """
    check_flag(input_grad, "input_grad")
    x, w = cache
    xp = float_namespace(dout=dout, cache=x)
    expected = (x.shape[0], w.shape[1])
    if tuple(dout.shape) != expected:
        raise ValueError(f"dout must have the forward output's shape (N, M) = {expected}, got {tuple(dout.shape)}")
    dout, x, w = promote(dout, x, w, xp=xp)
    x2 = xp.reshape(x, (x.shape[0], w.shape[0]))
    dx = xp.reshape(dout @ w.T, x.shape) if input_grad else None
    dw = x2.T @ dout
    db = xp.sum(dout, axis=0)
    return dx, dw, db
