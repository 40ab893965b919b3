"""Atomic, durable file writes and the lock they rely on: every file xpnet writes goes through here.

A file is written beside its target as ``.{name}.tmp-<16 hex digits>``, flushed to disk, renamed over the target,
and the folder is synced so that the rename survives a power cut: a crash leaves the old file or the new one, never
a mix. A crash can leave the temporary file; the next successful write of the same target removes it (and only
temporary files of that target). Several processes may write one target at once: each holds an exclusive ``flock``
on its temporary file from creating it until it is renamed, the kernel drops the lock when its process dies, and a
write removes only the temporaries whose lock it can take, so never a live writer's (the last rename wins; each is
a complete file). Files are created like any other file the user writes: mode 0o666 less the umask.

The same lock serves lock files (a download's, a sweep folder's) through :func:`try_lock`, and
:func:`open_regular` opens a file for reading without ever waiting on a FIFO or a device.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import sys
from collections.abc import Iterator
from typing import IO, Any

if sys.platform != "win32":  # spelled so that type checkers know which branch this platform takes
    import fcntl

__all__ = [
    "TMP_INFIX",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_writable",
    "create_temp",
    "lock",
    "open_regular",
    "remove_stale_temps",
    "sync_folder",
    "temp_pattern",
    "try_lock",
]

TMP_INFIX = ".tmp-"
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # POSIX only; Windows has no FIFOs that block open()
# Where these come back, the file system (some network mounts) has no locks.
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.EINVAL, errno.ENOSYS}


def lock(fd: int, *, wait: bool = False) -> bool | None:
    """Take an exclusive lock on the open file ``fd``, held until every descriptor of its open file is closed (and
    dropped by the kernel when the process dies, so a killed holder leaves none behind).

    Returns True once held, False when another process holds it (only without ``wait``), and None where the file
    system has no locks: then the caller decides whether to go on without mutual exclusion.
    """
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError as err:
        if err.errno in _NO_LOCKS:
            return None
        raise
    return True


def try_lock(fd: int) -> bool:
    """Take the lock of a lock file (a download's, a sweep folder's) without waiting: False when another process
    holds it, True once held or where the file system has no locks (no mutual exclusion rather than no work)."""
    return lock(fd) is not False


def temp_pattern(base: str) -> re.Pattern:
    """The names of the temporary files of target ``base`` (and of no other target)."""
    return re.compile(re.escape(f".{base}{TMP_INFIX}") + "[0-9a-f]{16}")


def _same_file(path: str, fd: int) -> bool:
    """Whether ``path`` still names the open file ``fd`` (not removed, not replaced)."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (opened.st_dev, opened.st_ino)


def create_temp(folder: str, base: str) -> tuple[int, str]:
    """A new, empty temporary file for target ``base`` in ``folder``, locked for its writer: ``(fd, path)``. The
    lock lasts until ``fd`` is closed: keep it open until the file is renamed.

    Created with mode 0o666 so that the kernel applies the umask, as for any file the user writes (``mkstemp``
    would make it 0o600); reading the umask is never needed, which would be racy in a threaded program.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}{TMP_INFIX}{secrets.token_hex(8)}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        try:
            if os.name != "nt":  # Windows needs no lock here: it deletes no open file (see remove_stale_temps)
                lock(fd, wait=True)
            # Another write's clean-up may have taken the lock and removed the file between its creation and the
            # lock: then start again with a new name.
            if _same_file(tmp, fd):
                return fd, tmp
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise FileExistsError(errno.EEXIST, f"could not create a temporary file for {base!r} in {folder!r}")


def sync_folder(folder: str) -> None:
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


def remove_stale_temps(folder: str, base: str) -> None:
    """Remove temporary files that earlier, crashed writes of ``base`` left in ``folder`` (and no others): those
    whose lock can be taken, so never the temporary of a write still running in another process or thread."""
    pattern = temp_pattern(base)
    with os.scandir(folder) as entries:
        candidates = [entry.path for entry in entries if pattern.fullmatch(entry.name)]
    for path in candidates:
        if os.name == "nt":  # a live writer's file is open, and Windows deletes no open file
            with contextlib.suppress(FileNotFoundError, PermissionError):
                os.unlink(path)
            continue
        try:
            fd = os.open(path, os.O_RDONLY | _NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:  # gone already, a symbolic link, or not ours to read: leave it
            continue
        try:
            # Without locks (None) no temporary can be proven stale: it stays.
            if stat.S_ISREG(os.fstat(fd).st_mode) and lock(fd) is True and _same_file(path, fd):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(path, *, text: bool = False) -> Iterator[IO[Any]]:
    """A file object to write the new content of ``path`` into (binary, or UTF-8 text when ``text``); when the
    ``with`` block ends, the content replaces ``path`` atomically and durably (see the module docstring).

    Missing folders are created. If the block raises, the temporary file is removed and ``path`` is left as it
    was. Raises ``OSError`` from the disk.
    """
    file = os.fspath(path)
    folder, base = os.path.split(os.path.abspath(file))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = create_temp(folder, base)
    # POSIX: fd, and with it the lock that keeps other writes' clean-up away, stays open until the rename is done.
    # Windows renames no open file, and deletes none either, so there it is closed first.
    keep_open = os.name != "nt"
    try:
        try:
            opened: IO[Any] = (
                os.fdopen(fd, "w", encoding="utf-8", newline="", closefd=not keep_open)
                if text
                else os.fdopen(fd, "wb", closefd=not keep_open)
            )
            with opened as fh:
                yield fh
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
    sync_folder(folder)
    remove_stale_temps(folder, base)


def atomic_write_bytes(path, data: bytes) -> None:
    """Replace the file at ``path`` by ``data``, atomically and durably (see :func:`atomic_write`)."""
    with atomic_write(path) as fh:
        fh.write(data)


def atomic_write_text(path, text: str) -> None:
    """Replace the file at ``path`` by ``text`` in UTF-8, atomically and durably (see :func:`atomic_write`)."""
    with atomic_write(path, text=True) as fh:
        fh.write(text)


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
        fd, tmp = create_temp(folder, base)
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):  # another write's clean-up may have removed it already
            os.unlink(tmp)
    except OSError as err:
        # makedirs(exist_ok=True) says "File exists" when the folder's name is taken by a file.
        reason = "it is a file, not a folder" if isinstance(err, FileExistsError) else err.strerror or err
        message = f"{name} {os.fspath(prefix)!r}: cannot write files in folder {folder!r}: {reason}"
        raise (OSError(err.errno, message) if err.errno else OSError(message)) from None


_FILE_TYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_regular(mode: int, file: str, *, expected: str = "an xpnet .npz file") -> None:
    """``ValueError`` naming ``file`` and its type unless ``mode`` (an ``st_mode``) is a regular file's."""
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_TYPES if test(mode)), "not a plain file")
        raise ValueError(f"{file}: expected a regular file ({expected}), got {kind}")


def open_regular(path, *, expected: str = "an xpnet .npz file") -> IO[bytes]:
    """The regular file at ``path``, opened for binary reading; never waits on a FIFO or a device.

    A FIFO in place of a file would block ``open()`` until a writer comes, and a device such as ``/dev/zero`` reads
    forever, so the file type is checked before opening and again on the opened descriptor (the path may be
    replaced in between; ``O_NONBLOCK`` keeps that open from waiting). Raises ``FileNotFoundError`` naming a
    missing file and ``ValueError`` naming a folder, FIFO, device or socket (``expected`` says what was wanted).
    """
    file = os.fspath(path)
    try:
        check_regular(os.stat(file).st_mode, file, expected=expected)
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0) | _NONBLOCK)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"no such file: {file!r}") from None
    try:
        check_regular(os.fstat(fd).st_mode, file, expected=expected)
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
