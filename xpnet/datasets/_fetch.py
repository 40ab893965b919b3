"""Streaming one URL into an open file: its announced length and MD5 verified, write errors naming the file.

Fetched with urllib, not ``pooch``/``requests`` (issue 19 asked for pooch; measured 2026-12-06 with pooch 1.9.0 and
requests 2.34 against the tests' 127.0.0.1 server): pooch has no ``file://`` downloader (``InvalidSchema``), which
the offline install path of :func:`xpnet.data_utils.download_CIFAR10` needs, so this code would stay anyway; its
errors are ``requests`` exceptions whose messages name neither the bytes received of the announced total nor the
URL in the house form (``ChunkedEncodingError('Connection broken: IncompleteRead(...)')``, ``ConnectionError(
'... Read timed out.')``, ``HTTPError('404 Client Error ...')``); it writes through a buffered file object, so a
full disk is an ``OSError`` that names no file; it never fsyncs the archive; it counts progress in chunk sizes and
resets the bar at the end; and it logs to stderr. Wrapping all of that would add code, not remove it, and
``requests`` with five more packages as dependencies.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request

from .. import _progress

__all__ = ["CHUNK", "fetch", "naming", "write_all"]

CHUNK = 1 << 20


def fetch(url: str, md5: str, fd: int, path: str, target: str, *, progress: bool | None, timeout: float) -> None:
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
                return response.read1(CHUNK)
            except http.client.IncompleteRead as err:  # newer Pythons raise it where older ones return b""
                received += len(err.partial)
                return b""
            except TimeoutError:
                raise TimeoutError(f"downloading {url}: no data for {timeout:g} s (after {received} bytes)") from None
            except (OSError, http.client.HTTPException) as err:
                raise OSError(f"downloading {url} failed after {received} bytes: {err or type(err).__name__}") from None

        try:
            while chunk := read():
                with naming(path, doing):
                    write_all(fd, chunk)
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
    with naming(path, doing):
        os.fsync(fd)


@contextlib.contextmanager
def naming(path: str, doing: str):
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


def write_all(fd: int, data: bytes) -> None:
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
