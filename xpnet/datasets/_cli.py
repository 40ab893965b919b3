"""``python -m xpnet.data_utils download-cifar10 [DIR]``: the command line of the data sets."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from . import _cifar10, _download
from ._cifar10 import CIFAR10_ENV
from ._cifar10_source import default_CIFAR10_dir, fetch_CIFAR10, locate_CIFAR10

__all__ = ["main"]


def _shell_assignment(name, value):
    if os.name == "nt":
        return f"set {name}={value}   (cmd)   or   $env:{name} = '{value}'   (PowerShell)"
    return f"export {name}={shlex.quote(value)}"


def main(argv=None):
    """``python -m xpnet.data_utils download-cifar10 [DIR]``: download CIFAR-10; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m xpnet.data_utils", description="Data sets for xpnet.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cifar = commands.add_parser(
        "download-cifar10",
        help="download and unpack CIFAR-10 (170 MB)",
        description="Download the official CIFAR-10 python archive, verify its MD5 and unpack its batches into DIR. "
        "Nothing is downloaded if DIR already holds them.",
    )
    cifar.add_argument(
        "dir",
        nargs="?",
        metavar="DIR",
        help="the folder to fill with data_batch_1 ... test_batch, new or empty (default: $XPNET_CIFAR10_DIR if "
        f"set, else {default_CIFAR10_dir()})",
    )
    cifar.add_argument("--url", default=_cifar10.CIFAR10_URL, help="a mirror of the archive (default: %(default)s)")
    cifar.add_argument(
        "--md5",
        default=_cifar10.CIFAR10_MD5,
        help="the archive's expected MD5 (default: the official one, %(default)s)",
    )
    cifar.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    args = parser.parse_args(argv)
    try:
        md5 = _download.check_md5(args.md5, name="--md5")
        url = _download.check_url(args.url, name="--url")
    except ValueError as err:
        cifar.error(str(err))
    try:
        folder, _ = locate_CIFAR10(args.dir)
        folder, downloaded = fetch_CIFAR10(folder, progress=args.progress, url=url, md5=md5)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; nothing was kept", file=sys.stderr)
        return 130
    print(f"CIFAR-10 is in {folder!r}" if downloaded else f"CIFAR-10 is already in {folder!r}; nothing downloaded")
    if os.path.abspath(locate_CIFAR10(None)[0]) != folder:
        print(
            "get_CIFAR10_data() finds it there once the environment variable is set: "
            f"{_shell_assignment(CIFAR10_ENV, folder)}   (or pass cifar10_dir={folder!r})"
        )
    return 0
