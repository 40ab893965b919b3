"""Numerical gradients for checking backward passes, on arrays of any backend.

CS231n's versions iterate with ``np.nditer``, which CuPy and torch do not have. Here the indices are enumerated on
the host (``np.ndindex``) and every probe writes one element through the backend's own ``__setitem__``; the original
value is restored exactly after each probe (a float64 Python float holds any float32/float64 element exactly).

For large arrays and GPUs, :func:`directional_grad_check` compares the analytic gradient with a few random
directional derivatives, each costing one pair of forward passes instead of one pair per element.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from random import randrange

import numpy as np

from ._backend import device, namespace, random_normal, to_numpy

__all__ = [
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "eval_numerical_gradient_blobs",
    "grad_check_sparse",
    "rel_error",
    "directional_grad_check",
]


def rel_error(x, y) -> float:
    """Maximum relative error ``max(|x - y| / max(1e-8, |x| + |y|))`` of two arrays (any backends) or scalars."""
    x = np.asarray(to_numpy(x), dtype=np.float64)
    y = np.asarray(to_numpy(y), dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def _probe(x, ix: tuple[int, ...], h: float, f: Callable):
    """Evaluate ``f`` at ``x[ix] + h`` and ``x[ix] - h``; ``x`` is left exactly as it was."""
    old = float(x[ix])
    x[ix] = old + h
    plus = f(x)
    x[ix] = old - h
    minus = f(x)
    x[ix] = old
    return plus, minus


def _centred_differences(x, h: float, evaluate: Callable, combine: Callable, on_entry: Callable | None = None):
    """For each entry of ``x``: ``combine(evaluate at x + h, evaluate at x - h) / 2h``, as an array like ``x``."""
    grad = np.zeros(tuple(x.shape), dtype=np.float64)
    for ix in np.ndindex(*x.shape):
        plus, minus = _probe(x, ix, h, evaluate)
        grad[ix] = combine(plus, minus) / (2 * h)
        if on_entry is not None:
            on_entry(ix, grad[ix])
    return namespace(x).asarray(grad, dtype=x.dtype, device=device(x))


def _check_array(x, name: str = "x") -> None:
    namespace(x)  # raises TypeError naming the type for non-arrays
    if not hasattr(x, "__setitem__"):
        raise TypeError(f"{name} must be a mutable array (gradient checking writes probes into it)")


def eval_numerical_gradient(f: Callable, x, verbose: bool = True, h: float = 1e-5):
    """Numerical gradient of a scalar function ``f`` at ``x`` by centred differences.

    Parameters
    ----------
    f : callable taking the array ``x`` and returning a scalar (Python float or 0-d array).
    x : array of any backend, any shape; modified in place during the probes and restored exactly.

    Returns
    -------
    grad : array of ``x``'s shape, backend, device and dtype.
    """
    _check_array(x)
    return _centred_differences(
        x, h, lambda a: float(f(a)), lambda plus, minus: plus - minus, on_entry=print if verbose else None
    )


def eval_numerical_gradient_array(f: Callable, x, df, h: float = 1e-5):
    """Numerical gradient of ``sum(f(x) * df)`` with respect to ``x``, for array-valued ``f``.

    Parameters
    ----------
    f : callable taking ``x`` and returning an array of ``df``'s shape.
    x : array, any shape (modified during probes, restored exactly).
    df : upstream gradient, same shape as ``f(x)``.

    Returns
    -------
    grad : array of ``x``'s shape on ``x``'s backend and device.
    """
    _check_array(x)
    xp = namespace(x, df)
    # f may return x itself or a view of it (test-mode dropout, reshapes): copy, as CS231n's f(x).copy() does.
    return _centred_differences(x, h, lambda a: xp.asarray(f(a), copy=True), _weighted_difference(df, xp=xp))


def eval_numerical_gradient_blobs(f: Callable, inputs: Sequence, output, h: float = 1e-5):
    """Numerical gradients of a function over several inputs, as in CS231n (blob ``.vals`` / ``.diffs``).

    ``f(*inputs)`` writes its result into ``output.vals`` (CS231n's ``Blob``); ``output.diffs`` is the upstream
    gradient. Plain arrays are accepted too: then ``f(*inputs)`` returns the output and ``output`` is the upstream
    gradient. Returns one gradient per input.
    """
    blobs = hasattr(output, "vals")
    grads = []
    for inp in inputs:
        x = inp.vals if hasattr(inp, "vals") else inp
        _check_array(x, "inputs")
        xp = namespace(x)

        def run(_):
            out = f(*inputs)
            return xp.asarray(output.vals if blobs else out, copy=True)

        df = output.diffs if blobs else output
        grads.append(_centred_differences(x, h, run, _weighted_difference(df, xp=xp)))
    return grads


def _weighted_difference(df, *, xp) -> Callable:
    """``sum((plus - minus) * df)`` as a float: the upstream-weighted change of an array-valued function."""
    return lambda plus, minus: float(xp.sum((plus - minus) * df))


def grad_check_sparse(f: Callable, x, analytic_grad, num_checks: int = 10, h: float = 1e-5, seed=None):
    """Compare ``analytic_grad`` with centred differences at ``num_checks`` random elements and print each.

    Returns the list of relative errors (CS231n's version only prints them).
    """
    _check_array(x)
    rng = np.random.default_rng(seed) if seed is not None else None
    errors = []
    for _ in range(num_checks):
        if rng is None:
            ix = tuple(randrange(n) for n in x.shape)
        else:
            ix = tuple(int(rng.integers(n)) for n in x.shape)
        plus, minus = _probe(x, ix, h, lambda a: float(f(a)))
        numeric = (plus - minus) / (2 * h)
        analytic = float(analytic_grad[ix])
        err = abs(numeric - analytic) / max(1e-12, abs(numeric) + abs(analytic))
        print(f"numerical: {numeric:f} analytic: {analytic:f}, relative error: {err:e}")
        errors.append(err)
    return errors


def directional_grad_check(f: Callable, x, analytic_grad, num_directions: int = 5, h: float = 1e-5, seed=0):
    """Check ``analytic_grad`` along random directions: a cheap gradient check for large arrays and GPUs.

    For each random direction ``v`` (unit norm), the centred difference ``(f(x + h v) - f(x - h v)) / 2h`` is
    compared with ``sum(analytic_grad * v)``. Each direction costs two evaluations of ``f`` whatever the size of
    ``x``; ``x`` is left unchanged.

    Returns
    -------
    list of float : the relative error of each direction.
    """
    xp = namespace(x, analytic_grad)
    if tuple(analytic_grad.shape) != tuple(x.shape):
        raise ValueError(f"analytic_grad must have x's shape {tuple(x.shape)}, got {tuple(analytic_grad.shape)}")
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(num_directions):
        v = random_normal(tuple(x.shape), like=x, seed=rng)
        v = v / xp.sqrt(xp.sum(v * v))
        numeric = (float(f(x + h * v)) - float(f(x - h * v))) / (2 * h)
        analytic = float(xp.sum(analytic_grad * v))
        errors.append(abs(numeric - analytic) / max(1e-12, abs(numeric) + abs(analytic)))
    return errors

