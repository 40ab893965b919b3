"""The example scripts run end to end (as subprocesses, with tiny settings) and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.slow


def _run(script: str, *args, cwd) -> str:
    cmd = [sys.executable, str(EXAMPLES / script), "--quiet", *map(str, args)]
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _test_accuracy(stdout: str) -> float:
    last = stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"test accuracy: (\d\.\d{4})", last)
    assert match, f"the last line should be 'test accuracy: 0.XXXX', got {last!r}"
    return float(match.group(1))


def _assert_png(path: Path):
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[: len(PNG_MAGIC)] == PNG_MAGIC, f"{path} is not a PNG"


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_train_fc_checkpoints_resumes_and_plots(backend, tmp_path):
    if backend == "torch":
        pytest.importorskip("torch")
    small = ["--backend", backend, "--num-train", 200, "--hidden-dims", 32, "--batch-size", 50]
    out = _run("train_fc.py", *small, "--epochs", 1, "--checkpoint-dir", "ckpt", "--plot", "fc.png", cwd=tmp_path)
    assert 0.0 <= _test_accuracy(out) <= 1.0
    assert re.search(r"trained 1 epoch in [\d.]+ s: [\d.]+ s per epoch", out), out
    checkpoint = tmp_path / "ckpt" / "train_fc_epoch_1.npz"
    assert checkpoint.is_file()
    _assert_png(tmp_path / "fc.png")

    out = _run("train_fc.py", *small, "--epochs", 2, "--resume", checkpoint, cwd=tmp_path)
    assert "trained 1 epoch in" in out, out  # epoch 2 only: epoch 1 came from the checkpoint
    assert 0.0 <= _test_accuracy(out) <= 1.0


def test_train_cnn_runs_and_draws_filters(tmp_path):
    args = ["--backend", "numpy", "--epochs", 1, "--num-train", 100, "--num-filters", 4, "--hidden-dim", 16]
    out = _run("train_cnn.py", *args, "--filters", "filters.png", cwd=tmp_path)
    assert out.startswith("backend: numpy; data: digits: X_train (100, 1, 8, 8)"), out
    assert 0.0 <= _test_accuracy(out) <= 1.0
    _assert_png(tmp_path / "filters.png")


def test_batchnorm_experiments_write_their_plots(tmp_path):
    args = ["--backend", "numpy", "--epochs", 1, "--num-train", 100, "--scales", 2, "--batch-sizes", 25, 50]
    out = _run("batchnorm_experiments.py", *args, "--out-dir", "plots", cwd=tmp_path)
    for name in ("bn_vs_baseline", "weight_scale", "batch_size_batchnorm", "batch_size_layernorm"):
        _assert_png(tmp_path / "plots" / f"{name}.png")
        assert f"{name}.png" in out, out
