"""The sweep's argument checks, each refusing by name before any work starts (and ``plain``, the configs' values)."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._atomic import check_writable
from .._validation import check_flag, check_int, check_progress
from ..solver import check_data
from ._cluster import visible_gpus

__all__ = [
    "check_args",
    "check_placement",
    "check_checkpoint_dir",
    "check_timeouts",
    "check_picklable",
    "check_halving",
    "rungs",
    "plain",
]


def plain(value: Any) -> Any:
    """NumPy scalars as Python ones, so configs print, compare and save as plain values."""
    return value.item() if isinstance(value, np.generic) else value


def check_args(make_solver, configs, data, seed, retries, keep_params, progress) -> list[dict]:
    if not callable(make_solver):
        raise TypeError(f"make_solver must be a callable (config, data) -> Solver, got {type(make_solver).__name__}")
    if isinstance(configs, Mapping) or not isinstance(configs, Sequence):
        raise TypeError(f"configs must be a list of dicts (see grid()), got {type(configs).__name__}")
    if not configs:
        raise ValueError("configs is empty: a sweep needs at least one config")
    for i, c in enumerate(configs):
        if not isinstance(c, Mapping):
            raise TypeError(f"configs[{i}] must be a dict, got {type(c).__name__}")
        # Records are saved as JSON, whose object keys are strings: an int key would come back as a str.
        bad = [k for k in c if not isinstance(k, str)]
        if bad:
            raise TypeError(
                f"configs[{i}] keys must be str (the names of hyperparameters), got {bad[0]!r} "
                f"of type {type(bad[0]).__name__}"
            )
    if isinstance(data, Mapping) or not callable(data):
        try:
            check_data(data)  # the Solver's own check: a dict with X_train, y_train, X_val and y_val
        except TypeError as err:
            raise TypeError(f"{err}; or give a callable that returns such a dict") from None
    check_int(seed, "seed", low=0, high=2**32 - 1)
    check_int(retries, "retries", low=0)
    check_flag(keep_params, "keep_params")
    check_progress(progress)
    return [{k: plain(v) for k, v in c.items()} for c in configs]


def check_placement(client, n_workers, gpus) -> list[str] | None:
    if not (client is None or client == "sequential" or isinstance(client, str) or hasattr(client, "submit")):
        raise TypeError(
            f"client must be None (a LocalCluster), 'sequential', a scheduler address or a distributed.Client, "
            f"got {type(client).__name__}"
        )
    if n_workers is not None:
        if isinstance(n_workers, bool) or not isinstance(n_workers, numbers.Integral) or n_workers < 1:
            raise ValueError(f"n_workers must be an int >= 1 or None (one per core), got {n_workers!r}")
        if client is not None:
            raise ValueError(f"n_workers is for the LocalCluster of client=None; got client={client!r}")
    if gpus is None:
        return None
    if client is not None:
        raise ValueError(f"gpus starts a LocalCluster with one worker per GPU, so it needs client=None, got {client!r}")
    if n_workers is not None:
        raise ValueError("give gpus or n_workers, not both: with gpus there is one worker per GPU")
    if gpus == "all":
        return visible_gpus()
    if isinstance(gpus, (str, bytes)) or not isinstance(gpus, Iterable):
        raise TypeError(f"gpus must be a list of GPU ids (such as [0, 1]) or 'all', got {gpus!r}")
    ids = [_gpu_id(g, k) for k, g in enumerate(gpus)]
    if not ids or len(set(ids)) != len(ids):
        raise ValueError(f"gpus must list distinct GPU ids, at least one, got {gpus!r}")
    return ids


def _gpu_id(gpu, k: int) -> str:
    """One entry of ``gpus`` as ``CUDA_VISIBLE_DEVICES`` takes it: an index, or a ``GPU-``/``MIG-`` UUID."""
    gpu = plain(gpu)
    if isinstance(gpu, numbers.Integral) and not isinstance(gpu, bool):
        if gpu < 0:
            raise ValueError(f"gpus[{k}] must be a GPU index >= 0, got {gpu!r}")
        return str(int(gpu))
    if isinstance(gpu, str) and (gpu.isdigit() or gpu.startswith(("GPU-", "MIG-"))) and "," not in gpu:
        return gpu.strip()
    raise TypeError(
        f"gpus[{k}] must be a GPU index (an int such as 0) or a 'GPU-...'/'MIG-...' UUID, as CUDA_VISIBLE_DEVICES "
        f"takes them, got {gpu!r} of type {type(gpu).__name__}"
    )


def check_checkpoint_dir(checkpoint_dir) -> str | None:
    """``checkpoint_dir`` as an absolute path (created and checked writable), or None for False."""
    if checkpoint_dir is False:
        return None
    if isinstance(checkpoint_dir, bool) or not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(
            f"checkpoint_dir must be a folder (str or os.PathLike), None (the default) or False (no checkpoints), "
            f"got {checkpoint_dir!r} of type {type(checkpoint_dir).__name__}"
        )
    folder = os.fspath(checkpoint_dir)
    if not isinstance(folder, str):
        raise TypeError(f"checkpoint_dir must be a str path, got bytes {folder!r}")
    check_writable(os.path.join(folder, "trial"), name="checkpoint_dir")
    return os.path.abspath(folder)


def check_timeouts(timeout, no_workers_timeout) -> None:
    for name, value in (("timeout", timeout), ("no_workers_timeout", no_workers_timeout)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
        if not (float(value) > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number of seconds > 0 or None, got {value!r}")


def check_picklable(make_solver, data) -> None:
    """Refuse, by name, what cannot travel to the workers (Dask would say only 'Could not serialize object')."""
    from distributed.protocol import pickle  # what Dask itself pickles a task's function and arguments with

    for name, value in (("make_solver", make_solver), ("data", data if callable(data) else None)):
        if value is None:
            continue
        try:
            pickle.dumps(value)
        except Exception as err:
            raise TypeError(
                f"{name} must be picklable, since it runs on the Dask workers (a module-level function, or a "
                f"functools.partial of one with picklable arguments), but pickling it failed: "
                f"{type(err).__name__}: {err}"
            ) from None


_HALVING_KEYS = ("min_epochs", "eta")


def check_halving(halving) -> tuple[int, int] | None:
    """``(min_epochs, eta)`` of a ``halving`` dict, or None for None; ``min_epochs <= num_epochs`` is checked once
    the Solver's ``num_epochs`` is known (:func:`rungs`)."""
    if halving is None:
        return None
    if not isinstance(halving, Mapping):
        raise TypeError(f'halving must be None or a dict such as {{"min_epochs": 1, "eta": 3}}, got {halving!r:.60}')
    unknown = [k for k in halving if k not in _HALVING_KEYS]
    if unknown:
        raise ValueError(f"halving has the unknown key {unknown[0]!r}; its keys are {list(_HALVING_KEYS)}")
    missing = [k for k in _HALVING_KEYS if k not in halving]
    if missing:
        raise ValueError(f"halving lacks the key {missing[0]!r}; give both, e.g. {{'min_epochs': 1, 'eta': 3}}")
    min_epochs = check_int(halving["min_epochs"], "halving['min_epochs']", low=1)
    eta = check_int(halving["eta"], "halving['eta']", low=2)
    return min_epochs, eta


def rungs(min_epochs: int, eta: int, num_epochs: int) -> list[int]:
    """The epochs each rung trains to: ``min_epochs``, ``min_epochs * eta``, ... while below ``num_epochs``, then
    ``num_epochs`` (the last rung); ``ValueError`` naming the key when ``min_epochs > num_epochs``."""
    if min_epochs > num_epochs:
        raise ValueError(
            f"halving['min_epochs'] must be <= the Solver's num_epochs={num_epochs} (the last rung), got {min_epochs}"
        )
    epochs, out = min_epochs, []
    while epochs < num_epochs:
        out.append(epochs)
        epochs *= eta
    return [*out, num_epochs]
