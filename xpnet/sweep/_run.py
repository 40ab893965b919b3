"""Running a sweep: ``grid``, ``sweep`` and ``local_client``, in this process or on a Dask cluster."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import _progress
from ._checks import (
    check_args,
    check_checkpoint_dir,
    check_halving,
    check_picklable,
    check_placement,
    check_timeouts,
    plain,
    rungs,
)
from ._cluster import check_main_guard, import_distributed, open_client
from ._results import SweepResults
from ._trial import Settings, empty_record, folder_lock, materialize, run_trial, solver_epochs

__all__ = ["grid", "sweep", "local_client"]


def grid(**axes: Iterable) -> list[dict]:
    """Every combination of the given values, as a list of config dicts in ``itertools.product`` order.

    ``grid(lr=[1e-3, 1e-2], reg=[0, 0.1])`` gives ``[{'lr': 0.001, 'reg': 0}, {'lr': 0.001, 'reg': 0.1},
    {'lr': 0.01, 'reg': 0}, {'lr': 0.01, 'reg': 0.1}]``: keys in the order given, the last varying fastest. NumPy
    scalars (from ``np.logspace``) become Python numbers. Each value must be an iterable (not a string) with at
    least one element.

    Parameters
    ----------
    **axes : iterable
        One keyword per config key, with its values.

    Returns
    -------
    list of dict
        The configs.
    """
    if not axes:
        raise ValueError("grid needs at least one keyword, e.g. grid(learning_rate=[1e-3, 1e-2])")
    values = {}
    for key, vals in axes.items():
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Iterable):
            raise TypeError(f"grid: {key} must be a list (or other iterable) of values, got {vals!r:.60}")
        values[key] = [plain(v) for v in vals]
        if not values[key]:
            raise ValueError(f"grid: {key} has no values")
    configs: list[dict[str, Any]] = [{}]
    for key, vals in values.items():
        configs = [{**c, key: v} for c in configs for v in vals]
    return configs


def _start_method() -> str:
    """How Dask starts a LocalCluster's worker processes (``spawn`` unless configured otherwise)."""
    import dask

    return str(dask.config.get("distributed.worker.multiprocessing-method", "spawn"))


def _trial_name(config: dict, index: int, seed: int) -> str:
    """The trial's file prefix in checkpoint_dir: the same trial of a rerun sweep finds its checkpoints again."""
    text = json.dumps([config, seed], sort_keys=True, default=repr)
    return f"trial_{index:04d}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def sweep(
    make_solver: Callable,
    configs: Sequence[Mapping],
    *,
    data,
    seed: int = 0,
    client=None,
    n_workers: int | None = None,
    gpus=None,
    checkpoint_dir=None,
    retries: int = 2,
    keep_params: bool = False,
    progress: bool | None = None,
    timeout: float | None = None,
    no_workers_timeout: float | None = 60.0,
    halving: Mapping | None = None,
) -> SweepResults:
    """Train ``make_solver(config, data)`` for every config, on a Dask cluster, and return every trial's record.

    Parameters
    ----------
    make_solver : callable
        ``(config, data) -> Solver``, returning an untrained :class:`xpnet.solver.Solver`. It runs on the workers,
        so it must be picklable (a module-level function, or one defined in a script or notebook). NumPy's global
        random state is seeded from ``(seed, i)`` before it runs for ``configs[i]``.
    configs : list of dict
        The configs (see :func:`grid`); ``results[i]`` is ``configs[i]``'s record.
    data : dict or callable
        ``X_train`` (N_train, ...), ``y_train`` (N_train,), ``X_val``, ``y_val`` (NumPy), sent to the cluster once
        per sweep as the result of a task, so a worker that dies with it is given it again; or a callable
        returning such a dict (a loader that reads the data where the workers run, for large data sets).
    seed : int, default 0
        In [0, 2**32); the same seed gives the same records on any cluster.
    client : None, str or distributed.Client, default None
        None starts a ``LocalCluster`` for this call (one single-threaded worker process per core, or
        ``n_workers``) and closes it after; a ``distributed.Client`` or a scheduler address
        (``"tcp://host:8786"``) uses that cluster; ``"sequential"`` runs the trials one after another in this
        process (debugging; needs no Dask). A script that starts a LocalCluster must call ``sweep`` under
        ``if __name__ == "__main__":``, because the worker processes import the script again.
    n_workers : int, optional
        With ``client=None``: how many worker processes (default: one per core).
    gpus : list of int or str, or 'all', optional
        With ``client=None``: a list of GPU ids, or ``"all"`` for every visible GPU (``CUDA_VISIBLE_DEVICES``,
        else ``nvidia-smi -L``). The LocalCluster gets one worker per GPU, its process started with
        ``CUDA_VISIBLE_DEVICES`` set to that id, so a trial on CuPy or torch ``"cuda"`` sees exactly one GPU.
    checkpoint_dir : str, path or False, optional
        A folder every worker can reach. Each trial writes its checkpoint there after every epoch; a trial whose
        worker dies (killed, out of memory, preempted) is rerun by Dask and resumes from its last checkpoint,
        ending with the record of an uninterrupted run. Default: a temporary folder (removed after) when the
        workers run on this machine (``client=None``, or a Client of a ``LocalCluster``); none for a scheduler
        address or ``"sequential"``. The same folder, configs and seed make a rerun sweep continue where an
        interrupted one stopped; use a fresh folder after changing ``make_solver``. One sweep at a time may use a
        folder: a second ``sweep`` given a folder in use is refused with a ``ValueError`` (both would train the
        same trials and delete each other's older checkpoints). False: no checkpoints (each is a durable, fsynced
        write per epoch, which shows in trials of a few seconds); a trial whose worker dies then restarts from
        scratch, still ending with the same record, since it is seeded.
    retries : int, default 2
        How many times a trial's worker may die before the trial is reported as ``"error"`` (counted in
        ``checkpoint_dir``, per call of ``sweep``; without one, the scheduler's
        ``distributed.scheduler.allowed-failures`` decides). A trial that raises is ``"error"`` at once: it is
        seeded, so a rerun would raise again.
    keep_params : bool, default False
        Put the best params (dict of NumPy arrays) in each record as ``best_params``.
    progress : bool or None, default None
        A tqdm bar over trials (done / total, best validation accuracy so far): None draws one in a terminal or
        a notebook with ipywidgets, True always, False never.
    timeout : float, optional
        Seconds the whole sweep may take on a Dask cluster (default: no limit). Trials not finished by then are
        ``"error"`` with ``"TimeoutError: ..."`` (a trial that is running keeps its checkpoints, so a rerun with
        the same ``checkpoint_dir`` resumes it; Dask cannot stop a running task, so on a cluster passed in it runs
        on until it ends).
    no_workers_timeout : float or None, default 60
        Seconds the cluster may have no worker at all while trials wait (None: wait for workers however long it
        takes, as for an adaptive cluster whose jobs queue). After that, the trials not finished are ``"error"``
        with ``"TimeoutError: the cluster has had no workers ..."`` instead of waiting forever (a nanny restarts a
        killed worker within seconds; a cluster whose nannies are gone gets no workers back).
    halving : dict, optional
        ``{"min_epochs": r, "eta": eta}`` (an int >= 1 and an int >= 2) runs synchronous successive halving: every
        config trains ``r`` epochs, the best ``ceil(n / eta)`` of the ``n`` trials of a rung (by ``best_val_acc``,
        ties to the lower config index; only ``"ok"`` trials) continue to ``r * eta`` epochs from their
        checkpoints, and so on while below the Solver's ``num_epochs``, which is the last rung (``r <=
        num_epochs``; every config's Solver must have the same ``num_epochs``, read from the first one
        ``make_solver`` builds). Resume is exact, so a trial that reaches the last rung has the record it would
        have without halving. The others end with status ``"stopped"`` and their histories up to where they
        stopped. Without a ``checkpoint_dir`` (``False``, or a scheduler address) a continuing trial trains again
        from its start, to the same record. Default None: every config trains ``num_epochs`` epochs.

    Returns
    -------
    SweepResults
        ``results[i]`` is a dict with ``config``, ``status`` (``"ok"``, ``"diverged"`` when the loss became
        non-finite, ``"error"`` when the trial raised or its worker died more than ``retries`` times), ``error``
        (None, or ``"ExceptionType: message"``; for a diverged trial the iteration), ``best_val_acc``,
        ``loss_history``, ``train_acc_history``, ``val_acc_history``, ``seconds`` (with halving, over all its
        rungs), ``worker`` (the worker's address, or ``"sequential"``), ``index``, ``epochs`` (the epochs it
        trained), ``rung`` (the last rung it ran, from 0; always 0 without halving; with halving ``status`` is
        ``"stopped"`` for a trial the schedule halted) and, with ``keep_params``, ``best_params``. A trial's
        failure never stops the sweep.
    """
    configs = check_args(make_solver, configs, data, seed, retries, keep_params, progress)
    schedule = check_halving(halving)
    gpu_ids = check_placement(client, n_workers, gpus)
    check_timeouts(timeout, no_workers_timeout)
    use_default = checkpoint_dir is None
    if not use_default:
        checkpoint_dir = check_checkpoint_dir(checkpoint_dir)
    names = [_trial_name(c, i, seed) for i, c in enumerate(configs)]
    run = uuid.uuid4().hex[:12]  # this call's attempt counters: another run's are not this one's retries
    if client == "sequential":
        with folder_lock(checkpoint_dir), tempfile.TemporaryDirectory(prefix="xpnet-sweep-") as scratch:
            if use_default and schedule is not None:  # the promoted trials continue from their checkpoints
                checkpoint_dir = scratch
            settings = Settings(seed, keep_params, checkpoint_dir, retries, run)
            return SweepResults(_sequential(make_solver, configs, names, data, settings, progress, schedule))
    import_distributed(f"client={client!r}")
    if client is None:
        check_main_guard(_start_method())
    check_picklable(make_solver, data)
    limits = _Limits(timeout, no_workers_timeout)
    with folder_lock(checkpoint_dir):
        opened = open_client(client, n_workers=n_workers, gpus=gpu_ids, retries=retries, timeout=no_workers_timeout)
        with opened as (dask_client, local):
            with tempfile.TemporaryDirectory(prefix="xpnet-sweep-") as scratch:
                if use_default and local:
                    checkpoint_dir = scratch
                settings = Settings(seed, keep_params, checkpoint_dir, retries, run)
                records = _distributed(
                    dask_client, make_solver, configs, names, data, settings, progress, limits, schedule
                )
                return SweepResults(records)


@contextlib.contextmanager
def local_client(n_workers: int | None = None, *, gpus=None, retries: int = 2):
    """A ``distributed.Client`` of a LocalCluster, as ``sweep(client=None)`` starts one, for several sweeps.

    ``with local_client(n_workers=2) as client: sweep(..., client=client)`` starts the worker processes once (one
    single-threaded worker per core by default, or one per GPU of ``gpus``) and closes them at the end; ``retries``
    should match the sweeps' (the scheduler allows one more run of a trial than that).

    Parameters
    ----------
    n_workers : int, optional
        How many worker processes (default: one per core, or one per GPU of ``gpus``).
    gpus : list of int or str, or 'all', optional
        As :func:`sweep`'s ``gpus``.
    retries : int, default 2
        As :func:`sweep`'s ``retries``.

    Yields
    ------
    distributed.Client
        The client; the cluster closes when the ``with`` block ends.
    """
    gpu_ids = check_placement(None, n_workers, gpus)
    import_distributed("local_client")
    check_main_guard(_start_method())
    with open_client(None, n_workers=n_workers, gpus=gpu_ids, retries=retries) as (client, _):
        yield client


class _Bar:
    """The sweep's progress bar: trials done / total, and the best validation accuracy so far."""

    def __init__(self, total: int, progress: bool | None):
        bar_class = _progress.bar_class(progress)
        self.bar = None if bar_class is None else bar_class(total=total, unit="trial", desc="sweep", dynamic_ncols=True)
        self.best = -math.inf

    def retotal(self, total: int) -> None:
        """With halving the bar counts a trial once per rung it runs; fewer continue when trials fail."""
        if self.bar is not None and self.bar.total != total:
            self.bar.total = total
            self.bar.refresh()

    def done(self, record: dict) -> None:
        if self.bar is None:
            return
        if record["status"] != "error" and record["best_val_acc"] is not None:
            self.best = max(self.best, record["best_val_acc"])
        if self.best > -math.inf:
            self.bar.set_postfix(best_val_acc=f"{self.best:.4f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _planned(n: int, num_rungs: int, eta: int) -> int:
    """How many trial runs a halving schedule makes when no trial fails: ``n + ceil(n / eta) + ...``."""
    total = 0
    for _ in range(num_rungs):
        total, n = total + n, math.ceil(n / eta)
    return total


def _with_rungs(settings: Settings, schedule: tuple[int, int] | None, num_epochs: int | None) -> Settings:
    """``settings`` with the halving schedule's rungs (none without halving, or when no config built a Solver, in
    which case each trial runs once and reports its own failure)."""
    if schedule is None or num_epochs is None:
        return settings
    return settings._replace(rungs=tuple(rungs(*schedule, num_epochs)))


def _carry(before: dict | None, after: dict) -> dict:
    """A trial's record after a rung, given its record after the rung before (None at the first)."""
    if before is None:
        return after
    after["seconds"] += before["seconds"]
    if after["status"] == "error" and not after["loss_history"]:
        # Lost before it could load its checkpoint (worker deaths, a timeout): it keeps what it had trained.
        for key in ("best_val_acc", "loss_history", "train_acc_history", "val_acc_history", "epochs", "best_params"):
            if key in before:
                after[key] = before[key]
    return after


def _halve(n: int, settings: Settings, eta: int, run_rung: Callable, bar: _Bar) -> list[dict]:
    """Every trial's record after running ``run_rung(indices, rung) -> {index: record}`` rung by rung, each rung
    on the best ``ceil(len(indices) / eta)`` "ok" trials of the rung before (ties to the lower index)."""
    records: dict[int, dict] = {}
    active = list(range(n))
    last = max(len(settings.rungs) - 1, 0)
    done = 0
    for rung in range(last + 1):
        for i, record in run_rung(active, rung).items():
            records[i] = _carry(records.get(i), record)
        done += len(active)
        if rung == last:
            break
        ok = [i for i in active if records[i]["status"] == "ok"]
        ranked = sorted(ok, key=lambda i: (-records[i]["best_val_acc"], i))
        promoted = sorted(ranked[: math.ceil(len(active) / eta)])
        for i in set(ok) - set(promoted):
            records[i]["status"] = "stopped"
        active = promoted
        bar.retotal(done + _planned(len(active), last - rung, eta))
        if not active:
            break
    return [records[i] for i in range(n)]


def _sequential(make_solver, configs, names, data, settings, progress, schedule) -> list[dict]:
    saved = np.random.get_state()  # the trials seed the global state; the caller's is put back after
    bar = None
    try:
        data = materialize(data)
        if schedule is not None:
            settings = _with_rungs(settings, schedule, solver_epochs(make_solver, configs, data, settings.seed))
        eta = 2 if schedule is None else schedule[1]
        bar = _Bar(_planned(len(configs), max(len(settings.rungs), 1), eta), progress)

        def run_rung(indices: list[int], rung: int) -> dict[int, dict]:
            out = {}
            for i in indices:
                out[i] = run_trial(make_solver, configs[i], i, names[i], data, settings, rung)
                bar.done(out[i])
            return out

        return _halve(len(configs), settings, eta, run_rung, bar)
    finally:
        if bar is not None:
            bar.close()
        np.random.set_state(saved)


def _future_exception(future) -> BaseException:
    """What a failed or cancelled trial's future raised (a failed dependency, such as the data, included)."""
    try:
        return future.exception(timeout=10)
    except BaseException as err:  # CancelledError and its kin are raised, not returned
        return err


class _Limits(NamedTuple):
    """How long a distributed sweep may wait: in all, and with no worker to run its trials (seconds or None)."""

    timeout: float | None
    no_workers_timeout: float | None


_POLL = 0.2  # seconds between looks at the finished trials while none is ready
_WORKERS_POLL = 1.0  # seconds between asking the scheduler how many workers it has


class _Watch:
    """Why a distributed sweep should stop waiting, or None: the deadline passed, or no worker for too long."""

    def __init__(self, client, limits: _Limits):
        self.client, self.limits = client, limits
        self.start = time.monotonic()
        self.asked = -math.inf
        self.no_workers_since: float | None = None
        self.gave: str | None = None  # once given, the reason stands: a later rung's trials are not waited for

    def _workers(self) -> int:
        try:
            return len(self.client.nthreads(callback_timeout=10))
        except Exception:  # a scheduler that does not answer runs nothing either
            return 0

    def reason(self) -> str | None:
        if self.gave is None:
            self.gave = self._reason()
        return self.gave

    def _reason(self) -> str | None:
        now = time.monotonic()
        timeout, no_workers = self.limits
        if timeout is not None and now - self.start >= timeout:
            return f"TimeoutError: the sweep ran past timeout={timeout:g} s before this trial finished"
        if no_workers is None or now - self.asked < _WORKERS_POLL:
            return None
        self.asked = now
        if self._workers():
            self.no_workers_since = None
            return None
        if self.no_workers_since is None:
            self.no_workers_since = now
        if now - self.no_workers_since < no_workers:
            return None
        return (
            f"TimeoutError: the cluster has had no workers for {now - self.no_workers_since:.0f} s "
            f"(no_workers_timeout={no_workers:g}), so this trial could not run; start workers (or use a cluster "
            "whose nannies restart them) and rerun"
        )


def _wait(future, watch: _Watch):
    """``future``'s result, or ``TimeoutError`` with the watch's reason to stop waiting."""
    while not future.done():
        reason = watch.reason()
        if reason is not None:
            raise TimeoutError(reason)
        time.sleep(_POLL)
    return future.result()


def _distributed(
    client, make_solver, configs, names, data, settings, progress, limits: _Limits, schedule
) -> list[dict]:
    from distributed import as_completed

    token = uuid.uuid4().hex[:12]
    # The data is a task's result, not a scattered future: the scheduler keeps the task and recomputes it when the
    # last worker holding the data dies, whereas scattered data lives only on workers and dies with them (on a
    # one-worker cluster every later trial would fail). Each worker fetches it once, from a peer, and keeps it.
    data_future = client.submit(materialize, data, key=f"xpnet-sweep-data-{token}", pure=False)
    watch = _Watch(client, limits)

    def failed(i: int, message: str) -> dict:
        record = {**empty_record(configs[i], i), "error": message}
        if settings.keep_params:
            record["best_params"] = {}
        return record

    pending: dict = {}
    bar = None
    try:
        if schedule is not None:
            probe = client.submit(
                solver_epochs, make_solver, configs, data_future, settings.seed, key=f"xpnet-sweep-epochs-{token}"
            )
            try:
                num_epochs = _wait(probe, watch)
            except TimeoutError as err:
                return [failed(i, str(err)) for i in range(len(configs))]
            except Exception:  # the data failed: every trial reports it, with no schedule to follow
                num_epochs = None
            finally:
                probe.release()
            settings = _with_rungs(settings, schedule, num_epochs)
        eta = 2 if schedule is None else schedule[1]
        bar = _Bar(_planned(len(configs), max(len(settings.rungs), 1), eta), progress)

        def run_rung(indices: list[int], rung: int) -> dict[int, dict]:
            for i in indices:
                future = client.submit(
                    run_trial,
                    make_solver,
                    configs[i],
                    i,
                    names[i],
                    data_future,
                    settings,
                    rung,
                    key=f"xpnet-sweep-trial-{i}-{rung}-{token}",
                    pure=False,
                )
                pending[future.key] = (i, future)
            records: dict[int, dict] = {}
            # Polled rather than iterated: iterating as_completed blocks for as long as no trial finishes, which is
            # forever on a cluster that lost all its workers.
            done = as_completed(
                [f for _, f in pending.values()], loop=client.loop, with_results=True, raise_errors=False
            )
            while pending:
                batch = done.next_batch(block=False)
                if not batch:
                    reason = watch.reason()
                    if reason is not None:
                        for i, future in pending.values():
                            records[i] = record = failed(i, reason)
                            future.cancel()
                            bar.done(record)
                        pending.clear()
                        break
                    time.sleep(_POLL)
                    continue
                for future, result in batch:
                    i, _ = pending.pop(future.key)
                    # Judged by the result, not by future.status, which turns "lost" again when the worker holding
                    # a finished record dies before it is read here. Not a record: KilledWorker past the
                    # scheduler's limit, the data failed ((type, exception, traceback)), or cancelled (the
                    # exception).
                    if not isinstance(result, dict):
                        exc = result[1] if isinstance(result, tuple) and len(result) == 3 else result
                        if not isinstance(exc, BaseException):
                            exc = _future_exception(future)
                        result = failed(i, f"{type(exc).__name__}: {exc}")
                    records[i] = result
                    # Released once its result is here: a finished trial whose worker dies later is not run again.
                    future.release()
                    bar.done(result)
            return records

        return _halve(len(configs), settings, eta, run_rung, bar)
    finally:
        if bar is not None:
            bar.close()
        for _, future in pending.values():
            future.cancel()
        data_future.release()
