"""A minimal notebook kernel for tests: runs the code cells of an ``.ipynb`` in order, in one namespace, in a fresh
process, and writes what each cell printed as JSON.

    python kernel.py PLAN.json OUT.json

``PLAN.json`` holds ``{"notebook": path, "replace": {cell id: [old, new, count]}}``: ``replace`` is the only way
the caller edits a cell (``old`` must occur exactly ``count`` times). ``OUT.json`` gets one entry per code cell
run, ``{"id", "stdout", "stderr", "figures", "error"}``: ``figures`` lists, per open figure, the number of lines in
each of its axes (figures are closed after each cell, as ``%matplotlib inline`` shows and closes them); ``error``
is the traceback of a cell that raised, after which no further cell runs.

As IPython does, line magics become ``get_ipython().run_line_magic(name, line)`` calls; this kernel knows only
``%matplotlib inline`` (figures are drawn with the backend ``MPLBACKEND`` names, Agg in tests), ``%load_ext
autoreload`` and ``%autoreload 2`` (nothing changes during a run) and refuses any other magic. Every warning is
shown once per place (the "default" filter), on the cell's stderr, as a notebook shows it.
"""

from __future__ import annotations

import contextlib
import io
import json
import linecache
import re
import sys
import traceback
import warnings

MAGIC = re.compile(r"^%(\w+)[ \t]*(.*)$", re.MULTILINE)


class Kernel:
    """What the cells get from ``get_ipython()``."""

    KNOWN = frozenset({("matplotlib", "inline"), ("load_ext", "autoreload"), ("autoreload", "2")})

    def run_line_magic(self, name, line):
        if (name, line) not in self.KNOWN:
            raise NotImplementedError(f"this kernel does not run %{name} {line}; it knows {sorted(self.KNOWN)}")


def python_source(cell, replace) -> str:
    """The cell's code as IPython runs it, with the caller's replacements."""
    source = MAGIC.sub(lambda m: f"get_ipython().run_line_magic({m[1]!r}, {m[2]!r})", "".join(cell["source"]))
    if cell["id"] in replace:
        old, new, count = replace[cell["id"]]
        if source.count(old) != count:
            raise ValueError(f"cell {cell['id']} should contain {old!r} {count} times, got {source.count(old)}")
        source = source.replace(old, new)
    return source


def run(notebook, replace) -> list[dict]:
    with open(notebook, encoding="utf-8") as f:
        cells = [c for c in json.load(f)["cells"] if c["cell_type"] == "code"]
    namespace = {"__name__": "__main__", "get_ipython": Kernel}
    results = []
    for cell in cells:
        source = python_source(cell, replace)
        filename = f"<{cell['id']}>"  # tracebacks name the cell and show its lines
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        out, err = io.StringIO(), io.StringIO()
        error = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                exec(compile(source, filename, "exec"), namespace)  # running the notebook is the point
            except Exception:  # as a kernel does: whatever a cell raises is its output
                error = traceback.format_exc()
        figures = []
        if "matplotlib.pyplot" in sys.modules:
            plt = sys.modules["matplotlib.pyplot"]
            figures = [[len(ax.get_lines()) for ax in plt.figure(n).axes] for n in plt.get_fignums()]
            plt.close("all")
        results.append(
            {"id": cell["id"], "stdout": out.getvalue(), "stderr": err.getvalue(), "figures": figures, "error": error}
        )
        if error is not None:
            break
    return results


def main(argv) -> int:
    plan_path, out_path = argv
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    warnings.simplefilter("default")
    results = run(plan["notebook"], plan.get("replace", {}))
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
