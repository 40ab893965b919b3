"""Sandwich layers on every backend: numerical gradients of every input, and agreement with the layers composed."""

import numpy as np
import pytest

from xpnet.gradient_check import eval_numerical_gradient_array
from xpnet.layer_utils import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_ln_relu_backward,
    affine_ln_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    conv_relu_backward,
    conv_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from xpnet.layers import affine_forward, relu_forward
from helpers import GRAD_REL_ERROR, assert_close, rel_error, to_np, to_xp

CONV = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _arrays(xp, seed, *shapes):
    rng = np.random.default_rng(seed)
    return [to_xp(rng.standard_normal(s), xp) for s in shapes]


def _gamma_beta(xp, n):
    rng = np.random.default_rng(7)
    return to_xp(1.0 + 0.2 * rng.standard_normal(n), xp), to_xp(0.1 * rng.standard_normal(n), xp)


# name -> (forward, backward, builder of (array inputs, trailing dict params)); the builders keep shapes tiny
# because a numerical gradient costs two forward passes per element.
CASES = {
    "affine_relu": (
        affine_relu_forward,
        affine_relu_backward,
        lambda xp: (_arrays(xp, 0, (3, 2, 3), (6, 5), (5,)), ()),
    ),
    "affine_bn_relu": (
        affine_bn_relu_forward,
        affine_bn_relu_backward,
        lambda xp: ([*_arrays(xp, 1, (4, 5), (5, 6), (6,)), *_gamma_beta(xp, 6)], ({"mode": "train"},)),
    ),
    "affine_ln_relu": (
        affine_ln_relu_forward,
        affine_ln_relu_backward,
        lambda xp: ([*_arrays(xp, 2, (3, 5), (5, 6), (6,)), *_gamma_beta(xp, 6)], ({},)),
    ),
    "conv_relu": (
        conv_relu_forward,
        conv_relu_backward,
        lambda xp: (_arrays(xp, 3, (2, 2, 4, 4), (3, 2, 3, 3), (3,)), (CONV,)),
    ),
    "conv_relu_pool": (
        conv_relu_pool_forward,
        conv_relu_pool_backward,
        lambda xp: (_arrays(xp, 4, (2, 2, 4, 4), (3, 2, 3, 3), (3,)), (CONV, POOL)),
    ),
    "conv_bn_relu": (
        conv_bn_relu_forward,
        conv_bn_relu_backward,
        lambda xp: (
            [*_arrays(xp, 5, (2, 2, 4, 4), (3, 2, 3, 3), (3,)), *_gamma_beta(xp, 3)],
            (CONV, {"mode": "train"}),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sandwich_gradients_match_numerical(xp, name):
    forward, backward, build = CASES[name]
    inputs, extra = build(xp)
    out, cache = forward(*inputs, *extra)
    dout = to_xp(np.random.default_rng(9).standard_normal(tuple(out.shape)), xp)
    grads = backward(dout, cache)
    assert len(grads) == len(inputs)
    for i, (x, g) in enumerate(zip(inputs, grads)):
        assert tuple(g.shape) == tuple(x.shape), f"gradient {i} of {name}"
        numeric = eval_numerical_gradient_array(lambda _: forward(*inputs, *extra)[0], x, dout)
        if "bn" in name and i == 2:
            # Batchnorm subtracts the batch mean, so the bias before it gets exactly zero gradient; relative error
            # is meaningless there, the numerical one is rounding noise (~1e-11).
            assert np.max(np.abs(to_np(g))) < 1e-12 and np.max(np.abs(to_np(numeric))) < 1e-9, name
        else:
            assert rel_error(numeric, g) < GRAD_REL_ERROR, f"gradient {i} of {name}"


def test_affine_relu_is_the_composition(xp):
    x, w, b = _arrays(xp, 0, (3, 4), (4, 5), (5,))
    out, _ = affine_relu_forward(x, w, b)
    expected, _ = relu_forward(affine_forward(x, w, b)[0])
    assert_close(out, expected, xp=xp)
    assert float(xp.min(out)) >= 0.0


def test_conv_relu_pool_output_shape_and_sign(xp):
    x, w, b = _arrays(xp, 1, (2, 2, 6, 6), (4, 2, 3, 3), (4,))
    out, _ = conv_relu_pool_forward(x, w, b, CONV, POOL)
    assert tuple(out.shape) == (2, 4, 3, 3)
    assert float(xp.min(out)) >= 0.0


def test_affine_bn_relu_updates_running_statistics(xp):
    x, w, b = _arrays(xp, 2, (5, 4), (4, 3), (3,))
    gamma, beta = _gamma_beta(xp, 3)
    bn_param = {"mode": "train"}
    affine_bn_relu_forward(x, w, b, gamma, beta, bn_param)
    a = to_np(x) @ to_np(w) + to_np(b)
    assert_close(bn_param["running_mean"], 0.1 * a.mean(axis=0), xp=xp)


def test_a_failed_sandwich_call_leaves_the_running_statistics_alone(xp):
    x, w, b = _arrays(xp, 2, (5, 4), (4, 3), (3,))
    gamma, beta = _gamma_beta(xp, 3)
    bn_param = {"mode": "train"}
    affine_bn_relu_forward(x, w, b, gamma, beta, bn_param)
    mean = bn_param["running_mean"]
    with pytest.raises(TypeError, match=r"^gamma must be a real floating array, got int64"):
        affine_bn_relu_forward(x, w, b, to_xp(np.ones(3, dtype=np.int64), xp), beta, bn_param)
    with pytest.raises(ValueError, match=r"^bn_param has unknown key 'eps '"):
        affine_bn_relu_forward(x, w, b, gamma, beta, dict(bn_param, **{"eps ": 1e-3}))
    assert bn_param["running_mean"] is mean
