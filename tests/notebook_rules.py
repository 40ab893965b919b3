"""The rules by which a saved CS231n notebook is run on xpnet and its output judged (tests/test_notebooks.py).

Conversion: the only edits of a notebook.

1. **The import rule**: in a line that imports from ``cs231n`` (``from cs231n.X import ...``, ``import cs231n.X``),
   ``cs231n`` becomes ``xpnet``. Nothing else in any cell changes.
2. **Environment-only cells are not run**: a cell with a live (not commented-out) line that is a shell command
   (``!bash get_datasets.sh``, ``!python setup.py build_ext``), a ``%cd``, or that imports ``google.colab``
   (the Drive mount). They set up the student's machine (Colab, the Cython build, the download), not the
   assignment; the test provides what they would: CIFAR-10 in ``cs231n/datasets/cifar-10-batches-py`` under the
   notebook's folder, and its ``notebook_images``.

Judgement, per cell, of what the cell printed (stdout) against what the student's run printed:

- the same number of lines, and each line the same text once its numbers are masked (NumPy's padding inside a
  printed array and NumPy 2's ``np.float64(...)`` reprs are normalised: they depend on the NumPy version);
- the numbers by what the line reports (:data:`RULES`, the first match decides): timings are machine-dependent
  and only have to be positive; gradient-check errors at most 10x the saved value, or below 1e-7, CS231n's own
  bar, under which rounding noise decides the digits (:data:`GRADIENT_NOISE`); implementation differences at
  most 10x the saved value; every other number to 1e-6 relative (values below 1e-10 count as zero).
- A cell whose code depends on the CIFAR-10 data (:func:`data_cells`) ran on generated images, not the student's:
  its text and its integers (iteration and epoch counts, shapes) are judged, its other numbers only reported.
- The figures a cell showed: as many, each with as many axes (``<Figure size 1000x800 with 3 Axes>``, the text a
  notebook keeps of a plot); the size in pixels depends on the display's resolution and is not judged.
- A cell that raises fails the notebook.

Saved output that the student's environment printed, not the notebook's code, is left out of the comparison
(:data:`ENVIRONMENT_OUTPUT`): CS231n's notice, printed when its ``fast_layers`` is imported, that its Cython
extension is not built (xpnet has none), and IPython's note on a setup cell the student ran twice.
"""

from __future__ import annotations

import ast
import math
import re

# from cs231n.X import ... / import cs231n.X [as y]: the module path only.
_IMPORT = re.compile(r"^(\s*(?:from|import)\s+)cs231n\b", re.MULTILINE)
_SHELL = re.compile(r"^\s*(?:!|%cd\b)")
# A number, but not the digit of a name such as W1 or gamma2 (those stay in the text, which must match exactly).
NUMBER = re.compile(r"(?<![A-Za-z_\d.])[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|(?<![A-Za-z_])[-+]?(?:nan|inf)\b")
_ARRAY = re.compile(r"\[([^\]]*)\]")
_NUMPY_SCALAR = re.compile(r"np\.(?:float|int|uint|bool)\d*_?\(([^()]*)\)")
_DATA_SOURCE = "get_CIFAR10_data"

ENVIRONMENT_OUTPUT = [
    # cs231n/fast_layers.py of the 2019 edition, when `from .im2col_cython import ...` fails.
    "run the following from the cs231n directory and try again:\n"
    "python setup.py build_ext --inplace\n"
    "You may also need to restart your iPython kernel\n",
    # The same notice from the 2020 edition on.
    "=========== You can safely ignore the message below if you are NOT working on ConvolutionalNetworks.ipynb "
    "===========\n"
    "\tYou will need to compile a Cython extension for a portion of this assignment.\n"
    "\tThe instructions to do this will be given in a section of the notebook below.\n",
    # IPython, when a cell with %load_ext autoreload runs a second time in one kernel.
    "The autoreload extension is already loaded. To reload it, use:\n  %reload_ext autoreload\n",
]


def convert(source: str) -> str:
    """The cell's code with the import rule applied."""
    return _IMPORT.sub(r"\1xpnet", source)


def live_lines(source: str) -> list[str]:
    """The lines of a cell that are not blank or commented out."""
    return [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def is_environment_cell(source: str) -> bool:
    """True for a cell that only sets up the student's machine (shell commands, ``%cd``, Colab's Drive)."""
    return any(_SHELL.match(line) or "google.colab" in line for line in live_lines(source))


def _python(source: str) -> str:
    """The cell as Python: IPython's line magics (``%matplotlib inline``) blanked, so ``ast`` can read it."""
    return "\n".join("" if line.lstrip().startswith("%") else line for line in source.splitlines())


def _names(node, ctx) -> set[str]:
    """Names ``node`` reads (ctx Load) or binds (ctx Store; function, class and import names included)."""
    found = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ctx):
            found.add(n.id)
        elif ctx is ast.Store and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(n.name)
        elif ctx is ast.Store and isinstance(n, ast.alias):
            found.add((n.asname or n.name).split(".")[0])
    return found


def _executed(node):
    """The nodes of ``node`` that run when it runs: a function or class body only defines, so it is left out."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            yield from _executed(child)


def _passed(arg) -> set[str]:
    """The names an argument passes as they are (``model``, ``*models``, ``[a, b]``), not the modules or functions
    it merely uses (``np`` in ``np.arange(5)``)."""
    if isinstance(arg, ast.Name):
        return {arg.id}
    if isinstance(arg, ast.Starred):
        return _passed(arg.value)
    if isinstance(arg, (ast.List, ast.Tuple, ast.Set)):
        return set().union(*(_passed(e) for e in arg.elts))
    if isinstance(arg, ast.Dict):
        return set().union(*(_passed(v) for v in arg.values))
    return set()


def _call_arguments(node) -> set[str]:
    """Names passed to calls that run in ``node`` (a ``Solver(model, data)`` may change the ``model`` it gets)."""
    found: set[str] = set()
    for n in _executed(node):
        if isinstance(n, ast.Call):
            for arg in [*n.args, *(k.value for k in n.keywords)]:
                found |= _passed(arg)
    return found


def data_cells(sources: dict[str, str]) -> set[str]:
    """The ids of the cells (in run order) whose output depends on the CIFAR-10 data.

    A dataflow over the top-level statements: a statement depends on the data if it reads ``get_CIFAR10_data`` or
    a name that holds something derived from it. Then the names it binds are marked, and so are the names it
    passes to calls (a ``Solver`` built on the data trains the model it was given); a statement that does not
    depend on the data unmarks the names it binds (``model = FullyConnectedNet(...)`` is a fresh model).
    Functions count by the global names their bodies read.
    """
    marked: set[str] = set()
    cells = set()
    for cell_id, source in sources.items():
        try:
            statements = ast.parse(_python(source)).body
        except SyntaxError:
            cells.add(cell_id)  # it cannot be analysed (nor run): judge nothing of it by value
            continue
        for statement in statements:
            reads, binds = _names(statement, ast.Load), _names(statement, ast.Store)
            if _DATA_SOURCE in reads or reads & marked:
                marked |= binds | _call_arguments(statement)
                cells.add(cell_id)
            else:
                marked -= binds
    return cells


# CS231n's own bar for a float64 gradient check (the 2019 FullyConnectedNets cell: "Errors should be around e-7 or
# less"). Below it the digits of a relative error are rounding noise, which the BLAS kernels and summation order
# decide: the 2019 TwoLayerNet check's b1 error reads 1.56e-08 with OpenBLAS's Zen kernels, 1.35e-08 with its
# Haswell ones and 1.56e-08 on torch, where the student's 2020 machine printed 1.09e-09.
GRADIENT_NOISE = 1e-7


def _bound(got: float, saved: float) -> bool:
    """An implementation difference: at most ten times the saved one (lower is better)."""
    return got <= max(10 * saved, 1e-13)


def _gradient_check(got: float, saved: float) -> bool:
    """A gradient-check error: at most ten times the saved one, or below CS231n's bar (:data:`GRADIENT_NOISE`)."""
    return got <= max(10 * saved, GRADIENT_NOISE)


def _close(got: float, saved: float) -> bool:
    if math.isnan(saved):
        return math.isnan(got)
    return abs(got - saved) <= 1e-10 + 1e-6 * abs(saved)


def _positive(got: float, saved: float) -> bool:
    return got > 0 and math.isfinite(got)


# (pattern of the saved line, rule for its numbers, what the rule means); the first match decides.
RULES = [
    (re.compile(r"(?i)^\s*(naive|fast|speedup)\b"), _positive, "a positive timing (machine-dependent)"),
    (re.compile(r"(?i)error"), _gradient_check, f"at most 10x the saved value, or below {GRADIENT_NOISE:g}"),
    (re.compile(r"(?i)difference"), _bound, "at most 10x the saved value"),
    (re.compile(r""), _close, "the saved value to 1e-6 relative (1e-10 absolute)"),
]


def saved_output(text: str) -> str:
    """What the notebook's code printed in a saved output: ``text`` without :data:`ENVIRONMENT_OUTPUT`."""
    for message in ENVIRONMENT_OUTPUT:
        text = text.replace(message, "")
    return text


def _normalised(text: str) -> str:
    """``text`` without what depends on the NumPy version: ``np.float64(1.5)`` reprs, trailing blanks."""
    return "\n".join(_NUMPY_SCALAR.sub(r"\1", line).rstrip() for line in text.rstrip("\n").split("\n"))


def masked(line: str) -> str:
    """The line with its numbers masked; inside a printed array without NumPy's padding (it depends on signs)."""
    return _ARRAY.sub(lambda m: "[" + " ".join(m[1].split()) + "]", NUMBER.sub("#", line))


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def compare(cell_id: str, got: str, saved: str, *, data: bool) -> tuple[list[str], list[str], int]:
    """``(failures, reports, judged)`` for one cell's printed output against the saved one: messages for what
    fails and for what is only reported, and how many numbers were judged.

    ``data``: the cell depends on the CIFAR-10 data, so only its text and integers are judged.
    """
    got, saved = _normalised(got), _normalised(saved_output(saved))
    got_lines, saved_lines = got.split("\n"), saved.split("\n")
    if len(got_lines) != len(saved_lines):
        return [f"{cell_id}: printed {len(got_lines)} lines, the notebook {len(saved_lines)}:\n{got}"], [], 0
    failures, reports, judged = [], [], 0
    for g, s in zip(got_lines, saved_lines, strict=True):
        if masked(g) != masked(s):
            failures.append(f"{cell_id}: printed {g!r}, the notebook {s!r}")
            continue
        rule, meaning = next((rule, meaning) for pattern, rule, meaning in RULES if pattern.search(s))
        for g_text, s_text in zip(NUMBER.findall(g), NUMBER.findall(s), strict=True):  # same count: same mask
            if data and not _is_int(s_text):
                if g_text != s_text:
                    reports.append(f"{cell_id}: {g_text} where the student's data gave {s_text} in {g!r}")
                continue
            judged += 1
            if data and g_text != s_text:
                failures.append(f"{cell_id}: {g_text} where the notebook printed {s_text} (a count) in {g!r}")
            elif not data and not rule(float(g_text), float(s_text)):
                failures.append(f"{cell_id}: {g_text} where the notebook printed {s_text} ({meaning}) in {g!r}")
    return failures, reports, judged


_FIGURE = re.compile(r"^<Figure size [\d.]+x[\d.]+ with (\d+) Axes>$")


def compare_figures(cell_id: str, got: list[str], saved: list[str]) -> list[str]:
    """Failures for the figures a cell showed (the ``text/plain`` of its displayed outputs) against the saved ones:
    the same number of figures, each with the same number of axes."""

    def axes(texts):
        return [int(m[1]) if (m := _FIGURE.match(t)) else t for t in texts]

    if axes(got) != axes(saved):
        return [f"{cell_id}: showed {got or 'no figure'}, the notebook {saved or 'no figure'}"]
    return []
