"""CS231n's BatchNormalization notebook runs on xpnet after changing only its imports, and prints its own numbers.

``notebooks/BatchNormalization.ipynb`` holds the code cells of a completed assignment-2 notebook with ``cs231n``
replaced by ``xpnet`` in the imports, and the outputs that notebook printed (cs231n on the real CIFAR-10). The test
executes every code cell in order in one namespace, as a kernel would, and compares what each prints with the
stored output line by line: the text around the numbers must be identical; the numbers are compared by what they
mean (see ``_RULES``). CIFAR-10 is a generated folder of the official size and format, found by the notebook's own
``get_CIFAR10_data()`` through ``XPNET_CIFAR10_DIR``.

What is not the notebook's own code, and why:

- IPython line magics (``%matplotlib inline``, ``%load_ext autoreload``, ``%autoreload 2``) become
  ``get_ipython().run_line_magic(...)`` calls, as IPython rewrites them; the stand-in kernel accepts exactly those
  three (plots go to matplotlib's Agg backend; nothing is reloaded in a test) and refuses any other.
- The three training sweeps run for ``SWEEP_EPOCHS`` epochs instead of 10 (the literal ``num_epochs=10`` of the
  weight-scale cell and ``n_epochs=10`` of ``run_batchsize_experiments``): every model of every sweep is still
  built and trained, and what the cells print does not depend on the epoch count. The verbose training cell runs
  its full 10 epochs, so its 200 iterations and 11 epoch lines match the notebook's.
"""

from __future__ import annotations

import json
import linecache
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from cifar_format import write_cifar10_folder

NOTEBOOK = Path(__file__).parent / "notebooks" / "BatchNormalization.ipynb"

SWEEP_EPOCHS = 1
# cell id -> (literal in the cell, its replacement, how many times it occurs): the only edits of notebook code.
SHRINK = {
    "cell10": ("num_epochs=10", f"num_epochs={SWEEP_EPOCHS}", 2),  # weight-scale sweep: 20 scales x 2 models
    "cell12": ("n_epochs=10", f"n_epochs={SWEEP_EPOCHS}", 1),  # run_batchsize_experiments, also run by cell16
}
# Notebook output that is cs231n's and not the assignment's: the setup cell printed cs231n's notice about its
# Cython extension, which xpnet does not have.
NOT_XPNETS = {"cell01"}

_MAGIC = re.compile(r"^%(\w+)[ \t]*(.*)$", re.MULTILINE)
# A number, but not the digit of a name such as W1 or gamma2 (those stay in the text, which must match exactly).
_NUMBER = re.compile(r"(?<![A-Za-z_\d.])[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
_ARRAY = re.compile(r"\[([^\]]*)\]")


class _Kernel:
    """The ``get_ipython()`` of the executed cells: the line magics this notebook uses, and no others."""

    KNOWN = frozenset({("matplotlib", "inline"), ("load_ext", "autoreload"), ("autoreload", "2")})

    def run_line_magic(self, name, line):
        if (name, line) not in self.KNOWN:
            raise NotImplementedError(f"the test kernel does not run %{name} {line}; it knows {sorted(self.KNOWN)}")


def _python(cell) -> str:
    """The cell's code as IPython would run it: line magics become ``run_line_magic`` calls."""
    source = "".join(cell["source"])
    source = _MAGIC.sub(lambda m: f"get_ipython().run_line_magic({m[1]!r}, {m[2]!r})", source)
    if cell["id"] in SHRINK:
        old, new, count = SHRINK[cell["id"]]
        assert source.count(old) == count, f"{cell['id']} should contain {old!r} {count} times"
        source = source.replace(old, new)
    return source


def _stdout(cell) -> str:
    return "".join("".join(o["text"]) for o in cell["outputs"] if o.get("name") == "stdout")


def _bound(got: str, expected: str) -> bool:
    """A gradient-check error or implementation difference: at most ten times the notebook's (lower is better)."""
    return float(got) <= max(10 * float(expected), 1e-13)


def _close(rtol: float, atol: float = 0.0):
    return lambda got, expected: abs(float(got) - float(expected)) <= atol + rtol * abs(float(expected))


def _solver_line(got: str, expected: str) -> bool:
    """Iteration and epoch counts exactly; losses and accuracies depend on the (generated) data: finite."""
    return got == expected if expected.isdigit() else math.isfinite(float(got))


# (pattern of the notebook's line, rule for its numbers as printed, what the rule means); the first match decides.
_RULES = [
    (re.compile(r"error|difference"), _bound, "at most 10x the notebook's value"),
    (re.compile(r"^speedup"), lambda got, expected: float(got) > 0, "a positive timing ratio (machine-dependent)"),
    (re.compile(r"^Initial loss"), _close(1e-12), "the notebook's loss to 1e-12"),
    (re.compile(r"^\((Iteration|Epoch) "), _solver_line, "counts exactly; losses and accuracies finite"),
    # NumPy prints 8 digits; the near-zero means (1e-17) are float64 rounding noise.
    (re.compile(r""), _close(1e-7, 1e-12), "the notebook's value to 8 digits (near-zero means to 1e-12)"),
]


def _text(line: str) -> str:
    """The line without its numbers; inside a printed array without NumPy's column padding (it depends on signs)."""
    return _ARRAY.sub(lambda m: "[" + " ".join(m[1].split()) + "]", _NUMBER.sub("#", line))


def _mismatches(cell_id: str, got: str, expected: str) -> list[str]:
    """What differs between a cell's output and the notebook's, one message per line that differs."""
    got_lines, expected_lines = got.rstrip("\n").split("\n"), expected.rstrip("\n").split("\n")
    if len(got_lines) != len(expected_lines):
        return [f"{cell_id}: printed {len(got_lines)} lines, the notebook {len(expected_lines)}:\n{got}"]
    problems = []
    for g, e in zip(got_lines, expected_lines):
        if _text(g) != _text(e):
            problems.append(f"{cell_id}: printed {g!r}, the notebook {e!r}")
            continue
        rule, meaning = next((rule, meaning) for pattern, rule, meaning in _RULES if pattern.search(e))
        for g_text, e_text in zip(_NUMBER.findall(g), _NUMBER.findall(e)):
            if not rule(g_text, e_text):
                problems.append(f"{cell_id}: {g_text} where the notebook printed {e_text} ({meaning}) in {g!r}")
    return problems


@pytest.fixture(scope="module")
def cifar10_dir(tmp_path_factory):
    """CIFAR-10 of the official size (5 x 10000 training, 10000 test images) and format, random pixels: the
    notebook's ``get_CIFAR10_data()`` asks for 49000 + 1000 training images. 177 MB, removed afterwards."""
    root = tmp_path_factory.mktemp("cifar10") / "cifar-10-batches-py"
    write_cifar10_folder(root, per_batch=10000, seed=0)
    yield root
    shutil.rmtree(root)


@pytest.mark.slow
def test_batchnorm_notebook_runs_and_prints_its_numbers(cifar10_dir, monkeypatch, capsys):
    monkeypatch.setenv("XPNET_CIFAR10_DIR", str(cifar10_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg")  # %matplotlib inline draws into Agg figures too; plt.show() shows nothing
    import matplotlib.pyplot as plt

    cells = [c for c in json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    namespace = {"__name__": "__main__", "get_ipython": _Kernel}
    random_state = np.random.get_state()
    problems = []
    try:
        with matplotlib.rc_context():  # the setup cell changes rcParams for the whole process
            for cell in cells:
                source = _python(cell)
                filename = f"<{NOTEBOOK.name} {cell['id']}>"  # tracebacks name the cell and show its lines
                linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
                exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - running the notebook is the test
                out, err = capsys.readouterr()
                # The notebook's one stderr block is RuntimeWarnings of its own softmax; xpnet's writes nothing,
                # and the Solver draws no progress bar when stderr is not a terminal.
                assert err == "", f"{cell['id']} wrote to stderr:\n{err}"
                expected = "" if cell["id"] in NOT_XPNETS else _stdout(cell)
                problems += _mismatches(cell["id"], out, expected)
                if "plt.show()" in source:
                    # As %matplotlib inline: one figure per cell, shown at its end; each subplot got its curves.
                    figures = [plt.figure(n) for n in plt.get_fignums()]
                    assert len(figures) == 1, f"{cell['id']} drew {len(figures)} figures"
                    lines = [len(ax.get_lines()) for ax in figures[0].axes]
                    assert len(lines) == source.count("plt.subplot(") and min(lines) >= 2, (cell["id"], lines)
                plt.close("all")
    finally:
        plt.close("all")
        np.random.set_state(random_state)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "got, expected, problem",
    [
        ("  means: [ 1.5 -2.25]", "  means: [1.5  -2.25]", None),  # NumPy's padding differs with the signs
        ("  means: [ 1.5000002 -2.25]", "  means: [ 1.5 -2.25]", "to 8 digits"),
        ("  means: [ 1.77e-11  6.1e-17]", "  means: [ 1.77e-17 -6.1e-17]", "near-zero"),
        ("dx error:  1.5e-08", "dx error:  1.7e-09", None),
        ("dx error:  1.8e-08", "dx error:  1.7e-09", "10x"),
        ("dgamma difference:  1e-12", "dgamma difference:  0.0", "10x"),
        ("Initial loss:  2.2611955101340957", "Initial loss:  2.2611955101340953", None),
        ("Initial loss:  2.26119551013", "Initial loss:  2.2611955101340953", "1e-12"),
        ("(Iteration 1 / 200) loss: 2.308356", "(Iteration 1 / 200) loss: 2.340974", None),
        ("(Iteration 1 / 100) loss: 2.308356", "(Iteration 1 / 200) loss: 2.340974", "counts exactly"),
        ("(Epoch 0 / 10) train acc: nan; val_acc: 0.1", "(Epoch 0 / 10) train acc: 0.1; val_acc: 0.1", "printed"),
        ("W2 relative error: 1.10e-04", "W1 relative error: 1.10e-04", "printed"),
        ("speedup: 0.80x", "speedup: 2.00x", None),
    ],
)
def test_output_comparison(got, expected, problem):
    """The comparison the notebook test relies on flags what it should and passes what it should."""
    problems = _mismatches("cell", got, expected)
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problem in problems[0], problems
