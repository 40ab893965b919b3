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


def _launch(script: str, *args, cwd, hide: str | None = None) -> subprocess.CompletedProcess:
    """Run an example; ``hide`` makes that module unimportable in it, as if it were not installed."""
    cmd = [sys.executable, str(EXAMPLES / script), *map(str, args)]
    if hide is not None:
        run = f"import os, runpy, sys; sys.modules[{hide!r}] = None; sys.argv = sys.argv[1:]; "
        run += "sys.path.insert(0, os.path.dirname(sys.argv[0])); runpy.run_path(sys.argv[0], run_name='__main__')"
        cmd = [sys.executable, "-c", run, *cmd[1:]]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def _run(script: str, *args, cwd) -> str:
    done = _launch(script, "--quiet", *args, cwd=cwd)
    assert done.returncode == 0, f"{script} {args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _fails(script: str, *args, cwd, hide: str | None = None) -> str:
    """The one-line error an example exits with (no traceback)."""
    done = _launch(script, *args, cwd=cwd, hide=hide)
    assert done.returncode != 0, f"{script} {args} should have failed:\n{done.stdout}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]


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
    # Ten classes: chance is 0.10. This seed reaches 0.2600 after 1 epoch on 200 digits (both backends).
    first = _test_accuracy(out)
    assert first >= 0.20, f"train_fc.py {small} --epochs 1: test accuracy {first:.4f}, it reaches 0.2600 (chance 0.10)"
    assert re.search(r"trained 1 epoch in [\d.]+ s: [\d.]+ s per epoch", out), out
    checkpoint = tmp_path / "ckpt" / "train_fc_epoch_1.npz"
    assert checkpoint.is_file()
    assert f"checkpoint written to {Path('ckpt') / 'train_fc_epoch_1.npz'}\n" in out, out
    _assert_png(tmp_path / "fc.png")

    out = _run("train_fc.py", *small, "--epochs", 2, "--resume", checkpoint, cwd=tmp_path)
    # The learning rate printed is the checkpoint's: 2e-3 decayed once by 0.9.
    assert f"resuming from {checkpoint} at epoch 1: learning rate 0.0018" in out, out
    assert "trained 1 epoch in" in out, out  # epoch 2 only: epoch 1 came from the checkpoint
    # The resumed epoch goes on learning from the checkpoint's weights: 0.3350 with this seed (both backends).
    resumed = _test_accuracy(out)
    assert resumed >= 0.30 and resumed > first, (
        f"resumed to epoch 2: test accuracy {resumed:.4f} after {first:.4f} at epoch 1; it reaches 0.3350"
    )


def test_resume_refuses_flags_it_would_ignore(tmp_path):
    """The learning rate and the random state come from the checkpoint: --lr and --seed would be ignored."""
    for flags in (["--lr", "1e-4"], ["--seed", "3"], ["--lr", "1e-4", "--seed", "3"]):
        line = _fails("train_fc.py", "--resume", "missing.npz", *flags, cwd=tmp_path)
        given = " and ".join(f for f in flags if f.startswith("--"))
        assert line.endswith(
            f"error: {given} cannot be used with --resume: the learning rate and the random state come from the "
            "checkpoint, so the resumed run repeats the interrupted one"
        ), line


def test_resume_refuses_epochs_below_the_checkpoints_and_trains_nothing_at_equal(tmp_path):
    """--epochs is the total: below the checkpoint's epoch nothing could be trained, and the run is refused (both
    examples, before any data is loaded, as argparse refuses a flag); equal to it, the finished run's results are
    given again."""
    small = ["--backend", "numpy", "--num-train", 100, "--hidden-dims", 16, "--batch-size", 50]
    first = _run("train_fc.py", *small, "--epochs", 2, "--checkpoint-dir", "ckpt", cwd=tmp_path)
    checkpoint = Path("ckpt") / "train_fc_epoch_2.npz"
    # train_cnn.py refuses it too: the check comes before a model is built, let alone compared with the checkpoint.
    for script, flags in (("train_fc.py", small), ("train_cnn.py", [])):
        done = _launch(script, *flags, "--epochs", 1, "--resume", checkpoint, cwd=tmp_path)
        assert done.returncode == 2 and done.stdout == "", f"{script} should refuse at once:\n{done.stdout}"
        assert "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("usage: "), done.stderr
        assert done.stderr.strip().splitlines()[-1] == (
            f"{script}: error: --epochs 1 is below the checkpoint's epoch 2: --epochs is the total, the checkpoint's 2 "
            "epochs included; to train 1 more, use --epochs 3"
        ), done.stderr
    line = _fails("train_fc.py", "--resume", "missing.npz", cwd=tmp_path)
    assert line == "train_fc.py: error: --resume: no such file: 'missing.npz'", line

    again = _run("train_fc.py", *small, "--epochs", 2, "--resume", checkpoint, cwd=tmp_path)
    assert (
        f"resuming from {checkpoint} at epoch 2, the --epochs 2 asked for in total: nothing to train; the results "
        "below are the checkpoint's (--epochs 3 or more trains on)\n"
    ) in again, again
    assert "trained" not in again, again
    assert _test_accuracy(again) == _test_accuracy(first)  # the finished run's best params, as the first run ended


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("script", ["train_cnn.py", "train_fc.py"])
def test_the_default_runs_reach_the_accuracy_the_readme_promises(script, backend, tmp_path):
    """README: `python examples/train_cnn.py` ends with `test accuracy: 0.9750`; BENCHMARKS.md and the docs'
    gallery give 0.9750 for train_fc.py too, on both backends (the same seed draws the same weights and
    minibatches from host random numbers). The default settings, only the backend named (a second or two each)."""
    if backend == "torch":
        pytest.importorskip("torch")
    acc = _test_accuracy(_run(script, "--backend", backend, cwd=tmp_path))
    assert f"{acc:.4f}" == "0.9750", f"{script} --backend {backend}: test accuracy {acc:.4f}, the README says 0.9750"


@pytest.mark.parametrize("script", ["train_fc.py", "train_cnn.py"])
def test_backend_torch_without_torch_is_one_clean_line(script, tmp_path):
    line = _fails(script, "--backend", "torch", "--epochs", 1, cwd=tmp_path, hide="torch")
    assert line == (
        "--backend torch: torch is not installed; install its CPU build with: "
        "pip install torch --index-url https://download.pytorch.org/whl/cpu"
    ), line


@pytest.mark.parametrize("script", ["train_fc.py", "train_cnn.py", "batchnorm_experiments.py", "sweep_cifar.py"])
def test_help_shows_every_default_once(script, tmp_path):
    done = _launch(script, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    options = done.stdout.split("options:", 1)[1].strip("\n").split("\n\n")[0]  # the epilog follows a blank line
    # One block per option: its first line starts with "  -", continuation lines are indented further.
    blocks = re.split(r"\n(?=  -)", options)
    for block in blocks:
        text = " ".join(block.split())
        flag = text.split()[0].rstrip(",")
        assert text.count("default") <= 1, f"{flag} states its default more than once: {text}"
        assert "(default: None)" not in text, text
        takes_value = re.match(r"(-\w, )?--[\w-]+ [A-Z{]", text) is not None
        if takes_value:
            assert re.search(r"\(default: [^)]+\)", text), f"{flag} shows no default: {text}"
    shown = {" ".join(b.split()).split()[0].rstrip(","): " ".join(b.split()) for b in blocks}
    assert "(default: " in shown["--epochs"] and "(default: " in shown["--seed"], shown
    if script in ("train_fc.py", "train_cnn.py"):
        assert "(default: " in shown["--batch-size"] and "(default: 0.001)" in shown["--reg"], shown
    elif script == "batchnorm_experiments.py":
        assert "(default: 1000)" in shown["--num-train"], shown


def test_train_cnn_runs_and_draws_filters(tmp_path):
    args = ["--backend", "numpy", "--epochs", 1, "--num-train", 100, "--num-filters", 4, "--hidden-dim", 16]
    out = _run("train_cnn.py", *args, "--filters", "filters.png", cwd=tmp_path)
    assert out.startswith("backend: numpy; data: digits: X_train (100, 1, 8, 8)"), out
    # One epoch of 100 digits leaves this tiny net at chance (0.0750 today): its accuracy is checked by
    # test_the_default_runs_reach_the_accuracy_the_readme_promises, on the README's own settings.
    assert 0.0 <= _test_accuracy(out) <= 1.0
    _assert_png(tmp_path / "filters.png")


def test_batchnorm_experiments_write_their_plots(tmp_path):
    args = ["--backend", "numpy", "--epochs", 1, "--num-train", 100, "--scales", 2, "--batch-sizes", 25, 50]
    out = _run("batchnorm_experiments.py", *args, "--out-dir", "plots", cwd=tmp_path)
    for name in ("bn_vs_baseline", "weight_scale", "batch_size_batchnorm", "batch_size_layernorm"):
        _assert_png(tmp_path / "plots" / f"{name}.png")
        assert f"{name}.png" in out, out


def test_sweep_cifar_prints_the_table_and_writes_the_plot(tmp_path):
    args = ["--backend", "numpy", "--epochs", 1, "--num-train", 100, "--lrs", "1e-3", "1e-2", "--regs", 0, "0.01"]
    out = _run("sweep_cifar.py", *args, "--workers", 2, "--plot", "sweep.png", "--save", "sweep.json", cwd=tmp_path)
    assert "4 runs in " in out and "SweepResults(4 trials: 4 ok)" in out, out
    assert re.search(r"learning_rate +reg +status +best_val_acc +final_train_acc +seconds", out), out
    assert re.search(r"best: learning_rate [\d.e-]+, reg [\d.e-]+: val acc \d\.\d{4}", out), out
    _assert_png(tmp_path / "sweep.png")
    assert (tmp_path / "sweep.json").is_file()


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "_common.py"))
def test_an_example_imports_common_before_numpy(script):
    """_common sets OPENBLAS/OMP/MKL_NUM_THREADS, which NumPy reads once, on import: an example that imports xpnet
    (and so NumPy) first runs OpenBLAS on every core, 4-12x slower per epoch on a shared 2-core machine."""
    import ast

    tree = ast.parse((EXAMPLES / script).read_text(encoding="utf-8"))
    imports = [
        (node.module if isinstance(node, ast.ImportFrom) else node.names[0].name)
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    imports = [name for name in imports if name != "__future__"]
    if "_common" not in imports:
        pytest.skip(f"{script} does not use _common")
    first_heavy = next(i for i, name in enumerate(imports) if name.split(".")[0] in ("xpnet", "numpy", "_common"))
    assert imports[first_heavy] == "_common", f"{script} imports {imports[first_heavy]} before _common: {imports}"
