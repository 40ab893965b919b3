"""Inverted dropout: the notebook's mean check, seeded masks identical on every backend, gradients, bad input."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet._backend import namespace
from xpnet.gradient_check import eval_numerical_gradient_array
from xpnet.layers import dropout_backward, dropout_forward

from helpers import (
    FLOAT_DTYPES,
    GRAD_REL_ERROR,
    assert_close,
    assert_close_to_reference,
    rel_error,
    to_np,
    to_xp,
    widest_float,
)


def _x(xp, shape=(500, 500), dtype=None):
    return to_xp(np.random.default_rng(0).standard_normal(shape) + 10, xp, dtype=dtype)


@pytest.mark.parametrize("p", [0.25, 0.4, 0.7])
def test_train_mode_keeps_the_mean_and_test_mode_is_the_identity(xp, p):
    x = _x(xp)
    out, _ = dropout_forward(x, {"mode": "train", "p": p, "seed": 123})
    out_np, x_np = to_np(out), to_np(x)
    assert abs(out_np.mean() / x_np.mean() - 1) < 0.02
    assert abs((out_np == 0).mean() - (1 - p)) < 0.01
    kept = out_np != 0
    np.testing.assert_allclose(out_np[kept], x_np[kept] / p, rtol=1e-12)  # inverted: survivors scaled by 1 / p
    test_out, _ = dropout_forward(x, {"mode": "test", "p": p})
    assert_close(test_out, x_np, xp=xp, rtol=0, atol=0)


def test_seeded_mask_is_identical_across_calls_and_backends(xp):
    x = _x(xp, (20, 30), dtype=widest_float(xp))
    param = {"mode": "train", "p": 0.5, "seed": 7}
    first, _ = dropout_forward(x, param)
    again, _ = dropout_forward(x, param)
    reference, _ = dropout_forward(to_np(x), param)  # the NumPy backend
    np.testing.assert_array_equal(to_np(first), to_np(again))
    np.testing.assert_array_equal(to_np(first) == 0, reference == 0)
    other, _ = dropout_forward(x, dict(param, seed=8))
    assert not np.array_equal(to_np(other) == 0, to_np(first) == 0)


def test_unseeded_mask_follows_numpy_global_state(xp):
    x = _x(xp, (10, 10), dtype=widest_float(xp))
    param = {"mode": "train", "p": 0.5}
    np.random.seed(231)
    first, _ = dropout_forward(x, param)
    second, _ = dropout_forward(x, param)
    np.random.seed(231)
    replay, _ = dropout_forward(x, param)
    np.testing.assert_array_equal(to_np(first), to_np(replay))
    assert not np.array_equal(to_np(first), to_np(second))


@pytest.mark.parametrize("mode", ["train", "test"])
def test_gradient_matches_numerical(xp, mode):
    x = _x(xp, (10, 10))
    dout = to_xp(np.random.default_rng(1).standard_normal((10, 10)), xp)
    param = {"mode": mode, "p": 0.2, "seed": 123}
    dx = dropout_backward(dout, dropout_forward(x, param)[1])
    # Test mode returns x itself (as CS231n does), so copy: the probes write into x after f returns.
    dx_num = eval_numerical_gradient_array(lambda a: xp.asarray(dropout_forward(a, param)[0], copy=True), x, dout)
    assert rel_error(dx, dx_num) < GRAD_REL_ERROR


@FLOAT_DTYPES
@pytest.mark.parametrize("mode", ["train", "test"])
def test_forward_and_backward_match_the_float64_reference(xp, mode, dtype):
    # CS231n's dropout in float64 on the same (rounded) input: x * mask / p, and dout * mask / p backward.
    rng = np.random.default_rng(2)
    x, dout = rng.standard_normal((6, 7)).astype(dtype), rng.standard_normal((6, 7)).astype(dtype)
    param = {"mode": mode, "p": 0.3, "seed": 5}
    out, cache = dropout_forward(to_xp(x, xp), param)
    ref_out, (_, scaled_mask) = _cs231n_dropout_forward(x.astype(np.float64), param)
    assert_close_to_reference(out, ref_out, dtype=dtype, xp=xp, err_msg="out")
    ref_dx = dout.astype(np.float64) * (1.0 if mode == "test" else scaled_mask)
    assert_close_to_reference(dropout_backward(to_xp(dout, xp), cache), ref_dx, dtype=dtype, xp=xp, err_msg="dx")


def test_float32_stays_float32(xp):
    x = _x(xp, (4, 5), dtype="float32")
    out, cache = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 0})
    assert out.dtype == xp.float32 and dropout_backward(out, cache).dtype == xp.float32


def test_bad_input_names_the_argument(xp):
    x = _x(xp, (3, 4), dtype=widest_float(xp))
    for p in (0, 0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"dropout_param\['p'\] \(the keep probability\) must be a finite number"):
            dropout_forward(x, {"mode": "train", "p": p})
    with pytest.raises(TypeError, match=r"dropout_param\['p'\] \(the keep probability\) must be a real number"):
        dropout_forward(x, {"mode": "train", "p": "0.5"})
    with pytest.raises(ValueError, match="dropout_param must contain 'p'"):
        dropout_forward(x, {"mode": "train"})
    with pytest.raises(ValueError, match=r"dropout_param\['mode'\] must be 'train' or 'test', got 'eval'"):
        dropout_forward(x, {"mode": "eval", "p": 0.5})
    with pytest.raises(TypeError, match="dropout_param must be a dict"):
        dropout_forward(x, 0.5)
    _, cache = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 0})
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(3, 4\)"):
        dropout_backward(_x(xp, (4, 3), dtype=widest_float(xp)), cache)


def test_numpy_integer_seeds_give_the_int_seed_mask_and_other_seeds_are_refused_by_name(xp):
    x = _x(xp, (6, 7), dtype=widest_float(xp))
    ref, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 3})
    for seed in (np.int64(3), np.uint8(3), np.int32(3)):
        out, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": seed})
        np.testing.assert_array_equal(to_np(out), to_np(ref))
    for seed, error in (("0", TypeError), (1.5, TypeError), (True, TypeError), (-1, ValueError)):
        with pytest.raises(error, match=r"^dropout_param\['seed'\] must be"):
            dropout_forward(x, {"mode": "train", "p": 0.5, "seed": seed})


def test_a_misspelled_key_is_refused_by_name(xp):
    message = (
        r"^dropout_param has unknown key 'sed' \(did you mean 'seed'\?\); "
        r"accepted keys: \['mask', 'mode', 'p', 'seed'\]$"
    )
    with pytest.raises(ValueError, match=message):
        dropout_forward(_x(xp, (2, 2), dtype=widest_float(xp)), {"mode": "train", "p": 0.5, "sed": 0})


def _cs231n_dropout_forward(x, dropout_param):
    """CS231n's dropout_forward, transcribed literally (the seed's solution: a scaled mask from the global state)."""
    p, mode = dropout_param["p"], dropout_param["mode"]
    if "seed" in dropout_param:
        np.random.seed(dropout_param["seed"])
    mask = None
    if mode == "train":
        mask = (np.random.rand(*x.shape) < p) / p
        out = x * mask
    elif mode == "test":
        out = x
    cache = (dropout_param, mask)
    out = out.astype(x.dtype, copy=False)
    return out, cache


_SHAPES = st.lists(st.integers(1, 6), min_size=0, max_size=3).map(tuple)


def _assert_like_cs231n(xp, out, cache, ref_out, ref_cache, x_np):
    """Same cache and kept units (the mask), and CS231n's output values."""
    (param, mask), (ref_param, ref_mask) = cache, ref_cache
    assert param == ref_param
    assert namespace(mask) is xp and tuple(mask.shape) == x_np.shape and xp.isdtype(mask.dtype, "bool")
    np.testing.assert_array_equal(to_np(mask), ref_mask != 0)
    out_np = to_np(out)
    np.testing.assert_array_equal(out_np == 0, np.asarray(ref_out) == 0)
    if x_np.dtype == np.float64:  # bit for bit, so a notebook prints CS231n's numbers
        np.testing.assert_array_equal(out_np, ref_out)
    else:  # CS231n multiplies in float64 and rounds; xpnet stays in float32 (one rounding more)
        np.testing.assert_allclose(out_np, ref_out, rtol=2e-7)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=_SHAPES,
    p=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(["float32", "float64"]),
    mode=st.sampled_from(["train", "test"]),
)
def test_seeded_call_is_cs231n_call_and_leaves_numpy_global_state_as_cs231n_does(xp, shape, p, seed, dtype, mode):
    # CS231n's dropout_forward reseeds NumPy's global state (in test mode too) and its notebooks draw the next
    # model's weights from what is left: the state after the call is part of the contract, not just the mask.
    x_np = (np.random.default_rng(0).standard_normal(shape) + 1).astype(dtype)
    param = {"mode": mode, "p": p, "seed": seed}
    np.random.seed(12345)  # a state the call must not depend on
    ref_out, ref_cache = _cs231n_dropout_forward(x_np, param)
    ref_next = np.random.randn(3)
    np.random.seed(54321)
    out, cache = dropout_forward(to_xp(x_np, xp), param)
    np.testing.assert_array_equal(np.random.randn(3), ref_next)
    if mode == "test":
        assert cache == (param, None)
        assert_close(out, x_np, xp=xp, rtol=0, atol=0)
    else:
        _assert_like_cs231n(xp, out, cache, ref_out, ref_cache, x_np)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=_SHAPES, p=st.floats(0.05, 1.0), k=st.integers(0, 2**32 - 1))
def test_unseeded_mask_is_cs231n_mask_after_np_random_seed(xp, shape, p, k):
    x_np = np.random.default_rng(1).standard_normal(shape).astype(widest_float(xp))
    param = {"mode": "train", "p": p}
    np.random.seed(k)
    ref_out, ref_cache = _cs231n_dropout_forward(x_np, param)
    ref_state = np.random.get_state()
    np.random.seed(k)
    out, cache = dropout_forward(to_xp(x_np, xp), param)
    _assert_like_cs231n(xp, out, cache, ref_out, ref_cache, x_np)
    np.testing.assert_array_equal(np.random.get_state()[1], ref_state[1])  # the same numbers were consumed


@pytest.mark.parametrize("mode", ["train", "test"])
def test_cache_is_dropout_param_and_mask_as_the_seed_specifies(xp, mode):
    x = _x(xp, (3, 4), dtype=widest_float(xp))
    param = {"mode": mode, "p": 0.5, "seed": 1}
    _, (cached_param, mask) = dropout_forward(x, param)
    assert cached_param == param
    param["mode"] = "test" if mode == "train" else "train"  # a later change to the caller's dict ...
    assert cached_param["mode"] == mode  # ... does not change what the backward pass will do
    if mode == "test":
        assert mask is None
    else:
        ref, _ = _cs231n_dropout_forward(to_np(x), {"mode": "train", "p": 0.5, "seed": 1})
        np.testing.assert_array_equal(to_np(mask), ref != 0)


def test_nan_and_inf_in_dropped_units_give_exact_zeros(xp):
    x_np = np.full((4, 5), np.nan)
    x_np[0] = np.inf
    out, (_, mask) = dropout_forward(to_xp(x_np, xp), {"mode": "train", "p": 0.5, "seed": 0})
    dropped = ~to_np(mask)
    assert dropped.any() and (~dropped).any()
    np.testing.assert_array_equal(to_np(out)[dropped], 0.0)
    dx = dropout_backward(to_xp(x_np, xp), dropout_forward(to_xp(x_np, xp), {"mode": "train", "p": 0.5, "seed": 0})[1])
    np.testing.assert_array_equal(to_np(dx)[dropped], 0.0)


def test_a_seed_numpy_cannot_seed_is_refused_by_name(xp):
    with pytest.raises(ValueError, match=r"^dropout_param\['seed'\] must be an int in \[0, 2\*\*32 - 1\]"):
        dropout_forward(_x(xp, (2, 2), dtype=widest_float(xp)), {"mode": "train", "p": 0.5, "seed": 2**32})


def test_a_numpy_scalar_keep_probability_works_forward_and_backward(xp):
    x = _x(xp, (3, 4), dtype="float32")
    out, cache = dropout_forward(x, {"mode": "train", "p": np.float32(0.5), "seed": 0})
    ref, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 0})
    assert_close(out, to_np(ref), xp=xp)
    assert_close(dropout_backward(out, cache), to_np(ref) * 2, xp=xp)
