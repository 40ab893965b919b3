"""The documentation's Python examples run as written (docs/*.md), so they cannot go stale.

Each page's ```python blocks run in order in one namespace, in a fresh folder (examples write checkpoints), with
NumPy's global random state put back afterwards. A block whose first line is ``# not run: <reason>`` is shown, not
run (it needs a cluster or a GPU). A page whose examples import an optional module that is not installed is skipped
naming it. The site itself is built with warnings as errors by ``ci/lint.sh``.
"""

from __future__ import annotations

import importlib.util
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


def _missing(code: str) -> list[str]:
    missing = []
    for name in _IMPORT.findall(code):
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # the parent package is missing
            found = False
        if not found:
            missing.append(name)
    return missing


EXAMPLE_PAGES = [p for p in PAGES if runnable(python_blocks(p))]


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=[str(p.relative_to(DOCS)) for p in EXAMPLE_PAGES])
def test_page_examples_run(page, tmp_path, monkeypatch, capsys):
    blocks = runnable(python_blocks(page))
    missing = _missing("\n".join(blocks))
    if missing:
        pytest.skip(f"{page.name}'s examples need {', '.join(missing)}, which is not installed")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"__docs_{page.stem}__"}
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
