"""The backend module: namespaces, placement, host transfers, dtypes, pad, at and sync on every backend."""

import sys
import types

import numpy as np
import pytest

import xpnet
from xpnet import _backend as B

from helpers import to_np, to_xp, torch


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


def test_load_namespace_by_name_and_module(xp, backend):
    assert B.load_namespace(backend) is xp
    with pytest.raises(ValueError, match="xp must be one of"):
        B.load_namespace("tensorflow")


def test_get_namespace_is_a_deprecated_alias_of_load_namespace():
    # array-api-compat's get_namespace takes arrays; xpnet's took a library. The old name still works, and says so.
    with pytest.warns(DeprecationWarning, match=r"xpnet.get_namespace is deprecated: use xpnet.load_namespace"):
        assert xpnet.get_namespace("numpy") is xpnet.load_namespace("numpy")
    assert "get_namespace" not in xpnet.__all__


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


def expected_host_resident(backend: str, device) -> bool:
    """Whether an array of ``backend`` on ``device`` (None: the backend's default) lives in host memory, from the
    device alone: CuPy never; torch only on its ``cpu`` device; JAX only on a ``cpu`` platform; NumPy and
    array_api_strict always (its ``device1`` and ``no_float64`` proxies are NumPy memory behind a device label)."""
    if backend == "cupy":
        return False
    if backend == "torch":
        return device is None or device.type == "cpu"
    if backend == "jax":
        import jax

        return (device or jax.devices()[0]).platform == "cpu"
    return True


def test_host_residency_follows_the_device(xp, backend, device):
    x = to_xp(np.ones(2), xp)
    assert B.is_host_resident(x) is expected_host_resident(backend, device)


torch_only = pytest.mark.skipif(torch is None, reason="torch is not installed (the CPU proxies of a CUDA tensor)")


@torch_only
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_host_residency_expectation_on_cpu_proxies_of_a_gpu(device):
    # What the fixture test above expects on torch_cuda, shown without a GPU: a tensor on torch's meta device (no
    # memory at all) and a tensor that reports a CUDA device are not host resident; on the cpu device it is.
    x = torch.ones(2, device=device)
    assert B.is_host_resident(x) is expected_host_resident("torch", x.device) is (device == "cpu")
    fake = _fake_cuda_tensor()
    assert fake.device.type == "cuda"
    assert B.is_host_resident(fake) is expected_host_resident("torch", fake.device) is False


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


def record_waits(x, backend: str, monkeypatch) -> tuple[list, list]:
    """Replace the call that waits for ``x``'s queued work with one that records it (and still waits); returns the
    record and what it must hold after ``sync(x)``: one entry on CuPy, torch CUDA and JAX, none on the host
    backends, where sync has nothing to wait for (and must not touch CUDA)."""
    waited: list = []
    if backend == "jax":
        import jax

        real = jax.block_until_ready
        monkeypatch.setattr(jax, "block_until_ready", lambda a: waited.append(a) or real(a))
        return waited, [x]  # JAX dispatches asynchronously even on CPU: a timer must wait for the result
    if backend == "cupy":
        import cupy

        stream = cupy.cuda.get_current_stream()
        monkeypatch.setattr(cupy.cuda, "get_current_stream", lambda: _RecordingStream(stream, waited))
        return waited, ["synchronize"]
    if torch is not None:
        real_synchronize = torch.cuda.synchronize
        monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: waited.append(d) or real_synchronize(d))
    if backend == "torch" and x.device.type == "cuda":
        return waited, [x.device]
    return waited, []


class _RecordingStream:
    """A CuPy stream (real or fake) whose ``synchronize`` is recorded."""

    def __init__(self, stream, record: list):
        self._stream, self._record = stream, record

    def synchronize(self):
        self._record.append("synchronize")
        if self._stream is not None:
            self._stream.synchronize()


def test_sync_waits_for_queued_work(xp, backend, monkeypatch):
    x = to_xp(np.ones(2), xp)
    waited, expected = record_waits(x, backend, monkeypatch)
    B.sync(x)
    assert waited == expected


def _fake_cuda_tensor():
    """A torch tensor that says it is on ``cuda:0`` (a meta tensor underneath: no memory, no GPU needed)."""

    class FakeCudaTensor(torch.Tensor):
        @property
        def device(self):
            return torch.device("cuda", 0)

    return torch.Tensor._make_subclass(FakeCudaTensor, torch.empty(2, device="meta"))


@torch_only
def test_sync_check_waits_on_a_tensor_that_says_cuda_and_fails_a_sync_that_does_not(monkeypatch):
    # Proves test_sync_waits_for_queued_work right for torch_cuda on a CPU machine: with a tensor that reports a
    # CUDA device the check expects torch.cuda.synchronize(device), sync calls it (recorded; the real one is not
    # reached, there is no GPU), and a sync that does nothing would fail the check.
    fake = _fake_cuda_tensor()
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: None)
    waited, expected = record_waits(fake, "torch", monkeypatch)
    assert expected == [torch.device("cuda", 0)]
    assert waited != expected  # a no-op sync would fail the check
    B.sync(fake)
    assert waited == expected
    # The meta device is neither CPU nor CUDA: nothing queued that torch.cuda could wait for.
    waited, expected = record_waits(torch.empty(2, device="meta"), "torch", monkeypatch)
    B.sync(torch.empty(2, device="meta"))
    assert waited == expected == []


def test_sync_check_waits_on_a_fake_cupy_stream_and_fails_a_sync_that_does_not(monkeypatch):
    # Proves test_sync_waits_for_queued_work right for CuPy without CuPy or a GPU: a stand-in ``cupy`` module whose
    # ndarray is recognised as a CuPy array and whose current stream is a fake; sync must synchronize that stream.
    if "cupy" in sys.modules:
        pytest.skip("the real CuPy is imported: test_sync_waits_for_queued_work[cupy] checks it")
    fake_cupy = types.ModuleType("cupy")
    fake_cupy.ndarray = type("ndarray", (), {})  # a fresh class: array_api_compat caches its type checks by class
    fake_cupy.cuda = types.SimpleNamespace(get_current_stream=lambda: None)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    x = fake_cupy.ndarray()
    waited, expected = record_waits(x, "cupy", monkeypatch)
    assert expected == ["synchronize"] and waited != expected  # a no-op sync would fail the check
    assert B.is_host_resident(x) is expected_host_resident("cupy", None) is False
    B.sync(x)
    assert waited == expected
