"""The documentation's Python examples run as written (docs/*.md), so they cannot go stale.

Each page's ```python blocks run in order in one namespace, in a fresh folder (examples write checkpoints), with
NumPy's global random state put back afterwards. A block whose first line is ``# not run: <reason>`` is shown, not
run (it needs a cluster or a GPU). A page whose examples import a module of an optional package (``OPTIONAL``) that
is not installed is skipped naming it, unless ``XPNET_REQUIRE_EXTRAS`` names the package (CI): then it fails. Any
other module that does not exist fails the page (an import typo must not turn into a skip). The site itself is
built with warnings as errors by ``ci/lint.sh``.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import numpy as np
import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
_BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)
_IMPORT = re.compile(r"^(?:from|import) ([\w.]+)", flags=re.M)


def python_blocks(page: Path) -> list[str]:
    return _BLOCK.findall(page.read_text(encoding="utf-8"))


def runnable(blocks: list[str]) -> list[str]:
    return [b for b in blocks if not b.lstrip().startswith("# not run")]


# Packages a docs page may import that xpnet does not depend on (its extras, and the test extra's array_api_strict):
# only these may be missing. Anything else missing is a mistake on the page.
OPTIONAL = frozenset({"array_api_strict", "cupy", "dask", "distributed", "jax", "pandas", "torch"})


def _missing(code: str) -> list[str]:
    """The modules ``code`` imports that cannot be found."""
    missing = []
    for name in _IMPORT.findall(code):
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package is missing
            found = False
        if not found:
            missing.append(name)
    return missing


def import_verdict(code: str) -> tuple[str, str] | None:
    """None when every module ``code`` imports exists; else ("skip", why) when only optional packages that are not
    required (``XPNET_REQUIRE_EXTRAS``) are missing, ("fail", why) otherwise."""
    missing = _missing(code)
    if not missing:
        return None
    unknown = [m for m in missing if m.split(".")[0] not in OPTIONAL]
    if unknown:
        return "fail", f"imports {', '.join(unknown)}, which does not exist (not an optional package: a typo?)"
    required = set(os.environ.get("XPNET_REQUIRE_EXTRAS", "").split(","))
    needed = [m for m in missing if m.split(".")[0] in required]
    if needed:
        return "fail", f"needs {', '.join(needed)}, which XPNET_REQUIRE_EXTRAS requires but is not installed"
    return "skip", f"needs {', '.join(missing)}, which is not installed"


EXAMPLE_PAGES = [p for p in PAGES if runnable(python_blocks(p))]


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=[str(p.relative_to(DOCS)) for p in EXAMPLE_PAGES])
def test_page_examples_run(page, tmp_path, monkeypatch, capsys):
    blocks = runnable(python_blocks(page))
    verdict = import_verdict("\n".join(blocks))
    if verdict is not None:
        action, why = verdict
        (pytest.fail if action == "fail" else pytest.skip)(f"{page.name}'s examples {why}")
    monkeypatch.chdir(tmp_path)
    # Run as a script is: code under `if __name__ == "__main__":` (as a sweep in a script must be) runs too.
    namespace = {"__name__": "__main__"}
    state = np.random.get_state()
    try:
        for i, code in enumerate(blocks):
            exec(compile(code, f"{page} (python block {i + 1})", "exec"), namespace)
    finally:
        np.random.set_state(state)
    assert capsys.readouterr().out, f"{page.name}: the examples print what they show"


def test_every_page_with_an_example_is_collected():
    # Guards the block pattern: the pages that teach by example must be found to have examples.
    with_examples = {p.name for p in EXAMPLE_PAGES}
    assert {"getting-started.md", "from-cs231n.md", "backends.md", "reliability.md"} <= with_examples


def test_not_run_blocks_say_why():
    for page in PAGES:
        for block in python_blocks(page):
            first = block.lstrip().splitlines()[0]
            if first.startswith("# not run"):
                assert re.match(r"# not run: \S", first), f"{page.name}: {first!r} must give a reason"


def test_a_missing_module_skips_a_page_only_when_it_is_an_optional_package(monkeypatch):
    monkeypatch.delenv("XPNET_REQUIRE_EXTRAS", raising=False)
    assert import_verdict("import numpy as np\nfrom xpnet.layers import affine_forward") is None
    # A typo in xpnet's own module path, or a module of no known package, fails the page instead of skipping it.
    assert import_verdict("from xpnet.layrs import affine_forward")[0] == "fail"
    assert import_verdict("import numpyy")[0] == "fail"
    # An optional package that is missing skips (names below can never be installed), unless it is required.
    assert import_verdict("import torch.not_a_module") == ("skip", "needs torch.not_a_module, which is not installed")
    monkeypatch.setenv("XPNET_REQUIRE_EXTRAS", "distributed,torch")
    assert import_verdict("import torch.not_a_module")[0] == "fail"


def test_sweep_examples_show_the_main_guard():
    # A sweep copied into a script needs the guard (its worker processes import the script again): the examples a
    # user copies show it.
    for page in PAGES:
        for block in runnable(python_blocks(page)):
            if re.search(r"^\s*\w+ = sweep\(", block, flags=re.M):
                assert 'if __name__ == "__main__":' in block, f"{page.name}: a sweep example without the guard"
