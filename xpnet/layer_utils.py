"""Sandwich layers: the layer sequences the CS231n models repeat, each a forward above its backward.

Every ``*_forward`` returns ``(out, cache)`` where ``cache`` is the tuple of the inner layers' caches, and every
``*_backward(dout, cache)`` returns the gradients of the inputs in the order the forward takes them, as in CS231n.
The namespace comes from the inputs through the inner layers, so these work on every backend. As in CS231n,
``from xpnet.layer_utils import *`` also gives every function of :mod:`xpnet.layers` and :mod:`xpnet.fast_layers`.
"""

from __future__ import annotations

from . import fast_layers, layers
from ._backend import namespace
from .fast_layers import *  # noqa: F403
from .fast_layers import conv_backward_fast, conv_forward_fast, max_pool_backward_fast, max_pool_forward_fast
from .layers import *  # noqa: F403
from .layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward_alt,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    relu_backward,
    relu_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)
from .layers.conv import conv_backward_channels_first, conv_forward_channels_first

__all__ = [
    "affine_relu_forward",
    "affine_relu_backward",
    "affine_bn_relu_forward",
    "affine_bn_relu_backward",
    "affine_ln_relu_forward",
    "affine_ln_relu_backward",
    "conv_relu_forward",
    "conv_relu_backward",
    "conv_relu_pool_forward",
    "conv_relu_pool_backward",
    "conv_bn_relu_forward",
    "conv_bn_relu_backward",
    # CS231n's layer_utils star-imports layers and fast_layers, so `from layer_utils import *` gives them too.
    *dict.fromkeys([*layers.__all__, *fast_layers.__all__]),
]


def affine_relu_forward(x, w, b):
    """Affine transform followed by a ReLU.

    Parameters
    ----------
    x : array of shape (N, d_1, ..., d_k)
        The input, flattened to (N, D) by the affine layer.
    w : array of shape (D, M)
        Weights.
    b : array of shape (M,)
        Biases.

    Returns
    -------
    out : array of shape (N, M)
        The output.
    cache : tuple
        ``(fc_cache, relu_cache)`` for :func:`affine_relu_backward`.
    """
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache, *, input_grad=True):
    """Backward pass of :func:`affine_relu_forward`.

    Parameters
    ----------
    dout : array of shape (N, M)
        Upstream gradient.
    cache : tuple
        From :func:`affine_relu_forward`.
    input_grad : bool, default True
        False (keyword-only) skips dx and gives None in its place (a network's first layer).

    Returns
    -------
    dx, dw, db : array
        Gradients with the shapes of ``x``, ``w``, ``b`` (dx None without ``input_grad``).
    """
    fc_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return affine_backward(da, fc_cache, input_grad=input_grad)


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """Affine - batch normalization - ReLU.

    Parameters
    ----------
    x : array of shape (N, d_1, ..., d_k)
        The input, flattened to (N, D) by the affine layer.
    w : array of shape (D, M)
        Weights.
    b : array of shape (M,)
        Biases.
    gamma, beta : array of shape (M,)
        Scale and shift of the batch normalization.
    bn_param : dict
        For :func:`xpnet.layers.batchnorm_forward` (``'mode'``, ``'eps'``, ``'momentum'``, running statistics,
        updated in place in train mode).

    Returns
    -------
    out : array of shape (N, M)
        The output.
    cache : tuple
        ``(fc_cache, bn_cache, relu_cache)`` for :func:`affine_bn_relu_backward`.
    """
    a, fc_cache = affine_forward(x, w, b)
    an, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, bn_cache, relu_cache)


def affine_bn_relu_backward(dout, cache, *, input_grad=True):
    """Backward pass of :func:`affine_bn_relu_forward`.

    Parameters
    ----------
    dout : array of shape (N, M)
        Upstream gradient.
    cache : tuple
        From :func:`affine_bn_relu_forward`.
    input_grad : bool, default True
        False (keyword-only) skips dx and gives None in its place.

    Returns
    -------
    dx, dw, db, dgamma, dbeta : array
        Gradients with the shapes of ``x``, ``w``, ``b``, ``gamma``, ``beta`` (dx None without ``input_grad``).
    """
    fc_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    # The closed form: the same gradient as batchnorm_backward's node-by-node one, in fewer passes.
    da, dgamma, dbeta = batchnorm_backward_alt(dan, bn_cache)
    dx, dw, db = affine_backward(da, fc_cache, input_grad=input_grad)
    return dx, dw, db, dgamma, dbeta


def affine_ln_relu_forward(x, w, b, gamma, beta, ln_param):
    """Affine - layer normalization - ReLU.

    Parameters
    ----------
    x : array of shape (N, d_1, ..., d_k)
        The input, flattened to (N, D) by the affine layer.
    w : array of shape (D, M)
        Weights.
    b : array of shape (M,)
        Biases.
    gamma, beta : array of shape (M,)
        Scale and shift of the layer normalization.
    ln_param : dict
        For :func:`xpnet.layers.layernorm_forward` (``'eps'``).

    Returns
    -------
    out : array of shape (N, M)
        The output.
    cache : tuple
        ``(fc_cache, ln_cache, relu_cache)`` for :func:`affine_ln_relu_backward`.
    """
    a, fc_cache = affine_forward(x, w, b)
    an, ln_cache = layernorm_forward(a, gamma, beta, ln_param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, ln_cache, relu_cache)


def affine_ln_relu_backward(dout, cache, *, input_grad=True):
    """Backward pass of :func:`affine_ln_relu_forward`.

    Parameters
    ----------
    dout : array of shape (N, M)
        Upstream gradient.
    cache : tuple
        From :func:`affine_ln_relu_forward`.
    input_grad : bool, default True
        False (keyword-only) skips dx and gives None in its place.

    Returns
    -------
    dx, dw, db, dgamma, dbeta : array
        Gradients with the shapes of ``x``, ``w``, ``b``, ``gamma``, ``beta`` (dx None without ``input_grad``).
    """
    fc_cache, ln_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = layernorm_backward(dan, ln_cache)
    dx, dw, db = affine_backward(da, fc_cache, input_grad=input_grad)
    return dx, dw, db, dgamma, dbeta


def conv_relu_forward(x, w, b, conv_param):
    """Convolution followed by a ReLU.

    Parameters
    ----------
    x : array of shape (N, C, H, W)
        The input.
    w : array of shape (F, C, HH, WW)
        Filters.
    b : array of shape (F,)
        Biases.
    conv_param : dict
        ``'stride'`` and ``'pad'``.

    Returns
    -------
    out : array of shape (N, F, H', W')
        The output.
    cache : tuple
        ``(conv_cache, relu_cache)`` for :func:`conv_relu_backward`.
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache, *, input_grad=True):
    """Backward pass of :func:`conv_relu_forward`.

    Parameters
    ----------
    dout : array of shape (N, F, H', W')
        Upstream gradient.
    cache : tuple
        From :func:`conv_relu_forward`.
    input_grad : bool, default True
        False (keyword-only) skips dx and gives None in its place, as :func:`xpnet.layers.conv_backward_fast` does.

    Returns
    -------
    dx, dw, db : array
        Gradients with the shapes of ``x``, ``w``, ``b`` (dx None without ``input_grad``).
    """
    conv_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return conv_backward_fast(da, conv_cache, input_grad=input_grad)


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """Convolution - ReLU - max pooling.

    Computed in another order with the same values and gradients: the pooling runs on the convolution before its
    bias, in the matmul's (F, N, H', W') layout, and the bias and the ReLU on the pooled (4× smaller for 2×2
    windows) array. ``max(relu(a + b)) == relu(max(a) + b)`` for every window, NaN included (rounding is
    monotonic, so even the float results agree), and a window whose maximum is <= 0 passes no gradient either
    way. The pooling backward pass then writes the gradient in the layout the weight-gradient matmul reads, so
    neither a bias pass nor a transposing copy runs at full resolution. The gradient goes to the first maximum
    of ``a``; it differs from that of ``a + b`` only where adding ``b`` rounds two different values to a tie, or
    where ``b`` is NaN (then every output is NaN).

    Parameters
    ----------
    x : array of shape (N, C, H, W)
        The input.
    w : array of shape (F, C, HH, WW)
        Filters.
    b : array of shape (F,)
        Biases.
    conv_param : dict
        ``'stride'`` and ``'pad'``.
    pool_param : dict
        ``'pool_height'``, ``'pool_width'`` and ``'stride'``.

    Returns
    -------
    out : array of shape (N, F, H'', W'')
        The pooled output.
    cache : tuple
        ``(conv_cache, relu_cache, pool_cache)`` for :func:`conv_relu_pool_backward`.
    """
    a, conv_cache = conv_forward_channels_first(x, w, b, conv_param)  # (F, N, H', W'), no bias yet
    # Pooling treats images and channels alike, so it runs on (F, N, ...) as it would on (N, F, ...).
    pooled, pool_cache = max_pool_forward_fast(a, pool_param)
    xp = namespace(pooled)
    b = xp.astype(b, pooled.dtype, copy=False)  # promoted as the convolution was (an integer b, as in NumPy)
    out, relu_cache = relu_forward(xp.permute_dims(pooled, (1, 0, 2, 3)) + xp.reshape(b, (1, -1, 1, 1)))
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout, cache, *, input_grad=True):
    """Backward pass of :func:`conv_relu_pool_forward`.

    Parameters
    ----------
    dout : array of shape (N, F, H'', W'')
        Upstream gradient.
    cache : tuple
        From :func:`conv_relu_pool_forward`.
    input_grad : bool, default True
        False (keyword-only) skips dx and gives None in its place (a model's first layer: its input needs no gradient).

    Returns
    -------
    dx, dw, db : array
        Gradients with the shapes of ``x``, ``w``, ``b`` (dx None without ``input_grad``).
    """
    conv_cache, relu_cache, pool_cache = cache
    dpooled = relu_backward(dout, relu_cache)  # (N, F, H'', W'')
    xp = namespace(dpooled)
    da = max_pool_backward_fast(xp.permute_dims(dpooled, (1, 0, 2, 3)), pool_cache)  # (F, N, H', W')
    dx, dw = conv_backward_channels_first(da, conv_cache, input_grad=input_grad)
    return dx, dw, xp.sum(dpooled, axis=(0, 2, 3))


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """Convolution - spatial batch normalization - ReLU.

    Parameters
    ----------
    x : array of shape (N, C, H, W)
        The input.
    w : array of shape (F, C, HH, WW)
        Filters.
    b : array of shape (F,)
        Biases.
    gamma, beta : array of shape (F,)
        Per-channel scale and shift.
    conv_param : dict
        ``'stride'`` and ``'pad'``.
    bn_param : dict
        For :func:`xpnet.layers.spatial_batchnorm_forward`.

    Returns
    -------
    out : array of shape (N, F, H', W')
        The output.
    cache : tuple
        ``(conv_cache, bn_cache, relu_cache)`` for :func:`conv_bn_relu_backward`.
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache, *, input_grad=True):
    """Backward pass of :func:`conv_bn_relu_forward`.

    Parameters
    ----------
    dout : array of shape (N, F, H', W')
        Upstream gradient.
    cache : tuple
        From :func:`conv_bn_relu_forward`.
    input_grad : bool, default True
        False (keyword-only) skips dx and gives None in its place.

    Returns
    -------
    dx, dw, db, dgamma, dbeta : array
        Gradients with the shapes of ``x``, ``w``, ``b``, ``gamma``, ``beta`` (dx None without ``input_grad``).
    """
    conv_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = spatial_batchnorm_backward(dan, bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache, input_grad=input_grad)
    return dx, dw, db, dgamma, dbeta
