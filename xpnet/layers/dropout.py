"""Inverted dropout."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

from .._backend import asarray, host_uniform, namespace

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(x, dropout_param):
    """Inverted dropout forward pass.

    In train mode each element is kept with probability ``p`` and scaled by ``1 / p`` (so the expected output is
    ``x``), or zeroed; in test mode the output is ``x`` itself.

    Parameters
    ----------
    x : array of any shape.
    dropout_param : dict with ``'p'`` (the probability of KEEPING a unit, in (0, 1]), ``'mode'`` ('train' or
        'test') and optional ``'seed'``. With a seed the mask is drawn from a NumPy Generator seeded with it, so it
        is the same on every call and every backend; without one it comes from NumPy's global random state.

    Returns
    -------
    out : array of x's shape.
    cache : opaque, for :func:`dropout_backward`.
    """
    xp = namespace(x)
    p, mode, seed = _settings(dropout_param)
    if mode == "test":
        return x, (None, p)
    # Drawn and compared on the host in float64, then moved as booleans: one small transfer, and the same mask on
    # every backend and for every dtype of x.
    keep = asarray(host_uniform(tuple(x.shape), seed) < p, like=x)
    # Only the boolean mask is kept (1 byte per element), not a scaled float mask or x.
    return xp.where(keep, x / p, 0.0), (keep, p)


def dropout_backward(dout, cache):
    """Inverted dropout backward pass.

    Parameters
    ----------
    dout : upstream gradient, of x's shape.
    cache : from :func:`dropout_forward`.

    Returns
    -------
    dx : array of dout's shape.
    """
    keep, p = cache
    if keep is None:
        return dout
    xp = namespace(dout, keep)
    if tuple(dout.shape) != tuple(keep.shape):
        raise ValueError(f"dout must have the forward output's shape {tuple(keep.shape)}, got {tuple(dout.shape)}")
    return xp.where(keep, dout / p, 0.0)


def _settings(dropout_param):
    """``(p, mode, seed)`` from dropout_param, checked."""
    if not isinstance(dropout_param, Mapping):
        raise TypeError(f"dropout_param must be a dict, got {type(dropout_param).__name__}")
    if "p" not in dropout_param:
        raise ValueError("dropout_param must contain 'p', the probability of keeping each unit")
    p = dropout_param["p"]
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"dropout_param['p'] must be a number in (0, 1], got {type(p).__name__}")
    p = float(p)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"dropout_param['p'] (the keep probability) must be in (0, 1], got {p}")
    mode = dropout_param.get("mode")
    if not isinstance(mode, str) or mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    return p, mode, dropout_param.get("seed")
