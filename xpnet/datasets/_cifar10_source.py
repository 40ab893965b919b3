"""Where CIFAR-10 is read from and how it gets there.

First match wins (a set place is never skipped for a later one): the ``cifar10_dir`` argument; the environment
variable ``XPNET_CIFAR10_DIR``; the cache folder ``<cache>/cifar-10-batches-py``, where ``<cache>`` is
``$XPNET_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/xpnet`` if that is set to an absolute path, else
``~/.cache/xpnet``; and, for :func:`get_CIFAR10_data` only, CS231n's ``./cs231n/datasets/cifar-10-batches-py``
when the cache holds nothing. The cache is not ``pooch.os_cache``: that is ``~/Library/Caches`` on macOS and
``%LOCALAPPDATA%`` on Windows, where xpnet has always used, and documented, ``~/.cache/xpnet`` (or ``$XDG_CACHE_HOME``).
The download itself is ``_download``'s.
"""

from __future__ import annotations

import os

from .._validation import check_progress, check_real
from . import _cifar10, _download
from ._cifar10 import CACHE_ENV, CIFAR10_BATCHES, CIFAR10_ENV, CIFAR10_FOLDER, CLI, CS231N_DIR, as_path, nested

__all__ = ["default_CIFAR10_dir", "download_CIFAR10"]


def default_CIFAR10_dir():
    """The folder :func:`get_CIFAR10_data` reads when neither ``cifar10_dir`` nor ``XPNET_CIFAR10_DIR`` is given.

    It is ``<cache>/cifar-10-batches-py``, where ``<cache>`` is the environment variable ``XPNET_CACHE_DIR`` if set,
    else ``$XDG_CACHE_HOME/xpnet`` if ``XDG_CACHE_HOME`` is an absolute path (the XDG rule), else ``~/.cache/xpnet``.

    Returns
    -------
    str
        An absolute path; the folder may not exist.
    """
    cache = os.environ.get(CACHE_ENV)
    if not cache:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".cache")
        cache = os.path.join(base, "xpnet")
    return os.path.abspath(os.path.join(os.path.expanduser(cache), CIFAR10_FOLDER))


def download_CIFAR10(cifar10_dir=None, *, progress=None, url=None, md5=None, timeout=60.0):
    """Download the official CIFAR-10 python archive and unpack its ``cifar-10-batches-py`` into ``cifar10_dir``.

    Nothing is downloaded if the folder already holds the six batches. Otherwise the archive (170 MB) is streamed
    to a temporary file beside the folder, its MD5 is verified, every member is checked (only regular files and
    folders inside ``cifar-10-batches-py/``), the batches are unpacked into a temporary folder and verified to load,
    and that folder is then renamed to ``cifar10_dir``: an interrupted download never leaves a folder that looks
    complete, and the next download removes what a killed one left. Details in ``xpnet.datasets._download``.

    Parameters
    ----------
    cifar10_dir : str or os.PathLike, optional
        The folder to fill (new or empty, or a symbolic link to such a folder; created with its parents). Defaults
        to where :func:`get_CIFAR10_data`
        looks: ``XPNET_CIFAR10_DIR``, else :func:`default_CIFAR10_dir`.
    progress : bool or None
        A tqdm progress bar on stderr (a widget in a notebook); None draws one in an interactive terminal or a
        Jupyter notebook with ipywidgets, and none when output goes to a file or a CI log.
    url : str, optional
        Where to get the archive (``https://``, ``http://`` or ``file://``); defaults to ``CIFAR10_URL``.
    md5 : str, optional
        The archive's MD5 as 32 hexadecimal digits; defaults to the official archive's, ``CIFAR10_MD5``.
    timeout : float
        Seconds without data from the server before giving up.

    Returns
    -------
    str
        The folder, absolute: pass it as ``cifar10_dir`` or set ``XPNET_CIFAR10_DIR`` to it, unless it is
        :func:`default_CIFAR10_dir`.

    Raises
    ------
    TypeError, ValueError
        Naming a bad argument, before anything is fetched.
    FileExistsError
        The folder exists and holds other files, or is a link to anything but a folder: nothing is fetched.
    OSError
        Naming the URL: HTTP error, failed connection, truncated transfer, or ``TimeoutError``; naming the file
        being written: no space left on the device (or another failed write).
    ValueError
        Naming the URL: the MD5 differs, or the archive holds an unsafe member (named: links, devices, sparse
        files...), more than the 192 MiB CIFAR-10 needs unpacked, or no valid batches.
    """
    folder, _ = locate_CIFAR10(cifar10_dir)
    return fetch_CIFAR10(folder, progress=progress, url=url, md5=md5, timeout=timeout)[0]


def fetch_CIFAR10(folder, *, progress=None, url=None, md5=None, timeout=60.0):
    """``(folder, whether it was downloaded)``; the module's constants are read now, so tests can point them at a
    local server."""
    url = _download.check_url(_cifar10.CIFAR10_URL if url is None else url)
    md5 = _download.check_md5(_cifar10.CIFAR10_MD5 if md5 is None else md5)
    check_progress(progress)
    timeout = check_real(timeout, "timeout (seconds)", low=0, include_low=False)
    downloaded = _download.download_and_extract(
        url,
        md5,
        folder,
        member_root=CIFAR10_FOLDER,
        expected_files=CIFAR10_BATCHES,
        check=_check_unpacked,
        what="CIFAR-10",
        max_bytes=_cifar10.CIFAR10_UNPACKED_MAX,
        progress=progress,
        timeout=timeout,
    )
    return os.path.abspath(folder), downloaded


def _check_unpacked(folder):
    """``ValueError`` unless ``folder`` holds the six batches and each of them loads."""
    for name in CIFAR10_BATCHES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise ValueError(f"it lacks {CIFAR10_FOLDER}/{name}")
        _cifar10.read_batch(path)


def locate_CIFAR10(cifar10_dir):
    """The folder to read and how it was chosen: the argument, else the environment variable, else the cache."""
    if cifar10_dir is not None:
        return as_path("cifar10_dir", cifar10_dir), "from cifar10_dir"
    if os.environ.get(CIFAR10_ENV):
        return os.environ[CIFAR10_ENV], f"from {CIFAR10_ENV}"
    return default_CIFAR10_dir(), f"the default folder: cifar10_dir is not given and {CIFAR10_ENV} is not set"


def find_CIFAR10(cifar10_dir):
    """``(folder, how it was chosen, why it holds no CIFAR-10 or '')`` for :func:`get_CIFAR10_data`.

    As :func:`_locate_CIFAR10`, and when that is the cache folder and it holds no data, CS231n's own place:
    ``cs231n/datasets/cifar-10-batches-py`` under the current folder, where the course's ``get_datasets.sh`` puts
    the data and a notebook run from the assignment folder finds it. A set argument or variable is never skipped.
    """
    folder, source = locate_CIFAR10(cifar10_dir)
    absent = _cifar10_absent(folder)
    if absent and cifar10_dir is None and not os.environ.get(CIFAR10_ENV) and not _cifar10_absent(CS231N_DIR):
        cache = f"the default folder {folder!r} holds no CIFAR-10"
        return os.path.abspath(CS231N_DIR), f"CS231n's folder under the current one: {cache}", ""
    return folder, source, absent


def _cifar10_absent(folder):
    """Why ``folder`` does not hold CIFAR-10 (``''`` if it has every batch file)."""
    if not os.path.exists(folder):
        return "it does not exist"
    if not os.path.isdir(folder):
        return "it is a file, not a folder"
    inside = nested(folder)
    if inside:
        return f"it {inside}"
    missing = [name for name in CIFAR10_BATCHES if not os.path.isfile(os.path.join(folder, name))]
    return f"it lacks {', '.join(missing)}" if missing else ""


def not_found(folder, source, absent):
    cache = os.path.join("~", ".cache", "xpnet")
    return (
        f"no CIFAR-10 in {folder!r} ({source}): {absent}. Get the data set (170 MB) in one of these ways:\n"
        f"  - get_CIFAR10_data(download=True) downloads it into that folder;\n"
        f"  - `{CLI} [DIR]` does so from a shell (DIR defaults to that folder);\n"
        f"  - by hand: download {_cifar10.CIFAR10_URL}, run `tar -xzf cifar-10-python.tar.gz` and pass "
        f"cifar10_dir='.../{CIFAR10_FOLDER}'.\n"
        f"Folders are looked for in this order: the cifar10_dir argument, the environment variable {CIFAR10_ENV}, "
        f"then <cache>/{CIFAR10_FOLDER}, where <cache> is ${CACHE_ENV}, else $XDG_CACHE_HOME/xpnet, else {cache}, "
        f"then {os.path.join('.', CS231N_DIR)} under the current folder (where CS231n's get_datasets.sh puts it)."
    )
