"""CS231n's own assignment-2 notebooks, of three editions, run on xpnet in a real Jupyter kernel and print their
numbers.

``notebooks/<edition>/*.ipynb`` are completed notebooks of students (``notebooks/SOURCES.md`` says whose), with the
text each cell printed in the student's run; ``notebooks/seed/`` holds the BatchNormalization notebook xpnet was
specified from. Each runs in an ipykernel started by nbclient, as Jupyter runs it,
after the conversion rule of ``notebook_rules.py`` (``cs231n`` -> ``xpnet`` in import lines; environment-only
cells skipped), in a folder laid out as CS231n's assignment folder: CIFAR-10 of the official size and format
(random pixels) in ``cs231n/datasets/cifar-10-batches-py``, found by the notebook's own ``get_CIFAR10_data()``
there, and generated ``notebook_images``. Every cell's output is then judged by ``notebook_rules.compare``.

The notebooks run concurrently, one kernel per core (BLAS single-threaded in each): the first test to need a
result starts every selected notebook.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import sys
import threading
from pathlib import Path

import nbclient
import nbformat
import numpy as np
import pytest

from cifar_format import write_cifar10_folder
from notebook_rules import compare, compare_figures, convert, data_cells, is_environment_cell

NOTEBOOKS = Path(__file__).parent / "notebooks"
EDITIONS = sorted(NOTEBOOKS.glob("*/*.ipynb"))
REPO = Path(__file__).resolve().parents[1]
CELL_TIMEOUT = 900  # seconds; the longest cell (a training run) takes about a minute


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def _stdout(outputs) -> str:
    return "".join("".join(o["text"]) for o in outputs if o.get("output_type") == "stream" and o["name"] == "stdout")


def _stderr(outputs) -> str:
    return "".join("".join(o["text"]) for o in outputs if o.get("output_type") == "stream" and o["name"] == "stderr")


def _figures(outputs) -> list[str]:
    """The text Jupyter keeps of each displayed figure (``<Figure size 1000x800 with 1 Axes>``)."""
    return ["".join(o["data"].get("text/plain", "")) for o in outputs if o.get("output_type") == "display_data"]


def _write_images(folder: Path) -> None:
    """The assignment's kitten (wide) and puppy (square) photos, as JPEGs of random pixels."""
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name, shape in (("kitten", (240, 320, 3)), ("puppy", (240, 240, 3))):
        Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(folder / f"{name}.jpg")


def _assignment_folder(root: Path, cifar10: Path) -> Path:
    """A folder as CS231n hands it out: the data where get_datasets.sh puts it, the images where each edition
    reads them (``cs231n/notebook_images``, the 2019 edition ``notebook_images``)."""
    datasets = root / "cs231n" / "datasets"
    datasets.mkdir(parents=True)
    (datasets / "cifar-10-batches-py").symlink_to(cifar10, target_is_directory=True)
    _write_images(root / "cs231n" / "notebook_images")
    shutil.copytree(root / "cs231n" / "notebook_images", root / "notebook_images")
    return root


def _kernel_env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XPNET_CIFAR10_DIR", "MPLBACKEND", "PYTEST_ADDOPTS")}
    return {
        **env,
        "XPNET_CACHE_DIR": str(cache),  # empty: the data is found where the course puts it
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        # One kernel per core: BLAS threads would only compete.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def prepare(path: Path):
    """``(notebook to run, skipped cell ids)``: the saved notebook's code cells, converted, without environment-only
    cells (their ids are returned) and empty ones."""
    notebook = nbformat.read(path, as_version=4)
    skipped = []
    cells = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue  # an empty cell prints nothing, and Jupyter does not run it
        if is_environment_cell(cell.source):
            skipped.append(cell.id)
            continue
        cells.append(nbformat.v4.new_code_cell(convert(cell.source), id=cell.id))
    notebook.cells = cells
    return notebook, skipped


async def _run(path: Path, folder: Path, env: dict) -> dict:
    notebook, skipped = prepare(path)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
        allow_errors=False,
    )
    error = None
    try:
        await client.async_execute(env=env, cwd=str(folder))
    except nbclient.exceptions.CellExecutionError as err:
        error = str(err)
    ran = [c for c in notebook.cells if c.get("execution_count") is not None or c.outputs]
    return {"cells": {c.id: c.outputs for c in ran}, "skipped": skipped, "error": error}


class Runs:
    """Every selected notebook, run concurrently in a background event loop; ``result(path)`` waits for one."""

    def __init__(self, paths, workdir: Path, cifar10: Path, workers: int):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._slots = asyncio.Semaphore(workers)
        self._futures = {}
        for i, path in enumerate(paths):
            folder = _assignment_folder(workdir / f"run{i}", cifar10)
            env = _kernel_env(workdir / f"cache{i}")
            self._futures[path] = asyncio.run_coroutine_threadsafe(self._limited(path, folder, env), self._loop)

    async def _limited(self, path, folder, env):
        async with self._slots:
            try:
                return await _run(path, folder, env)
            except Exception as err:  # a dead kernel, a timeout: the notebook's test reports it
                return {"cells": {}, "skipped": [], "error": f"{type(err).__name__}: {err}"}

    def result(self, path: Path) -> dict:
        return self._futures[path].result()

    def close(self):
        for future in self._futures.values():
            future.cancel()
        concurrent.futures.wait(list(self._futures.values()), timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=60)
        self._loop.close()


@pytest.fixture(scope="session")
def notebook_runs(request, tmp_path_factory):
    selected = {item.callspec.params["path"] for item in request.session.items if "notebook_runs" in item.fixturenames}
    # Longest first, so that the two slots end together.
    paths = sorted(selected, key=lambda p: ("Convolutional" not in p.name, p.name, p.parent.name))
    cifar10 = tmp_path_factory.mktemp("cifar10") / "cifar-10-batches-py"
    write_cifar10_folder(cifar10, per_batch=10000, seed=0)  # 177 MB: the notebooks ask for 49000 + 1000 images
    runs = Runs(paths, tmp_path_factory.mktemp("notebooks"), cifar10, workers=max(1, min(4, os.cpu_count() or 1)))
    yield runs
    runs.close()
    shutil.rmtree(cifar10)


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("path", EDITIONS, ids=_id)
def test_notebook_runs_and_prints_its_numbers(notebook_runs, path):
    saved = {c.id: c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"}
    run = notebook_runs.result(path)
    if run["error"] is not None:
        pytest.fail(f"{_id(path)}: a cell raised:\n{run['error']}")
    expected_ids = [i for i, c in saved.items() if c.source.strip() and i not in run["skipped"]]
    assert list(run["cells"]) == expected_ids, "the kernel did not run every cell"
    data = data_cells({i: convert(saved[i].source) for i in expected_ids})
    # A notebook kept as text only (the seed) recorded no figure at all: then figures are not judged.
    figures_saved = any(_figures(c.outputs) for c in saved.values())
    failures, reports, judged = [], [], 0
    for cell_id, outputs in run["cells"].items():
        f, r, n = compare(cell_id, _stdout(outputs), _stdout(saved[cell_id].outputs), data=cell_id in data)
        failures += f
        reports += r
        judged += n
        if figures_saved:
            failures += compare_figures(cell_id, _figures(outputs), _figures(saved[cell_id].outputs))
        stderr = _stderr(outputs)
        if "xpnet" in stderr:  # a warning from xpnet's own code; others (imageio's, NumPy's) are the notebook's
            failures.append(f"{cell_id} wrote to stderr:\n{stderr}")
    summary = {
        "notebook": _id(path),
        "cells run": len(run["cells"]),
        "skipped (environment)": run["skipped"],
        "data-dependent cells": sorted(data),
        "numbers judged": judged,
        "reported, not judged": reports,
    }
    print(json.dumps(summary, indent=1), file=sys.stderr)
    assert not failures, "\n".join(failures)
