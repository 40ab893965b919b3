"""The backend module: namespaces, placement, host transfers, dtypes, pad, at and sync on every backend."""

import numpy as np
import pytest

from xpnet import _backend as B

from helpers import to_np, to_xp


def test_namespace_of_backend_arrays(xp):
    x = to_xp(np.ones((2, 3)), xp)
    assert B.namespace(x, None, 1.0) is xp


def test_namespace_rejects_mixed_backends(xp, backend):
    if backend == "numpy":
        pytest.skip("needs a second backend besides numpy")
    x = to_xp(np.ones(3), xp)
    with pytest.raises(TypeError, match="different backends"):
        B.namespace(x, np.ones(3))


def test_namespace_rejects_non_arrays():
    with pytest.raises(TypeError, match="expected an array"):
        B.namespace([1.0, 2.0])


def test_get_namespace_by_name_and_module(xp, backend):
    assert B.get_namespace(backend) is xp
    with pytest.raises(ValueError, match="xp must be one of"):
        B.get_namespace("tensorflow")


def test_asarray_like_keeps_device_and_dtype(xp):
    ref = to_xp(np.zeros(2, dtype=np.float32), xp)
    y = B.asarray(np.arange(4), like=ref, dtype="float32")
    assert B.namespace(y) is xp
    assert B.device(y) == B.device(ref)
    assert y.dtype == xp.float32
    np.testing.assert_array_equal(to_np(y), np.arange(4, dtype=np.float32))


def test_to_numpy_roundtrip(xp):
    a = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(B.to_numpy(to_xp(a, xp)), a)


def test_resolve_dtype_accepts_numpy_names_and_native(xp):
    assert B.resolve_dtype(xp, np.float32) == xp.float32
    assert B.resolve_dtype(xp, "float64") == xp.float64
    assert B.resolve_dtype(xp, xp.float32) == xp.float32
    assert B.dtype_name(xp.float32) == "float32"


def test_max_float_dtype_is_float64_on_cpu(xp):
    assert B.max_float_dtype(xp) == xp.float64


def test_pad_zero_pads_each_axis(xp):
    x = to_xp(np.ones((1, 1, 2, 2)), xp)
    y = B.pad(x, ((0, 0), (0, 0), (1, 2), (0, 1)), xp=xp)
    assert y.shape == (1, 1, 5, 3)
    assert float(xp.sum(y)) == 4.0


def test_host_residency_follows_the_device(xp, backend):
    assert B.is_host_resident(to_xp(np.ones(2), xp)) is (backend != "cupy")


def test_namespace_names_the_argument_that_is_not_an_array(xp):
    x = to_xp(np.ones(3), xp)
    with pytest.raises(TypeError, match=r"w must be an array .*got builtins\.list"):
        B.namespace(x=x, w=[1.0, 2.0])


def test_namespace_names_the_arguments_on_mixed_backends(xp, backend):
    if backend == "numpy":
        pytest.skip("needs a second backend besides numpy")
    with pytest.raises(TypeError, match=r"different backends \(x is .*, w is numpy\.ndarray\)"):
        B.namespace(x=to_xp(np.ones(3), xp), w=np.ones(3))


def test_at_updates_in_place_where_the_backend_can_and_returns_the_result(xp, backend):
    x = to_xp(np.zeros((2, 3)), xp)
    y = B.at(x, (0, slice(1, 3))).add(to_xp(np.ones(2), xp))
    y = B.at(y, (1, 0)).set(5.0)
    expected = np.asarray([[0.0, 1.0, 1.0], [5.0, 0.0, 0.0]])
    np.testing.assert_array_equal(to_np(y), expected)
    if B.is_immutable(x):
        assert backend == "jax"
        np.testing.assert_array_equal(to_np(x), np.zeros((2, 3)))  # JAX: a new array, x untouched
    else:
        assert y is x  # in place: no copy on NumPy, CuPy, torch, array_api_strict


def test_sync_waits_for_queued_work(xp, backend, monkeypatch):
    x = to_xp(np.ones(2), xp)
    if backend == "jax":
        import jax

        waited = []
        monkeypatch.setattr(jax, "block_until_ready", lambda a: waited.append(a) or a)
        B.sync(x)
        assert waited == [x]  # JAX dispatches asynchronously even on CPU: a timer must wait for the result
    else:
        B.sync(x)
