"""The one module that talks to ``array_api_compat`` and ``array_api_extra``.

Everything else in xpnet gets its array namespace from its inputs (``xp = namespace(x, w)``) and calls only
functions of the Array API standard on it, plus the few helpers here. Keeping the compatibility layer behind this
module means a new backend, or a change in array-api-compat, touches one file.

It owns array-library things only: namespaces, devices, dtypes, host transfers, ``at``, ``pad`` and ``sync``.
Random numbers and seed checks live one floor up, in :mod:`xpnet._random`, and files further up. This
module imports nothing from xpnet, so every other module may import it.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType
from typing import Any

import array_api_compat as _compat
import array_api_extra as _xpx
import numpy as np

# An array of any supported backend (NumPy, CuPy, torch, JAX, array_api_strict) in annotations. No static type
# covers every library's arrays, so this says "an array" to readers and checks nothing.
Array = Any

__all__ = [
    "namespace",
    "load_namespace",
    "get_namespace",
    "backend_name",
    "is_array",
    "device",
    "to_device",
    "to_numpy",
    "asarray",
    "resolve_dtype",
    "dtype_name",
    "max_float_dtype",
    "index_dtype",
    "pad",
    "at",
    "sync",
    "is_host_resident",
    "is_immutable",
    "is_tracing",
]

_SCALARS = (bool, int, float, complex)


def is_array(x: Any) -> bool:
    """True for an array of any supported backend (NumPy, CuPy, torch, array_api_strict, ...)."""
    return _compat.is_array_api_obj(x) and not isinstance(x, np.generic)


def _describe(x: Any) -> str:
    t = type(x)
    return f"{t.__module__}.{t.__qualname__}"


def namespace(*arrays: Any, **named: Any):
    """Array API namespace shared by the arrays given (``None`` and Python scalars are ignored).

    Arrays may be passed by position or by name; names make the errors say which argument is wrong::

        xp = namespace(x=x, w=w, b=b)

    Parameters
    ----------
    *arrays : array
        Arrays by position.
    **named : array
        Arrays by name, which the errors use.

    Returns
    -------
    namespace

    Raises
    ------
    TypeError
        When an input is not an array at all (a list, a NumPy scalar...), naming it if it was passed by name, and
        when the arrays come from different libraries, naming the backends (and the arguments).
    """
    items: list[tuple[str | None, Any]] = [(None, a) for a in arrays]
    items += named.items()
    items = [(n, a) for n, a in items if a is not None and not isinstance(a, _SCALARS)]
    for name, a in items:
        if not is_array(a):
            who = f"{name} must be an array" if name else "expected an array"
            # CS231n's notebooks build arrays with np.asarray([...]); a bare list is the likeliest slip.
            hint = f"; make one with np.asarray({name or '...'})" if isinstance(a, (list, tuple)) else ""
            raise TypeError(f"{who} (NumPy, CuPy, torch, ...), got {_describe(a)}{hint}")
    if not items:
        raise TypeError("expected at least one array to take the array namespace from, got none")
    try:
        return _compat.array_namespace(*(a for _, a in items))
    except TypeError:
        if any(n for n, _ in items):
            kinds = ", ".join(f"{n or 'an array'} is {_describe(a)}" for n, a in items)
        else:
            kinds = ", ".join(sorted({_describe(a) for _, a in items}))
        raise TypeError(
            f"arrays come from different backends ({kinds}); move them to one backend first, "
            "for example with xpnet.to_numpy(...) or xpnet.asarray(..., like=...)"
        ) from None


_MODULE_NAMES = {
    "numpy": "numpy",
    "cupy": "cupy",
    "torch": "torch",
    "array_api_strict": "array_api_strict",
    "jax": "jax.numpy",
}


def load_namespace(xp: Any = None):
    """Array API namespace of a library: ``xp`` is a module (numpy, cupy, torch, array_api_strict, jax or
    jax.numpy), its name, or a namespace; the library is imported if it has not been.

    The result is the array-api-compat wrapped namespace, so ``xp.asarray``, ``xp.matmul``, ``xp.permute_dims``
    ... behave as the standard says on every backend (``jax.numpy`` is returned as is). To get the namespace of
    arrays you hold, use :func:`namespace`.

    Parameters
    ----------
    xp : module, str or namespace, optional
        The library (None: NumPy).

    Returns
    -------
    namespace
    """
    if xp is None:
        xp = "numpy"
    if isinstance(xp, str):
        if xp not in _MODULE_NAMES:
            raise ValueError(f"xp must be one of {sorted(_MODULE_NAMES)} (or the module itself), got {xp!r}")
        try:
            xp = importlib.import_module(_MODULE_NAMES[xp])
        except ImportError as err:
            raise ValueError(f"backend {xp!r} is not installed: {err}") from None
    if isinstance(xp, ModuleType) and xp.__name__ == "jax":
        xp = importlib.import_module("jax.numpy")  # the top-level jax module has no asarray
    if not isinstance(xp, ModuleType) or not hasattr(xp, "asarray"):
        raise TypeError(f"xp must be an array module or namespace such as numpy or cupy, got {_describe(xp)}")
    return _compat.array_namespace(xp.asarray(0.0))


def get_namespace(xp: Any = None):
    """Deprecated name of :func:`load_namespace`; warns ``DeprecationWarning``.

    array-api-compat's ``get_namespace`` takes arrays, this one took a library: the same name with the opposite
    meaning. :func:`load_namespace` takes a library, :func:`namespace` takes arrays.
    """
    warnings.warn(
        "xpnet.get_namespace is deprecated: use xpnet.load_namespace(name_or_module) for a library's namespace "
        "(xpnet.namespace(*arrays) for the namespace of arrays)",
        DeprecationWarning,
        stacklevel=2,
    )
    return load_namespace(xp)


def backend_name(xp: Any) -> str:
    """Short name of a namespace's library: 'numpy', 'cupy', 'torch', 'array_api_strict', ...

    Parameters
    ----------
    xp : namespace or module
        The namespace.

    Returns
    -------
    str
    """
    if _compat.is_numpy_namespace(xp):
        return "numpy"
    if _compat.is_cupy_namespace(xp):
        return "cupy"
    if _compat.is_torch_namespace(xp):
        return "torch"
    if _compat.is_array_api_strict_namespace(xp):
        return "array_api_strict"
    if _compat.is_jax_namespace(xp):
        return "jax"
    return xp.__name__.split(".")[-1]


def device(x: Any):
    """The device an array lives on (works for NumPy arrays too, which have no ``.device`` before NumPy 2)."""
    return _compat.device(x)


def to_device(x: Any, dev: Any):
    """Move ``x`` to device ``dev`` of its own backend."""
    return _compat.to_device(x, dev)


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy (or view) of an array of any backend; NumPy inputs and Python scalars pass through.

    CuPy arrays come back with ``.get()``, torch tensors with ``.detach().cpu().numpy()``, array_api_strict arrays
    via its CPU device, JAX arrays with ``np.asarray`` (a read-only view on CPU, a copy from an accelerator; JAX
    arrays are immutable, so a write to the result raises instead of silently not reaching the array), others
    through DLPack.

    Parameters
    ----------
    x : array or scalar
        Of any backend.

    Returns
    -------
    numpy.ndarray
    """
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (np.generic, *_SCALARS)):
        return np.asarray(x)
    if _compat.is_cupy_array(x):
        return x.get()
    if _compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if _compat.is_jax_array(x):
        return np.asarray(x)
    if not is_array(x):
        raise TypeError(f"to_numpy expects an array, got {_describe(x)}")
    if _compat.is_array_api_strict_namespace(_compat.array_namespace(x)):
        # Its non-default devices (device1, no_float64, ...) stand in for accelerators and refuse NumPy conversion:
        # copy to its CPU device first, as a GPU array is copied to the host.
        x = x.to_device(type(x.device)("CPU_DEVICE"))
    try:
        return np.from_dlpack(x)
    except (TypeError, RuntimeError, BufferError, AttributeError):
        return np.asarray(x)


def resolve_dtype(xp: Any, dtype: Any):
    """The dtype of namespace ``xp`` meant by ``dtype``: a NumPy dtype or type, a name ('float32'), or a dtype of
    ``xp`` itself. ``None`` stays ``None``."""
    if dtype is None:
        return None
    if isinstance(dtype, (str, np.dtype)) or (isinstance(dtype, type) and issubclass(dtype, (np.generic, *_SCALARS))):
        try:
            name = np.dtype(dtype).name
        except TypeError:
            raise TypeError(f"dtype must be a dtype or a dtype name such as 'float32', got {dtype!r}") from None
        if not hasattr(xp, name):
            raise TypeError(f"dtype {name!r} is not available on backend {backend_name(xp)}")
        dtype = getattr(xp, name)
    _check_jax_float64(xp, dtype)
    return dtype


def _jax_without_x64(xp: Any) -> bool:
    """True for jax.numpy while JAX's 64-bit mode is off (its dtypes then have no float64)."""
    return _compat.is_jax_namespace(xp) and "float64" not in xp.__array_namespace_info__().dtypes()


def _check_jax_float64(xp: Any, dtype: Any) -> None:
    """Refuse float64 on JAX without 64-bit mode, where JAX would silently store float32 instead.

    xpnet does not turn the mode on itself: it is a process-wide JAX setting that changes every other JAX user's
    default dtypes, so it is the application's choice.
    """
    if dtype is not None and _jax_without_x64(xp) and dtype_name(dtype) in ("float64", "complex128"):
        raise ValueError(
            f"dtype {dtype_name(dtype)} needs JAX's 64-bit mode, which is off: without it JAX silently stores "
            f"float32. Call jax.config.update('jax_enable_x64', True) at startup (before creating arrays) or "
            f"use dtype='float32'"
        )


def dtype_name(dtype: Any) -> str:
    """'float32', 'float64', 'int64'... for a dtype of any backend (used for portable checkpoints)."""
    text = str(dtype)
    return text.rsplit(".", 1)[-1].removesuffix("'>")


def asarray(obj: Any, *, like: Any = None, xp: Any = None, device: Any = None, dtype: Any = None):
    """Put host data (a NumPy array, list or scalar) on a backend in one transfer.

    Parameters
    ----------
    obj : array_like
        A NumPy array, a list or a scalar.
    like : array, optional
        The target is this array's namespace and device.
    xp : module, str or namespace, optional
        The target namespace, when ``like`` is not given (None: NumPy).
    device : device, optional
        The target device (None: ``like``'s, or ``xp``'s default).
    dtype : dtype or str, optional
        A NumPy dtype, a name or a dtype of the target backend.

    Returns
    -------
    array
        On the target backend and device.
    """
    if like is not None:
        xp = namespace(like)
        device = _compat.device(like) if device is None else device
    else:
        xp = load_namespace(xp)
    dtype = resolve_dtype(xp, dtype)
    if dtype is None and _jax_without_x64(xp):
        _check_jax_float64(xp, getattr(obj, "dtype", None))
    if is_array(obj) and not isinstance(obj, np.ndarray) and namespace(obj) is not xp:
        obj = to_numpy(obj)  # another backend's array (a CuPy checkpoint loaded into torch) goes via the host once
    if isinstance(obj, np.ndarray) and not obj.flags.writeable:
        obj = obj.copy()
    return xp.asarray(obj, dtype=dtype, device=device)


def max_float_dtype(xp: Any, dev: Any = None):
    """float64 where the device supports it (every CPU and CUDA device), float32 otherwise (e.g. Apple MPS)."""
    floats = xp.__array_namespace_info__().dtypes(device=dev, kind="real floating")
    return floats.get("float64", floats.get("float32"))


def index_dtype(xp: Any):
    """The integer dtype for labels and counts: int64, or the backend's default index dtype where int64 is missing
    (int32 on JAX without 64-bit mode, where asking for int64 warns and gives int32 anyway)."""
    ints = xp.__array_namespace_info__().dtypes(kind="signed integer")
    return ints.get("int64", xp.__array_namespace_info__().default_dtypes()["indexing"])


def pad(x: Any, pad_width, *, xp: Any):
    """Zero padding (``array_api_extra.pad``): ``pad_width`` is an int or one ``(before, after)`` pair per axis."""
    return _xpx.pad(x, pad_width, mode="constant", constant_values=0, xp=xp)


class _At:
    """``at(x, idx)``: ``.add(v)`` and ``.set(v)`` through ``array_api_extra.at`` with the namespace known."""

    __slots__ = ("_x", "_idx", "_xp")

    def __init__(self, x: Any, idx: Any, xp: Any):
        self._x, self._idx, self._xp = x, idx, xp

    def add(self, values: Any):
        """``x[idx] += values``; returns the updated array (``x`` itself on a mutable backend)."""
        if _compat.is_torch_array(self._x):
            # Straight to torch's in-place write: array-api-extra's path asks is_jax_array(idx) of the index
            # tuple, which torch.compile cannot trace (a graph break per call).
            self._x[self._idx] += values
            return self._x
        return _xpx.at(self._x, self._idx).add(values, xp=self._xp)

    def set(self, values: Any):
        """``x[idx] = values``; returns the updated array (``x`` itself on a mutable backend)."""
        if _compat.is_torch_array(self._x):
            self._x[self._idx] = values  # as in add: no graph break under torch.compile
            return self._x
        return _xpx.at(self._x, self._idx).set(values, xp=self._xp)


def at(x: Any, idx: Any, *, xp: Any = None) -> _At:
    """Indexed update that works on every backend: ``x = at(x, idx).add(v)`` or ``x = at(x, idx).set(v)``.

    On NumPy, CuPy, torch and array_api_strict ``x`` is updated in place (no copy; measured within noise of
    ``x[idx] += v`` on NumPy); on JAX, whose arrays are immutable, a new array comes back (``x.at[idx].add(v)``).
    Callers must therefore always use the returned array and must not rely on ``x`` changing. ``idx`` is a basic
    index (ints, slices, ``...``); a read-only NumPy array is copied first rather than written.
    """
    return _At(x, idx, namespace(x) if xp is None else xp)


def is_host_resident(x: Any) -> bool:
    """True when ``x`` lives in host memory (NumPy, array_api_strict, torch and JAX on CPU), so reading a value from
    it costs no device synchronisation; False for CuPy arrays, torch tensors and JAX arrays on an accelerator, and
    for JAX tracers (inside ``jax.jit`` no value can be read at all)."""
    if _compat.is_cupy_array(x):
        return False
    if _compat.is_torch_array(x):
        return x.device.type == "cpu"
    if _compat.is_jax_array(x):
        try:
            return all(d.platform == "cpu" for d in x.devices())
        except Exception:  # a tracer under jax.jit has no concrete devices
            return False
    return True


def is_tracing(x: Any = None) -> bool:
    """True while a compiler traces the code that holds ``x``: inside ``torch.compile`` (dynamo), or when ``x`` is
    a JAX tracer (inside ``jax.jit``, ``jax.grad`` ...). There no value can be read from an array without a graph
    break (torch) or an error (JAX), so checks that read values are skipped there; the eager path keeps them.

    Parameters
    ----------
    x : array, optional
        An array of the code being run (needed to recognise a JAX tracer; torch is asked directly).

    Returns
    -------
    bool
    """
    if _compat.is_jax_array(x):
        import jax

        return isinstance(x, jax.core.Tracer)
    if x is None or _compat.is_torch_array(x):
        import sys

        torch = sys.modules.get("torch")  # never import torch just to ask: unimported, nothing can be compiling
        return torch is not None and bool(torch.compiler.is_compiling())
    return False


def is_immutable(x: Any) -> bool:
    """True for arrays that cannot be written in place (JAX): updates must use :func:`at` and its result."""
    return _compat.is_jax_array(x)


def sync(x: Any = None) -> None:
    """Wait for queued device work (CuPy, torch CUDA, JAX's asynchronous dispatch on any device) so that a timer
    measures it; a no-op on NumPy and the other CPU backends."""
    if x is None:
        return
    if _compat.is_jax_array(x):
        import jax

        jax.block_until_ready(x)  # JAX dispatches asynchronously on every device, CPU included
    elif _compat.is_cupy_array(x):
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif _compat.is_torch_array(x) and x.device.type == "cuda":
        import torch

        torch.cuda.synchronize(x.device)
