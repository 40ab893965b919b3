"""Numerical gradient helpers on every backend: exact restoration, agreement with known gradients."""

import numpy as np
import pytest

from xpnet.gradient_check import (
    directional_grad_check,
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    eval_numerical_gradient_blobs,
    grad_check_sparse,
    rel_error,
)
from helpers import assert_close, to_np, to_xp


def _x(xp):
    return to_xp(np.random.default_rng(0).standard_normal((3, 4)), xp)


def test_scalar_gradient_matches_closed_form_and_restores_x(xp):
    x = _x(xp)
    before = to_np(x).copy()
    grad = eval_numerical_gradient(lambda a: xp.sum(a**3), x, verbose=False)
    assert_close(grad, 3 * before**2, xp=xp, rtol=1e-7, atol=1e-8)
    np.testing.assert_array_equal(to_np(x), before)  # restored exactly, bit for bit


def test_array_gradient_matches_closed_form(xp):
    x = _x(xp)
    df = to_xp(np.random.default_rng(1).standard_normal((3, 4)), xp)
    grad = eval_numerical_gradient_array(lambda a: xp.sin(a), x, df)
    assert rel_error(grad, np.cos(to_np(x)) * to_np(df)) < 1e-8


def test_blobs_with_plain_arrays(xp):
    a, b = _x(xp), to_xp(np.random.default_rng(2).standard_normal((3, 4)), xp)
    df = to_xp(np.ones((3, 4)), xp)
    ga, gb = eval_numerical_gradient_blobs(lambda u, v: u * v, [a, b], df)
    assert rel_error(ga, to_np(b)) < 1e-8 and rel_error(gb, to_np(a)) < 1e-8


def test_grad_check_sparse_and_directional_accept_true_gradient(xp, capsys):
    x = _x(xp)
    grad = 2 * x
    errs = grad_check_sparse(lambda a: xp.sum(a * a), x, grad, num_checks=4, seed=0)
    assert max(errs) < 1e-8 and "relative error" in capsys.readouterr().out
    assert max(directional_grad_check(lambda a: xp.sum(a * a), x, grad, num_directions=3)) < 1e-8


def test_directional_check_catches_a_wrong_gradient(xp):
    x = _x(xp)
    assert min(directional_grad_check(lambda a: xp.sum(a * a), x, 3 * x, num_directions=3)) > 1e-2


def test_non_array_input_is_a_type_error():
    with pytest.raises(TypeError, match="expected an array"):
        eval_numerical_gradient(lambda a: 0.0, [1.0, 2.0], verbose=False)


def test_array_gradient_of_a_function_returning_its_input(xp):
    # f(x) = x returns the probed array itself; without a copy both probes would see the same values.
    x = _x(xp)
    df = to_xp(np.ones((3, 4)), xp)
    assert rel_error(eval_numerical_gradient_array(lambda a: a, x, df), np.ones((3, 4))) < 1e-8
