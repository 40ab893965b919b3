"""Max pooling: a naive loop reference and a fast version (a reshape path when the windows tile the input, a
windowed path otherwise).

Both take CS231n's ``pool_param = {'pool_height': ph, 'pool_width': pw, 'stride': s}`` (no padding) and give an
output of size ``H' = 1 + (H - ph) // s``, floored as in torch. The gradient of each window goes to its FIRST
maximum in row-major order, as torch does, so tied inputs get a gradient of 1 at one place, not at every tie.
"""

from __future__ import annotations

from .._backend import device, namespace
from ._windows import check_int, conv_output_size, gather_windows, scatter_windows

__all__ = ["max_pool_forward_naive", "max_pool_backward_naive", "max_pool_forward_fast", "max_pool_backward_fast"]

_KEYS = ("pool_height", "pool_width", "stride")


def _pool_geometry(x, pool_param) -> tuple[int, int, int, int, int]:
    """Validate the inputs of a pooling; return ``(pool_height, pool_width, stride, H', W')``."""
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"x must be 4-D with shape (N, C, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
    if not isinstance(pool_param, dict):
        raise TypeError(f"pool_param must be a dict with keys {list(_KEYS)}, got {type(pool_param).__name__}")
    missing = [k for k in _KEYS if k not in pool_param]
    if missing:
        raise ValueError(f"pool_param must have keys {list(_KEYS)}, missing {missing}")
    ph, pw, s = (check_int(pool_param[k], f"pool_param[{k!r}]", minimum=1) for k in _KEYS)
    out_h = conv_output_size(x.shape[2], ph, s, what="pool window", axis="height")
    out_w = conv_output_size(x.shape[3], pw, s, what="pool window", axis="width")
    return ph, pw, s, out_h, out_w


def max_pool_forward_naive(x, pool_param):
    """Max pooling forward pass with plain loops over images and output pixels (the readable reference).

    Parameters
    ----------
    x : (N, C, H, W) input.
    pool_param : dict with 'pool_height', 'pool_width' and 'stride' (ints >= 1).

    Returns
    -------
    out : (N, C, H', W') with H' = 1 + (H - pool_height) // stride, W' likewise.
    cache : (x, pool_param).
    """
    xp = namespace(x)
    ph, pw, s, out_h, out_w = _pool_geometry(x, pool_param)
    N, C = x.shape[0], x.shape[1]
    out = xp.zeros((N, C, out_h, out_w), dtype=x.dtype, device=device(x))
    for n in range(N):
        for i in range(out_h):
            for j in range(out_w):
                out[n, :, i, j] = xp.max(x[n, :, i * s : i * s + ph, j * s : j * s + pw], axis=(1, 2))
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Max pooling backward pass with plain loops: each window's gradient goes to its first maximum.

    Parameters
    ----------
    dout : (N, C, H', W') upstream gradient.
    cache : from :func:`max_pool_forward_naive`.

    Returns
    -------
    dx : (N, C, H, W).
    """
    x, pool_param = cache
    xp = namespace(dout, x)
    ph, pw, s, out_h, out_w = _pool_geometry(x, pool_param)
    N, C = x.shape[0], x.shape[1]
    positions = xp.reshape(xp.arange(ph * pw, device=device(x)), (1, ph * pw))
    dx = xp.zeros(x.shape, dtype=dout.dtype, device=device(x))
    for n in range(N):
        for i in range(out_h):
            for j in range(out_w):
                rows, cols = slice(i * s, i * s + ph), slice(j * s, j * s + pw)
                window = xp.reshape(x[n, :, rows, cols], (C, ph * pw))
                first_max = positions == xp.argmax(window, axis=1, keepdims=True)  # (C, ph·pw), one True a row
                grad = xp.where(first_max, xp.reshape(dout[n, :, i, j], (C, 1)), 0.0)
                dx[n, :, rows, cols] += xp.reshape(grad, (C, ph, pw))
    return dx


def _tiles(x, ph: int, pw: int, s: int) -> bool:
    """True when the windows cover the input exactly once, so that pooling is a reshape."""
    return ph == pw == s and x.shape[2] % ph == 0 and x.shape[3] % pw == 0


def _route_to_first_max(windows, dout, *, xp):
    """(N, C, K, H', W') windows and (N, C, H', W') dout -> dout at each window's first argmax, zeros elsewhere."""
    k = windows.shape[2]
    positions = xp.reshape(xp.arange(k, device=device(windows)), (1, 1, k, 1, 1))
    first_max = positions == xp.argmax(windows, axis=2, keepdims=True)
    return xp.where(first_max, xp.expand_dims(dout, axis=2), 0.0)


def max_pool_forward_fast(x, pool_param):
    """Max pooling forward pass without Python loops over images or pixels.

    When the windows tile the input (stride == pool_height == pool_width dividing H and W), x is viewed as
    (N, C, H', ph, W', pw) and reduced without a copy; otherwise the ph·pw shifted strided slices are stacked
    (overlapping or non-tiling windows).

    Parameters
    ----------
    x : (N, C, H, W) input.
    pool_param : dict with 'pool_height', 'pool_width' and 'stride' (ints >= 1).

    Returns
    -------
    out : (N, C, H', W') with H' = 1 + (H - pool_height) // stride.
    cache : (x, pool_param); backward finds each window's first maximum in x again rather than keeping an index
        array per window.
    """
    xp = namespace(x)
    ph, pw, s, out_h, out_w = _pool_geometry(x, pool_param)
    N, C = x.shape[0], x.shape[1]
    if _tiles(x, ph, pw, s):
        out = xp.max(xp.reshape(x, (N, C, out_h, ph, out_w, pw)), axis=(3, 5))
    else:
        out = xp.max(gather_windows(x, ph, pw, s, out_h, out_w, axis=2, xp=xp), axis=2)
    return out, (x, pool_param)


def max_pool_backward_fast(dout, cache):
    """Max pooling backward pass: each window's gradient goes to its first maximum (row-major), as in torch.

    Parameters
    ----------
    dout : (N, C, H', W') upstream gradient.
    cache : from :func:`max_pool_forward_fast`.

    Returns
    -------
    dx : (N, C, H, W).
    """
    x, pool_param = cache
    xp = namespace(dout, x)
    ph, pw, s, out_h, out_w = _pool_geometry(x, pool_param)
    N, C = x.shape[0], x.shape[1]
    if tuple(dout.shape) != (N, C, out_h, out_w):
        raise ValueError(f"dout must have the forward output's shape {(N, C, out_h, out_w)}, got {tuple(dout.shape)}")
    if _tiles(x, ph, pw, s):
        # Window offsets must be ordered row-major, (ph, pw), before the argmax, so that ties resolve as in the
        # windowed path; the permute costs one copy of x.
        tiles = xp.permute_dims(xp.reshape(x, (N, C, out_h, ph, out_w, pw)), (0, 1, 3, 5, 2, 4))
        d_tiles = _route_to_first_max(xp.reshape(tiles, (N, C, ph * pw, out_h, out_w)), dout, xp=xp)
        d_tiles = xp.permute_dims(xp.reshape(d_tiles, (N, C, ph, pw, out_h, out_w)), (0, 1, 4, 2, 5, 3))
        return xp.reshape(d_tiles, tuple(x.shape))
    windows = gather_windows(x, ph, pw, s, out_h, out_w, axis=2, xp=xp)
    return scatter_windows(_route_to_first_max(windows, dout, xp=xp), tuple(x.shape), ph, pw, s, axis=2, xp=xp)
