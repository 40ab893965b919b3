"""Data sets as CS231n prepares them: CIFAR-10 from its python pickles, and the small digits set shipped with xpnet.

Everything here returns NumPy arrays on the host; the Solver moves them to the model's backend once. CIFAR-10
batches are read by a restricted unpickler (``xpnet.datasets._safe_pickle``) that builds only what the format
holds, so a tampered batch file cannot run code; every damaged or wrong file is a ValueError naming it.

Where CIFAR-10 is looked for, first match wins (a set place is never skipped for a later one):

1. the ``cifar10_dir`` argument;
2. the environment variable ``XPNET_CIFAR10_DIR``;
3. the cache folder ``<cache>/cifar-10-batches-py``, where ``<cache>`` is ``$XPNET_CACHE_DIR`` if set, else
   ``$XDG_CACHE_HOME/xpnet`` if that is set to an absolute path, else ``~/.cache/xpnet``.

``get_CIFAR10_data(download=True)``, :func:`download_CIFAR10` and ``python -m xpnet.data_utils download-cifar10
[DIR]`` download the official archive into that folder (or DIR) when it is absent. This module is the
CS231n-named face (as ``fast_layers`` is); the machinery is the package :mod:`xpnet.datasets`, whose ``_download``
says how a download is verified and unpacked.
"""

from __future__ import annotations

import sys

# The constants are not in __all__ (as before) but stay importable from here: the URL, MD5 and variable names.
from .datasets._cifar10 import CACHE_ENV as CACHE_ENV
from .datasets._cifar10 import CIFAR10_ENV as CIFAR10_ENV
from .datasets._cifar10 import CIFAR10_MD5 as CIFAR10_MD5
from .datasets._cifar10 import CIFAR10_URL as CIFAR10_URL
from .datasets._cifar10 import load_CIFAR10, load_CIFAR_batch
from .datasets._cifar10_source import default_CIFAR10_dir, download_CIFAR10
from .datasets._cli import main
from .datasets._digits import get_digits_data, load_digits
from .datasets._splits import get_CIFAR10_data

__all__ = [
    "load_CIFAR_batch",
    "load_CIFAR10",
    "get_CIFAR10_data",
    "download_CIFAR10",
    "default_CIFAR10_dir",
    "load_digits",
    "get_digits_data",
]

if __name__ == "__main__":
    sys.exit(main())
