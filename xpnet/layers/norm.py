"""Batch, layer, spatial batch and group normalization: one computation over different axes.

Each layer computes ``out = gamma * xhat + beta``, where ``xhat`` is its input standardised (zero mean, unit biased
variance) over some axes of a view of it, and ``gamma``/``beta`` scale and shift axis 1 (features or channels):

=================  ============  =================  =========
layer              x             view               axes
=================  ============  =================  =========
batchnorm          (N, D)        (N, D)             (0,)
spatial batchnorm  (N, C, H, W)  (N, C, H, W)       (0, 2, 3)
layernorm          (N, D)        (N, D)             (1,)
spatial groupnorm  (N, C, H, W)  (N, G, C/G, H, W)  (2, 3, 4)
=================  ============  =================  =========

``_norm_forward`` and ``_norm_backward`` do the work; the public functions check their inputs and pick the axes.

Every input is checked before anything is computed or written: a call that raises leaves ``bn_param``'s running
statistics as they were. Averaging over an empty set of values (an empty batch in train mode, D=0 for layernorm)
is refused instead of producing NaN. The param dicts of all four layers accept the same keys, because CS231n's
FullyConnectedNet hands its ``bn_params`` dicts (with their ``'mode'``) to layernorm as well; each layer reads the
keys it needs and ignores the others, and any other key is refused by name.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

from .._backend import Array, device
from .._validation import check_int, check_keys, check_real
from ._checks import as_common_dtype, float_namespace, promote

__all__ = [
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_backward_alt",
    "spatial_batchnorm_forward",
    "spatial_batchnorm_backward",
    "layernorm_forward",
    "layernorm_backward",
    "spatial_groupnorm_forward",
    "spatial_groupnorm_backward",
]

_MODES = ("train", "test")
_KEYS = frozenset({"mode", "eps", "momentum", "running_mean", "running_var", "layernorm"})
_STATS = ("running_mean", "running_var")


def batchnorm_forward(x: Array, gamma: Array, beta: Array, bn_param: dict) -> tuple[Array, Any]:
    """Batch normalization forward pass.

    In train mode ``x`` is standardised with the batch's mean and biased variance per feature, and the running
    statistics in ``bn_param`` are updated: ``running = momentum * running + (1 - momentum) * batch``. In test mode
    the running statistics are used instead.

    x, gamma, beta and the running statistics are real arrays; mixed precisions promote as the Array API standard
    says (float32 with float64 gives float64), and integer or bool arrays take the floats' dtype, as in NumPy.

    Parameters
    ----------
    x : array of shape (N, D)
        N >= 1 in train mode.
    gamma, beta : array of shape (D,)
        Scale and shift.
    bn_param : dict
        ``'mode'`` ('train' or 'test', required), optional ``'eps'`` (a finite number > 0, default 1e-5) and
        ``'momentum'`` (a finite number in [0, 1], default 0.9). ``'running_mean'`` and ``'running_var'`` (shape
        (D,)) are read from it and written back; they start as zeros on x's device and dtype. ``'layernorm'`` is
        accepted and ignored; any other key is refused.

    Returns
    -------
    out : array of shape (N, D)
    cache : object
        Opaque, for :func:`batchnorm_backward` or :func:`batchnorm_backward_alt`.
    """
    return _batchnorm(x, gamma, beta, bn_param, layout=("(N, D)", 2), axes=(0,), axis_names="N", what="batchnorm")


def batchnorm_backward(dout: Array, cache: Any) -> tuple[Array, Array, Array]:
    """Batch normalization backward pass, back through the computational graph node by node (as in CS231n).

    Parameters
    ----------
    dout : array of shape (N, D)
        Upstream gradient.
    cache : object
        From :func:`batchnorm_forward`.

    Returns
    -------
    dx : array of shape (N, D)
    dgamma, dbeta : array
        Of gamma's and beta's shape.
    """
    return _norm_backward(dout, cache, _normalize_backward_graph)


def batchnorm_backward_alt(dout: Array, cache: Any) -> tuple[Array, Array, Array]:
    """Batch normalization backward pass in closed form; same results as :func:`batchnorm_backward`, faster.

    ``dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))`` with ``dxhat = dout * gamma`` and means
    over the batch.

    Parameters
    ----------
    dout : array of shape (N, D)
        Upstream gradient.
    cache : object
        From :func:`batchnorm_forward`.

    Returns
    -------
    dx : array of shape (N, D)
    dgamma, dbeta : array
        Of gamma's and beta's shape.
    """
    return _norm_backward(dout, cache)


def spatial_batchnorm_forward(x: Array, gamma: Array, beta: Array, bn_param: dict) -> tuple[Array, Any]:
    """Spatial batch normalization forward pass: statistics per channel over the batch and both spatial axes.

    Parameters
    ----------
    x : array of shape (N, C, H, W)
        N·H·W >= 1 in train mode.
    gamma, beta : array of shape (C,) or (1, C, 1, 1)
        Scale and shift.
    bn_param : dict
        As for :func:`batchnorm_forward`; running statistics of shape (C,).

    Returns
    -------
    out : array of shape (N, C, H, W)
    cache : object
        Opaque, for :func:`spatial_batchnorm_backward`.
    """
    return _batchnorm(
        x, gamma, beta, bn_param, layout=("(N, C, H, W)", 4), axes=(0, 2, 3), axis_names="N, H, W",
        what="spatial batchnorm",
    )  # fmt: skip


def spatial_batchnorm_backward(dout: Array, cache: Any) -> tuple[Array, Array, Array]:
    """Spatial batch normalization backward pass.

    Parameters
    ----------
    dout : array of shape (N, C, H, W)
        Upstream gradient.
    cache : object
        From :func:`spatial_batchnorm_forward`.

    Returns
    -------
    dx : array of shape (N, C, H, W)
    dgamma, dbeta : array
        Of gamma's and beta's shape.
    """
    return _norm_backward(dout, cache)


def layernorm_forward(x: Array, gamma: Array, beta: Array, ln_param: dict | None = None) -> tuple[Array, Any]:
    """Layer normalization forward pass: each sample standardised over its D features (same in train and test).

    Parameters
    ----------
    x : array of shape (N, D)
        Real, D >= 1 (integer and bool arrays are promoted as in NumPy).
    gamma, beta : array of shape (D,)
        Scale and shift.
    ln_param : dict or None
        Optional ``'eps'`` (a finite number > 0, default 1e-5); the other keys of a ``bn_param`` (``'mode'``,
        ``'momentum'``, ...) are accepted and ignored, any other key is refused.

    Returns
    -------
    out : array of shape (N, D)
    cache : object
        Opaque, for :func:`layernorm_backward`.
    """
    eps = _eps(ln_param, "ln_param")
    xp = float_namespace(x=x, gamma=gamma, beta=beta)
    _check_ndim(x, 2, "(N, D)")
    _check_scale_shift(x, gamma, beta)
    _check_not_empty(x, (1,), "layernorm", "D")
    x, gamma, beta = promote(x, gamma, beta, xp=xp)
    out, cache, _, _ = _norm_forward(x, gamma, beta, (1,), eps, xp=xp)
    return out, cache


def layernorm_backward(dout: Array, cache: Any) -> tuple[Array, Array, Array]:
    """Layer normalization backward pass.

    Parameters
    ----------
    dout : array of shape (N, D)
        Upstream gradient.
    cache : object
        From :func:`layernorm_forward`.

    Returns
    -------
    dx : array of shape (N, D)
    dgamma, dbeta : array
        Of gamma's and beta's shape.
    """
    return _norm_backward(dout, cache)


def spatial_groupnorm_forward(
    x: Array, gamma: Array, beta: Array, G: int, gn_param: dict | None = None
) -> tuple[Array, Any]:
    """Spatial group normalization forward pass: each sample's channels split into G groups of C/G channels,
    each group standardised over its channels and both spatial axes.

    Parameters
    ----------
    x : array of shape (N, C, H, W)
        Real, with (C/G)·H·W >= 1 (integer and bool arrays are promoted as in NumPy).
    gamma, beta : array of shape (1, C, 1, 1) or (C,)
        Scale and shift per channel: (1, C, 1, 1) as in the 2022 assignment.
    G : int
        Number of groups; must divide C.
    gn_param : dict or None
        Optional ``'eps'`` (a finite number > 0, default 1e-5); keys as for ``ln_param``.

    Returns
    -------
    out : array of shape (N, C, H, W)
    cache : object
        Opaque, for :func:`spatial_groupnorm_backward`.
    """
    eps = _eps(gn_param, "gn_param")
    xp = float_namespace(x=x, gamma=gamma, beta=beta)
    _check_ndim(x, 4, "(N, C, H, W)")
    _check_scale_shift(x, gamma, beta)
    N, C, H, W = x.shape
    G = check_int(G, "G", low=1)
    if C % G:
        raise ValueError(f"G must be a positive divisor of the number of channels C={C}, got G={G}")
    view = (N, G, C // G, H, W)
    _check_not_empty(x, (2, 3, 4), "spatial groupnorm", "C/G, H, W", view=view)
    x, gamma, beta = promote(x, gamma, beta, xp=xp)
    out, cache, _, _ = _norm_forward(x, gamma, beta, (2, 3, 4), eps, xp=xp, view=view)
    return out, cache


def spatial_groupnorm_backward(dout: Array, cache: Any) -> tuple[Array, Array, Array]:
    """Spatial group normalization backward pass.

    Parameters
    ----------
    dout : array of shape (N, C, H, W)
        Upstream gradient.
    cache : object
        From :func:`spatial_groupnorm_forward`.

    Returns
    -------
    dx : array of shape (N, C, H, W)
    dgamma, dbeta : array
        Of gamma's and beta's shape ((1, C, 1, 1) or (C,)).
    """
    return _norm_backward(dout, cache)


def _normalize(x, axes, eps, *, xp):
    """``x`` standardised over ``axes`` with the biased variance: ``(xhat, inv_std, mean, var)``, stats keepdims."""
    mean = xp.mean(x, axis=axes, keepdims=True)
    centred = x - mean
    var = xp.mean(centred * centred, axis=axes, keepdims=True)
    inv_std = 1.0 / xp.sqrt(var + eps)
    return centred * inv_std, inv_std, mean, var


def _normalize_backward(dxhat, xhat, inv_std, axes, *, xp):
    """Gradient through ``xhat = _normalize(x, axes)[0]`` (mean and variance depending on x), in closed form."""
    mean_dxhat = xp.mean(dxhat, axis=axes, keepdims=True)
    mean_dxhat_xhat = xp.mean(dxhat * xhat, axis=axes, keepdims=True)
    return inv_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)


def _normalize_backward_graph(dxhat, xhat, inv_std, axes, *, xp):
    """The same gradient as :func:`_normalize_backward`, back through the graph ``mu = mean(x)``,
    ``xmu = x - mu``, ``var = mean(xmu**2)``, ``inv_std = 1 / sqrt(var + eps)``, ``xhat = xmu * inv_std``."""
    m = math.prod([xhat.shape[a] for a in axes])
    xmu = xhat / inv_std
    dinv_std = xp.sum(dxhat * xmu, axis=axes, keepdims=True)
    dxmu = dxhat * inv_std
    dvar = -0.5 * inv_std**3 * dinv_std
    dxmu = dxmu + (2.0 / m) * xmu * dvar  # xmu reaches the output through var as well
    dmu = -xp.sum(dxmu, axis=axes, keepdims=True)
    return dxmu + dmu / m


def _norm_forward(x, gamma, beta, axes, eps, *, xp, view=None, stats=None):
    """``out = gamma * xhat + beta`` with ``xhat`` = x reshaped to ``view`` and standardised over ``axes``.

    ``stats = (mean, var)`` (shape (C,)) standardises with those constants instead (batchnorm at test time).
    Returns ``out, cache, mean, var``.
    """
    v = x if view is None else xp.reshape(x, view)
    if stats is None:
        xhat, inv_std, mean, var = _normalize(v, axes, eps, xp=xp)
    else:
        mean, var = (_on_axis1(s, x.ndim, xp=xp) for s in stats)
        inv_std = 1.0 / xp.sqrt(var + eps)
        xhat = (v - mean) * inv_std
        axes = None  # constant statistics: the backward pass must not differentiate through them
    if view is not None:
        xhat = xp.reshape(xhat, x.shape)
    out = _on_axis1(gamma, x.ndim, xp=xp) * xhat + _on_axis1(beta, x.ndim, xp=xp)
    # Kept: xhat, inv_std and gamma, all that backward needs. Not kept: x, the mean and beta (dbeta is a sum of dout).
    return out, (xhat, inv_std, gamma, axes, view), mean, var


def _norm_backward(dout, cache, normalize_backward=_normalize_backward):
    """``dx, dgamma, dbeta`` for a cache of :func:`_norm_forward`; ``normalize_backward`` is the closed form or the
    graph form of the gradient through the standardisation."""
    xhat, inv_std, gamma, axes, view = cache
    xp = float_namespace(dout=dout, cache=xhat)
    if tuple(dout.shape) != tuple(xhat.shape):
        raise ValueError(f"dout must have the forward output's shape {tuple(xhat.shape)}, got {tuple(dout.shape)}")
    dout = as_common_dtype(dout, xhat, xp=xp)
    batch_and_spatial = (0, *range(2, dout.ndim))
    sum_dout_xhat = xp.sum(dout * xhat, axis=batch_and_spatial, keepdims=True)
    sum_dout = xp.sum(dout, axis=batch_and_spatial, keepdims=True)
    dgamma, dbeta = xp.reshape(sum_dout_xhat, gamma.shape), xp.reshape(sum_dout, gamma.shape)
    g = _on_axis1(gamma, dout.ndim, xp=xp)
    if normalize_backward is _normalize_backward and view is None and axes == batch_and_spatial:
        # Batch norm standardises over the axes dgamma sums over, so the closed form's mean of dxhat * xhat is
        # gamma * dgamma / m: five full-size passes instead of eight. t is centred with its own mean (which is
        # mean(dout), as mean(xhat) = 0) so that dx sums to zero over the batch up to one rounding, as in the
        # node-by-node form: the gradient of a bias before the norm stays ~1e-17, not ~1e-15.
        m = math.prod([dout.shape[a] for a in axes])
        t = dout - xhat * (sum_dout_xhat / m)
        dx = (g * inv_std) * (t - xp.mean(t, axis=axes, keepdims=True))
        return dx, dgamma, dbeta
    dxhat = dout * g
    if axes is None:
        return dxhat * inv_std, dgamma, dbeta
    if view is None:
        return normalize_backward(dxhat, xhat, inv_std, axes, xp=xp), dgamma, dbeta
    dx = normalize_backward(xp.reshape(dxhat, view), xp.reshape(xhat, view), inv_std, axes, xp=xp)
    return xp.reshape(dx, dout.shape), dgamma, dbeta


def _batchnorm(x, gamma, beta, bn_param, *, layout, axes, axis_names, what):
    """Batch normalization over ``axes`` of x (channels on axis 1) in bn_param's mode, updating its running stats.

    ``layout`` is x's expected shape as text and its number of dimensions; ``axis_names`` and ``what`` (the layer)
    are for the error on an empty batch.

    Everything is checked first and the running statistics are written last, so a call that raises leaves them
    as they were.
    """
    mode, eps, momentum = _bn_settings(bn_param)
    stats = {f"bn_param[{k!r}]": bn_param.get(k) for k in _STATS}
    xp = float_namespace(x=x, gamma=gamma, beta=beta, **stats)
    _check_ndim(x, layout[1], layout[0])
    _check_scale_shift(x, gamma, beta)
    C = x.shape[1]
    for name, stat in stats.items():
        if stat is not None and tuple(stat.shape) != (C,):
            raise ValueError(f"{name} must have shape ({C},) to match x, got {tuple(stat.shape)}")
    if mode == "train":
        _check_not_empty(x, axes, what, axis_names)
    x, gamma, beta = promote(x, gamma, beta, xp=xp)
    running_mean, running_var = (
        xp.zeros((C,), dtype=x.dtype, device=device(x)) if s is None else as_common_dtype(s, x, xp=xp)
        for s in stats.values()
    )
    if mode == "test":
        out, cache, _, _ = _norm_forward(x, gamma, beta, axes, eps, xp=xp, stats=(running_mean, running_var))
        return out, cache
    out, cache, mean, var = _norm_forward(x, gamma, beta, axes, eps, xp=xp)
    new_mean = momentum * running_mean + (1.0 - momentum) * xp.reshape(mean, (C,))
    new_var = momentum * running_var + (1.0 - momentum) * xp.reshape(var, (C,))
    bn_param["running_mean"], bn_param["running_var"] = new_mean, new_var
    return out, cache


def _on_axis1(a, ndim, *, xp):
    """A per-channel array ((C,) or (1, C, 1, 1)) shaped (1, C, 1, ...) to broadcast on axis 1 of ndim-D arrays."""
    return xp.reshape(a, (1, -1) + (1,) * (ndim - 2))


def _check_ndim(x, ndim, shape_text):
    if x.ndim != ndim:
        raise ValueError(f"x must have shape {shape_text}, got {tuple(x.shape)}")


def _check_not_empty(x, axes, what, axis_names, *, view=None):
    """Refuse statistics over no values (x, or x reshaped to ``view``, standardised over ``axes``): they are NaN."""
    shape = x.shape if view is None else view
    if math.prod([shape[a] for a in axes]) == 0:  # a list: torch.compile cannot trace prod of a generator
        raise ValueError(
            f"x must have at least one value along the axes {what} averages over ({axis_names}), "
            f"got shape {tuple(x.shape)}"
        )


def _check_scale_shift(x, gamma, beta):
    C = x.shape[1]
    allowed = [(C,)] + ([(1, C) + (1,) * (x.ndim - 2)] if x.ndim > 2 else [])
    if tuple(gamma.shape) not in allowed:
        expected = " or ".join(str(s) for s in allowed)
        raise ValueError(
            f"gamma must have shape {expected} to match x of shape {tuple(x.shape)}, got {tuple(gamma.shape)}"
        )
    if tuple(beta.shape) != tuple(gamma.shape):
        raise ValueError(f"beta must have gamma's shape {tuple(gamma.shape)}, got {tuple(beta.shape)}")


def _eps(param, name):
    """``param['eps']`` (default 1e-5) after checking param's keys; ``None`` stands for an empty dict."""
    if param is None:
        return 1e-5
    check_keys(param, name, allowed=_KEYS)
    # eps = 0 divides by zero on a constant feature, so it is refused with the negative values.
    return check_real(param.get("eps", 1e-5), f"{name}['eps']", low=0.0, include_low=False)


def _bn_settings(bn_param):
    """``(mode, eps, momentum)`` from bn_param, checked."""
    if not isinstance(bn_param, MutableMapping):
        raise TypeError(
            f"bn_param must be a dict (the running statistics are written back to it), got {type(bn_param).__name__}"
        )
    eps = _eps(bn_param, "bn_param")
    mode = bn_param.get("mode")
    if not isinstance(mode, str) or mode not in _MODES:
        raise ValueError(f"bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    momentum = check_real(bn_param.get("momentum", 0.9), "bn_param['momentum']", low=0.0, high=1.0)
    return mode, eps, momentum
