"""Affine and ReLU layers: CS231n's notebook values, numerical gradients, torch autograd, bad input."""

import numpy as np
import pytest

from xpnet._backend import device, dtype_name
from xpnet.gradient_check import eval_numerical_gradient_array
from xpnet.layers import affine_backward, affine_forward, relu_backward, relu_forward

from helpers import (
    FLOAT_DTYPES,
    GRAD_REL_ERROR,
    assert_close,
    assert_close_to_reference,
    rel_error,
    requires_torch,
    to_np,
    to_xp,
    torch,
    widest_float,
)


def _randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_affine_forward_matches_the_notebook(xp):
    x = np.linspace(-0.1, 0.5, num=240).reshape(2, 4, 5, 6)
    w = np.linspace(-0.2, 0.3, num=360).reshape(120, 3)
    b = np.linspace(-0.3, 0.1, num=3)
    out, _ = affine_forward(to_xp(x, xp), to_xp(w, xp), to_xp(b, xp))
    expected = np.array([[1.49834967, 1.70660132, 1.91485297], [3.25553199, 3.5141327, 3.77273342]])
    assert_close(out, expected, xp=xp, rtol=1e-8, atol=0)


def test_affine_gradients_match_numerical(xp):
    x, w, b = (to_xp(a, xp) for a in (_randn(3, 2, 3), _randn(6, 4, seed=1), _randn(4, seed=2)))
    dout = to_xp(_randn(3, 4, seed=3), xp)
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    assert tuple(dx.shape) == (3, 2, 3)
    assert rel_error(dx, eval_numerical_gradient_array(lambda a: affine_forward(a, w, b)[0], x, dout)) < GRAD_REL_ERROR
    assert rel_error(dw, eval_numerical_gradient_array(lambda a: affine_forward(x, a, b)[0], w, dout)) < GRAD_REL_ERROR
    assert rel_error(db, eval_numerical_gradient_array(lambda a: affine_forward(x, w, a)[0], b, dout)) < GRAD_REL_ERROR


def test_relu_forward_matches_the_notebook(xp):
    out, _ = relu_forward(to_xp(np.linspace(-0.5, 0.5, num=12).reshape(3, 4), xp))
    expected = [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.04545455, 0.13636364], [0.22727273, 0.31818182, 0.40909091, 0.5]]
    assert_close(out, np.array(expected), xp=xp, rtol=1e-7, atol=0)


def test_relu_gradient_matches_numerical(xp):
    x = to_xp(_randn(5, 6), xp)
    dout = to_xp(_randn(5, 6, seed=1), xp)
    dx = relu_backward(dout, relu_forward(x)[1])
    assert rel_error(dx, eval_numerical_gradient_array(lambda a: relu_forward(a)[0], x, dout)) < GRAD_REL_ERROR
    assert_close(relu_backward(dout, x), dx, xp=xp)  # CS231n's cache, the input itself, gives the same gradient


@requires_torch
@FLOAT_DTYPES
def test_affine_relu_match_torch_autograd(xp, dtype):
    # The inputs are rounded to dtype first: the float64 reference then differs only by the arithmetic in dtype.
    x, w, b, dout = (
        a.astype(dtype) for a in (_randn(4, 2, 5), _randn(10, 3, seed=1), _randn(3, seed=2), _randn(4, 3, seed=3))
    )
    a, fc_cache = affine_forward(to_xp(x, xp), to_xp(w, xp), to_xp(b, xp))
    out, relu_cache = relu_forward(a)
    dx, dw, db = affine_backward(relu_backward(to_xp(dout, xp), relu_cache), fc_cache)
    tx, tw, tb = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, w, b))
    tout = torch.relu(torch.nn.functional.linear(tx.reshape(4, 10), tw.T, tb))
    tout.backward(torch.tensor(dout, dtype=torch.float64))
    # Terms summed into one entry: out and dx a row of w (D=10, M=3), dw and db the batch (N=4).
    checks = (("out", out, tout, 10), ("dx", dx, tx.grad, 3), ("dw", dw, tw.grad, 4), ("db", db, tb.grad, 4))
    for name, got, ref, terms in checks:
        assert_close_to_reference(got, ref.detach().numpy(), dtype=dtype, xp=xp, terms=terms, err_msg=name)


def test_float32_stays_float32(xp):
    x, w, b = (to_xp(a, xp, dtype="float32") for a in (_randn(2, 3, 2), _randn(6, 4), _randn(4)))
    out, cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(out)
    assert out.dtype == xp.float32
    dx, dw, db = affine_backward(relu_backward(out, relu_cache), cache)
    assert (dx.dtype, dw.dtype, db.dtype) == (xp.float32,) * 3
    assert np.all(to_np(out) >= 0)


def test_affine_bad_input_names_the_argument(xp):
    f = widest_float(xp)  # no precision needed: the checks run on every device
    x, w, b = to_xp(_randn(2, 3), xp, f), to_xp(_randn(3, 4), xp, f), to_xp(_randn(4), xp, f)
    with pytest.raises(ValueError, match=r"x must have shape \(N, d_1"):
        affine_forward(to_xp(_randn(3), xp, f), w, b)
    with pytest.raises(ValueError, match=r"w must have shape \(D, M\) with D=3.*got \(4, 4\)"):
        affine_forward(x, to_xp(_randn(4, 4), xp, f), b)
    with pytest.raises(ValueError, match=r"b must have shape \(M,\) = \(4,\).*got \(3,\)"):
        affine_forward(x, w, to_xp(_randn(3), xp, f))
    _, cache = affine_forward(x, w, b)
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(N, M\) = \(2, 4\)"):
        affine_backward(to_xp(_randn(2, 3), xp, f), cache)
    with pytest.raises(ValueError, match="dout must have the forward output's shape"):
        relu_backward(to_xp(_randn(3, 2), xp, f), relu_forward(x)[1])


@requires_torch
def test_mixing_backends_is_a_type_error():
    x = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match="different backends"):
        affine_forward(x, np.zeros((3, 4)), np.zeros(4))
    with pytest.raises(TypeError, match=r"^x must be an array \(NumPy, CuPy, torch, \.\.\.\), got builtins.list"):
        relu_forward([1.0, -1.0])


@requires_torch
@FLOAT_DTYPES
def test_relu_keeps_nan_and_backward_matches_torch(xp, dtype):
    # where(x > 0, x, 0) turned NaN into 0, so NaN inputs trained "normally"; maximum keeps it, as torch does.
    x = np.array([[np.nan, -1.0, 2.0, 0.0], [3.0, np.nan, -0.5, 1.0]], dtype=dtype)
    dout = np.array([[1.0, 2.0, 3.0, 4.0], [np.nan, 5.0, np.nan, 6.0]], dtype=dtype)
    out, cache = relu_forward(to_xp(x, xp))
    dx = relu_backward(to_xp(dout, xp), cache)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tout = torch.relu(tx)
    tout.backward(torch.tensor(dout, dtype=torch.float64))
    # torch's threshold_backward: zero where out <= 0, dout elsewhere, so a NaN input passes its gradient.
    assert_close_to_reference(out, tout.detach().numpy(), dtype=dtype, xp=xp)
    assert_close_to_reference(dx, tx.grad.numpy(), dtype=dtype, xp=xp)
    assert np.isnan(to_np(relu_forward(to_xp(np.array([np.nan], dtype=dtype), xp))[0])).all()


def test_integer_input_is_promoted_as_numpy_promotes_it(xp):
    # relu of an int64 array alone: the device's default float (NumPy's float64); with float64 params, float64.
    out, _ = relu_forward(to_xp(np.array([1, -2]), xp))
    default = xp.__array_namespace_info__().default_dtypes(device=device(out))["real floating"]
    assert out.dtype == default
    assert_close(out, np.array([1.0, 0.0], dtype=dtype_name(default)), xp=xp, rtol=0, atol=0)
    x, b = to_xp(_randn(2, 3), xp), to_xp(_randn(4), xp)
    w_int = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    out, cache = affine_forward(x, to_xp(w_int, xp), b)
    assert out.dtype == xp.float64
    assert_close(out, to_np(x) @ w_int + to_np(b), xp=xp)
    dx, dw, db = affine_backward(to_xp(np.ones((2, 4), dtype=bool), xp), cache)
    assert dx.dtype == dw.dtype == db.dtype == xp.float64
    assert_close(dx, np.ones((2, 4)) @ w_int.T, xp=xp)


def test_float32_x_with_float64_params_gives_float64(xp):
    x32 = to_xp(_randn(2, 3), xp, dtype="float32")
    w, b = to_xp(_randn(3, 4), xp), to_xp(_randn(4), xp)
    out, cache = affine_forward(x32, w, b)
    assert out.dtype == xp.float64
    assert_close(out, to_np(x32).astype(np.float64) @ to_np(w) + to_np(b), xp=xp)
    assert all(g.dtype == xp.float64 for g in affine_backward(to_xp(np.ones((2, 4)), xp, dtype="float32"), cache))
