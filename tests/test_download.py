"""Downloading CIFAR-10: against a real HTTP server on 127.0.0.1 serving generated archives in the official format.

No test reaches the internet: every download is given the local server's URL (``url=`` / ``--url``), and the one
test of ``get_CIFAR10_data(download=True)`` points the module's URL constant at the local server.
"""

from __future__ import annotations

import errno
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpnet import data_utils
from xpnet.data_utils import download_CIFAR10, get_CIFAR10_data
from xpnet.datasets import _cifar10, _untar

from cifar_format import BATCH_NAMES, cifar10_tarball

PER_BATCH = 5
FOLDER = "cifar-10-batches-py"


class _Server:
    """A ThreadingHTTPServer on 127.0.0.1 that serves registered paths and counts the requests for each."""

    def __init__(self):
        self.routes: dict[str, tuple] = {}
        self.requests: list[str] = []
        self.release = threading.Event()  # what a "stall" route waits for after its first bytes
        self.stalled = threading.Event()  # set once a "stall" route has sent its first bytes
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path not in server.routes:
                    self.send_error(404)
                    return
                status, body, mode = server.routes[self.path]
                if status != 200:
                    self.send_error(status)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "truncate":  # announce everything, send half, hang up
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                elif mode == "stall":  # send half, then wait (the client is killed meanwhile)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    server.stalled.set()
                    server.release.wait(10)
                    self.close_connection = True
                else:
                    self.wfile.write(body)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def serve(self, path: str, body: bytes = b"", *, status: int = 200, mode: str = "whole") -> str:
        self.routes[path] = (status, body, mode)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def count(self, path: str) -> int:
        return self.requests.count(path)

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The bytes of a generated cifar-10-python.tar.gz in the official layout, and their MD5."""
    body = cifar10_tarball(tmp_path_factory.mktemp("archive"), per_batch=PER_BATCH, seed=1)
    return body, hashlib.md5(body).hexdigest()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No CIFAR-10 or cache variable from the developer's shell; HOME in tmp_path, so the default cache is there."""
    for name in ("XPNET_CIFAR10_DIR", "XPNET_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))  # what os.path.expanduser reads on Windows
    return home


def _left_in(folder) -> list[str]:
    return sorted(os.listdir(folder))


def test_download_then_get_CIFAR10_data_finds_it_without_downloading_again(server, archive, clean_env, monkeypatch):
    body, md5 = archive
    url = server.serve("/cifar-10-python.tar.gz", body)
    monkeypatch.setattr(_cifar10, "CIFAR10_URL", url)
    monkeypatch.setattr(_cifar10, "CIFAR10_MD5", md5)
    data = get_CIFAR10_data(4 * PER_BATCH, PER_BATCH, PER_BATCH, download=True)
    assert data["X_train"].shape == (4 * PER_BATCH, 3, 32, 32) and data["y_test"].shape == (PER_BATCH,)
    cache = clean_env / ".cache" / "xpnet"
    assert _left_in(cache) == [FOLDER]
    assert sorted(os.listdir(cache / FOLDER)) == sorted(BATCH_NAMES + ("batches.meta",))
    assert server.count("/cifar-10-python.tar.gz") == 1
    again = get_CIFAR10_data(4 * PER_BATCH, PER_BATCH, PER_BATCH, download=True)
    assert server.count("/cifar-10-python.tar.gz") == 1
    np.testing.assert_array_equal(again["X_val"], data["X_val"])
    # Without download=True it is found too: the cache is the last place looked.
    assert get_CIFAR10_data(10, 0, 0)["X_train"].shape == (10, 3, 32, 32)


def test_download_into_an_explicit_folder_and_the_progress_bar(server, archive, tmp_path, capsys):
    body, md5 = archive
    url = server.serve("/c.tgz", body)
    target = tmp_path / "data" / "cifar"
    assert download_CIFAR10(target, url=url, md5=md5, progress=True) == str(target)
    out, err = capsys.readouterr()
    assert f"Downloading {url} into {str(target)!r}" in out
    assert "100%" in err and "c.tgz" in err  # tqdm's bar, named after the file, reached the announced size
    assert _left_in(tmp_path / "data") == ["cifar"]
    X, y = data_utils.load_CIFAR_batch(target / "test_batch")
    assert X.shape == (PER_BATCH, 32, 32, 3)
    # An existing complete folder is kept as it is.
    assert download_CIFAR10(target, url=url, md5=md5, progress=False) == str(target)
    assert server.count("/c.tgz") == 1 and capsys.readouterr() == ("", "")


def test_wrong_checksum_is_refused_and_nothing_is_left(server, archive, tmp_path):
    body, _ = archive
    url = server.serve("/c.tgz", body)
    target = tmp_path / "cache" / FOLDER
    wrong = "0" * 32
    with pytest.raises(ValueError) as info:
        download_CIFAR10(target, url=url, md5=wrong, progress=False)
    message = str(info.value)
    assert url in message and wrong in message and hashlib.md5(body).hexdigest() in message
    assert _left_in(tmp_path / "cache") == []


def test_truncated_transfer_is_refused_and_nothing_is_left(server, archive, tmp_path):
    body, md5 = archive
    url = server.serve("/c.tgz", body, mode="truncate")
    target = tmp_path / "cache" / FOLDER
    with pytest.raises(OSError, match=rf"stopped after {len(body) // 2} of the {len(body)} bytes") as info:
        download_CIFAR10(target, url=url, md5=md5, progress=False)
    assert url in str(info.value)
    assert _left_in(tmp_path / "cache") == []


@pytest.mark.parametrize("status, reason", [(404, "Not Found"), (500, "Internal Server Error")])
def test_http_errors_name_the_url(server, tmp_path, status, reason):
    url = server.serve("/c.tgz", status=status)
    with pytest.raises(OSError) as info:
        download_CIFAR10(tmp_path / FOLDER, url=url, md5="0" * 32, progress=False)
    assert str(info.value) == f"downloading {url} failed: HTTP {status} {reason}"
    assert _left_in(tmp_path) == []


def test_unreachable_server_names_the_url(tmp_path):
    # A port that was free a moment ago: the connection is refused at once.
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = httpd.server_address[1]
    httpd.server_close()
    url = f"http://127.0.0.1:{port}/c.tgz"
    with pytest.raises(OSError, match=rf"^downloading {url} failed: .*refused"):
        download_CIFAR10(tmp_path / FOLDER, url=url, md5="0" * 32, progress=False)
    assert _left_in(tmp_path) == []


def test_stalled_server_times_out(server, archive, tmp_path):
    body, md5 = archive
    url = server.serve("/c.tgz", body, mode="stall")
    with pytest.raises(TimeoutError, match=rf"downloading {url}: no data for 0.3 s"):
        download_CIFAR10(tmp_path / FOLDER, url=url, md5=md5, progress=False, timeout=0.3)
    assert _left_in(tmp_path) == []


def _tarball(tmp_path, evil):
    """The generated archive with ``evil(tar)`` adding members after the official ones."""
    good = tarfile.open(fileobj=io.BytesIO(cifar10_tarball(tmp_path / "src", per_batch=1)), mode="r:gz")
    buf = io.BytesIO()
    with good, tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member in good.getmembers():
            tar.addfile(member, good.extractfile(member) if member.isreg() else None)
        evil(tar)
    return buf.getvalue()


def _file(name, data=b"pwned"):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    return add


def _special(name, kind, linkname=""):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        tar.addfile(info)

    return add


def _sparse(name, declared):
    """An old-GNU sparse member storing no bytes whose header declares ``declared`` (tarfile cannot write one)."""

    def add(tar):
        info = tarfile.TarInfo(name)
        info.type, info.size = tarfile.GNUTYPE_SPARSE, 0
        header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
        header[483:495] = b"%011o\0" % declared  # the real size; the four sparse map entries stay (0, 0)
        header[148:156] = b" " * 8
        header[148:156] = b"%06o\0 " % sum(header)
        tar.fileobj.write(bytes(header))
        tar.offset += len(header)

    return add


def _both(*adders):
    def add(tar):
        for a in adders:
            a(tar)

    return add


@pytest.mark.parametrize(
    "make, name, reason",
    [
        (lambda s: _file("../sentinel"), "../sentinel", "leaves the folder through '..'"),
        (lambda s: _file(f"{FOLDER}/../../sentinel"), f"{FOLDER}/../../sentinel", "leaves the folder through '..'"),
        (lambda s: _file(str(s)), "{sentinel}", "is an absolute path"),
        (lambda s: _file("C:\\sentinel"), "C:\\sentinel", "is an absolute path"),
        (lambda s: _file(f"{FOLDER}/C:sentinel"), f"{FOLDER}/C:sentinel", "has a ':' in its path"),
        (lambda s: _file(f"{FOLDER}\\..\\..\\sentinel"), f"{FOLDER}\\..\\..\\sentinel", "leaves the folder through"),
        (
            lambda s: _both(_special(f"{FOLDER}/out", tarfile.SYMTYPE, ".."), _file(f"{FOLDER}/out/sentinel")),
            f"{FOLDER}/out",
            "is a symbolic link to '..'",
        ),
        (
            lambda s: _special(f"{FOLDER}/link", tarfile.SYMTYPE, str(s)),
            f"{FOLDER}/link",
            "is a symbolic link to '{sentinel}'",
        ),
        (lambda s: _special(f"{FOLDER}/hard", tarfile.LNKTYPE, str(s)), f"{FOLDER}/hard", "is a hard link to"),
        (
            lambda s: _special(f"{FOLDER}/hard", tarfile.LNKTYPE, f"{FOLDER}/test_batch"),
            f"{FOLDER}/hard",
            f"is a hard link to '{FOLDER}/test_batch'",
        ),
        (lambda s: _special(f"{FOLDER}/tty", tarfile.CHRTYPE), f"{FOLDER}/tty", "is a character device"),
        (lambda s: _special(f"{FOLDER}/disk", tarfile.BLKTYPE), f"{FOLDER}/disk", "is a block device"),
        (lambda s: _special(f"{FOLDER}/pipe", tarfile.FIFOTYPE), f"{FOLDER}/pipe", "is a named pipe"),
        (
            lambda s: _sparse(f"{FOLDER}/holes", 64 << 20),
            f"{FOLDER}/holes",
            f"is a sparse file (declared {64 << 20} bytes)",
        ),
        (
            lambda s: _special(f"{FOLDER}/contiguous", tarfile.CONTTYPE),
            f"{FOLDER}/contiguous",
            "is neither a plain file nor a folder (tar type b'7')",
        ),
        (lambda s: _file("elsewhere/readme"), "elsewhere/readme", f"lies outside {FOLDER}/"),
        (lambda s: _file(f"{FOLDER}/test_batch"), f"{FOLDER}/test_batch", "appears twice"),
        (
            lambda s: _file(f"{FOLDER}/test_batch/x"),
            f"{FOLDER}/test_batch/x",
            f"lies inside '{FOLDER}/test_batch', which is a file",
        ),
    ],
    ids=[
        "dotdot",
        "inner-dotdot",
        "absolute",
        "drive",
        "inner-drive",
        "backslash-dotdot",
        "symlink-then-write-through-it",
        "symlink-absolute",
        "hardlink-outside",
        "hardlink-inside",
        "char-device",
        "block-device",
        "fifo",
        "old-gnu-sparse",
        "contiguous",
        "outside-the-folder",
        "duplicate",
        "file-as-folder",
    ],
)
def test_unsafe_archives_are_refused_by_member_name(server, tmp_path, make, name, reason):
    sentinel = tmp_path / "sentinel"
    body = _tarball(tmp_path, make(sentinel))
    url = server.serve("/evil.tgz", body)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as info:
        download_CIFAR10(cache / FOLDER, url=url, md5=hashlib.md5(body).hexdigest(), progress=False)
    message = str(info.value)
    name, reason = (text.replace("{sentinel}", str(sentinel)) for text in (name, reason))
    assert f"refusing the archive from {url}: member {name!r} {reason}" in message
    assert "nothing was extracted" in message
    assert not sentinel.exists() and not (tmp_path / "src" / "sentinel").exists()
    assert _left_in(cache) == []


def test_an_archive_unpacking_to_more_than_cifar10_needs_is_refused_before_writing(server, tmp_path, monkeypatch):
    # The cap is a small margin over the real files (6 batches of 31.04 MB, batches.meta, readme.html: 186.2 MB);
    # lowered here so that the generated archive passes it: the member that crosses it is named.
    assert 186_214_114 < _cifar10.CIFAR10_UNPACKED_MAX < 1.1 * 186_214_114
    body = _tarball(tmp_path, _file(f"{FOLDER}/readme.html", b"x" * 5000))
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        sizes = [m.size for m in tar.getmembers() if m.isreg()]
    monkeypatch.setattr(_cifar10, "CIFAR10_UNPACKED_MAX", sum(sizes) - 1)
    url = server.serve("/big.tgz", body)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError) as info:
        download_CIFAR10(cache / FOLDER, url=url, md5=hashlib.md5(body).hexdigest(), progress=False)
    assert str(info.value) == (
        f"refusing the archive from {url}: with member '{FOLDER}/readme.html' its files hold {sum(sizes)} bytes, "
        f"more than the {sum(sizes) - 1} the data set needs; nothing was extracted"
    )
    assert _left_in(cache) == []


def test_a_symlink_to_an_empty_folder_is_filled_and_other_links_are_refused_before_fetching(server, archive, tmp_path):
    body, md5 = archive
    url = server.serve("/c.tgz", body)
    real = tmp_path / "disk" / "cifar"
    real.mkdir(parents=True)
    link = tmp_path / "cache" / FOLDER
    link.parent.mkdir()
    link.symlink_to(real)
    assert download_CIFAR10(link, url=url, md5=md5, progress=False) == str(link)
    assert link.is_symlink() and sorted(os.listdir(real)) == sorted(BATCH_NAMES + ("batches.meta",))
    assert _left_in(tmp_path / "disk") == ["cifar"] and _left_in(tmp_path / "cache") == [FOLDER]
    assert data_utils.load_CIFAR10(link)[0].shape == (5 * PER_BATCH, 32, 32, 3)
    assert download_CIFAR10(link, url=url, md5=md5, progress=False) == str(link)  # complete: kept
    assert server.count("/c.tgz") == 1
    (tmp_path / "file").write_bytes(b"")
    for name, to, what in [("dangling", tmp_path / "nowhere", "nothing"), ("to-file", tmp_path / "file", "a file")]:
        bad = tmp_path / "cache" / name
        bad.symlink_to(to)
        with pytest.raises(FileExistsError) as info:
            download_CIFAR10(bad, url=url, md5=md5, progress=False)
        assert f"{str(bad)!r} is a symbolic link to {str(to)!r}, which is {what}" in str(info.value)
        assert not (tmp_path / "nowhere").exists() and (tmp_path / "file").read_bytes() == b""
    assert server.count("/c.tgz") == 1


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs at ``tmp_path/small``, unmounted afterwards; skipped where mounting is not allowed."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("a tmpfs for ENOSPC needs root on Linux (mount -t tmpfs)")
    folder = tmp_path / "small"
    folder.mkdir()
    try:
        mount = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"mount -t tmpfs could not run: {err}")
    if mount.returncode != 0:
        pytest.skip(f"mount -t tmpfs was refused (no CAP_SYS_ADMIN here?): {mount.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def test_no_space_left_names_the_file_written(server, tmp_path, small_tmpfs):
    target = small_tmpfs / FOLDER
    # Downloading: 2 MiB into 1 MiB. A full disk is not reported as a network failure.
    body = os.urandom(2 << 20)
    url = server.serve("/big.tgz", body)
    with pytest.raises(OSError) as info:
        download_CIFAR10(target, url=url, md5=hashlib.md5(body).hexdigest(), progress=False)
    message = str(info.value)
    assert info.value.errno == errno.ENOSPC and info.value.filename.startswith(str(small_tmpfs / f".{FOLDER}.tmp-"))
    assert message.startswith(
        f"[Errno 28] No space left on device (downloading {url} for {str(target)!r}; nothing was kept): "
        f"'{small_tmpfs}/.{FOLDER}.tmp-"
    )
    assert _left_in(small_tmpfs) == []
    # Unpacking: a 3 MiB member of zeros compresses to a few kB.
    body = _tarball(tmp_path, _file(f"{FOLDER}/readme.html", bytes(3 << 20)))
    url = server.serve("/zeros.tgz", body)
    with pytest.raises(OSError) as info:
        download_CIFAR10(target, url=url, md5=hashlib.md5(body).hexdigest(), progress=False)
    assert info.value.errno == errno.ENOSPC and info.value.filename.endswith(f"/{FOLDER}/readme.html")
    assert f"(unpacking {url} for {str(target)!r}; nothing was kept): '{small_tmpfs}/.{FOLDER}.tmp-" in str(info.value)
    assert _left_in(small_tmpfs) == []


def test_archive_without_every_batch_is_refused(server, tmp_path):
    good = tarfile.open(fileobj=io.BytesIO(cifar10_tarball(tmp_path / "src", per_batch=1)), mode="r:gz")
    buf = io.BytesIO()
    with good, tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member in good.getmembers():
            if not member.name.endswith("data_batch_3"):
                tar.addfile(member, good.extractfile(member) if member.isreg() else None)
    body = buf.getvalue()
    url = server.serve("/c.tgz", body)
    with pytest.raises(ValueError, match=rf"the archive from {url} is not CIFAR-10: it lacks {FOLDER}/data_batch_3"):
        download_CIFAR10(tmp_path / "cache" / FOLDER, url=url, md5=hashlib.md5(body).hexdigest(), progress=False)
    assert _left_in(tmp_path / "cache") == []


def test_not_a_tarball_is_refused(server, tmp_path):
    body = b"<html>a captive portal</html>"
    url = server.serve("/c.tgz", body)
    with pytest.raises(ValueError, match=rf"the file from {url} is not a gzip-compressed tar archive"):
        download_CIFAR10(tmp_path / FOLDER, url=url, md5=hashlib.md5(body).hexdigest(), progress=False)
    assert _left_in(tmp_path) == []


def test_an_occupied_folder_is_never_written_into(server, archive, tmp_path):
    body, md5 = archive
    url = server.serve("/c.tgz", body)
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"exists and holds other files") as info:
        download_CIFAR10(target, url=url, md5=md5, progress=False)
    assert str(target) in str(info.value)
    assert _left_in(target) == ["notes.txt"] and _left_in(tmp_path) == ["mine"]
    assert server.count("/c.tgz") == 0  # refused before downloading 170 MB
    (target / FOLDER).mkdir()
    with pytest.raises(FileExistsError, match=rf"it holds {FOLDER}/, give that folder instead: '{target / FOLDER}'"):
        download_CIFAR10(target, url=url, md5=md5, progress=False)
    # An empty folder (made by hand beforehand) is filled.
    empty = tmp_path / "empty"
    empty.mkdir()
    download_CIFAR10(empty, url=url, md5=md5, progress=False)
    assert sorted(os.listdir(empty)) == sorted(BATCH_NAMES + ("batches.meta",))


def test_stale_temporaries_of_a_killed_run_are_removed(server, archive, tmp_path):
    body, md5 = archive
    url = server.serve("/c.tgz", body)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f".{FOLDER}.tmp-0123456789abcdef").write_bytes(b"half an archive")
    half = cache / f".{FOLDER}.tmp-fedcba9876543210" / FOLDER
    half.mkdir(parents=True)
    (half / "data_batch_1").write_bytes(b"half a batch")
    (cache / f".{FOLDER}.tmp-not-ours").write_text("kept")  # not a name xpnet makes
    download_CIFAR10(cache / FOLDER, url=url, md5=md5, progress=False)
    assert _left_in(cache) == [f".{FOLDER}.tmp-not-ours", FOLDER]


def test_concurrent_downloads_of_one_folder_download_once(server, archive, tmp_path, capsys):
    body, md5 = archive
    url = server.serve("/c.tgz", body)
    target = tmp_path / "cache" / FOLDER
    results, errors = [], []

    def run():
        try:
            results.append(download_CIFAR10(target, url=url, md5=md5, progress=False))
        except Exception as err:  # reported below, with the other thread's outcome
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and results == [str(target)] * 3
    assert server.count("/c.tgz") == 1
    assert _left_in(tmp_path / "cache") == [FOLDER]


def _cli(*args, env_extra=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if k not in ("XPNET_CIFAR10_DIR", "XPNET_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "xpnet.data_utils", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def test_cli_downloads_into_a_folder_and_says_how_to_use_it(server, archive, tmp_path):
    body, md5 = archive
    url = server.serve("/c.tgz", body)
    target = tmp_path / "cifar"
    result = _cli(
        "download-cifar10",
        str(target),
        "--url",
        url,
        "--md5",
        md5,
        "--no-progress",
        env_extra={"XPNET_CACHE_DIR": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert f"CIFAR-10 is in {str(target)!r}" in result.stdout
    assert f"XPNET_CIFAR10_DIR={target}" in result.stdout  # not the default folder: say how it is found
    assert sorted(os.listdir(target)) == sorted(BATCH_NAMES + ("batches.meta",))
    again = _cli("download-cifar10", str(target), "--url", url, "--md5", md5, "--no-progress")
    assert again.returncode == 0 and "already in" in again.stdout and server.count("/c.tgz") == 1


def test_cli_default_folder_needs_no_variable(server, archive, tmp_path):
    body, md5 = archive
    url = server.serve("/c.tgz", body)
    result = _cli("download-cifar10", "--url", url, "--md5", md5, env_extra={"XPNET_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert f"CIFAR-10 is in {str(tmp_path / FOLDER)!r}" in result.stdout
    assert "XPNET_CIFAR10_DIR" not in result.stdout
    assert _left_in(tmp_path) == [FOLDER]


@pytest.mark.parametrize("problem", ["404", "checksum"])
def test_cli_errors_are_one_line_without_traceback(server, archive, tmp_path, problem):
    body, md5 = archive
    url = server.serve("/c.tgz", body) if problem == "checksum" else server.serve("/c.tgz", status=404)
    result = _cli("download-cifar10", str(tmp_path / FOLDER), "--url", url, "--md5", "f" * 32)
    assert result.returncode == 1
    assert result.stdout.startswith(f"Downloading {url}") or result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and url in lines[0], result.stderr
    assert _left_in(tmp_path) == []


def test_cli_usage_errors():
    result = _cli("download-cifar10", "--md5", "not hex")
    assert result.returncode == 2 and "--md5 must be 32 hexadecimal digits, got 'not hex'" in result.stderr
    assert _cli().returncode == 2


def test_killed_download_never_looks_complete_and_the_next_run_cleans_up(server, archive, tmp_path):
    body, md5 = archive
    url = server.serve("/c.tgz", body, mode="stall")
    cache = tmp_path / "cache"
    cmd = [
        sys.executable,
        "-m",
        "xpnet.data_utils",
        "download-cifar10",
        str(cache / FOLDER),
        "--url",
        url,
        "--md5",
        md5,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert server.stalled.wait(30), "the download never started"
        deadline = time.monotonic() + 10
        while not [n for n in os.listdir(cache) if ".tmp-" in n and os.path.getsize(cache / n)]:
            assert time.monotonic() < deadline, "no temporary file was written"
            time.sleep(0.02)
    finally:
        proc.kill()  # SIGKILL: no cleanup runs
        proc.wait(10)
    server.release.set()
    assert FOLDER not in os.listdir(cache)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_CIFAR10_data(cifar10_dir=cache / FOLDER)
    server.serve("/c.tgz", body)
    download_CIFAR10(cache / FOLDER, url=url, md5=md5, progress=False)
    assert _left_in(cache) == [FOLDER]
    assert get_CIFAR10_data(10, 5, 5, cifar10_dir=cache / FOLDER)["X_train"].shape == (10, 3, 32, 32)


def test_a_local_archive_by_file_url(archive, tmp_path):
    # For a machine without internet access: the archive copied there by hand, given as a file:// URL.
    body, md5 = archive
    local = tmp_path / "cifar-10-python.tar.gz"
    local.write_bytes(body)
    folder = download_CIFAR10(tmp_path / FOLDER, url=local.as_uri(), md5=md5.upper(), progress=False)
    assert get_CIFAR10_data(10, 5, 5, cifar10_dir=folder)["X_test"].shape == (5, 3, 32, 32)


@pytest.mark.parametrize(
    "kwargs, error, expected",
    [
        ({"md5": "c58f30108f718f92721af3b95e74349"}, ValueError, "md5 must be 32 hexadecimal digits, got 'c58f"),
        ({"md5": 12}, TypeError, "md5 must be a str of 32 hexadecimal digits, got int"),
        ({"url": "ftp://example.org/c.tgz"}, ValueError, "url must start with https://, http:// or file://, got"),
        ({"url": b"http://x"}, TypeError, "url must be a str, got bytes"),
        ({"progress": "yes"}, TypeError, "progress must be True, False or None (auto), got 'yes'"),
        ({"timeout": 0}, ValueError, "timeout (seconds) must be a finite number > 0, got 0"),
        ({"timeout": float("nan")}, ValueError, "timeout (seconds) must be a finite number > 0, got nan"),
        ({"cifar10_dir": 3}, TypeError, "cifar10_dir must be a path (str or os.PathLike), got int"),
    ],
)
def test_download_arguments_are_checked_before_anything_happens(tmp_path, kwargs, error, expected):
    kwargs = {"cifar10_dir": tmp_path / "new" / FOLDER, "url": "http://127.0.0.1:9/never", **kwargs}
    with pytest.raises(error) as info:
        download_CIFAR10(**kwargs)
    assert str(info.value).startswith(expected)
    assert _left_in(tmp_path) == []


_SEGMENTS = st.sampled_from(["..", ".", "", FOLDER, "a", "C:", "~"])


@settings(max_examples=50, deadline=None)
@given(
    names=st.lists(
        st.tuples(st.lists(_SEGMENTS, min_size=1, max_size=4), st.sampled_from("/\\"), st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_any_member_names_extract_inside_the_folder_or_are_refused(tmp_path_factory, names):
    # Whatever the names, the archive is refused or everything it wrote lies inside <dest>/cifar-10-batches-py.
    root = tmp_path_factory.mktemp("fuzz")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for segments, sep, leading in names:
            info = tarfile.TarInfo(sep * leading + sep.join(segments))
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    archive = root / "a.tgz"
    archive.write_bytes(buf.getvalue())
    dest = root / "work" / "dest"
    dest.mkdir(parents=True)
    try:
        inner = _untar.extract(
            str(archive), str(dest), FOLDER, "http://test/a.tgz", max_bytes=1 << 20, target=str(root / "t")
        )
    except ValueError as err:
        assert "refusing the archive from http://test/a.tgz: member" in str(err)
        assert _left_in(dest) == []
    else:
        assert inner == str(dest / FOLDER)
        assert _left_in(dest) == [FOLDER] and _left_in(root / "work") == ["dest"]
    assert _left_in(root) == ["a.tgz", "work"]
