"""The ``.npz`` container of xpnet's checkpoints and model files: written through :mod:`xpnet._atomic`, read
trusting nothing.

Format: an ``.npz`` (a zip of uncompressed ``.npy`` members, so ``np.load(path)`` opens it) with one more member,
``__xpnet_meta__``, holding a JSON object. No pickle anywhere: object arrays are neither written nor read.

Reading trusts nothing in the file. Every problem is a ``ValueError`` that names the file and what is wrong (a
missing file is a ``FileNotFoundError``): not a zip archive, truncated, damaged member, an ``.npy`` header that
announces more data than its member holds (checked before a byte is allocated), object arrays, and arrays whose
shape or dtype kind differs from the live array they would replace (:func:`check_array`, :class:`Spec`).

This module works on host NumPy arrays; arrays of other backends go through :mod:`xpnet._backend`.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tokenize
import zipfile
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from numpy.lib import format as npy_format

from ._atomic import atomic_write, open_regular
from ._backend import namespace, to_numpy

__all__ = ["META_KEY", "MALFORMED", "Spec", "check_array", "dtype_kind", "read_npz", "write_npz"]

META_KEY = "__xpnet_meta__"
_MAX_HEADER = 10_000  # NumPy's own limit on an .npy header
_CHUNK = 1 << 24
# What zipfile, NumPy's header parser and struct raise on malformed bytes (zipfile raises RuntimeError for an
# encrypted member, NotImplementedError for an unknown compression, UnicodeDecodeError for a bad UTF-8 name; NumPy's
# header parser SyntaxError, tokenize.TokenError or RecursionError for a mangled header dict).
MALFORMED = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,
    ValueError,
    OverflowError,
    SyntaxError,
    tokenize.TokenError,
    RecursionError,
    struct.error,
    KeyError,
    TypeError,
)
_KIND_NAMES = {"f": "floating", "i": "integer", "b": "bool", "c": "complex"}


def dtype_kind(dtype: np.dtype) -> str:
    """'f', 'i', 'b', 'c' for a NumPy dtype (unsigned counts as integer), or its NumPy kind letter."""
    return "i" if dtype.kind == "u" else dtype.kind


def _live_kind(x: Any) -> str:
    """The dtype kind of a live array of any backend."""
    xp = namespace(x=x)
    for kind, name in (("b", "bool"), ("i", "integral"), ("f", "real floating"), ("c", "complex floating")):
        if xp.isdtype(x.dtype, name):
            return kind
    raise TypeError(f"arrays of dtype {x.dtype} cannot be checkpointed")


class Spec(NamedTuple):
    """What an array read from a file must be: its ``shape`` and dtype ``kind`` (``'f'``, ``'i'``, ``'b'``,
    ``'c'``), and ``like``, the live array whose backend, device and dtype it is put on."""

    shape: tuple[int, ...]
    kind: str
    like: Any

    @classmethod
    def of(cls, x: Any, shape: tuple[int, ...] | None = None) -> Spec:
        """The spec of live array ``x`` (with another ``shape`` if given)."""
        return cls(tuple(x.shape) if shape is None else tuple(shape), _live_kind(x), x)


def check_array(a: np.ndarray, shape: tuple[int, ...], kind: str, *, file: str, key: str, what: str, like: str):
    """``ValueError`` unless ``a`` has ``shape`` and dtype kind ``kind``; ``like`` describes the expected dtype."""
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{file}: {what} has shape {tuple(a.shape)}, the model's is {tuple(shape)} (array {key!r})")
    if dtype_kind(a.dtype) != kind:
        raise ValueError(
            f"{file}: {what} has dtype {a.dtype} ({_KIND_NAMES.get(dtype_kind(a.dtype), a.dtype.kind)}), the "
            f"model's is {like} ({_KIND_NAMES[kind]}) (array {key!r})"
        )


def write_npz(path, arrays: Mapping[str, Any], meta: Mapping | None = None) -> None:
    """Write ``arrays`` (any backend; copied to the host) and a JSON-able ``meta`` to one ``.npz`` at ``path``.

    Atomic and durable (:func:`xpnet._atomic.atomic_write`); missing folders are created. Raises ``TypeError`` for
    an object array or a meta that JSON cannot hold, ``ValueError`` for a bad array name, ``OSError`` from the disk.
    """
    host = {}
    for name, a in arrays.items():
        if not isinstance(name, str) or not name or name == META_KEY:
            raise ValueError(f"array names must be non-empty strings other than {META_KEY!r}, got {name!r}")
        host[name] = np.asarray(to_numpy(a))
        if host[name].dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object; xpnet files hold numbers only (no pickle)")
    host[META_KEY] = np.asarray(json.dumps(dict(meta or {})))
    with atomic_write(path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in host.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                npy_format.write_array(member, a, allow_pickle=False)


class _Member(NamedTuple):
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    header_size: int


def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, file: str, size: int) -> _Member:
    """Parse and check one member's ``.npy`` header: reading its data later allocates exactly what it holds."""
    if info.flag_bits & 0x1:
        raise ValueError(f"{file}: array {name!r} is encrypted; xpnet files are plain zip archives")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{file}: array {name!r} is compressed; xpnet files store arrays uncompressed")
    if info.file_size != info.compress_size or not 0 <= info.header_offset <= size - info.compress_size:
        raise ValueError(
            f"{file}: array {name!r} claims {info.file_size} bytes, more than the file holds (truncated or damaged)"
        )
    try:
        with zf.open(info) as fp:
            version = npy_format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = npy_format.read_array_header_1_0(fp, max_header_size=_MAX_HEADER)
            elif version == (2, 0):
                shape, fortran, dtype = npy_format.read_array_header_2_0(fp, max_header_size=_MAX_HEADER)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]}; xpnet reads 1.0 and 2.0")
            header_size = fp.tell()
    except MALFORMED as err:
        raise ValueError(f"{file}: array {name!r} is damaged; reading its .npy header gave: {err}") from None
    if dtype.hasobject:
        raise ValueError(
            f"{file}: array {name!r} holds Python objects (dtype {dtype}); object (pickle) arrays are refused, "
            "xpnet files hold numbers only"
        )
    if dtype.names is not None or dtype.subdtype is not None or dtype.kind not in "biufcU":
        raise ValueError(f"{file}: array {name!r} has dtype {dtype}; xpnet files hold plain numeric arrays")
    if any(d < 0 for d in shape):
        raise ValueError(f"{file}: array {name!r} has a damaged .npy header (shape {shape})")
    need, have = math.prod(shape) * dtype.itemsize, info.file_size - header_size
    if need != have:
        relation = "more" if need > have else "less"
        raise ValueError(
            f"{file}: array {name!r} is damaged: its header claims shape {shape} of {dtype} ({need} bytes), "
            f"{relation} data than the member holds ({have} bytes)"
        )
    return _Member(info, tuple(shape), bool(fortran), dtype, header_size)


def _read_member(zf: zipfile.ZipFile, member: _Member, name: str, file: str) -> np.ndarray:
    """The array of a checked member; reading to its end makes zipfile verify the member's CRC-32."""
    need = math.prod(member.shape) * member.dtype.itemsize
    buf = bytearray(need)
    got = 0
    try:
        with zf.open(member.info) as fp:
            fp.read(member.header_size)
            while got < need:
                chunk = fp.read(min(need - got, _CHUNK))
                if not chunk:
                    break
                buf[got : got + len(chunk)] = chunk
                got += len(chunk)
            extra = fp.read(1)
    except MALFORMED as err:
        raise ValueError(f"{file}: array {name!r} is damaged ({err})") from None
    if got != need or extra:
        raise ValueError(f"{file}: array {name!r} is truncated or damaged ({got} of {need} bytes)")
    a = np.frombuffer(buf, dtype=member.dtype).reshape(member.shape, order="F" if member.fortran else "C")
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def _open_zip(fh, file: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh)
    except MALFORMED + (OSError,) as err:
        fh.seek(0)
        head = fh.read(4)
        if not head:
            raise ValueError(f"{file}: not a zip archive (an xpnet .npz file); the file is empty") from None
        if head == b"PK\x03\x04":
            detail = "its end-of-archive record is missing" if str(err) == "File is not a zip file" else err
            raise ValueError(f"{file}: truncated or damaged zip archive ({detail})") from None
        raise ValueError(f"{file}: not a zip archive (an xpnet .npz file)") from None


def _parse_meta(text: str, file: str) -> dict:
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{file}: metadata is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{file}: metadata must be a JSON object, got {type(meta).__name__}")
    return meta


def read_npz(path, check_meta: Callable[[dict, str], None] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`write_npz`: ``(arrays as NumPy arrays, meta dict)`` (``{}`` if none).

    ``check_meta(meta, file)``, if given, runs before any array is read: a file of the wrong kind costs no reading.
    """
    file = os.fspath(path)
    with open_regular(file) as fh:
        size = os.fstat(fh.fileno()).st_size
        with _open_zip(fh, file) as zf:
            members: dict[str, _Member] = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise ValueError(f"{file}: member {info.filename!r} is not an .npy array")
                name = info.filename[: -len(".npy")]
                if name in members:
                    raise ValueError(f"{file}: array {name!r} appears twice")
                members[name] = _member_header(zf, info, name, file, size)
            meta: dict = {}
            if META_KEY in members:
                member = members.pop(META_KEY)
                if member.dtype.kind != "U" or member.shape != ():
                    raise ValueError(f"{file}: metadata is damaged (a {member.dtype} array of shape {member.shape})")
                meta = _parse_meta(str(_read_member(zf, member, META_KEY, file)[()]), file)
            if check_meta is not None:
                check_meta(meta, file)
            arrays = {}
            for name, member in members.items():
                if member.dtype.kind == "U":
                    raise ValueError(f"{file}: array {name!r} holds text; xpnet files hold numeric arrays")
                arrays[name] = _read_member(zf, member, name, file)
    return arrays, meta
