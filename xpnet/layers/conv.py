"""Convolution: a naive loop reference and a fast im2col version (one matmul for the whole batch).

Both take CS231n's ``conv_param = {'stride': s, 'pad': p}`` (no other key): zero padding ``p`` on each side of H
and W, and an output of size ``H' = 1 + (H + 2p - HH) // s`` (floored as in torch when the stride does not divide).
x, w and b are real arrays; mixed precisions promote as the Array API standard says (float32 with float64 gives
float64), integer and bool arrays take the floats' dtype as in NumPy (CS231n's ``b = np.array([0, 128])``), and a
backward pass computes in the common dtype of dout and the cache.
"""

from __future__ import annotations

from .._backend import at, device, pad
from .._validation import check_flag, check_int, check_keys
from ._checks import as_common_dtype, float_namespace, promote
from ._windows import conv_output_size, gather_windows, scatter_windows

__all__ = ["conv_forward_naive", "conv_backward_naive", "conv_forward_fast", "conv_backward_fast"]

_KEYS = frozenset({"stride", "pad"})


def _conv_geometry(x, w, b, conv_param) -> tuple[int, int, int, int]:
    """Validate the inputs of a convolution; return ``(stride, pad, H', W')``."""
    if getattr(x, "ndim", None) != 4:
        raise ValueError(f"x must be 4-D with shape (N, C, H, W), got shape {tuple(getattr(x, 'shape', ()))}")
    if getattr(w, "ndim", None) != 4:
        raise ValueError(f"w must be 4-D with shape (F, C, HH, WW), got shape {tuple(getattr(w, 'shape', ()))}")
    _, C, H, W = x.shape
    F, C_w, HH, WW = w.shape
    if C_w != C:
        raise ValueError(f"w must have shape (F, C, HH, WW) with C={C} to match x, got {tuple(w.shape)}")
    if tuple(b.shape) != (F,):
        raise ValueError(f"b must have shape (F,) = ({F},) to match w, got {tuple(b.shape)}")
    check_keys(conv_param, "conv_param", required=_KEYS, allowed=_KEYS)
    stride = check_int(conv_param["stride"], "conv_param['stride']", low=1)
    p = check_int(conv_param["pad"], "conv_param['pad']", low=0)
    out_h = conv_output_size(H, HH, stride, p, what="filter", axis="height")
    out_w = conv_output_size(W, WW, stride, p, what="filter", axis="width")
    return stride, p, out_h, out_w


def _pad_hw(x, p: int, *, xp):
    """Zero-pad the last two axes of a 4-D array by ``p`` on each side."""
    return pad(x, ((0, 0), (0, 0), (p, p), (p, p)), xp=xp) if p else x


def conv_forward_naive(x, w, b, conv_param):
    """Convolution forward pass with plain loops over images and output pixels (the readable reference).

    Parameters
    ----------
    x : array of shape (N, C, H, W)
        The input.
    w : array of shape (F, C, HH, WW)
        Filters.
    b : array of shape (F,)
        Biases.
    conv_param : dict
        'stride' (int >= 1) and 'pad' (int >= 0, zeros on each side of H and W).

    Returns
    -------
    out : array of shape (N, F, H', W')
        H' = 1 + (H + 2*pad - HH) // stride, W' likewise.
    cache : tuple
        (x, w, b, conv_param).
    """
    xp = float_namespace(x=x, w=w, b=b)
    s, p, out_h, out_w = _conv_geometry(x, w, b, conv_param)
    x, w, b = promote(x, w, b, xp=xp)
    N, F, HH, WW = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    x_pad = _pad_hw(x, p, xp=xp)
    out = xp.zeros((N, F, out_h, out_w), dtype=x.dtype, device=device(x))
    for n in range(N):
        for i in range(out_h):
            for j in range(out_w):
                window = x_pad[n, :, i * s : i * s + HH, j * s : j * s + WW]  # (C, HH, WW)
                out = at(out, (n, slice(None), i, j), xp=xp).set(xp.sum(w * window, axis=(1, 2, 3)) + b)
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    """Convolution backward pass with plain loops (the readable reference).

    Parameters
    ----------
    dout : array of shape (N, F, H', W')
        Upstream gradient.
    cache : tuple
        From :func:`conv_forward_naive`.

    Returns
    -------
    dx : array of shape (N, C, H, W)
    dw : array of shape (F, C, HH, WW)
    db : array of shape (F,)
    """
    x, w, b, conv_param = cache
    xp = float_namespace(dout=dout, cache=x)
    s, p, out_h, out_w = _conv_geometry(x, w, b, conv_param)
    N, H, W = x.shape[0], x.shape[2], x.shape[3]
    if tuple(dout.shape) != (N, w.shape[0], out_h, out_w):
        raise ValueError(
            f"dout must have the forward output's shape {(N, w.shape[0], out_h, out_w)}, got {tuple(dout.shape)}"
        )
    dout = as_common_dtype(dout, x, xp=xp)
    HH, WW = w.shape[2], w.shape[3]
    x_pad = _pad_hw(x, p, xp=xp)
    dx_pad = xp.zeros(x_pad.shape, dtype=dout.dtype, device=device(x))
    dw = xp.zeros(w.shape, dtype=dout.dtype, device=device(x))
    for n in range(N):
        for i in range(out_h):
            for j in range(out_w):
                rows, cols = slice(i * s, i * s + HH), slice(j * s, j * s + WW)
                g = xp.reshape(dout[n, :, i, j], (-1, 1, 1, 1))  # (F, 1, 1, 1)
                dw = dw + g * x_pad[n, :, rows, cols]
                dx_pad = at(dx_pad, (n, slice(None), rows, cols), xp=xp).add(xp.sum(g * w, axis=0))
    db = xp.sum(dout, axis=(0, 2, 3))
    return dx_pad[:, :, p : p + H, p : p + W], dw, db


def _im2col_forward(x, w, b, conv_param):
    """Validate and promote the inputs, convolve without the bias: ``(xp, a, b, cache)``, ``a`` the (F, N, H', W')
    matmul result (F-major, the product's own layout) and ``b`` promoted with x and w."""
    xp = float_namespace(x=x, w=w, b=b)
    s, p, out_h, out_w = _conv_geometry(x, w, b, conv_param)
    x, w, b = promote(x, w, b, xp=xp)
    N, C = x.shape[0], x.shape[1]
    F, _, HH, WW = w.shape
    x_t = _pad_hw(xp.permute_dims(x, (1, 0, 2, 3)), p, xp=xp)  # (C, N, H + 2p, W + 2p)
    windows = gather_windows(x_t, HH, WW, s, out_h, out_w, axis=1, xp=xp)  # (C, HH·WW, N, H', W')
    x_cols = xp.reshape(windows, (C * HH * WW, N * out_h * out_w))
    a = xp.reshape(xp.matmul(xp.reshape(w, (F, C * HH * WW)), x_cols), (F, N, out_h, out_w))
    return xp, a, b, (x_cols, w, tuple(x.shape), conv_param)


def conv_forward_fast(x, w, b, conv_param):
    """Convolution forward pass by im2col: one matmul for the whole batch.

    The padded input is gathered into columns of layout (C·HH·WW, N·H'·W') (channel-major: x is transposed to
    (C, N, H, W) first), so the convolution is a single ``(F, C·HH·WW) @ (C·HH·WW, N·H'·W')`` product. With
    NumPy/OpenBLAS on 2 cores this layout ran forward+backward 5-20% faster than the batched
    (N, C·HH·WW, H'·W') one (N matmuls per product, and a sum over N for dw); see benchmarks/README.md.

    Parameters
    ----------
    x : array of shape (N, C, H, W)
        The input.
    w : array of shape (F, C, HH, WW)
        Filters.
    b : array of shape (F,)
        Biases.
    conv_param : dict
        'stride' (int >= 1) and 'pad' (int >= 0).

    Returns
    -------
    out : array of shape (N, F, H', W')
        H' = 1 + (H + 2*pad - HH) // stride (a transposed view of the matmul result).
    cache : tuple
        (x_cols, w, x_shape, conv_param). The column matrix is kept rather than x because the weight gradient needs it
        and rebuilding it would cost a second gather.
    """
    xp, a, b, cache = _im2col_forward(x, w, b, conv_param)
    return xp.permute_dims(a + xp.reshape(b, (-1, 1, 1, 1)), (1, 0, 2, 3)), cache


def conv_forward_channels_first(x, w, b, conv_param):
    """The convolution of :func:`conv_forward_fast` without its bias, in the matmul's (F, N, H', W') layout.

    For sandwich layers that add the bias later to a smaller array: after a max pool, ``max(a + b) == max(a) + b``
    for a per-channel ``b``. ``b`` is validated (and takes part in dtype promotion) but not added.

    Parameters
    ----------
    x, w, b, conv_param : as for :func:`conv_forward_fast`.

    Returns
    -------
    a : (F, N, H', W'), contiguous: ``conv_forward_fast``'s output minus b, with the first two axes swapped.
    cache : for :func:`conv_backward_channels_first` (the cache of :func:`conv_forward_fast`).
    """
    _, a, _, cache = _im2col_forward(x, w, b, conv_param)
    return a, cache


def _im2col_backward(dout_2d, cache, input_grad: bool, *, xp):
    """``(dx, dw)`` from the (F, N·H'·W') upstream gradient, already checked and in the cache's dtype."""
    x_cols, w, (N, C, H, W), conv_param = cache
    s, p = conv_param["stride"], conv_param["pad"]
    F, _, HH, WW = w.shape
    _, _, out_h, out_w = _output_shape(cache)
    # (x_cols @ dout_2d.T).T, not dout_2d @ x_cols.T: the same product with the long N·H'·W' axis as the inner
    # dimension of a tall-skinny operand in both, but BLAS splits it better across threads. Measured alone on 2
    # cores (NumPy with OpenBLAS's AVX2 and AVX-512 kernels, torch): 15 of 16 im2col shapes faster, by up to 40%
    # (the 7×7 first layer: 4.0-5.1 ms to 2.9-3.8 ms).
    dw = xp.reshape(xp.matrix_transpose(xp.matmul(x_cols, xp.matrix_transpose(dout_2d))), w.shape)
    if not input_grad:
        return None, dw
    w_2d = xp.reshape(w, (F, C * HH * WW))
    d_cols = xp.reshape(xp.matmul(xp.matrix_transpose(w_2d), dout_2d), (C, HH * WW, N, out_h, out_w))
    dx_t = scatter_windows(xp.unstack(d_cols, axis=1), (C, N, H + 2 * p, W + 2 * p), HH, WW, s, xp=xp)
    return xp.permute_dims(dx_t, (1, 0, 2, 3))[:, :, p : p + H, p : p + W], dw


def _backward_inputs(dout, cache, expected: tuple, name: str):
    """Check the upstream gradient (called ``name``) against the forward output's shape ``expected``; return ``xp``
    and it and the cache's arrays promoted to their common dtype."""
    x_cols, w, _, _ = cache
    xp = float_namespace(**{name: dout, "cache": x_cols})
    if tuple(dout.shape) != expected:
        raise ValueError(f"{name} must have the forward output's shape {expected}, got {tuple(dout.shape)}")
    dout, x_cols, w = promote(dout, x_cols, w, xp=xp)
    return xp, dout, (x_cols, w, *cache[2:])


def _output_shape(cache) -> tuple[int, int, int, int]:
    """(N, F, H', W') of the forward output that made ``cache``."""
    _, w, (N, _, H, W), conv_param = cache
    s, p = conv_param["stride"], conv_param["pad"]
    return N, w.shape[0], conv_output_size(H, w.shape[2], s, p), conv_output_size(W, w.shape[3], s, p)


def conv_backward_fast(dout, cache, *, input_grad=True):
    """Convolution backward pass by im2col: two matmuls and a col2im accumulation over the HH·WW offsets.

    Parameters
    ----------
    dout : array of shape (N, F, H', W')
        Upstream gradient.
    cache : tuple
        From :func:`conv_forward_fast`.
    input_grad : bool, default True
        Keyword-only; False skips dx (None is returned in its place), for a first layer whose input needs no gradient:
        that saves the ``w.T @ dout`` matmul, its (C·HH·WW, N·H'·W') result and the col2im scatter, as torch's autograd
        skips them for an input that does not require grad.

    Returns
    -------
    dx : array of shape (N, C, H, W), or None
    dw : array of shape (F, C, HH, WW)
    db : array of shape (F,)
    """
    check_flag(input_grad, "input_grad")
    N, F, out_h, out_w = _output_shape(cache)
    xp, dout, cache = _backward_inputs(dout, cache, (N, F, out_h, out_w), "dout")
    dout_2d = xp.reshape(xp.permute_dims(dout, (1, 0, 2, 3)), (F, N * out_h * out_w))
    dx, dw = _im2col_backward(dout_2d, cache, input_grad, xp=xp)
    return dx, dw, xp.sum(dout_2d, axis=1)


def conv_backward_channels_first(da, cache, *, input_grad=True):
    """Backward pass of :func:`conv_forward_channels_first`: ``(dx, dw)``; the bias gradient is the caller's.

    Parameters
    ----------
    da : (F, N, H', W') upstream gradient (contiguous, as a pooling backward pass makes it, saves a copy).
    cache : from :func:`conv_forward_channels_first`.
    input_grad : keyword-only; False skips dx (None is returned in its place), as in :func:`conv_backward_fast`.

    Returns
    -------
    dx : (N, C, H, W) or None, dw : (F, C, HH, WW).
    """
    check_flag(input_grad, "input_grad")
    N, F, out_h, out_w = _output_shape(cache)
    xp, da, cache = _backward_inputs(da, cache, (F, N, out_h, out_w), "da")
    return _im2col_backward(xp.reshape(da, (F, N * out_h * out_w)), cache, input_grad, xp=xp)
