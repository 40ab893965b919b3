"""Unpacking a downloaded ``.tar.gz``: every member checked before anything is written, then written by this module.

``tarfile``'s ``filter="data"`` (Python 3.10.12+, 3.11.4+) is applied to every member where it exists, but it is
not enough on its own, and ``extractall`` is not used: the data filter admits symbolic and hard links that stay
inside the folder, sparse members (whose holes are written out as zeros), duplicate names and any total size (a gzip
bomb), and ``extractall`` writes through buffered files (a full disk names no file) without fsync. Members are
read one at a time, so a refusal stops decompressing where it happens.
"""

from __future__ import annotations

import gzip
import os
import re
import tarfile
import zlib

from ._fetch import CHUNK, naming, write_all

__all__ = ["extract"]

# The only member types extracted: a plain file (old tars write type NUL) and a folder; isreg() admits sparse and
# contiguous files too.
_PLAIN = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE)
# Member types a data archive never needs, by what users call them.
_SPECIAL = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a named pipe",
}


def extract(archive: str, dest: str, member_root: str, url: str, *, max_bytes: int, target: str) -> str:
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
                    with naming(path, doing):
                        os.makedirs(path, exist_ok=True)
                    continue
                with naming(os.path.dirname(path), doing):
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # _safe_members admitted only regular files and folders
                with source:
                    _write_member(source, path, doing)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(f"the file from {url} is not a gzip-compressed tar archive ({err})") from None
    inner = os.path.join(dest, member_root)
    with naming(inner, doing):
        os.makedirs(inner, exist_ok=True)  # an archive of files only names the folder in their paths
    return inner


def _write_member(source, path: str, doing: str) -> None:
    """Copy the open member ``source`` to the new file ``path``, fsynced; reading errors pass through as they are
    (a damaged archive), writing errors name ``path``."""
    # O_EXCL: a name seen twice or a path through a link could only fail here, never overwrite.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    with naming(path, doing):
        fd = os.open(path, flags, 0o666)
    try:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            with naming(path, doing):
                write_all(fd, chunk)
        with naming(path, doing):
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
