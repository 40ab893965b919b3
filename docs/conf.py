"""Sphinx configuration: ``python -m sphinx -W -b html docs docs/_build/html`` (warnings are errors).

The API reference is generated at every build from the package itself: one page per public module (every module
whose dotted name has no part starting with ``_``), so a new module gets its page without anyone remembering to add
it. A page documents the names in the module's ``__all__`` that are defined there (or in a private module behind
it); names it re-exports from another public module are listed with a link to where they are documented.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

from sphinx.util import logging

import xpnet

_logger = logging.getLogger(__name__)

project = "xpnet"
author = "the xpnet developers"
copyright = "2026, the xpnet developers"
release = version = xpnet.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "README.md"]
templates_path: list[str] = []

# A broken reference to anything of xpnet's is an error; names of other libraries are not resolved (no network
# for intersphinx in CI), so they are let through below.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|cupy|torch|jax|array_api_strict|matplotlib|distributed|dask|pandas|tqdm)(\..*)?"),
    (r"py:.*", r"(Any|Callable|Sequence|Mapping|Iterable|Path|PathLike|os\.PathLike|pathlib\.Path)"),
]

# Signatures without annotations: the numpydoc "Parameters" sections say the types and shapes in words
# (array arguments are typed ``Any``, which would say nothing).
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": False}
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# numpydoc checks every docstring it renders and warns (an error under -W) on what would render wrongly: a
# paragraph left under "Parameters" becomes a fake parameter (PR02, PR10), two entries on one line merge into one
# (PR01), a parameter the signature has but the docstring lacks (PR01), a misordered one (PR03), an unknown section
# title (GL06) or sections out of order (GL07), a directive with one colon (GL10). Style checks (summary mood, a
# period after every description, See Also, Examples) are left out: they say nothing about what a reader sees.
numpydoc_validation_checks = {"GL06", "GL07", "GL10", "PR01", "PR02", "PR03", "PR10"}
# Docstrings that do not pass yet, by exact name (fixing one means deleting its line; a test fails while a listed
# one passes). Empty: every public docstring passes.
_NOT_YET_VALID: list[str] = []
numpydoc_validation_exclude = {f"^{re.escape(name)}$" for name in _NOT_YET_VALID}

# numpydoc has no check for the commonest slip, ``x : the input of shape (N, D).`` on one line: the sentence
# becomes the entry's *type*, shown bold-italic, with no description. ``check_entry_types`` (below) refuses a type
# that is a sentence (ends with a period or runs past 60 characters) and a parameter without a description.
_MAX_TYPE = 60


def entry_type_problems(lines: list[str]) -> list[str]:
    """What is wrong with the entries of a docstring (given as lines) that numpydoc would render as a type."""
    from numpydoc.docscrape import NumpyDocString

    doc = NumpyDocString("\n".join(lines))
    problems = []
    for section in ("Parameters", "Other Parameters", "Attributes", "Returns", "Yields"):
        for entry in doc[section]:
            label = f"{section}: {entry.name or entry.type!r}"
            if entry.type.endswith(".") or len(entry.type) > _MAX_TYPE:
                problems.append(
                    f"{label} has a sentence as its type ({entry.type[:40]!r}...): put the type on the "
                    "name's line and the description, indented, below it"
                )
            elif section not in ("Returns", "Yields") and not "".join(entry.desc).strip():
                problems.append(f"{label} has no description: indent it below 'name : type'")
    return problems


def check_entry_types(app, what, name, obj, options, lines) -> None:
    if name.startswith("xpnet") and what in ("function", "method", "class", "property", "data", "exception"):
        for problem in entry_type_problems(lines):
            _logger.warning(f"[xpnet] docstring of {name!r}: {problem}")


def setup(app) -> None:
    # Before numpydoc (priority 500) rewrites the lines into reST.
    app.connect("autodoc-process-docstring", check_entry_types, priority=400)


myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

html_theme = "pydata_sphinx_theme"
html_title = f"xpnet {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    # Few enough header links that they and the search button share one row at 1280 px; the rest under "More".
    "header_links_before_dropdown": 5,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["xpnet.css"]
# The top-level pages have no subpages: pydata's left "Section Navigation" would be an empty quarter of the width.
# The API pages (api/...) keep it, listing the module pages.
html_sidebars = {"*": []}

# ---------------------------------------------------------------------------------------------------------------
# Generated API reference

_HERE = Path(__file__).resolve().parent
_API = _HERE / "api"


def _is_private(name: str) -> bool:
    return any(part.startswith("_") for part in name.split("."))


def public_modules() -> list[str]:
    """Dotted names of xpnet's public modules, in import order (the package first)."""
    names = ["xpnet"]
    for info in pkgutil.walk_packages(xpnet.__path__, prefix="xpnet."):
        if not _is_private(info.name):
            names.append(info.name)
    return names


def _home(obj: object) -> tuple[str, str] | None:
    """Where an object is documented, as ``(module, name)``: the outermost public package on the path to the module
    that defines it whose ``__all__`` exports it (``xpnet.layers.affine_forward``, not ``xpnet.layers.affine.``...,
    because ``from xpnet.layers import *`` is how CS231n code gets it); None when nothing public exports it."""
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str) or not module.startswith("xpnet"):
        return None
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        candidate = ".".join(parts[:i])
        if _is_private(candidate):
            break
        exporter = importlib.import_module(candidate)
        for name in getattr(exporter, "__all__", ()):
            if getattr(exporter, name, None) is obj:
                return candidate, name
    return None


def _page(modname: str) -> str:
    module = importlib.import_module(modname)
    exported = list(getattr(module, "__all__", []))
    own, elsewhere = [], []
    for name in exported:
        if name.startswith("__"):
            continue
        obj = getattr(module, name)
        home = _home(obj)
        if home is None or home == (modname, name):
            own.append((name, obj))
        else:
            elsewhere.append((name, obj, home))

    lines = [f"``{modname}``", "=" * (len(modname) + 4), "", f".. automodule:: {modname}", "   :no-members:", ""]
    submodules = [m for m in public_modules() if m.rpartition(".")[0] == modname]
    if submodules:
        lines += ["Submodules", "----------", ""]
        lines += [f"- :mod:`{m}`" for m in submodules] + [""]
    if own:
        lines += [".. currentmodule:: " + modname, "", ".. autosummary::", ""]
        lines += [f"   {name}" for name, _ in own] + [""]
        for name, obj in own:
            if inspect.isclass(obj):
                # Methods xpnet's own base classes give (Model.save, ...) are documented; those of Python's classes
                # (Sequence.index, Exception.with_traceback, ...) are not.
                foreign = ", ".join(c.__name__ for c in obj.__mro__[1:] if not c.__module__.startswith("xpnet"))
                lines += [f".. autoclass:: {name}", "   :members:", f"   :inherited-members: {foreign}", ""]
            elif callable(obj):
                lines += [f".. autofunction:: {name}", ""]
            else:  # a public table (optim.CONFIG_SPEC): its docstring, not its repr
                lines += [f".. autodata:: {name}", "   :no-value:", ""]
    if elsewhere:
        lines += ["Also importable from here", "-------------------------", ""]
        lines += ["Names in this module's ``__all__`` documented on the page of the package that exports them:", ""]
        for name, obj, (home, home_name) in elsewhere:
            role = "class" if inspect.isclass(obj) else "func" if callable(obj) else "data"
            label = name if name == home_name else f"{name} (the same function as {home_name})"
            lines.append(f"- :py:{role}:`{label} <{home}.{home_name}>`")
        lines.append("")
    return "\n".join(lines)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def generate_api_pages() -> None:
    """Write ``api/generated/<module>.rst`` for every public module and drop pages of modules that are gone."""
    out = _API / "generated"
    out.mkdir(parents=True, exist_ok=True)
    wanted = {f"{m}.rst": _page(m) for m in public_modules()}
    for stale in out.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        _write_if_changed(out / name, text)


generate_api_pages()
