"""Numerical gradients for checking backward passes, on arrays of any backend.

CS231n's versions iterate with ``np.nditer``, which CuPy and torch do not have. Here the indices are enumerated on
the host (``np.ndindex``) and every probe writes one element through the backend's own ``__setitem__``; the original
value is restored exactly after each probe (a float64 Python float holds any float16/32/64 element exactly), also
when ``f`` raises.

Immutable arrays (JAX): the caller's ``x`` is never written. ``f`` is called with perturbed copies of ``x`` instead,
so it must compute from its argument. CS231n's ``eval_numerical_gradient(lambda _: model.loss(X, y)[0],
model.params[name])`` relies on the in-place write reaching ``model.params``; on JAX it would give zeros, so when
every probe leaves ``f`` unchanged the check moves all of ``x`` by ``±(1 + |x|)`` and, if ``f`` still does not
change, raises a ValueError saying how to write ``f`` (``def f(W): model.params[name] = W; return
model.loss(X, y)[0]``). On JAX the last call is ``f(x)`` itself, so such an ``f`` leaves ``x`` stored, as the
restoring probes do elsewhere. Blobs (``.vals``) are probed by setting ``.vals`` to each copy and back.

What is refused, so that a check never returns a silently wrong answer: a non-floating ``x`` (an integer ``x``
truncates the step), a step ``h`` that ``x``'s dtype cannot resolve (see :func:`eval_numerical_gradient`), an
upstream or analytic gradient whose shape differs from what it is compared with (broadcasting would scale the
result), and an ``f`` that does not return what the function expects. Each error names the argument.

For large arrays and GPUs, :func:`directional_grad_check` compares the analytic gradient with a few random
directional derivatives, each costing one pair of forward passes instead of one pair per element.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from random import randrange

import numpy as np

from ._backend import (
    _describe,
    at,
    backend_name,
    device,
    dtype_name,
    is_array,
    is_immutable,
    namespace,
    to_numpy,
)
from ._random import check_seed, host_rng, random_normal
from ._validation import check_int, check_real

__all__ = [
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "eval_numerical_gradient_blobs",
    "eval_numerical_gradient_net",
    "grad_check_sparse",
    "rel_error",
    "directional_grad_check",
]


def _is_real_number(value) -> bool:
    """A Python or NumPy real scalar, not a bool (``True`` as a step or a loss is a mistake, not a number)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _shape(a) -> tuple[int, ...]:
    """The shape of an array; ``()`` for a scalar."""
    return tuple(a.shape) if is_array(a) else ()


def _check_same_shape(name: str, a, ref_name: str, ref) -> None:
    if _shape(a) != _shape(ref):
        raise ValueError(f"{name} must have {ref_name}'s shape {_shape(ref)}, got {_shape(a)}")


def _check_probed(x, h: float, name: str = "x", *, writable: bool = True):
    """Validate ``x`` as an array to take finite differences on; returns its namespace.

    ``x`` must have a real floating dtype, and ``h >= eps * max(1, max|x|)`` (``eps`` of ``x``'s dtype, the max over
    the finite entries): below that, ``x + h`` rounds back to ``x`` somewhere, and the difference quotient is zero
    or noise. The floor of 1 also refuses steps below the dtype's relative precision, where ``f``'s own rounding
    swamps the difference. With ``writable``, ``x`` must accept the probes' writes unless its backend is immutable
    (JAX), where the probes are copies.
    """
    xp = namespace(**{name: x})
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{name} must be a real floating array (float32 or float64) to take steps of h on, "
            f"got {dtype_name(x.dtype)}; use float64 for gradient checks"
        )
    if math.prod(x.shape) == 0:
        return xp
    if writable and not is_immutable(x):
        first = (0,) * x.ndim
        try:
            x[first] = x[first]
        except (ValueError, RuntimeError, TypeError) as err:
            hint = " (for a torch tensor that requires grad, pass x.detach())" if "grad" in str(err) else ""
            raise ValueError(
                f"{name} must be writable, as the gradient check writes each probe into it and restores it{hint}: {err}"
            ) from None
    eps = float(xp.finfo(x.dtype).eps)
    largest = max(1.0, float(xp.max(xp.where(xp.isfinite(x), xp.abs(x), xp.zeros_like(x)))))
    if h < eps * largest:
        raise ValueError(
            f"h={h:g} is below the resolution of {name}'s dtype {dtype_name(x.dtype)}: with eps={eps:.3g} and "
            f"max(1, max|{name}|)={largest:.3g}, x + h rounds to x for steps below {eps * largest:.3g}; "
            "use float64 or a larger h"
        )
    return xp


def _check_analytic(x, analytic_grad):
    """``analytic_grad`` on ``x``'s backend, with ``x``'s shape; returns the namespace."""
    xp = namespace(x=x, analytic_grad=analytic_grad)
    if not is_array(analytic_grad):
        raise TypeError(f"analytic_grad must be an array of x's shape {_shape(x)}, got {_describe(analytic_grad)}")
    _check_same_shape("analytic_grad", analytic_grad, "x", x)
    if math.prod(x.shape) == 0:
        raise ValueError(f"x is empty (shape {_shape(x)}); there is no entry to check")
    return xp


def _loss_value(out) -> float:
    """``f``'s result as a float: ``f`` must return a real scalar or a 0-d array."""
    if _is_real_number(out):
        return float(out)
    expected = "f must return a scalar (a Python float or a 0-d array)"
    if not is_array(out):
        raise TypeError(f"{expected}, got {_describe(out)}")
    if _shape(out) != ():
        raise ValueError(f"{expected}, got an array of shape {_shape(out)}")
    return float(out)


def _host_float64(a, name: str) -> np.ndarray:
    if _is_real_number(a):
        return np.asarray(float(a))
    namespace(**{name: a})  # a TypeError naming the argument for lists, strings...
    host = np.asarray(to_numpy(a))
    if host.dtype.kind not in "biuf":
        raise TypeError(f"{name} must have a real dtype, got {host.dtype.name}")
    return host.astype(np.float64)


def rel_error(x, y) -> float:
    """Maximum relative error ``max(|x - y| / max(1e-8, |x| + |y|))`` of two arrays (any backends) or scalars.

    A NaN in either gives NaN, never a small number.

    Parameters
    ----------
    x, y : array or scalar
        Of the same shape (a scalar counts as 0-d): broadcasting would compare different entries.

    Returns
    -------
    float
    """
    a, b = _host_float64(x, "x"), _host_float64(y, "y")
    if a.shape != b.shape:
        raise ValueError(f"y must have x's shape {a.shape}, got {b.shape}")
    if a.size == 0:
        raise ValueError(f"x and y are empty (shape {a.shape}); there is no error to measure")
    with np.errstate(invalid="ignore"):  # inf - inf is NaN on purpose: the comparison failed
        return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def _probe(x, ix: tuple[int, ...], h: float, f: Callable):
    """``f`` at ``x[ix] + h`` and ``x[ix] - h``, and the distance between the two values as stored in ``x``.

    The stored values are read back because ``x[ix] ± h`` rounds to ``x``'s dtype: dividing by ``2h`` would be
    off by that rounding (14% at 50 in float32 with h=1e-5). ``x`` is restored exactly even if ``f`` raises; an
    immutable ``x`` (JAX) is not written at all: ``f`` gets perturbed copies.
    """
    old = float(x[ix])
    if is_immutable(x):
        up_x = at(x, ix).set(old + h)
        plus = f(up_x)
        down_x = at(x, ix).set(old - h)
        minus = f(down_x)
        return plus, minus, float(up_x[ix]) - float(down_x[ix])
    try:
        x[ix] = old + h
        up = float(x[ix])
        plus = f(x)
        x[ix] = old - h
        down = float(x[ix])
        minus = f(x)
    finally:
        x[ix] = old
    return plus, minus, up - down


def _same_value(a, b) -> bool:
    """True when two results of ``f`` (scalars or arrays) are equal entry for entry (NaN equals nothing)."""
    return bool(np.array_equal(np.asarray(to_numpy(a)), np.asarray(to_numpy(b))))


_READ_ARGUMENT_HINT = (
    "write f to compute from the array it is given, e.g. def f(W): model.params[name] = W; return model.loss(X, y)[0] "
    "(the check calls f(x) last, so model.params[name] ends as x)"
)


def _finish_immutable(x, evaluate: Callable, unchanged: bool, name: str, hint: str) -> None:
    """After probing an immutable ``x``: refuse an ``f`` that ignores its argument, then call ``f(x)`` last.

    ``unchanged`` says that no probe changed ``f``. That is what a CS231n ``lambda _: ...`` gives on JAX (it reads
    the untouched array through a closure), but also what an ``f`` that is flat in ``x`` gives: a dead ReLU, or a
    bias before a batchnorm (exactly invariant in float arithmetic too). So ``f`` is refused only if moving every
    entry by ``±(1 + |x|)`` (which wakes a dead ReLU on one side) leaves it unchanged and a NaN-filled ``x`` does
    too: any arithmetic that reads ``x`` turns NaN.
    """
    if unchanged:
        xp = namespace(x)
        shift = 1.0 + xp.abs(x)
        moved = [evaluate(x + shift), evaluate(x - shift)]
        base = evaluate(x)
        if all(_same_value(m, base) for m in moved):
            try:
                filled = evaluate(xp.full_like(x, xp.nan))
            except Exception:  # f refusing a NaN-filled argument shows that it reads its argument
                filled = None
            if filled is not None and _same_value(filled, base):
                raise ValueError(
                    f"f's value does not depend on its argument: no probe of {name} changed it, nor moving every entry "
                    f"by +-(1 + |{name}|), nor filling it with NaN. {backend_name(xp)} arrays are immutable, so the "
                    f"gradient check passes f perturbed copies of {name} and never writes {name} itself; {hint}"
                )
            evaluate(x)
    else:
        evaluate(x)


def _centred_differences(
    x,
    h: float,
    evaluate: Callable,
    combine: Callable,
    on_entry: Callable | None = None,
    *,
    name: str = "x",
    hint: str = _READ_ARGUMENT_HINT,
):
    """For each entry of ``x``: ``combine(evaluate at x + h, evaluate at x - h) / step``, as an array like ``x``.

    On an immutable ``x`` (JAX) the evaluations get perturbed copies, and :func:`_finish_immutable` refuses an
    ``evaluate`` that ignores them (``name`` and ``hint`` go into that error).
    """
    grad = np.zeros(tuple(x.shape), dtype=np.float64)
    unchanged = True
    for ix in np.ndindex(*x.shape):
        plus, minus, step = _probe(x, ix, h, evaluate)
        grad[ix] = combine(plus, minus) / step
        unchanged = unchanged and _same_value(plus, minus)
        if on_entry is not None:
            on_entry(ix, grad[ix])
    if is_immutable(x) and grad.size:
        _finish_immutable(x, evaluate, unchanged, name, hint)
    return namespace(x).asarray(grad, dtype=x.dtype, device=device(x))


def eval_numerical_gradient(f: Callable, x, verbose: bool = True, h: float = 1e-5):
    """Numerical gradient of a scalar function ``f`` at ``x`` by centred differences.

    Parameters
    ----------
    f : callable
        Takes the array ``x`` and returns a scalar (Python float, NumPy scalar or 0-d array). On an immutable
        backend (JAX) ``f`` receives perturbed copies of ``x`` and must compute from its argument; one that ignores
        it (CS231n's ``lambda _: model.loss(X, y)[0]``) is a ValueError, never a zero gradient.
    x : array
        Real floating, of any backend and shape; modified in place during the probes and restored exactly (never
        written on JAX, whose arrays are immutable; there ``f(x)`` is called once more at the end).
    verbose : bool, default True
        Print each entry's index and gradient, as CS231n does.
    h : float, default 1e-5
        The step, a positive finite number with ``h >= eps * max(1, max|x|)`` for ``eps`` of ``x``'s dtype
        (float64: any h >= 2.2e-16 at ``|x| <= 1``; float32 with the default 1e-5: ``|x|`` up to ~84; float16 needs
        h >= 1e-3). A smaller h is refused with a ValueError: ``x + h`` would round back to ``x``.

    Returns
    -------
    grad : array
        Of ``x``'s shape, backend, device and dtype. Each entry is ``(f(x + s+) - f(x - s-)) / (s+ + s-)`` where
        ``s±`` are the steps actually stored in ``x``'s dtype (``h`` up to rounding). A NaN from ``f`` gives NaN in
        that entry.
    """
    h = check_real(h, "h", low=0.0, include_low=False)
    _check_probed(x, h)
    return _centred_differences(
        x, h, lambda a: _loss_value(f(a)), lambda plus, minus: plus - minus, on_entry=print if verbose else None
    )


def _weighted_difference(df, *, xp) -> Callable:
    """``sum((plus - minus) * df)`` as a float: the upstream-weighted change of an array-valued function."""
    return lambda plus, minus: float(xp.sum((plus - minus) * df))


def _array_output(out, name: str, df, df_name: str, *, xp, x):
    """A copy of ``out`` (``f``'s result), checked to be an array on ``x``'s backend with ``df``'s shape.

    The copy matters: ``f`` may return ``x`` itself or a view of it (test-mode dropout, reshapes), as CS231n's
    ``f(x).copy()`` knows.
    """
    if not is_array(out) and not _is_real_number(out):
        raise TypeError(f"{name} must return an array of {df_name}'s shape {_shape(df)}, got {_describe(out)}")
    namespace(x=x, **{name: out})
    _check_same_shape(name, out, df_name, df)
    return xp.asarray(out, copy=True)


def eval_numerical_gradient_array(f: Callable, x, df, h: float = 1e-5):
    """Numerical gradient of ``sum(f(x) * df)`` with respect to ``x``, for array-valued ``f``.

    Parameters
    ----------
    f : callable
        Takes ``x`` and returns an array of ``df``'s shape (another shape is a ValueError: broadcasting would scale
        the gradient).
    x : array
        Real floating, any shape (modified during probes, restored exactly; on JAX ``f`` gets perturbed copies
        instead, see :func:`eval_numerical_gradient`).
    df : array
        The upstream gradient, same shape and backend as ``f(x)``.
    h : float, default 1e-5
        The step, as in :func:`eval_numerical_gradient`.

    Returns
    -------
    grad : array
        Of ``x``'s shape, on ``x``'s backend and device.
    """
    h = check_real(h, "h", low=0.0, include_low=False)
    _check_probed(x, h)
    xp = namespace(x=x, df=df)

    def evaluate(a):
        return _array_output(f(a), "f(x)", df, "df", xp=xp, x=x)

    return _centred_differences(x, h, evaluate, _weighted_difference(df, xp=xp))


def eval_numerical_gradient_blobs(f: Callable, inputs: Sequence, output, h: float = 1e-5):
    """Numerical gradients of a function over several inputs, as in CS231n (blob ``.vals`` / ``.diffs``).

    ``f(*inputs, output)`` writes its result into ``output.vals`` (CS231n's ``Blob``: the output blob comes last, as
    CS231n calls it); ``output.diffs`` is the upstream gradient. Plain arrays are accepted too: then ``f(*inputs)``
    returns the output and ``output`` is the upstream gradient. Every input is checked as ``x`` in
    :func:`eval_numerical_gradient` before any is probed, and the output must have the upstream gradient's shape.

    Each probe is passed to ``f`` as the probed input: a blob's ``.vals`` is set to it (and back to the original
    array afterwards), a plain array is replaced in the argument list. On mutable backends that is the input
    itself, written in place and restored; on JAX it is a perturbed copy, so ``f`` must read its arguments.

    Parameters
    ----------
    f : callable
        ``f(*inputs, output)`` for blobs, ``f(*inputs)`` returning the output for plain arrays.
    inputs : sequence of blobs or arrays
        The inputs, each checked as ``x`` in :func:`eval_numerical_gradient`.
    output : blob or array
        The output blob (its ``.diffs`` the upstream gradient), or the upstream gradient itself.
    h : float, default 1e-5
        The step, as in :func:`eval_numerical_gradient`.

    Returns
    -------
    list of array
        One gradient per input, of its shape, backend and dtype.
    """
    if is_array(inputs) or not isinstance(inputs, Sequence) or isinstance(inputs, str):
        kind = "a single array; wrap it: [x]" if is_array(inputs) else _describe(inputs)
        raise TypeError(f"inputs must be a list of arrays or blobs, got {kind}")
    h = check_real(h, "h", low=0.0, include_low=False)
    blobs = hasattr(output, "vals")
    df = output.diffs if blobs else output
    out_name, df_name = ("output.vals", "output.diffs") if blobs else ("f(*inputs)", "output")
    probed = []
    for i, inp in enumerate(inputs):
        name = f"inputs[{i}].vals" if hasattr(inp, "vals") else f"inputs[{i}]"
        x = inp.vals if hasattr(inp, "vals") else inp
        _check_probed(x, h, name)
        probed.append((x, namespace(**{name: x, df_name: df})))

    grads = []
    for i, (x, xp) in enumerate(probed):
        holder = inputs[i] if hasattr(inputs[i], "vals") else None

        def run(a, xp=xp, x=x, i=i, holder=holder):
            if holder is not None:
                holder.vals = a  # the input blob itself: on mutable backends ``a`` is x, written in place
            args = [a if j == i and holder is None else inp for j, inp in enumerate(inputs)]
            if blobs:
                f(*args, output)
                return _array_output(output.vals, out_name, df, df_name, xp=xp, x=x)
            return _array_output(f(*args), out_name, df, df_name, xp=xp, x=x)

        name = f"inputs[{i}].vals" if holder is not None else f"inputs[{i}]"
        hint = "f (or net.forward()) must read the probed input from its arguments or the input blobs' .vals"
        try:
            grads.append(_centred_differences(x, h, run, _weighted_difference(df, xp=xp), name=name, hint=hint))
        finally:
            if holder is not None:
                holder.vals = x
    return grads


def eval_numerical_gradient_net(net, inputs: Sequence, output, h: float = 1e-5):
    """Numerical gradients of a net's output with respect to its inputs, as CS231n's: the net is re-run with
    ``net.forward()`` (no arguments) around each probe, and :func:`eval_numerical_gradient_blobs` does the rest.

    Parameters
    ----------
    net : object
        Its ``forward()`` reads the input blobs (or arrays) in ``inputs`` and writes ``output.vals`` (or, with plain
        arrays, returns the output).
    inputs : list of blobs or arrays
        Blobs' ``.vals`` arrays are probed in place and restored exactly (on JAX ``.vals`` is set to each perturbed copy
        and back). With plain arrays ``forward()`` cannot see a probe on JAX (immutable arrays): that is a ValueError
        saying so, not a zero gradient.
    output : blob or array
        The output blob, whose ``.diffs`` is the upstream gradient; or, with plain arrays, the upstream gradient itself.
    h : float, default 1e-5
        The step, as in :func:`eval_numerical_gradient`.

    Returns
    -------
    list of array
        One gradient per input, of its shape, backend and dtype.
    """
    forward = getattr(net, "forward", None)
    if not callable(forward):
        raise TypeError(f"net must have a forward() method (a CS231n net over blobs), got {_describe(net)}")
    return eval_numerical_gradient_blobs(lambda *args: forward(), inputs, output, h=h)


def _relative(numeric: float, analytic: float) -> float:
    """CS231n's ``|n - a| / (|n| + |a|)``, floored so that two zeros agree; NaN in, NaN out."""
    if math.isnan(numeric) or math.isnan(analytic):
        return math.nan
    return abs(numeric - analytic) / max(1e-12, abs(numeric) + abs(analytic))


def grad_check_sparse(f: Callable, x, analytic_grad, num_checks: int = 10, h: float = 1e-5, seed=None):
    """Compare ``analytic_grad`` with centred differences at ``num_checks`` random elements and print each.

    Parameters
    ----------
    f : callable
        Takes ``x`` and returns a scalar.
    x : array
        Real floating, not empty (probed and restored exactly; on JAX ``f`` gets perturbed copies and an ``f`` that
        ignores its argument is a ValueError, as in :func:`eval_numerical_gradient`).
    analytic_grad : array
        Of ``x``'s shape and backend.
    num_checks : int, default 10
        How many random elements to check (>= 1).
    h : float, default 1e-5
        The step, as in :func:`eval_numerical_gradient`.
    seed : None, int or numpy.random.Generator, default None
        None draws the elements with Python's ``random``, as CS231n does; an int >= 0 or a NumPy ``Generator``
        draws them from NumPy.

    Returns
    -------
    list of float
        The relative error of each check (CS231n's version only prints them); NaN where ``f`` or ``analytic_grad``
        is NaN.
    """
    h = check_real(h, "h", low=0.0, include_low=False)
    num_checks = check_int(num_checks, "num_checks", low=1)
    rng = host_rng(check_seed(seed, generator=True))
    _check_probed(x, h)
    _check_analytic(x, analytic_grad)
    errors = []
    unchanged = True
    for _ in range(num_checks):
        if rng is None:
            ix = tuple(randrange(n) for n in x.shape)
        else:
            ix = tuple(int(rng.integers(n)) for n in x.shape)
        plus, minus, step = _probe(x, ix, h, lambda a: _loss_value(f(a)))
        unchanged = unchanged and _same_value(plus, minus)
        numeric = (plus - minus) / step
        analytic = float(analytic_grad[ix])
        err = _relative(numeric, analytic)
        print(f"numerical: {numeric:f} analytic: {analytic:f}, relative error: {err:e}")
        errors.append(err)
    if is_immutable(x):
        _finish_immutable(x, lambda a: _loss_value(f(a)), unchanged, "x", _READ_ARGUMENT_HINT)
    return errors


def directional_grad_check(f: Callable, x, analytic_grad, num_directions: int = 5, h: float = 1e-5, seed=0):
    """Check ``analytic_grad`` along random directions: a cheap gradient check for large arrays and GPUs.

    For each random direction ``v`` (unit norm), the centred difference ``(f(x + h v) - f(x - h v)) / 2h`` is
    compared with ``sum(analytic_grad * d) / 2h``, where ``d = (x + h v) - (x - h v)`` is the displacement actually
    stored in ``x``'s dtype (``2 h v`` up to rounding). Each direction costs two evaluations of ``f`` whatever the
    size of ``x``; ``x`` is never written.

    ``x`` and ``h`` are checked as in :func:`eval_numerical_gradient`. Each entry moves by only ``h * v_i``
    (``~h / sqrt(x.size)``), so in float32 a large ``x`` may barely move at all; a direction whose stored
    displacement is shorter than ``h`` (half of the ``2h`` asked for) is refused with a ValueError rather than
    compared, since ``f(x + h v) == f(x - h v)`` would agree with any gradient.

    Parameters
    ----------
    f : callable
        Takes ``x`` and returns a scalar.
    x : array
        Real floating, checked as in :func:`eval_numerical_gradient`.
    analytic_grad : array
        Of ``x``'s shape and backend.
    num_directions : int, default 5
        How many random directions to check.
    h : float, default 1e-5
        The step along each direction.
    seed : int or numpy.random.Generator, default 0
        Seeds the directions.

    Returns
    -------
    list of float
        The relative error of each direction.
    """
    h = check_real(h, "h", low=0.0, include_low=False)
    num_directions = check_int(num_directions, "num_directions", low=1)
    rng = host_rng(check_seed(seed, generator=True))
    _check_probed(x, h, writable=False)
    xp = _check_analytic(x, analytic_grad)
    rng = np.random.default_rng(0) if rng is None else rng
    errors = []
    for _ in range(num_directions):
        v = random_normal(tuple(x.shape), like=x, seed=rng)
        v = v / xp.sqrt(xp.sum(v * v))
        up, down = x + h * v, x - h * v
        d = up - down
        moved = float(xp.sqrt(xp.sum(d * d)))
        if not moved >= h:
            raise ValueError(
                f"h={h:g} is too small for x's dtype {dtype_name(x.dtype)} along a direction over {math.prod(x.shape)} "
                f"entries: x moved by {moved:.3g} instead of {2 * h:.3g} (x + h v rounds to x); "
                "use float64 or a larger h"
            )
        numeric = (_loss_value(f(up)) - _loss_value(f(down))) / (2 * h)
        analytic = float(xp.sum(analytic_grad * d)) / (2 * h)
        errors.append(_relative(numeric, analytic))
    return errors
