"""One ``xp`` fixture over every backend present.

``XPNET_BACKENDS=numpy,cupy`` selects backends (default: all of ``ALL_BACKENDS``). Two of them are GPU proxies:
array_api_strict on its ``device1`` (refuses NumPy conversion and mixing with the default device, as CuPy does) and
on ``no_float64`` (as Apple MPS). ``torch_cuda`` is torch on a real CUDA device (skipped without one). A test puts
its arrays there with ``helpers.to_xp`` and its models with ``device=helpers.device_under_test(xp)``, both reading
the device the ``xp`` fixture set.
``XPNET_REQUIRE_BACKENDS=numpy,torch,...`` makes a missing backend an error that stops the run before any test; CI
sets it so that a broken install cannot pass quietly. array_api_strict is pinned to the 2024.12 standard: passing on
it is the proof that xpnet uses only the standard.

A backend that is not installed (or has no device) skips its tests; the run ends with one line per such backend
("backend cupy unavailable (...): 548 tests skipped") instead of a ``SKIPPED`` line per test under ``-ra``, which
keeps listing every other skip. The JUnit XML still holds each skipped test, with the property
``xpnet_backend_unavailable`` naming the backend, for ``ci/check_backends.py``.

Every test that takes the ``xp`` fixture (directly or through ``device``/``backend``) carries the JUnit property
``xpnet_backend`` with its backend id: ``ci/check_backends.py`` counts a test for a backend by that property alone,
never by its test id (a test parametrized with the string "numpy" is not a NumPy test); tests without it are
backend-free.

``XPNET_REQUIRE_EXTRAS=distributed,...`` names optional modules that must import: the run stops before any test if
one does not, and :func:`importorskip_extra` fails instead of skipping. CI sets it for the extras it installs.
"""

from __future__ import annotations

import importlib
import os
from collections import Counter

import pytest

from xpnet._backend import load_namespace

import helpers
from backends import ALL_BACKENDS

# GPU proxies: array_api_strict on a non-default device. device1 refuses conversion to NumPy and mixing with the
# default device (what CuPy does); no_float64 has no float64 (what Apple MPS does), so only tests that create no
# float64 array run there (tests/helpers.py skips the others, naming the reason).
# torch_cuda is torch on its first CUDA device (a real GPU, not a proxy; unavailable without one).
# variant -> (backend, device name)
DEVICE_VARIANTS = {
    "array_api_strict_device1": ("array_api_strict", "device1"),
    "array_api_strict_no_float64": ("array_api_strict", "no_float64"),
    "torch_cuda": ("torch", "cuda"),
}
STRICT_API_VERSION = "2024.12"
# The user property (and JUnit <property>) that marks a test skipped because its backend did not load.
UNAVAILABLE = "xpnet_backend_unavailable"
# The JUnit property naming the backend (the ``xp`` fixture's id) of every test that takes ``xp``.
BACKEND_PROPERTY = "xpnet_backend"
# The report category of such skips: the short summary of -ra lists only "skipped", so they leave it.
UNAVAILABLE_CATEGORY = "skipped (backend unavailable)"


def _names(variable: str) -> list[str]:
    names = [n.strip() for n in os.environ.get(variable, "").split(",") if n.strip()]
    unknown = sorted(set(names) - set(ALL_BACKENDS))
    if unknown:
        raise pytest.UsageError(f"{variable} names unknown backends {unknown}; known: {list(ALL_BACKENDS)}")
    return names


def _required_extras() -> list[str]:
    return [n.strip() for n in os.environ.get("XPNET_REQUIRE_EXTRAS", "").split(",") if n.strip()]


def importorskip_extra(module: str):
    """Import optional ``module`` (e.g. ``distributed``, from an xpnet extra); skip the test (module) without it,
    unless ``XPNET_REQUIRE_EXTRAS`` names it: then its absence fails, so CI cannot pass with those tests skipped."""
    if module in _required_extras():
        try:
            return importlib.import_module(module)
        except ImportError as err:
            pytest.fail(f"{module} is required (XPNET_REQUIRE_EXTRAS) but does not import: {err}", pytrace=False)
    return pytest.importorskip(module, reason=f"{module} is not installed (an optional extra of xpnet)")


def _selected() -> list[str]:
    return _names("XPNET_BACKENDS") or list(ALL_BACKENDS)


def _load(name: str):
    """The namespace for backend ``name``, or a string saying why it is unavailable."""
    if name == "torch_cuda":
        try:
            import torch
        except ImportError as err:
            return f"ImportError: {err}"
        if not torch.cuda.is_available():
            return "torch is installed but sees no CUDA device"
    if name in DEVICE_VARIANTS:
        return _load(DEVICE_VARIANTS[name][0])
    try:
        if name == "array_api_strict":
            import array_api_strict

            array_api_strict.set_array_api_strict_flags(api_version=STRICT_API_VERSION)
        if name == "torch":
            import torch

            # The tests use tiny arrays: on 2 cores, torch's thread pool costs more than it saves (ms per matmul).
            torch.set_num_threads(1)
        if name == "jax":
            import jax

            # The suite checks float64 and float32 on every backend; JAX has float64 only in its 64-bit mode, a
            # process-wide setting that xpnet itself never flips (tests/test_jax.py checks the refusal without it).
            jax.config.update("jax_enable_x64", True)
        if name == "cupy":
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                return "cupy is installed but no CUDA device is visible"
        return load_namespace(name)
    except Exception as err:  # ImportError, CUDA driver errors...
        return f"{type(err).__name__}: {err}"


_CACHE: dict[str, object] = {}


def load_backend(name: str):
    """Namespace of backend ``name``; skips the test, marked as a backend-unavailable skip, when it did not load."""
    if name not in _CACHE:
        _CACHE[name] = _load(name)
    xp = _CACHE[name]
    if isinstance(xp, str):
        skip = pytest.skip.Exception(f"{name} unavailable: {xp}")
        skip.xpnet_backend = name
        raise skip
    return xp


BACKENDS = _selected()


def pytest_sessionstart(session):
    """Stop before any test when a backend of ``XPNET_REQUIRE_BACKENDS`` does not load or is not selected, or a
    module of ``XPNET_REQUIRE_EXTRAS`` does not import."""
    for name in _names("XPNET_REQUIRE_BACKENDS"):
        if name not in BACKENDS:
            raise pytest.UsageError(
                f"XPNET_REQUIRE_BACKENDS requires {name!r}, but XPNET_BACKENDS selects only {BACKENDS}"
            )
        _CACHE.setdefault(name, _load(name))
        if isinstance(_CACHE[name], str):
            raise pytest.UsageError(f"required backend {name!r} (XPNET_REQUIRE_BACKENDS) did not load: {_CACHE[name]}")
    for module in _required_extras():
        try:
            importlib.import_module(module)
        except ImportError as err:
            message = f"required module {module!r} (XPNET_REQUIRE_EXTRAS) does not import: {err}"
            raise pytest.UsageError(message) from err


def pytest_collection_modifyitems(items):
    """Label each test that runs on a backend with it (the ``xp`` fixture's parameter), for the JUnit report.

    Set at collection, so a test skipped before its ``xp`` fixture ran (a backend that did not load) is labelled
    too. A test module may override ``xp`` with its own parametrized fixture (tests/test_jax.py): its parameter
    labels the test the same way.
    """
    for item in items:
        name = getattr(item, "callspec", None) and item.callspec.params.get("xp")
        # Only a backend id: an ``xp`` parametrized directly with a namespace object bypasses the fixture.
        if isinstance(name, str) and name in ALL_BACKENDS:
            item.user_properties.append((BACKEND_PROPERTY, name))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    backend = getattr(call.excinfo.value, "xpnet_backend", None) if call.excinfo is not None else None
    if backend is not None and (UNAVAILABLE, backend) not in item.user_properties:
        # Added before the report is built, so this phase's report and the JUnit testcase both carry it.
        item.user_properties.append((UNAVAILABLE, backend))
    return (yield)


def pytest_report_teststatus(report, config):
    if report.skipped and any(key == UNAVAILABLE for key, _ in report.user_properties):
        return UNAVAILABLE_CATEGORY, "s", "SKIPPED"
    return None


def pytest_terminal_summary(terminalreporter):
    """One line per unavailable backend, with the reason it did not load and how many tests it skipped."""
    counts = Counter(
        backend
        for report in terminalreporter.stats.get(UNAVAILABLE_CATEGORY, [])
        for key, backend in report.user_properties
        if key == UNAVAILABLE
    )
    for backend, n in sorted(counts.items()):
        tests = "test" if n == 1 else "tests"
        terminalreporter.write_line(f"backend {backend} unavailable ({_CACHE[backend]}): {n} {tests} skipped")


def _variant_device(name: str, namespace):
    """The device object of a variant (None for a plain backend: its default device)."""
    if name not in DEVICE_VARIANTS:
        return None
    base, device_name = DEVICE_VARIANTS[name]
    if base == "torch":
        import torch

        return torch.device(device_name)
    return namespace.Device(device_name)


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array namespace of one backend (array-api-compat wrapped for numpy, torch and cupy).

    For a device variant the namespace is its backend's (array_api_strict or torch) and ``helpers.DEVICE`` is set to
    the variant's device for the test's duration: ``helpers.to_xp`` creates arrays there, and the ``device``
    fixture returns it.
    """
    namespace = load_backend(request.param)
    token = helpers.DEVICE.set(_variant_device(request.param, namespace))
    yield namespace
    helpers.DEVICE.reset(token)


@pytest.fixture
def device(xp):
    """The device the test creates its arrays and models on (None: the backend's default)."""
    return helpers.DEVICE.get()


@pytest.fixture
def backend(xp):
    """Short name of the backend under test ('numpy', 'torch', ...)."""
    from xpnet._backend import backend_name

    return backend_name(xp)
