"""Convolution (naive and fast) and the shared window helpers: CS231n's notebook values, numerical gradients,
fast against naive over random geometries, torch autograd as an independent reference, dtypes, bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xpnet.fast_layers as fast_layers
from xpnet.gradient_check import eval_numerical_gradient_array
from xpnet.layers import conv_backward_fast, conv_backward_naive, conv_forward_fast, conv_forward_naive
from xpnet.layers._windows import conv_output_size, gather_windows, scatter_windows

from helpers import (
    GRAD_REL_ERROR,
    assert_close,
    assert_close_to_reference,
    fixed_examples,
    rel_error,
    requires_torch,
    to_np,
    to_xp,
    torch,
    widest_float,
)

IMPLEMENTATIONS = {
    "naive": (conv_forward_naive, conv_backward_naive),
    "fast": (conv_forward_fast, conv_backward_fast),
}

# (x shape, w shape, stride, pad): square, non-square input and kernel, pad 0 and 2, a stride that does not
# divide (H + 2p - HH = 5 with stride 2 floors to H' = 3, as torch does), and a pad wider than the kernel
# (pad 2 > WW - 1: the outer output columns see only padding).
GEOMETRIES = {
    "s1p1": ((2, 2, 4, 4), (3, 2, 3, 3), 1, 1),
    "s1p2-wide-pad": ((1, 3, 4, 5), (2, 3, 3, 2), 1, 2),
    "s2p0-nonsquare": ((2, 2, 5, 6), (2, 2, 3, 2), 2, 0),
    "s2p2-floor": ((1, 2, 4, 3), (2, 2, 3, 3), 2, 2),
}


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _inputs(xp, x_shape, w_shape, seed=0, dtype="float64"):
    return tuple(
        to_xp(a, xp, dtype=dtype)
        for a in (_randn(*x_shape, seed=seed), _randn(*w_shape, seed=seed + 1), _randn(w_shape[0], seed=seed + 2))
    )


def _torch_conv(x, w, b, dout, stride, pad):
    """Forward output and (dx, dw, db) from torch autograd in float64: the independent reference."""
    tx, tw, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    out = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return out.detach().numpy(), (tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy())


def ref_shape(x_shape, w_shape, stride, pad):
    """Output shape by torch's formula, written out independently of xpnet's."""
    (N, _, H, W), (F, _, HH, WW) = x_shape, w_shape
    return N, F, (H + 2 * pad - HH) // stride + 1, (W + 2 * pad - WW) // stride + 1


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_conv_forward_matches_the_notebook(xp, impl):
    x = np.linspace(-0.1, 0.5, num=96).reshape(2, 3, 4, 4)
    w = np.linspace(-0.2, 0.3, num=144).reshape(3, 3, 4, 4)
    b = np.linspace(-0.1, 0.2, num=3)
    out, _ = IMPLEMENTATIONS[impl][0](to_xp(x, xp), to_xp(w, xp), to_xp(b, xp), {"stride": 2, "pad": 1})
    expected = [
        [[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
         [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
         [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
        [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
         [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
         [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]],
    ]  # fmt: skip
    assert_close(out, np.array(expected), xp=xp, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize(
    ("impl", "geometry"),
    [("fast", g) for g in GEOMETRIES] + [("naive", "s1p1"), ("naive", "s2p2-floor")],
)
def test_conv_gradients_match_numerical(xp, impl, geometry):
    forward, backward = IMPLEMENTATIONS[impl]
    x_shape, w_shape, stride, pad = GEOMETRIES[geometry]
    x, w, b = _inputs(xp, x_shape, w_shape)
    conv_param = {"stride": stride, "pad": pad}
    out, cache = forward(x, w, b, conv_param)
    dout = to_xp(_randn(*out.shape, seed=9), xp)
    dx, dw, db = backward(dout, cache)
    num_dx = eval_numerical_gradient_array(lambda a: forward(a, w, b, conv_param)[0], x, dout)
    num_dw = eval_numerical_gradient_array(lambda a: forward(x, a, b, conv_param)[0], w, dout)
    num_db = eval_numerical_gradient_array(lambda a: forward(x, w, a, conv_param)[0], b, dout)
    assert (tuple(dx.shape), tuple(dw.shape), tuple(db.shape)) == (x_shape, w_shape, (w_shape[0],))
    assert rel_error(dx, num_dx) < GRAD_REL_ERROR
    assert rel_error(dw, num_dw) < GRAD_REL_ERROR
    assert rel_error(db, num_db) < GRAD_REL_ERROR


# float64 on every geometry; float32 (its precision kept, its dtype returned) on two that between them pad, stride
# and take a non-square kernel: each float32 geometry costs JAX a fresh compilation of every op.
TORCH_CASES = [(g, "float64") for g in GEOMETRIES] + [("s1p1", "float32"), ("s2p0-nonsquare", "float32")]


@requires_torch
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(("geometry", "dtype"), TORCH_CASES)
def test_conv_matches_torch_autograd(xp, impl, geometry, dtype):
    forward, backward = IMPLEMENTATIONS[impl]
    x_shape, w_shape, stride, pad = GEOMETRIES[geometry]
    out_shape = ref_shape(x_shape, w_shape, stride, pad)
    # Rounded to dtype first, so the float64 reference differs only by the arithmetic in dtype.
    x, w, b = _randn(*x_shape).astype(dtype), _randn(*w_shape, seed=1).astype(dtype), _randn(w_shape[0], seed=2)
    b, dout = b.astype(dtype), _randn(*out_shape, seed=3).astype(dtype)
    ref_out, ref_grads = _torch_conv(x, w, b, dout, stride, pad)
    out, cache = forward(to_xp(x, xp), to_xp(w, xp), to_xp(b, xp), {"stride": stride, "pad": pad})
    (N, C, _, _), (F, _, HH, WW), (_, _, H_out, W_out) = x_shape, w_shape, out_shape
    # Terms summed into one entry: an output sums C*HH*WW products, dx at most F*HH*WW, dw and db N*H'*W'.
    assert_close_to_reference(out, ref_out, dtype=dtype, xp=xp, terms=C * HH * WW, err_msg="out")
    grads = backward(to_xp(dout, xp), cache)
    terms = (F * HH * WW, N * H_out * W_out, N * H_out * W_out)
    for name, got, ref, n in zip(("dx", "dw", "db"), grads, ref_grads, terms, strict=True):
        assert_close_to_reference(got, ref, dtype=dtype, xp=xp, terms=n, err_msg=name)


@fixed_examples(12)
@given(
    n=st.integers(1, 2), c=st.integers(1, 3), f=st.integers(1, 3),
    h=st.integers(1, 7), w=st.integers(1, 7), kh=st.integers(1, 4), kw=st.integers(1, 4),
    stride=st.integers(1, 3), pad=st.integers(0, 2), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_conv_fast_matches_naive_on_random_geometries(xp, n, c, f, h, w, kh, kw, stride, pad, seed):
    if kh > h + 2 * pad or kw > w + 2 * pad:
        with pytest.raises(ValueError, match=r"is larger than the (padded )?input"):
            conv_forward_fast(*_inputs(xp, (n, c, h, w), (f, c, kh, kw), seed), {"stride": stride, "pad": pad})
        return
    x, wt, b = _inputs(xp, (n, c, h, w), (f, c, kh, kw), seed)
    conv_param = {"stride": stride, "pad": pad}
    out, cache = conv_forward_fast(x, wt, b, conv_param)
    ref_out, ref_cache = conv_forward_naive(x, wt, b, conv_param)
    assert tuple(out.shape) == ref_shape((n, c, h, w), (f, c, kh, kw), stride, pad)
    assert_close(out, ref_out, xp=xp)
    dout = to_xp(_randn(*out.shape, seed=seed + 3), xp)
    for got, ref in zip(conv_backward_fast(dout, cache), conv_backward_naive(dout, ref_cache), strict=True):
        assert_close(got, ref, xp=xp)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_float32_stays_float32(xp, impl):
    forward, backward = IMPLEMENTATIONS[impl]
    x, w, b = (to_xp(a, xp, dtype="float32") for a in (_randn(2, 3, 5, 5), _randn(4, 3, 3, 3), _randn(4)))
    out, cache = forward(x, w, b, {"stride": 1, "pad": 1})
    assert out.dtype == xp.float32
    grads = backward(xp.ones_like(out), cache)
    assert [g.dtype for g in grads] == [xp.float32] * 3


def test_fast_layers_exposes_cs231n_names():
    assert fast_layers.conv_forward_fast is conv_forward_fast
    for alias in ("conv_forward_im2col", "conv_forward_strides"):
        assert getattr(fast_layers, alias) is conv_forward_fast
    for alias in ("conv_backward_im2col", "conv_backward_strides"):
        assert getattr(fast_layers, alias) is conv_backward_fast
    assert set(fast_layers.__all__) <= set(dir(fast_layers))


_STRIDE, _PAD = r"conv_param\['stride'\]", r"conv_param\['pad'\]"
_MISSING_PAD = r"conv_param is missing key\(s\) \['pad'\]; required keys: \['pad', 'stride'\]"
BAD_INPUTS = [
    ((2, 3, 5), (4, 3, 3, 3), 4, {"stride": 1, "pad": 0}, ValueError, r"x must be 4-D .* got shape \(2, 3, 5\)"),
    ((2, 3, 5, 5), (4, 3, 3), 4, {"stride": 1, "pad": 0}, ValueError, r"w must be 4-D"),
    ((2, 3, 5, 5), (4, 2, 3, 3), 4, {"stride": 1, "pad": 0}, ValueError, r"w must have shape .* C=3 to match x"),
    ((2, 3, 5, 5), (4, 3, 3, 3), 3, {"stride": 1, "pad": 0}, ValueError, r"b must have shape \(F,\) = \(4,\)"),
    ((2, 3, 5, 5), (4, 3, 8, 3), 4, {"stride": 1, "pad": 1}, ValueError, r"filter height 8 .* padded input .* = 7"),
    ((2, 3, 5, 5), (4, 3, 3, 8), 4, {"stride": 1, "pad": 1}, ValueError, r"filter width 8 is larger"),
    ((2, 3, 5, 5), (4, 3, 3, 3), 4, {"stride": 0, "pad": 0}, ValueError, rf"^{_STRIDE} must be an int >= 1, got 0$"),
    ((2, 3, 5, 5), (4, 3, 3, 3), 4, {"stride": 1, "pad": -1}, ValueError, rf"^{_PAD} must be an int >= 0, got -1$"),
    ((2, 3, 5, 5), (4, 3, 3, 3), 4, {"stride": 1.5, "pad": 0}, TypeError, rf"^{_STRIDE} must be an int >= 1, got 1.5$"),
    ((2, 3, 5, 5), (4, 3, 3, 3), 4, {"stride": 1, "pad": True}, TypeError, rf"^{_PAD} must be an int >= 0, got True$"),
    (
        (2, 3, 5, 5),
        (4, 3, 3, 3),
        4,
        {"stride": 1},
        ValueError,
        rf"^{_MISSING_PAD}$",
    ),
    ((2, 3, 5, 5), (4, 3, 3, 3), 4, [1, 0], TypeError, r"^conv_param must be a dict, got list$"),
]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(("x_shape", "w_shape", "F", "conv_param", "error", "match"), BAD_INPUTS)
def test_bad_input_raises_naming_the_argument(xp, impl, x_shape, w_shape, F, conv_param, error, match):
    x, w, b = (to_xp(np.zeros(shape), xp, dtype=widest_float(xp)) for shape in (x_shape, w_shape, F))
    with pytest.raises(error, match=match):
        IMPLEMENTATIONS[impl][0](x, w, b, conv_param)


@requires_torch
def test_mixing_backends_is_a_type_error():
    x, w, b = np.zeros((1, 1, 3, 3)), torch.zeros((1, 1, 2, 2), dtype=torch.float64), np.zeros(1)
    with pytest.raises(TypeError, match="different backends"):
        conv_forward_fast(x, w, b, {"stride": 1, "pad": 0})


def test_backward_rejects_a_dout_of_the_wrong_shape(xp):
    x, w, b = _inputs(xp, (2, 2, 4, 4), (3, 2, 3, 3), dtype=widest_float(xp))
    _, cache = conv_forward_fast(x, w, b, {"stride": 1, "pad": 0})
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 3, 2, 2\)"):
        conv_backward_fast(to_xp(np.zeros((2, 3, 4, 4)), xp, dtype=x.dtype), cache)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pad", "expected"), [(5, 3, 1, 0, 3), (4, 3, 2, 2, 3), (7, 7, 3, 0, 1)]
)
def test_conv_output_size_floors_like_torch(size, kernel, stride, pad, expected):
    assert conv_output_size(size, kernel, stride, pad) == expected == (size + 2 * pad - kernel) // stride + 1


@pytest.mark.parametrize("axis", [1, 2])
def test_scatter_windows_is_the_adjoint_of_gather_windows(xp, axis):
    # <gather(x), y> == <x, scatter(y)> for every x, y: scatter accumulates overlaps exactly where gather copies.
    x = to_xp(_randn(2, 3, 7, 6), xp)
    kh, kw, stride = 3, 2, 2
    out_h, out_w = conv_output_size(7, kh, stride), conv_output_size(6, kw, stride)
    windows = gather_windows(x, kh, kw, stride, out_h, out_w, axis=axis, xp=xp)
    expected_shape = (2, 3, kh * kw, out_h, out_w) if axis == 2 else (2, kh * kw, 3, out_h, out_w)
    assert tuple(windows.shape) == expected_shape
    offset_1 = windows[:, 1, ...] if axis == 1 else windows[:, :, 1, ...]  # k = 1 is (i, j) = (0, 1)
    assert_close(offset_1, to_np(x)[:, :, 0:5:2, 1:6:2], xp=xp)
    y = to_xp(_randn(*expected_shape, seed=1), xp)
    back = scatter_windows(xp.unstack(y, axis=axis), (2, 3, 7, 6), kh, kw, stride, xp=xp)
    assert float(xp.sum(windows * y)) == pytest.approx(float(xp.sum(x * back)), rel=1e-12)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_misspelled_key_or_a_complex_array_is_refused_by_name_and_an_integer_bias_promoted(xp, impl):
    forward = IMPLEMENTATIONS[impl][0]
    x, w, b = _inputs(xp, (1, 2, 4, 4), (2, 2, 3, 3), dtype=widest_float(xp))
    message = r"^conv_param has unknown key 'padding' \(did you mean 'pad'\?\); accepted keys: \['pad', 'stride'\]$"
    with pytest.raises(ValueError, match=message):
        forward(x, w, b, {"stride": 1, "pad": 1, "padding": 1})
    with pytest.raises(TypeError, match=r"^b must be an array of real numbers \(floating, integer or bool\), got c"):
        forward(x, w, to_xp(np.zeros(2, dtype=np.complex64), xp), {"stride": 1, "pad": 1})
    # The ConvolutionalNetworks notebook's kitten/puppy cell: b = np.array([0, 128]), an int64 bias, as NumPy adds it.
    out, _ = forward(x, w, to_xp(np.array([0, 128]), xp), {"stride": 1, "pad": 1})
    ref, _ = forward(x, w, to_xp(np.array([0.0, 128.0]), xp, dtype=widest_float(xp)), {"stride": 1, "pad": 1})
    assert out.dtype == x.dtype
    assert_close(out, to_np(ref), xp=xp, rtol=0, atol=0)
