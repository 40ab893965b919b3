"""Where a sweep's trials run: Dask distributed imported lazily, the clusters a sweep starts, GPU ids.

Dask is an optional extra: importing :mod:`xpnet.sweep` and ``client="sequential"`` need none of it.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import subprocess
import sys
import types

__all__ = ["INSTALL", "check_main_guard", "import_distributed", "open_client", "visible_gpus"]

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


def _is_main_test(node: ast.expr) -> bool:
    """Whether ``node`` is ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq)):
        return False
    sides = {ast.dump(node.left), ast.dump(node.comparators[0])}
    return sides == {ast.dump(ast.Name("__name__", ast.Load())), ast.dump(ast.Constant("__main__"))}


def _guarded(source: str, line: int) -> bool:
    """Whether ``line`` of the module ``source`` lies inside an ``if __name__ == "__main__":`` block."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body:
            if node.body[0].lineno <= line <= (node.body[-1].end_lineno or node.body[-1].lineno):
                return True
    return False


def _guard_message(where: str) -> str:
    return (
        f"{where} calls sweep() when the script is imported: the LocalCluster's worker processes import the "
        'script again, so put that code under if __name__ == "__main__": (or pass client="sequential")'
    )


def check_main_guard(method: str) -> None:
    """Refuse, in one line, to start a LocalCluster from a script's unguarded top-level code.

    With the ``spawn`` and ``forkserver`` start methods (Dask's default is ``spawn``), every worker process
    imports the script's main module again as ``__mp_main__``: a ``sweep()`` at its top level then runs again in
    each worker, which cannot start a cluster of its own, and the parent saw only hundreds of lines of "Nanny
    failed to start". A script that is not a file (a notebook, ``python -c``, a REPL) is not imported again.
    """
    if method not in ("spawn", "forkserver"):
        return
    # The outermost module-level frame: the main module's top-level code, or (in a worker importing the script)
    # the script run as __mp_main__. Frames of modules the script imports lie in between.
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") in ("__main__", "__mp_main__"):
            break
        frame = frame.f_back
    if frame is None:  # not reached from a main module's top-level code (a thread, an embedding program)
        return
    path, line = frame.f_code.co_filename, frame.f_lineno
    if frame.f_globals["__name__"] == "__mp_main__":
        raise RuntimeError(_guard_message(f"{path}, line {line},"))
    if not path.endswith(".py"):  # python -c, a REPL, a notebook cell: nothing the workers import again
        return
    try:
        with open(path, encoding="utf-8") as fh:
            guarded = _guarded(fh.read(), line)
    except (OSError, SyntaxError, ValueError):  # nothing to read: no verdict rather than a wrong one
        return
    if not guarded:
        raise RuntimeError(_guard_message(f"{path}, line {line},"))


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
