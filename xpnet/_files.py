"""The one door for files: xpnet's checkpoints and model files are written, read and verified here.

Format: an ``.npz`` (a zip of uncompressed ``.npy`` members, so ``np.load(path)`` opens it) with one more member,
``__xpnet_meta__``, holding a JSON object. No pickle anywhere: object arrays are neither written nor read.

Writing is atomic and durable. The file is written beside its target as ``.{name}.tmp-<16 hex digits>``, flushed
to disk, renamed over the target, and the folder is synced so that the rename survives a power cut: a crash leaves
the old file or the new one, never a mix. A crash can leave the temporary file; the next successful save of the
same target removes it (and only temporary files of that target). Several processes may save one target at once:
each holds an exclusive ``flock`` on its temporary file from creating it until it is renamed, the kernel drops the
lock when its process dies, and a save removes only the temporaries whose lock it can take, so never a live
writer's (the last rename wins; each is a complete file). Files are created like any other file the user writes:
mode 0o666 less the umask.

Reading trusts nothing in the file. Every problem is a ``ValueError`` that names the file and what is wrong (a
missing file is a ``FileNotFoundError``): not a zip archive, truncated, damaged member, an ``.npy`` header that
announces more data than its member holds (checked before a byte is allocated), object arrays, missing metadata
keys or keys of the wrong type, missing arrays, and arrays whose shape or dtype kind differs from the live array
they would replace. Callers get everything verified first and change their state afterwards.

This module works on host NumPy arrays; arrays of other backends go through :mod:`xpnet._backend`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import stat
import struct
import sys
import tokenize
import zipfile
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from numpy.lib import format as npy_format

try:
    import fcntl
except ImportError:  # Windows: it deletes no open file, so another writer's temporary survives a clean-up anyway
    fcntl = None  # type: ignore[assignment]

from ._backend import asarray, dtype_name, is_array, namespace, to_numpy
from ._random import rng_from_state, rng_state

__all__ = [
    "Spec",
    "write_npz",
    "read_npz",
    "write_checkpoint",
    "read_checkpoint",
    "write_model",
    "read_model",
    "SavedModel",
    "check_array",
    "check_keys",
    "check_writable",
    "apply_global_rng",
    "open_regular",
]

META_KEY = "__xpnet_meta__"
ARRAY_TAG = "__array__"
CHECKPOINT_FORMAT, CHECKPOINT_VERSION = "xpnet.solver", 1
MODEL_FORMAT, MODEL_VERSION = "xpnet.model", 1
PARAMS_PREFIX, STATE_PREFIX = "params.", "state."
_WHAT = {
    CHECKPOINT_FORMAT: ("xpnet Solver checkpoint (written by Solver.save_checkpoint)", "checkpoint version"),
    MODEL_FORMAT: ("xpnet model file (written by model.save)", "model file version"),
}
_TMP_INFIX = ".tmp-"
_MAX_HEADER = 10_000  # NumPy's own limit on an .npy header
_CHUNK = 1 << 24
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX only; Windows has no FIFOs that block open()
# What zipfile, NumPy's header parser and struct raise on malformed bytes (zipfile raises RuntimeError for an
# encrypted member, NotImplementedError for an unknown compression, UnicodeDecodeError for a bad UTF-8 name; NumPy's
# header parser SyntaxError, tokenize.TokenError or RecursionError for a mangled header dict).
_MALFORMED = (
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


def _kind(dtype: np.dtype) -> str:
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


# Writing


def _temp_pattern(base: str) -> re.Pattern:
    return re.compile(re.escape(f".{base}{_TMP_INFIX}") + "[0-9a-f]{16}")


def _lock(fd: int, *, wait: bool) -> bool:
    """Take an exclusive ``flock`` on ``fd`` (held until every descriptor of its open file is closed); False when
    another holds it and ``wait`` is off. Where the file system has no flock, False without ``wait`` (no temporary
    can be proven stale) and True with it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS):
            return wait
        raise
    return True


# File systems without locks (some network mounts) get no mutual exclusion rather than no download or sweep.
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


def try_lock(fd: int) -> bool:
    """Take an exclusive lock on the open file ``fd`` without waiting (a download's or a sweep's lock file): False
    when another process holds it, True once held or where the file system has no locks. The lock goes with the
    process, so a killed holder leaves none behind."""
    if sys.platform == "win32":  # spelled so that type checkers know which branch this platform takes
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in _NO_LOCKS:
            return True
        raise


def _same_file(path: str, fd: int) -> bool:
    """Whether ``path`` still names the open file ``fd`` (not removed, not replaced)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (opened.st_dev, opened.st_ino)


def _create_temp(folder: str, base: str) -> tuple[int, str]:
    """A new, empty temporary file for target ``base`` in ``folder``, locked for its writer: ``(fd, path)``. The
    lock lasts until ``fd`` is closed: keep it open until the file is renamed.

    Created with mode 0o666 so that the kernel applies the umask, as for any file the user writes (``mkstemp``
    would make it 0o600); reading the umask is never needed, which would be racy in a threaded program.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}{_TMP_INFIX}{secrets.token_hex(8)}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            _lock(fd, wait=True)
            # Another save's clean-up may have taken the lock and removed the file between its creation and the
            # lock: then start again with a new name.
            if _same_file(tmp, fd):
                return fd, tmp
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise FileExistsError(errno.EEXIST, f"could not create a temporary file for {base!r} in {folder!r}")


def _sync_folder(folder: str) -> None:
    """fsync ``folder`` so that a rename in it is on disk; skipped where the OS cannot sync a folder."""
    if os.name == "nt":  # Windows cannot open a folder as a file; NTFS journals the rename itself
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # a folder we may write but not read (mode -wx): nothing more can be done
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):  # file systems without folder sync
            raise
    finally:
        os.close(fd)


def _remove_stale_temps(folder: str, base: str) -> None:
    """Remove temporary files that earlier, crashed saves of ``base`` left in ``folder`` (and no others): those
    whose lock can be taken, so never the temporary of a save still running in another process or thread."""
    pattern = _temp_pattern(base)
    with os.scandir(folder) as entries:
        candidates = [entry.path for entry in entries if pattern.fullmatch(entry.name)]
    for path in candidates:
        if fcntl is None:  # Windows: a live writer's file is open, and an open file cannot be deleted
            with contextlib.suppress(FileNotFoundError, PermissionError):
                os.unlink(path)
            continue
        try:
            fd = os.open(path, os.O_RDONLY | _NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:  # gone already, a symbolic link, or not ours to read: leave it
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd, wait=False) and _same_file(path, fd):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(fd)


def write_npz(path, arrays: Mapping[str, Any], meta: Mapping | None = None) -> None:
    """Write ``arrays`` (any backend; copied to the host) and a JSON-able ``meta`` to one ``.npz`` at ``path``.

    Atomic and durable (see the module docstring); missing folders are created. Raises ``TypeError`` for an
    object array or a meta that JSON cannot hold, ``ValueError`` for a bad array name, ``OSError`` from the disk.
    """
    file = os.fspath(path)
    host = {}
    for name, a in arrays.items():
        if not isinstance(name, str) or not name or name == META_KEY:
            raise ValueError(f"array names must be non-empty strings other than {META_KEY!r}, got {name!r}")
        host[name] = np.asarray(to_numpy(a))
        if host[name].dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object; xpnet files hold numbers only (no pickle)")
    host[META_KEY] = np.asarray(json.dumps(dict(meta or {})))
    folder, base = os.path.split(os.path.abspath(file))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = _create_temp(folder, base)
    # POSIX: fd, and with it the lock that keeps other saves' clean-up away, stays open until the rename is done.
    # Windows renames no open file, and deletes none either, so there it is closed first.
    keep_open = os.name != "nt"
    try:
        try:
            with os.fdopen(fd, "wb", closefd=not keep_open) as fh:
                with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                    for name, a in host.items():
                        with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                            npy_format.write_array(member, a, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, file)
        finally:
            if keep_open:
                os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _sync_folder(folder)
    _remove_stale_temps(folder, base)


def check_writable(prefix, *, name: str, suffix: str = "") -> None:
    """Make sure a file named ``f"{prefix}{suffix}"`` can be written later: create its folder (and missing parents)
    if needed, then create and remove a temporary file there. Raises ``TypeError`` unless ``prefix`` is a str or
    ``os.PathLike``, and an ``OSError`` (of the errno's subclass) naming ``name`` when the folder cannot be written."""
    if not isinstance(prefix, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(prefix).__name__}")
    file = os.fspath(prefix) + suffix
    folder, base = os.path.split(os.path.abspath(file))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = _create_temp(folder, base)
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):  # another save's clean-up may have removed it already
            os.unlink(tmp)
    except OSError as err:
        # makedirs(exist_ok=True) says "File exists" when the folder's name is taken by a file.
        reason = "it is a file, not a folder" if isinstance(err, FileExistsError) else err.strerror or err
        message = f"{name} {os.fspath(prefix)!r}: cannot write files in folder {folder!r}: {reason}"
        raise (OSError(err.errno, message) if err.errno else OSError(message)) from None


# Reading


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
    except _MALFORMED as err:
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
    except _MALFORMED as err:
        raise ValueError(f"{file}: array {name!r} is damaged ({err})") from None
    if got != need or extra:
        raise ValueError(f"{file}: array {name!r} is truncated or damaged ({got} of {need} bytes)")
    a = np.frombuffer(buf, dtype=member.dtype).reshape(member.shape, order="F" if member.fortran else "C")
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def _open_zip(fh, file: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh)
    except _MALFORMED + (OSError,) as err:
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


_FILE_TYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_regular(mode: int, file: str) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_TYPES if test(mode)), "not a plain file")
        raise ValueError(f"{file}: expected a regular file (an xpnet .npz file), got {kind}")


def open_regular(path):
    """The regular file at ``path``, opened for binary reading; never waits on a FIFO or a device.

    A FIFO in place of a file would block ``open()`` until a writer comes, and a device such as ``/dev/zero`` reads
    forever, so the file type is checked before opening and again on the opened descriptor (the path may be
    replaced in between; ``O_NONBLOCK`` keeps that open from waiting). Raises ``FileNotFoundError`` naming a
    missing file and ``ValueError`` naming a folder, FIFO, device or socket.
    """
    file = os.fspath(path)
    try:
        _check_regular(os.stat(file).st_mode, file)
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0) | _NONBLOCK)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"no such file: {file!r}") from None
    try:
        _check_regular(os.fstat(fd).st_mode, file)
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read(path, check_meta: Callable[[dict, str], None]) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays and metadata of the file at ``path``; ``check_meta(meta, file)`` runs before any array is read."""
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
            check_meta(meta, file)
            arrays = {}
            for name, member in members.items():
                if member.dtype.kind == "U":
                    raise ValueError(f"{file}: array {name!r} holds text; xpnet files hold numeric arrays")
                arrays[name] = _read_member(zf, member, name, file)
    return arrays, meta


def read_npz(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read any file written by :func:`write_npz`: ``(arrays as NumPy arrays, meta dict)`` (``{}`` if none)."""
    return _read(path, lambda meta, file: None)


# Metadata


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_rng_state(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("global"), bool) and isinstance(v.get("state"), dict)


_COUNT = (lambda v: _is_int(v) and v >= 0, "an int >= 0")
_POSITIVE = (lambda v: _is_int(v) and v >= 1, "an int >= 1")
_REAL = (_is_real, "a number")
_REALS = (lambda v: isinstance(v, list) and all(_is_real(x) for x in v), "a list of numbers")
_ACCURACY = (lambda v: _is_real(v) and 0 <= v <= 1, "a number in [0, 1]")
_ACCURACIES = (lambda v: isinstance(v, list) and all(_ACCURACY[0](x) for x in v), "a list of numbers in [0, 1]")
_STR = (lambda v: isinstance(v, str), "a str")
_DICT = (lambda v: isinstance(v, dict), "a dict")
_CHECKPOINT_META = {
    "backend": _STR,
    "update_rule": _STR,
    "epoch": _COUNT,
    "iteration": _COUNT,
    "iterations_per_epoch": _POSITIVE,
    "best_val_acc": _ACCURACY,
    "loss_history": _REALS,  # NaN or inf may end it: a run stopped by a non-finite loss
    "train_acc_history": _ACCURACIES,
    "val_acc_history": _ACCURACIES,
    "sampler": (lambda v: v is None or (_is_rng_state(v) and not v["global"]), "null or a Generator's state"),
    "numpy_global_rng": (lambda v: _is_rng_state(v) and v["global"], "NumPy's global random state"),
    "model_state_kind": (lambda v: v in (None, "get_state", "bn_params"), "null, 'get_state' or 'bn_params'"),
    "tree": _DICT,
}
_CHECKPOINT_TREE = {
    "params": _DICT,
    "best_params": _DICT,
    "optim_configs": _DICT,
    "model_state": (lambda v: True, "anything"),
    "best_model_state": (lambda v: True, "anything"),
}
_MODEL_META = {"class": _STR, "config": _DICT}
# Scalars the update rules of xpnet.optim keep in their configs; other keys (custom rules) may hold any JSON value.
# The state arrays of xpnet.optim's rules: an array shaped like the param, or None (zeros at the next step).
_OPTIM_STATE = ("velocity", "cache", "m", "v")
_OPTIM_SCALARS = {
    "t": _COUNT,
    **dict.fromkeys(
        ("learning_rate", "momentum", "decay_rate", "beta1", "beta2", "epsilon"),
        (lambda v: _is_real(v) and math.isfinite(v), "a finite number"),
    ),
}


def _check_schema(node: dict, schema: dict, file: str, prefix: str = "") -> None:
    for key, (ok, expected) in schema.items():
        if key not in node:
            raise ValueError(f"{file}: metadata has no key {prefix + key!r}; the file is damaged or hand-edited")
        if not ok(node[key]):
            raise ValueError(f"{file}: metadata key {prefix + key!r} must be {expected}, got {node[key]!r:.80}")


def _format_checker(fmt: str, version: int, schema: dict) -> Callable[[dict, str], None]:
    what, version_name = _WHAT[fmt]

    def check(meta: dict, file: str) -> None:
        if not meta:
            raise ValueError(f"{file}: not an {what}: it has no xpnet metadata")
        if meta.get("format") != fmt:
            raise ValueError(f"{file}: not an {what}: its format is {meta.get('format')!r}")
        _check_schema(meta, {"version": _COUNT}, file)
        if meta["version"] > version:
            raise ValueError(f"{file} has {version_name} {meta['version']}; this xpnet reads up to {version}")
        _check_schema(meta, schema, file)

    return check


def check_keys(mapping: Mapping, accepted, *, file: str, what: str, owner: str) -> None:
    """``ValueError`` naming ``file`` when ``mapping`` (``what``, e.g. "config") has keys outside ``accepted`` or
    lacks some of them; ``owner`` (e.g. "a FullyConnectedNet") is who accepts them."""
    unknown, missing = sorted(set(mapping) - set(accepted)), sorted(set(accepted) - set(mapping))
    if unknown:
        raise ValueError(f"{file}: {what} has unknown key(s) {unknown}; {owner} accepts {sorted(accepted)}")
    if missing:
        raise ValueError(f"{file}: {what} is missing key(s) {missing}; {owner} needs {sorted(accepted)}")


# Arrays against what they replace


def check_array(a: np.ndarray, shape: tuple[int, ...], kind: str, *, file: str, key: str, what: str, like: str):
    """``ValueError`` unless ``a`` has ``shape`` and dtype kind ``kind``; ``like`` describes the expected dtype."""
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{file}: {what} has shape {tuple(a.shape)}, the model's is {tuple(shape)} (array {key!r})")
    if _kind(a.dtype) != kind:
        raise ValueError(
            f"{file}: {what} has dtype {a.dtype} ({_KIND_NAMES.get(_kind(a.dtype), a.dtype.kind)}), the model's is "
            f"{like} ({_KIND_NAMES[kind]}) (array {key!r})"
        )


def _tag(node: Any) -> str | None:
    """The array key of a packed array, ``None`` for any other node."""
    if isinstance(node, dict) and set(node) == {ARRAY_TAG} and isinstance(node[ARRAY_TAG], str):
        return node[ARRAY_TAG]
    return None


def _take(node: Any, arrays: dict, spec: Spec, file: str, what: str):
    """The checked array of packed ``node``, on ``spec.like``'s backend, device and dtype."""
    key = _tag(node)
    if key is None:
        raise ValueError(f"{file}: {what} must be an array, the metadata has {node!r:.60}")
    if key not in arrays:
        raise ValueError(f"{file}: missing array {key!r} ({what})")
    check_array(arrays[key], spec.shape, spec.kind, file=file, key=key, what=what, like=dtype_name(spec.like.dtype))
    return asarray(arrays[key], like=spec.like, dtype=spec.like.dtype)


def _named(
    node: Any,
    arrays: dict,
    specs: dict[str, Spec],
    file: str,
    what: str,
    *,
    complete: bool,
    label: Callable[[str], str] | None = None,
) -> dict:
    """A dict of checked arrays named among ``specs`` (all of them when ``complete``); ``label(name)`` names one
    in messages (``what[name]`` by default)."""
    if not isinstance(node, dict):
        raise ValueError(f"{file}: {what} must be a dict of arrays, the metadata has {node!r:.60}")
    unknown = sorted(set(node) - set(specs))
    if unknown or (complete and set(node) != set(specs)):
        raise ValueError(f"{file}: {what} holds {sorted(node)}, the model has {sorted(specs)}")
    label = label or (lambda name: f"{what}[{name!r}]")
    return {name: _take(value, arrays, specs[name], file, label(name)) for name, value in node.items()}


def _any_arrays(node: Any, arrays: dict, spec: Spec, file: str, what: str) -> Any:
    """A custom update rule's value: JSON scalars and lists, any array in it checked against ``spec``."""
    if _tag(node) is not None:
        return _take(node, arrays, spec, file, what)
    if isinstance(node, dict):
        return {k: _any_arrays(v, arrays, spec, file, f"{what}[{k!r}]") for k, v in node.items()}
    if isinstance(node, list):
        return [_any_arrays(v, arrays, spec, file, f"{what}[{i}]") for i, v in enumerate(node)]
    return node


def _optim_configs(node: dict, arrays: dict, specs: dict[str, Spec], file: str) -> dict:
    """Every param's optimizer config: state arrays match their param; xpnet.optim's scalars have their types."""
    if set(node) != set(specs):
        raise ValueError(f"{file}: optim_configs holds configs for {sorted(node)}, the model has {sorted(specs)}")
    configs = {}
    for name, config in node.items():
        what = f"optim_configs[{name!r}]"
        if not isinstance(config, dict) or _tag(config) is not None:
            raise ValueError(f"{file}: {what} must be a dict, the metadata has {config!r:.60}")
        for key, (ok, expected) in _OPTIM_SCALARS.items():
            if key in config and not ok(config[key]):
                raise ValueError(f"{file}: {what}[{key!r}] must be {expected}, got {config[key]!r:.60}")
        for key in _OPTIM_STATE:
            if config.get(key) is not None and _tag(config[key]) is None:
                raise ValueError(f"{file}: {what}[{key!r}] must be an array or null, got {config[key]!r:.60}")
        configs[name] = {k: _any_arrays(v, arrays, specs[name], file, f"{what}[{k!r}]") for k, v in config.items()}
    return configs


def _model_state(node: Any, arrays: dict, kind: str | None, specs: Any, file: str, what: str) -> Any:
    """A model state of ``kind`` checked against ``specs`` (name -> Spec, or one such dict per bn_params dict)."""
    if node is None:
        return None
    if kind == "get_state":
        return _named(node, arrays, specs, file, what, complete=False)
    if kind == "bn_params":
        if not isinstance(node, list) or len(node) != len(specs):
            raise ValueError(f"{file}: {what} must be a list of {len(specs)} bn_params dicts, got {node!r:.60}")
        return [
            _named(d, arrays, s, file, f"{what} bn_params[{i}]", complete=False)
            for i, (d, s) in enumerate(zip(node, specs, strict=True))
        ]
    raise ValueError(f"{file}: {what} is present, but the model keeps no state")


def _check_finite(node: Any, arrays: dict, file: str, what: str) -> None:
    """``ValueError`` naming ``file`` and the array when an array packed in ``node`` (already checked to exist)
    holds NaN or inf."""
    key = _tag(node)
    if key is not None:
        a = arrays[key]
        if _kind(a.dtype) in "fc" and not np.all(np.isfinite(a)):
            raise ValueError(
                f"{file}: {what} holds non-finite values (NaN or inf) in array {key!r}; the Solver never keeps "
                "params or model state that are not finite as the best ones, so the file is damaged or hand-edited"
            )
    elif isinstance(node, dict):
        for value in node.values():
            _check_finite(value, arrays, file, what)
    elif isinstance(node, list):
        for value in node:
            _check_finite(value, arrays, file, what)


def _pack(obj: Any, arrays: dict, path: str) -> Any:
    """JSON skeleton of ``obj`` (nested dicts and lists of arrays and scalars); its arrays go into ``arrays``."""
    if is_array(obj):
        key = path if path not in arrays else f"{path}#{len(arrays)}"
        arrays[key] = obj
        return {ARRAY_TAG: key}
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise TypeError(f"cannot checkpoint {path}: dict keys must be strings, got {bad!r}")
        return {k: _pack(v, arrays, f"{path}/{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if getattr(obj, "shape", None) == () and hasattr(obj, "item"):  # a NumPy scalar such as np.float64
        return obj.item()
    raise TypeError(f"cannot checkpoint {path}: {type(obj).__name__} is neither an array nor a JSON scalar")


# Solver checkpoints


def write_checkpoint(path, *, trees: dict[str, Any], meta: dict) -> None:
    """Write a Solver checkpoint: ``trees`` maps ``params``, ``best_params``, ``optim_configs``, ``model_state``
    and ``best_model_state`` to nested dicts/lists of arrays and JSON scalars; ``meta`` holds the JSON scalars."""
    arrays: dict = {}
    prefixes = {"optim_configs": "optim"}
    tree = {name: _pack(value, arrays, prefixes.get(name, name)) for name, value in trees.items()}
    write_npz(path, arrays, {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **meta, "tree": tree})


def read_checkpoint(path, *, params: dict, state_kind: str | None, state_specs: Any) -> dict:
    """Read and verify a checkpoint written by :func:`write_checkpoint` for a model with live ``params``.

    ``state_kind`` and ``state_specs`` describe the model's non-trainable state: ``'get_state'`` with a dict
    name -> :class:`Spec`, ``'bn_params'`` with one such dict per ``bn_params`` dict, or ``None``.

    Returns the metadata with ``params``, ``best_params``, ``optim_configs``, ``model_state`` and
    ``best_model_state`` as arrays on the params' backend and device, and ``sampler`` as a NumPy ``Generator`` (or
    ``None``). Every array has the shape and dtype kind of what it replaces. Changes nothing: NumPy's global random
    state in the file is only tried (``apply_global_rng`` applies it). Raises ``ValueError`` naming the file.
    """
    arrays, meta = _read(path, _format_checker(CHECKPOINT_FORMAT, CHECKPOINT_VERSION, _CHECKPOINT_META))
    file = os.fspath(path)
    tree = meta["tree"]
    _check_schema(tree, _CHECKPOINT_TREE, file, prefix="tree/")
    specs = {name: Spec.of(p) for name, p in params.items()}
    out = dict(meta)
    new_params = _named(tree["params"], arrays, specs, file, "params", complete=True, label=lambda n: f"param {n!r}")
    out["params"] = {name: new_params[name] for name in params}
    best = tree["best_params"]
    out["best_params"] = _named(best, arrays, specs, file, "best_params", complete=bool(best))
    out["optim_configs"] = _optim_configs(tree["optim_configs"], arrays, specs, file)
    if meta["model_state_kind"] not in (None, state_kind):
        raise ValueError(
            f"{file} holds model state of kind {meta['model_state_kind']!r}, but the model exposes "
            f"{state_kind!r}; resume with the same kind of model"
        )
    kind = meta["model_state_kind"]
    if kind is not None:
        # The Solver saves the state whenever the model has some, and the best state together with best params.
        if tree["model_state"] is None:
            raise ValueError(f"{file}: metadata key 'tree/model_state' is null, but the model_state_kind is {kind!r}")
        if (tree["best_model_state"] is None) != (not best):
            raise ValueError(f"{file}: best_model_state and best_params must be saved together (one of them is empty)")
    out["model_state"] = _model_state(tree["model_state"], arrays, kind, state_specs, file, "model state")
    out["best_model_state"] = _model_state(
        tree["best_model_state"], arrays, kind, state_specs, file, "best model state"
    )
    # The Solver never makes params or state best unless every array is finite (README, Reliability).
    _check_finite(tree["best_params"], arrays, file, "best_params")
    _check_finite(tree["best_model_state"], arrays, file, "best model state")
    out["sampler"] = _rng(meta["sampler"], file, "sampler")
    saved = rng_state(None)
    try:
        _rng(meta["numpy_global_rng"], file, "numpy_global_rng")  # tried on the global state...
    finally:
        rng_from_state(saved)  # ...and put back: the caller applies it once everything is verified
    return out


def _int_in(low: int, high: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_int(v) and low <= v <= high), f"an int in [{low}, {high}]"


def _uint_array(bits: int, n: int) -> tuple[Callable[[Any], bool], str]:
    """A NumPy array of ``n`` uint``bits`` values as :func:`xpnet._backend.rng_state` writes it."""

    def ok(v: Any) -> bool:
        if not (isinstance(v, dict) and set(v) == {"__ndarray__", "dtype"} and v["dtype"] == f"uint{bits}"):
            return False
        values = v["__ndarray__"]
        return isinstance(values, list) and len(values) == n and all(_is_int(x) and 0 <= x < 2**bits for x in values)

    return ok, f"an array of {n} uint{bits} values ({{'__ndarray__': [...], 'dtype': 'uint{bits}'}})"


_SPARE_UINT32: dict[str, Any] = {"has_uint32": _int_in(0, 1), "uinteger": _int_in(0, 2**32 - 1)}
_PCG_STATE: dict[str, Any] = {
    "state": {
        "state": _int_in(0, 2**128 - 1),
        # NumPy makes the increment (inc << 1) | 1: an even one is no state it writes.
        "inc": (lambda v: _is_int(v) and 0 < v < 2**128 and v % 2 == 1, "an odd int in [1, 2**128)"),
    },
    **_SPARE_UINT32,
}
# Every field of every bit generator state xpnet accepts, with the values NumPy itself can produce. NumPy does not
# range-check what it is given: an MT19937 ``pos`` past its 624 words, or a Philox ``buffer_pos`` below 0, makes the
# next draws read memory outside the state (and large draws crash the process).
_BIT_GENERATOR_STATES: dict[str, dict[str, Any]] = {
    "MT19937": {"state": {"key": _uint_array(32, 624), "pos": _int_in(0, 624)}},
    "PCG64": _PCG_STATE,
    "PCG64DXSM": _PCG_STATE,
    "Philox": {
        "state": {"counter": _uint_array(64, 4), "key": _uint_array(64, 2)},
        "buffer": _uint_array(64, 4),
        "buffer_pos": _int_in(0, 4),
        **_SPARE_UINT32,
    },
    "SFC64": {"state": {"state": _uint_array(64, 4)}, **_SPARE_UINT32},
}
# NumPy's global RandomState: an MT19937 and the spare normal deviate of its legacy gauss().
_LEGACY_STATE: dict[str, Any] = {
    **_BIT_GENERATOR_STATES["MT19937"],
    "has_gauss": _int_in(0, 1),
    "gauss": (lambda v: _is_real(v) and math.isfinite(v), "a finite number"),
}


def _check_fields(node: dict, fields: dict, bad: Callable[[str], ValueError], prefix: str = "") -> None:
    """Check dict ``node`` against ``fields`` (name -> nested fields or ``(ok, expected)``): same names, every
    value accepted; ``bad(detail)`` builds the error."""
    unknown, missing = sorted(set(node) - set(fields)), sorted(set(fields) - set(node))
    if missing:
        raise bad(f"it has no field {prefix + missing[0]!r}")
    if unknown:
        raise bad(f"unknown field(s) {[prefix + k for k in unknown]}")
    for name, field in fields.items():
        value = node[name]
        if isinstance(field, dict):
            if not isinstance(value, dict):
                raise bad(f"field {prefix + name!r} must be a dict, got {value!r:.60}")
            _check_fields(value, field, bad, f"{prefix}{name}/")
        elif not field[0](value):
            raise bad(f"field {prefix + name!r} must be {field[1]}, got {value!r:.60}")


def _rng(state: dict | None, file: str, key: str):
    """The sampler (a new Generator) or, for the global state, ``None`` after setting it. Every field is checked
    against what NumPy itself produces before NumPy sees the state (see ``_BIT_GENERATOR_STATES``)."""
    if state is None:
        return None

    def bad(detail: str) -> ValueError:
        return ValueError(f"{file}: metadata key {key!r} is not a NumPy random state as xpnet saves it: {detail}")

    if not (isinstance(state, dict) and set(state) == {"global", "state"} and isinstance(state["state"], dict)):
        raise bad(f"it must be a dict with keys 'global' and 'state' (a dict), got {state!r:.60}")
    inner = state["state"]
    name = inner.get("bit_generator")
    kinds = ["MT19937"] if state["global"] else sorted(_BIT_GENERATOR_STATES)
    if not isinstance(name, str) or name not in kinds:
        raise ValueError(
            f"{file}: metadata key {key!r} names no NumPy bit generator xpnet accepts ({name!r:.40}); "
            f"expected one of {kinds}"
        )
    fields = _LEGACY_STATE if state["global"] else _BIT_GENERATOR_STATES[name]
    _check_fields(inner, {"bit_generator": (lambda v: True, "a str"), **fields}, bad, "state/")
    try:
        return rng_from_state(state)
    except _MALFORMED + (AttributeError, IndexError) as err:
        raise ValueError(f"{file}: metadata key {key!r} is not a valid NumPy random state ({err})") from None


def apply_global_rng(meta: dict) -> None:
    """Set NumPy's global random state to the one :func:`read_checkpoint` verified."""
    rng_from_state(meta["numpy_global_rng"])


# Model files


def write_model(path, *, cls_name: str, config: dict, params: dict, state: dict) -> None:
    """Write a model file: its class name, constructor ``config``, ``params`` and non-trainable ``state``."""
    arrays = {f"{PARAMS_PREFIX}{k}": v for k, v in params.items()}
    arrays.update({f"{STATE_PREFIX}{k}": v for k, v in state.items()})
    meta = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "class": cls_name, "config": config}
    write_npz(path, arrays, meta)


class SavedModel(NamedTuple):
    """A model file's contents, with its format and metadata types verified: NumPy arrays by name."""

    file: str
    cls_name: str
    config: dict
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]


def read_model(path) -> SavedModel:
    """Read a file written by :func:`write_model` (``ValueError`` naming the file if it is not one)."""
    arrays, meta = _read(path, _format_checker(MODEL_FORMAT, MODEL_VERSION, _MODEL_META))
    file = os.fspath(path)
    params = {k[len(PARAMS_PREFIX) :]: v for k, v in arrays.items() if k.startswith(PARAMS_PREFIX)}
    state = {k[len(STATE_PREFIX) :]: v for k, v in arrays.items() if k.startswith(STATE_PREFIX)}
    other = sorted(set(arrays) - {PARAMS_PREFIX + k for k in params} - {STATE_PREFIX + k for k in state})
    if other:
        raise ValueError(f"{file}: arrays {other} are neither params nor state of a model")
    return SavedModel(file, meta["class"], meta["config"], params, state)
