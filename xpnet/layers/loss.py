"""Classification losses: softmax (cross-entropy) and multiclass SVM (hinge), averaged over the batch."""

from __future__ import annotations

from .._backend import Array, device, dtype_name, index_dtype, is_host_resident, is_tracing
from ._checks import array_namespace, as_common_dtype, float_namespace

__all__ = ["softmax_loss", "svm_loss"]


def softmax_loss(x: Array, y: Array) -> tuple[Array, Array]:
    """Softmax (cross-entropy) loss and its gradient.

    Parameters
    ----------
    x : array of shape (N, C)
        Scores, real numbers (integer and bool scores are promoted to the default float).
    y : array of shape (N,)
        Integer labels, with values in [0, C).

    Returns
    -------
    loss : 0-d array
        Of x's backend and dtype, the mean over the batch (``float(loss)`` gives a Python float); NaN if any score is
        NaN. Computed as ``-log(probs[i, y[i]])``, as the 2021 and 2025 CS231n notebooks' code does (their gradient
        checks then print the same numbers), except for a probability below the smallest normal number (a loss above
        ~708 in float64, ~87 in float32): there the log-softmax ``log(sum(exp(shifted))) - shifted[i, y[i]]`` gives the
        finite loss that ``-log(0)`` would not.
    dx : array of shape (N, C)
        Gradient of the loss with respect to x.
    """
    xp = _namespace(x, y)
    N, C, x, y = _check_scores_and_labels(x, y, xp=xp)
    # Shifting by the row max leaves the softmax unchanged and keeps exp from overflowing on large scores.
    shifted = x - xp.max(x, axis=1, keepdims=True)
    exp_shifted = xp.exp(shifted)
    sums = xp.sum(exp_shifted, axis=1, keepdims=True)
    # exp / sum, not exp(log-softmax): exp turns the log-softmax's absolute rounding (an ulp of |log p|) into a
    # relative error of p, 15x that of the division (median) at scores of spread 100.
    probs = exp_shifted / sums
    # The loss is -log(p), as the code behind the 2021 and 2025 notebooks computes it (2019's provided softmax_loss
    # took log(sums) - shifted). The two differ by an ulp now and then, each right about as often (-log(p) rounds
    # once at the loss's scale, the log-softmax twice), but a gradient check at h=1e-6 reads an ulp of a loss near
    # log(10) as 2.2e-10: one such ulp makes the ConvolutionalNetworks check print b1's error as 3.5e-5, not 3.4e-6.
    # A subnormal or zero p takes the log-softmax (the inner where keeps log(0) from warning).
    p_y = _pick(probs, y, xp=xp)
    normal = p_y >= xp.finfo(x.dtype).smallest_normal
    per_row = xp.where(normal, -xp.log(xp.where(normal, p_y, 1.0)), xp.log(sums) - _pick(shifted, y, xp=xp))
    loss = xp.asarray(xp.sum(per_row) / N)  # NumPy reductions give scalars; keep a 0-d array
    dx = xp.where(_one_hot(y, C, xp=xp), probs - 1.0, probs) / N
    return loss, dx


def svm_loss(x: Array, y: Array) -> tuple[Array, Array]:
    """Multiclass SVM (hinge) loss with margin 1, summed over classes and averaged over the batch, and its gradient.

    Parameters
    ----------
    x : array of shape (N, C)
        Scores, real numbers (integer and bool scores are promoted to the default float).
    y : array of shape (N,)
        Integer labels, with values in [0, C).

    Returns
    -------
    loss : 0-d array
        Of x's backend and dtype; NaN if any score is NaN.
    dx : array of shape (N, C)
        Gradient of the loss with respect to x. As in CS231n, a NaN margin counts as not violated here, so dx stays
        finite; the NaN loss is what reports the bad scores.
    """
    xp = _namespace(x, y)
    N, C, x, y = _check_scores_and_labels(x, y, xp=xp)
    correct = _one_hot(y, C, xp=xp)
    margins = x - _pick(x, y, xp=xp) + 1.0
    violated = (margins > 0) & ~correct
    # maximum, not where(violated, margins, 0): a NaN margin is not > 0, and where would drop it from the loss.
    loss = xp.asarray(xp.sum(xp.where(correct, 0.0, xp.maximum(margins, 0.0))) / N)
    # Each violated margin pushes its class's score up and the correct class's score down.
    violated_f = xp.astype(violated, x.dtype)
    n_violated = xp.sum(violated_f, axis=1, keepdims=True)
    dx = (violated_f - xp.where(correct, n_violated, 0.0)) / N
    return loss, dx


def _pick(x, y, *, xp):
    """x[i, y[i]] for each row i, as an (N, 1) column."""
    return xp.take_along_axis(x, xp.reshape(y, (-1, 1)), axis=1)


def _one_hot(y, C, *, xp):
    """Boolean (N, C) array, True at (i, y[i])."""
    return xp.arange(C, dtype=y.dtype, device=device(y))[None, :] == y[:, None]


def _namespace(x, y):
    """The namespace of scores x (real numbers) and labels y, each named in errors."""
    float_namespace(x=x)
    return array_namespace(x=x, y=y)


def _check_scores_and_labels(x, y, *, xp):
    """``(N, C, x, y)`` after checking x's shape and y's shape, dtype and range: x made floating (integer scores
    are promoted as NumPy does), y as int64."""
    if x.ndim != 2:
        raise ValueError(f"x must have shape (N, C), got {tuple(x.shape)}")
    N, C = x.shape
    if N == 0 or C == 0:
        raise ValueError(f"x must have at least one sample and one class, got shape {tuple(x.shape)}")
    if not xp.isdtype(y.dtype, "integral"):
        raise TypeError(f"y must hold integer class labels, got dtype {dtype_name(y.dtype)}")
    if tuple(y.shape) != (N,):
        raise ValueError(f"y must have shape (N,) = ({N},), one label per row of x, got {tuple(y.shape)}")
    # int64 whatever the labels' integer type: torch indexes with int64 only, and C may not fit in y's type.
    y = xp.astype(y, index_dtype(xp), copy=False)
    # The range check reads a value back from the array: free in host memory, but on a GPU it would stall the
    # pipeline at every training step, so there it is left out (the Solver checks its labels once, on the host).
    # Under a compiler no value can be read (a graph break in torch.compile, an error in jax.jit): skipped there too.
    # Tracing is asked of the result, not of y: labels closed over by a jitted function are concrete, not traced.
    out_of_range = xp.any((y < 0) | (y >= C)) if is_host_resident(y) else None
    if out_of_range is not None and not is_tracing(out_of_range) and bool(out_of_range):
        raise ValueError(
            f"y must hold labels in [0, C) = [0, {C}), got values from {int(xp.min(y))} to {int(xp.max(y))}"
        )
    return N, C, as_common_dtype(x, xp=xp), y
