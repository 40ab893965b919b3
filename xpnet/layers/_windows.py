"""Sliding-window geometry shared by convolution and pooling: the one place that gathers and scatters windows.

A KH×KW window sliding with stride ``s`` over the last two axes of an array is read as KH·KW shifted strided
slices, one per kernel offset ``(i, j)``: ``x[..., i : i + s·(H'-1) + 1 : s, j : j + s·(W'-1) + 1 : s]``, each of
shape ``(..., H', W')``. Python loops run over the KH·KW offsets only, never over the batch or output pixels, and
slice stops never pass the end of the array (array_api_strict rejects out-of-bounds slices). Offsets are numbered
``k = i·KW + j`` (row-major within the window), which is what "first argmax of a window" refers to in pooling.
"""

from __future__ import annotations

from .._backend import at, device, is_tracing, pad

__all__ = ["conv_output_size", "window_views", "gather_windows", "scatter_windows"]


def conv_output_size(size: int, kernel: int, stride: int, pad: int = 0, *, what: str = "filter", axis: str = "height"):
    """Output length ``1 + (size + 2·pad - kernel) // stride`` along one axis, floored as in torch.

    Raises ValueError when the window (``what``: "filter", "pool window") does not fit in the padded input.
    """
    padded = size + 2 * pad
    if kernel > padded:
        where = f"the padded input {axis} {size} + 2*{pad} = {padded}" if pad else f"the input {axis} {size}"
        raise ValueError(f"{what} {axis} {kernel} is larger than {where}")
    return 1 + (padded - kernel) // stride


def _offsets(kh: int, kw: int, stride: int, out_h: int, out_w: int):
    """The KH·KW (row slice, column slice) pairs, in window order k = i·KW + j; stops stay in bounds."""
    span_h, span_w = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    return [(slice(i, i + span_h, stride), slice(j, j + span_w, stride)) for i in range(kh) for j in range(kw)]


def window_views(x, kh: int, kw: int, stride: int, out_h: int, out_w: int) -> list:
    """The KH·KW shifted strided slices of ``x`` (..., H, W), each a (..., H', W') view, in window order."""
    return [x[..., rows, columns] for rows, columns in _offsets(kh, kw, stride, out_h, out_w)]


def gather_windows(x, kh: int, kw: int, stride: int, out_h: int, out_w: int, *, axis: int, xp):
    """Stack the KH·KW shifted strided slices of ``x`` (..., H, W) along a new axis ``axis``.

    With ``x`` of shape (A, B, H, W) and ``axis=2`` the result is (A, B, KH·KW, H', W'); with ``axis=1`` it is
    (A, KH·KW, B, H', W'). The result is a fresh contiguous array, so reshaping it (for im2col) copies nothing.

    One ``stack`` of the KH·KW slices is kept over two other formulations measured for the 7×7 first layer of the
    default CNN ((3, 50, 38, 38) padded input, 2-core Xeon, 2026-12-06, times relative to the stack): a ``take``
    with one flat index array is 0.47× under jax.jit (XLA's stack of 49 slices costs ~23 ms there) but 1.4×
    with NumPy, 6.7× with torch eager and 2.6× under torch.compile; a separable gather (KW column slices, then KH
    row slices of them) is 0.66× under jax.jit and 2.1-2.5× on the others. No single formulation wins on every
    backend, and the eager paths and Inductor, which fuses the stack well, come first.
    """
    return xp.stack(window_views(x, kh, kw, stride, out_h, out_w), axis=axis)


def scatter_windows(windows, shape, kh: int, kw: int, stride: int, *, xp):
    """Adjoint of :func:`window_views`: sum KH·KW window arrays (..., H', W') back into a zero array ``shape``.

    ``windows`` is a sequence in window order (a list, or ``xp.unstack`` of a stacked array); overlapping windows
    accumulate, in window order. Eagerly the accumulation goes through ``at`` (in place on mutable backends, a new
    array on JAX). Under a compiler each window is instead zero-padded to ``shape`` and the padded arrays summed
    (:func:`_scatter_by_padding`): compilers turn a chain of KH·KW writes into slices into one kernel that
    evaluates each write's input once per branch, 2**(KH·KW) times over (Inductor, 2026-12-06: 1.07 s for a 3×3
    convolution's dx on (50, 32, 16, 16) that takes 4.3 ms eagerly, and a 7×7 one never finished), where a sum of
    padded arrays is one kernel with KH·KW reads per element (3.4 ms). Eagerly the padding would copy each window
    to full size. Both add the same numbers in the same order.
    """
    first = windows[0]
    if is_tracing(first):
        return _scatter_by_padding(windows, shape, kh, kw, stride, xp=xp)
    out_h, out_w = first.shape[-2], first.shape[-1]
    out = xp.zeros(shape, dtype=first.dtype, device=device(first))
    for window, (rows, columns) in zip(windows, _offsets(kh, kw, stride, out_h, out_w), strict=True):
        out = at(out, (..., rows, columns), xp=xp).add(window)
    return out


def _dilate(a, stride: int, axis: int, *, xp):
    """``a`` with ``stride - 1`` zeros between neighbours along ``axis`` (-1 or -2): length n becomes s·(n-1)+1."""
    n = a.shape[axis]
    spread = xp.stack([a] + [xp.zeros_like(a)] * (stride - 1), axis=axis)  # (..., n, s) or (..., n, s, W)
    merged = xp.reshape(spread, (*a.shape[: a.ndim + axis], n * stride, *a.shape[a.ndim + axis + 1 :]))
    keep = slice(0, stride * (n - 1) + 1)
    return merged[..., keep] if axis == -1 else merged[..., keep, :]


def _scatter_by_padding(windows, shape, kh: int, kw: int, stride: int, *, xp):
    """:func:`scatter_windows` as a sum of the windows, each spread by ``stride`` and zero-padded to ``shape``."""
    height, width = shape[-2], shape[-1]
    total = None
    for k, window in enumerate(windows):
        i, j = divmod(k, kw)
        if stride > 1:
            window = _dilate(_dilate(window, stride, -1, xp=xp), stride, -2, xp=xp)
        span_h, span_w = window.shape[-2], window.shape[-1]
        widths = ((0, 0),) * (window.ndim - 2) + ((i, height - i - span_h), (j, width - j - span_w))
        term = pad(window, widths, xp=xp)
        total = term if total is None else total + term
    return total
