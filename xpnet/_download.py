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
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import os
import re
import secrets
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Sequence

from . import _progress
from ._files import _TMP_INFIX, _create_temp, _sync_folder, _temp_pattern, try_lock

__all__ = ["download_and_extract", "check_md5", "check_url"]

_CHUNK = 1 << 20
_MD5 = re.compile("[0-9a-f]{32}")
# The only member types extracted: a plain file (old tars write type NUL) and a folder; isreg() admits sparse and
# contiguous files too.
_PLAIN = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE)
# Member types a data archive never needs, by what users call them.
_SPECIAL = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a named pipe",
}


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
        fd, archive = _create_temp(parent, base)
        unpacked = None
        try:
            try:
                _fetch(url, md5, fd, archive, target, progress=progress, timeout=timeout)
            finally:
                os.close(fd)
            unpacked = _create_temp_folder(parent, base)
            inner = _extract(archive, unpacked, member_root, url, max_bytes=max_bytes, target=target)
            try:
                check(inner)
            except ValueError as err:
                raise ValueError(f"the archive from {url} is not {what}: {err}") from None
            if os.path.isdir(target):
                os.rmdir(target)  # found empty by _claimable; rmdir refuses if something arrived since
            os.rename(inner, target)
            _sync_folder(parent)
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


# Fetching


def _fetch(url: str, md5: str, fd: int, path: str, target: str, *, progress: bool | None, timeout: float) -> None:
    """Stream ``url`` into the file open as ``fd`` at ``path`` and verify it: announced length, then MD5; fsynced."""
    doing = f"downloading {url} for {target!r}"
    request = urllib.request.Request(url, headers={"User-Agent": "xpnet (python urllib)"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()  # it holds the error page's open connection
        raise OSError(f"downloading {url} failed: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, TimeoutError):
            raise TimeoutError(f"downloading {url}: no answer in {timeout:g} s") from None
        raise OSError(f"downloading {url} failed: {getattr(reason, 'strerror', None) or reason}") from None
    except (TimeoutError, http.client.HTTPException) as err:
        raise OSError(f"downloading {url} failed: {err or type(err).__name__}") from None
    with response:
        announced = response.headers.get("Content-Length")
        announced = int(announced) if announced and announced.isdigit() else None
        digest = hashlib.md5(usedforsecurity=False)
        received = 0
        bar = _progress_bar(progress, announced, os.path.basename(urllib.parse.urlsplit(url).path) or url)

        def read() -> bytes:
            """The next chunk, b"" at the end; network errors name the URL (writing errors are not caught here)."""
            nonlocal received
            try:
                return response.read1(_CHUNK)
            except http.client.IncompleteRead as err:  # newer Pythons raise it where older ones return b""
                received += len(err.partial)
                return b""
            except TimeoutError:
                raise TimeoutError(f"downloading {url}: no data for {timeout:g} s (after {received} bytes)") from None
            except (OSError, http.client.HTTPException) as err:
                raise OSError(f"downloading {url} failed after {received} bytes: {err or type(err).__name__}") from None

        try:
            while chunk := read():
                with _naming(path, doing):
                    _write_all(fd, chunk)
                digest.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    if announced is not None and received != announced:
        raise ConnectionError(
            f"downloading {url}: the transfer stopped after {received} of the {announced} bytes the server "
            f"announced; nothing was kept, try again"
        )
    got = digest.hexdigest()
    if got != md5:
        raise ValueError(
            f"the file downloaded from {url} has MD5 {got}, expected {md5}: it is damaged or not the archive "
            f"expected; nothing was kept"
        )
    with _naming(path, doing):
        os.fsync(fd)


@contextlib.contextmanager
def _naming(path: str, doing: str):
    """Re-raise an ``OSError`` from writing ``path`` (no space left, a quota, a read-only file system) as one that
    names it and says what was being done: the bare error names no file, and a full disk is not a network failure."""
    try:
        yield
    except OSError as err:
        if err.errno is None:
            raise
        # str() appends the path: "[Errno 28] No space left on device (downloading ...; nothing was kept): '<path>'"
        reason = err.strerror or os.strerror(err.errno)
        raise OSError(err.errno, f"{reason} ({doing}; nothing was kept)", path) from None


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``: unbuffered, so a failed write leaves nothing to flush (and fail) again."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _progress_bar(progress: bool | None, total: int | None, name: str):
    """A tqdm bar of bytes, or None: where and whether to draw one is decided as for the Solver's bar."""
    bar_class = _progress.bar_class(progress)
    if bar_class is None:
        return None
    return bar_class(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name)


# Unpacking


def _extract(archive: str, dest: str, member_root: str, url: str, *, max_bytes: int, target: str) -> str:
    """Unpack ``member_root`` of ``archive`` into folder ``dest`` after checking every member; returns
    ``dest/member_root``. Nothing is written unless every member passes."""
    doing = f"unpacking {url} for {target!r}"
    try:
        tar = tarfile.open(archive, "r:gz")
        with tar:
            members = _safe_members(tar, member_root, dest, url, max_bytes)
            for parts, member in members:
                path = os.path.join(dest, *parts)
                if member.isdir():
                    with _naming(path, doing):
                        os.makedirs(path, exist_ok=True)
                    continue
                with _naming(os.path.dirname(path), doing):
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # _safe_members admitted only regular files and folders
                with source:
                    _write_member(source, path, doing)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"the file from {url} is not a gzip-compressed tar archive ({err})") from None
    inner = os.path.join(dest, member_root)
    with _naming(inner, doing):
        os.makedirs(inner, exist_ok=True)  # an archive of files only names the folder in their paths
    return inner


def _write_member(source, path: str, doing: str) -> None:
    """Copy the open member ``source`` to the new file ``path``, fsynced; reading errors pass through as they are
    (a damaged archive), writing errors name ``path``."""
    # O_EXCL: a name seen twice or a path through a link could only fail here, never overwrite.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    with _naming(path, doing):
        fd = os.open(path, flags, 0o666)
    try:
        while True:
            chunk = source.read(_CHUNK)
            if not chunk:
                break
            with _naming(path, doing):
                _write_all(fd, chunk)
        with _naming(path, doing):
            os.fsync(fd)
    finally:
        os.close(fd)


def _safe_members(tar: tarfile.TarFile, member_root: str, dest: str, url: str, max_bytes: int):
    """``[(path parts, member)]`` of every member, each a regular file or a folder inside ``member_root``, holding
    ``max_bytes`` or fewer in all; a ``ValueError`` naming the first member that is not."""

    def refuse(member, reason):
        return ValueError(
            f"refusing the archive from {url}: member {member.name!r} {reason} (a data archive holds only regular "
            f"files and folders under {member_root}/); nothing was extracted"
        )

    checked: list[tuple[list[str], tarfile.TarInfo]] = []
    kinds: dict[str, str] = {}
    total = 0
    # Members are read one at a time (not getmembers()), so a refusal stops decompressing where it happens.
    for member in tar:
        parts = _parts(member.name)
        if not parts and member.isdir():  # "./", as archives made with tar -C folder . begin
            continue
        reason = _unsafe(member, parts, member_root, dest)
        key = "/".join(parts)
        if reason is None and key in kinds and not (member.isdir() and kinds[key] == "dir"):
            reason = "appears twice"
        if reason is None:
            ancestors = ("/".join(parts[:i]) for i in range(1, len(parts)))
            inside_file = next((a for a in ancestors if kinds.get(a) == "file"), None)
            if inside_file is not None:
                reason = f"lies inside {inside_file!r}, which is a file"
        if reason is not None:
            raise refuse(member, reason)
        total += member.size if member.isreg() else 0
        if total > max_bytes:
            raise ValueError(
                f"refusing the archive from {url}: with member {member.name!r} its files hold {total} bytes, more "
                f"than the {max_bytes} the data set needs; nothing was extracted"
            )
        kinds[key] = "dir" if member.isdir() else "file"
        checked.append((parts, member))
    # The same clash listed the other way round: a file whose path other members, listed before it, go through.
    folders = {"/".join(parts[:i]) for parts, _ in checked for i in range(1, len(parts))}
    for parts, member in checked:
        if member.isreg() and "/".join(parts) in folders:
            raise refuse(member, "is a file, but members listed before it lie inside it")
    return checked


def _parts(name: str) -> list[str]:
    """The components of a member's name, with ``\\`` as a separator too (it is one on Windows)."""
    return [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]


def _unsafe(member: tarfile.TarInfo, parts: list[str], member_root: str, dest: str) -> str | None:
    """Why ``member`` (whose name has components ``parts``) must not be extracted, or None."""
    name = member.name
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in parts:
        return "leaves the folder through '..'"
    if any(":" in p for p in parts):  # "a/C:b" would restart at drive C: on Windows, "a:b" write a data stream
        return "has a ':' in its path, which Windows reads as a drive or a data stream"
    if member.issym():
        return f"is a symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"is a hard link to {member.linkname!r}"
    if member.type in _SPECIAL:
        return f"is {_SPECIAL[member.type]}"
    if member.issparse() or member.type == tarfile.GNUTYPE_SPARSE:
        # Its header declares a size that its stored bytes need not fill: holes would be written out as zeros.
        return f"is a sparse file (declared {member.size} bytes)"
    if member.type not in _PLAIN:
        return f"is neither a plain file nor a folder (tar type {member.type!r})"
    if not parts or parts[0] != member_root or (member.isreg() and len(parts) == 1):
        return f"lies outside {member_root}/"
    if hasattr(tarfile, "data_filter"):  # the standard library's own opinion, where it has one
        try:
            tarfile.data_filter(member, dest)
        except tarfile.FilterError as err:
            return f"is refused by tarfile's 'data' filter ({err})"
    return None


# Temporaries and the lock


def _create_temp_folder(parent: str, base: str) -> str:
    for _ in range(100):
        path = os.path.join(parent, f".{base}{_TMP_INFIX}{secrets.token_hex(8)}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"could not create a temporary folder for {base!r} in {parent!r}")


def _remove_stale_temps(parent: str, base: str) -> None:
    """Remove what killed downloads of ``base`` left in ``parent`` (only names this module makes for it)."""
    pattern = _temp_pattern(base)
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
                _lock(fd)
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


if sys.platform == "win32":  # spelled so that type checkers know which branch this platform takes

    def _lock(fd: int) -> None:
        while not try_lock(fd):
            time.sleep(0.5)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)
