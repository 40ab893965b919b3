"""Where a sweep's trials run: Dask distributed imported lazily, the clusters a sweep starts, GPU ids.

Dask is an optional extra: importing :mod:`xpnet.sweep` and ``client="sequential"`` need none of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess

__all__ = ["INSTALL", "import_distributed", "open_client", "visible_gpus"]

INSTALL = 'pip install "xpnet[distributed]"'


def import_distributed(what: str):
    """The ``distributed`` module, or an ``ImportError`` saying that ``what`` needs it and how to install it."""
    try:
        import distributed
    except ImportError:
        raise ImportError(
            f"{what} needs Dask distributed, which is not installed; install it with: {INSTALL} "
            "(client='sequential' runs without it)"
        ) from None
    return distributed


def visible_gpus() -> list[str]:
    """The ids of the GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` takes them: its own list when it is
    set, else one index per GPU ``nvidia-smi -L`` lists; ``ValueError`` when there is none."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        ids = [g.strip() for g in listed.split(",") if g.strip()]
        # CUDA stops at the first invalid entry; "-1" is the usual way to hide every GPU.
        ids = ids[: next((k for k, g in enumerate(ids) if g.startswith("-")), len(ids))]
        if not ids:
            raise ValueError(f"gpus='all' found no GPU: CUDA_VISIBLE_DEVICES is {listed!r}")
        return ids
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise ValueError(
            "gpus='all' found no GPU: CUDA_VISIBLE_DEVICES is not set and nvidia-smi is not on PATH; "
            "pass the ids, e.g. gpus=[0, 1]"
        )
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise ValueError(f"gpus='all' found no GPU: nvidia-smi -L failed ({err})") from None
    count = sum(line.startswith("GPU ") for line in out.splitlines())
    if count == 0:
        raise ValueError("gpus='all' found no GPU: nvidia-smi -L lists none")
    return [str(k) for k in range(count)]


@contextlib.contextmanager
def open_client(client, *, n_workers: int | None, gpus: list[str] | None, retries: int, timeout: float | None = None):
    """``(client, local)`` for a sweep: ``local`` says whether every worker runs on this machine's file system.

    ``None`` starts a LocalCluster (closed on exit): one single-threaded worker process per core, or one per GPU
    in ``gpus`` with ``CUDA_VISIBLE_DEVICES`` set to that GPU's id. A scheduler address connects a Client for the
    call; a ``distributed.Client`` is used as it is. ``timeout``: seconds to wait for the GPU workers to start.
    """
    distributed = import_distributed(f"client={client!r}" if isinstance(client, str) else "sweep(client=...)")
    if isinstance(client, distributed.Client):
        yield client, isinstance(getattr(client, "cluster", None), distributed.LocalCluster)
        return
    if isinstance(client, str):
        with distributed.Client(client, set_as_default=False) as own:
            yield own, False
        return
    import dask

    # A trial whose worker dies is rerun by the scheduler; the trial itself counts its attempts in checkpoint_dir
    # and reports "error" after `retries` deaths, so the scheduler must allow one run more than that.
    with dask.config.set({"distributed.scheduler.allowed-failures": retries + 1}):
        cluster = distributed.LocalCluster(
            n_workers=0 if gpus else n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # None would still bind :8787 and warn when another cluster holds it
        )
    with cluster, distributed.Client(cluster, set_as_default=False) as own:
        if gpus:
            template = cluster.new_spec
            for gpu in gpus:
                # CUDA reads the variable once, when the worker process first touches the GPU.
                options = {**template["options"], "env": {"CUDA_VISIBLE_DEVICES": gpu}}
                cluster.worker_spec[f"gpu-{gpu}"] = {**template, "options": options}
            cluster.scale(len(gpus))
            # Bounded: a GPU worker that cannot start would otherwise keep the sweep waiting for ever.
            own.wait_for_workers(len(gpus), timeout=timeout)
        yield own, True
