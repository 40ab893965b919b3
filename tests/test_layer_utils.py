"""Sandwich layers on every backend: numerical gradients of every input, and agreement with the layers composed."""

from copy import deepcopy

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

from helpers import (
    GRAD_REL_ERROR,
    assert_close,
    assert_close_to_reference,
    numerical_gradient_at,
    probes_every_entry,
    rel_error,
    sampled_entries,
    to_np,
    to_xp,
)

CONV = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _arrays(xp, seed, *shapes, dtype="float64"):
    rng = np.random.default_rng(seed)
    return [to_xp(rng.standard_normal(s), xp, dtype=dtype) for s in shapes]


def _gamma_beta(xp, n, dtype="float64"):
    rng = np.random.default_rng(7)
    gamma, beta = 1.0 + 0.2 * rng.standard_normal(n), 0.1 * rng.standard_normal(n)
    return to_xp(gamma, xp, dtype=dtype), to_xp(beta, xp, dtype=dtype)


# name -> (forward, backward, builder of (array inputs, trailing dict params)); the builders keep shapes tiny
# because a numerical gradient costs two forward passes per element.
CASES = {
    "affine_relu": (
        affine_relu_forward,
        affine_relu_backward,
        lambda xp, dtype="float64": (_arrays(xp, 0, (3, 2, 3), (6, 5), (5,), dtype=dtype), ()),
    ),
    "affine_bn_relu": (
        affine_bn_relu_forward,
        affine_bn_relu_backward,
        lambda xp, dtype="float64": (
            [*_arrays(xp, 1, (4, 5), (5, 6), (6,), dtype=dtype), *_gamma_beta(xp, 6, dtype)],
            ({"mode": "train"},),
        ),
    ),
    "affine_ln_relu": (
        affine_ln_relu_forward,
        affine_ln_relu_backward,
        lambda xp, dtype="float64": (
            [*_arrays(xp, 2, (3, 5), (5, 6), (6,), dtype=dtype), *_gamma_beta(xp, 6, dtype)],
            ({},),
        ),
    ),
    "conv_relu": (
        conv_relu_forward,
        conv_relu_backward,
        lambda xp, dtype="float64": (_arrays(xp, 3, (2, 2, 4, 4), (3, 2, 3, 3), (3,), dtype=dtype), (CONV,)),
    ),
    "conv_relu_pool": (
        conv_relu_pool_forward,
        conv_relu_pool_backward,
        lambda xp, dtype="float64": (_arrays(xp, 4, (2, 2, 4, 4), (3, 2, 3, 3), (3,), dtype=dtype), (CONV, POOL)),
    ),
    "conv_bn_relu": (
        conv_bn_relu_forward,
        conv_bn_relu_backward,
        lambda xp, dtype="float64": (
            [*_arrays(xp, 5, (2, 2, 4, 4), (3, 2, 3, 3), (3,), dtype=dtype), *_gamma_beta(xp, 3, dtype)],
            (CONV, {"mode": "train"}),
        ),
    ),
}
# The most values one entry sums over anywhere in the sandwich: D, M or N for the affine ones; for the conv ones
# dw's N*H'*W' = 32.
TERMS = {"affine_bn_relu": 6, "affine_ln_relu": 6, "conv_relu_pool": 32, "conv_bn_relu": 32}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sandwich_gradients_match_numerical(xp, name):
    forward, backward, build = CASES[name]
    inputs, extra = build(xp)
    out, cache = forward(*inputs, *extra)
    dout = to_xp(np.random.default_rng(9).standard_normal(tuple(out.shape)), xp)
    grads = backward(dout, cache)
    assert len(grads) == len(inputs)
    for i, (x, g) in enumerate(zip(inputs, grads, strict=True)):
        assert tuple(g.shape) == tuple(x.shape), f"gradient {i} of {name}"

        # The probe is passed in place of input i (on JAX, whose arrays are immutable, it is a copy of x).
        def out_at(a, i=i):
            return forward(*inputs[:i], a, *inputs[i + 1 :], *extra)[0]

        if probes_every_entry(xp):
            numeric, analytic = to_np(eval_numerical_gradient_array(out_at, x, dout)), to_np(g)
        else:
            # Elsewhere a fixed sample of entries, of sum(out * dout): every entry costs two forward passes, each a
            # string of dispatches on JAX and array_api_strict, and test_float32_matches_the_float64_computation
            # compares every entry of the same sandwiches with NumPy's (probed here in full) on every backend.
            entries = sampled_entries(g)
            numeric = numerical_gradient_at(lambda a, i=i: xp.sum(out_at(a) * dout), x, entries)
            analytic = np.asarray([to_np(g)[ix] for ix in entries])
        if "bn" in name and i == 2:
            # Batchnorm subtracts the batch mean, so the bias before it gets exactly zero gradient; relative error
            # is meaningless there, the numerical one is rounding noise (~1e-11).
            assert np.max(np.abs(analytic)) < 1e-12 and np.max(np.abs(numeric)) < 1e-9, name
        else:
            assert rel_error(numeric, analytic) < GRAD_REL_ERROR, f"gradient {i} of {name}"


# Between them every layer a sandwich uses (affine_relu and conv_relu are parts of these).
FLOAT32_CASES = ["affine_bn_relu", "affine_ln_relu", "conv_bn_relu", "conv_relu_pool"]


@pytest.mark.parametrize("name", FLOAT32_CASES)
def test_float32_matches_the_float64_computation(xp, name):
    # The same sandwich in float64 on NumPy, from the float32 inputs: they differ only by float32's arithmetic.
    forward, backward, build = CASES[name]
    inputs, extra = build(xp, "float32")
    out, cache = forward(*inputs, *deepcopy(extra))
    dout = np.random.default_rng(9).standard_normal(tuple(out.shape)).astype(np.float32)
    grads = backward(to_xp(dout, xp), cache)
    ref_out, ref_cache = forward(*(to_np(a).astype(np.float64) for a in inputs), *deepcopy(extra))
    ref_grads = backward(dout.astype(np.float64), ref_cache)
    assert_close_to_reference(out, ref_out, dtype="float32", xp=xp, terms=TERMS[name], err_msg="out")
    for i, (got, ref) in enumerate(zip(grads, ref_grads, strict=True)):
        assert_close_to_reference(got, ref, dtype="float32", xp=xp, terms=TERMS[name], err_msg=f"gradient {i}")


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
    with pytest.raises(TypeError, match=r"^gamma must be an array of real numbers \(floating, integer or bool\)"):
        affine_bn_relu_forward(x, w, b, to_xp(np.ones(3, dtype=np.complex64), xp), beta, bn_param)
    with pytest.raises(ValueError, match=r"^bn_param has unknown key 'eps '"):
        affine_bn_relu_forward(x, w, b, gamma, beta, dict(bn_param, **{"eps ": 1e-3}))
    assert bn_param["running_mean"] is mean
