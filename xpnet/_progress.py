"""Where a progress bar may be drawn: one place for the Solver's bar and the CIFAR-10 download's.

tqdm is imported lazily and never through ``tqdm.auto``, which warns (``TqdmWarning: IProgress not found``) in a
notebook without ipywidgets and then prints every refresh as a separate output fragment.
"""

from __future__ import annotations

import os
import sys

from tqdm.std import tqdm as terminal_tqdm

__all__ = ["bar_class", "terminal_tqdm"]


def _in_jupyter_kernel() -> bool:
    """Whether this process is a Jupyter kernel that shows rich output (notebook, lab, VS Code, Colab), as
    ``tqdm.autonotebook`` decides it: qtconsole and Spyder kernels draw text."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    if any(k == "QT_API" or k.startswith("SPYDER") for k in os.environ):
        return False
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    if shell is None:  # ipykernel imported by a plain Python process
        return False
    name = type(shell).__name__.lower()
    return "qt" not in name and "spyder" not in name


def _notebook_tqdm():
    """``tqdm.notebook.tqdm`` when ipywidgets can draw it, else None (then tqdm would warn and print text)."""
    try:
        import tqdm.notebook
    except ImportError:
        return None
    return None if tqdm.notebook.IProgress is None else tqdm.notebook.tqdm


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def bar_class(progress: bool | None):
    """The tqdm class that draws a bar, or None for no bar.

    ``progress=None`` (auto) draws one only where it renders as one line that updates in place: a notebook widget
    (Jupyter with ipywidgets) or an interactive terminal. A notebook without ipywidgets, a file and a CI log would
    collect every refresh as a separate fragment between the printed lines.
    """
    if progress is False:
        return None
    if _in_jupyter_kernel():
        widget = _notebook_tqdm()
        if widget is not None or progress is None:
            return widget
        return terminal_tqdm
    return terminal_tqdm if progress or _stderr_is_terminal() else None
