"""A restricted unpickler for CIFAR-10's python batches: it builds only what the format holds.

The batches are pickles by format (Python 2 ``cPickle``, protocol 2). A plain ``pickle.load`` of a tampered file
runs any code the file names, so :class:`BatchUnpickler` resolves only the globals a batch names (NumPy's array
reconstruction and dtype) to checked stand-ins defined here, imports no module, and refuses everything else by
name with :class:`Refused`. The caller (:mod:`xpnet.data_utils`) adds the file name to the message.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import re
import reprlib
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

__all__ = ["BatchUnpickler", "PickledArray", "Refused", "scan_opcodes"]


def scan_opcodes(raw):
    """``(ends early, structural error or None)`` for a pickle's opcodes, read without building anything."""
    stream = io.BytesIO(raw)
    try:
        for _ in pickletools.genops(stream):
            pass
    except Exception as err:  # pickletools reports malformed opcodes as ValueError, bad text as UnicodeError
        return stream.tell() >= len(raw), str(err)[:200]
    return False, None


class Refused(Exception):
    """Raised while unpickling for content the format never holds; the caller adds the file name."""


_FORMAT_HOLDS = "a CIFAR-10 batch holds only dicts, lists, bytes, str, ints and NumPy arrays"


class BatchUnpickler(pickle._Unpickler):
    """An unpickler that resolves only the globals a CIFAR-10 batch names, each to a checked stand-in.

    Built on the pure-Python unpickler, which keeps its memo in a dict: the C one sizes an array by the largest
    memo index a file names, so 12 bytes can make it allocate and zero gigabytes.
    """

    def find_class(self, module, name):
        try:
            return _GLOBALS[module, name]
        except KeyError:
            raise Refused(f"refusing to unpickle global {module + '.' + name!r}; {_FORMAT_HOLDS}") from None

    def _refuse_extension(self):
        # EXT opcodes name globals by copyreg code and are served from a process-wide cache, past find_class.
        raise Refused(f"refusing a copyreg extension code; {_FORMAT_HOLDS}")

    dispatch: ClassVar[dict[int, Callable[..., Any]]] = pickle._Unpickler.dispatch.copy()
    for _ext in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_ext[0]] = _refuse_extension
    del _ext


class _Global:
    """What the unpickler gets for an allowed global: a call goes to a checked constructor, pickle state is refused.

    BUILD on a plain function would set attributes on the loader's own objects, for every later load.
    """

    __slots__ = ("name", "_make")

    def __init__(self, name, make):
        self.name, self._make = name, make

    def __call__(self, *args):
        return self._make(*args)

    def __setstate__(self, state):
        raise Refused(f"refusing to set state on {self.name!r}; {_FORMAT_HOLDS}")

    def __repr__(self):
        return self.name


class _PickledDtype:
    """``numpy.dtype(spec)`` from a batch, made by xpnet from a checked spec and state.

    NumPy's own ``dtype.__setstate__`` accepts flags claiming that a uint8 dtype holds Python objects (and then
    reads raw bytes as object pointers), so it never sees a state from a file.
    """

    __slots__ = ("dtype", "has_state")

    def __init__(self, dtype):
        self.dtype, self.has_state = dtype, False

    def __setstate__(self, state):
        # What NumPy writes for a plain numeric dtype: (3, byteorder, None, None, None, -1, -1, 0).
        plain = (3, None, None, None, -1, -1, 0)
        if (
            self.has_state
            or not (isinstance(state, tuple) and len(state) == 8)
            or not all(type(v) is type(p) and v == p for v, p in zip(state[:1] + state[2:], plain, strict=True))
            or not (isinstance(state[1], str) and state[1] in ("<", ">", "|", "="))
        ):
            raise Refused(
                f"refusing NumPy dtype state {reprlib.repr(state)} for {self.dtype}; a CIFAR-10 batch holds only "
                f"plain integer and float arrays"
            )
        if state[1] in "<>":
            self.dtype = self.dtype.newbyteorder(state[1])
        self.has_state = True

    def __repr__(self):
        return f"<NumPy dtype {self.dtype}>"


class PickledArray:
    """An ndarray from a batch: ``_reconstruct(ndarray, (0,), b'b')`` makes it, BUILD fills it from checked bytes."""

    __slots__ = ("array",)

    def __init__(self, array=None):
        self.array = array

    def __setstate__(self, state):
        # (version, shape, dtype, is_fortran, data), version 1; NumPy before 1.0 wrote no version.
        if isinstance(state, tuple) and len(state) == 5 and type(state[0]) is int and state[0] == 1:
            state = state[1:]
        if self.array is not None or not (isinstance(state, tuple) and len(state) == 4):
            raise Refused(
                f"refusing NumPy array state {reprlib.repr(state)}; expected (1, shape, dtype, is_fortran, data)"
            )
        shape, dtype, fortran, data = state
        if type(fortran) not in (bool, int):
            raise Refused(f"refusing NumPy array state: is_fortran must be a bool, got {type(fortran).__name__}")
        self.array = _array_from_bytes(data, dtype, shape, "F" if fortran else "C")

    def __repr__(self):
        return "<NumPy array>"


def _array_from_bytes(data, dtype, shape, order):
    """The array a pickle describes, after checking that its bytes are exactly what dtype and shape need."""
    if not isinstance(dtype, _PickledDtype):
        raise Refused(f"refusing a NumPy array whose dtype is {reprlib.repr(dtype)}, not a numpy.dtype")
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise Refused(f"refusing a NumPy array of shape {reprlib.repr(shape)}: expected a tuple of sizes")
    if isinstance(data, str):
        data = data.encode("latin1")  # a Python 2 str, decoded as latin1 by the unpickler
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise Refused(f"refusing a NumPy array whose data is {type(data).__name__}, not bytes")
    needed = math.prod(shape) * dtype.dtype.itemsize
    if memoryview(data).nbytes != needed:
        raise Refused(
            f"a NumPy array of shape {shape} and dtype {dtype.dtype} needs {needed} bytes, the file holds "
            f"{memoryview(data).nbytes}"
        )
    return np.frombuffer(data, dtype.dtype).reshape(shape, order=order)


def _make_dtype(spec, align=False, copy=True):
    # Only the short numeric specs NumPy pickles ('u1', 'i8', 'f4', 'b1'): no objects, fields or subarrays.
    dtype = None
    if isinstance(spec, str) and re.fullmatch(r"[biuf]\d{1,2}", spec):
        try:
            dtype = np.dtype(spec)
        except TypeError:
            pass
    if dtype is None:
        raise Refused(
            f"refusing NumPy dtype {reprlib.repr(spec)}; a CIFAR-10 batch holds only plain integer and float arrays"
        )
    return _PickledDtype(dtype)


def _reconstruct(subtype, shape, dtype_char):
    # shape and dtype_char are placeholders NumPy always writes as (0,), b'b': the array comes from BUILD.
    if subtype is not _GLOBALS["numpy", "ndarray"]:
        raise Refused(f"numpy.ndarray is the only type a CIFAR-10 batch may reconstruct, got {reprlib.repr(subtype)}")
    return PickledArray()


def _ndarray(*args):
    raise Refused("numpy.ndarray is only allowed as the first argument of numpy.core.multiarray._reconstruct")


def _frombuffer(data, dtype, shape, order):
    # Protocol 5 writes C- or F-contiguous arrays as _frombuffer(buffer, dtype, shape, order).
    if not (isinstance(order, str) and order in ("C", "F")):
        raise Refused(f"refusing NumPy array order {reprlib.repr(order)}; expected 'C' or 'F'")
    return PickledArray(_array_from_bytes(data, dtype, shape, order))


def _scalar(dtype, data):
    return _array_from_bytes(data, dtype, (), "C")[()]


def _codecs_encode(text, encoding):
    # Python 3 writes bytes at protocol 2 as _codecs.encode(latin1_text, 'latin1').
    if not (isinstance(text, str) and isinstance(encoding, str) and encoding == "latin1"):
        raise Refused("_codecs.encode is allowed only as encode(str, 'latin1'), the way Python 3 pickles bytes")
    return text.encode("latin1")


def _empty_bytes():
    # Python 3 writes b'' at protocol 2 as bytes().
    return b""


# Everything a batch may name: the official files use the first three, Python 3 copies the others. NumPy 1 writes
# numpy.core, NumPy 2 numpy._core; both resolve to xpnet's stand-ins, and nothing here imports a module.
_GLOBALS = {
    (module, name): _Global(f"{module}.{name}", make)
    for module, name, make in [
        ("numpy.core.multiarray", "_reconstruct", _reconstruct),
        ("numpy", "ndarray", _ndarray),
        ("numpy", "dtype", _make_dtype),
        ("numpy._core.multiarray", "_reconstruct", _reconstruct),
        ("numpy.core.multiarray", "scalar", _scalar),
        ("numpy._core.multiarray", "scalar", _scalar),
        ("numpy.core.numeric", "_frombuffer", _frombuffer),
        ("numpy._core.numeric", "_frombuffer", _frombuffer),
        ("_codecs", "encode", _codecs_encode),
        ("__builtin__", "bytes", _empty_bytes),
        ("builtins", "bytes", _empty_bytes),
    ]
}
