"""One ``xp`` fixture over every backend present.

``XPNET_BACKENDS=numpy,cupy`` selects backends (default: all four). ``XPNET_REQUIRE_BACKENDS=numpy,torch,...``
turns a missing backend from a skip into a failure; CI sets it so that a broken install cannot pass quietly.
array_api_strict is pinned to the 2024.12 standard: passing on it is the proof that xpnet uses only the standard.
"""

from __future__ import annotations

import os

import pytest

from xpnet._backend import get_namespace

ALL_BACKENDS = ("numpy", "array_api_strict", "torch", "cupy")
STRICT_API_VERSION = "2024.12"


def _selected() -> list[str]:
    raw = os.environ.get("XPNET_BACKENDS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()] or list(ALL_BACKENDS)
    unknown = sorted(set(names) - set(ALL_BACKENDS))
    if unknown:
        raise pytest.UsageError(f"XPNET_BACKENDS names unknown backends {unknown}; known: {list(ALL_BACKENDS)}")
    return names


def _required() -> set[str]:
    return {n.strip() for n in os.environ.get("XPNET_REQUIRE_BACKENDS", "").split(",") if n.strip()}


def _load(name: str):
    """The namespace for backend ``name``, or a string saying why it is unavailable."""
    try:
        if name == "array_api_strict":
            import array_api_strict

            array_api_strict.set_array_api_strict_flags(api_version=STRICT_API_VERSION)
        if name == "torch":
            import torch

            # The tests use tiny arrays: on 2 cores, torch's thread pool costs more than it saves (ms per matmul).
            torch.set_num_threads(1)
        if name == "cupy":
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                return "cupy is installed but no CUDA device is visible"
        return get_namespace(name)
    except Exception as err:  # ImportError, CUDA driver errors...
        return f"{name} unavailable: {type(err).__name__}: {err}"


_CACHE: dict[str, object] = {}


def load_backend(name: str):
    """Namespace of backend ``name``; skips (or fails, if required) when it is not available."""
    if name not in _CACHE:
        _CACHE[name] = _load(name)
    xp = _CACHE[name]
    if isinstance(xp, str):
        if name in _required():
            pytest.fail(f"required backend {name!r} did not load: {xp}")
        pytest.skip(xp)
    return xp


BACKENDS = _selected()


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array namespace of one backend (array-api-compat wrapped for numpy, torch and cupy)."""
    return load_backend(request.param)


@pytest.fixture
def backend(xp):
    """Short name of the backend under test ('numpy', 'torch', ...)."""
    from xpnet._backend import backend_name

    return backend_name(xp)
