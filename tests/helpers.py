"""Shared test helpers: moving data between NumPy and the backend under test, tolerances written once, and an
``assert_close`` that checks namespace, shape and dtype before values so a failure says what differs.
"""

from __future__ import annotations

from contextvars import ContextVar

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from xpnet._backend import (
    asarray,
    backend_name,
    device,
    dtype_name,
    load_namespace,
    max_float_dtype,
    namespace,
    resolve_dtype,
    to_numpy,
)

# Written once: the tolerance of a comparison depends on the dtype of the arrays compared.
TOL = {
    "float64": {"rtol": 1e-9, "atol": 1e-11},
    "float32": {"rtol": 1e-4, "atol": 1e-5},
}
# Gradient checks in float64: a relative error of 1e-8 or better (CS231n's notebooks expect ~1e-8 to 1e-10).
GRAD_REL_ERROR = 1e-8


# The device of the backend variant under test, set by the ``xp`` fixture (tests/conftest.py) for one test: None
# for the backend's default device, array_api_strict's Device("device1") or Device("no_float64") for the GPU proxies.
DEVICE: ContextVar = ContextVar("xpnet_test_device", default=None)


def device_under_test(xp=None):
    """The device under test, for ``device=`` of models built on backend ``xp`` (None: the backend's default, and
    always for a backend other than the one under test, e.g. NumPy in a cross-backend test)."""
    device = DEVICE.get()
    # A device object belongs to its library (torch.device, array_api_strict's Device): other backends get None.
    if device is None or (xp is not None and type(device).__module__.split(".")[0] != backend_name(load_namespace(xp))):
        return None
    return device


def to_xp(a, xp, dtype=None):
    """Host data (NumPy array, list, scalar) on backend ``xp`` and the device under test (keeps NumPy's dtype unless
    ``dtype`` is given). A float64 array on a device without float64 skips the test, saying so."""
    a = np.asarray(a)
    dtype = a.dtype if dtype is None else dtype
    require_dtype(xp, dtype)
    return asarray(a, xp=xp, device=device_under_test(xp), dtype=dtype)


def require_dtype(xp, dtype):
    """Skip the test, naming the reason, when the device under test has no ``dtype`` (float64 on no_float64)."""
    device = device_under_test(xp)
    if device is not None:
        xp_dtype = resolve_dtype(load_namespace(xp), dtype)
        if xp_dtype not in load_namespace(xp).__array_namespace_info__().dtypes(device=device).values():
            pytest.skip(f"device {device} has no {dtype_name(xp_dtype)} (this test needs it)")


def to_np(a):
    """A NumPy array of ``a`` (any backend)."""
    return np.asarray(to_numpy(a))


def rel_error(x, y) -> float:
    """CS231n's max relative error, on the host."""
    x, y = to_np(x).astype(np.float64), to_np(y).astype(np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))


def assert_close(actual, expected, *, xp=None, rtol=None, atol=None, err_msg=""):
    """Assert ``actual`` (a backend array) matches ``expected`` (NumPy or backend).

    Checks, in order: namespace (if ``xp`` given), shape, dtype (when ``expected`` is a backend array or has a float
    dtype), then values with the dtype's tolerances from ``TOL``.
    """
    if xp is not None:
        got_ns = namespace(actual)
        assert got_ns is xp, f"{err_msg} namespace: expected {backend_name(xp)}, got {backend_name(got_ns)}"
    a = to_np(actual)
    e = to_np(expected)
    assert a.shape == e.shape, f"{err_msg} shape: expected {e.shape}, got {a.shape}"
    name = dtype_name(actual.dtype) if hasattr(actual, "dtype") else a.dtype.name
    if e.dtype.kind == "f":
        assert name == e.dtype.name, f"{err_msg} dtype: expected {e.dtype.name}, got {name}"
    tol = TOL.get(name, TOL["float64"])
    np.testing.assert_allclose(
        a, e, rtol=tol["rtol"] if rtol is None else rtol, atol=tol["atol"] if atol is None else atol, err_msg=err_msg
    )


def blobs(*, n_train: int, n_val: int, dim: int, classes: int, seed: int = 0) -> dict:
    """CS231n's data dict of ``classes`` well separated Gaussian blobs in ``dim`` dimensions: a working model reaches
    ~100% accuracy within an epoch or two."""
    rng = np.random.default_rng(seed)
    centers = 3.0 * rng.standard_normal((classes, dim))
    data = {}
    for split, n in (("train", n_train), ("val", n_val)):
        y = rng.integers(0, classes, n)
        data[f"X_{split}"], data[f"y_{split}"] = centers[y] + rng.standard_normal((n, dim)), y
    return data


# torch is the independent reference (torch.nn.functional + autograd). It is optional for users: without it the
# reference comparisons skip. CI requires the torch backend, so there a missing torch fails instead.
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = F = None

requires_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (the reference implementation)")


# The dtypes a reference comparison computes in, on every backend; float64 skips on a device without it.
FLOAT_DTYPES = pytest.mark.parametrize("dtype", ["float64", "float32"])
# Units of roundoff allowed per rounding a result can carry (see reference_tol): ~5x the most any float32
# comparison of the suite needs on numpy, torch, array_api_strict and jax (1.7, dx of affine-batchnorm-relu). At
# 1/1000 of it every comparison that is not exact (selection: relu, max pool, test-mode dropout) fails.
ROUNDOFF_UNITS = 8


def reference_tol(dtype, *, terms: int = 1, scale: float = 1.0) -> dict:
    """rtol and atol for a result computed in ``dtype`` against a float64 reference computed from the same inputs
    (already rounded to ``dtype``), so that only the arithmetic in ``dtype`` differs.

    float64 keeps ``TOL["float64"]``, far above its roundoff at the sizes tested. Below it an output that sums
    ``terms`` values of magnitude ~``scale`` (a conv's C*HH*WW, a batchnorm's N) carries up to ~``terms`` roundings
    of that size (the bound for recursive summation), so ``atol`` grows with ``terms``; ``rtol`` covers the
    elementwise steps (exp, sqrt, division).
    """
    name = dtype_name(dtype) if not isinstance(dtype, str) else dtype
    if name == "float64":
        return dict(TOL["float64"])
    eps = float(np.finfo(name).eps)
    return {"rtol": ROUNDOFF_UNITS * eps, "atol": ROUNDOFF_UNITS * eps * terms * scale}


def assert_close_to_reference(actual, reference, *, dtype, xp=None, terms: int = 1, scale: float = 1.0, err_msg=""):
    """Assert ``actual`` (computed in ``dtype``) is on ``xp``, has ``reference``'s shape and dtype ``dtype``, and
    matches the float64 ``reference`` within :func:`reference_tol` (``terms``: values summed into one output)."""
    if xp is not None:
        got_ns = namespace(actual)
        assert got_ns is xp, f"{err_msg} namespace: expected {backend_name(xp)}, got {backend_name(got_ns)}"
    a, e = to_np(actual), np.asarray(to_np(reference), dtype=np.float64)
    assert a.shape == e.shape, f"{err_msg} shape: expected {e.shape}, got {a.shape}"
    got = dtype_name(actual.dtype)
    assert got == dtype, f"{err_msg} dtype: expected {dtype}, got {got}"
    tol = reference_tol(dtype, terms=terms, scale=scale)
    np.testing.assert_allclose(a.astype(np.float64), e, err_msg=err_msg, **tol)


def widest_float(xp) -> str:
    """'float64', or 'float32' on a device under test without float64: the dtype of a test that needs no particular
    precision (Solver behaviour, argument checks), so that it runs on every device."""
    return dtype_name(max_float_dtype(load_namespace(xp), device_under_test(xp)))


# Numerical gradients cost two evaluations per entry probed. Every entry of a whole model is thousands of loss calls:
# a second on NumPy, minutes on JAX and array_api_strict, where every op is a dispatch (127 s for the six FC cases on
# JAX). NumPy probes every entry, as the CS231n notebooks do; the other backends probe a fixed sample of each array,
# which still runs their forward and backward through the check, because the float64 torch references
# (tests/test_model_references.py, the *_match_torch_autograd tests) compare every entry there at 1e-9.
SAMPLED_ENTRIES = 10


def probes_every_entry(xp) -> bool:
    """True on NumPy, where numerical gradient checks probe every entry (elsewhere :func:`sampled_entries`)."""
    return backend_name(load_namespace(xp)) == "numpy"


def sampled_entries(grad, k: int = SAMPLED_ENTRIES, seed: int = 0) -> list[tuple[int, ...]]:
    """``k`` distinct indices into an array of ``grad``'s shape, the same on every run: the entry of largest
    ``|grad|`` (where a wrong scale or sign shows most) and ``k - 1`` drawn by a seeded Generator (every index when
    there are at most ``k``)."""
    g = np.abs(to_np(grad).astype(np.float64))
    if g.size <= k:
        flat = list(range(g.size))
    else:
        largest = int(np.argmax(g))
        others = np.random.default_rng(seed).permutation(np.delete(np.arange(g.size), largest))[: k - 1]
        flat = [largest, *sorted(int(i) for i in others)]
    return [tuple(int(i) for i in np.unravel_index(i, g.shape)) for i in flat]


def numerical_gradient_at(f, x, entries, h: float = 1e-5) -> np.ndarray:
    """Centred differences of the scalar function ``f`` at ``entries`` of ``x``, as a float64 NumPy vector.

    ``f`` gets copies of ``x`` on ``x``'s backend, device and dtype, with one entry moved by ``+-h``; ``x`` itself
    is never written. The step is the distance between the two values as stored in ``x``'s dtype.
    """
    xp, host = namespace(x), to_np(x)
    grad = np.empty(len(entries))
    for n, ix in enumerate(entries):
        values = []
        for sign in (1.0, -1.0):
            probe = host.copy()
            probe[ix] = host[ix] + sign * h
            values.append((float(f(asarray(probe, xp=xp, device=device(x), dtype=x.dtype))), float(probe[ix])))
        (plus, up), (minus, down) = values
        grad[n] = (plus - minus) / (up - down)
    return grad


def on_numpy_only():
    """Parametrize a test's ``xp`` with NumPy alone (when ``XPNET_BACKENDS`` selects it; else the test has no cases).

    For tests whose subject is host-side (parsing and checking files, NumPy random states): the backend only
    receives the arrays at the end, so once per backend repeats the same work. Its id stays ``numpy``, so it counts
    for NumPy. Say at each use why the test is host-side, and keep a test per backend that reaches its device.
    """
    from conftest import BACKENDS  # conftest imports this module: read its selection when a test module asks

    return pytest.mark.parametrize("xp", [name for name in BACKENDS if name == "numpy"], indirect=True)


def fixed_examples(max_examples: int):
    """Hypothesis settings for tests that take the ``xp`` fixture: the same ``max_examples`` examples on every run
    and every backend (derandomized, no example database), no deadline (JAX compiles per shape)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


WINDOW_BACKWARD_CASES = [("conv", 3, 1), ("conv", 5, 2), ("conv", 7, 1), ("pool", 3, 2), ("pool", 2, 1)]
"""(layer, kernel, stride) of :func:`window_backward`: the passes whose dx scatters windows back."""


def window_backward(layer: str, kernel: int, stride: int):
    """``f(x, w, b)``: a convolution (``layer="conv"``, 'same' padding) or a max pooling of x, then its backward
    pass with ``out * out`` as the upstream gradient; the tuple of gradients (the pool's has dx only)."""
    from xpnet.layers import conv_backward_fast, conv_forward_fast, max_pool_backward_fast, max_pool_forward_fast

    def backward(x, w, b):
        if layer == "conv":
            out, cache = conv_forward_fast(x, w, b, {"stride": stride, "pad": (kernel - 1) // 2})
            return conv_backward_fast(out * out, cache)
        out, cache = max_pool_forward_fast(x, {"pool_height": kernel, "pool_width": kernel, "stride": stride})
        return (max_pool_backward_fast(out * out, cache),)

    return backward
