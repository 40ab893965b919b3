"""Softmax and SVM losses: numerical gradients, torch's cross_entropy and multi_margin_loss in float64, stability
on huge logits, the 0-d loss contract and bad labels."""

import math

import numpy as np
import pytest

from xpnet._backend import namespace
from xpnet.gradient_check import eval_numerical_gradient
from xpnet.layers import softmax_loss, svm_loss

from helpers import (
    FLOAT_DTYPES,
    GRAD_REL_ERROR,
    F,
    assert_close_to_reference,
    rel_error,
    requires_torch,
    to_np,
    to_xp,
    torch,
    widest_float,
)

LOSSES = [softmax_loss, svm_loss]


def _scores(N=6, C=5, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((N, C)), rng.integers(C, size=N)


@pytest.mark.parametrize("loss_fn", LOSSES)
def test_gradient_matches_numerical(xp, loss_fn):
    x_np, y_np = _scores()
    x, y = to_xp(x_np, xp), to_xp(y_np, xp)
    loss, dx = loss_fn(x, y)
    dx_num = eval_numerical_gradient(lambda a: loss_fn(a, y)[0], x, verbose=False)
    assert rel_error(dx, dx_num) < GRAD_REL_ERROR


def _torch_reference(loss_fn, x_np, y_np):
    tx = torch.tensor(x_np, dtype=torch.float64, requires_grad=True)
    ty = torch.tensor(y_np)
    if loss_fn is softmax_loss:
        loss = F.cross_entropy(tx, ty)
    else:
        # torch divides each row's hinge sum by C as well as by N; CS231n's SVM divides by N only.
        loss = F.multi_margin_loss(tx, ty, margin=1.0) * x_np.shape[1]
    loss.backward()
    return loss.detach().numpy(), tx.grad.numpy()


@requires_torch
@FLOAT_DTYPES
@pytest.mark.parametrize("scale", [1.0, 1e4], ids=["unit", "huge"])
@pytest.mark.parametrize("loss_fn", LOSSES)
def test_matches_torch(xp, loss_fn, scale, dtype):
    x_np, y_np = _scores(N=8, C=4, scale=scale, seed=1)
    x_np = x_np.astype(dtype)  # rounded first: the float64 reference differs only by the arithmetic in dtype
    loss, dx = loss_fn(to_xp(x_np, xp), to_xp(y_np, xp))  # filterwarnings=error turns any overflow into a failure
    ref_loss, ref_dx = _torch_reference(loss_fn, x_np, y_np)
    assert math.isfinite(float(loss))
    # The loss averages N=8 rows of the logits' size; dx is a probability (or a count of violated margins) / N.
    assert_close_to_reference(loss, ref_loss, dtype=dtype, xp=xp, terms=8, scale=scale, err_msg="loss")
    assert_close_to_reference(dx, ref_dx, dtype=dtype, xp=xp, terms=4, scale=1 / 8, err_msg="dx")


def test_softmax_loss_of_small_logits_is_log_of_classes(xp):
    x_np, y_np = _scores(N=50, C=10, scale=1e-3)
    loss, _ = softmax_loss(to_xp(x_np, xp), to_xp(y_np, xp))
    assert float(loss) == pytest.approx(math.log(10), abs=0.01)


@pytest.mark.parametrize("loss_fn", LOSSES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_loss_is_a_0d_array_of_x_backend_and_dtype(xp, loss_fn, dtype):
    x_np, y_np = _scores()
    x = to_xp(x_np, xp, dtype=dtype)
    loss, dx = loss_fn(x, to_xp(y_np.astype(np.int32), xp))  # int32 labels work too (torch indexes with int64)
    assert namespace(loss) is xp and loss.ndim == 0
    assert loss.dtype == x.dtype and dx.dtype == x.dtype
    assert tuple(dx.shape) == (6, 5)
    assert float(loss) > 0 and isinstance(float(loss), float)


def test_svm_loss_is_zero_with_wide_margins(xp):
    x_np = np.zeros((3, 4))
    y_np = np.array([0, 3, 1])
    x_np[np.arange(3), y_np] = 2.0  # every correct score beats the others by more than the margin
    loss, dx = svm_loss(to_xp(x_np, xp), to_xp(y_np, xp))
    assert float(loss) == 0.0
    np.testing.assert_array_equal(to_np(dx), 0.0)


@requires_torch
@pytest.mark.parametrize("loss_fn", LOSSES)
def test_bad_input_names_the_argument(xp, loss_fn):
    f = widest_float(xp)  # no precision needed: the checks run on every device
    x = to_xp(np.zeros((3, 4)), xp, f)
    with pytest.raises(TypeError, match="y must hold integer class labels, got dtype"):
        loss_fn(x, to_xp(np.zeros(3), xp, f))
    with pytest.raises(ValueError, match=r"y must have shape \(N,\) = \(3,\), one label per row of x, got \(2,\)"):
        loss_fn(x, to_xp(np.zeros(2, dtype=np.int64), xp))
    with pytest.raises(ValueError, match=r"y must have shape \(N,\) = \(3,\).*got \(3, 1\)"):
        loss_fn(x, to_xp(np.zeros((3, 1), dtype=np.int64), xp))
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, C\) = \[0, 4\), got values from 0 to 4"):
        loss_fn(x, to_xp(np.array([0, 4, 1]), xp))
    with pytest.raises(ValueError, match=r"y must hold labels in \[0, C\) = \[0, 4\), got values from -1 to 1"):
        loss_fn(x, to_xp(np.array([0, -1, 1]), xp))
    with pytest.raises(ValueError, match=r"x must have shape \(N, C\), got \(4,\)"):
        loss_fn(to_xp(np.zeros(4), xp, f), to_xp(np.zeros(4, dtype=np.int64), xp))
    with pytest.raises(TypeError, match=r"^x must be an array of real numbers \(floating, integer or bool\), got c"):
        loss_fn(to_xp(np.zeros((3, 4), dtype=np.complex64), xp), to_xp(np.zeros(3, dtype=np.int64), xp))
    with pytest.raises(TypeError, match="different backends"):
        loss_fn(torch.zeros(3, 4, dtype=torch.float64), np.zeros(3, dtype=np.int64))


@FLOAT_DTYPES
@pytest.mark.parametrize("loss_fn", LOSSES)
def test_a_nan_score_makes_the_loss_nan(xp, loss_fn, dtype):
    # The SVM loss summed where(violated, margins, 0); NaN > 0 is False, so a NaN score gave a finite loss and the
    # Solver's non-finite-loss guard never fired.
    x_np, y_np = _scores(N=4, C=3)
    for index in [(0, 0), (2, int(y_np[2])), (3, (int(y_np[3]) + 1) % 3)]:  # any entry, the correct class's too
        x_bad = x_np.copy()
        x_bad[index] = np.nan
        loss, dx = loss_fn(to_xp(x_bad, xp, dtype=dtype), to_xp(y_np, xp))
        assert math.isnan(float(loss)), f"{loss_fn.__name__} with NaN at {index}"
        assert np.isfinite(to_np(dx)[[i for i in range(4) if i != index[0]]]).all()  # other rows are unaffected
