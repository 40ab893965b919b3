"""Max pooling: a naive loop reference and a fast version (a reshape path when the windows tile the input, a
windowed path otherwise).

Both take CS231n's ``pool_param = {'pool_height': ph, 'pool_width': pw, 'stride': s}`` (no padding, no other key)
and give an output of size ``H' = 1 + (H - ph) // s``, floored as in torch. The gradient of each window goes to its
FIRST maximum in row-major order, as torch does, so tied inputs get a gradient of 1 at one place, not at every tie.
NaN counts as the maximum, as in torch: a window holding a NaN pools to NaN and sends its gradient to its first
NaN (torch's max_pool2d picks the last one when a window holds several).
"""

from __future__ import annotations

import functools

from .._backend import at, device, is_host_resident, is_tracing
from .._validation import check_int, check_keys
from ._checks import as_common_dtype, float_namespace
from ._windows import conv_output_size, scatter_windows, window_views

__all__ = ["max_pool_forward_naive", "max_pool_backward_naive", "max_pool_forward_fast", "max_pool_backward_fast"]

_KEYS = ("pool_height", "pool_width", "stride")


def _pool_geometry(x, pool_param) -> tuple[int, int, int, int, int]:
    """Validate the inputs of a pooling; return ``(pool_height, pool_width, stride, H', W')``."""
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"x must be 4-D with shape (N, C, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
    check_keys(pool_param, "pool_param", required=_KEYS, allowed=_KEYS)
    ph, pw, s = (check_int(pool_param[k], f"pool_param[{k!r}]", low=1) for k in _KEYS)
    out_h = conv_output_size(x.shape[2], ph, s, what="pool window", axis="height")
    out_w = conv_output_size(x.shape[3], pw, s, what="pool window", axis="width")
    return ph, pw, s, out_h, out_w


def max_pool_forward_naive(x, pool_param):
    """Max pooling forward pass with plain loops over images and output pixels (the readable reference).

    Parameters
    ----------
    x : array of shape (N, C, H, W)
        The input.
    pool_param : dict
        'pool_height', 'pool_width' and 'stride' (ints >= 1).

    Returns
    -------
    out : array of shape (N, C, H', W')
        H' = 1 + (H - pool_height) // stride, W' likewise.
    cache : tuple
        (x, pool_param).
    """
    xp = float_namespace(x=x)
    ph, pw, s, out_h, out_w = _pool_geometry(x, pool_param)
    x = as_common_dtype(x, xp=xp)
    N, C = x.shape[0], x.shape[1]
    out = xp.zeros((N, C, out_h, out_w), dtype=x.dtype, device=device(x))
    for n in range(N):
        for i in range(out_h):
            for j in range(out_w):
                window_max = xp.max(x[n, :, i * s : i * s + ph, j * s : j * s + pw], axis=(1, 2))
                out = at(out, (n, slice(None), i, j), xp=xp).set(window_max)
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    """Max pooling backward pass with plain loops: each window's gradient goes to its first maximum.

    Parameters
    ----------
    dout : array of shape (N, C, H', W')
        Upstream gradient.
    cache : tuple
        From :func:`max_pool_forward_naive`.

    Returns
    -------
    dx : array of shape (N, C, H, W)
    """
    x, pool_param = cache
    xp = float_namespace(dout=dout, cache=x)
    ph, pw, s, out_h, out_w = _pool_geometry(x, pool_param)
    N, C = x.shape[0], x.shape[1]
    if tuple(dout.shape) != (N, C, out_h, out_w):
        raise ValueError(f"dout must have the forward output's shape {(N, C, out_h, out_w)}, got {tuple(dout.shape)}")
    dout = as_common_dtype(dout, x, xp=xp)
    positions = xp.reshape(xp.arange(ph * pw, device=device(x)), (1, ph * pw))
    dx = xp.zeros(x.shape, dtype=dout.dtype, device=device(x))
    for n in range(N):
        for i in range(out_h):
            for j in range(out_w):
                rows, cols = slice(i * s, i * s + ph), slice(j * s, j * s + pw)
                window = xp.reshape(x[n, :, rows, cols], (C, ph * pw))
                # argmax takes NaN as the maximum (NumPy, torch), so a NaN window routes to its first NaN.
                first_max = positions == xp.argmax(window, axis=1, keepdims=True)  # (C, ph·pw), one True a row
                grad = xp.where(first_max, xp.reshape(dout[n, :, i, j], (C, 1)), 0.0)
                dx = at(dx, (n, slice(None), rows, cols), xp=xp).add(xp.reshape(grad, (C, ph, pw)))
    return dx


def _tiles(x, ph: int, pw: int, s: int) -> bool:
    """True when the windows cover the input exactly once, so that pooling is a reshape."""
    return ph == pw == s and x.shape[2] % ph == 0 and x.shape[3] % pw == 0


def _windows(x, ph: int, pw: int, s: int, out_h: int, out_w: int, *, xp) -> list:
    """The ph·pw (N, C, H', W') views whose elementwise maximum is the pooled output, in row-major window order.

    Tiling windows are views of x reshaped to (N, C, H', ph, W', pw); other windows are strided slices.
    """
    if _tiles(x, ph, pw, s):
        tiles = xp.reshape(x, (x.shape[0], x.shape[1], out_h, ph, out_w, pw))
        return [tiles[:, :, :, i, :, j] for i in range(ph) for j in range(pw)]
    return window_views(x, ph, pw, s, out_h, out_w)


def _maximum(views, *, xp):
    """Elementwise maximum of a list of equal-shape arrays (NumPy reduces a stacked window axis far slower)."""
    return functools.reduce(xp.maximum, views)


def _route_to_first_max(views, top, *, xp) -> list:
    """For each window position k, a boolean mask of where views[k] is the window's FIRST maximum ``top``.

    A running mask of the windows not yet served replaces an argmax: ties send the whole gradient to the first
    position in row-major order, as torch does. Measured with NumPy on (64, 32, 32, 32) inputs, an argmax over
    stacked windows plus a one-hot took ~4x longer than these elementwise passes over views, and ``where`` in
    place of the multiply by the 0/1 mask (exact for finite gradients) ~1.7x longer; a one-hot built by
    broadcasting in dx's (N, C, H', ph, W', pw) layout (one compare, a weighted sum over the window axes for the
    first maximum) took 6x longer with NumPy and 3x with torch than these passes. ``first`` lies inside
    ``unserved``, so one XOR takes it out; the first position needs neither (every window is unserved there).
    """
    masks, unserved = [], None
    for view in views:
        hit = view == top
        first = hit if unserved is None else hit & unserved
        unserved = ~first if unserved is None else unserved ^ first
        masks.append(first)
    # A window holding NaN has top NaN, which equals nothing, so it is still unserved: its first NaN is its maximum
    # (as argmax has it; view != view exactly at NaN). In host memory, looking for such windows costs one pass and
    # no device sync, and skips this loop in the usual NaN-free case; on a GPU the look would stall the pipeline,
    # and under a compiler it cannot be made (a value read), so there the loop always runs: the same result.
    if not is_host_resident(unserved) or is_tracing(unserved) or bool(xp.any(unserved)):
        for k, view in enumerate(views):
            first = (view != view) & unserved
            unserved = unserved ^ first
            masks[k] = masks[k] | first
    return masks


def max_pool_forward_fast(x, pool_param):
    """Max pooling forward pass without Python loops over images or pixels.

    When the windows tile the input (stride == pool_height == pool_width dividing H and W), the windows are
    views of x reshaped to (N, C, H', ph, W', pw); otherwise (overlapping or non-tiling windows) they are the
    ph·pw shifted strided slices of x. Either way the output is their elementwise maximum, with no copy of x.

    Parameters
    ----------
    x : array of shape (N, C, H, W)
        The input.
    pool_param : dict
        'pool_height', 'pool_width' and 'stride' (ints >= 1).

    Returns
    -------
    out : array of shape (N, C, H', W')
        H' = 1 + (H - pool_height) // stride, W' likewise.
    cache : tuple
        (x, out, pool_param); backward finds each window's first maximum in x again (comparing with out, kept so that it
        is not computed twice) rather than keeping an index array per window.
    """
    xp = float_namespace(x=x)
    ph, pw, s, out_h, out_w = _pool_geometry(x, pool_param)
    x = as_common_dtype(x, xp=xp)
    out = _maximum(_windows(x, ph, pw, s, out_h, out_w, xp=xp), xp=xp)
    return out, (x, out, pool_param)


def max_pool_backward_fast(dout, cache):
    """Max pooling backward pass: each window's gradient goes to its first maximum (row-major), as in torch.

    Each window position's gradient is dout where that position is its window's first maximum, 0 elsewhere. Tiling
    windows do not overlap, so dx is those ph·pw gradients laid out as (N, C, H', ph, W', pw); other windows are
    summed back with ``scatter_windows`` (overlapping windows add up).

    Parameters
    ----------
    dout : array of shape (N, C, H', W')
        Upstream gradient.
    cache : tuple
        From :func:`max_pool_forward_fast`.

    Returns
    -------
    dx : array of shape (N, C, H, W)
    """
    x, top, pool_param = cache
    xp = float_namespace(dout=dout, cache=x)
    ph, pw, s, out_h, out_w = _pool_geometry(x, pool_param)
    N, C = x.shape[0], x.shape[1]
    if tuple(dout.shape) != (N, C, out_h, out_w):
        raise ValueError(f"dout must have the forward output's shape {(N, C, out_h, out_w)}, got {tuple(dout.shape)}")
    dout = as_common_dtype(dout, x, xp=xp)
    masks = _route_to_first_max(_windows(x, ph, pw, s, out_h, out_w, xp=xp), top, xp=xp)
    grads = [xp.astype(hit, dout.dtype) * dout for hit in masks]
    if _tiles(x, ph, pw, s):
        # The window gradients are stacked into dx's (N, C, H', ph, W) layout: no writes into strided slices of a
        # zero dx, which compilers do badly (Inductor made the ph·pw slice writes one 21.6 ms kernel of a 42 ms CNN
        # step). Two stacks (columns, then rows), not one stack and a permute_dims: NumPy and torch copy the
        # permuted array 1.5-2× slower. The gradients are made before stacking, not the boolean masks stacked and
        # multiplied by dout repeated along W: that copied bytes rather than floats, but Inductor compiled it to
        # a 22 ms kernel where this takes 5.7 ms (pool forward + backward on (32, 50, 32, 32), 2×2, 1 thread, Xeon,
        # 2026-12-06; eager NumPy 6.6 against 6.1 ms, torch 9.5 against 9.4 ms, jax.jit 4.3 against 6.1 ms).
        rows = [xp.reshape(xp.stack(grads[i * pw : (i + 1) * pw], axis=-1), (N, C, out_h, -1)) for i in range(ph)]
        return xp.reshape(xp.stack(rows, axis=3), tuple(x.shape))  # (N, C, H', ph, W) -> (N, C, H, W)
    return scatter_windows(grads, tuple(x.shape), ph, pw, s, xp=xp)
