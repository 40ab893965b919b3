"""A script that calls ``sweep()`` at import time, with a LocalCluster, fails at once with one line naming the
``if __name__ == "__main__":`` guard (Dask's worker processes import the script again; without the check the user
got ~200-475 lines of "Nanny failed to start")."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import importorskip_extra

from xpnet.sweep._cluster import _guarded, check_main_guard

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """\
from xpnet.classifiers import FullyConnectedNet
from xpnet.data_utils import get_digits_data
from xpnet.solver import Solver
from xpnet.sweep import grid, sweep


def make_solver(config, data):
    model = FullyConnectedNet([20], input_dim=64, weight_scale=config["weight_scale"])
    return Solver(model, data, num_epochs=1, batch_size=50, verbose=False)


def main():
    results = sweep(make_solver, grid(weight_scale=[1e-2]), data=get_digits_data(num_training=100), n_workers=1,
                    progress=False)
    print("best", results.best()["best_val_acc"])


"""


@pytest.mark.parametrize(
    ("source", "line", "expected"),
    [
        ('x = 1\nif __name__ == "__main__":\n    run()\n', 3, True),
        ('if "__main__" == __name__:\n    a = 1\n    run()\n', 3, True),
        ('if __name__ == "__main__":\n    a = 1\nrun()\n', 3, False),
        ('if __name__ != "__main__":\n    run()\n', 2, False),
        ('if __name__ == "__main__":\n    pass\nelse:\n    run()\n', 4, False),
        ("run()\n", 1, False),
    ],
)
def test_the_guard_is_recognised(source, line, expected):
    assert _guarded(source, line) is expected


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "script.py"
    path.write_text("from xpnet.sweep._cluster import check_main_guard\n" + textwrap.dedent(body), encoding="utf-8")
    return path


def test_unguarded_top_level_code_is_refused_in_one_line(tmp_path):
    path = _write(tmp_path, 'check_main_guard("spawn")\n')
    with pytest.raises(RuntimeError, match=r"script\.py, line 2, calls sweep\(\) when the script is imported") as err:
        runpy.run_path(str(path), run_name="__main__")
    assert "\n" not in str(err.value) and 'if __name__ == "__main__":' in str(err.value)


def test_a_worker_importing_the_script_again_is_refused(tmp_path):
    # What a spawned worker does with the script: run it as __mp_main__.
    path = _write(tmp_path, 'if __name__ != "__main__":\n    check_main_guard("spawn")\n')
    with pytest.raises(RuntimeError, match="calls sweep"):
        runpy.run_path(str(path), run_name="__mp_main__")


def test_guarded_code_forked_workers_and_non_scripts_pass(tmp_path):
    guarded = _write(tmp_path, 'def main():\n    check_main_guard("spawn")\n\nif __name__ == "__main__":\n    main()\n')
    runpy.run_path(str(guarded), run_name="__main__")
    # fork does not import the script again; a test run (pytest's own __main__ is guarded) passes too.
    runpy.run_path(str(_write(tmp_path, 'check_main_guard("fork")\n')), run_name="__main__")
    check_main_guard("spawn")


def _run(script: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env, cwd=script.parent
    )


def test_a_script_without_the_guard_fails_with_one_line_naming_it(tmp_path):
    importorskip_extra("distributed")
    script = tmp_path / "try_sweep.py"
    script.write_text(SCRIPT + "main()\n", encoding="utf-8")
    proc = _run(script)
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"RuntimeError: {script}, line {len(SCRIPT.splitlines()) + 1}, calls sweep() when the script is imported"
    ), last
    assert 'if __name__ == "__main__":' in last
    # A short traceback of the user's call and the check: no worker was started.
    assert len(proc.stderr.splitlines()) < 20 and "Nanny" not in proc.stderr, proc.stderr[-3000:]


@pytest.mark.slow
def test_the_same_script_with_the_guard_runs(tmp_path):
    importorskip_extra("distributed")
    script = tmp_path / "try_sweep.py"
    script.write_text(SCRIPT + 'if __name__ == "__main__":\n    main()\n', encoding="utf-8")
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("best "), proc.stdout
