"""Batch, layer, spatial batch and group normalization: numerical gradients, torch.nn.functional + autograd in
float64, the notebook's statistics checks, dtypes and bad input."""

import math

import numpy as np
import pytest

from xpnet.gradient_check import eval_numerical_gradient_array
from xpnet.layers import (
    batchnorm_backward,
    batchnorm_backward_alt,
    batchnorm_forward,
    layernorm_backward,
    layernorm_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
    spatial_groupnorm_backward,
    spatial_groupnorm_forward,
)

from helpers import (
    FLOAT_DTYPES,
    GRAD_REL_ERROR,
    F,
    assert_close,
    assert_close_to_reference,
    rel_error,
    requires_torch,
    to_np,
    to_xp,
    torch,
    widest_float,
)

EPS = 1e-5


def _randn(*shape, seed=0, scale=1.0, shift=0.0):
    return scale * np.random.default_rng(seed).standard_normal(shape) + shift


def _check_gradients(forward, backward, x, gamma, beta, dout):
    """Numerical gradients of ``forward(x, gamma, beta)`` for dx, dgamma and dbeta against ``backward``."""
    _, cache = forward(x, gamma, beta)
    dx, dgamma, dbeta = backward(dout, cache)
    assert tuple(dgamma.shape) == tuple(gamma.shape) and tuple(dbeta.shape) == tuple(beta.shape)
    for got, arg in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        args = {"x": x, "gamma": gamma, "beta": beta}

        def f(a, arg=arg, args=args):
            return forward(*(a if v is arg else v for v in args.values()))[0]

        assert rel_error(got, eval_numerical_gradient_array(f, arg, dout)) < GRAD_REL_ERROR


def _xgb(xp, x_shape, param_shape, seed=0):
    x = to_xp(_randn(*x_shape, seed=seed, scale=2.0, shift=1.0), xp)
    gamma = to_xp(_randn(*param_shape, seed=seed + 1), xp)
    beta = to_xp(_randn(*param_shape, seed=seed + 2), xp)
    return x, gamma, beta


@pytest.mark.parametrize("backward", [batchnorm_backward, batchnorm_backward_alt])
def test_batchnorm_gradients(xp, backward):
    x, gamma, beta = _xgb(xp, (4, 5), (5,))
    dout = to_xp(_randn(4, 5, seed=9), xp)
    _check_gradients(lambda *a: batchnorm_forward(*a, {"mode": "train"}), backward, x, gamma, beta, dout)


def test_batchnorm_test_mode_gradients(xp):
    x, gamma, beta = _xgb(xp, (4, 5), (5,))
    bn_param = {"mode": "test", "running_mean": to_xp(_randn(5, seed=7), xp), "running_var": to_xp(np.ones(5), xp)}
    dout = to_xp(_randn(4, 5, seed=9), xp)
    _check_gradients(lambda *a: batchnorm_forward(*a, bn_param), batchnorm_backward_alt, x, gamma, beta, dout)


def test_batchnorm_backward_alt_equals_graph_form(xp):
    x, gamma, beta = _xgb(xp, (16, 7), (7,))
    dout = to_xp(_randn(16, 7, seed=9), xp)
    _, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    for got, ref in zip(batchnorm_backward_alt(dout, cache), batchnorm_backward(dout, cache), strict=True):
        assert rel_error(got, ref) < 1e-12


def test_layernorm_gradients(xp):
    x, gamma, beta = _xgb(xp, (4, 5), (5,))
    dout = to_xp(_randn(4, 5, seed=9), xp)
    _check_gradients(lambda *a: layernorm_forward(*a, {}), layernorm_backward, x, gamma, beta, dout)


def test_spatial_batchnorm_gradients(xp):
    x, gamma, beta = _xgb(xp, (2, 3, 3, 3), (3,))
    dout = to_xp(_randn(2, 3, 3, 3, seed=9), xp)
    forward = lambda *a: spatial_batchnorm_forward(*a, {"mode": "train"})  # noqa: E731
    _check_gradients(forward, spatial_batchnorm_backward, x, gamma, beta, dout)


@pytest.mark.parametrize("param_shape", [(1, 6, 1, 1), (6,)])
def test_groupnorm_gradients(xp, param_shape):
    x, gamma, beta = _xgb(xp, (2, 6, 2, 3), param_shape)
    dout = to_xp(_randn(2, 6, 2, 3, seed=9), xp)
    forward = lambda *a: spatial_groupnorm_forward(*a, 2, {})  # noqa: E731
    _check_gradients(forward, spatial_groupnorm_backward, x, gamma, beta, dout)


def _torch_grads(out, dout, *tensors):
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return [t.grad.numpy() for t in tensors]


# x shape, forward, backward: the graph-form and the simplified batchnorm backward, and the spatial one.
BATCHNORMS = {
    "batchnorm": ((6, 4), batchnorm_forward, batchnorm_backward),
    "batchnorm-alt": ((6, 4), batchnorm_forward, batchnorm_backward_alt),
    "spatial": ((3, 4, 2, 3), spatial_batchnorm_forward, spatial_batchnorm_backward),
}


def _rounded(dtype, *arrays):
    """``arrays`` rounded to ``dtype``: the float64 reference then differs only by the arithmetic in ``dtype``."""
    return [a.astype(dtype) for a in arrays]


def _t64(*arrays):
    """float64 torch leaves of ``arrays``, for autograd."""
    return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]


@requires_torch
@FLOAT_DTYPES
@pytest.mark.parametrize("kind", BATCHNORMS)
def test_batchnorm_train_matches_torch(xp, kind, dtype):
    x_shape, forward, backward = BATCHNORMS[kind]
    x, dout = _rounded(dtype, _randn(*x_shape, scale=3.0, shift=2.0), _randn(*x_shape, seed=3))
    gamma, beta, rm0 = _rounded(dtype, _randn(4, seed=1), _randn(4, seed=2), _randn(4, seed=4))
    (rv0,) = _rounded(dtype, _randn(4, seed=5) ** 2)
    bn_param = {"mode": "train", "momentum": 0.8, "running_mean": to_xp(rm0, xp), "running_var": to_xp(rv0, xp)}
    out, cache = forward(to_xp(x, xp), to_xp(gamma, xp), to_xp(beta, xp), bn_param)
    grads = backward(to_xp(dout, xp), cache)

    tx, tg, tb = _t64(x, gamma, beta)
    t_rm, t_rv = torch.tensor(rm0, dtype=torch.float64), torch.tensor(rv0, dtype=torch.float64)
    tout = F.batch_norm(tx, t_rm, t_rv, tg, tb, training=True, momentum=0.2, eps=EPS)
    # Every entry goes through sums over the batch: N (times H*W when spatial) terms.
    spatial = len(x_shape) == 4
    terms = math.prod(x_shape) // x_shape[1]
    assert_close_to_reference(out, tout.detach().numpy(), dtype=dtype, xp=xp, terms=terms, err_msg="out")
    for name, got, ref in zip(("dx", "dgamma", "dbeta"), grads, _torch_grads(tout, dout, tx, tg, tb), strict=True):
        assert_close_to_reference(got, ref, dtype=dtype, xp=xp, terms=terms, err_msg=name)

    # Our momentum m is torch's 1 - m; torch's running_var uses the unbiased variance, CS231n's the biased one.
    axes = (0, 2, 3) if spatial else (0,)
    x64 = x.astype(np.float64)
    assert_close_to_reference(
        bn_param["running_mean"], t_rm.numpy(), dtype=dtype, xp=xp, terms=terms, scale=2.0, err_msg="running_mean"
    )
    assert_close_to_reference(
        bn_param["running_var"],
        0.8 * rv0 + 0.2 * x64.var(axis=axes),
        dtype=dtype,
        xp=xp,
        terms=terms,
        scale=9.0,
        err_msg="running_var",
    )


@requires_torch
@FLOAT_DTYPES
def test_batchnorm_test_mode_matches_torch_eval(xp, dtype):
    x, gamma, beta, dout = _rounded(
        dtype, _randn(5, 3, scale=2.0), _randn(3, seed=1), _randn(3, seed=2), _randn(5, 3, seed=3)
    )
    rm, rv = _rounded(dtype, _randn(3, seed=4), _randn(3, seed=5) ** 2 + 0.5)
    bn_param = {"mode": "test", "running_mean": to_xp(rm, xp), "running_var": to_xp(rv, xp)}
    out, cache = batchnorm_forward(to_xp(x, xp), to_xp(gamma, xp), to_xp(beta, xp), bn_param)
    grads = batchnorm_backward(to_xp(dout, xp), cache)
    tx, tg, tb = _t64(x, gamma, beta)
    t_rm, t_rv = torch.tensor(rm, dtype=torch.float64), torch.tensor(rv, dtype=torch.float64)
    tout = F.batch_norm(tx, t_rm, t_rv, tg, tb, training=False, eps=EPS)
    # Test mode is elementwise in x; dgamma and dbeta sum over the batch (N=5).
    assert_close_to_reference(out, tout.detach().numpy(), dtype=dtype, xp=xp, err_msg="out")
    ref_grads = _torch_grads(tout, dout, tx, tg, tb)
    for name, got, ref, terms in zip(("dx", "dgamma", "dbeta"), grads, ref_grads, (1, 5, 5), strict=True):
        assert_close_to_reference(got, ref, dtype=dtype, xp=xp, terms=terms, err_msg=name)
    assert_close(bn_param["running_mean"], rm, xp=xp, rtol=0, atol=0)  # test mode leaves the running statistics alone


@requires_torch
@FLOAT_DTYPES
def test_layernorm_matches_torch(xp, dtype):
    x, dout = _rounded(dtype, _randn(4, 6, scale=2.0, shift=1.0), _randn(4, 6, seed=3))
    gamma, beta = _rounded(dtype, _randn(6, seed=1), _randn(6, seed=2))
    out, cache = layernorm_forward(to_xp(x, xp), to_xp(gamma, xp), to_xp(beta, xp), {"eps": 1e-3})
    grads = layernorm_backward(to_xp(dout, xp), cache)
    tx, tg, tb = _t64(x, gamma, beta)
    tout = F.layer_norm(tx, (6,), tg, tb, eps=1e-3)
    # out and dx sum over a row's D=6 features, dgamma and dbeta over the N=4 rows.
    assert_close_to_reference(out, tout.detach().numpy(), dtype=dtype, xp=xp, terms=6, err_msg="out")
    for name, got, ref in zip(("dx", "dgamma", "dbeta"), grads, _torch_grads(tout, dout, tx, tg, tb), strict=True):
        assert_close_to_reference(got, ref, dtype=dtype, xp=xp, terms=6, err_msg=name)


@requires_torch
@FLOAT_DTYPES
def test_groupnorm_matches_torch(xp, dtype):
    x, dout = _rounded(dtype, _randn(2, 6, 3, 2, scale=2.0), _randn(2, 6, 3, 2, seed=3))
    gamma, beta = _rounded(dtype, _randn(6, seed=1), _randn(6, seed=2))
    g4, b4 = gamma.reshape(1, 6, 1, 1), beta.reshape(1, 6, 1, 1)
    out, cache = spatial_groupnorm_forward(to_xp(x, xp), to_xp(g4, xp), to_xp(b4, xp), 3, {})
    grads = spatial_groupnorm_backward(to_xp(dout, xp), cache)
    tx, tg, tb = _t64(x, gamma, beta)
    tout = F.group_norm(tx, 3, tg, tb, eps=EPS)
    # A group holds C/G*H*W = 12 values; dgamma and dbeta sum over N*H*W = 12 too.
    assert_close_to_reference(out, tout.detach().numpy(), dtype=dtype, xp=xp, terms=12, err_msg="out")
    dx_ref, dg_ref, db_ref = _torch_grads(tout, dout, tx, tg, tb)
    refs = (dx_ref, dg_ref.reshape(1, 6, 1, 1), db_ref.reshape(1, 6, 1, 1))
    for name, got, ref in zip(("dx", "dgamma", "dbeta"), grads, refs, strict=True):
        assert_close_to_reference(got, ref, dtype=dtype, xp=xp, terms=12, err_msg=name)


def test_batchnorm_statistics_as_in_the_notebook(xp):
    rng = np.random.default_rng(231)
    w1, w2 = rng.standard_normal((50, 60)), rng.standard_normal((60, 3))

    def scores(seed):
        x = np.random.default_rng(seed).standard_normal((200, 50))
        return to_xp(np.maximum(x @ w1, 0) @ w2, xp)

    gamma, beta = to_xp([1.0, 2.0, 3.0], xp), to_xp([11.0, 12.0, 13.0], xp)
    out, _ = batchnorm_forward(scores(0), gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(to_np(out).mean(axis=0), [11.0, 12.0, 13.0], atol=1e-9)
    np.testing.assert_allclose(to_np(out).std(axis=0), [1.0, 2.0, 3.0], rtol=1e-4)

    ones, zeros = to_xp(np.ones(3), xp), to_xp(np.zeros(3), xp)
    bn_param = {"mode": "train"}
    for seed in range(50):
        batchnorm_forward(scores(seed), ones, zeros, bn_param)
    bn_param["mode"] = "test"
    out, _ = batchnorm_forward(scores(1000), ones, zeros, bn_param)
    np.testing.assert_allclose(to_np(out).mean(axis=0), 0.0, atol=0.2)
    np.testing.assert_allclose(to_np(out).std(axis=0), 1.0, atol=0.2)


def test_layernorm_rows_are_standardised(xp):
    x = to_xp(_randn(4, 50, scale=5.0, shift=3.0), xp)
    out, _ = layernorm_forward(x, to_xp(np.ones(50), xp), to_xp(np.zeros(50), xp), {})
    np.testing.assert_allclose(to_np(out).mean(axis=1), 0.0, atol=1e-9)
    np.testing.assert_allclose(to_np(out).std(axis=1), 1.0, rtol=1e-5)


def test_float32_stays_float32(xp):
    x2, g, b = (to_xp(a, xp, dtype="float32") for a in (_randn(4, 3), np.ones(3), np.zeros(3)))
    x4 = to_xp(_randn(2, 4, 2, 2), xp, dtype="float32")
    g4, b4 = to_xp(np.ones(4), xp, dtype="float32"), to_xp(np.zeros(4), xp, dtype="float32")
    bn_param = {"mode": "train"}
    cases = [
        (batchnorm_forward(x2, g, b, bn_param), batchnorm_backward),
        (layernorm_forward(x2, g, b, {}), layernorm_backward),
        (spatial_batchnorm_forward(x4, g4, b4, {"mode": "train"}), spatial_batchnorm_backward),
        (spatial_groupnorm_forward(x4, g4, b4, 2, {}), spatial_groupnorm_backward),
    ]
    for (out, cache), backward in cases:
        assert out.dtype == xp.float32
        assert all(g.dtype == xp.float32 for g in backward(out, cache))
    assert bn_param["running_mean"].dtype == xp.float32 and bn_param["running_var"].dtype == xp.float32
    out, _ = batchnorm_forward(x2, g, b, dict(bn_param, mode="test"))
    assert out.dtype == xp.float32


def test_running_stats_start_as_zeros_on_x_backend(xp):
    bn_param = {"mode": "test"}
    x = to_xp(_randn(3, 2), xp)
    out, _ = batchnorm_forward(x, to_xp(np.ones(2), xp), to_xp(np.zeros(2), xp), bn_param)
    assert_close(out, to_np(x) / np.sqrt(EPS), xp=xp)  # zero running mean and variance, as CS231n starts them


def test_bad_input_names_the_argument(xp):
    f = widest_float(xp)  # no precision needed: the checks run on every device
    x, g, b = to_xp(_randn(4, 3), xp, f), to_xp(np.ones(3), xp, f), to_xp(np.zeros(3), xp, f)
    x4 = to_xp(_randn(2, 6, 2, 2), xp, f)
    g6, b6 = to_xp(np.ones(6), xp, f), to_xp(np.zeros(6), xp, f)
    with pytest.raises(ValueError, match=r"bn_param\['mode'\] must be 'train' or 'test', got None"):
        batchnorm_forward(x, g, b, {})
    with pytest.raises(ValueError, match=r"bn_param\['mode'\] must be 'train' or 'test', got 'eval'"):
        batchnorm_forward(x, g, b, {"mode": "eval"})
    with pytest.raises(TypeError, match="bn_param must be a dict"):
        batchnorm_forward(x, g, b, None)
    with pytest.raises(ValueError, match=r"bn_param\['momentum'\] must be a finite number in \[0, 1\], got 1.5"):
        batchnorm_forward(x, g, b, {"mode": "train", "momentum": 1.5})
    with pytest.raises(ValueError, match=r"bn_param\['running_mean'\] must have shape \(3,\)"):
        batchnorm_forward(x, g, b, {"mode": "test", "running_mean": to_xp(np.zeros(4), xp, f)})
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\), got \(2, 6, 2, 2\)"):
        batchnorm_forward(x4, g, b, {"mode": "train"})
    with pytest.raises(ValueError, match=r"x must have shape \(N, C, H, W\), got \(4, 3\)"):
        spatial_batchnorm_forward(x, g, b, {"mode": "train"})
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\) to match x of shape \(4, 3\), got \(4,\)"):
        layernorm_forward(x, to_xp(np.ones(4), xp, f), b, {})
    with pytest.raises(ValueError, match=r"beta must have gamma's shape \(3,\), got \(2,\)"):
        batchnorm_forward(x, g, to_xp(np.zeros(2), xp, f), {"mode": "train"})
    with pytest.raises(ValueError, match=r"ln_param\['eps'\] must be a finite number > 0, got -1.0"):
        layernorm_forward(x, g, b, {"eps": -1.0})
    with pytest.raises(ValueError, match=r"G must be a positive divisor of the number of channels C=6, got G=4"):
        spatial_groupnorm_forward(x4, g6, b6, 4, {})
    with pytest.raises(TypeError, match=r"^G must be an int >= 1, got 2.0$"):
        spatial_groupnorm_forward(x4, g6, b6, 2.0, {})
    with pytest.raises(ValueError, match=r"gamma must have shape \(6,\) or \(1, 6, 1, 1\)"):
        spatial_groupnorm_forward(x4, to_xp(np.ones((1, 6, 1)), xp, f), b6, 2, {})
    _, cache = batchnorm_forward(x, g, b, {"mode": "train"})
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(4, 3\), got \(3, 4\)"):
        batchnorm_backward(to_xp(_randn(3, 4), xp, f), cache)


@requires_torch
def test_mixing_backends_is_a_type_error():
    x, g, b = torch.zeros(4, 3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), torch.zeros(3)
    with pytest.raises(TypeError, match="different backends"):
        batchnorm_forward(x, g, b, {"mode": "train", "running_mean": np.zeros(3)})
    with pytest.raises(TypeError, match=r"^x must be an array \(NumPy, CuPy, torch, \.\.\.\), got builtins.list"):
        batchnorm_forward([[1.0, 2.0]], g, b, {"mode": "train"})


def test_an_empty_batch_in_train_mode_is_refused_before_the_running_stats_change(xp):
    # An empty batch used to write NaN means into bn_param and only then fail, leaving the model broken.
    f = widest_float(xp)  # no precision needed: the checks run on every device
    x, g, b = to_xp(np.zeros((0, 3)), xp, f), to_xp(np.ones(3), xp, f), to_xp(np.zeros(3), xp, f)
    bn_param = {"mode": "train"}
    with pytest.raises(
        ValueError,
        match=r"^x must have at least one value along the axes batchnorm averages over "
        r"\(N\), got shape \(0, 3\)$",
    ):
        batchnorm_forward(x, g, b, bn_param)
    assert bn_param == {"mode": "train"}
    with pytest.raises(ValueError, match=r"layernorm averages over \(D\), got shape \(4, 0\)$"):
        layernorm_forward(to_xp(np.zeros((4, 0)), xp, f), to_xp(np.ones(0), xp, f), to_xp(np.zeros(0), xp, f), {})


def test_param_dicts_refuse_misspelled_keys_and_bad_numbers(xp):
    f = widest_float(xp)  # no precision needed: the checks run on every device
    x, g, b = to_xp(_randn(4, 3), xp, f), to_xp(np.ones(3), xp, f), to_xp(np.zeros(3), xp, f)
    accepted = r"accepted keys: \['eps', 'layernorm', 'mode', 'momentum', 'running_mean', 'running_var'\]$"
    hint = r" \(did you mean 'momentum'\?\); "
    with pytest.raises(ValueError, match=r"^bn_param has unknown key 'momentun'" + hint + accepted):
        batchnorm_forward(x, g, b, {"mode": "train", "momentun": 0.5})
    with pytest.raises(ValueError, match=r"^ln_param has unknown key 'epsilon' \(did you mean 'eps'\?\); " + accepted):
        layernorm_forward(x, g, b, {"epsilon": 1e-3})
    with pytest.raises(ValueError, match=r"^bn_param\['eps'\] must be a finite number > 0, got 0$"):
        batchnorm_forward(x, g, b, {"mode": "train", "eps": 0})
    with pytest.raises(TypeError, match=r"^bn_param\['momentum'\] must be a real number, got '0.9'$"):
        batchnorm_forward(x, g, b, {"mode": "train", "momentum": "0.9"})
    x4 = to_xp(_randn(2, 4, 2, 2), xp, f)
    with pytest.raises(TypeError, match=r"^G must be an int >= 1, got True$"):
        spatial_groupnorm_forward(x4, to_xp(np.ones(4), xp, f), to_xp(np.zeros(4), xp, f), True, {})
