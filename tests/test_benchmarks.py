"""The benchmark scripts run, check their result before timing it, and refuse to time a wrong one.

Each script's smoke mode (``--quick``: tiny shapes, 2 rounds, xpnet on NumPy) runs here as a user runs it, so a
script cannot rot; the negative controls break one computation the script times and see it stop before printing
any timing, so the check itself is tested. The refusals run in this process (seconds saved per interpreter start),
with the thread settings the scripts change put back.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import torch
except ImportError:  # bench_conv runs without it (a NumPy reference); bench_layers and bench_step need it
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="bench_layers and bench_step compare with native torch")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, str(BENCH / name), "--quick", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def bench(monkeypatch):
    """Import a benchmark script as a module; undo what its main() sets for the process (BLAS thread variables,
    torch's thread count)."""
    monkeypatch.syspath_prepend(str(BENCH))
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(variable, "1")  # main() only sets them where unset
    threads = None if torch is None else torch.get_num_threads()
    yield importlib.import_module
    if torch is not None:
        torch.set_num_threads(threads)


def test_bench_conv_checks_each_geometry_before_timing_it():
    lines = _run_script("bench_conv.py").stdout.splitlines()
    reference = "NumPy float64 (torch not installed)" if torch is None else "torch conv2d float64"
    checks = [i for i, line in enumerate(lines) if f"check passed against {reference}" in line]
    timings = [i for i, line in enumerate(lines) if line.lstrip().startswith("xpnet ") and "GFLOP/s" in line]
    assert len(checks) == len(timings) == 2, lines
    assert all(c < t for c, t in zip(checks, timings, strict=True)), lines


def _without_torch(module, monkeypatch):
    """What bench_conv does where ``import torch`` fails (hiding torch from sys.modules would break
    array_api_compat, which looks torch up there)."""

    def no_torch(*args, **kwargs):
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(module, "_torch_reference", no_torch)
    monkeypatch.setattr(module, "_torch_conv", no_torch)


def test_bench_conv_checks_against_numpy_without_torch(bench, monkeypatch, capsys):
    module = bench("bench_conv")
    _without_torch(module, monkeypatch)
    module.main(["--quick"])
    out = capsys.readouterr().out
    assert out.count("check passed against NumPy float64 (torch not installed)") == 2, out
    assert "torch not installed: no torch reference" in out, out


def _bias_twice(real):
    def forward(x, w, b, conv_param):
        out, cache = real(x, w, b, conv_param)
        return out + b[:, None, None], cache

    return forward


def _dw_off_by_a_thousandth(real):
    def backward(dout, cache, **kwargs):
        dx, dw, db = real(dout, cache, **kwargs)
        return dx, dw * 1.001, db

    return backward


@pytest.mark.parametrize("reference", [pytest.param("torch", marks=needs_torch), "numpy"])
@pytest.mark.parametrize(
    ("function", "mutant", "wrong"),
    [("conv_forward_fast", _bias_twice, "out"), ("conv_backward_fast", _dw_off_by_a_thousandth, "dw")],
)
def test_bench_conv_refuses_to_time_a_wrong_convolution(bench, monkeypatch, capsys, function, mutant, wrong, reference):
    module = bench("bench_conv")
    monkeypatch.setattr(module, function, mutant(getattr(module, function)))
    if reference == "numpy":
        _without_torch(module, monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        module.main(["--quick"])
    message = str(exit_.value.code)
    assert "xpnet's convolution differs from" in message, message
    assert f"{wrong} is off by" in message, message
    assert "GFLOP/s" not in capsys.readouterr().out  # nothing was timed


@needs_torch
def test_bench_layers_checks_every_row_before_timing():
    lines = _run_script("bench_layers.py", "--threads", "1").stdout.splitlines()
    checked = lines.index("every row checked against torch float64 before timing (largest error / scale, "
                          "tolerance 1e-04)")  # fmt: skip
    rows = [line for line in lines[checked:] if line.startswith("| ")][2:]  # past the header and the rule
    assert len(rows) == 6, lines
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert float(cells[-1]) <= 1e-4, row  # the check's largest error
        float(cells[3]), float(cells[6])  # the ratios are numbers


@needs_torch
@pytest.mark.parametrize("layer", ["relu_backward", "batchnorm_backward_alt"])
def test_bench_layers_refuses_to_time_a_wrong_layer(bench, monkeypatch, capsys, layer):
    import xpnet.layers

    real = getattr(xpnet.layers, layer)

    def broken(dout, cache):
        grads = real(dout, cache)
        return (grads * 1.001) if layer == "relu_backward" else (grads[0] * 1.001, *grads[1:])

    monkeypatch.setattr(xpnet.layers, layer, broken)
    with pytest.raises(SystemExit) as exit_:
        bench("bench_layers").main(["--quick", "--threads", "1"])
    message = str(exit_.value.code)
    assert "xpnet differs from torch float64: dx is off" in message, message
    assert "| layer |" not in capsys.readouterr().out  # nothing was timed


@needs_torch
@pytest.mark.parametrize("backend", ["numpy", "torch"])  # torch: xpnet on torch against native torch only
def test_bench_step_checks_the_first_losses_before_timing(backend):
    args = ("--threads", "1", "--only", "[512, 256]", "--backend", backend)
    lines = _run_script("bench_step.py", *args).stdout.splitlines()
    checked = [i for i, line in enumerate(lines) if line.startswith("check passed: the first-step losses")]
    table = [i for i, line in enumerate(lines) if line.startswith("| model |")]
    assert len(checked) == len(table) == 1 and checked[0] < table[0], lines
    runs = ["xpnet/numpy", "xpnet/torch", "torch"] if backend == "numpy" else ["xpnet/torch", "torch"]
    losses = ", ".join(rf"{run} (\d\.\d{{6}})" for run in runs)
    match = re.fullmatch(rf"  FullyConnectedNet \[512, 256\], batch 4: {losses}", lines[checked[0] + 1])
    assert match, lines
    first, *others = (float(loss) for loss in match.groups())
    assert all(abs(loss - first) <= 1e-4 * first for loss in others), lines
    header, rule, row = (line.strip("|").split("|") for line in lines[table[0] : table[0] + 3])
    assert len(header) == len(rule) == len(row) == (11 if backend == "numpy" else 8), lines
    assert header[1].strip() == f"xpnet/{backend} ms", lines


@needs_torch
def test_bench_step_refuses_models_that_differ(bench, monkeypatch, capsys):
    from xpnet.classifiers.fc_net import FullyConnectedNet

    real = FullyConnectedNet.loss

    def loss(self, X, y=None):  # both xpnet runs change alike; native torch does not
        value, grads = real(self, X, y)
        return value * 1.001, grads

    monkeypatch.setattr(FullyConnectedNet, "loss", loss)
    with pytest.raises(RuntimeError, match=r"first-step losses differ, so the models differ"):
        bench("bench_step").main(["--quick", "--threads", "1", "--only", "[512, 256]"])
    assert "| model |" not in capsys.readouterr().out


@needs_torch
def test_bench_step_compiled_table_has_a_cell_per_column_and_reports_failures(bench, capsys):
    module = bench("bench_step")
    done = {"ms": 2.0, "ratio": 1.1, "ratio_compiled": 1.05, "compile_s": 9.5, "graphs": 1, "breaks": 0}
    row = {
        "label": "FullyConnectedNet [512, 256], batch 4",
        "ops": {"torch": (73, 42)},
        "compiled": {
            "xpnet/torch compiled": {**done, "kernels": 12},
            "torch compiled": {**done, "ratio_compiled": None, "graphs": 3, "breaks": 1, "kernels": 9},
        },
        "failed": {"xpnet/jax jit": "UnexpectedTracerError: a tracer leaked"},
    }
    module.print_compiled_table([row], "cpu")
    lines = capsys.readouterr().out.splitlines()
    header, rule, cells = (line.strip("|").split("|") for line in lines[:3])
    assert len(header) == len(rule) == len(cells) == 15, lines
    assert [c.strip() for c in cells[1:8]] == ["2.00", "1.10", "1.05", "failed", "failed", "failed", "2.00"], lines
    assert [c.strip() for c in cells[9:]] == ["9.5 / failed / 9.5", "1 / 0", "3 / 1", "12", "9", "42"], lines
    assert "Inductor kernels" in lines[0], lines
    failure = "xpnet/jax jit failed: UnexpectedTracerError: a tracer leaked"
    assert lines[3:] == [f"  FullyConnectedNet [512, 256], batch 4: {failure}"], lines
