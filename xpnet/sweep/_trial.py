"""One trial of a sweep, as it runs on a worker (or in this process with ``client="sequential"``).

A trial is a pure function of ``(make_solver, config, index, data, seed)``: NumPy's global random state is seeded
from ``(seed, index)`` before ``make_solver`` runs, and a resumed trial takes everything else from its checkpoint,
so which worker runs it, when, and how often it was interrupted does not change its record.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import re
import socket
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .._atomic import atomic_write_text, try_lock
from .._backend import to_numpy
from ..solver import NonFiniteLossError, Solver

__all__ = ["Settings", "run_trial", "solver_epochs", "materialize", "empty_record", "folder_lock"]


class Settings(NamedTuple):
    """What every trial of one sweep shares."""

    seed: int
    keep_params: bool
    checkpoint_dir: str | None
    retries: int
    run: str  # this sweep call's id: its trials count their attempts in files of their own
    rungs: tuple[int, ...] = ()  # with halving: the epochs each rung trains to, the last being num_epochs


def materialize(data):
    """The data dict: ``data`` itself, or what ``data()`` returns (a loader that runs where the trials run)."""
    data = data() if callable(data) else data
    if not isinstance(data, dict):
        raise TypeError(f"data() must return a dict with X_train, y_train, X_val, y_val, got {type(data).__name__}")
    return data


def empty_record(config: dict, index: int) -> dict:
    """A record before its trial has produced anything (``status`` "error" until it does)."""
    return {
        "index": index,
        "config": dict(config),
        "status": "error",
        "error": None,
        "best_val_acc": None,
        "loss_history": [],
        "train_acc_history": [],
        "val_acc_history": [],
        "seconds": 0.0,
        "worker": None,
        "epochs": 0,
        "rung": 0,
    }


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not inside a Dask worker
        return "sequential"


def _epoch_files(prefix: str) -> list[tuple[int, str]]:
    """``(epoch, path)`` of the trial's checkpoints (the Solver writes ``f"{prefix}_epoch_{epoch}.npz"``)."""
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r"_epoch_(\d+)\.npz")
    found = []
    for path in glob.glob(glob.escape(prefix) + "_epoch_*.npz"):
        match = pattern.fullmatch(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _read_count(path: str) -> int:
    try:
        with open(path) as fh:
            return int(fh.read().strip() or 0)
    except FileNotFoundError:
        return 0


def _write_count(path: str, count: int) -> None:
    atomic_write_text(path, str(count))  # fsynced: the count of a worker that dies must survive it


LOCK_NAME = ".xpnet-sweep.lock"


@contextlib.contextmanager
def folder_lock(folder: str | None) -> Iterator[None]:
    """Hold ``folder``'s sweep lock for the block, or raise ``ValueError`` saying which sweep holds it.

    Two sweeps in one folder would train the same trials twice at once and delete each other's older checkpoints
    (each trial keeps only its newest), so the second is refused rather than made to cooperate. The lock is an
    OS file lock: it goes with the process that held it, so a killed sweep leaves no stale lock behind. Attempt
    counters left by earlier, interrupted sweeps are removed once the lock is held.
    """
    if folder is None:
        yield
        return
    path = os.path.join(folder, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        if not try_lock(fd):
            holder = ""
            with contextlib.suppress(OSError):
                holder = os.read(fd, 200).decode(errors="replace").strip()
            raise ValueError(
                f"checkpoint_dir {folder!r} is in use by another sweep ({holder or 'holder unknown'}); give each "
                "sweep that runs at the same time its own checkpoint_dir, or wait for that one to finish"
            )
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}".encode())
        for stale in glob.glob(os.path.join(glob.escape(folder), "trial_*.attempts*")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stale)
        yield
    finally:
        os.close(fd)  # releases the lock


def solver_epochs(make_solver, configs: list[dict], data, seed: int) -> int | None:
    """The ``num_epochs`` of the first Solver that ``make_solver`` builds for ``configs`` (seeded as its trial
    would be), or None when it builds none: the halving schedule's last rung, known before any trial trains."""
    data = materialize(data)
    for i, config in enumerate(configs):
        np.random.seed([seed, i])
        try:
            solver = make_solver(dict(config), data)
        except Exception:  # that trial will report it; the next config may build
            continue
        if isinstance(solver, Solver):
            return solver.num_epochs
    return None


def run_trial(make_solver, config: dict, index: int, name: str, data, settings: Settings, rung: int = 0) -> dict:
    """Build trial ``index``'s Solver with ``make_solver(config, data)``, train it (resuming from its last
    checkpoint in ``settings.checkpoint_dir``, if any) and return its record. Exceptions become records.

    With halving (``settings.rungs``) the trial trains only to the epochs of rung ``rung``, continuing from its
    checkpoint of the rung before: the Solver's ``num_epochs`` is lowered to that, which changes no update, only
    where :meth:`~xpnet.solver.Solver.train` stops.
    """
    begin = time.perf_counter()
    target = settings.rungs[rung] if settings.rungs else None
    record = empty_record(config, index)
    record["rung"] = rung
    record["worker"] = _worker_name()
    if settings.keep_params:
        record["best_params"] = {}
    prefix = counter = None
    if settings.checkpoint_dir is not None:
        os.makedirs(settings.checkpoint_dir, exist_ok=True)
        prefix = os.path.join(settings.checkpoint_dir, name)
        # Attempts that started and never finished: each one lost its worker process (a finished attempt, even one
        # that raised, removes the file). Per sweep call: retries are this call's, not an earlier interrupted one's.
        counter = f"{prefix}.attempts-{settings.run}"
        died = _read_count(counter)
        if died > settings.retries:
            record["error"] = (
                f"KilledWorker: the worker process running this trial died {died} times "
                f"(retries={settings.retries}); its checkpoints are in {settings.checkpoint_dir}"
            )
            record["seconds"] = time.perf_counter() - begin
            return record
        _write_count(counter, died + 1)
    solver = None
    try:
        np.random.seed([settings.seed, index])  # model weights (and unseeded samplers) draw from the global state
        solver = make_solver(dict(config), materialize(data))
        if not isinstance(solver, Solver):
            raise TypeError(f"make_solver must return an xpnet.solver.Solver, got {type(solver).__name__}")
        # "raise" rather than the default "stop": the error carries the iteration, and no warning filter (which is
        # process-wide, not thread-safe) is needed to notice it.
        solver.on_nonfinite = "raise"
        if target is not None:
            if solver.num_epochs != settings.rungs[-1]:
                raise ValueError(
                    f"halving needs every config's Solver to have the same num_epochs (the last rung), "
                    f"{settings.rungs[-1]} as for the first config, got {solver.num_epochs}"
                )
            solver.num_epochs = target
        if prefix is not None:
            solver.checkpoint_name = prefix
            # A rerun sweep may hold checkpoints past this rung (kept from an earlier run's later rungs).
            saved = [(e, p) for e, p in _epoch_files(prefix) if target is None or e <= target]
            if saved:
                solver.load_checkpoint(saved[-1][1])
        solver.train()
        record["status"] = "ok"
    except NonFiniteLossError as err:
        record["status"], record["error"] = "diverged", f"NonFiniteLossError: {err}"
    except Exception as err:  # the sweep goes on; the record says what went wrong
        record["error"] = f"{type(err).__name__}: {err}"
    finally:
        if counter is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(counter)
    if isinstance(solver, Solver):
        _fill(record, solver, settings.keep_params)
    if prefix is not None:
        # The last checkpoint stays: a finished result lost with its worker is recomputed from it (no training).
        # So do those at rung ends: the next rung continues from them, and a rerun sweep finds every rung's.
        for epoch, path in _epoch_files(prefix)[:-1]:
            if epoch in settings.rungs:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    record["seconds"] = time.perf_counter() - begin
    return record


def _fill(record: dict, solver: Solver, keep_params: bool) -> None:
    record["epochs"] = int(solver.epoch)
    record["loss_history"] = [float(v) for v in solver.loss_history]
    record["train_acc_history"] = [float(v) for v in solver.train_acc_history]
    record["val_acc_history"] = [float(v) for v in solver.val_acc_history]
    if record["status"] != "error" or solver.val_acc_history:
        record["best_val_acc"] = float(solver.best_val_acc)
    if keep_params:
        record["best_params"] = {k: np.asarray(to_numpy(v)) for k, v in solver.best_params.items()}


def final_loss(record: dict[str, Any]) -> float:
    """Mean of the last 100 losses; NaN for a trial without losses or whose losses were not all finite."""
    losses = record.get("loss_history") or []
    if not losses or not all(math.isfinite(v) for v in losses):
        return float("nan")
    return float(np.mean(losses[-100:]))
