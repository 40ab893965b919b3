"""Max pooling (naive and fast): CS231n's notebook values, torch autograd as an independent reference on tiling,
overlapping and non-tiling windows, numerical gradients, ties routed to the first maximum, dtypes, bad input."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xpnet.fast_layers as fast_layers
import xpnet.layers.pool as pool_module
from xpnet.gradient_check import eval_numerical_gradient_array
from xpnet.layers import max_pool_backward_fast, max_pool_backward_naive, max_pool_forward_fast, max_pool_forward_naive

from helpers import (
    FLOAT_DTYPES,
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
    "naive": (max_pool_forward_naive, max_pool_backward_naive),
    "fast": (max_pool_forward_fast, max_pool_backward_fast),
}

# (x shape, pool_height, pool_width, stride)
GEOMETRIES = {
    "tiling-2x2s2": ((2, 3, 4, 6), 2, 2, 2),  # the reshape path
    "overlapping-3x3s2": ((2, 2, 7, 7), 3, 3, 2),
    "non-tiling-2x2s2-odd-H": ((2, 2, 5, 4), 2, 2, 2),
    "non-square-2x3s1": ((1, 2, 4, 5), 2, 3, 1),
}


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _param(ph, pw, s):
    return {"pool_height": ph, "pool_width": pw, "stride": s}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_max_pool_forward_matches_the_notebook(xp, impl):
    x = np.linspace(-0.3, 0.4, num=96).reshape(2, 3, 4, 4)
    out, _ = IMPLEMENTATIONS[impl][0](to_xp(x, xp), _param(2, 2, 2))
    expected = [
        [[[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
         [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
         [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]]],
        [[[0.09052632, 0.10526316], [0.14947368, 0.16421053]],
         [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
         [[0.32631579, 0.34105263], [0.38526316, 0.4]]],
    ]  # fmt: skip
    assert_close(out, np.array(expected), xp=xp, rtol=1e-7, atol=1e-8)


# float64 on every geometry; float32 on the reshape path (tiling) and on overlapping windows: each float32 geometry
# costs JAX a fresh compilation of every op.
TORCH_CASES = [(g, "float64") for g in GEOMETRIES] + [("tiling-2x2s2", "float32"), ("overlapping-3x3s2", "float32")]


@requires_torch
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(("geometry", "dtype"), TORCH_CASES)
def test_max_pool_matches_torch_autograd(xp, impl, geometry, dtype):
    # Standard normal data has no ties, so the reference gradient is unambiguous.
    forward, backward = IMPLEMENTATIONS[impl]
    x_shape, ph, pw, s = GEOMETRIES[geometry]
    x = _randn(*x_shape).astype(dtype)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.max_pool2d(tx, (ph, pw), stride=s)
    dout = _randn(*ref.shape, seed=1).astype(dtype)
    ref.backward(torch.tensor(dout, dtype=torch.float64))
    out, cache = forward(to_xp(x, xp), _param(ph, pw, s))
    # The maximum is one of the inputs: exact in any dtype. dx sums dout over the windows covering an entry.
    assert_close_to_reference(out, ref.detach().numpy(), dtype=dtype, xp=xp, err_msg="out")
    overlap = -(-ph // s) * -(-pw // s)
    assert_close_to_reference(
        backward(to_xp(dout, xp), cache), tx.grad.numpy(), dtype=dtype, xp=xp, terms=overlap, err_msg="dx"
    )


@pytest.mark.parametrize(("impl", "geometry"), [("fast", g) for g in GEOMETRIES] + [("naive", "overlapping-3x3s2")])
def test_max_pool_gradient_matches_numerical(xp, impl, geometry):
    forward, backward = IMPLEMENTATIONS[impl]
    x_shape, ph, pw, s = GEOMETRIES[geometry]
    x = to_xp(_randn(*x_shape, seed=2), xp)
    out, cache = forward(x, _param(ph, pw, s))
    dout = to_xp(_randn(*out.shape, seed=3), xp)
    dx = backward(dout, cache)
    numeric = eval_numerical_gradient_array(lambda a: forward(a, _param(ph, pw, s))[0], x, dout)
    assert rel_error(dx, numeric) < GRAD_REL_ERROR


@requires_torch
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_ties_send_the_gradient_to_the_first_maximum_only(xp, geometry):
    x_shape, ph, pw, s = GEOMETRIES[geometry]
    # Values in {0, 1, 2}: most windows hold several maxima.
    x = np.random.default_rng(4).integers(0, 3, size=x_shape).astype(np.float64)
    pool_param = _param(ph, pw, s)
    out, cache = max_pool_forward_fast(to_xp(x, xp), pool_param)
    dout = to_xp(np.ones(tuple(out.shape)), xp)
    dx = to_np(max_pool_backward_fast(dout, cache))
    naive_dx = max_pool_backward_naive(dout, max_pool_forward_naive(to_xp(x, xp), pool_param)[1])
    assert_close(dx, to_np(naive_dx))
    # Spelled out: every window sends exactly 1 to its first maximum in row-major order, as torch does.
    expected = np.zeros(x_shape)
    for n, c, i, j in np.ndindex(*out.shape):
        window = x[n, c, i * s : i * s + ph, j * s : j * s + pw]
        r, q = np.unravel_index(np.argmax(window), window.shape)
        expected[n, c, i * s + r, j * s + q] += 1.0
    assert_close(dx, expected)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, (ph, pw), stride=s).sum().backward()
    assert_close(dx, tx.grad.numpy())


def _geometries(*, max_size: int) -> dict:
    """Hypothesis strategies for a pooling problem: input height and width up to ``max_size``, window sides and
    stride up to 3, and a seed for the values."""
    sizes, small = st.integers(1, max_size), st.integers(1, 3)
    return {"h": sizes, "w": sizes, "ph": small, "pw": small, "stride": small, "seed": st.integers(0, 2**16)}


@fixed_examples(15)
@given(**_geometries(max_size=7))
def test_fast_matches_naive_with_ties_on_random_geometries(xp, h, w, ph, pw, stride, seed):
    if ph > h or pw > w:
        with pytest.raises(ValueError, match="is larger than the input"):
            max_pool_forward_fast(to_xp(np.zeros((1, 1, h, w)), xp), _param(ph, pw, stride))
        return
    x = to_xp(np.random.default_rng(seed).integers(0, 3, size=(2, 2, h, w)).astype(np.float64), xp)
    out, cache = max_pool_forward_fast(x, _param(ph, pw, stride))
    ref_out, ref_cache = max_pool_forward_naive(x, _param(ph, pw, stride))
    assert_close(out, ref_out, xp=xp)
    dout = to_xp(_randn(*out.shape, seed=seed), xp)
    assert_close(max_pool_backward_fast(dout, cache), max_pool_backward_naive(dout, ref_cache), xp=xp)


def test_tiling_windows_take_the_reshape_path(xp, monkeypatch):
    calls = []
    real = pool_module.window_views
    monkeypatch.setattr(pool_module, "window_views", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = to_xp(_randn(2, 3, 4, 6), xp)
    out, cache = max_pool_forward_fast(x, _param(2, 2, 2))
    max_pool_backward_fast(xp.ones_like(out), cache)
    assert calls == []
    out, cache = max_pool_forward_fast(x, _param(3, 3, 1))
    max_pool_backward_fast(xp.ones_like(out), cache)
    assert len(calls) == 2


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("geometry", ["tiling-2x2s2", "overlapping-3x3s2"])
def test_float32_stays_float32(xp, impl, geometry):
    forward, backward = IMPLEMENTATIONS[impl]
    x_shape, ph, pw, s = GEOMETRIES[geometry]
    out, cache = forward(to_xp(_randn(*x_shape), xp, dtype="float32"), _param(ph, pw, s))
    assert out.dtype == xp.float32
    assert backward(xp.ones_like(out), cache).dtype == xp.float32


def test_fast_layers_exposes_cs231n_names():
    for alias in ("max_pool_forward_fast", "max_pool_forward_reshape", "max_pool_forward_im2col"):
        assert getattr(fast_layers, alias) is max_pool_forward_fast
    for alias in ("max_pool_backward_fast", "max_pool_backward_reshape", "max_pool_backward_im2col"):
        assert getattr(fast_layers, alias) is max_pool_backward_fast


_MISSING_WIDTH = (
    r"pool_param is missing key\(s\) \['pool_width'\]; required keys: \['pool_height', 'pool_width', 'stride'\]"
)
BAD_INPUTS = [
    ((2, 3, 4), _param(2, 2, 2), ValueError, r"x must be 4-D .* got shape \(2, 3, 4\)"),
    ((2, 3, 4, 4), _param(5, 2, 2), ValueError, r"pool window height 5 is larger than the input height 4"),
    ((2, 3, 4, 4), _param(2, 5, 2), ValueError, r"pool window width 5 is larger"),
    ((2, 3, 4, 4), _param(2, 2, 0), ValueError, r"^pool_param\['stride'\] must be an int >= 1, got 0$"),
    ((2, 3, 4, 4), _param(0, 2, 1), ValueError, r"^pool_param\['pool_height'\] must be an int >= 1, got 0$"),
    ((2, 3, 4, 4), _param(2, 2.0, 2), TypeError, r"^pool_param\['pool_width'\] must be an int >= 1, got 2.0$"),
    (
        (2, 3, 4, 4),
        {"pool_height": 2, "stride": 2},
        ValueError,
        rf"^{_MISSING_WIDTH}$",
    ),
    ((2, 3, 4, 4), (2, 2, 2), TypeError, r"pool_param must be a dict"),
]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(("x_shape", "pool_param", "error", "match"), BAD_INPUTS)
def test_bad_input_raises_naming_the_argument(xp, impl, x_shape, pool_param, error, match):
    with pytest.raises(error, match=match):
        IMPLEMENTATIONS[impl][0](to_xp(np.zeros(x_shape), xp, dtype=widest_float(xp)), pool_param)


def test_backward_rejects_a_dout_of_the_wrong_shape(xp):
    dtype = widest_float(xp)
    _, cache = max_pool_forward_fast(to_xp(_randn(1, 2, 4, 4), xp, dtype=dtype), _param(2, 2, 2))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(1, 2, 2, 2\)"):
        max_pool_backward_fast(to_xp(np.zeros((1, 2, 4, 4)), xp, dtype=dtype), cache)


def test_non_array_input_is_a_type_error():
    with pytest.raises(TypeError, match=r"^x must be an array \(NumPy, CuPy, torch, \.\.\.\), got builtins.list"):
        max_pool_forward_fast([[[[1.0]]]], _param(1, 1, 1))


@requires_torch
@FLOAT_DTYPES
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_a_nan_is_the_maximum_of_its_window_as_in_torch(xp, geometry, dtype):
    # NaN pools to NaN and takes the window's gradient (the fast backward compared view == top, which NaN never
    # satisfies, and dropped that gradient).
    x_shape, ph, pw, s = GEOMETRIES[geometry]
    x = _randn(*x_shape, seed=5).astype(dtype)
    x[0, 1, 1, 2] = np.nan
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.max_pool2d(tx, (ph, pw), stride=s)
    dout = _randn(*ref.shape, seed=6).astype(dtype)
    ref.backward(torch.tensor(dout, dtype=torch.float64))
    overlap = -(-ph // s) * -(-pw // s)
    for forward, backward in IMPLEMENTATIONS.values():
        out, cache = forward(to_xp(x, xp), _param(ph, pw, s))
        assert_close_to_reference(out, ref.detach().numpy(), dtype=dtype, xp=xp, err_msg="out")
        dx = backward(to_xp(dout, xp), cache)
        assert_close_to_reference(dx, tx.grad.numpy(), dtype=dtype, xp=xp, terms=overlap, err_msg="dx")


@fixed_examples(15)
@given(**_geometries(max_size=6))
def test_fast_matches_naive_with_several_nans_in_a_window(xp, h, w, ph, pw, stride, seed):
    # With several NaNs in a window both send its gradient to the FIRST NaN in row-major order, as argmax does
    # (torch's max_pool2d picks the last one there).
    if ph > h or pw > w:
        with pytest.raises(ValueError, match=r"^pool window (height|width) \d is larger than the input"):
            max_pool_forward_fast(to_xp(np.zeros((2, 2, h, w)), xp), _param(ph, pw, stride))
        return
    rng = np.random.default_rng(seed)
    x_np = rng.integers(0, 3, size=(2, 2, h, w)).astype(np.float64)
    x_np[rng.random(x_np.shape) < 0.3] = np.nan
    x = to_xp(x_np, xp)
    out, cache = max_pool_forward_fast(x, _param(ph, pw, stride))
    ref_out, ref_cache = max_pool_forward_naive(x, _param(ph, pw, stride))
    assert_close(out, ref_out, xp=xp)
    dout = to_xp(_randn(*out.shape, seed=seed), xp)
    assert_close(max_pool_backward_fast(dout, cache), max_pool_backward_naive(dout, ref_cache), xp=xp)


@FLOAT_DTYPES
@pytest.mark.parametrize("with_nan", [False, True])
def test_the_device_path_of_nan_routing_gives_the_same_gradient(xp, monkeypatch, with_nan, dtype):
    # On a GPU the backward pass cannot look for NaN windows without a sync, so it always runs the NaN pass; force
    # that path here (as if x were not in host memory) and compare with the naive loops.
    monkeypatch.setattr(pool_module, "is_host_resident", lambda _: False)
    x_np = np.random.default_rng(7).integers(0, 3, size=(2, 2, 5, 5)).astype(dtype)
    if with_nan:
        x_np[0, 0, 1:3, 1] = np.nan
    x = to_xp(x_np, xp)
    for param in (_param(2, 2, 2), _param(3, 3, 2)):
        out, cache = max_pool_forward_fast(x, param)
        dout = to_xp(_randn(*out.shape, seed=8), xp, dtype=dtype)
        expected = max_pool_backward_naive(dout, max_pool_forward_naive(x, param)[1])
        assert_close(max_pool_backward_fast(dout, cache), expected, xp=xp)
