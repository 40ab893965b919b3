"""CIFAR-10 files in the official format, generated for tests: no test downloads the real data set.

The official ``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/`` with ``data_batch_1`` ... ``data_batch_5``,
``test_batch`` (Python 2 cPickle, protocol 2, each a dict of ``data`` uint8 (N, 3072), ``labels`` (N ints),
``batch_label``, ``filenames``) and ``batches.meta``. These helpers write the same, with random pixels.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile

import numpy as np

BATCH_NAMES = tuple(f"data_batch_{b}" for b in range(1, 6)) + ("test_batch",)
LABEL_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_RECONSTRUCT = np.zeros(1).__reduce__()[0]


class Py2Pickler(pickle._Pickler):
    """Writes a batch as Python 2 cPickle and NumPy 1 wrote the official CIFAR-10 files (protocol 2).

    ``bytes`` become Python 2 ``str`` (BINSTRING opcodes): loaded with ``encoding='latin1'`` these are ``str``, dict
    keys ``'data'`` and the array payload as text that NumPy decodes back to bytes, the exact path the real files
    take. Arrays are rebuilt by ``numpy.core.multiarray._reconstruct`` (NumPy 2 writes ``numpy._core``), and dtypes
    get Python 2 NumPy's integer ``align, copy`` arguments.
    """

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch = pickle._Pickler.dispatch.copy()
    dispatch[bytes] = save_py2_str

    def reducer_override(self, obj):
        if isinstance(obj, np.dtype):
            cls, (spec, _, _), state = obj.__reduce__()
            py2_str = tuple(v.encode() if isinstance(v, str) else v for v in state)
            return cls, (spec.encode(), 0, 1), py2_str
        return NotImplemented

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def write_py2_batch(path, data, labels, name="batch"):
    """A batch file in the official format; ``labels`` are written as given (ints in the real files)."""
    batch = {
        b"batch_label": name.encode(),
        b"labels": [int(v) if isinstance(v, np.integer) else v for v in labels],
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))],
    }
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(batch)
    return path


def write_cifar10_folder(root, per_batch: int = 20, seed: int = 0) -> dict:
    """Write a ``cifar-10-batches-py``-style folder at ``root`` (created): 5 data batches and a test batch of
    ``per_batch`` random images each, and ``batches.meta``. Returns ``{batch name: (data, labels)}``."""
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    raw = {}
    for name in BATCH_NAMES:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch)
        write_py2_batch(os.path.join(root, name), data, labels, name)
        raw[name] = (data, labels)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [n.encode() for n in LABEL_NAMES], b"num_vis": 3072}
    with open(os.path.join(root, "batches.meta"), "wb") as f:
        Py2Pickler(f, protocol=2).dump(meta)
    return raw


def cifar10_tarball(root, per_batch: int = 20, seed: int = 0) -> bytes:
    """The bytes of a ``cifar-10-python.tar.gz`` in the official layout, built from a folder written under
    ``root`` by :func:`write_cifar10_folder`."""
    folder = os.path.join(root, "cifar-10-batches-py")
    write_cifar10_folder(folder, per_batch, seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return buf.getvalue()
