"""The site renders right: built once per session as CI builds it (warnings as errors, numpydoc validation on), its
pages show no reST markup as literal text, and numpydoc's checks catch the docstring shapes that render wrongly.

The build takes about 5 s on 2 cores (full site, fresh environment), so it runs once, in a session fixture.
"""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import importorskip_extra

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Code is shown as written: a literal `` inside <pre> or <code> is what the user types, not broken markup.
_VERBATIM = re.compile(r"<(pre|code|script|style)\b.*?</\1>", flags=re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def rendered_text(page: str) -> str:
    """The text a reader sees on an HTML page: code, scripts and tags removed, entities decoded."""
    return html.unescape(_TAG.sub(" ", _VERBATIM.sub(" ", page)))


def _conf():
    spec = importlib.util.spec_from_file_location("xpnet_docs_conf", DOCS / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    importorskip_extra("sphinx")
    importorskip_extra("numpydoc")
    out = tmp_path_factory.mktemp("html")
    # The command of ci/lint.sh (fresh environment, warnings as errors), into a temporary folder.
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", str(DOCS), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the docs build failed:\n{proc.stderr[-6000:]}"
    return out


def test_rendered_text_strips_code_and_markup():
    page = '<p>a <code class="docutils">``x``</code> b</p><pre>``y``</pre><p>``z`` &amp; w</p>'
    assert rendered_text(page).split() == ["a", "b", "``z``", "&", "w"]


def test_no_page_shows_literal_double_backticks(site):
    # A docstring paragraph numpydoc took for a parameter (or a type holding ``code``) shows its reST markup as
    # text: the Solver page showed 13 such pairs before its docstring was fixed.
    pages = sorted(site.rglob("*.html"))
    assert any(p.name == "xpnet.solver.html" for p in pages), "the API pages were not built"
    found = {}
    for page in pages:
        text = rendered_text(page.read_text(encoding="utf-8"))
        hits = [m.start() for m in re.finditer("``", text)]
        if hits:
            found[str(page.relative_to(site))] = [text[max(h - 40, 0) : h + 40] for h in hits[:3]]
    assert not found, f"pages show literal `` (reST markup left unrendered): {found}"


def test_numpydoc_validation_catches_what_renders_wrongly():
    validate = pytest.importorskip("numpydoc.validate")
    checks = _conf().numpydoc_validation_checks

    def codes(func) -> set[str]:
        return {code for code, _ in validate.validate(validate.get_doc_object(func))["errors"]}

    def closing_paragraph(x, y):
        """Sum.

        Parameters
        ----------
        x : int
            First.
        y : int
            Second.

        ``x`` and ``y`` must be finite: this paragraph renders as a parameter.
        """

    def merged(x, y):
        """Sum.

        Parameters
        ----------
        x : first. y : second.
        """

    def no_space(x):
        """Sum.

        Parameters
        ----------
        x: int
            First.
        """

    def good(x, y):
        """Sum.

        Parameters
        ----------
        x, y : int
            The terms.

        Notes
        -----
        ``x`` and ``y`` must be finite.
        """

    assert "PR02" in codes(closing_paragraph) & checks
    assert "PR01" in codes(merged) & checks
    assert "PR10" in codes(no_space) & checks
    assert not codes(good) & checks


def test_docstrings_excluded_from_validation_still_need_it():
    # The exclusion list only shrinks: an entry whose docstring now passes must be deleted, so it is checked again.
    validate = pytest.importorskip("numpydoc.validate")
    conf = _conf()
    passing = [
        name
        for name in conf._NOT_YET_VALID
        if not {code for code, _ in validate.validate(name)["errors"]} & conf.numpydoc_validation_checks
    ]
    assert not passing, f"these docstrings pass numpydoc's checks now; delete them from docs/conf.py: {passing}"


def test_layout_gives_the_text_the_width(site):
    # The top-level pages have no subpages: pydata's "Section Navigation" sidebar there was empty and took a quarter
    # of the width (docs/conf.py html_sidebars). The API pages keep it: it lists the module pages.
    top = [p for p in site.glob("*.html") if p.name not in {"genindex.html", "search.html", "py-modindex.html"}]
    assert {"index.html", "getting-started.html", "from-cs231n.html", "backends.html"} <= {p.name for p in top}
    crowded = [p.name for p in top if "Section Navigation" in p.read_text(encoding="utf-8")]
    assert not crowded, f"an empty Section Navigation sidebar on {crowded}"
    assert "Section Navigation" in (site / "api" / "generated" / "xpnet.solver.html").read_text(encoding="utf-8")
    assert "xpnet.css" in (site / "index.html").read_text(encoding="utf-8")


def test_the_landing_page_shows_the_picture_a_quick_start_and_every_section(site):
    page = (site / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<img[^>]+src="_images/train_cnn_numpy.png"', page)
    assert 'id="quick-start"' in page and "solver" in page
    for doc in ("getting-started", "from-cs231n", "backends", "sweeps", "reliability", "gallery", "benchmarks"):
        assert re.search(rf'class="xp-card[^"]*">\s*<p><a[^>]+href="{doc}.html', page), f"no card for {doc}"


def test_a_description_written_as_the_type_is_refused():
    # numpydoc has no check for it: "x : the input of shape (N, D)." renders the sentence as x's type, bold-italic,
    # with no description. docs/conf.py's check (run by the build) refuses it.
    problems = _conf().entry_type_problems
    assert problems(["Sum.", "", "Parameters", "----------", "x : the input of shape (N, D).", ""])
    long = "x : array of shape (N, D) holding the inputs, one row per example, any backend"
    assert problems(["Sum.", "", "Parameters", "----------", long, "    More.", ""])
    assert problems(["Sum.", "", "Returns", "-------", "out : the output of shape (N, M).", ""])
    good = ["Sum.", "", "Parameters", "----------", "x : array of shape (N, D)", "    The input.", ""]
    assert not problems(good + ["Returns", "-------", "out : array of shape (N, M)", "int", "    Count.", ""])
