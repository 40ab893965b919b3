"""Model files, as ``model.save(path)`` writes them: an :mod:`xpnet._npz` file holding the model's class name,
constructor configuration, params (``params.<name>``) and non-trainable state (``state.<name>``).

Reading checks the format and the metadata types here; the model class checks its configuration and each array
against the model it builds (:meth:`xpnet.classifiers.Model.load`).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from . import _metadata as M
from ._npz import read_npz, write_npz

__all__ = ["PARAMS_PREFIX", "STATE_PREFIX", "SavedModel", "read_model", "write_model"]

FORMAT, VERSION = "xpnet.model", 1
PARAMS_PREFIX, STATE_PREFIX = "params.", "state."
_check_meta = M.format_checker(
    FORMAT,
    VERSION,
    {"class": M.STR, "config": M.DICT},
    what="xpnet model file (written by model.save)",
    version_name="model file version",
)


def write_model(path, *, cls_name: str, config: dict, params: dict, state: dict) -> None:
    """Write a model file: its class name, constructor ``config``, ``params`` and non-trainable ``state``."""
    arrays = {f"{PARAMS_PREFIX}{k}": v for k, v in params.items()}
    arrays.update({f"{STATE_PREFIX}{k}": v for k, v in state.items()})
    meta = {"format": FORMAT, "version": VERSION, "class": cls_name, "config": config}
    write_npz(path, arrays, meta)


class SavedModel(NamedTuple):
    """A model file's contents, with its format and metadata types verified: NumPy arrays by name."""

    file: str
    cls_name: str
    config: dict
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray]


def read_model(path) -> SavedModel:
    """Read a file written by :func:`write_model` (``ValueError`` naming the file if it is not one)."""
    arrays, meta = read_npz(path, _check_meta)
    file = os.fspath(path)
    params = {k[len(PARAMS_PREFIX) :]: v for k, v in arrays.items() if k.startswith(PARAMS_PREFIX)}
    state = {k[len(STATE_PREFIX) :]: v for k, v in arrays.items() if k.startswith(STATE_PREFIX)}
    other = sorted(set(arrays) - {PARAMS_PREFIX + k for k in params} - {STATE_PREFIX + k for k in state})
    if other:
        raise ValueError(f"{file}: arrays {other} are neither params nor state of a model")
    return SavedModel(file, meta["class"], meta["config"], params, state)
