"""Array checks shared by the layer functions: which arrays, of which real dtypes, promoted to which float.

Every check looks at Python objects, shapes and dtypes only, never at array values, so none costs a device sync.
Each error names the argument, what was expected and what was got. Param dicts and the numbers in them are checked
by :mod:`xpnet._validation`, the one module for scalars, flags and keys.
"""

from __future__ import annotations

from .._backend import device, dtype_name, namespace

__all__ = [
    "array_namespace",
    "float_namespace",
    "float_dtype",
    "promote",
    "as_common_dtype",
]

_PY_SCALARS = (bool, int, float, complex)
# What a layer accepts: real floats, and integers and bools that it promotes (see float_dtype).
_REAL_KINDS = ("bool", "integral", "real floating")


def array_namespace(**arrays):
    """The namespace of the named arrays (``None`` skipped); a TypeError names any argument that is not an array,
    a Python number included (``namespace`` ignores those, but no layer takes one in place of an array)."""
    for name, a in arrays.items():
        if isinstance(a, _PY_SCALARS):
            raise TypeError(f"{name} must be an array (NumPy, CuPy, torch, ...), got {type(a).__name__} {a!r}")
    return namespace(**arrays)


def float_namespace(**arrays):
    """The namespace of the named arrays, each checked to hold real numbers (``None`` skipped): a real floating,
    integer or bool dtype. Complex arrays are refused by name; integer and bool ones are cast by :func:`promote`.
    """
    arrays = {name: a for name, a in arrays.items() if a is not None}
    xp = array_namespace(**arrays)
    for name, a in arrays.items():
        if not xp.isdtype(a.dtype, _REAL_KINDS):
            raise TypeError(
                f"{name} must be an array of real numbers (floating, integer or bool), got {dtype_name(a.dtype)}"
            )
    return xp


def float_dtype(*arrays, xp):
    """The floating dtype a layer computes in for these arrays (at least one).

    It is the standard's result type of the floating arrays (float32 with float64 is float64); integer and bool
    arrays take it, as NumPy promotes them when they meet a float array in CS231n's code (``x + b`` with
    ``b = np.array([0, 128])``). With no floating array at all it is the default float of the first array's
    device, NumPy's float64 for NumPy arrays. One rule on every backend: torch and array_api_strict would raise
    instead, and torch would give float32 where NumPy gives float64. Where NumPy would widen int32/int64 with
    float32 to float64, the float operands' float32 is kept: a float32 model stays float32, also on devices
    without float64.
    """
    floats = [a for a in arrays if xp.isdtype(a.dtype, "real floating")]
    if floats:
        return xp.result_type(*floats)
    return xp.__array_namespace_info__().default_dtypes(device=device(arrays[0]))["real floating"]


def promote(*arrays, xp):
    """The arrays cast to the dtype :func:`float_dtype` gives.

    Elementwise arithmetic promotes floats by itself on every backend, but torch's matmul and in-place updates do
    not, and integer arrays promote differently per backend; casting once at the top gives every layer the same
    result dtype everywhere. Arrays already of that dtype are returned as they are (no copy).
    """
    dtype = float_dtype(*arrays, xp=xp)
    return tuple(a if a.dtype == dtype else xp.astype(a, dtype) for a in arrays)


def as_common_dtype(a, *others, xp):
    """``a`` cast to the :func:`float_dtype` of ``a`` and ``others`` (a float32 or integer dout for a float64
    layer; with no others, ``a`` itself made floating), the others left alone: for backward passes, whose cached
    arrays already share one dtype."""
    dtype = float_dtype(a, *others, xp=xp)
    return a if a.dtype == dtype else xp.astype(a, dtype)
