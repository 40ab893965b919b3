"""Old home of xpnet's file code, kept only until the modules that import it switch to the new ones:
:mod:`xpnet._atomic` (atomic writes, locks), :mod:`xpnet._npz` (the container), :mod:`xpnet._metadata` (typed
metadata checks), :mod:`xpnet._checkpoint` (the Solver's checkpoints) and :mod:`xpnet._model_file` (model files)."""

from __future__ import annotations

from ._atomic import check_writable, open_regular, try_lock
from ._metadata import check_keys
from ._model_file import PARAMS_PREFIX, STATE_PREFIX, SavedModel, read_model, write_model
from ._npz import Spec, check_array, read_npz, write_npz

__all__ = [
    "PARAMS_PREFIX",
    "STATE_PREFIX",
    "SavedModel",
    "Spec",
    "check_array",
    "check_keys",
    "check_writable",
    "open_regular",
    "read_model",
    "read_npz",
    "try_lock",
    "write_model",
    "write_npz",
]
