"""Downloading a data set's archive and unpacking it, safely and atomically.

:func:`download_and_extract` fetches a ``.tar.gz`` over HTTP(S) with urllib, verifies its MD5, and unpacks one
folder of it into a target folder. What can go wrong, and what happens:

- A transfer that stops early (fewer bytes than its ``Content-Length``), a server error, a refused connection or a
  server silent for ``timeout`` seconds is an ``OSError`` naming the URL. A file whose MD5 differs is a
  ``ValueError`` naming the URL, the expected and the received digest.
- Unpacking trusts nothing in the archive. Every member is checked before anything is written, and the archive is
  refused, naming the member, unless each one is a regular file or a folder inside the expected top folder: no
  absolute path, no ``..`` (with ``/`` or ``\\`` as separator), no symbolic or hard link, no device or pipe, no
  sparse or other special member, no duplicate, and no more bytes in all than the caller's ``max_bytes`` (a
  small margin over the real data set's size: the check stops reading at the member that passes it, so a gzip
  bomb is never expanded). Where tarfile has its ``'data'`` filter (Python 3.10.12+, 3.11.4+), each member must
  also pass it.
  Files are then written by this module (exclusive create, modes from the umask, no owner or time from the
  archive), so the result is the same on every Python.
- Nothing incomplete ever sits at the target. The archive is downloaded to ``.{name}.tmp-<16 hex digits>`` beside
  the target and unpacked into another such folder; the unpacked folder is verified, then renamed to the target.
  Any failure removes both. A run killed outright (SIGKILL, power cut) can leave them behind: the next download of
  the same target removes them.
- One download per target at a time, across processes: a lock on ``.{name}.lock`` beside the target. A second
  process waits (saying so on stderr), then finds the data there and downloads nothing.
- A target that exists is never written into: complete, it is kept; empty, it is filled; holding anything else,
  the download is refused before a byte is fetched. A symbolic link to a folder is followed (the folder it names
  is filled, the link stays); one to anything else, or to nothing, is refused before a byte is fetched.
- A write that fails (no space left on the device, a quota, a read-only file system) is an ``OSError`` naming the
  file being written and the target, and nothing is kept.

Fetching is ``_fetch``, unpacking ``_untar`` (each says why it is not ``pooch``/``tarfile.extractall``); this module
orders them, and holds the lock. The lock is not ``filelock`` (issue 19 asked for it; measured 2026-12-06 with
filelock 4.3.2): its ``FileLock`` leaves ``.{name}.lock`` behind after every release, so the cache folder would
hold a stray file next to the data (the tests check that it holds only the data), and its 15,800 lines replace the
forty below, which use the one ``flock`` helper of ``xpnet._atomic`` and remove the lock file safely (a waiter that
took the lock of a removed file tries again).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import sys
import urllib.parse
from collections.abc import Callable, Sequence

from .._atomic import TMP_INFIX, create_temp, lock, sync_folder, temp_pattern, try_lock
from ._fetch import fetch
from ._untar import extract

__all__ = ["download_and_extract", "check_md5", "check_url"]

_MD5 = re.compile("[0-9a-f]{32}")


def check_md5(md5, *, name: str = "md5") -> str:
    """``md5`` in lower case if it is 32 hexadecimal digits (``TypeError``/``ValueError`` naming ``name``)."""
    if not isinstance(md5, str):
        raise TypeError(f"{name} must be a str of 32 hexadecimal digits, got {type(md5).__name__}")
    if not _MD5.fullmatch(md5.lower()):
        raise ValueError(f"{name} must be 32 hexadecimal digits, got {md5!r}")
    return md5.lower()


def check_url(url, *, name: str = "url") -> str:
    """``url`` if it is a str naming a scheme urllib fetches here (``TypeError``/``ValueError`` naming ``name``)."""
    if not isinstance(url, str):
        raise TypeError(f"{name} must be a str, got {type(url).__name__}")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
        raise ValueError(f"{name} must start with https://, http:// or file://, got {url!r}")
    return url


def download_and_extract(
    url: str,
    md5: str,
    target,
    *,
    member_root: str,
    expected_files: Sequence[str],
    check: Callable[[str], None],
    what: str,
    max_bytes: int,
    progress: bool | None = None,
    timeout: float = 60.0,
) -> bool:
    """Make folder ``target`` hold the folder ``member_root`` of the ``.tar.gz`` at ``url``.

    Parameters
    ----------
    url : str
        ``https://``, ``http://`` or ``file://``.
    md5 : str
        The archive's expected MD5, 32 hexadecimal digits.
    target : str or os.PathLike
        The folder to create; its parent is created if needed.
    member_root : str
        The archive's top folder, whose contents become ``target``'s.
    expected_files : sequence of str
        Names that make ``target`` complete when all are files in it: a complete target is kept as it is.
    check : callable
        Called with the unpacked folder before it is renamed to ``target``; raises ``ValueError`` saying what is
        wrong with the contents.
    what : str
        The data set's name, for messages ("CIFAR-10").
    max_bytes : int
        The most bytes the unpacked files may hold in all: a small margin over the real data set's size.
    progress : bool or None
        A tqdm progress bar: None draws one in an interactive terminal or a Jupyter notebook with ipywidgets.
    timeout : float
        Seconds without any data from the server before giving up (on connecting and on each read).

    Returns
    -------
    bool
        True if downloaded, False if ``target`` was already complete.

    Raises
    ------
    OSError
        Naming the URL: HTTP error, connection failure, truncated transfer; ``TimeoutError`` after ``timeout``
        seconds without data; ``FileExistsError`` naming ``target`` when it exists and holds other files, is a
        file, or is a symbolic link to something other than a folder; an ``OSError`` naming the file written
        when writing fails (no space left...).
    ValueError
        Naming the URL: the MD5 differs, the file is not a ``.tar.gz``, a member is unsafe (named), the members
        hold more than ``max_bytes``, or ``check`` refused the contents.
    """
    target = _resolved(os.path.abspath(os.fspath(target)))
    parent, base = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    with _exclusive(parent, base, target):
        if _claimable(target, expected_files, member_root):
            return False
        _remove_stale_temps(parent, base)
        print(f"Downloading {url} into {target!r}", flush=True)
        fd, archive = create_temp(parent, base)
        unpacked = None
        try:
            try:
                fetch(url, md5, fd, archive, target, progress=progress, timeout=timeout)
            finally:
                os.close(fd)
            unpacked = _create_temp_folder(parent, base)
            inner = extract(archive, unpacked, member_root, url, max_bytes=max_bytes, target=target)
            try:
                check(inner)
            except ValueError as err:
                raise ValueError(f"the archive from {url} is not {what}: {err}") from None
            if os.path.isdir(target):
                os.rmdir(target)  # found empty by _claimable; rmdir refuses if something arrived since
            os.rename(inner, target)
            sync_folder(parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(archive)
            if unpacked is not None:
                shutil.rmtree(unpacked, ignore_errors=True)
    return True


def _resolved(target: str) -> str:
    """``target``, or the folder it links to if it is a symbolic link to one: the download then fills that folder
    (renaming onto the link itself would fail only after the download). A ``FileExistsError`` naming ``target``, raised
    before anything is downloaded, if it links to anything else or to nothing."""
    if not os.path.islink(target):
        return target
    real = os.path.realpath(target)
    if os.path.isdir(real):
        return real
    what = "a file" if os.path.lexists(real) else "nothing (it dangles)"
    raise FileExistsError(
        errno.EEXIST,
        f"{target!r} is a symbolic link to {real!r}, which is {what}, not a folder; a download fills a new or empty "
        f"folder: remove the link or point it at an empty folder",
    )


def _claimable(target: str, expected_files: Sequence[str], member_root: str) -> bool:
    """True if ``target`` is complete, False if it is absent or an empty folder (to be filled); otherwise a
    ``FileExistsError`` naming it, raised before anything is downloaded."""
    if not os.path.lexists(target):
        return False
    if os.path.isdir(target):
        present = os.listdir(target)
        if not present:
            return False
        if all(os.path.isfile(os.path.join(target, name)) for name in expected_files):
            return True
        missing = next(name for name in expected_files if not os.path.isfile(os.path.join(target, name)))
        inner = os.path.join(target, member_root)
        advice = (
            f"it holds {member_root}/, give that folder instead: {inner!r}"
            if os.path.isdir(inner)
            else "give another folder, or remove this one"
        )
        raise FileExistsError(
            errno.EEXIST,
            f"{target!r} exists and holds other files (no {missing}); a download fills only a new or empty folder: "
            f"{advice}",
        )
    raise FileExistsError(errno.EEXIST, f"{target!r} exists and is a file, not a folder")


# Temporaries and the lock


def _create_temp_folder(parent: str, base: str) -> str:
    for _ in range(100):
        path = os.path.join(parent, f".{base}{TMP_INFIX}{secrets.token_hex(8)}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"could not create a temporary folder for {base!r} in {parent!r}")


def _remove_stale_temps(parent: str, base: str) -> None:
    """Remove what killed downloads of ``base`` left in ``parent`` (only names this module makes for it)."""
    pattern = temp_pattern(base)
    with os.scandir(parent) as entries:
        stale = [entry for entry in entries if pattern.fullmatch(entry.name)]
    for entry in stale:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


@contextlib.contextmanager
def _exclusive(parent: str, base: str, target: str):
    """Hold an exclusive lock on ``parent/.{base}.lock``; the kernel drops it if the process dies."""
    path = os.path.join(parent, f".{base}.lock")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            if not try_lock(fd):
                print(f"waiting for another download into {target!r} to finish...", file=sys.stderr, flush=True)
                lock(fd, wait=True)
            # The holder before us removed the lock file when done: a lock on a removed file excludes no one.
            if _same_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    try:
        yield
    finally:
        if os.name != "nt":  # Windows cannot remove an open file; the lock file stays there, harmless
            with contextlib.suppress(OSError):
                os.unlink(path)
        os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    if os.name == "nt":
        return True
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
