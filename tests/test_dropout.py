"""Inverted dropout: the notebook's mean check, seeded masks identical on every backend, gradients, bad input."""

import numpy as np
import pytest

from xpnet.gradient_check import eval_numerical_gradient_array
from xpnet.layers import dropout_backward, dropout_forward
from helpers import GRAD_REL_ERROR, assert_close, rel_error, to_np, to_xp


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
    x = _x(xp, (20, 30))
    param = {"mode": "train", "p": 0.5, "seed": 7}
    first, _ = dropout_forward(x, param)
    again, _ = dropout_forward(x, param)
    reference, _ = dropout_forward(to_np(x), param)  # the NumPy backend
    np.testing.assert_array_equal(to_np(first), to_np(again))
    np.testing.assert_array_equal(to_np(first) == 0, reference == 0)
    other, _ = dropout_forward(x, dict(param, seed=8))
    assert not np.array_equal(to_np(other) == 0, to_np(first) == 0)


def test_unseeded_mask_follows_numpy_global_state(xp):
    x = _x(xp, (10, 10))
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


def test_float32_stays_float32(xp):
    x = _x(xp, (4, 5), dtype="float32")
    out, cache = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 0})
    assert out.dtype == xp.float32 and dropout_backward(out, cache).dtype == xp.float32


def test_bad_input_names_the_argument(xp):
    x = _x(xp, (3, 4))
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
        dropout_backward(_x(xp, (4, 3)), cache)


def test_numpy_integer_seeds_give_the_int_seed_mask_and_other_seeds_are_refused_by_name(xp):
    x = _x(xp, (6, 7))
    ref, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 3})
    for seed in (np.int64(3), np.uint8(3), np.int32(3)):
        out, _ = dropout_forward(x, {"mode": "train", "p": 0.5, "seed": seed})
        np.testing.assert_array_equal(to_np(out), to_np(ref))
    for seed, error in (("0", TypeError), (1.5, TypeError), (True, TypeError), (-1, ValueError)):
        with pytest.raises(error, match=r"^dropout_param\['seed'\] must be"):
            dropout_forward(x, {"mode": "train", "p": 0.5, "seed": seed})


def test_a_misspelled_key_is_refused_by_name(xp):
    message = r"^dropout_param has unknown key 'sed'; accepted keys: \['mode', 'p', 'seed'\]$"
    with pytest.raises(ValueError, match=message):
        dropout_forward(_x(xp, (2, 2)), {"mode": "train", "p": 0.5, "sed": 0})
