"""Inverted dropout."""

from __future__ import annotations

from typing import Any

from .._backend import Array, asarray, dtype_name, is_array, is_tracing, namespace
from .._random import check_legacy_seed, host_rand, reseed_global
from .._validation import check_keys, check_real
from ._checks import as_common_dtype, float_namespace

__all__ = ["dropout_forward", "dropout_backward"]

_KEYS = frozenset({"mode", "p", "seed", "mask"})


def dropout_forward(x: Array, dropout_param: dict) -> tuple[Array, Any]:
    """Inverted dropout forward pass.

    In train mode each element is kept with probability ``p`` and scaled by ``1 / p`` (so the expected output is
    ``x``), or set to exactly 0 (whatever x held there, NaN and inf included: a dropped unit does not depend on
    its input); in test mode the output is ``x`` itself.

    Parameters
    ----------
    x : array
        Real, of any shape (integer and bool arrays are promoted to the default float, as in NumPy).
    dropout_param : dict
        ``'p'`` (the probability of KEEPING a unit, a finite number in (0, 1]), ``'mode'`` ('train' or 'test') and
        optional ``'seed'`` (an int in [0, 2**32 - 1], or None). Any other key is refused (a misspelling would be
        silently ignored). The mask is CS231n's ``np.random.rand(*x.shape) < p``, drawn on the host from NumPy's global
        state, so it is the same on every backend and for every dtype of x.

        With a seed, the call does what CS231n's ``dropout_forward`` does: ``np.random.seed(seed)`` (in test mode
        too), then the draw. The mask is the same on every call, which is what gradient checks need, and NumPy's
        global state is left reseeded: CS231n's notebooks draw their next weights from it and print the numbers
        that follow. The same side effect means a model with a seeded dropout layer trained by a Solver sees the
        same minibatch at every step, as in CS231n; seed dropout for checks, not for training.

        Optional ``'mask'``: a boolean array of x's shape and backend, True where a unit is kept, used in train mode
        instead of a drawn one (no draw, no reseed: the randomness is the caller's). Under a compiler
        (``torch.compile``, ``jax.jit``) it is required in train mode: a mask drawn on the host while tracing would
        be one constant, reused at every step, so a traced train-mode call without one raises ValueError.

    Returns
    -------
    out : array
        Of x's shape and backend, floating; in test mode x itself (when already floating).
    cache : tuple
        ``(dropout_param, mask)`` as in CS231n: a copy of ``dropout_param`` as it was at this call (changing the
        caller's dict afterwards does not change the backward pass), and ``mask``, a boolean array of x's shape on x's
        backend and device, True where the unit is kept; None in test mode.

    Notes
    -----
    A call that raises draws no random numbers: everything is checked before the mask is drawn.
    """
    xp = float_namespace(x=x)
    p, mode, seed = _settings(dropout_param)
    given = dropout_param.get("mask")
    if mode == "train":
        _check_mask(given, x, tracing=is_tracing(x))
    # The caller's values, with 'p' as the checked Python float the backward pass divides by (a NumPy float32
    # scalar would not combine with every backend's arrays).
    cached = {**dropout_param, "p": p}
    x = as_common_dtype(x, xp=xp)
    if seed is not None and (mode == "test" or given is None):
        reseed_global(seed)  # CS231n reseeds before it looks at the mode
    if mode == "test":
        return x, (cached, None)
    if given is not None:
        return xp.where(given, x * (1.0 / p), 0.0), (cached, given)
    # Drawn and compared on the host in float64, then moved as booleans: one small transfer, and the same mask on
    # every backend and for every dtype of x.
    mask = asarray(host_rand(tuple(x.shape)) < p, like=x)
    # Only the boolean mask is kept (1 byte per element), not a scaled float mask or x. Survivors are x * (1 / p),
    # CS231n's x * mask, bit for bit in float64, so a notebook prints CS231n's numbers.
    return xp.where(mask, x * (1.0 / p), 0.0), (cached, mask)


def dropout_backward(dout: Array, cache: Any) -> Array:
    """Inverted dropout backward pass.

    Parameters
    ----------
    dout : array
        Upstream gradient, of x's shape.
    cache : tuple
        ``(dropout_param, mask)`` from :func:`dropout_forward`.

    Returns
    -------
    dx : array
        Floating, of dout's shape: ``dout * (1 / p)`` where the unit was kept, exactly 0 where it was dropped (NaN in
        ``dout`` included); ``dout`` itself (when already floating) in test mode.
    """
    dropout_param, mask = cache
    xp = float_namespace(dout=dout)
    if dropout_param["mode"] != "test":
        xp = namespace(dout=dout, cache=mask)  # the mask is bool, so it is not a float argument
        if tuple(dout.shape) != tuple(mask.shape):
            raise ValueError(f"dout must have the forward output's shape {tuple(mask.shape)}, got {tuple(dout.shape)}")
    dout = as_common_dtype(dout, xp=xp)
    if dropout_param["mode"] == "test":
        return dout
    return xp.where(mask, dout * (1.0 / dropout_param["p"]), 0.0)


def _check_mask(mask, x, *, tracing: bool) -> None:
    """Refuse a train-mode call under a compiler without ``dropout_param['mask']``, and a mask that is not a
    boolean array of x's shape and backend."""
    if mask is None:
        if tracing:
            raise ValueError(
                "dropout_param['mask'] is required in train mode under a compiler (torch.compile, jax.jit): a mask "
                "drawn while tracing would be one constant reused at every step; pass a boolean array of x's "
                f"shape {tuple(x.shape)}, True where a unit is kept (e.g. uniform(x.shape) < p drawn outside)"
            )
        return
    if not is_array(mask):
        raise TypeError(f"dropout_param['mask'] must be a boolean array of x's shape, got {type(mask).__name__}")
    xp = namespace(x=x, mask=mask)
    if not xp.isdtype(mask.dtype, "bool"):
        raise TypeError(f"dropout_param['mask'] must be a boolean array, got dtype {dtype_name(mask.dtype)}")
    if tuple(mask.shape) != tuple(x.shape):
        raise ValueError(f"dropout_param['mask'] must have x's shape {tuple(x.shape)}, got {tuple(mask.shape)}")


def _settings(dropout_param):
    """``(p, mode, seed)`` from dropout_param, checked."""
    check_keys(dropout_param, "dropout_param", allowed=_KEYS)
    if "p" not in dropout_param:
        raise ValueError("dropout_param must contain 'p', the probability of keeping each unit")
    p = check_real(
        dropout_param["p"], "dropout_param['p'] (the keep probability)", low=0.0, high=1.0, include_low=False
    )
    mode = dropout_param.get("mode")
    if not isinstance(mode, str) or mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    return p, mode, check_legacy_seed(dropout_param.get("seed"), "dropout_param['seed']")
